//! `GET /metrics`: the daemon's state and behaviour for Prometheus (text
//! format 0.0.4, or OpenMetrics when asked), and the same families for
//! whoever else exports them (the OTLP exporter of the `tend` binary).
//!
//! Two kinds of numbers:
//!
//! - **counted as they happen**, because they must outlive a scrape: the
//!   events the supervisor publishes and the exits among them by reason (one
//!   task reads the event broadcast: [`Metrics::count_events`]), and the
//!   requests every door answered (a layer on each listener's router:
//!   [`count_requests`]). Log bytes are counted by the engine's log hub and
//!   restarts by each process's state machine; they arrive with the status;
//! - **read at scrape time only**: states, readiness, health, start times,
//!   and what each process uses (CPU, memory, descriptors) from `/proc`
//!   (the one reader, [`ProcFs`]). Nothing samples in the background: a
//!   daemon nobody scrapes does no work for its metrics.
//!
//! A scrape of a thousand processes writes some 27,000 samples, so it is
//! built to allocate per process at most, never per sample: each process's
//! `process`/`group` labels are escaped once and shared by its samples
//! ([`ProcessLabels`], kept between scrapes while the process is there),
//! and the text is written into one buffer sized from the last scrape.
//!
//! A scrape answers what the caller's [`Right::Metrics`] covers: the series
//! of the processes it may read the metrics of, and the daemon's own series
//! only with the right over every process (they count every process).
//!
//! ```
//! use tend_server::metrics::{Format, Metrics, encode};
//! let metrics = Metrics::new();
//! let families = metrics.families(&[], |_| None, true);
//! let text = encode(&families, Format::Prometheus);
//! assert!(text.contains("tend_build_info{version="));
//! ```

mod counters;
pub mod model;
mod text;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tend_core::status::Health;
use tend_core::{Event, ProcessStatus, StateName, Supervisor};
use tokio::sync::broadcast;

pub use counters::{EVENT_KINDS, ExitReason, event_kind};
pub use model::{Family, Kind, LabelValue, Labels, ProcessLabels, Sample, Value};
pub use tend_core::unix::procfs::{ProcFs, Usage};
pub use text::{Format, encode, encode_into};

use crate::Daemon;
use crate::access::{Caller, Right};
use crate::json::ApiError;
use counters::{Counters, RequestKey};

/// Every state, in the order of the `state` samples.
pub const STATES: [StateName; 8] = [
    StateName::Stopped,
    StateName::Waiting,
    StateName::Starting,
    StateName::Running,
    StateName::Backoff,
    StateName::Stopping,
    StateName::Exited,
    StateName::Fatal,
];

const HEALTHS: [(Health, &str); 3] = [
    (Health::Unknown, "unknown"),
    (Health::Healthy, "healthy"),
    (Health::Unhealthy, "unhealthy"),
];

/// More families, added to every scrape by someone else (the OTLP
/// exporter's own counts: what it sent and what it dropped).
pub trait Source: Send + Sync + 'static {
    /// Appends this source's families.
    fn collect(&self, out: &mut Vec<Family>);

    /// What `GET /v1/telemetry` answers, for the source that is the OTLP
    /// exporter.
    fn telemetry(&self) -> Option<TelemetryReport> {
        None
    }
}

/// The answer to `GET /v1/telemetry`: how OTLP export is going (404 when
/// it is off). `tend status` tells of drops and failures from it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TelemetryReport {
    /// Where each signal goes.
    pub endpoints: Vec<String>,
    /// Per signal (`logs`, `metrics`, `traces`).
    pub signals: Vec<SignalReport>,
    /// Log records and spans waiting.
    pub queued: u64,
    /// Why the last export failed, while the collector cannot be reached.
    pub failing: Option<String>,
}

/// One signal of a [`TelemetryReport`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SignalReport {
    /// `logs`, `metrics` or `traces`.
    pub signal: String,
    /// Records, points or spans the collector accepted.
    pub exported: u64,
    /// Dropped: the queue was full, or the collector refused or could not
    /// be reached.
    pub dropped: u64,
    /// Export requests that failed.
    pub failures: u64,
}

