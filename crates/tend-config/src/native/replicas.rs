//! `[process.NAME] replicas = N`: N copies of one process, as supervisord's
//! `numprocs` makes them from a `[program:x]`.
//!
//! The copies are named `NAME-0` .. `NAME-{N-1}` and are the members of a
//! group `NAME` (unless a `[group.X]` lists `NAME`: then all of them are in
//! `X`), so `tend restart NAME` or `NAME:*` acts on all. Each has its index in
//! [`REPLICA_VAR`]. A dependency on `NAME` is a dependency on every copy (all
//! of them must meet its condition), and `before = ["NAME"]` runs before all.
//! A copy's default log files are its own (`NAME-0.out.log`); a path written
//! in the table is shared by all (lines never interleave) unless it has
//! `${TEND_REPLICA}`. The table is read once, as a template whose expanded
//! values keep `${TEND_REPLICA}` (expand.rs); [`substitute`] puts the index
//! of each copy in, and the template stays with the copies
//! ([`crate::ProcessConfig::template`]) for `tend scale`.
//!
//! Nothing but the index differs between copies and nothing in a copy
//! depends on N, so a reload that changes N adds or removes only the
//! difference (the rest are the same specs, left running).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tend_core::probe::Check;
use tend_core::spec::LogTarget;
use tend_core::{Name, ProcessSpec};

use super::expand::substitute_replica;

use super::deps::DepEntry;
use super::process::{Draft, Entry};
use super::value::Field;
use crate::diag::{Cx, Span};

/// The environment variable that holds a copy's index, `0` to `N-1`.
/// (pm2's is `NODE_APP_INSTANCE`, process-compose's `PC_REPLICA_NUM`.)
pub const REPLICA_VAR: &str = "TEND_REPLICA";

/// The most copies of one process (supervisord.conf's `numprocs` allows as many).
pub const MAX_REPLICAS: u32 = 10_000;

/// `replicas`, a key of `[process.NAME]` only.
pub(super) const FIELDS: &[Field<Draft>] = &[Field {
    key: "replicas",
    read: |cx, d, _, v| {
        let what = format!("a number of copies from 1 to {MAX_REPLICAS}");
        let Some(n) = cx.int::<i64>(v, &what) else {
            return;
        };
        match u32::try_from(n) {
            Ok(n) if (1..=MAX_REPLICAS).contains(&n) => d.replicas = Some((n, v.span())),
            _ => cx.error(
                v.span(),
                format!(
                    "replicas = {n} in {}: expected {what} (leave it out for one process named after the table)",
                    d.section
                ),
            ),
        }
    },
}];

/// Which copies each replicated process became, by the table's name.
pub(super) type Copies = BTreeMap<String, Vec<String>>;

/// The spec each replicated process's copies are made from, by the table's
/// name: named after the table, its expanded fields in template text
/// (`${TEND_REPLICA}` kept, see expand.rs), for `tend scale`.
pub(super) type Templates = BTreeMap<String, ProcessSpec>;

