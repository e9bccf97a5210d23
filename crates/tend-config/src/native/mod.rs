//! The native TOML config file (`tend.toml`): loading, validation and
//! precise diagnostics. The format is documented in `docs/config.md`.
//!
//! The file is parsed with spans kept for every key and value
//! ([`toml::de::DeTable`]) and walked by hand rather than deserialized with
//! serde, so that every problem, not just the first, is reported at its exact
//! `FILE:LINE:COL`. Each table is described by a list of `value::Field`s:
//! adding a key is adding an entry there.

mod access;
mod deps;
mod envfile;
pub(crate) mod expand;
pub mod hosts;
mod http;
mod logs;
mod platform;
mod process;
mod replicas;
pub mod save;
mod task;
mod telemetry;
mod value;
mod watch;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_deps;
#[cfg(test)]
mod tests_expand;
#[cfg(test)]
mod tests_platform;
#[cfg(test)]
mod tests_replica;
#[cfg(test)]
mod tests_sched;
#[cfg(test)]
mod tests_stop;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tend_core::{Name, ProcessSpec};
use toml::de::{DeTable, DeValue};

use crate::diag::{Cx, Span, diagnostic_at, did_you_mean, suggest};
use crate::{
    Config, ConfigErrors, DEFAULT_IDENTIFIER, DaemonConfig, Declared, Format, LogFormat, LogLevel,
    OnHup,
};
use value::{Field, Item, Key, section_name, walk};

pub use logs::check_file as check_log_file;
pub use replicas::{MAX_REPLICAS, REPLICA_VAR, replica_copy, replica_from_template};

/// Socket file name used when `[daemon] socket` is not set.
pub const DEFAULT_SOCKET: &str = "tend.sock";
/// Socket mode used when `[daemon] socket_mode` is not set.
pub const DEFAULT_SOCKET_MODE: u32 = 0o600;
/// Log directory used when `[daemon] log_dir` is not set, beside the config file.
pub const DEFAULT_LOG_DIR: &str = "logs";

/// Reads and validates the config file at `path`.
///
/// A file that cannot be read (missing, not a regular file, larger than
/// [`crate::read::MAX_FILE_BYTES`]) is one diagnostic at 1:1.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    match crate::read::read_text(path, &mut crate::read::Budget::new()) {
        Ok(text) => parse(path, &text),
        Err(e) => Err(ConfigErrors::single(
            path,
            format!("cannot read config file {}: {e}", path.display()),
        )),
    }
}

/// Same as [`load`], from text (for tests); `path` is used for messages and relative paths.
/// `${VAR}` is expanded from this program's environment.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
    let env = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    parse_with_env(path, text, env)
}