/// The daemon's metrics: the counters, and what reads the rest at scrape
/// time. Cloning is cheap; every clone counts into the same numbers.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    counters: Counters,
    sources: RwLock<Vec<Arc<dyn Source>>>,
    started: jiff::Timestamp,
    /// Each process's labels, escaped once (dropped with the process).
    labels: Mutex<HashMap<tend_core::Name, Arc<ProcessLabels>>>,
    /// The length of the last scrape's text: the next one's buffer.
    last_size: AtomicUsize,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("counters", &self.inner.counters)
            .finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Metrics that count nothing yet: events are counted once
    /// [`Metrics::count_events`] runs, requests by [`count_requests`].
    pub fn new() -> Metrics {
        Metrics {
            inner: Arc::new(Inner {
                counters: Counters::default(),
                sources: RwLock::new(Vec::new()),
                started: jiff::Timestamp::now(),
                labels: Mutex::new(HashMap::new()),
                last_size: AtomicUsize::new(0),
            }),
        }
    }

    /// When these metrics were made (the daemon's start): the start of
    /// every counter, for exporters that say so.
    pub fn started(&self) -> jiff::Timestamp {
        self.inner.started
    }

    /// Subscribes to `sup`'s events now and spawns the task that counts
    /// them (it ends with the supervisor). Call it before processes are
    /// added, so their first events count.
    pub fn spawn_counter(&self, sup: &Supervisor) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.clone().count_events(sup.subscribe()))
    }

    /// Counts every event from `rx` until the channel closes. It wakes only
    /// when an event arrives.
    pub async fn count_events(self, mut rx: broadcast::Receiver<Event>) {
        loop {
            match rx.recv().await {
                Ok(ev) => self.observe(&ev),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    self.inner.counters.missed.fetch_add(n, Ordering::Relaxed);
                    tracing::warn!("metrics: {n} events were not counted (the counter lagged)");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// Counts one event (what [`Metrics::count_events`] does with each).
    pub fn observe(&self, ev: &Event) {
        self.inner.counters.observe(ev);
    }

    /// Counts one answered request: its door (`unix`, `inet`), its face
    /// ([`face_of`]) and its status code.
    pub fn count_request(&self, door: &Arc<str>, face: &'static str, code: u16) {
        self.inner.counters.request(RequestKey {
            door: door.clone(),
            face,
            code,
        });
    }

    /// Adds a [`Source`] to every scrape from now on.
    pub fn add_source(&self, source: Arc<dyn Source>) {
        self.inner
            .sources
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(source);
    }

    /// The OTLP exporter's report, when one runs.
    pub fn telemetry(&self) -> Option<TelemetryReport> {
        let sources = self
            .inner
            .sources
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        sources.iter().find_map(|s| s.telemetry())
    }

    /// Every family for the processes of `status` (each process's series),
    /// with `usage` read for each live pid (and for the daemon's own), and
    /// with `daemon_wide` the daemon's own series (which count every
    /// process, so only a caller with the right over all of them gets
    /// them).
    pub fn families(
        &self,
        status: &[ProcessStatus],
        usage: impl Fn(u32) -> Option<Usage>,
        daemon_wide: bool,
    ) -> Vec<Family> {
        let now = jiff::Timestamp::now();
        let labels = self.labels_of(status);
        let mut fam = ProcessFamilies::new(status.len());
        for (s, l) in status.iter().zip(&labels) {
            let exits = self.inner.counters.exits(&s.name);
            fam.add(s, l, exits, &usage, now);
        }
        let mut out = fam.finish();
        if daemon_wide {
            self.daemon_families(status, &usage, &mut out);
        }
        out
    }

    /// The labels of each process of `status`, escaped once and kept
    /// between scrapes (the lock is not held while `/proc` is read: a
    /// second scrape or the OTLP snapshot does not wait for this one).
    fn labels_of(&self, status: &[ProcessStatus]) -> Vec<Arc<ProcessLabels>> {
        let mut labels = self.inner.labels.lock().unwrap_or_else(|p| p.into_inner());
        let out = status
            .iter()
            .map(|s| {
                // A lookup by reference: the name is copied only for a
                // process seen for the first time (or whose group changed).
                match labels.get(&s.name) {
                    Some(l) if l.group() == s.group.as_str() => l.clone(),
                    _ => {
                        let l = Arc::new(ProcessLabels::new(s.name.as_str(), s.group.as_str()));
                        labels.insert(s.name.clone(), l.clone());
                        l
                    }
                }
            })
            .collect();
        // The process set shrank (or this caller sees fewer): forget the
        // labels of those not here.
        if labels.len() > status.len() {
            let here: std::collections::HashSet<&tend_core::Name> =
                status.iter().map(|s| &s.name).collect();
            labels.retain(|n, _| here.contains(n));
        }
        out
    }

    /// `families` as text in `format`, in one buffer sized from the last
    /// scrape.
    pub fn encode(&self, families: &[Family], format: Format) -> String {
        let last = self.inner.last_size.load(Ordering::Relaxed);
        let mut out = String::with_capacity(last + last / 16 + 1024);
        encode_into(&mut out, families, format);
        self.inner.last_size.store(out.len(), Ordering::Relaxed);
        out
    }

    fn daemon_families(
        &self,
        status: &[ProcessStatus],
        usage: &impl Fn(u32) -> Option<Usage>,
        out: &mut Vec<Family>,
    ) {
        let mut by_state = Family::new("tend_processes", Kind::Gauge, "Processes in each state.");
        for st in STATES {
            let n = status.iter().filter(|s| s.state == st).count() as u64;
            by_state.push(vec![("state", st.as_str().into())], Value::Int(n));
        }
        out.push(by_state);

        let mut events = Family::new(
            "tend_events",
            Kind::Counter,
            "Events the supervisor published, by kind.",
        );
        for (kind, n) in EVENT_KINDS.iter().zip(self.inner.counters.events()) {
            events.push(vec![("event", (*kind).into())], Value::Int(n));
        }
        out.push(events);
        let mut missed = Family::new(
            "tend_events_missed",
            Kind::Counter,
            "Events the metrics did not count because their counter lagged behind.",
        );
        missed.push(
            Vec::new(),
            Value::Int(self.inner.counters.missed.load(Ordering::Relaxed)),
        );
        out.push(missed);

        let mut requests = Family::new(
            "tend_http_requests",
            Kind::Counter,
            "HTTP requests answered, by door (listener), face and status code.",
        );
        for (k, n) in self.inner.counters.requests() {
            requests.push(
                vec![
                    ("door", k.door.clone()),
                    ("face", k.face.into()),
                    ("code", k.code.to_string().into()),
                ],
                Value::Int(n),
            );
        }
        out.push(requests);

        let mut build = Family::new(
            "tend_build",
            Kind::Info,
            "The tend that serves these metrics.",
        );
        build.push(
            vec![("version", env!("CARGO_PKG_VERSION").into())],
            Value::Int(1),
        );
        out.push(build);

        // The daemon itself, under the names every Prometheus client uses.
        let started = self.inner.started.as_millisecond() as f64 / 1000.0;
        let mut start = Family::new(
            "process_start_time_seconds",
            Kind::Gauge,
            "When the daemon started, in seconds since the Unix epoch.",
        )
        .unit("seconds");
        start.push(Vec::new(), Value::Float(started));
        out.push(start);
        if let Some(u) = usage(std::process::id()) {
            let mut cpu = Family::new(
                "process_cpu_seconds",
                Kind::Counter,
                "CPU time the daemon used (user and system).",
            )
            .unit("seconds");
            cpu.push(Vec::new(), Value::Float(u.cpu_seconds));
            out.push(cpu);
            let mut rss = Family::new(
                "process_resident_memory_bytes",
                Kind::Gauge,
                "The daemon's resident memory.",
            )
            .unit("bytes");
            rss.push(Vec::new(), Value::Int(u.resident_bytes));
            out.push(rss);
            if let Some(fds) = u.open_fds {
                let mut f = Family::new(
                    "process_open_fds",
                    Kind::Gauge,
                    "The daemon's open file descriptors.",
                );
                f.push(Vec::new(), Value::Int(fds));
                out.push(f);
            }
        }
        let sources = self
            .inner
            .sources
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for s in sources {
            s.collect(out);
        }
    }

    /// [`Metrics::families`] of `sup`'s processes as `caller` may see them,
    /// with what they use read by `proc`. The `/proc` reads run off the
    /// daemon's thread.
    pub async fn gather(
        &self,
        sup: &Supervisor,
        proc: &'static ProcFs,
        caller: &Caller,
    ) -> Result<Vec<Family>, ApiError> {
        self.gather_then(sup, proc, caller, |_, families| families)
            .await
    }

    /// [`Metrics::gather`], then `then` over the families on the same
    /// blocking thread (the text encoding of a scrape).
    async fn gather_then<T: Send + 'static>(
        &self,
        sup: &Supervisor,
        proc: &'static ProcFs,
        caller: &Caller,
        then: impl FnOnce(&Metrics, Vec<Family>) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        if caller.grants().patterns(Right::Metrics).is_empty() {
            return Err(caller.denied(Right::Metrics, "read the metrics", "").into());
        }
        let everything = caller.may_everything(Right::Metrics);
        let status: Vec<ProcessStatus> = sup
            .status()
            .await?
            .into_iter()
            .filter(|s| caller.may(Right::Metrics, &s.name, &s.group))
            .collect();
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let families = this.families(&status, |pid| proc.usage(pid), everything);
            then(&this, families)
        })
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("metrics: {e}")))
    }
}

