//! `${VAR}` and `${VAR:-default}` in tend.toml, with `$$` for a literal `$`.
//!
//! Expanded: commands (a process's, a task's, an exec check's and
//! `stop.command`), `env` values, `cwd`, `watch` and `watch_ignore`
//! patterns, the addresses of http and tcp checks, the redis check's
//! `addr`, `password` and `username`, every path (log files, `log_dir`,
//! `env_file`, the socket, the TLS files of `[http]`), `[http]`'s `listen`
//! and `health`, the strings of a `[[peer]]` but its name (`url`, `ca`,
//! `pin`, `cert`, `key`, `token`, `token_file`), and `[telemetry]`'s
//! `otlp_endpoint` and `headers` values. What is validated is the expanded
//! value. Nothing else: names, signals, durations, keywords, `cron`,
//! `cgroup`, `[access]`, and `[telemetry]`'s resource are taken as written.
//!
//! The client's hosts file (hosts.rs) expands the same keys of a
//! `[host.NAME]`, and the words of `token_command` and `password_command`,
//! from the environment alone ([`begin_client`]).
//!
//! A variable is what the process itself will find in its environment, in
//! this order, the later winning: the environment tend reads the file in
//! (the daemon's, or `tend check`'s), `[daemon] env_file`, `[daemon] env`,
//! the process's own `env_file`, its own `env` (as systemd's `Environment=`
//! is seen by its `ExecStart=`). An `env` value sees everything below `env`,
//! not the other `env` keys (`[daemon] env` and `[daemon] env_file`'s path
//! see the environment alone); a process's `env_file` path sees the daemon's
//! variables only; the daemon's other keys (`[http]`, `[[peer]]` and
//! `[telemetry]` too) see its environment, `[daemon] env_file` and `[daemon]
//! env`. What an env_file holds is taken literally.
//!
//! `$` before anything but `{` and `$` (`$HOME`, `$1`, `$@`, `$(cmd)`) is
//! left as written, for the shell that runs the command. An unknown variable
//! without a default is an error at the variable.
//!
//! In a table with `replicas`, `${TEND_REPLICA}` is each copy's index, known
//! only when the copies are made: the table's values are read as *template
//! text* ([`expand_keeping`]), which [`substitute_replica`] finishes for each
//! copy (see replicas.rs).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use toml::de::{DeTable, DeValue};

use super::replicas::REPLICA_VAR;
use super::value::Item;
use crate::diag::Cx;

/// The variables a value may use, by layer.
#[derive(Debug, Default)]
pub(crate) struct Vars {
    /// The environment the file is read in.
    os: Arc<BTreeMap<String, String>>,
    /// `[daemon] env_file`.
    daemon: Arc<BTreeMap<String, String>>,
    /// The process's `env_file`.
    file: BTreeMap<String, String>,
    /// The process's `env`.
    env: BTreeMap<String, String>,
    /// Which layers the value being read sees.
    depth: Depth,
    /// Off in the supervisord.conf reader, which has `%(ENV_X)s` instead.
    on: bool,
    /// The file has env_files to name in messages (tend.toml, not the
    /// client's hosts file).
    files: bool,
    /// `${MAINPID}` stays as written (in `stop.command`, for the run).
    mainpid: bool,
    /// `${TEND_REPLICA}` stays as written (in a table with `replicas`, for
    /// each copy: see [`substitute_replica`]).
    replica: bool,
}

/// How many layers a value sees, from the bottom.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Depth {
    /// The environment alone (`[daemon] env_file`'s path).
    Os,
    /// And `[daemon] env_file` (the daemon's keys, a process's `env_file` path).
    Daemon,
    /// And the process's `env_file` (its `env` values).
    File,
    /// And the process's `env` (everything else in a process).
    #[default]
    All,
}

impl Vars {
    /// Sets whether `${MAINPID}` stays as written, returning the old setting.
    pub(crate) fn keep_mainpid(&mut self, keep: bool) -> bool {
        std::mem::replace(&mut self.mainpid, keep)
    }

    /// Sets whether `${TEND_REPLICA}` stays as written, returning the old setting.
    pub(crate) fn keep_replica(&mut self, keep: bool) -> bool {
        std::mem::replace(&mut self.replica, keep)
    }

