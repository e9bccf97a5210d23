//! OpenTelemetry: the daemon's own log events, the families of `/metrics`
//! and a span per start, restart cycle or reload, exported over OTLP/HTTP
//! (protobuf) to a collector (`[telemetry]`, the `OTEL_*` variables).
//!
//! Export never blocks supervision:
//!
//! - the events task turns each supervisor event into a log record (and
//!   span steps) and *offers* it to a bounded queue; a full queue drops the
//!   record and counts it. The tracing layer ([`mod@layer`]) offers tend's
//!   access decisions and warnings the same way;
//! - one exporter task takes records from the queue in batches (up to
//!   `OTEL_BLRP_MAX_EXPORT_BATCH_SIZE`, or what arrived within
//!   `OTEL_BLRP_SCHEDULE_DELAY` of the first), POSTs each batch, and on a
//!   network error or a 429/502/503/504 tries again after 1, 2, 4, 8 s (or
//!   the collector's `Retry-After`); a batch that still fails is dropped and
//!   counted. While it waits, the queue fills and what does not fit is
//!   dropped: the supervisor never waits for the collector;
//! - metrics are pushed every `metrics_interval` (60 s by default): a
//!   snapshot taken like a scrape; one not sent yet when the next is taken
//!   is replaced (and its points counted as dropped).
//!
//! With nothing to export the exporter sleeps on its queue: no timer. The
//! metrics push is the one periodic wake-up, and only with telemetry on;
//! without it, none of this runs. What was exported, dropped and failed is
//! in `/metrics` (`tend_telemetry_*`) and in the daemon's log.

mod export;
mod layer;
mod proto;
mod records;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use tend_config::TelemetryConfig;
use tend_config::telemetry::Signal;
use tend_core::{Event, Supervisor};
use tend_server::metrics::{Family, Kind, Metrics, ProcFs, Source, Value};
use tokio::sync::{Notify, broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

pub(super) use layer::layer;

use export::{Client, Failure, Url};
use proto::{LogRecord, Origin, Span};

/// Defaults of the OpenTelemetry specification.
const DEFAULT_ENDPOINT: &str = "http://localhost:4318";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
const DEFAULT_QUEUE: usize = 2048;
const DEFAULT_DELAY: Duration = Duration::from_secs(1);
const DEFAULT_BATCH: usize = 512;
/// Tries of one batch before it is dropped, and the longest wait between.
const ATTEMPTS: u32 = 5;
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Everything the exporter needs, from the file and the environment.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Settings {
    /// Where each signal goes; `None` when it is not exported.
    urls: [Option<String>; 3],
    headers: [Vec<(String, String)>; 3],
    timeout: Duration,
    interval: Duration,
    queue: usize,
    delay: Duration,
    batch: usize,
    resource: Vec<(String, String)>,
    ca_file: Option<std::path::PathBuf>,
}

fn index(s: Signal) -> usize {
    match s {
        Signal::Logs => 0,
        Signal::Metrics => 1,
        Signal::Traces => 2,
    }
}

/// `k1=v1,k2=v2` with percent-encoded values (`OTEL_EXPORTER_OTLP_HEADERS`,
/// `OTEL_RESOURCE_ATTRIBUTES`).
fn pairs(text: &str) -> Vec<(String, String)> {
    text.split(',')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            let k = k.trim();
            (!k.is_empty()).then(|| (k.to_string(), percent_decode(v.trim())))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(h) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(h);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn merge(into: &mut Vec<(String, String)>, more: Vec<(String, String)>) {
    for (k, v) in more {
        match into.iter_mut().find(|(k2, _)| k2.eq_ignore_ascii_case(&k)) {
            Some(e) => e.1 = v,
            None => into.push((k, v)),
        }
    }
}

fn millis(env: &impl Fn(&str) -> Option<String>, key: &str) -> Result<Option<Duration>, String> {
    match env(key) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .map(|ms| Some(Duration::from_millis(ms)))
            .map_err(|_| format!("{key}={v:?} is not a number of milliseconds")),
    }
}

fn count(env: &impl Fn(&str) -> Option<String>, key: &str) -> Result<Option<usize>, String> {
    match env(key) {
        None => Ok(None),
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(format!("{key}={v:?} is not a positive number")),
        },
    }
}