/// The per-process families, filled one process at a time.
struct ProcessFamilies {
    up: Family,
    state: Family,
    restarts: Family,
    exits: Family,
    start: Family,
    uptime: Family,
    ready: Family,
    health: Family,
    cpu: Family,
    memory: Family,
    fds: Family,
    log_bytes: Family,
    log_dropped: Family,
}

impl ProcessFamilies {
    /// Empty families with room for `n` processes' samples.
    fn new(n: usize) -> Self {
        ProcessFamilies {
            up: Family::new(
                "tend_process_up",
                Kind::Gauge,
                "1 while the process is running, 0 otherwise.",
            )
            .with_capacity(n),
            state: Family::new(
                "tend_process_state",
                Kind::Gauge,
                "1 for the state the process is in, 0 for the others.",
            )
            .with_capacity(n * STATES.len()),
            restarts: Family::new(
                "tend_process_restarts",
                Kind::Counter,
                "Automatic restarts of the process (starts by a user are not counted).",
            )
            .with_capacity(n),
            exits: Family::new(
                "tend_process_exits",
                Kind::Counter,
                "Runs of the process that ended, by reason.",
            )
            .with_capacity(n * ExitReason::ALL.len()),
            start: Family::new(
                "tend_process_start_time_seconds",
                Kind::Gauge,
                "When the current run started, in seconds since the Unix epoch (while it is up).",
            )
            .unit("seconds")
            .with_capacity(n),
            uptime: Family::new(
                "tend_process_uptime_seconds",
                Kind::Gauge,
                "Seconds since the current run started (while it is up).",
            )
            .unit("seconds")
            .with_capacity(n),
            ready: Family::new(
                "tend_process_ready",
                Kind::Gauge,
                "1 when the current run is ready (its readiness check passed, or READY=1).",
            )
            .with_capacity(n),
            health: Family::new(
                "tend_process_health",
                Kind::Gauge,
                "1 for the verdict of the health check (unknown, healthy, unhealthy), 0 for the others.",
            )
            .with_capacity(n * HEALTHS.len()),
            cpu: Family::new(
                "tend_process_cpu_seconds",
                Kind::Counter,
                "CPU time (user and system) of the current run's main process.",
            )
            .unit("seconds")
            .with_capacity(n),
            memory: Family::new(
                "tend_process_resident_memory_bytes",
                Kind::Gauge,
                "Resident memory of the current run's main process.",
            )
            .unit("bytes")
            .with_capacity(n),
            fds: Family::new(
                "tend_process_open_fds",
                Kind::Gauge,
                "Open file descriptors of the current run's main process.",
            )
            .with_capacity(n),
            log_bytes: Family::new(
                "tend_process_log_bytes",
                Kind::Counter,
                "Bytes of output read from the process (stdout and stderr).",
            )
            .unit("bytes")
            .with_capacity(n),
            log_dropped: Family::new(
                "tend_process_log_dropped_bytes",
                Kind::Counter,
                "Bytes of output that could not be written to the process's log files.",
            )
            .unit("bytes")
            .with_capacity(n),
        }
    }