/// Same as [`parse`], expanding `${VAR}` from `env` instead of this program's
/// environment (see `docs/config.md`, "Variables").
pub fn parse_with_env(
    path: &Path,
    text: &str,
    env: BTreeMap<String, String>,
) -> Result<Config, ConfigErrors> {
    let abs = std::path::absolute(path).map_err(|e| {
        ConfigErrors::single(
            path,
            format!("cannot resolve the path of {}: {e}", path.display()),
        )
    })?;
    let dir = abs
        .parent()
        .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);

    let (root, syntax_errors) = DeTable::parse_recoverable(text);
    // Recovery can report follow-on errors; the first one is the real cause.
    if let Some(e) = syntax_errors
        .iter()
        .min_by_key(|e| e.span().map_or(0, |s| s.start))
    {
        let span = e.span().unwrap_or(0..0);
        let mut message = e.message().to_string();
        if message == "duplicate key" {
            message = format!("duplicate key {:?}", text.get(span.clone()).unwrap_or(""));
        }
        return Err(ConfigErrors {
            errors: vec![diagnostic_at(path, text, span.start, message)],
        });
    }

    let mut cx = Cx::new(path, text, dir.clone());
    let daemon_table = match root.get_ref().get("daemon").map(|v| v.get_ref()) {
        Some(DeValue::Table(t)) => Some(t),
        _ => None,
    };
    expand::begin(&mut cx, env, daemon_table);
    let mut daemon = DaemonConfig {
        socket: crate::default_socket(&abs),
        socket_mode: DEFAULT_SOCKET_MODE,
        log_dir: dir.join(DEFAULT_LOG_DIR),
        log_format: LogFormat::Text,
        log_file: None,
        socket_owner: None,
        socket_group: None,
        unix_auth: None,
        inet: None,
        identifier: DEFAULT_IDENTIFIER.to_string(),
        minfds: None,
        echo_log: false,
        echo_output: true,
        daemonize: false,
        directory: None,
        user: None,
        start_notes: Default::default(),
        pidfile: None,
        log_level: None,
        log_max_size: 0,
        log_backups: 0,
        umask: None,
        minprocs: None,
        on_hup: OnHup::Reload,
        event_listeners: false,
        platform: crate::PlatformConfig::default(),
        web_root: crate::WebRoot::Dashboard,
        http: crate::HttpConfig::default(),
        peers: Vec::new(),
        env: BTreeMap::new(),
        timezone: None,
    };
    let mut processes = None;
    let mut tasks = None;
    let mut access = crate::AccessConfig::default();
    let mut groups = None;
    let mut telemetry = crate::TelemetryConfig::default();
    for (key, value) in root.get_ref().iter() {
        match key.get_ref().as_ref() {
            "daemon" => {
                if let Some(table) = cx.table(value) {
                    let fields = chain(DAEMON_FIELDS, platform::DAEMON_FIELDS);
                    walk(&mut cx, "[daemon]", table, &fields, &[], &mut daemon);
                }
            }
            "http" => {
                if let Some(table) = cx.table(value) {
                    let (http, health) = http::read(&mut cx, table, key.span());
                    daemon.http = http;
                    daemon.platform.health = health;
                }
            }
            "peer" => daemon.peers = hosts::read_peers(&mut cx, value),
            "process" => processes = Some(value),
            "task" => tasks = Some(value),
            "group" => groups = Some(value),
            "access" => access = access::read(&mut cx, value),
            "telemetry" => telemetry = telemetry::read(&mut cx, value),
            other => unknown_section(&mut cx, key, value, other),
        }
    }

    let process::All {
        declared,
        mut specs,
        tasks,
        copies,
        mut templates,
    } = process::read_all(&mut cx, processes, tasks, &daemon.log_dir);
    let tasks = task::in_daemon_zone(tasks, daemon.timezone.as_ref());
    if let Some(item) = groups {
        read_groups(&mut cx, item, &declared, &copies, &mut specs);
    }
    // `[daemon] env_file`: beneath every process's own variables.
    for spec in &mut specs {
        envfile::under(&mut spec.env, &daemon.env);
    }
    // The templates as their copies are now: in the same group, over the
    // same daemon's variables (as template text).
    let daemon_env: BTreeMap<String, String> = daemon
        .env
        .iter()
        .map(|(k, v)| (k.clone(), expand::escape(v).into_owned()))
        .collect();
    let group_of: std::collections::HashMap<&str, &Name> =
        specs.iter().map(|s| (s.name.as_str(), &s.group)).collect();
    for (base, t) in &mut templates {
        if let Some(group) = copies
            .get(base)
            .and_then(|names| names.first())
            .and_then(|first| group_of.get(first.as_str()))
        {
            t.group = (*group).clone();
        }
        envfile::under(&mut t.env, &daemon_env);
    }

    let errors = cx.into_diagnostics();
    if !errors.is_empty() {
        return Err(ConfigErrors { errors });
    }
    let processes: Vec<Arc<ProcessSpec>> = specs.into_iter().map(Arc::new).collect();
    let mut declared = Declared::from_specs(processes.iter().cloned());
    replicas::attach_templates(&mut declared, &copies, templates);
    Ok(Config {
        path: abs,
        daemon,
        declared,
        processes,
        eventlisteners: Vec::new(),
        format: Format::Native,
        tasks,
        overrides: Default::default(),
        access,
        telemetry,
    })
}

/// Checks that the directory of a socket path exists: tend binds the
/// socket there and does not make directories for it (their mode is the
/// socket's first access control).
pub fn check_socket_dir(path: &Path) -> Result<(), String> {
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(format!(
            "the socket's directory {} is not a directory",
            dir.display()
        )),
        Err(_) => Err(format!(
            "the socket's directory {} does not exist (make it first, or leave the socket out for {DEFAULT_SOCKET} beside the config file)",
            dir.display()
        )),
    }
}

/// Top-level keys, for suggestions.
const SECTIONS: [&str; 8] = [
    "access",
    "daemon",
    "group",
    "http",
    "peer",
    "process",
    "task",
    "telemetry",
];

/// Two tables of fields as one.
fn chain<T>(a: &[Field<T>], b: &[Field<T>]) -> Vec<Field<T>> {
    a.iter()
        .chain(b)
        .map(|f| Field {
            key: f.key,
            read: f.read,
        })
        .collect()
}

