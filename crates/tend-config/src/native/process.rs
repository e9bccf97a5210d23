//! `[process.NAME]` and `[task.NAME]` tables and their `backoff` and `stop`
//! sub-tables.

use std::time::Duration;

use tend_core::duration::format as fmt_duration;
use tend_core::spec::{Condition, Dependency};
use tend_core::{Backoff, BackoffMode, Name, ProcessSpec, RestartPolicy, Signal};
use toml::de::DeValue;

use super::deps::{self, DepEntry, Edge, Origin};
use super::logs::{self, LogsDraft, PathChecks};
use super::task::{self, TaskDraft};
use super::value::{Field, Item, Key, section_name, walk};
use crate::TaskConf;
use crate::diag::{Cx, Span, did_you_mean};

/// Default `reset_after` of schedule mode.
const DEFAULT_RESET_AFTER: Duration = Duration::from_secs(30 * 60);

/// A process or task table being read.
pub(super) struct Draft {
    /// `[process.NAME]` or `[task.NAME]`, for messages.
    pub(super) section: String,
    pub(super) spec: ProcessSpec,
    has_command: bool,
    backoff: BackoffDraft,
    logs: LogsDraft,
    /// `depends_on`, with the places of its entries.
    deps: Vec<DepEntry>,
    /// The keys that need another key, to point at.
    watchdog_key: Option<Span>,
    start_timeout_key: Option<Span>,
    /// `restart` was written (`exit_with` makes it "never" otherwise).
    restart_given: bool,
    /// The keys of `[task.NAME]` alone.
    pub(super) task: TaskDraft,
    /// `replicas`, and where it is written.
    pub(super) replicas: Option<(u32, Span)>,
    /// `watch` and its keys.
    pub(super) watch: super::watch::WatchDraft,
}

/// What a table turns into once read.
pub(super) struct Entry {
    pub(super) spec: ProcessSpec,
    /// `depends_on` as written (the spec has them too).
    pub(super) deps: Vec<DepEntry>,
    /// For a task: its triggers.
    pub(super) task: Option<TaskDraft>,
    /// `replicas`, and where it is written.
    pub(super) replicas: Option<(u32, Span)>,
}

/// The two kinds of table that make a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `[process.NAME]`: kept alive.
    Process,
    /// `[task.NAME]`: run to completion when triggered.
    Task,
}

/// The back-off keys as written; the mode is only known once all are read.
#[derive(Default)]
struct BackoffDraft {
    section: String,
    min_uptime: Option<Duration>,
    give_up_after: Option<u32>,
    reset_on_ready: Option<bool>,
    floor: Option<Duration>,
    /// The key spans are kept to point at conflicting keys.
    initial: Option<(Duration, Span)>,
    max: Option<(Duration, Span)>,
    /// `Some` when the key is present, even if its value is invalid.
    schedule: Option<Span>,
    steps: Option<Vec<Duration>>,
    reset_after: Option<(Duration, Span)>,
}