    /// Whether `${TEND_REPLICA}` stays as written.
    pub(crate) fn keeps_replica(&self) -> bool {
        self.replica
    }

    /// Looks `name` up in the layers of the current depth, top first.
    fn get(&self, name: &str) -> Option<&str> {
        if self.mainpid && name == "MAINPID" {
            return Some("${MAINPID}");
        }
        let layers: [(&BTreeMap<String, String>, Depth); 4] = [
            (&self.env, Depth::All),
            (&self.file, Depth::File),
            (&self.daemon, Depth::Daemon),
            (&self.os, Depth::Os),
        ];
        layers
            .into_iter()
            .filter(|(_, d)| *d <= self.depth)
            .find_map(|(m, _)| m.get(name))
            .map(String::as_str)
    }
}

/// What is wrong with a `${...}`, and at which byte of the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Error {
    /// `${NAME}` with `NAME` unset and no default.
    Unknown { name: String, at: usize },
    /// `${` without its `}`.
    Unclosed { at: usize },
    /// `${...}` whose inside is not `NAME` or `NAME:-default`.
    Invalid { inner: String, at: usize },
}

/// The copy's index as a table with `replicas` keeps it until the copies are
/// made.
pub(crate) const REPLICA_MARK: &str = "${TEND_REPLICA}";

/// Expands `text` with `lookup`.
pub(crate) fn expand<'t>(
    text: &'t str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Cow<'t, str>, Error> {
    expand_keeping(text, lookup, false)
}

/// [`expand`]; with `replica`, into the text of a template that
/// [`substitute_replica`] finishes for each copy: `${TEND_REPLICA}` stays as
/// written, and every other `$` of the result is written `$$` (`$$` stays
/// `$$`, a variable's value has its `$` doubled), so that nothing but the
/// variable itself is taken for the copy's index.
fn expand_keeping<'t>(
    text: &'t str,
    lookup: &dyn Fn(&str) -> Option<String>,
    replica: bool,
) -> Result<Cow<'t, str>, Error> {
    if !text.contains('$') {
        return Ok(Cow::Borrowed(text));
    }
    let mut out = String::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut plain = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'$') if replica => {
                out.push_str(&text[plain..i + 2]);
                i += 2;
                plain = i;
            }
            Some(b'$') => {
                out.push_str(&text[plain..=i]);
                i += 2;
                plain = i;
            }
            Some(b'{') => {
                out.push_str(&text[plain..i]);
                let close = closing_brace(text, i + 2).ok_or(Error::Unclosed { at: i })?;
                let inner = &text[i + 2..close];
                let (name, default) = match inner.split_once(":-") {
                    Some((n, d)) => (n, Some((d, i + 2 + n.len() + 2))),
                    None => (inner, None),
                };
                if !is_name(name) {
                    return Err(Error::Invalid {
                        inner: inner.to_string(),
                        at: i,
                    });
                }
                if replica && name == REPLICA_VAR {
                    out.push_str(REPLICA_MARK);
                    i = close + 1;
                    plain = i;
                    continue;
                }
                match (
                    lookup(name).filter(|v| !v.is_empty() || default.is_none()),
                    default,
                ) {
                    (Some(v), _) if replica => out.push_str(&escape(&v)),
                    (Some(v), _) => out.push_str(&v),
                    (None, Some((d, start))) => {
                        let d = expand_keeping(d, lookup, replica).map_err(|e| e.shifted(start))?;
                        out.push_str(&d);
                    }
                    (None, None) => {
                        return Err(Error::Unknown {
                            name: name.to_string(),
                            at: i,
                        });
                    }
                }
                i = close + 1;
                plain = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&text[plain..]);
    Ok(Cow::Owned(out))
}

impl Error {
    fn shifted(self, by: usize) -> Self {
        match self {
            Error::Unknown { name, at } => Error::Unknown { name, at: at + by },
            Error::Unclosed { at } => Error::Unclosed { at: at + by },
            Error::Invalid { inner, at } => Error::Invalid { inner, at: at + by },
        }
    }

    fn at(&self) -> usize {
        match self {
            Error::Unknown { at, .. } | Error::Unclosed { at } | Error::Invalid { at, .. } => *at,
        }
    }