/// Turns each entry with `replicas` into its copies, and every dependency on
/// (and `before` of) a replicated name into one on each copy. `declared`
/// gets the copies' names (the table's name stays, for `[group.X]`).
pub(super) fn expand(
    cx: &mut Cx<'_>,
    read: Vec<(Entry, Span, String)>,
    declared: &mut Vec<String>,
) -> (Vec<(Entry, Span, String)>, Copies, Templates) {
    if read.iter().all(|(e, _, _)| e.replicas.is_none()) {
        return (read, Copies::new(), Templates::new());
    }
    let mut taken: HashSet<String> = declared.iter().cloned().collect();
    let mut copies = Copies::new();
    let mut templates = Templates::new();
    let mut out = Vec::with_capacity(read.len());
    for (entry, span, section) in read {
        let Some((n, at)) = entry.replicas.clone() else {
            out.push((entry, span, section));
            continue;
        };
        let base = entry.spec.name.to_string();
        let mut names = Vec::with_capacity(n as usize);
        let mut clash = false;
        for i in 0..n {
            let name = format!("{base}-{i}");
            if !taken.insert(name.clone()) {
                cx.error(
                    at.clone(),
                    format!("replicas = {n} in {section} makes {name:?}, which is already the name of a process or a task"),
                );
                clash = true;
                break;
            }
            names.push(name);
        }
        if clash {
            continue;
        }
        for (i, name) in names.iter().enumerate() {
            let Ok(n) = Name::new(name) else {
                cx.error(at.clone(), format!("{name:?} is not a valid process name"));
                break;
            };
            let spec = copy(&entry.spec, &base, n, i);
            // A cwd named by the index is checked for each copy.
            if let Some(dir) = spec.cwd.as_ref().filter(|_| entry.spec.cwd != spec.cwd)
                && let Err(why) = crate::check::working_dir(dir)
            {
                cx.error(span.clone(), format!("cwd of {name} in {section}: {why}"));
            }
            out.push((
                Entry {
                    spec,
                    deps: entry.deps.clone(),
                    task: None,
                    replicas: None,
                },
                span.clone(),
                section.clone(),
            ));
        }
        declared.extend(names.iter().cloned());
        templates.insert(base.clone(), entry.spec);
        copies.insert(base, names);
    }
    for (e, _, _) in &mut out {
        e.deps = e
            .deps
            .drain(..)
            .flat_map(|d| match copies.get(&d.name) {
                Some(names) => names
                    .iter()
                    .map(|n| DepEntry {
                        name: n.clone(),
                        ..d.clone()
                    })
                    .collect(),
                None => vec![d],
            })
            .collect();
        e.spec.depends_on = e
            .spec
            .depends_on
            .drain(..)
            .flat_map(|d| match copies.get(d.name.as_str()) {
                Some(names) => names
                    .iter()
                    .filter_map(|n| Name::new(n).ok())
                    .map(|name| tend_core::spec::Dependency { name, ..d.clone() })
                    .collect(),
                None => vec![d],
            })
            .collect();
        if let Some(t) = &mut e.task {
            t.before = t
                .before
                .drain(..)
                .flat_map(|(n, span)| match copies.get(&n) {
                    Some(names) => names.iter().map(|c| (c.clone(), span.clone())).collect(),
                    None => vec![(n, span)],
                })
                .collect();
        }
    }
    (out, copies, templates)
}

/// Gives each copy in `declared` its template (see [`crate::ProcessConfig::template`]).
pub(super) fn attach_templates(
    declared: &mut crate::Declared,
    copies: &Copies,
    templates: Templates,
) {
    if templates.is_empty() {
        return;
    }
    let mut of: BTreeMap<&str, Arc<ProcessSpec>> = BTreeMap::new();
    let shared: Vec<(String, Arc<ProcessSpec>)> = templates
        .into_iter()
        .map(|(base, t)| (base, Arc::new(t)))
        .collect();
    for (base, t) in &shared {
        for name in copies.get(base).into_iter().flatten() {
            of.insert(name.as_str(), Arc::clone(t));
        }
    }
    for g in &mut declared.groups {
        for p in &mut g.processes {
            if let Some(t) = of.get(p.spec.name.as_str()) {
                Arc::make_mut(p).template = Some(Arc::clone(t));
            }
        }
    }
}

/// Copy `i` of the process `base` whose spec (of any copy) is `spec`, for
/// `tend scale` when the copies' template is not known (a process added
/// through the API as `BASE-0`): named `BASE-i`, with `TEND_REPLICA=i` and
/// its own default log files, as `replicas = N` makes them, and nothing
/// else changed. `None` if `BASE-i` is not a valid name.
pub fn replica_copy(spec: &ProcessSpec, base: &str, i: usize) -> Option<ProcessSpec> {
    let name = Name::new(format!("{base}-{i}")).ok()?;
    // The template's own name stands for the base in its default log paths.
    let mut s = spec.clone();
    let own = s.name.to_string();
    s.logs.stdout = rename_log(&s.logs.stdout, &own, base, "out");
    s.logs.stderr = rename_log(&s.logs.stderr, &own, base, "err");
    s.env.insert(REPLICA_VAR.to_string(), i.to_string());
    s.logs.stdout = own_log(&s.logs.stdout, base, name.as_str(), "out");
    s.logs.stderr = own_log(&s.logs.stderr, base, name.as_str(), "err");
    s.name = name;
    Some(s)
}