const PROCESS_FIELDS: &[Field<Draft>] = &[
    Field {
        key: "command",
        read: |cx, d, _, v| {
            d.has_command = true;
            if let Some(argv) = read_command(cx, v) {
                d.spec.command = argv;
            }
        },
    },
    Field {
        key: "cwd",
        read: |cx, d, _, v| d.spec.cwd = read_dir(cx, v),
    },
    Field {
        key: "env",
        read: |cx, d, _, v| {
            let Some(table) = cx.table(v) else { return };
            for (key, value) in table.iter() {
                let name: &str = key.get_ref();
                if name.is_empty() || name.contains(['=', '\0']) {
                    cx.error(
                        key.span(),
                        format!(
                            "environment variable name {name:?} is empty or contains '=' or NUL"
                        ),
                    );
                    continue;
                }
                match value.get_ref() {
                    DeValue::String(s) if s.contains('\0') => {
                        cx.error(
                            value.span(),
                            format!("the value of {name} contains a NUL byte"),
                        );
                    }
                    DeValue::String(s) => {
                        // Sees what lies below `env`, not its other keys.
                        let depth = cx.expand_depth(super::expand::Depth::File);
                        let key = format!("env.{name}");
                        if let Some(s) = cx.expand(value, s, &key) {
                            d.spec.env.insert(name.to_string(), s);
                        }
                        cx.expand_depth(depth);
                    }
                    other => {
                        let raw = cx.slice(value.span());
                        let msg = format!(
                            "expected a string, found {} (quote it: {name} = {raw:?})",
                            other.type_str()
                        );
                        cx.error(value.span(), msg);
                    }
                }
            }
        },
    },
    Field {
        key: "env_file",
        // Beneath `env`, whichever comes first in the table.
        read: |cx, d, _, v| {
            let depth = cx.expand_depth(super::expand::Depth::Daemon);
            // Read once for all copies: its path has no copy's index.
            let replica = cx.vars.keep_replica(false);
            if let Some(mut vars) = super::envfile::read(cx, v) {
                if replica {
                    // Its values are literal: as template text (see expand.rs).
                    for value in vars.values_mut() {
                        *value = super::expand::escape(value).into_owned();
                    }
                }
                super::envfile::under(&mut d.spec.env, &vars);
            }
            cx.vars.keep_replica(replica);
            cx.expand_depth(depth);
        },
    },
    Field {
        key: "clear_env",
        read: |cx, d, _, v| d.spec.clear_env = cx.bool(v).unwrap_or(d.spec.clear_env),
    },
    Field {
        key: "user",
        read: |cx, d, _, v| d.spec.user = read_account(cx, v, Account::User),
    },
    Field {
        key: "group",
        read: |cx, d, _, v| d.spec.unix_group = read_account(cx, v, Account::Group),
    },
    Field {
        key: "umask",
        read: |cx, d, _, v| d.spec.umask = cx.mode(v, 0o777),
    },
    Field {
        key: "autostart",
        read: |cx, d, _, v| d.spec.autostart = cx.bool(v).unwrap_or(d.spec.autostart),
    },
    Field {
        key: "priority",
        read: |cx, d, _, v| {
            d.spec.priority = cx.int(v, "an integer priority").unwrap_or(d.spec.priority)
        },
    },
    Field {
        key: "restart",
        read: |cx, d, _, v| {
            const ALLOWED: [&str; 3] = ["always", "on-failure", "never"];
            d.restart_given = true;
            let Some(s) = cx.string(v) else { return };
            d.spec.restart = match s {
                "always" => RestartPolicy::Always,
                "on-failure" => RestartPolicy::OnFailure,
                "never" => RestartPolicy::Never,
                _ => {
                    let hint = did_you_mean(s, ALLOWED);
                    cx.error(
                        v.span(),
                        format!("unknown restart policy {s:?}: expected \"always\", \"on-failure\" or \"never\"{hint}"),
                    );
                    return;
                }
            };
        },
    },
    Field {
        key: "success_exit_codes",
        read: |cx, d, _, v| {
            let Some(arr) = cx.array(v, "an array of exit codes") else {
                return;
            };
            let codes: Vec<Option<u8>> = arr
                .iter()
                .map(|e| {
                    let code = cx.int::<i64>(e, "an exit code (0 to 255)")?;
                    match crate::check::exit_code(code) {
                        Ok(()) => u8::try_from(code).ok(),
                        Err(why) => {
                            cx.error(e.span(), why);
                            None
                        }
                    }
                })
                .collect();
            if let Some(codes) = codes.into_iter().collect::<Option<Vec<u8>>>() {
                d.spec.success_exit_codes = codes.into_iter().map(i32::from).collect();
            }
        },
    },
    Field {
        key: "stdin",
        read: |cx, d, _, v| match cx.string(v) {
            Some("pipe") => d.spec.stdin_pipe = true,
            Some("null") => d.spec.stdin_pipe = false,
            Some(other) => {
                let msg = format!("stdin must be \"pipe\" or \"null\", found {other:?}");
                cx.error(v.span(), msg);
            }
            None => {}
        },
    },
    Field {
        key: "start_secs",
        read: |cx, d, _, v| d.spec.start_secs = cx.duration(v).unwrap_or(d.spec.start_secs),
    },
    Field {
        key: "depends_on",
        read: |cx, d, _, v| d.deps = deps::read_depends_on(cx, &d.section, v),
    },
    Field {
        key: "ready",
        read: |cx, d, _, v| {
            let section = format!("{}.ready]", d.section.trim_end_matches(']'));
            d.spec.ready = deps::read_probe(cx, &section, v);
        },
    },
    Field {
        key: "health",
        read: |cx, d, _, v| {
            let section = format!("{}.health]", d.section.trim_end_matches(']'));
            d.spec.health = deps::read_probe(cx, &section, v);
        },
    },
    Field {
        key: "notify",
        read: |cx, d, _, v| d.spec.notify = cx.bool(v).unwrap_or(d.spec.notify),
    },
    Field {
        key: "watchdog",
        read: |cx, d, k, v| {
            d.watchdog_key = Some(k);
            d.spec.watchdog = positive_duration(cx, v, "watchdog");
        },
    },
    Field {
        key: "start_timeout",
        read: |cx, d, k, v| {
            d.start_timeout_key = Some(k);
            d.spec.start_timeout = positive_duration(cx, v, "start_timeout");
        },
    },
    Field {
        key: "backoff",
        read: |cx, d, _, v| {
            if let Some(table) = cx.table(v) {
                let section = d.backoff.section.clone();
                walk(cx, &section, table, BACKOFF_FIELDS, &[], &mut d.backoff);
            }
        },
    },
    Field {
        key: "stop",
        read: |cx, d, _, v| {
            if let Some(table) = cx.table(v) {
                let section = format!("{}.stop]", d.section.trim_end_matches(']'));
                walk(cx, &section, table, STOP_FIELDS, &[], &mut d.spec);
            }
        },
    },
    Field {
        key: "logs",
        read: |cx, d, _, v| {
            if let Some(table) = cx.table(v) {
                let section = d.logs.section.clone();
                walk(
                    cx,
                    &section,
                    table,
                    logs::LOG_FIELDS,
                    logs::LOG_ALIASES,
                    &mut d.logs,
                );
            }
        },
    },
];

