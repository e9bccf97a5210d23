//! `[process.NAME.logs]`: where output goes, and the checks on log paths.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tend_core::Name;
use tend_core::spec::{LogSpec, LogTarget};
use toml::de::DeValue;

use super::value::{Field, Item};
use crate::diag::{Cx, Span};

/// The logs table as written; targets are resolved once the table is read.
pub(super) struct LogsDraft {
    pub(super) section: String,
    pub(super) spec: LogSpec,
    stdout: Option<(Target, Span)>,
    stderr: Option<(Target, Span)>,
    merge_key: Option<Span>,
}

impl LogsDraft {
    pub(super) fn new(section: String) -> Self {
        LogsDraft {
            section,
            spec: LogSpec::default(),
            stdout: None,
            stderr: None,
            merge_key: None,
        }
    }
}

/// A target as written: `"inherit"`, `"null"`, `"memory"` or a path (not yet resolved).
enum Target {
    File(String),
    Inherit,
    Null,
    Memory,
}

pub(super) const LOG_FIELDS: &[Field<LogsDraft>] = &[
    Field {
        key: "stdout",
        read: |cx, d, _, v| d.stdout = read_target(cx, v).map(|t| (t, v.span())),
    },
    Field {
        key: "stderr",
        read: |cx, d, _, v| d.stderr = read_target(cx, v).map(|t| (t, v.span())),
    },
    Field {
        key: "merge_stderr",
        read: |cx, d, k, v| {
            d.spec.merge_stderr = cx.bool(v).unwrap_or(d.spec.merge_stderr);
            d.merge_key = Some(k);
        },
    },
    Field {
        key: "strip_ansi",
        read: |cx, d, _, v| d.spec.strip_ansi = cx.bool(v).unwrap_or(d.spec.strip_ansi),
    },
    Field {
        key: "timestamps",
        read: |cx, d, _, v| d.spec.timestamps = cx.bool(v).unwrap_or(d.spec.timestamps),
    },
    Field {
        key: "max_size",
        read: |cx, d, _, v| d.spec.max_size = read_size(cx, v).unwrap_or(d.spec.max_size),
    },
    Field {
        key: "backups",
        read: |cx, d, _, v| {
            d.spec.backups = cx
                .int(v, "a number of rotated files to keep (0 or more)")
                .unwrap_or(d.spec.backups)
        },
    },
];

/// Supervisor's spellings inside `[process.NAME.logs]`.
pub(super) const LOG_ALIASES: &[(&str, &str)] = &[
    ("logfile", "stdout"),
    ("redirect_stderr", "merge_stderr"),
    ("stderr_logfile", "stderr"),
    ("stderr_logfile_backups", "backups"),
    ("stderr_logfile_maxbytes", "max_size"),
    ("stdout_logfile", "stdout"),
    ("stdout_logfile_backups", "backups"),
    ("stdout_logfile_maxbytes", "max_size"),
];

fn read_target(cx: &mut Cx<'_>, v: &Item<'_>) -> Option<Target> {
    let DeValue::String(s) = v.get_ref() else {
        cx.wrong_type(v, "a file path, \"inherit\", \"memory\" or \"null\"");
        return None;
    };
    match s.as_ref() {
        "inherit" => Some(Target::Inherit),
        "null" => Some(Target::Null),
        "memory" => Some(Target::Memory),
        "" => {
            cx.error(
                v.span(),
                "log target is empty (write a file path, \"inherit\", \"memory\" or \"null\")",
            );
            None
        }
        p if p.contains('\0') => {
            cx.error(v.span(), "log file path contains a NUL byte");
            None
        }
        p => cx.expand(v, p, "a log path").map(Target::File),
    }
}

/// A size in bytes: an integer, or a string such as `"50MB"`, `"10KB"`,
/// `"1GiB"` or `"0"`. KB, MB and GB are 1024-based, as in Supervisor.
pub(super) fn read_size(cx: &mut Cx<'_>, v: &Item<'_>) -> Option<u64> {
    match v.get_ref() {
        DeValue::String(s) => parse_size(s).map_err(|e| cx.error(v.span(), e)).ok(),
        DeValue::Integer(_) => cx.int::<u64>(v, "a size in bytes (0 or more)"),
        _ => {
            cx.wrong_type(v, "a size (such as \"50MB\") or a number of bytes");
            None
        }
    }
}

/// Parses `"50MB"`, `"10 KiB"`, `"1g"`, `"4096"`; see [`read_size`].
pub(super) fn parse_size(input: &str) -> Result<u64, String> {
    let err = |why: &str| {
        format!(
            "invalid size {input:?}: {why} (examples: \"0\", \"4096\", \"10KB\", \"50MB\", \"1GB\")"
        )
    };
    let s = input.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return Err(err(if s.is_empty() {
            "it is empty"
        } else {
            "it does not start with a whole number"
        }));
    }
    let n: u64 = num.parse().map_err(|_| err("the number is too large"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(err("the unit is not one of B, KB, MB, GB")),
    };
    n.checked_mul(scale)
        .ok_or_else(|| err("the number is too large"))
}

/// Remembers which directories were checked, so that a log directory that
/// cannot be created is reported once, not once per process and stream.
#[derive(Default)]
pub(super) struct PathChecks {
    dirs: HashMap<PathBuf, bool>,
}