    /// The samples of the process `s` (labelled `l`, with `exits` by
    /// reason): nothing is allocated here.
    fn add(
        &mut self,
        s: &ProcessStatus,
        l: &Arc<ProcessLabels>,
        exits: [u64; ExitReason::ALL.len()],
        usage: &impl Fn(u32) -> Option<Usage>,
        now: jiff::Timestamp,
    ) {
        let flag = |b: bool| Value::Int(u64::from(b));
        self.up
            .push_process(l, None, flag(s.state == StateName::Running));
        for st in STATES {
            self.state
                .push_process(l, Some(("state", st.as_str())), flag(s.state == st));
        }
        self.restarts.push_process(l, None, Value::Int(s.restarts));
        for (r, n) in ExitReason::ALL.iter().zip(exits) {
            self.exits
                .push_process(l, Some(("reason", r.as_str())), Value::Int(n));
        }
        if s.state.is_up()
            && let Some(t) = s.started_at
        {
            self.start
                .push_process(l, None, Value::Float(t.as_millisecond() as f64 / 1000.0));
            let up = now.duration_since(t).as_secs_f64().max(0.0);
            self.uptime.push_process(l, None, Value::Float(up));
        }
        self.ready.push_process(l, None, flag(s.ready));
        for (h, name) in HEALTHS {
            self.health
                .push_process(l, Some(("health", name)), flag(s.health == h));
        }
        if let Some(u) = s.pid.and_then(usage) {
            self.cpu.push_process(l, None, Value::Float(u.cpu_seconds));
            self.memory
                .push_process(l, None, Value::Int(u.resident_bytes));
            if let Some(n) = u.open_fds {
                self.fds.push_process(l, None, Value::Int(n));
            }
        }
        self.log_bytes
            .push_process(l, None, Value::Int(s.log_bytes));
        self.log_dropped
            .push_process(l, None, Value::Int(s.log_dropped_bytes));
    }