/// Known misplacements and Supervisor spellings, suggested on an exact match.
const PROCESS_ALIASES: &[(&str, &str)] = &[
    ("args", "command"),
    ("autorestart", "restart"),
    ("backups", "logs.backups"),
    ("cmd", "command"),
    ("directory", "cwd"),
    ("environment", "env"),
    ("exitcodes", "success_exit_codes"),
    ("after", "depends_on"),
    ("cpu_max", "limits.cpu_max"),
    ("io_weight", "limits.io_weight"),
    ("memory_high", "limits.memory_high"),
    ("memory_max", "limits.memory_max"),
    ("pids_max", "limits.pids_max"),
    ("dependencies", "depends_on"),
    ("depends", "depends_on"),
    ("give_up_after", "backoff.give_up_after"),
    ("healthcheck", "health"),
    ("liveness", "health"),
    ("liveness_probe", "health"),
    ("readiness", "ready"),
    ("readiness_probe", "ready"),
    ("requires", "depends_on"),
    ("reset_on_ready", "backoff.reset_on_ready"),
    ("initial", "backoff.initial"),
    ("max", "backoff.max"),
    ("max_size", "logs.max_size"),
    ("maxstartup", "start_timeout"),
    ("merge_stderr", "logs.merge_stderr"),
    ("min_uptime", "backoff.min_uptime"),
    ("redirect_stderr", "logs.merge_stderr"),
    ("reset_after", "backoff.reset_after"),
    ("schedule", "backoff.schedule"),
    ("signal", "stop.signal"),
    ("startretries", "backoff.give_up_after"),
    ("stderr", "logs.stderr"),
    ("stderr_logfile", "logs.stderr"),
    ("stdout", "logs.stdout"),
    ("stdout_logfile", "logs.stdout"),
    ("stdout_logfile_backups", "logs.backups"),
    ("stdout_logfile_maxbytes", "logs.max_size"),
    ("stopsignal", "stop.signal"),
    ("stopwaitsecs", "stop.timeout"),
    ("strip_ansi", "logs.strip_ansi"),
    ("timeout", "stop.timeout"),
    ("timestamps", "logs.timestamps"),
    ("type", "notify"),
    ("wants", "depends_on"),
    ("watchdog_sec", "watchdog"),
    ("unix_group", "group"),
    ("workdir", "cwd"),
];

