//! `[task.NAME]`: a command run to completion when something triggers it
//! (a signal to the daemon, a timer, or the start of the processes it must
//! run `before`), rather than kept alive.
//!
//! A task is a process like the others for the engine (`restart = "never"`,
//! `autostart = false`): it shows in status with its last exit code, and
//! `tend start NAME` runs it by hand. `before` runs it as a dependency: the
//! engine starts stopped dependencies before the processes that need them. What
//! only tasks have (the triggers) goes to the daemon in [`crate::TaskConf`].

use std::time::Duration;

use jiff::tz::TimeZone;
use tend_core::{CronSchedule, RestartPolicy, Signal};

use super::process::{Draft, positive_duration, read_signal};
use super::value::{Field, Item};
use crate::diag::{Cx, Span};

/// The keys of a `[process.NAME]` that a task takes too. A task is never
/// restarted and has no readiness: `restart`, `backoff`, `ready`, `health`,
/// `notify`... make no sense for it.
const SHARED: [&str; 13] = [
    "command",
    "cwd",
    "env",
    "env_file",
    "clear_env",
    "user",
    "group",
    "umask",
    "priority",
    "success_exit_codes",
    "stop",
    "logs",
    "depends_on",
];

/// The shortest `every`: a shorter one would keep the daemon busy.
const MIN_EVERY: Duration = Duration::from_millis(100);

/// The task keys as written.
#[derive(Debug, Default)]
pub(super) struct TaskDraft {
    pub(super) on_signal: Option<(Signal, Span)>,
    pub(super) every: Option<Duration>,
    /// `every`'s key, to point at when `cron` is there too.
    pub(super) every_key: Option<Span>,
    /// `cron`, parsed in UTC until the zone is known, and its key.
    pub(super) cron: Option<(CronSchedule, Span)>,
    /// The task's own `timezone`, and its key.
    pub(super) timezone: Option<(TimeZone, Span)>,
    pub(super) shutdown: Option<(bool, Span)>,
    pub(super) terminate: Option<(bool, Span)>,
    /// Processes that wait for this task to complete, with the places to
    /// point at.
    pub(super) before: Vec<(String, Span)>,
}

impl TaskDraft {
    pub(super) fn shutdown(&self) -> bool {
        self.shutdown.as_ref().is_some_and(|(b, _)| *b)
    }

    pub(super) fn terminate(&self) -> bool {
        self.terminate.as_ref().is_some_and(|(b, _)| *b)
    }

    /// The cron schedule in the task's own zone; `None` as the zone means
    /// the daemon's, set by [`in_daemon_zone`].
    pub(super) fn schedule(&self) -> Option<CronSchedule> {
        let (c, _) = self.cron.as_ref()?;
        Some(match &self.timezone {
            Some((tz, _)) => c.clone().in_zone(tz.clone()),
            None => c.clone().in_zone(TimeZone::unknown()),
        })
    }
}

/// Reads a time zone name (`"Europe/Berlin"`, `"UTC"`) of the system's
/// tz database.
pub(super) fn read_zone(cx: &mut Cx<'_>, v: &Item<'_>) -> Option<TimeZone> {
    let name = cx.string(v)?;
    match TimeZone::get(name) {
        Ok(tz) => Some(tz),
        Err(_) => {
            cx.error(
                v.span(),
                format!("unknown time zone {name:?}: expected a name of the tz database such as \"UTC\" or \"Europe/Berlin\""),
            );
            None
        }
    }
}

/// Puts the cron schedules that name no zone of their own in `zone`
/// (`[daemon] timezone`), or the system's when it is not set.
pub(super) fn in_daemon_zone(
    mut tasks: Vec<crate::TaskConf>,
    zone: Option<&TimeZone>,
) -> Vec<crate::TaskConf> {
    for t in &mut tasks {
        if let Some(c) = t.cron.take() {
            let unset = c.time_zone() == &TimeZone::unknown();
            t.cron = Some(if unset {
                c.in_zone(zone.cloned().unwrap_or_else(TimeZone::system))
            } else {
                c
            });
        }
    }
    tasks
}