/// Copy `i` of a replicated process from its template (the
/// [`crate::ProcessConfig::template`] of any copy), as `replicas = N` makes
/// it: named `BASE-i` after the template's name, `${TEND_REPLICA}` in its
/// command, env, cwd, log paths, checks and watch replaced by `i`, with
/// `TEND_REPLICA=i` and its own default log files. `None` if `BASE-i` is
/// not a valid name.
pub fn replica_from_template(template: &ProcessSpec, i: usize) -> Option<ProcessSpec> {
    let base = template.name.to_string();
    let name = Name::new(format!("{base}-{i}")).ok()?;
    Some(copy(template, &base, name, i))
}

/// `spec` (template text, see expand.rs) with the copy's index `index` in
/// every field `${VAR}` expansion covers.
pub(super) fn substitute(spec: &ProcessSpec, index: &str) -> ProcessSpec {
    let text = |s: &String| substitute_replica(s, index);
    let path = |p: &PathBuf| match p.to_str() {
        Some(s) => PathBuf::from(substitute_replica(s, index)),
        None => p.clone(),
    };
    let log = |t: &LogTarget| match t {
        LogTarget::File(p) => LogTarget::File(path(p)),
        other => other.clone(),
    };
    let mut s = spec.clone();
    s.command = s.command.iter().map(text).collect();
    s.cwd = s.cwd.as_ref().map(path);
    for v in s.env.values_mut() {
        *v = text(v);
    }
    s.logs.stdout = log(&s.logs.stdout);
    s.logs.stderr = log(&s.logs.stderr);
    if let Some(c) = &mut s.stop.command {
        *c = c.iter().map(text).collect();
    }
    for probe in [&mut s.ready, &mut s.health].into_iter().flatten() {
        probe.check = substitute_check(&probe.check, index);
    }
    if let Some(w) = &mut s.watch {
        w.root = path(&w.root);
        w.patterns = w.patterns.iter().map(text).collect();
        w.ignore = w.ignore.iter().map(text).collect();
    }
    s
}

/// A check of a template (see [`substitute`]) for the copy `index`.
pub(super) fn substitute_check(check: &Check, index: &str) -> Check {
    let text = |s: &String| substitute_replica(s, index);
    match check {
        Check::Http(u) => Check::Http(text(u)),
        Check::Tcp(a) => Check::Tcp(text(a)),
        Check::Exec(argv) => Check::Exec(argv.iter().map(text).collect()),
        // All three are template text (a `$` of a password is `$$` there).
        Check::Redis {
            addr,
            password,
            username,
        } => Check::Redis {
            addr: text(addr),
            password: password.as_ref().map(text),
            username: username.as_ref().map(text),
        },
        Check::PortFree(p) => Check::PortFree(*p),
    }
}

fn rename_log(target: &LogTarget, from: &str, to: &str, suffix: &str) -> LogTarget {
    own_log(target, from, to, suffix)
}

/// Copy `i` of the template `spec`, named `name`.
fn copy(spec: &ProcessSpec, base: &str, name: Name, i: usize) -> ProcessSpec {
    // The group stays the table's name (or the `[group.X]` that lists it).
    let mut s = substitute(spec, &i.to_string());
    s.env.insert(REPLICA_VAR.to_string(), i.to_string());
    s.logs.stdout = own_log(&s.logs.stdout, base, name.as_str(), "out");
    s.logs.stderr = own_log(&s.logs.stderr, base, name.as_str(), "err");
    s.name = name;
    s
}

/// The default log file `BASE.out.log` becomes `NAME.out.log`.
fn own_log(target: &LogTarget, base: &str, name: &str, suffix: &str) -> LogTarget {
    match target {
        LogTarget::File(p)
            if p.file_name()
                .is_some_and(|f| f == Path::new(&format!("{base}.{suffix}.log"))) =>
        {
            LogTarget::File(p.with_file_name(format!("{name}.{suffix}.log")))
        }
        other => other.clone(),
    }
}