const BACKOFF_FIELDS: &[Field<BackoffDraft>] = &[
    Field {
        key: "min_uptime",
        read: |cx, b, _, v| b.min_uptime = cx.duration(v).or(b.min_uptime),
    },
    Field {
        key: "give_up_after",
        read: |cx, b, _, v| {
            let n = cx.int::<u32>(v, "a number of quick deaths (at least 1)");
            if n == Some(0) {
                cx.error(
                    v.span(),
                    "give_up_after must be at least 1 (leave it out to never give up)",
                );
            } else if n.is_some() {
                b.give_up_after = n;
            }
        },
    },
    Field {
        key: "reset_on_ready",
        read: |cx, b, _, v| b.reset_on_ready = cx.bool(v).or(b.reset_on_ready),
    },
    Field {
        key: "floor",
        read: |cx, b, _, v| {
            let Some(d) = cx.duration(v) else { return };
            if d < Backoff::MIN_FLOOR {
                cx.error(
                    v.span(),
                    format!(
                        "floor must be at least {} (it keeps a process that exits at once from respawning in a hot loop)",
                        tend_core::duration::format(Backoff::MIN_FLOOR)
                    ),
                );
            } else {
                b.floor = Some(d);
            }
        },
    },
    Field {
        key: "initial",
        read: |cx, b, k, v| b.initial = cx.duration(v).map(|d| (d, k)),
    },
    Field {
        key: "max",
        read: |cx, b, k, v| b.max = cx.duration(v).map(|d| (d, k)),
    },
    Field {
        key: "schedule",
        read: |cx, b, k, v| {
            b.schedule = Some(k);
            let Some(arr) = cx.array(v, "an array of durations") else {
                return;
            };
            let steps: Vec<Option<Duration>> = arr.iter().map(|e| cx.duration(e)).collect();
            b.steps = steps.into_iter().collect();
        },
    },
    Field {
        key: "reset_after",
        read: |cx, b, k, v| b.reset_after = cx.duration(v).map(|d| (d, k)),
    },
];

const STOP_FIELDS: &[Field<ProcessSpec>] = &[
    Field {
        key: "signal",
        read: |cx, spec, _, v| {
            if let Some(sig) = read_signal(cx, v) {
                spec.stop.signal = sig;
            }
        },
    },
    Field {
        key: "timeout",
        read: |cx, spec, _, v| spec.stop.timeout = cx.duration(v).unwrap_or(spec.stop.timeout),
    },
    Field {
        key: "command",
        read: |cx, spec, _, v| {
            // `${MAINPID}` is known only when the stop runs.
            let was = cx.vars.keep_mainpid(true);
            spec.stop.command = read_command(cx, v);
            cx.vars.keep_mainpid(was);
        },
    },
    Field {
        key: "stdin",
        read: |cx, spec, _, v| {
            let Some(s) = cx.string(v) else { return };
            if s.is_empty() {
                cx.error(
                    v.span(),
                    "stop.stdin is empty (write the message the program reads to stop, such as \"quit\\n\")",
                );
                return;
            }
            spec.stop.stdin = Some(s.to_string());
        },
    },
];