fn unknown_section(cx: &mut Cx<'_>, key: &Key<'_>, value: &Item<'_>, name: &str) {
    let message = if matches!(value.get_ref(), DeValue::Table(_)) {
        let hint = suggest(name, SECTIONS)
            .map(|s| format!(" (did you mean [{s}]?)"))
            .unwrap_or_default();
        format!("unknown section [{name}]{hint}")
    } else {
        let hint = did_you_mean(name, SECTIONS);
        format!(
            "unknown top-level key {name:?} (sections are [daemon], [http], [[peer]], [group.NAME], [process.NAME], [task.NAME] and [access]){hint}"
        )
    };
    cx.error(key.span(), message);
}

const DAEMON_FIELDS: &[Field<DaemonConfig>] = &[
    Field {
        key: "timezone",
        read: |cx, d, _, v| d.timezone = task::read_zone(cx, v),
    },
    Field {
        key: "env_file",
        read: |cx, d, _, v| {
            // Its path sees the environment alone: the file is what it adds.
            let depth = cx.expand_depth(expand::Depth::Os);
            if let Some(vars) = envfile::read(cx, v) {
                // Beneath `[daemon] env`, whichever is read first.
                envfile::under(&mut d.env, &vars);
            }
            cx.expand_depth(depth);
        },
    },
    Field {
        key: "env",
        read: |cx, d, _, v| {
            let depth = cx.expand_depth(expand::Depth::Os);
            if let Some(vars) = expand::read_env_table(cx, v, "[daemon] env") {
                d.env.extend(vars);
            }
            cx.expand_depth(depth);
        },
    },
    Field {
        key: "socket",
        read: |cx, d, _, v| {
            let Some(s) = cx.expanded(v, "socket") else {
                return;
            };
            if s.is_empty() {
                cx.error(v.span(), "socket path is empty");
                return;
            }
            let path = cx.dir.join(&s);
            match check_socket_dir(&path) {
                Ok(()) => d.socket = path,
                Err(why) => cx.error(v.span(), why),
            }
        },
    },
    Field {
        key: "socket_mode",
        read: |cx, d, _, v| d.socket_mode = cx.mode(v, 0o777).unwrap_or(d.socket_mode),
    },
    Field {
        key: "socket_group",
        read: |cx, d, _, v| {
            let Some(s) = cx.id_or_name(v, "group") else {
                return;
            };
            match crate::check::group_exists(&s) {
                Ok(()) => d.socket_group = Some(s),
                Err(why) => cx.error(v.span(), format!("socket_group: {why}")),
            }
        },
    },
    Field {
        key: "log_dir",
        read: |cx, d, _, v| {
            let Some(s) = cx.expanded(v, "log_dir") else {
                return;
            };
            if s.is_empty() {
                cx.error(v.span(), "log_dir is empty (leave it out for \"logs\")");
            } else {
                d.log_dir = cx.dir.join(&s);
            }
        },
    },
    Field {
        key: "log_format",
        read: |cx, d, _, v| {
            const ALLOWED: [&str; 3] = ["text", "json", "supervisord"];
            let Some(s) = cx.string(v) else { return };
            d.log_format = match s {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                "supervisord" => LogFormat::Supervisord,
                _ => {
                    let hint = did_you_mean(s, ALLOWED);
                    cx.error(
                        v.span(),
                        format!(
                            "unknown log format {s:?}: expected \"text\", \"json\" or \"supervisord\"{hint}"
                        ),
                    );
                    return;
                }
            };
        },
    },
    Field {
        key: "log_level",
        read: |cx, d, _, v| {
            const ALLOWED: [&str; 5] = ["trace", "debug", "info", "warn", "error"];
            let Some(s) = cx.string(v) else { return };
            let level = match s {
                "trace" => LogLevel::Trace,
                "debug" => LogLevel::Debug,
                "info" => LogLevel::Info,
                "warn" => LogLevel::Warn,
                "error" => LogLevel::Error,
                _ => LogLevel::Blather,
            };
            match ALLOWED.iter().find(|a| **a == s) {
                Some(_) => d.log_level = Some(level),
                None => {
                    let hint = did_you_mean(s, ALLOWED);
                    cx.error(
                        v.span(),
                        format!(
                            "unknown log level {s:?}: expected trace, debug, info, warn or error{hint}"
                        ),
                    );
                }
            }
        },
    },
    Field {
        key: "log_max_size",
        read: |cx, d, _, v| d.log_max_size = logs::read_size(cx, v).unwrap_or(d.log_max_size),
    },
    Field {
        key: "log_backups",
        read: |cx, d, _, v| {
            d.log_backups = cx
                .int(v, "a number of rotated files to keep (0 or more)")
                .unwrap_or(d.log_backups)
        },
    },
    Field {
        key: "echo_output",
        read: |cx, d, _, v| d.echo_output = cx.bool(v).unwrap_or(d.echo_output),
    },
    Field {
        key: "on_hup",
        read: |cx, d, _, v| {
            const ALLOWED: [&str; 2] = ["reload", "restart"];
            let Some(s) = cx.string(v) else { return };
            d.on_hup = match s {
                "reload" => OnHup::Reload,
                "restart" => OnHup::Restart,
                _ => {
                    let hint = did_you_mean(s, ALLOWED);
                    cx.error(
                        v.span(),
                        format!("unknown on_hup {s:?}: expected \"reload\" or \"restart\"{hint}"),
                    );
                    return;
                }
            };
        },
    },
    Field {
        key: "log_file",
        read: |cx, d, _, v| {
            let Some(s) = cx.expanded(v, "log_file") else {
                return;
            };
            if s.is_empty() {
                cx.error(
                    v.span(),
                    "log_file is empty (leave it out to log to stderr)",
                );
                return;
            }
            let path = cx.dir.join(&s);
            match logs::check_file(&path) {
                Ok(()) => d.log_file = Some(path),
                Err(why) => cx.error(v.span(), why),
            }
        },
    },
];