    /// The sentence, naming `key`; `files` when an env_file could set it.
    fn message(&self, key: &str, files: bool) -> String {
        match self {
            Error::Unknown { name, .. } if name == REPLICA_VAR => format!(
                "unknown variable ${{{name}}} in {key}: it is a copy's index, known in a [process.NAME] table with replicas (not in its env_file path, read once for all copies); set {name} in the environment, give a default (${{{name}:-default}}), or write $$ for a literal $"
            ),
            Error::Unknown { name, .. } => format!(
                "unknown variable ${{{name}}} in {key}: set {name} in the environment{}, give a default (${{{name}:-default}}), or write $$ for a literal $",
                if files { " or an env_file" } else { "" }
            ),
            Error::Unclosed { .. } => {
                format!("unclosed \"${{\" in {key} (write $$ for a literal $)")
            }
            Error::Invalid { inner, .. } => format!(
                "invalid variable \"${{{inner}}}\" in {key}: expected ${{NAME}} or ${{NAME:-default}} (write $$ for a literal $)"
            ),
        }
    }
}

/// The `}` that closes a `${` whose inside starts at `from`, past nested `${...}`.
fn closing_brace(text: &str, from: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'$' if bytes.get(i + 1) == Some(&b'$') => i += 1,
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

fn is_name(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Cx<'_> {
    /// `s`, the string at `v`, expanded for key `key`; `None` after an error
    /// (at the variable when it can be found in the text, else at the value).
    pub(super) fn expand(&mut self, v: &Item<'_>, s: &str, key: &str) -> Option<String> {
        if !self.vars.on || !s.contains('$') {
            return Some(s.to_string());
        }
        let vars = &self.vars;
        let lookup = |n: &str| vars.get(n).map(str::to_string);
        match expand_keeping(s, &lookup, vars.replica) {
            Ok(out) => Some(out.into_owned()),
            Err(e) => {
                let files = vars.files;
                // The raw text equals the value for a plain string: point
                // into it; else find the variable as written.
                let raw = self.slice(v.span());
                let inside = &s[e.at()..];
                let probe = inside.get(..inside.find('}').map_or(inside.len(), |i| i + 1));
                let offset = probe.and_then(|p| raw.find(p)).map_or(0, |o| o);
                self.error(v.span().start + offset..v.span().end, e.message(key, files));
                None
            }
        }
    }

    /// [`Cx::string`], expanded.
    pub(super) fn expanded(&mut self, v: &Item<'_>, key: &str) -> Option<String> {
        let s = self.string(v)?.to_string();
        self.expand(v, &s, key)
    }

    /// A command's words, each expanded after the split (so a value with
    /// spaces stays one word). `v` is the command as written: an array, whose
    /// elements are pointed at, or a string.
    pub(super) fn expand_argv(
        &mut self,
        v: &Item<'_>,
        argv: Vec<String>,
        key: &str,
    ) -> Option<Vec<String>> {
        let items: Vec<&Item<'_>> = match v.get_ref() {
            DeValue::Array(a) if a.len() == argv.len() => a.iter().collect(),
            _ => vec![v; argv.len()],
        };
        let mut out = Vec::with_capacity(argv.len());
        let mut ok = true;
        for (word, item) in argv.iter().zip(items) {
            match self.expand(item, word, key) {
                Some(w) => out.push(w),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// Reads the next values at `depth` (see [`Depth`]), returning the old one.
    pub(super) fn expand_depth(&mut self, depth: Depth) -> Depth {
        std::mem::replace(&mut self.vars.depth, depth)
    }
}

/// Turns expansion on for the native reader: `os` is the environment the
/// file is read in; `daemon` the `[daemon]` table, whose `env_file` is read
/// here quietly (its errors are reported where the key is read).
pub(super) fn begin(cx: &mut Cx<'_>, os: BTreeMap<String, String>, daemon: Option<&DeTable<'_>>) {
    cx.vars = Vars {
        os: Arc::new(os),
        on: true,
        files: true,
        depth: Depth::Os,
        ..Vars::default()
    };
    let mut vars = daemon
        .and_then(|t| t.get("env_file"))
        .and_then(|v| quiet_env_file(cx, v))
        .unwrap_or_default();
    if let Some(DeValue::Table(t)) = daemon.and_then(|t| t.get("env")).map(|v| v.get_ref()) {
        vars.extend(quiet_env_table(cx, t));
    }
    cx.vars.daemon = Arc::new(vars);
    cx.vars.depth = Depth::Daemon;
}

/// Turns expansion on for the client's hosts file: its variables are the
/// environment of the `tend` command that reads it, and nothing else.
pub(super) fn begin_client(cx: &mut Cx<'_>, os: BTreeMap<String, String>) {
    cx.vars = Vars {
        os: Arc::new(os),
        on: true,
        depth: Depth::Os,
        ..Vars::default()
    };
}

/// The strings of an `env` table, expanded at the current depth, reporting
/// nothing (where a value does not expand, it is taken as written).
fn quiet_env_table(cx: &Cx<'_>, t: &DeTable<'_>) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for (k, v) in t.iter() {
        if let DeValue::String(s) = v.get_ref() {
            let vars = &cx.vars;
            let lookup = |n: &str| vars.get(n).map(str::to_string);
            let value = expand_keeping(s, &lookup, vars.replica)
                .map_or_else(|_| s.to_string(), Cow::into_owned);
            env.insert(k.get_ref().to_string(), value);
        }
    }
    env
}

/// An `env` table of `section` (`[daemon] env`): its variables, each value
/// expanded; `None` after an error, reported at the key or value.
pub(super) fn read_env_table(
    cx: &mut Cx<'_>,
    v: &Item<'_>,
    section: &str,
) -> Option<BTreeMap<String, String>> {
    let table = cx.table(v)?;
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (key, value) in table.iter() {
        let name: &str = key.get_ref();
        if name.is_empty() || name.contains(['=', '\0']) {
            cx.error(
                key.span(),
                format!("environment variable name {name:?} in {section} is empty or contains '=' or NUL"),
            );
            ok = false;
            continue;
        }
        let Some(s) = cx.string(value).map(str::to_string) else {
            ok = false;
            continue;
        };
        if s.contains('\0') {
            cx.error(
                value.span(),
                format!("the value of {name} contains a NUL byte"),
            );
            ok = false;
            continue;
        }
        match cx.expand(value, &s, &format!("env.{name}")) {
            Some(s) => {
                out.insert(name.to_string(), s);
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

/// Before a process's table is read: its `env_file` and `env`, read quietly
/// (their errors are reported where the keys are read), become the top two
/// layers for its other keys.
pub(super) fn enter_process(cx: &mut Cx<'_>, table: &DeTable<'_>) {
    // Known for the whole table, wherever `replicas` is written in it.
    cx.vars.replica = table.contains_key("replicas");
    cx.vars.depth = Depth::Daemon;
    let replica = cx.vars.keep_replica(false);
    let file = table
        .get("env_file")
        .and_then(|v| quiet_env_file(cx, v))
        .unwrap_or_default();
    cx.vars.file = file;
    cx.vars.replica = replica;
    cx.vars.depth = Depth::File;
    let env = match table.get("env").map(|v| v.get_ref()) {
        Some(DeValue::Table(t)) => quiet_env_table(cx, t),
        _ => BTreeMap::new(),
    };
    cx.vars.env = env;
    cx.vars.depth = Depth::All;
}

/// After a process's table: back to the daemon's variables.
pub(super) fn leave_process(cx: &mut Cx<'_>) {
    cx.vars.replica = false;
    cx.vars.file.clear();
    cx.vars.env.clear();
    cx.vars.depth = Depth::Daemon;
}

/// An `env_file`'s variables, or `None` on any problem, reporting nothing.
fn quiet_env_file(cx: &Cx<'_>, v: &Item<'_>) -> Option<BTreeMap<String, String>> {
    let DeValue::String(name) = v.get_ref() else {
        return None;
    };
    let vars = &cx.vars;
    let lookup = |n: &str| vars.get(n).map(str::to_string);
    let name = expand(name, &lookup).ok()?;
    if name.is_empty() {
        return None;
    }
    let text = std::fs::read_to_string(cx.dir.join(name.as_ref())).ok()?;
    super::envfile::parse(&text).ok()
}

/// `s` as template text: its `$` written `$$`.
pub(crate) fn escape(s: &str) -> Cow<'_, str> {
    if s.contains('$') {
        Cow::Owned(s.replace('$', "$$"))
    } else {
        Cow::Borrowed(s)
    }
}

/// `p` as template text (a directory that other template text is joined to).
pub(crate) fn escape_path(p: &std::path::Path) -> std::path::PathBuf {
    match p.to_str() {
        Some(s) if s.contains('$') => std::path::PathBuf::from(s.replace('$', "$$")),
        _ => p.to_path_buf(),
    }
}

/// The text of copy `index` from template text (see [`expand_keeping`]):
/// `${TEND_REPLICA}` becomes `index`, `$$` becomes `$`, anything else stays.
pub(crate) fn substitute_replica(text: &str, index: &str) -> String {
    if !text.contains('$') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some(after) = tail.strip_prefix(REPLICA_MARK) {
            out.push_str(index);
            rest = after;
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::{Error, expand, expand_keeping, substitute_replica};

    fn run(s: &str) -> Result<String, Error> {
        let lookup = |n: &str| match n {
            "A" => Some("alpha".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        expand(s, &lookup).map(|c| c.into_owned())
    }

    #[test]
    fn expands_names_defaults_and_dollars() {
        assert_eq!(run("x ${A} y").unwrap(), "x alpha y");
        assert_eq!(run("${B:-beta}").unwrap(), "beta");
        assert_eq!(run("${A:-beta}").unwrap(), "alpha");
        assert_eq!(run("${EMPTY:-d}").unwrap(), "d");
        assert_eq!(run("${EMPTY}").unwrap(), "");
        assert_eq!(run("${B:-${A}}").unwrap(), "alpha");
        assert_eq!(run("${B:-}").unwrap(), "");
        assert_eq!(run("echo $$ $$$$").unwrap(), "echo $ $$");
        assert_eq!(run("$$${A}").unwrap(), "$alpha");
    }

    #[test]
    fn a_replicas_template_keeps_the_index_and_its_dollars() {
        let lookup = |n: &str| (n == "D").then(|| "a$b".to_string());
        let keep = |s: &str| {
            expand_keeping(s, &lookup, true)
                .map(|c| c.into_owned())
                .unwrap_or_else(|e| panic!("{s}: {e:?}"))
        };
        for (text, template, copy) in [
            ("p${TEND_REPLICA}", "p${TEND_REPLICA}", "p3"),
            ("${TEND_REPLICA:-x}", "${TEND_REPLICA}", "3"),
            ("${NOPE:-${TEND_REPLICA}}", "${TEND_REPLICA}", "3"),
            ("$${TEND_REPLICA}", "$${TEND_REPLICA}", "${TEND_REPLICA}"),
            ("$$${TEND_REPLICA}", "$$${TEND_REPLICA}", "$3"),
            ("${D}${TEND_REPLICA}", "a$$b${TEND_REPLICA}", "a$b3"),
            ("$HOME $1 5$", "$HOME $1 5$", "$HOME $1 5$"),
        ] {
            assert_eq!(keep(text), template, "{text}");
            assert_eq!(substitute_replica(template, "3"), copy, "{text}");
        }
    }

    #[test]
    fn leaves_a_bare_dollar_for_the_shell() {
        for s in ["$HOME", "$1 $@", "$(date)", "$((1+2))", "cost: 5$", "$"] {
            assert_eq!(run(s).unwrap(), s);
        }
    }

    #[test]
    fn names_what_is_wrong() {
        assert_eq!(
            run("a ${NOPE} b").unwrap_err(),
            Error::Unknown {
                name: "NOPE".into(),
                at: 2
            }
        );
        assert_eq!(run("x ${A").unwrap_err(), Error::Unclosed { at: 2 });
        assert!(matches!(run("${1x}").unwrap_err(), Error::Invalid { .. }));
        assert!(matches!(run("${A-x}").unwrap_err(), Error::Invalid { .. }));
        assert_eq!(
            run("${B:-${C}}").unwrap_err(),
            Error::Unknown {
                name: "C".into(),
                at: 5
            }
        );
    }
}
