//! The keys of `[daemon]` and `[process.NAME]` that concern the platform
//! tend runs on: `[daemon] cgroup` and `forward_signals`, and a process's
//! `limits`, `exit_with` and `ready_gate` (`[http] health` is read with the
//! rest of `[http]`, in `http.rs`). See `docs/running.md`.

use std::path::PathBuf;

use tend_core::ResourceLimits;
use toml::de::DeValue;

use super::logs::parse_size;
use super::process::{Draft, read_signal};
use super::value::{Field, Item, walk};
use crate::DaemonConfig;
use crate::diag::{Cx, did_you_mean};
use crate::platform::{CgroupMode, NOT_FORWARDABLE};

/// `[daemon]` keys of the platform.
pub(super) const DAEMON_FIELDS: &[Field<DaemonConfig>] = &[
    Field {
        key: "cgroup",
        read: |cx, d, _, v| {
            let Some(s) = cx.string(v) else { return };
            d.platform.cgroup = match s {
                "auto" => CgroupMode::Auto,
                "off" => CgroupMode::Off,
                p if p.starts_with('/') && !p.split('/').any(|c| c == "..") => {
                    CgroupMode::Path(PathBuf::from(p))
                }
                other => {
                    let hint = did_you_mean(other, ["auto", "off"]);
                    cx.error(
                        v.span(),
                        format!(
                            "cgroup must be \"auto\", \"off\" or an absolute path without \"..\", found {other:?}{hint}"
                        ),
                    );
                    return;
                }
            };
        },
    },
    Field {
        key: "forward_signals",
        read: |cx, d, _, v| {
            let Some(arr) = cx.array(v, "an array of signal names") else {
                return;
            };
            let mut out = Vec::new();
            for e in arr.iter() {
                let Some(sig) = read_signal(cx, e) else {
                    continue;
                };
                if NOT_FORWARDABLE.contains(&sig) {
                    cx.error(
                        e.span(),
                        format!(
                            "SIG{sig} cannot be forwarded: TERM, INT and QUIT stop every process in order, KILL and STOP cannot be caught"
                        ),
                    );
                    continue;
                }
                if !out.contains(&sig) {
                    out.push(sig);
                }
            }
            d.platform.forward_signals = out;
        },
    },
];

/// `[process.NAME]` keys of the platform.
pub(super) const PROCESS_FIELDS: &[Field<Draft>] = &[
    Field {
        key: "limits",
        read: |cx, d, _, v| {
            if let Some(table) = cx.table(v) {
                let section = format!("{}.limits]", d.section.trim_end_matches(']'));
                walk(cx, &section, table, LIMIT_FIELDS, &[], &mut d.spec.limits);
            }
        },
    },
    Field {
        key: "exit_with",
        read: |cx, d, _, v| d.spec.exit_with = cx.bool(v).unwrap_or(d.spec.exit_with),
    },
    Field {
        key: "ready_gate",
        read: |cx, d, _, v| d.spec.ready_gate = cx.bool(v).unwrap_or(d.spec.ready_gate),
    },
];

/// A process's `limits` table.
const LIMIT_FIELDS: &[Field<ResourceLimits>] = &[
    Field {
        key: "memory_max",
        read: |cx, l, _, v| l.memory_max = memory(cx, v),
    },
    Field {
        key: "memory_high",
        read: |cx, l, _, v| l.memory_high = memory(cx, v),
    },
    Field {
        key: "cpu_max",
        read: |cx, l, _, v| l.cpu_max = cpu(cx, v),
    },
    Field {
        key: "pids_max",
        read: |cx, l, _, v| {
            l.pids_max = cx
                .int::<u64>(v, "a number of tasks (1 or more)")
                .filter(|&n| {
                    if n == 0 {
                        cx.error(v.span(), "pids_max must be at least 1");
                    }
                    n > 0
                })
        },
    },
    Field {
        key: "io_weight",
        read: |cx, l, _, v| {
            l.io_weight = cx.int::<u16>(v, "a weight from 1 to 10000").filter(|&w| {
                let ok = (1..=10_000).contains(&w);
                if !ok {
                    cx.error(
                        v.span(),
                        format!("io_weight {w} is not between 1 and 10000"),
                    );
                }
                ok
            })
        },
    },
];

/// A memory size, more than 0: `"512MB"` or a number of bytes.
fn memory(cx: &mut Cx<'_>, v: &Item<'_>) -> Option<u64> {
    let n = match v.get_ref() {
        DeValue::String(s) => parse_size(s).map_err(|e| cx.error(v.span(), e)).ok()?,
        DeValue::Integer(_) => cx.int::<u64>(v, "a size in bytes")?,
        _ => {
            cx.wrong_type(v, "a size (such as \"512MB\") or a number of bytes");
            return None;
        }
    };
    if n == 0 {
        cx.error(
            v.span(),
            "a memory limit of 0 would kill the process at once",
        );
        return None;
    }
    Some(n)
}

/// `"50%"` (half a CPU), `"200%"` (two CPUs).
fn cpu(cx: &mut Cx<'_>, v: &Item<'_>) -> Option<u32> {
    let DeValue::String(s) = v.get_ref() else {
        cx.wrong_type(v, "a percentage of one CPU, such as \"50%\" or \"200%\"");
        return None;
    };
    match s.trim().strip_suffix('%').map(|n| n.trim().parse::<u32>()) {
        Some(Ok(n)) if n > 0 => Some(n),
        _ => {
            cx.error(
                v.span(),
                format!("cpu_max {s:?} is not a percentage above 0, such as \"50%\" or \"200%\""),
            );
            None
        }
    }
}