/// The members of one `[group.NAME]`, with their spans.
#[derive(Default)]
struct GroupDraft {
    members: Option<Vec<(String, Span)>>,
}

const GROUP_FIELDS: &[Field<GroupDraft>] = &[Field {
    key: "processes",
    read: |cx, g, _, v| {
        let Some(arr) = cx.array(v, "an array of process names") else {
            g.members = Some(Vec::new());
            return;
        };
        let members = arr
            .iter()
            .filter_map(|e| cx.string(e).map(|s| (s.to_string(), e.span())))
            .collect();
        g.members = Some(members);
    },
}];

/// Reads `[group.NAME]` tables and sets each member's `group`.
/// `declared` holds every process name in the file, valid or not, so that a
/// process with errors of its own is not also reported as unknown here.
fn read_groups(
    cx: &mut Cx<'_>,
    item: &Item<'_>,
    declared: &[String],
    copies: &replicas::Copies,
    specs: &mut [ProcessSpec],
) {
    let Some(table) = cx.table(item) else { return };
    // Looked up once per member: by name, not by a scan each.
    let known: std::collections::HashSet<&str> = declared.iter().map(String::as_str).collect();
    let index: std::collections::HashMap<String, usize> = specs
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.to_string(), i))
        .collect();
    // process name -> the group that claimed it first
    let mut owner: BTreeMap<&str, String> = BTreeMap::new();
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    let mut named = Vec::new();
    for (key, value) in entries {
        let raw: &str = key.get_ref();
        let section = section_name(&["group", raw]);
        let name = Name::new(raw)
            .map_err(|e| cx.error(key.span(), format!("invalid group name: {e}")))
            .ok();
        let DeValue::Table(group_table) = value.get_ref() else {
            cx.error(
                value.span(),
                format!(
                    "expected a table for group {raw:?} (write a {section} section), found {}",
                    value.get_ref().type_str()
                ),
            );
            continue;
        };
        let mut draft = GroupDraft::default();
        walk(cx, &section, group_table, GROUP_FIELDS, &[], &mut draft);
        let Some(members) = draft.members else {
            cx.error(
                value.span(),
                format!("missing required key \"processes\" in {section}"),
            );
            continue;
        };
        for (member, span) in members {
            let Some(known) = known.get(member.as_str()).copied() else {
                let hint = did_you_mean(&member, declared.iter().map(String::as_str));
                cx.error(
                    span,
                    format!("unknown process {member:?} in {section}{hint}"),
                );
                continue;
            };
            if let Some(first) = owner.get(known) {
                cx.error(
                    span,
                    format!("process {member:?} is already in group {first:?}"),
                );
                continue;
            }
            owner.insert(known, raw.to_string());
            // A replicated process is all its copies.
            let one = [member];
            let members = copies.get(&one[0]).map_or(&one[..], Vec::as_slice);
            for member in members {
                if let (Some(group), Some(spec)) =
                    (&name, index.get(member).and_then(|&i| specs.get_mut(i)))
                {
                    spec.group = group.clone();
                }
            }
        }
        named.push((raw, key.span()));
    }
    // A process outside any group is in the group of its own name; a group of
    // that name would silently gain it as a member.
    for (group, span) in named {
        if known.contains(group) && owner.get(group).is_none_or(|g| g != group) {
            cx.error(
                span,
                format!("group {group:?} has the name of process {group:?}, which is not one of its members"),
            );
        }
    }
}