/// `stop.stdin` needs a stdin pipe: it gets one unless `stdin = "null"` says
/// otherwise; `stop.command` and `stop.stdin` are two ways, not one.
fn check_stop(cx: &mut Cx<'_>, d: &mut Draft, table: &toml::de::DeTable<'_>) {
    let Some(DeValue::Table(stop)) = table.get("stop").map(|v| v.get_ref()) else {
        return;
    };
    if let (Some(_), Some(stdin)) = (stop.get("command"), stop.get("stdin")) {
        cx.error(
            stdin.span(),
            format!(
                "stop.command and stop.stdin cannot both be set in {}: the stop begins one way",
                d.section
            ),
        );
    }
    if d.spec.stop.stdin.is_some() {
        if let Some(v) = table.get("stdin")
            && matches!(v.get_ref(), DeValue::String(s) if s == "null")
        {
            cx.error(
                v.span(),
                format!(
                    "stdin = \"null\" leaves nothing for stop.stdin to write to in {} (leave stdin out, or set it to \"pipe\")",
                    d.section
                ),
            );
        }
        d.spec.stdin_pipe = true;
    }
}

/// Every process and task of the file, checked one by one and as a graph.
pub(super) struct All {
    /// Every name in the file, valid or not (for "unknown name" checks).
    pub(super) declared: Vec<String>,
    /// The processes and tasks that are valid, in file order.
    pub(super) specs: Vec<ProcessSpec>,
    /// The triggers of the tasks.
    pub(super) tasks: Vec<TaskConf>,
    /// The copies of each process with `replicas`.
    pub(super) copies: super::replicas::Copies,
    /// The template of each process with `replicas`.
    pub(super) templates: super::replicas::Templates,
}

/// Reads the `[process]` and `[task]` tables; turns each task's `before`
/// into `completed` dependencies on it; checks the dependency graph.
pub(super) fn read_all(
    cx: &mut Cx<'_>,
    processes: Option<&Item<'_>>,
    tasks: Option<&Item<'_>>,
    log_dir: &std::path::Path,
) -> All {
    let mut entries = Vec::new();
    for (kind, item) in [(Kind::Process, processes), (Kind::Task, tasks)] {
        if let Some(table) = item.and_then(|i| cx.table(i)) {
            entries.extend(table.iter().map(|(k, v)| (kind, k, v)));
        }
    }
    // The maps are sorted by key; the file's order is the key's position.
    entries.sort_by_key(|(_, k, _)| k.span().start);
    let mut declared: Vec<String> = Vec::new();
    // The same names, to look up: a linear search per name made reading
    // 40,000 processes take seconds.
    let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
    let mut read: Vec<(Entry, Span, String)> = Vec::new();
    let mut paths = PathChecks::default();
    for (kind, key, value) in entries {
        let raw: &str = key.get_ref();
        if !seen.insert(raw) {
            cx.error(
                key.span(),
                format!("{raw:?} is already the name of a process or a task (they share one set of names)"),
            );
            continue;
        }
        declared.push(raw.to_string());
        if let Some(e) = read_entry(cx, kind, key, value, log_dir, &mut paths) {
            let word = if kind == Kind::Task {
                "task"
            } else {
                "process"
            };
            read.push((e, key.span(), section_name(&[word, raw])));
        }
    }
    let (mut read, copies, templates) = super::replicas::expand(cx, read, &mut declared);

    let mut edges = Vec::new();
    for (e, _, section) in &read {
        edges.extend(e.deps.iter().map(|d| Edge {
            from: e.spec.name.to_string(),
            to: d.name.clone(),
            condition: d.condition,
            span: d.span.clone(),
            origin: Origin::DependsOn(section.clone()),
        }));
    }
    let mut before = Vec::new();
    for (e, _, section) in &read {
        for (dependent, span) in e.task.iter().flat_map(|t| &t.before) {
            edges.push(Edge {
                from: dependent.clone(),
                to: e.spec.name.to_string(),
                condition: Condition::Completed,
                span: span.clone(),
                origin: Origin::Before(section.clone()),
            });
            before.push((e.spec.name.clone(), dependent.clone(), span.clone()));
        }
    }
    let index: std::collections::HashMap<String, usize> = read
        .iter()
        .enumerate()
        .map(|(i, (e, _, _))| (e.spec.name.to_string(), i))
        .collect();
    for (task, dependent, span) in before {
        let Some((e, _, section)) = index.get(&dependent).and_then(|&i| read.get_mut(i)) else {
            continue;
        };
        if e.spec.depends_on.iter().any(|d| d.name == task) {
            cx.error(
                span,
                format!("{dependent:?} already has {task:?} in depends_on in {section}: keep one of the two"),
            );
            continue;
        }
        e.spec.depends_on.push(Dependency {
            name: task,
            condition: Condition::Completed,
            restart: false,
        });
    }

    let mut specs = Vec::with_capacity(read.len());
    let mut spans = Vec::with_capacity(read.len());
    let mut tasks = Vec::new();
    for (e, span, _) in read {
        if let Some(t) = &e.task {
            tasks.push(TaskConf {
                name: e.spec.name.clone(),
                on_signal: t.on_signal.as_ref().map(|(s, _)| *s),
                every: t.every,
                cron: t.schedule(),
                shutdown: t.shutdown(),
                terminate: t.terminate(),
            });
        }
        specs.push(e.spec);
        spans.push(span);
    }
    deps::check_graph(cx, &specs, &edges, &declared);
    logs::check_shared_files(cx, &specs, &spans);
    All {
        declared,
        specs,
        tasks,
        copies,
        templates,
    }
}