impl Settings {
    /// The settings of `config` with the `OTEL_*` variables of `env` over
    /// them (the project's rule: the environment beats the file). `None`
    /// when nothing is to be exported: no `[telemetry]` and no endpoint in
    /// the environment, or `OTEL_SDK_DISABLED=true`.
    pub(super) fn new(
        config: &TelemetryConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Settings>, String> {
        let env = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        if env("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        let upper = |s: Signal| s.as_str().to_ascii_uppercase();
        let named = Signal::ALL
            .iter()
            .any(|&s| env(&format!("OTEL_EXPORTER_OTLP_{}_ENDPOINT", upper(s))).is_some());
        if !config.configured && env("OTEL_EXPORTER_OTLP_ENDPOINT").is_none() && !named {
            return Ok(None);
        }
        for key in ["OTEL_EXPORTER_OTLP_PROTOCOL"] {
            if let Some(p) = env(key)
                && p.trim() != "http/protobuf"
            {
                warn!("{key}={p}: tend exports OTLP over http/protobuf only");
            }
        }
        let base = env("OTEL_EXPORTER_OTLP_ENDPOINT")
            .or_else(|| config.otlp_endpoint.clone())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        let base = base.trim().trim_end_matches('/').to_string();
        let mut headers = config.headers.clone();
        if let Some(h) = env("OTEL_EXPORTER_OTLP_HEADERS") {
            merge(&mut headers, pairs(&h));
        }
        let mut urls: [Option<String>; 3] = [None, None, None];
        let mut per: [Vec<(String, String)>; 3] = [Vec::new(), Vec::new(), Vec::new()];
        for s in Signal::ALL {
            let exporter = env(&format!("OTEL_{}_EXPORTER", upper(s)));
            let off = exporter.as_deref().is_some_and(|e| e.trim() == "none");
            if off || !config.signals.contains(&s) {
                continue;
            }
            let url = env(&format!("OTEL_EXPORTER_OTLP_{}_ENDPOINT", upper(s)))
                .map(|u| u.trim().to_string())
                .unwrap_or_else(|| format!("{base}/v1/{}", s.as_str()));
            Url::parse(&url)?;
            let mut h = headers.clone();
            if let Some(more) = env(&format!("OTEL_EXPORTER_OTLP_{}_HEADERS", upper(s))) {
                merge(&mut h, pairs(&more));
            }
            for (k, v) in &h {
                tend_config::telemetry::check_header(k, v)?;
            }
            urls[index(s)] = Some(url);
            per[index(s)] = h;
        }
        let mut resource = Vec::new();
        merge(&mut resource, config.resource.clone());
        if let Some(r) = env("OTEL_RESOURCE_ATTRIBUTES") {
            merge(&mut resource, pairs(&r));
        }
        let service = env("OTEL_SERVICE_NAME")
            .or_else(|| config.service_name.clone())
            .or_else(|| {
                resource
                    .iter()
                    .find(|(k, _)| k == "service.name")
                    .map(|(_, v)| v.clone())
            })
            .unwrap_or_else(|| "tend".to_string());
        merge(&mut resource, vec![("service.name".into(), service)]);
        Ok(Some(Settings {
            urls,
            headers: per,
            timeout: millis(&env, "OTEL_EXPORTER_OTLP_TIMEOUT")?
                .or(config.timeout)
                .unwrap_or(DEFAULT_TIMEOUT),
            interval: millis(&env, "OTEL_METRIC_EXPORT_INTERVAL")?
                .or(config.metrics_interval)
                .unwrap_or(DEFAULT_INTERVAL),
            queue: count(&env, "OTEL_BLRP_MAX_QUEUE_SIZE")?
                .or(config.queue_size)
                .unwrap_or(DEFAULT_QUEUE),
            delay: millis(&env, "OTEL_BLRP_SCHEDULE_DELAY")?.unwrap_or(DEFAULT_DELAY),
            batch: count(&env, "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE")?.unwrap_or(DEFAULT_BATCH),
            resource,
            ca_file: env("OTEL_EXPORTER_OTLP_CERTIFICATE").map(Into::into),
        }))
    }

    fn wants(&self, s: Signal) -> bool {
        self.urls[index(s)].is_some()
    }
}

/// What one signal sent, dropped and failed.
#[derive(Debug, Default)]
struct Stats {
    exported: AtomicU64,
    dropped: AtomicU64,
    failures: AtomicU64,
}

/// The exporter's counts, shared with `/metrics` and the log layer.
struct Shared {
    stats: [Stats; 3],
    /// The queue, to tell its length.
    queue: mpsc::Sender<Item>,
    /// Whether the last export failed (the log says so once per outage).
    down: AtomicBool,
    /// Why, while it is down.
    failing: Mutex<Option<String>>,
    /// Where each signal goes, for `GET /v1/telemetry`.
    endpoints: Vec<String>,
}

impl Shared {
    fn stats(&self, s: Signal) -> &Stats {
        &self.stats[index(s)]
    }

    fn dropped(&self, s: Signal, n: u64) {
        self.stats(s).dropped.fetch_add(n, Ordering::Relaxed);
    }

    fn dropped_total(&self) -> u64 {
        self.stats
            .iter()
            .map(|s| s.dropped.load(Ordering::Relaxed))
            .sum()
    }
}

impl Source for Shared {
    fn telemetry(&self) -> Option<tend_server::metrics::TelemetryReport> {
        let signals = Signal::ALL
            .iter()
            .map(|&s| {
                let st = self.stats(s);
                tend_server::metrics::SignalReport {
                    signal: s.as_str().to_string(),
                    exported: st.exported.load(Ordering::Relaxed),
                    dropped: st.dropped.load(Ordering::Relaxed),
                    failures: st.failures.load(Ordering::Relaxed),
                }
            })
            .collect();
        Some(tend_server::metrics::TelemetryReport {
            endpoints: self.endpoints.clone(),
            signals,
            queued: (self.queue.max_capacity() - self.queue.capacity()) as u64,
            failing: self
                .failing
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        })
    }

    fn collect(&self, out: &mut Vec<Family>) {
        let mut exported = Family::new(
            "tend_telemetry_exported",
            Kind::Counter,
            "Log records, metric points and spans the OTLP collector accepted.",
        );
        let mut dropped = Family::new(
            "tend_telemetry_dropped",
            Kind::Counter,
            "Log records, metric points and spans dropped: the queue was full or the collector refused them or could not be reached.",
        );
        let mut failures = Family::new(
            "tend_telemetry_export_failures",
            Kind::Counter,
            "OTLP export requests that failed (each try counts).",
        );
        for s in Signal::ALL {
            let st = self.stats(s);
            let l = || vec![("signal", s.as_str().into())];
            exported.push(l(), Value::Int(st.exported.load(Ordering::Relaxed)));
            dropped.push(l(), Value::Int(st.dropped.load(Ordering::Relaxed)));
            failures.push(l(), Value::Int(st.failures.load(Ordering::Relaxed)));
        }
        let mut queued = Family::new(
            "tend_telemetry_queue_length",
            Kind::Gauge,
            "Log records and spans waiting to be exported.",
        );
        let len = self.queue.max_capacity() - self.queue.capacity();
        queued.push(Vec::new(), Value::Int(len as u64));
        out.extend([exported, dropped, failures, queued]);
    }
}

/// One entry of the queue.
enum Item {
    Log(LogRecord),
    Span(Span),
}

/// Where records are offered: the queue and its counts.
#[derive(Clone)]
struct Sink {
    shared: Arc<Shared>,
    logs: bool,
    /// Whether spans are exported (the layer's `reload` spans).
    traces: bool,
}

impl Sink {
    /// Queues `item` if there is room; counts it as dropped otherwise.
    fn offer(&self, item: Item) {
        let signal = match item {
            Item::Log(_) => Signal::Logs,
            Item::Span(_) => Signal::Traces,
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = self.shared.queue.try_send(item) {
            self.shared.dropped(signal, 1);
        }
    }
}

/// The sink of the log layer, once telemetry runs.
static SINK: OnceLock<Sink> = OnceLock::new();

/// The latest metrics snapshot not sent yet.
#[derive(Default)]
struct Slot {
    snapshot: Mutex<Option<(Vec<proto::Metric>, u64)>>,
    ready: Notify,
}

/// The running exporter.
pub(super) struct Telemetry {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl Telemetry {
    /// Starts exporting what `settings` asks for: subscribes to `sup`'s
    /// events now (so call it before processes are added) and adds the
    /// exporter's counts to `metrics`.
    pub(super) fn start(settings: Settings, sup: &Supervisor, metrics: &Metrics) -> Telemetry {
        let (tx, rx) = mpsc::channel(settings.queue);
        let shared = Arc::new(Shared {
            stats: Default::default(),
            queue: tx,
            down: AtomicBool::new(false),
            failing: Mutex::new(None),
            endpoints: settings.urls.iter().flatten().cloned().collect(),
        });
        metrics.add_source(shared.clone());
        let sink = Sink {
            shared: shared.clone(),
            logs: settings.wants(Signal::Logs),
            traces: settings.wants(Signal::Traces),
        };
        let _ = SINK.set(sink.clone());
        let (stop, stopped) = watch::channel(false);
        let origin = Arc::new(Origin {
            resource: resource(&settings.resource),
            scope: "tend",
            version: env!("CARGO_PKG_VERSION"),
        });
        let tls = if settings
            .urls
            .iter()
            .flatten()
            .any(|u| u.starts_with("https://"))
        {
            match export::tls_connector(settings.ca_file.as_deref()) {
                Ok(t) => Some(t),
                Err(e) => {
                    warn!("telemetry: {e}; https endpoints cannot be reached");
                    None
                }
            }
        } else {
            None
        };
        let client = |s: Signal| {
            let url = settings.urls[index(s)].as_deref()?;
            let url = Url::parse(url).ok()?;
            Some(Client::new(
                url,
                Arc::new(settings.headers[index(s)].clone()),
                settings.timeout,
                tls.clone(),
            ))
        };
        let slot = Arc::new(Slot::default());
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(events(
            sup.subscribe(),
            sink,
            settings.wants(Signal::Traces),
            stopped.clone(),
        )));
        let exporter = Exporter {
            rx,
            slot: slot.clone(),
            shared: shared.clone(),
            clients: [
                client(Signal::Logs),
                client(Signal::Metrics),
                client(Signal::Traces),
            ],
            origin,
            batch: settings.batch,
            delay: settings.delay,
            stop: stopped.clone(),
        };
        tasks.push(tokio::spawn(exporter.run()));
        if settings.wants(Signal::Metrics) {
            tasks.push(tokio::spawn(push_metrics(
                sup.clone(),
                metrics.clone(),
                slot,
                shared.clone(),
                settings.interval,
                stopped,
            )));
        }
        let shown: Vec<String> = Signal::ALL
            .iter()
            .filter_map(|&s| {
                Some(format!(
                    "{} to {}",
                    s.as_str(),
                    settings.urls[index(s)].as_deref()?
                ))
            })
            .collect();
        info!(
            "telemetry: exporting {} (metrics every {:?})",
            shown.join(", "),
            settings.interval
        );
        Telemetry {
            stop,
            tasks,
            shared,
        }
    }

    /// Sends what is queued (one try each, within `limit`) and stops.
    pub(super) async fn finish(self, limit: Duration) {
        let _ = self.stop.send(true);
        let all = futures_join(self.tasks);
        if tokio::time::timeout(limit, all).await.is_err() {
            warn!("telemetry: the last records were not all sent within {limit:?}");
        }
        let dropped = self.shared.dropped_total();
        if dropped > 0 {
            info!("telemetry: {dropped} records, points and spans were dropped in all");
        }
    }
}

async fn futures_join(tasks: Vec<JoinHandle<()>>) {
    for t in tasks {
        let _ = t.await;
    }
}

fn resource(pairs: &[(String, String)]) -> Vec<proto::Attr> {
    let mut out: Vec<proto::Attr> = pairs.iter().map(|(k, v)| proto::s(k, v.clone())).collect();
    let has = |out: &[proto::Attr], k: &str| out.iter().any(|(k2, _)| k2 == k);
    if !has(&out, "service.version") {
        out.push(proto::s("service.version", env!("CARGO_PKG_VERSION")));
    }
    if !has(&out, "host.name")
        && let Ok(h) = nix::unistd::gethostname()
    {
        out.push(proto::s("host.name", h.to_string_lossy()));
    }
    if !has(&out, "process.pid") {
        out.push(proto::i("process.pid", i64::from(std::process::id())));
    }
    out
}

/// The events task: each event becomes a log record and span steps.
async fn events(
    mut rx: broadcast::Receiver<Event>,
    sink: Sink,
    traces: bool,
    mut stop: watch::Receiver<bool>,
) {
    let mut tracker = records::Tracker::default();
    let mut take = |ev: Event| {
        let t = records::now_ns();
        let (reason, spans) = tracker.observe(&ev, t, traces);
        if sink.logs
            && let Some(r) = records::log_of(&ev, reason, t)
        {
            sink.offer(Item::Log(r));
        }
        for sp in spans {
            sink.offer(Item::Span(sp));
        }
    };
    loop {
        tokio::select! {
            r = rx.recv() => match r {
                Ok(ev) => take(ev),
                Err(broadcast::error::RecvError::Lagged(n)) => sink.shared.dropped(Signal::Logs, n),
                Err(broadcast::error::RecvError::Closed) => {
                    tracing::debug!("telemetry: the event channel closed");
                    return;
                }
            },
            _ = stop.wait_for(|s| *s) => {
                // What was published before the stop still goes.
                while let Ok(ev) = rx.try_recv() {
                    take(ev);
                }
                return;
            }
        }
    }
}

/// Takes a metrics snapshot every `interval` and hands it to the exporter.
async fn push_metrics(
    sup: Supervisor,
    metrics: Metrics,
    slot: Arc<Slot>,
    shared: Arc<Shared>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let start_ns = u64::try_from(metrics.started().as_nanosecond()).unwrap_or(0);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let Ok(status) = sup.status().await else {
            return;
        };
        let m = metrics.clone();
        let proc = ProcFs::shared();
        let Ok(families) =
            tokio::task::spawn_blocking(move || m.families(&status, |pid| proc.usage(pid), true))
                .await
        else {
            continue;
        };
        let converted = to_otlp(&families, start_ns);
        let old = {
            let mut g = slot.snapshot.lock().unwrap_or_else(|p| p.into_inner());
            g.replace((converted, records::now_ns()))
        };
        if let Some((old, _)) = old {
            shared.dropped(Signal::Metrics, points(&old));
        }
        slot.ready.notify_one();
    }
}

fn points(m: &[proto::Metric]) -> u64 {
    m.iter().map(|m| m.points.len() as u64).sum()
}

/// The families of `/metrics` as OTLP metrics: counters are cumulative
/// monotonic sums since `start_ns`, the rest gauges; labels become
/// attributes.
fn to_otlp(families: &[Family], start_ns: u64) -> Vec<proto::Metric> {
    families
        .iter()
        .filter(|f| !f.samples.is_empty())
        .map(|f| proto::Metric {
            name: f.name.to_string(),
            description: f.help.to_string(),
            unit: match f.unit {
                Some("seconds") => "s",
                Some("bytes") => "By",
                _ => "",
            },
            data: match f.kind {
                Kind::Counter => proto::Data::Counter { start_ns },
                Kind::Gauge | Kind::Info => proto::Data::Gauge,
            },
            points: f
                .samples
                .iter()
                .map(|s| {
                    let attrs = s
                        .labels
                        .iter()
                        .map(|(k, v)| proto::s(k, v.to_string()))
                        .collect();
                    let n = match s.value {
                        Value::Int(n) => proto::Number::Int(i64::try_from(n).unwrap_or(i64::MAX)),
                        Value::Float(f) => proto::Number::Double(f),
                    };
                    (attrs, n)
                })
                .collect(),
        })
        .collect()
}

/// The exporter task's state.
struct Exporter {
    rx: mpsc::Receiver<Item>,
    slot: Arc<Slot>,
    shared: Arc<Shared>,
    clients: [Option<Client>; 3],
    origin: Arc<Origin>,
    batch: usize,
    delay: Duration,
    stop: watch::Receiver<bool>,
}

impl Exporter {
    async fn run(mut self) {
        loop {
            let mut logs = Vec::new();
            let mut spans = Vec::new();
            let stopping = *self.stop.borrow();
            if stopping {
                while let Ok(item) = self.rx.try_recv() {
                    push(item, &mut logs, &mut spans);
                }
                self.flush(logs, spans, true).await;
                self.send_metrics(true).await;
                return;
            }
            // Idle: wait for a record, a metrics snapshot or the stop (no timer).
            tokio::select! {
                item = self.rx.recv() => match item {
                    Some(item) => push(item, &mut logs, &mut spans),
                    None => return,
                },
                _ = self.slot.ready.notified() => {
                    self.send_metrics(false).await;
                    continue;
                }
                _ = self.stop.changed() => continue,
            }
            let deadline = tokio::time::Instant::now() + self.delay;
            while logs.len() + spans.len() < self.batch {
                tokio::select! {
                    item = self.rx.recv() => match item {
                        Some(item) => push(item, &mut logs, &mut spans),
                        None => break,
                    },
                    _ = tokio::time::sleep_until(deadline) => break,
                    _ = self.stop.changed() => break,
                }
            }
            self.flush(logs, spans, false).await;
        }
    }

    async fn flush(&mut self, logs: Vec<LogRecord>, spans: Vec<Span>, last: bool) {
        if !logs.is_empty() {
            let body = proto::logs_request(&self.origin, &logs);
            self.deliver(Signal::Logs, body, logs.len() as u64, last)
                .await;
        }
        if !spans.is_empty() {
            let body = proto::traces_request(&self.origin, &spans);
            self.deliver(Signal::Traces, body, spans.len() as u64, last)
                .await;
        }
    }

    async fn send_metrics(&mut self, last: bool) {
        let taken = self
            .slot
            .snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some((metrics, at)) = taken {
            let body = proto::metrics_request(&self.origin, &metrics, at);
            self.deliver(Signal::Metrics, body, points(&metrics), last)
                .await;
        }
    }

    /// POSTs one body, trying again on a passing failure; `last` (at
    /// shutdown) tries once.
    async fn deliver(&mut self, signal: Signal, body: Vec<u8>, n: u64, last: bool) {
        let shared = self.shared.clone();
        let stats = shared.stats(signal);
        let Some(client) = self.clients[index(signal)].as_mut() else {
            return;
        };
        let body = Bytes::from(body);
        let mut backoff = Backoff::default();
        for attempt in 1..=ATTEMPTS {
            let result = client.post(body.clone()).await;
            tracing::debug!(
                "telemetry: {n} {} (try {attempt}): {result:?}",
                signal.as_str()
            );
            match result {
                Ok(()) => {
                    stats.exported.fetch_add(n, Ordering::Relaxed);
                    if shared.down.swap(false, Ordering::Relaxed) {
                        *shared.failing.lock().unwrap_or_else(|p| p.into_inner()) = None;
                        info!(
                            "telemetry: exporting to {}:{} again ({} dropped so far)",
                            client.url().host,
                            client.url().port,
                            shared.dropped_total()
                        );
                    }
                    return;
                }
                Err(Failure::Drop(why)) => {
                    stats.failures.fetch_add(1, Ordering::Relaxed);
                    warn!("telemetry: {n} {}: {why}; dropped", signal.as_str());
                    break;
                }
                Err(Failure::Retry { after, why }) => {
                    stats.failures.fetch_add(1, Ordering::Relaxed);
                    *shared.failing.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(format!("{}: {why}", client.url().authority()));
                    if !shared.down.swap(true, Ordering::Relaxed) {
                        warn!(
                            "telemetry: cannot export {} to {}:{}: {why}; trying again, and dropping (and counting) what does not fit in the queue meanwhile",
                            signal.as_str(),
                            client.url().host,
                            client.url().port
                        );
                    }
                    if last || attempt == ATTEMPTS {
                        break;
                    }
                    let pause = backoff.next(after);
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = self.stop.wait_for(|s| *s) => break,
                    }
                }
            }
        }
        shared.dropped(signal, n);
    }
}

/// The waits between the tries of one batch: 1, 2, 4, 8 s, or what the
/// collector's `Retry-After` asks, at most [`MAX_BACKOFF`] either way.
#[derive(Debug)]
struct Backoff {
    wait: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            wait: Duration::from_secs(1),
        }
    }
}

impl Backoff {
    /// The pause before the next try; `after` is the collector's
    /// `Retry-After`, when it sent one. The doubling goes on either way.
    fn next(&mut self, after: Option<Duration>) -> Duration {
        let pause = after.unwrap_or(self.wait).min(MAX_BACKOFF);
        self.wait = (self.wait * 2).min(MAX_BACKOFF);
        pause
    }
}

fn push(item: Item, logs: &mut Vec<LogRecord>, spans: &mut Vec<Span>) {
    match item {
        Item::Log(l) => logs.push(l),
        Item::Span(s) => spans.push(s),
    }
}

#[cfg(test)]
mod tests;