const TASK_FIELDS: &[Field<Draft>] = &[
    Field {
        key: "before",
        read: |cx, d, _, v| {
            let Some(arr) = cx.array(v, "an array of process names") else {
                return;
            };
            for e in arr.iter() {
                let Some(name) = cx.string(e) else { continue };
                if d.task.before.iter().any(|(n, _)| n == name) {
                    cx.error(e.span(), format!("{name:?} is listed twice in before"));
                    continue;
                }
                d.task.before.push((name.to_string(), e.span()));
            }
        },
    },
    Field {
        key: "on_signal",
        read: |cx, d, _, v| {
            if let Some(sig) = read_signal(cx, v) {
                d.task.on_signal = allowed_signal(cx, sig, v.span()).map(|s| (s, v.span()));
            }
        },
    },
    Field {
        key: "every",
        read: |cx, d, _, v| {
            let Some(every) = positive_duration(cx, v, "every") else {
                return;
            };
            if every < MIN_EVERY {
                cx.error(v.span(), "every must be at least 100ms");
                return;
            }
            d.task.every = Some(every);
            d.task.every_key = Some(v.span());
        },
    },
    Field {
        key: "cron",
        read: |cx, d, _, v| {
            let Some(expr) = cx.string(v) else { return };
            match CronSchedule::parse(expr, TimeZone::UTC) {
                Ok(c) => d.task.cron = Some((c, v.span())),
                Err(why) => cx.error(v.span(), why),
            }
        },
    },
    Field {
        key: "timezone",
        read: |cx, d, k, v| d.task.timezone = read_zone(cx, v).map(|tz| (tz, k)),
    },
    Field {
        key: "shutdown",
        read: |cx, d, k, v| d.task.shutdown = cx.bool(v).map(|b| (b, k)),
    },
    Field {
        key: "terminate",
        read: |cx, d, k, v| d.task.terminate = cx.bool(v).map(|b| (b, k)),
    },
];

/// Procmon's and Supervisor's spellings, and process keys a task has not.
pub(super) const ALIASES: &[(&str, &str)] = &[
    ("args", "command"),
    ("cmd", "command"),
    ("directory", "cwd"),
    ("environment", "env"),
    ("exitcodes", "success_exit_codes"),
    ("interval", "every"),
    ("parent", "depends_on"),
    ("periodic", "every"),
    ("prerun", "before"),
    ("crontab", "cron"),
    ("schedule", "cron"),
    ("tz", "timezone"),
    ("signal", "on_signal"),
    ("workdir", "cwd"),
];

/// The fields of a `[task.NAME]`: the shared process keys, and the task's own.
pub(super) fn fields(process: &[Field<Draft>]) -> Vec<Field<Draft>> {
    process
        .iter()
        .filter(|f| SHARED.contains(&f.key))
        .chain(TASK_FIELDS)
        .map(|f| Field {
            key: f.key,
            read: f.read,
        })
        .collect()
}

/// The signals a task may take. HUP and USR1 mean nothing else to a daemon
/// with tasks on them; INT, TERM and QUIT stop the daemon, so a task on
/// them must end it (`terminate = true`, checked in [`finish`]). USR2 stays
/// tend's (it reopens the log files, for logrotate), and the rest are not
/// sent to a daemon by anyone in practice.
fn allowed_signal(cx: &mut Cx<'_>, sig: Signal, span: Span) -> Option<Signal> {
    match sig.name().as_str() {
        "HUP" | "USR1" | "INT" | "TERM" | "QUIT" => Some(sig),
        "USR2" => {
            cx.error(
                span,
                "on_signal cannot be USR2: tend reopens its log files on USR2 (use HUP or USR1)",
            );
            None
        }
        other => {
            cx.error(
                span,
                format!("on_signal cannot be {other}: use HUP or USR1 (or INT, TERM or QUIT with terminate = true)"),
            );
            None
        }
    }
}

/// What only the whole table tells: the engine's settings of a task, and
/// keys that need another one.
pub(super) fn finish(cx: &mut Cx<'_>, d: &mut Draft) {
    d.spec.restart = RestartPolicy::Never;
    // Never by itself: starting a process starts its stopped dependencies
    // first, and `before` makes the task one (with `autostart`, a task before
    // processes that do not autostart would run for nothing).
    d.spec.autostart = false;
    let triggered = d.task.on_signal.is_some() || d.task.every.is_some() || d.task.cron.is_some();
    if let (Some(_), Some((_, cron))) = (&d.task.every_key, &d.task.cron) {
        cx.error(
            cron.clone(),
            format!(
                "{} has both every and cron: keep one (every = \"5m\" counts from the start, cron = \"*/5 * * * *\" follows the clock)",
                d.section
            ),
        );
    }
    if let Some((_, span)) = &d.task.timezone
        && d.task.cron.is_none()
    {
        cx.error(
            span.clone(),
            format!(
                "timezone in {} applies to cron, which it has not",
                d.section
            ),
        );
    }
    for (key, set) in [
        ("shutdown", &d.task.shutdown),
        ("terminate", &d.task.terminate),
    ] {
        if let Some((true, span)) = set
            && !triggered
        {
            cx.error(
                span.clone(),
                format!(
                    "{key} = true in {} applies when on_signal, every or cron runs the task",
                    d.section
                ),
            );
        }
    }
    if let Some((sig, span)) = &d.task.on_signal {
        let stops_tend = matches!(sig.name().as_str(), "INT" | "TERM" | "QUIT");
        if stops_tend && !d.task.terminate() {
            cx.error(
                span.clone(),
                format!(
                    "on_signal = {:?} in {}: SIG{sig} stops tend, so a task on it needs terminate = true (tend exits after it)",
                    sig.name(),
                    d.section
                ),
            );
        }
    }
}