/// Reads `[process.NAME]` or `[task.NAME]`; `None` if anything in it is
/// wrong (the errors are in `cx`).
pub(super) fn read_entry(
    cx: &mut Cx<'_>,
    kind: Kind,
    key: &Key<'_>,
    value: &Item<'_>,
    log_dir: &std::path::Path,
    checks: &mut PathChecks,
) -> Option<Entry> {
    let errors_before = cx.error_count();
    let raw_name: &str = key.get_ref();
    let word = match kind {
        Kind::Process => "process",
        Kind::Task => "task",
    };
    let section = section_name(&[word, raw_name]);
    let DeValue::Table(table) = value.get_ref() else {
        cx.error(
            value.span(),
            format!(
                "expected a table for {word} {raw_name:?} (write a {section} section), found {}",
                value.get_ref().type_str()
            ),
        );
        return None;
    };
    let name = Name::new(raw_name)
        .map_err(|e| cx.error(key.span(), format!("invalid {word} name: {e}")))
        .ok();
    // The table is read even under a bad name so that all its errors show at once.
    let placeholder = name.clone().or_else(|| Name::new("invalid").ok())?;
    let mut draft = Draft {
        backoff: BackoffDraft {
            section: format!("{}.backoff]", section.trim_end_matches(']')),
            ..BackoffDraft::default()
        },
        logs: LogsDraft::new(format!("{}.logs]", section.trim_end_matches(']'))),
        section,
        spec: ProcessSpec::new(placeholder, Vec::new()),
        has_command: false,
        deps: Vec::new(),
        watchdog_key: None,
        start_timeout_key: None,
        restart_given: false,
        task: TaskDraft::default(),
        replicas: None,
        watch: Default::default(),
    };
    let section = draft.section.clone();
    super::expand::enter_process(cx, table);
    match kind {
        Kind::Process => {
            let fields = super::chain(PROCESS_FIELDS, super::platform::PROCESS_FIELDS);
            let fields = super::chain(&fields, super::replicas::FIELDS);
            let fields = super::chain(&fields, super::watch::FIELDS);
            let aliases = [PROCESS_ALIASES, super::watch::ALIASES].concat();
            walk(cx, &section, table, &fields, &aliases, &mut draft);
            super::watch::finish(cx, &mut draft);
            // One process whose end is the end of everything is not
            // restarted unless its table says so.
            if draft.spec.exit_with && !draft.restart_given {
                draft.spec.restart = RestartPolicy::Never;
            }
        }
        Kind::Task => {
            let fields = task::fields(PROCESS_FIELDS);
            walk(cx, &section, table, &fields, task::ALIASES, &mut draft);
        }
    }
    super::expand::leave_process(cx);
    check_stop(cx, &mut draft, table);
    if !draft.has_command {
        cx.error(
            value.span(),
            format!("missing required key \"command\" in {}", draft.section),
        );
    }
    resolve_backoff(cx, &mut draft.backoff, &mut draft.spec);
    check_readiness_keys(cx, &draft);
    let task = match kind {
        Kind::Process => None,
        Kind::Task => {
            task::finish(cx, &mut draft);
            Some(std::mem::take(&mut draft.task))
        }
    };
    let placeholder = draft.spec.name.clone();
    // Template text in a table with `replicas`: the directory too.
    let log_dir = match draft.replicas {
        Some(_) => super::expand::escape_path(log_dir),
        None => log_dir.to_path_buf(),
    };
    draft.spec.logs = logs::resolve(cx, draft.logs, &placeholder, &log_dir, checks, key.span());
    let deps: Vec<_> = draft
        .deps
        .iter()
        .filter_map(|d| d.to_dependency(cx))
        .collect();
    draft.spec.depends_on = deps;
    if cx.error_count() > errors_before {
        return None;
    }
    // Everything above checks each key where it is written; this catches what
    // only the whole spec can tell, at the table.
    let checked = match draft.replicas {
        // Template text: checked as copy 0's.
        Some(_) => std::borrow::Cow::Owned(super::replicas::substitute(&draft.spec, "0")),
        None => std::borrow::Cow::Borrowed(&draft.spec),
    };
    if let Err(e) = checked.validate() {
        cx.error(value.span(), format!("{}: {e}", draft.section));
        return None;
    }
    name.map(|_| Entry {
        spec: draft.spec,
        deps: draft.deps,
        task,
        replicas: draft.replicas,
    })
}

