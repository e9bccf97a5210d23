//! What the dashboard needs beyond the verbs, as plain API endpoints (so a
//! script can do all it does): the dependency graph, the tasks' schedule,
//! CPU and memory from `/proc`, a process's stdin, and its log files.

use std::collections::HashSet;
use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tend_core::spec::LogTarget;
use tend_core::{Name, ProcessStats, StateName, StatsSource};
use tokio::sync::mpsc;

use super::error::ApiError;
use super::extract::JsonBody;
use super::handlers::select;
use super::logs::ChannelStream;
use crate::Daemon;
use crate::api::{base64_decode, percent_decode};
use crate::caller::{Caller, MayByName, Right};

type ApiResult<T> = Result<T, ApiError>;

/// The pairs of a query string, decoded; a key outside `allowed` is a 400
/// that names it.
fn query_pairs(query: Option<&str>, allowed: &[&str]) -> ApiResult<Vec<(String, String)>> {
    let mut out = Vec::new();
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|s| !s.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if !allowed.contains(&key) {
            return Err(ApiError::bad_request(format!(
                "unknown query parameter {key:?} (expected {})",
                allowed.join(" or ")
            )));
        }
        let value = percent_decode(value)
            .ok_or_else(|| ApiError::bad_request(format!("malformed query parameter {pair:?}")))?;
        out.push((key.to_string(), value));
    }
    Ok(out)
}

/// One edge of the dependency graph.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Edge {
    /// The dependent process.
    pub from: String,
    /// The process it depends on.
    pub to: String,
    /// `started`, `ready`, `healthy` or `completed`.
    pub condition: String,
    /// Whether `from` is stopped and started again with `to`.
    pub restart: bool,
}

/// `GET /v1/graph`: every dependency edge, and the processes in
/// dependency order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Graph {
    /// Every process, in the order they are shown (status order).
    pub processes: Vec<String>,
    /// `from` depends on `to`.
    pub edges: Vec<Edge>,
}

/// `GET /v1/graph`
pub(crate) async fn graph(State(st): State<Daemon>, caller: Caller) -> ApiResult<Json<Graph>> {
    let mut all = st.supervisor().status().await?;
    all.retain(|s| caller.may_str(Right::View, s.name.as_str(), s.group.as_str()));
    let names: HashSet<&str> = all.iter().map(|s| s.name.as_str()).collect();
    let mut edges = st.config().with_procs(|procs| {
        let mut edges = Vec::new();
        for (name, pc) in procs {
            for d in &pc.spec.depends_on {
                edges.push(Edge {
                    from: name.to_string(),
                    to: d.name.to_string(),
                    condition: d.condition.as_str().to_string(),
                    restart: d.restart,
                });
            }
        }
        edges
    });
    edges.retain(|e| names.contains(e.from.as_str()) && names.contains(e.to.as_str()));
    Ok(Json(Graph {
        processes: all.iter().map(|s| s.name.to_string()).collect(),
        edges,
    }))
}

/// How a task is triggered, as the daemon's binary knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskSchedule {
    /// The task (and its process).
    pub name: Name,
    /// Its period, if it runs on a timer.
    pub every: Option<Duration>,
    /// When the timer fires first (later runs: every `every` after it).
    pub first: Option<Timestamp>,
    /// The signal that runs it, e.g. `USR1`.
    pub on_signal: Option<String>,
    /// Its cron schedule, if it runs on one.
    pub cron: Option<tend_core::CronSchedule>,
}

impl TaskSchedule {
    /// A task run every `every` from `first`, and/or on `on_signal`.
    pub fn new(
        name: Name,
        every: Option<Duration>,
        first: Option<Timestamp>,
        on_signal: Option<String>,
    ) -> TaskSchedule {
        TaskSchedule {
            name,
            every,
            first,
            on_signal,
            cron: None,
        }
    }

    /// The same task, run on the cron schedule `cron` too.
    pub fn with_cron(mut self, cron: Option<tend_core::CronSchedule>) -> TaskSchedule {
        self.cron = cron;
        self
    }

    /// The first firing of the timer after `now`.
    pub fn next_after(&self, now: Timestamp) -> Option<Timestamp> {
        if let Some(cron) = &self.cron {
            return cron.next_after(now);
        }
        let (every, first) = (self.every?, self.first?);
        if first > now {
            return Some(first);
        }
        let period = i128::try_from(every.as_nanos()).ok().filter(|p| *p > 0)?;
        let since = now.as_nanosecond() - first.as_nanosecond();
        let n = since / period + 1;
        Timestamp::from_nanosecond(first.as_nanosecond() + n * period).ok()
    }
}