    fn finish(self) -> Vec<Family> {
        vec![
            self.up,
            self.state,
            self.restarts,
            self.exits,
            self.start,
            self.uptime,
            self.ready,
            self.health,
            self.cpu,
            self.memory,
            self.fds,
            self.log_bytes,
            self.log_dropped,
        ]
    }
}

/// `GET /metrics` over `daemon`, checked against the caller's
/// [`Right::Metrics`] (the route [`crate::app`] serves on every listener).
pub fn router(daemon: Daemon) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(daemon)
}

/// `GET /v1/telemetry`: the exporter's [`TelemetryReport`] (daemon-wide:
/// the metrics right over every process).
pub(crate) async fn telemetry(State(daemon): State<Daemon>, caller: Caller) -> Response {
    if let Err(d) = caller.require_everything(Right::Metrics, "read the telemetry status") {
        return ApiError::from(d).into_response();
    }
    match daemon.metrics().telemetry() {
        Some(r) => axum::Json(r).into_response(),
        None => ApiError::not_found(
            "telemetry is off (no [telemetry] and no OTEL_EXPORTER_OTLP_ENDPOINT)",
        )
        .into_response(),
    }
}

async fn scrape(State(daemon): State<Daemon>, caller: Caller, headers: HeaderMap) -> Response {
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let encoded = daemon
        .metrics()
        .gather_then(
            daemon.supervisor(),
            daemon.procfs(),
            &caller,
            move |metrics, families| metrics.encode(&families, format),
        )
        .await;
    match encoded {
        Ok(text) => ([(header::CONTENT_TYPE, format.content_type())], text).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The face a request path belongs to, as `tend_http_requests_total{face}`
/// names it.
pub fn face_of(path: &str) -> &'static str {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    match first {
        "v1" => "json",
        "RPC2" => "xmlrpc",
        "logtail" | "mainlogtail" => "logtail",
        "metrics" => "metrics",
        "ui" => "ui",
        "" | "index.html" | "tail.html" | "images" | "stylesheets" => "web",
        _ => "other",
    }
}

/// Counts every request `router` answers as the door `door` (outermost, so
/// the access guard's refusals count too).
pub fn count_requests(router: Router, metrics: Metrics, door: &str) -> Router {
    let door: Arc<str> = door.into();
    router.layer(axum::middleware::from_fn_with_state(
        (metrics, door),
        counting,
    ))
}

async fn counting(
    State((metrics, door)): State<(Metrics, Arc<str>)>,
    req: Request,
    next: Next,
) -> Response {
    let face = face_of(req.uri().path());
    let resp = next.run(req).await;
    metrics.count_request(&door, face, resp.status().as_u16());
    resp
}

#[cfg(test)]
mod tests;