/// `watchdog` needs `notify`; `start_timeout` needs something that keeps a
/// process `starting` (without one it would never fire).
fn check_readiness_keys(cx: &mut Cx<'_>, d: &Draft) {
    if let Some(k) = &d.watchdog_key
        && !d.spec.notify
    {
        cx.error(
            k.clone(),
            crate::check::watchdog_needs_notify(&format!(" in {}", d.section)),
        );
    }
    if let Some(k) = &d.start_timeout_key
        && !crate::check::start_timeout_can_fire(&d.spec)
    {
        cx.error(
            k.clone(),
            crate::check::start_timeout_never_fires(&format!(" in {}", d.section)),
        );
    }
}

/// A duration of more than zero.
pub(super) fn positive_duration(cx: &mut Cx<'_>, v: &Item<'_>, key: &str) -> Option<Duration> {
    let d = cx.duration(v)?;
    if d.is_zero() {
        cx.error(v.span(), format!("{key} must be more than 0"));
        return None;
    }
    Some(d)
}

fn resolve_backoff(cx: &mut Cx<'_>, b: &mut BackoffDraft, spec: &mut ProcessSpec) {
    if let Some(min_uptime) = b.min_uptime {
        spec.backoff.min_uptime = min_uptime;
    }
    spec.backoff.give_up_after = b.give_up_after;
    if let Some(r) = b.reset_on_ready {
        spec.backoff.reset_on_ready = r;
    }
    if let Some(f) = b.floor {
        spec.backoff.floor = f;
    }
    if b.schedule.is_some() {
        for (key, found) in [("initial", &b.initial), ("max", &b.max)] {
            if let Some((_, span)) = found {
                cx.error(
                    span.clone(),
                    format!(
                        "{key:?} cannot be combined with \"schedule\" in {} (use initial/max for doubling, or schedule/reset_after)",
                        b.section
                    ),
                );
            }
        }
        if let Some(steps) = b.steps.take() {
            spec.backoff.mode = BackoffMode::Schedule {
                steps,
                reset_after: b
                    .reset_after
                    .as_ref()
                    .map_or(DEFAULT_RESET_AFTER, |(d, _)| *d),
            };
        }
        return;
    }
    if let Some((_, span)) = &b.reset_after {
        cx.error(
            span.clone(),
            format!(
                "\"reset_after\" applies only with \"schedule\" in {}",
                b.section
            ),
        );
    }
    let BackoffMode::Doubling { initial, max } = BackoffMode::default() else {
        return;
    };
    let (initial, max) = (
        b.initial.as_ref().map_or(initial, |(d, _)| *d),
        b.max.as_ref().map_or(max, |(d, _)| *d),
    );
    if initial > max
        && let Some(span) = b
            .initial
            .as_ref()
            .or(b.max.as_ref())
            .map(|(_, s)| s.clone())
    {
        cx.error(
            span,
            format!(
                "backoff initial ({}) is larger than max ({})",
                fmt_duration(initial),
                fmt_duration(max)
            ),
        );
    }
    spec.backoff.mode = BackoffMode::Doubling { initial, max };
}