/// One task of `GET /v1/tasks`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskItem {
    /// The task.
    pub name: String,
    /// Its process's state (`running` while a run is under way).
    pub state: StateName,
    /// The period in milliseconds, if it runs on a timer.
    pub every_ms: Option<u64>,
    /// The signal that runs it.
    pub on_signal: Option<String>,
    /// Its cron expression, if it runs on one.
    #[serde(default)]
    pub cron: Option<String>,
    /// The time zone its cron expression is read in (an IANA name, or
    /// `null` for a fixed offset the system gave).
    #[serde(default)]
    pub timezone: Option<String>,
    /// When the last run started.
    pub last_run: Option<Timestamp>,
    /// How the last run ended (`null` while the first one runs, or before it).
    pub last_exit: Option<tend_core::ExitInfo>,
    /// When the timer runs it next.
    pub next_run: Option<Timestamp>,
}

/// `GET /v1/tasks`
pub(crate) async fn tasks(
    State(st): State<Daemon>,
    caller: Caller,
) -> ApiResult<Json<Vec<TaskItem>>> {
    let mut all = st.supervisor().status().await?;
    all.retain(|s| caller.may_str(Right::View, s.name.as_str(), s.group.as_str()));
    let now = Timestamp::now();
    let items = st
        .tasks()
        .iter()
        .filter_map(|t| {
            let s = all.iter().find(|s| s.name == t.name)?;
            Some(TaskItem {
                name: t.name.to_string(),
                state: s.state,
                every_ms: t
                    .every
                    .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                on_signal: t.on_signal.clone(),
                cron: t.cron.as_ref().map(|c| c.expr().to_string()),
                timezone: t
                    .cron
                    .as_ref()
                    .and_then(|c| c.time_zone().iana_name().map(str::to_string)),
                last_run: s.started_at,
                last_exit: s.last_exit,
                next_run: t.next_after(now),
            })
        })
        .collect();
    Ok(Json(items))
}

/// One process of `GET /v1/resources`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Usage {
    /// The process.
    pub name: String,
    /// Its main pid.
    pub pid: u32,
    /// CPU time used so far (user + system), in seconds: of its whole
    /// cgroup's current run when it has one, of its main process otherwise.
    pub cpu_seconds: f64,
    /// `cpu_seconds` over the time since the process started, in percent
    /// of one core.
    pub cpu_percent_since_start: f64,
    /// Memory in use, in bytes: its cgroup's `memory.current` (or the
    /// resident memory of every process in it without the memory
    /// controller) when it has one, `VmRSS` of its main process otherwise.
    pub rss_bytes: u64,
    /// Threads of its main process.
    pub threads: u64,
    /// Where the numbers come from: `cgroup` or `proc`.
    #[serde(default = "proc_source")]
    pub source: StatsSource,
    /// The most memory used at once, in bytes (`memory.peak` of its
    /// cgroup, `VmHWM` of its main process otherwise), when known.
    #[serde(default)]
    pub memory_peak_bytes: Option<u64>,
    /// Processes in its cgroup; `None` without one.
    #[serde(default)]
    pub processes: Option<u64>,
}

fn proc_source() -> StatsSource {
    StatsSource::Proc
}

/// `GET /v1/resources`: CPU and memory of every running process, read
/// now: from its cgroup when it has one, from `/proc` otherwise.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Resources {
    /// When it was read: a client's CPU % is the difference of
    /// `cpu_seconds` between two reads over the difference of `time`.
    pub time: Timestamp,
    /// Processes that are up (those whose usage could be read).
    pub processes: Vec<Usage>,
}

