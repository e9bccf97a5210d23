//! The structs Supervisor's methods return: process info (`getProcessInfo`),
//! config info (`getAllConfigInfo`) and results of group actions, with
//! Supervisor's state codes and `description` texts.

use jiff::Timestamp;
use tend_core::{ExitInfo, ProcessStatus, StateName};

use tend_config::supervisord::ChannelConf;
use tend_config::{GroupConfig, ProcessConfig};

use crate::autorestart_value;
use crate::program;
use crate::xmlrpc::{Fault, Value};

/// Supervisor's process state code and name.
pub(crate) fn state_code(s: StateName) -> (i32, &'static str) {
    match s {
        StateName::Stopped => (0, "STOPPED"),
        // Waiting for its dependencies: Supervisor has no such state, and
        // to a client it is a start under way.
        StateName::Starting | StateName::Waiting => (10, "STARTING"),
        StateName::Running => (20, "RUNNING"),
        StateName::Backoff => (30, "BACKOFF"),
        StateName::Stopping => (40, "STOPPING"),
        StateName::Exited => (100, "EXITED"),
        StateName::Fatal => (200, "FATAL"),
    }
}

/// Seconds since the epoch, as Python's `int(time.time())`.
pub(crate) fn epoch(t: Timestamp) -> i64 {
    t.as_second()
}

/// `make_namespec`: `name` when it is its group's name, else `group:name`.
pub(crate) fn namespec(s: &ProcessStatus) -> String {
    if s.group == s.name {
        s.name.to_string()
    } else {
        format!("{}:{}", s.group, s.name)
    }
}

/// Supervisor's `spawnerr` for a status: why the last start failed.
pub(crate) fn spawnerr(s: &ProcessStatus, config: Option<&ProcessConfig>) -> String {
    match s.state {
        StateName::Backoff | StateName::Fatal => match s.error.as_deref() {
            Some(e) if e.starts_with("spawn error: ") => {
                e.trim_start_matches("spawn error: ").to_string()
            }
            _ => "Exited too quickly (process log may have details)".to_string(),
        },
        StateName::Exited => match s.last_exit {
            Some(ExitInfo::Code(c)) if config.is_none_or(|p| !p.spec.is_success(c)) => {
                format!("Bad exit code {c}")
            }
            Some(ExitInfo::Signal(_)) => "Bad exit code -1".to_string(),
            _ => String::new(),
        },
        _ => String::new(),
    }
}

/// `exitstatus`: the last exit code, -1 for a death by a signal, 0 before
/// any exit, after a failed start, and while a run is under way
/// (Supervisor forgets the last exit when it spawns: `exitstatus or 0`).
pub(crate) fn exitstatus(s: &ProcessStatus) -> i32 {
    if matches!(
        s.state,
        StateName::Backoff
            | StateName::Fatal
            | StateName::Starting
            | StateName::Running
            | StateName::Waiting
    ) || (s.state == StateName::Stopping && s.pid.is_some())
    {
        return 0;
    }
    match s.last_exit {
        Some(ExitInfo::Code(c)) => c,
        Some(ExitInfo::Signal(_)) => -1,
        None => 0,
    }
}

/// Python's `str(timedelta(seconds=secs))`: `0:01:02`, `1 day, 2:03:04`.
pub(crate) fn timedelta(secs: i64) -> String {
    let secs = secs.max(0);
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let hms = format!("{}:{:02}:{:02}", rest / 3600, rest % 3600 / 60, rest % 60);
    match days {
        0 => hms,
        1 => format!("1 day, {hms}"),
        d => format!("{d} days, {hms}"),
    }
}

/// `time.strftime('%b %d %I:%M %p', time.localtime(t))`.
pub(crate) fn local_stop_time(t: i64) -> String {
    let ts = Timestamp::from_second(t).unwrap_or(Timestamp::UNIX_EPOCH);
    ts.to_zoned(jiff::tz::TimeZone::system())
        .strftime("%b %d %I:%M %p")
        .to_string()
}

/// `_interpretProcessInfo`: the `description` of a process info struct.
pub(crate) fn description(
    state: StateName,
    name: &str,
    pid: i32,
    start: i64,
    stop: i64,
    now: i64,
    spawnerr: &str,
) -> String {
    match state {
        StateName::Running => format!("pid {pid}, uptime {}", timedelta(now - start)),
        StateName::Fatal | StateName::Backoff => {
            if spawnerr.is_empty() {
                format!("unknown error (try \"tail {name}\")")
            } else {
                spawnerr.to_string()
            }
        }
        StateName::Stopped | StateName::Exited => {
            if start != 0 {
                local_stop_time(stop)
            } else {
                "Not started".to_string()
            }
        }
        StateName::Starting | StateName::Waiting | StateName::Stopping => String::new(),
    }
}