fn read_command(cx: &mut Cx<'_>, v: &Item<'_>) -> Option<Vec<String>> {
    let argv = match v.get_ref() {
        DeValue::String(s) => ProcessSpec::split_command(s)
            .map_err(|e| cx.error(v.span(), e.to_string()))
            .ok()?,
        DeValue::Array(_) => cx.string_list(v)?,
        _ => {
            cx.wrong_type(v, "an array of strings or a string");
            return None;
        }
    };
    match argv.first() {
        None => cx.error(v.span(), "command is empty"),
        Some(program) if program.is_empty() => cx.error(
            v.span(),
            "the program name (the first element of command) is empty",
        ),
        Some(_) => return cx.expand_argv(v, argv, "command"),
    }
    None
}

/// A working directory: relative to the config's directory, and it must exist.
fn read_dir(cx: &mut Cx<'_>, v: &Item<'_>) -> Option<std::path::PathBuf> {
    let s = cx.expanded(v, "cwd")?;
    if s.is_empty() {
        cx.error(
            v.span(),
            "cwd is empty (leave it out to use the daemon's directory)",
        );
        return None;
    }
    if cx.vars.keeps_replica() {
        // Template text: each copy's own directory is checked when the
        // copies are made.
        return Some(super::expand::escape_path(&cx.dir).join(&s));
    }
    let path = cx.dir.join(&s);
    match crate::check::working_dir(&path) {
        Ok(()) => Some(path),
        Err(why) => {
            cx.error(v.span(), why);
            None
        }
    }
}

#[derive(Clone, Copy)]
enum Account {
    User,
    Group,
}

/// A user or group that exists here: a name is looked up; a numeric id is
/// taken as is (containers often run ids with no passwd entry).
fn read_account(cx: &mut Cx<'_>, v: &Item<'_>, kind: Account) -> Option<String> {
    let what = match kind {
        Account::User => "user",
        Account::Group => "group",
    };
    let s = cx.id_or_name(v, what)?;
    let found = match kind {
        Account::User => crate::check::user_exists(&s),
        Account::Group => crate::check::group_exists(&s),
    };
    match found {
        Ok(()) => Some(s),
        Err(why) => {
            cx.error(v.span(), why);
            None
        }
    }
}

pub(super) fn read_signal(cx: &mut Cx<'_>, v: &Item<'_>) -> Option<Signal> {
    match v.get_ref() {
        DeValue::String(s) => match s.parse::<Signal>() {
            Ok(sig) => Some(sig),
            Err(e) => {
                let names: Vec<String> = (1..32)
                    .filter_map(Signal::from_number)
                    .map(Signal::name)
                    .collect();
                let upper = s.trim().to_ascii_uppercase();
                let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
                let hint = did_you_mean(bare, names.iter().map(String::as_str));
                cx.error(v.span(), format!("{e}{hint}"));
                None
            }
        },
        DeValue::Integer(_) => {
            let n = cx.int::<i32>(v, "a signal number")?;
            let sig = Signal::from_number(n);
            if sig.is_none() {
                cx.error(v.span(), format!("unknown signal number {n}"));
            }
            sig
        }
        _ => {
            cx.wrong_type(v, "a signal name (such as \"TERM\") or number");
            None
        }
    }
}