/// `GET /v1/resources?pattern=P...`
pub(crate) async fn resources(
    State(st): State<Daemon>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Resources>> {
    let patterns: Vec<String> = query_pairs(query.as_deref(), &["pattern"])?
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    // The engine's own reading (the cgroup's, or /proc's through the one
    // /proc reader) for each process selected: /proc is not read a second
    // time here, nor for the processes the answer leaves out.
    let all = st.supervisor().status().await?;
    let names: HashSet<Name> = select(&all, &patterns)?.into_iter().collect();
    let chosen: Vec<&tend_core::ProcessStatus> = all
        .iter()
        .filter(|s| names.contains(&s.name) && s.state.is_up() && s.pid.is_some())
        .filter(|s| caller.may_str(Right::View, s.name.as_str(), s.group.as_str()))
        .collect();
    let used: std::collections::HashMap<Name, ProcessStats> = st
        .supervisor()
        .stats_of(chosen.iter().map(|s| s.name.clone()).collect())
        .await?
        .into_iter()
        .collect();
    let processes = chosen
        .iter()
        .filter_map(|s| {
            Some(usage(
                s.name.as_str(),
                s.pid?,
                used.get(&s.name)?,
                s.uptime_ms,
            ))
        })
        .collect();
    Ok(Json(Resources {
        time: Timestamp::now(),
        processes,
    }))
}

/// One process of `GET /v1/resources` from the engine's `stats` of it, up
/// for `uptime_ms`.
fn usage(name: &str, pid: u32, stats: &ProcessStats, uptime_ms: Option<u64>) -> Usage {
    let cpu = stats.cpu_usec as f64 / 1e6;
    let age = uptime_ms.map_or(0.0, |ms| ms as f64 / 1000.0);
    Usage {
        name: name.to_string(),
        pid,
        cpu_seconds: cpu,
        cpu_percent_since_start: if age > 0.0 { cpu / age * 100.0 } else { 0.0 },
        rss_bytes: stats.memory_bytes.unwrap_or_default(),
        threads: stats.threads.unwrap_or(1),
        source: stats.source,
        memory_peak_bytes: stats.memory_peak_bytes,
        processes: stats.processes,
    }
}

/// `POST /v1/stdin`: `{"name": "x", "data": "text"}` or `"data_b64"`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdinRequest {
    /// The process.
    pub name: String,
    /// Text to write (as is: add the newline yourself).
    #[serde(default)]
    pub data: Option<String>,
    /// Bytes to write, in standard base64.
    #[serde(default)]
    pub data_b64: Option<String>,
}

/// The answer to `POST /v1/stdin`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StdinResponse {
    /// The process.
    pub name: String,
    /// Bytes queued for its stdin.
    pub bytes: usize,
}

/// `POST /v1/stdin`
pub(crate) async fn stdin(
    State(st): State<Daemon>,
    caller: Caller,
    JsonBody(req): JsonBody<StdinRequest>,
) -> ApiResult<Json<StdinResponse>> {
    let group = group_of(&st, &req.name);
    if !caller.may_str(Right::Stdin, &req.name, &group) {
        return Err(forbidden(&req.name, "write to the stdin of"));
    }
    let data = match (req.data, req.data_b64) {
        (Some(d), None) => d.into_bytes(),
        (None, Some(b)) => base64_decode(&b)
            .ok_or_else(|| ApiError::bad_request("data_b64 is not standard base64"))?,
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of data and data_b64",
            ));
        }
    };
    let bytes = data.len();
    st.supervisor().send_stdin(&req.name, data)?;
    Ok(Json(StdinResponse {
        name: req.name,
        bytes,
    }))
}