/// The 14-member struct of `getProcessInfo`, in Supervisor's member order.
pub(crate) fn process_info(s: &ProcessStatus, config: Option<&ProcessConfig>, now: i64) -> Value {
    let start = s.started_at.map_or(0, epoch);
    let stop = s.stopped_at.map_or(0, epoch);
    let (code, statename) = state_code(s.state);
    let spawnerr = spawnerr(s, config);
    let path = |stderr: bool| {
        config
            .and_then(|c| program::logfile(c, stderr))
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    let pid = s
        .pid
        .filter(|_| s.state.is_up())
        .map_or(0, |p| i32::try_from(p).unwrap_or(i32::MAX));
    let description = description(s.state, s.name.as_str(), pid, start, stop, now, &spawnerr);
    let stdout = path(false);
    Value::structure([
        ("name", Value::from(s.name.as_str())),
        ("group", Value::from(s.group.as_str())),
        ("start", Value::int_saturating(start)),
        ("stop", Value::int_saturating(stop)),
        ("now", Value::int_saturating(now)),
        ("state", Value::Int(code)),
        ("statename", Value::from(statename)),
        ("spawnerr", Value::from(spawnerr)),
        ("exitstatus", Value::Int(exitstatus(s))),
        ("logfile", Value::from(stdout.clone())),
        ("stdout_logfile", Value::from(stdout)),
        ("stderr_logfile", Value::from(path(true))),
        ("pid", Value::Int(pid)),
        ("description", Value::from(description)),
    ])
}

/// One result of a group action: `{name, group, status, description}`,
/// status 80 and `OK` on success.
pub(crate) fn result_struct(name: &str, group: &str, outcome: &Result<(), Fault>) -> Value {
    let (status, description) = match outcome {
        Ok(()) => (Fault::SUCCESS, "OK".to_string()),
        Err(f) => (f.code, f.string.clone()),
    };
    Value::structure([
        ("name", Value::from(name)),
        ("group", Value::from(group)),
        ("status", Value::Int(status)),
        ("description", Value::from(description)),
    ])
}

fn none_or<T>(v: Option<T>, f: impl FnOnce(T) -> Value) -> Value {
    v.map_or_else(|| Value::from("none"), f)
}

fn u64_value(v: u64) -> Value {
    Value::int_saturating(i64::try_from(v).unwrap_or(i64::MAX))
}

/// One struct of `getAllConfigInfo`, members in Supervisor's order.
pub(crate) fn config_info(g: &GroupConfig, pc: &ProcessConfig, inuse: bool) -> Value {
    let spec = &pc.spec;
    let p = program::details(pc);
    let logfile =
        |c: &ChannelConf| none_or(c.logfile.as_ref(), |f| Value::from(f.display().to_string()));
    let secs = |d: std::time::Duration| u64_value(d.as_secs());
    Value::structure([
        ("autostart", Value::Bool(spec.autostart)),
        ("autorestart", autorestart_value(spec.restart)),
        (
            "directory",
            none_or(spec.cwd.as_ref(), |d| Value::from(d.display().to_string())),
        ),
        ("uid", none_or(p.uid, |u| u64_value(u64::from(u)))),
        ("command", Value::from(p.command.as_str())),
        (
            "exitcodes",
            Value::Array(
                spec.success_exit_codes
                    .iter()
                    .map(|&c| Value::Int(c))
                    .collect(),
            ),
        ),
        ("group", Value::from(g.name.as_str())),
        ("group_prio", Value::Int(g.priority)),
        ("inuse", Value::Bool(inuse)),
        ("killasgroup", Value::Bool(p.killasgroup)),
        ("name", Value::from(spec.name.as_str())),
        ("process_prio", Value::Int(p.process_priority)),
        ("redirect_stderr", Value::Bool(spec.logs.merge_stderr)),
        ("startretries", u64_value(u64::from(p.startretries))),
        ("startsecs", secs(spec.start_secs)),
        (
            "stdout_capture_maxbytes",
            u64_value(p.stdout.capture_maxbytes),
        ),
        (
            "stdout_events_enabled",
            Value::Bool(p.stdout.events_enabled),
        ),
        ("stdout_logfile", logfile(&p.stdout)),
        (
            "stdout_logfile_backups",
            u64_value(u64::from(p.stdout.backups)),
        ),
        ("stdout_logfile_maxbytes", u64_value(p.stdout.maxbytes)),
        ("stdout_syslog", Value::Bool(p.stdout.syslog)),
        ("stopsignal", Value::Int(spec.stop.signal.number())),
        ("stopwaitsecs", secs(spec.stop.timeout)),
        (
            "stderr_capture_maxbytes",
            u64_value(p.stderr.capture_maxbytes),
        ),
        (
            "stderr_events_enabled",
            Value::Bool(p.stderr.events_enabled),
        ),
        ("stderr_logfile", logfile(&p.stderr)),
        (
            "stderr_logfile_backups",
            u64_value(u64::from(p.stderr.backups)),
        ),
        ("stderr_logfile_maxbytes", u64_value(p.stderr.maxbytes)),
        ("stderr_syslog", Value::Bool(p.stderr.syslog)),
        ("serverurl", none_or(p.serverurl.as_deref(), Value::from)),
    ])
}