impl PathChecks {
    /// Checks `path` as a log file; records an error at `span` unless the same
    /// directory problem was already reported. `what` says where the path came from.
    fn check(&mut self, cx: &mut Cx<'_>, path: &Path, span: Span, what: &str) -> bool {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => {
                cx.error(
                    span,
                    format!("log file {} is a directory{what}", path.display()),
                );
                false
            }
            Ok(_) => true,
            Err(_) => {
                let Some(parent) = path.parent() else {
                    cx.error(span, format!("{} is not a file path{what}", path.display()));
                    return false;
                };
                if let Some(&ok) = self.dirs.get(parent) {
                    return ok;
                }
                let result = check_dir(parent);
                self.dirs.insert(parent.to_path_buf(), result.is_ok());
                if let Err(why) = &result {
                    cx.error(
                        span,
                        format!("cannot create log file {}: {why}{what}", path.display()),
                    );
                }
                result.is_ok()
            }
        }
    }
}

/// Whether a log file can be created at `path` (or appended to): it is not a
/// directory, and its directory exists or can be created (see `check_dir`).
pub fn check_file(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Err(format!("{} is a directory", path.display())),
        Ok(_) => Ok(()),
        Err(_) => match path.parent() {
            Some(parent) => {
                check_dir(parent).map_err(|why| format!("cannot create {}: {why}", path.display()))
            }
            None => Err(format!("{} is not a file path", path.display())),
        },
    }
}

/// Whether `dir` exists as a directory or can be created: its nearest
/// existing ancestor must be a directory.
///
/// Permissions are not checked: `tend check` may run as another user than the
/// daemon. A file the daemon cannot write is reported in its log and in the
/// process's `log_dropped_bytes`.
fn check_dir(dir: &Path) -> Result<(), String> {
    for anc in dir.ancestors() {
        match std::fs::metadata(anc) {
            Ok(m) if m.is_dir() => return Ok(()),
            Ok(_) => return Err(format!("{} is not a directory", anc.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("cannot look at {}: {e}", anc.display())),
        }
    }
    Err(format!("no part of {} exists", dir.display()))
}

/// Resolves the targets of a process read from `draft` (defaults under
/// `log_dir`, relative paths under `log_dir`) and checks every file.
/// `table` is the span errors about default paths point at.
pub(super) fn resolve(
    cx: &mut Cx<'_>,
    draft: LogsDraft,
    name: &Name,
    log_dir: &Path,
    checks: &mut PathChecks,
    table: Span,
) -> LogSpec {
    let mut spec = draft.spec;
    if spec.merge_stderr
        && let Some((_, span)) = &draft.stderr
    {
        cx.error(
            span.clone(),
            format!(
                "\"stderr\" cannot be set with merge_stderr = true in {} (stderr goes where stdout goes)",
                draft.section
            ),
        );
    }
    let mut resolve_one = |written: Option<(Target, Span)>, suffix: &str, key: &str| {
        let (target, span, what) = match written {
            Some((t, span)) => (t, span, String::new()),
            None => (
                Target::File(format!("{name}.{suffix}.log")),
                table.clone(),
                format!(
                    " (the default {key} log; set [daemon] log_dir or {key} in {})",
                    draft.section
                ),
            ),
        };
        match target {
            Target::Inherit => LogTarget::Inherit,
            Target::Null => LogTarget::Null,
            Target::Memory => LogTarget::Memory,
            Target::File(p) => {
                let path = log_dir.join(p);
                checks.check(cx, &path, span, &what);
                LogTarget::File(path)
            }
        }
    };
    spec.stdout = resolve_one(draft.stdout, "out", "stdout");
    spec.stderr = if spec.merge_stderr {
        // The engine ignores it; it says where stderr ends up to anyone reading the spec.
        spec.stdout.clone()
    } else {
        resolve_one(draft.stderr, "err", "stderr")
    };
    spec
}

/// Processes may share a log file (whole lines never interleave), but the
/// file is rotated by one rule: refuse different `max_size` or `backups`.
pub(super) fn check_shared_files(
    cx: &mut Cx<'_>,
    specs: &[tend_core::ProcessSpec],
    spans: &[Span],
) {
    let mut first: HashMap<&Path, &tend_core::ProcessSpec> = HashMap::new();
    for (spec, span) in specs.iter().zip(spans) {
        let l = &spec.logs;
        let mut targets = vec![&l.stdout];
        if !l.merge_stderr {
            targets.push(&l.stderr);
        }
        for t in targets {
            let LogTarget::File(path) = t else { continue };
            match first.get(path.as_path()) {
                None => {
                    first.insert(path, spec);
                }
                Some(other) => {
                    let o = &other.logs;
                    if (o.max_size, o.backups) != (l.max_size, l.backups) {
                        cx.error(
                            span.clone(),
                            format!(
                                "log file {} is shared with process {:?}, which rotates it differently (max_size and backups must be the same)",
                                path.display(),
                                other.name.as_str()
                            ),
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("10KB"), Ok(10 * 1024));
        assert_eq!(parse_size("10 kb"), Ok(10 * 1024));
        assert_eq!(parse_size("50MB"), Ok(50 * 1024 * 1024));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("7b"), Ok(7));
        assert!(parse_size("").is_err());
        assert!(parse_size("MB").is_err());
        assert!(parse_size("1.5MB").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("1TB").is_err());
        assert!(parse_size("99999999999999999999").is_err());
        assert!(parse_size("99999999999GB").is_err());
    }
}