/// `GET /v1/logs/files?pattern=P...`: where each process's output is written.
pub(crate) async fn log_files(
    State(st): State<Daemon>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Vec<crate::api::LogFilesItem>>> {
    let (patterns, _) = super::handlers::status_patterns(query.as_deref())?;
    let all = caller.visible(st.supervisor().status().await?);
    let names = select(&all, &patterns)?;
    let target = |t: &LogTarget| match t {
        LogTarget::File(p) => p.display().to_string(),
        LogTarget::Inherit => "inherit".to_string(),
        LogTarget::Null => "null".to_string(),
        LogTarget::Memory => "memory".to_string(),
    };
    let config = st.config();
    Ok(Json(
        names
            .iter()
            .filter_map(|n| {
                let pc = config.process_config(n.as_str())?;
                if !caller.may_str(Right::Logs, n.as_str(), pc.spec.group.as_str()) {
                    return None;
                }
                let logs = &pc.spec.logs;
                Some(crate::api::LogFilesItem {
                    name: n.to_string(),
                    stdout: target(&logs.stdout),
                    stderr: (!logs.merge_stderr).then(|| target(&logs.stderr)),
                })
            })
            .collect(),
    ))
}

/// `GET /v1/logs/file?name=N&stream=stdout|stderr`: the log file itself.
pub(crate) async fn log_file(
    State(st): State<Daemon>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let mut name = None;
    let mut stderr = false;
    for (k, v) in query_pairs(query.as_deref(), &["name", "stream"])? {
        match k.as_str() {
            "name" => name = Some(v),
            _ => {
                stderr = match v.as_str() {
                    "stdout" => false,
                    "stderr" => true,
                    _ => {
                        return Err(ApiError::bad_request(format!(
                            "stream={v:?}: expected stdout or stderr"
                        )));
                    }
                }
            }
        }
    }
    let name = name.ok_or_else(|| ApiError::bad_request("name is missing (name=PROCESS)"))?;
    let pc = st
        .config()
        .process_config(&name)
        .ok_or_else(|| tend_core::Error::UnknownProcess(name.clone()))?;
    if !caller.may_str(Right::Logs, &name, pc.spec.group.as_str()) {
        return Err(forbidden(&name, "read the logs of"));
    }
    let target = if stderr {
        &pc.spec.logs.stderr
    } else {
        &pc.spec.logs.stdout
    };
    let which = if stderr { "stderr" } else { "stdout" };
    let LogTarget::File(path) = target else {
        return Err(ApiError::not_found(format!(
            "{name} has no {which} log file"
        )));
    };
    let file = std::fs::File::open(path)
        .map_err(|e| ApiError::not_found(format!("{name}: cannot open {}: {e}", path.display())))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let download = format!("attachment; filename=\"{}\"", file_name(&name, stderr));
    Ok((
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&download)
                    .unwrap_or_else(|_| HeaderValue::from_static("attachment")),
            ),
            (header::CONTENT_LENGTH, HeaderValue::from(len)),
        ],
        Body::from_stream(ChannelStream(stream_file(file, path.clone(), len))),
    )
        .into_response())
}

/// The group of a process (its own name when unknown).
fn group_of(st: &Daemon, name: &str) -> String {
    st.config()
        .process_config(name)
        .map_or_else(|| name.to_string(), |pc| pc.spec.group.to_string())
}

fn forbidden(name: &str, what: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, format!("you may not {what} {name}"))
}

/// `NAME.out.log` / `NAME.err.log` (process names are safe in a file name).
fn file_name(name: &str, stderr: bool) -> String {
    format!("{name}.{}.log", if stderr { "err" } else { "out" })
}

/// Reads `len` bytes of `file` on a blocking thread into a channel.
fn stream_file(mut file: std::fs::File, path: PathBuf, len: u64) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let mut left = len;
        let mut buf = vec![0u8; 64 * 1024];
        while left > 0 {
            let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
            match file.read(&mut buf[..want]) {
                Ok(0) => break,
                Ok(n) => {
                    left -= n as u64;
                    if tx.blocking_send(Bytes::copy_from_slice(&buf[..n])).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot read log file");
                    return;
                }
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_run_is_on_the_timer_grid() {
        let first: Timestamp = "2026-01-01T00:00:10Z".parse().expect("time");
        let t = TaskSchedule::new(
            Name::new("t").expect("name"),
            Some(Duration::from_secs(10)),
            Some(first),
            None,
        );
        let at = |s: &str| {
            t.next_after(s.parse().expect("time"))
                .map(|t| t.to_string())
        };
        assert_eq!(
            at("2026-01-01T00:00:00Z").as_deref(),
            Some("2026-01-01T00:00:10Z")
        );
        assert_eq!(
            at("2026-01-01T00:00:10Z").as_deref(),
            Some("2026-01-01T00:00:20Z")
        );
        assert_eq!(
            at("2026-01-01T00:00:25Z").as_deref(),
            Some("2026-01-01T00:00:30Z")
        );
    }

    #[test]
    fn usage_is_the_engines_reading() {
        let mut st = ProcessStats::new(StatsSource::Proc, 1_500_000, 0.0);
        assert_eq!(
            usage("web", 7, &st, Some(3000)).rss_bytes,
            0,
            "no memory read"
        );
        st.memory_bytes = Some(4096);
        st.threads = Some(3);
        let u = usage("web", 7, &st, Some(3000));
        assert_eq!((u.cpu_seconds, u.cpu_percent_since_start), (1.5, 50.0));
        assert_eq!(
            (u.rss_bytes, u.threads, u.source),
            (4096, 3, StatsSource::Proc)
        );
        let u = usage("web", 7, &st, None);
        assert_eq!(u.cpu_percent_since_start, 0.0);
    }
}
