//! The live event stream, `GET /v1/events` (see `docs/api.md`): every state
//! change as a server-sent event, replayable after a reconnect.
//!
//! One [`EventHub`] per daemon (created by the first client, see
//! [`crate::Daemon::events`]) subscribes to the supervisor's events. For each
//! batch of events it reads the status once, serializes every event once
//! (with the status of its process) into an SSE frame with the next id, and
//! appends the frames to one bounded ring shared by every client. Clients
//! never hold a copy of an event: each has a cursor into the ring and its own
//! small bounded queue of bytes toward its connection.
//!
//! Nothing on the daemon's side waits for a client: the hub appends and
//! bumps a `watch` counter; each client's own task copies what it has not
//! sent yet into its queue. A client that reads so slowly that the ring
//! overwrites what it has not sent is cut off: it gets a final `cutoff`
//! event and its stream ends. A client that has nothing to send has no timer
//! and no task that wakes: idle dashboards cost nothing (a keep-alive
//! comment is sent only to a client that asks for one with `heartbeat`).

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value, json};
use tend_core::Health;
use tend_core::pattern::Pattern;
use tend_core::runtime::LogChunk;
use tend_core::{Event, Name, ProcessStatus, Supervisor};
use tokio::sync::{broadcast, mpsc, watch};

use crate::api::{LogLineItem, percent_decode};
use crate::caller::{Caller, MayByName, Right};
use crate::json::ApiError;
use crate::{Daemon, Shutdown};

/// Events kept for replay after a reconnect (`Last-Event-ID`).
pub const RING_EVENTS: usize = 4096;
/// Chunks of bytes queued toward one client's connection.
const CLIENT_QUEUE: usize = 4;
/// A chunk sent to a client holds at most about this many bytes.
const CHUNK_BYTES: usize = 32 * 1024;
/// Core events handled as one batch (one status read) at most.
const BATCH_EVENTS: usize = 1024;
/// The shortest keep-alive period a client may ask for.
const MIN_HEARTBEAT: Duration = Duration::from_secs(5);

/// The status of every process at one point of the stream.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The id of the last event it includes (`EPOCH-SEQ`).
    pub id: String,
    /// The sequence number of that event (0 before the first).
    pub seq: u64,
    /// When it was read.
    pub time: Timestamp,
    /// Every process, in status order.
    pub processes: Vec<ProcessStatus>,
}

/// One event in the ring: its frame and what filters look at.
struct Entry {
    seq: u64,
    /// An event about the peers (`peer`, `peer_process`, `peers`): only for
    /// the clients that watch them.
    peer: bool,
    name: Option<Name>,
    group: Option<Name>,
    frame: Bytes,
}

struct Ring {
    entries: VecDeque<Entry>,
    /// The sequence number the next event gets.
    next_seq: u64,
    snapshot: Arc<Snapshot>,
    /// Each process's group (for `removed`, whose process is gone).
    groups: HashMap<Name, Name>,
    /// Readiness and health at the last snapshot (for derived events).
    seen: HashMap<Name, (bool, Health)>,
}

impl Ring {
    fn first_seq(&self) -> u64 {
        self.entries.front().map_or(self.next_seq, |e| e.seq)
    }

    fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }
}

struct Hub {
    /// Milliseconds since the epoch when the hub started: ids of another
    /// run of the daemon never match.
    epoch: i64,
    ring: Mutex<Ring>,
    /// The last sequence number appended.
    tick: watch::Sender<u64>,
    /// Events that do not come from the supervisor (`reloaded`).
    extra: mpsc::UnboundedSender<Extra>,
    sup: Supervisor,
    /// Where each process comes from (the statuses' `origin`).
    config: Arc<crate::state::ConfigState>,
}

/// An event the daemon adds to the stream itself.
#[derive(Debug)]
struct Extra {
    kind: &'static str,
    detail: Map<String, Value>,
    /// About the peers (see [`Entry::peer`]).
    peer: bool,
}

/// The daemon's event stream: the ring of serialized events and the task
/// that fills it. Cloning is cheap; every clone is the same hub.
#[derive(Clone)]
pub struct EventHub {
    hub: Arc<Hub>,
}

impl std::fmt::Debug for EventHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHub")
            .field("epoch", &self.hub.epoch)
            .finish_non_exhaustive()
    }
}

fn lock(m: &Mutex<Ring>) -> MutexGuard<'_, Ring> {
    // The ring stays consistent even if a holder panicked.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl EventHub {
    /// Subscribes to `sup`'s events, reads the status once, and starts the
    /// task that turns every later event into a frame of the ring. The task
    /// ends when the supervisor's event channel closes. `config` says which
    /// processes were added at run time (the statuses' `origin`).
    pub async fn start(
        sup: Supervisor,
        config: Arc<crate::state::ConfigState>,
    ) -> Result<EventHub, tend_core::Error> {
        let events = sup.subscribe();
        let mut processes = sup.status().await?;
        config.mark_origin(&mut processes);
        let epoch = Timestamp::now().as_millisecond();
        let (extra, extra_rx) = mpsc::unbounded_channel();
        let mut ring = Ring {
            entries: VecDeque::with_capacity(RING_EVENTS),
            next_seq: 1,
            snapshot: Arc::new(Snapshot {
                id: format!("{epoch}-0"),
                seq: 0,
                time: Timestamp::now(),
                processes: Vec::new(),
            }),
            groups: HashMap::new(),
            seen: HashMap::new(),
        };
        remember(&mut ring, &processes);
        ring.snapshot = Arc::new(Snapshot {
            processes,
            ..(*ring.snapshot).clone()
        });
        let hub = Arc::new(Hub {
            epoch,
            ring: Mutex::new(ring),
            tick: watch::Sender::new(0),
            extra,
            sup,
            config,
        });
        tokio::spawn(run(hub.clone(), events, extra_rx));
        Ok(EventHub { hub })
    }

    /// The status at the last event, with that event's id: a page rendered
    /// from it continues with `/v1/events?last_event_id=ID`.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        lock(&self.hub.ring).snapshot.clone()
    }

    /// The id of the last event (`EPOCH-0` before the first).
    pub fn last_id(&self) -> String {
        let seq = lock(&self.hub.ring).last_seq();
        self.id(seq)
    }

    fn id(&self, seq: u64) -> String {
        format!("{}-{seq}", self.hub.epoch)
    }

    /// Adds a `reloaded` event (the config file was applied again).
    pub fn reloaded(&self, added: &[String], changed: &[String], removed: &[String]) {
        let mut detail = Map::new();
        detail.insert("added".into(), json!(added));
        detail.insert("changed".into(), json!(changed));
        detail.insert("removed".into(), json!(removed));
        // The hub task ends only with the supervisor; then nobody listens.
        let _ = self.hub.extra.send(Extra {
            kind: "reloaded",
            detail,
            peer: false,
        });
    }

    /// Adds an event about the peers (`crate::peers`), sent only to the
    /// clients that watch them (`peers=1`).
    pub(crate) fn peer_event(&self, kind: &'static str, detail: Map<String, Value>) {
        let _ = self.hub.extra.send(Extra {
            kind,
            detail,
            peer: true,
        });
    }

    /// The sequence number an `id` (from `Last-Event-ID`) names, if it was
    /// given by this hub.
    fn parse_id(&self, id: &str) -> Option<u64> {
        let (epoch, seq) = id.trim().split_once('-')?;
        (epoch.parse::<i64>().ok()? == self.hub.epoch).then_some(())?;
        seq.parse().ok()
    }
}

/// Records each process's group and readiness/health.
fn remember(ring: &mut Ring, processes: &[ProcessStatus]) {
    for p in processes {
        ring.groups.insert(p.name.clone(), p.group.clone());
        ring.seen
            .entry(p.name.clone())
            .or_insert((p.ready, p.health));
    }
}

/// The hub's task: one batch of events at a time.
async fn run(
    hub: Arc<Hub>,
    mut events: broadcast::Receiver<Event>,
    mut extra: mpsc::UnboundedReceiver<Extra>,
) {
    loop {
        let mut batch = Vec::new();
        let mut extras = Vec::new();
        let mut lost = 0u64;
        tokio::select! {
            got = events.recv() => match got {
                Ok(ev) => batch.push(ev),
                Err(broadcast::error::RecvError::Lagged(n)) => lost += n,
                Err(broadcast::error::RecvError::Closed) => return,
            },
            Some(x) = extra.recv() => extras.push(x),
        }
        // Whatever else is already waiting is part of the same batch: one
        // status read for all of it, however fast events come.
        while batch.len() < BATCH_EVENTS {
            match events.try_recv() {
                Ok(ev) => batch.push(ev),
                Err(broadcast::error::TryRecvError::Lagged(n)) => lost += n,
                Err(_) => break,
            }
        }
        while let Ok(x) = extra.try_recv() {
            extras.push(x);
        }
        let mut status = hub.sup.status().await.ok();
        if let Some(all) = status.as_mut() {
            hub.config.mark_origin(all);
        }
        publish(&hub, &batch, extras, lost, status, Timestamp::now());
    }
}

/// What one frame's JSON says.
#[derive(Serialize)]
struct Payload<'a> {
    id: &'a str,
    seq: u64,
    time: Timestamp,
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<&'a str>,
    #[serde(flatten)]
    detail: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'a ProcessStatus>,
}

/// The kind of a core event, its process, and what it says beyond that.
fn describe(ev: &Event) -> Option<(&'static str, &Name, Map<String, Value>)> {
    let mut d = Map::new();
    let (kind, name) = match ev {
        Event::Added { name } => ("added", name),
        Event::Removed { name } => ("removed", name),
        Event::StateChanged { name, from, to } => {
            d.insert("from".into(), json!(from));
            d.insert("to".into(), json!(to));
            ("state", name)
        }
        Event::Spawned { name, pid } => {
            d.insert("pid".into(), json!(pid));
            ("spawned", name)
        }
        Event::SpawnFailed { name, error } => {
            d.insert("error".into(), json!(error));
            ("spawn_failed", name)
        }
        Event::Exited {
            name,
            pid,
            exit,
            expected,
        } => {
            d.insert("pid".into(), json!(pid));
            d.insert("exit".into(), json!(exit));
            d.insert("expected".into(), json!(expected));
            ("exited", name)
        }
        Event::RestartScheduled { name, delay_ms } => {
            d.insert("delay_ms".into(), json!(delay_ms));
            ("backoff", name)
        }
        Event::GaveUp { name, reason } => {
            d.insert("reason".into(), json!(reason));
            ("fatal", name)
        }
        Event::Killed { name, pid } => {
            d.insert("pid".into(), json!(pid));
            ("killed", name)
        }
        Event::CheckFailed { name, reason } => {
            d.insert("reason".into(), json!(reason));
            ("check_failed", name)
        }
        Event::Stopped { name } => ("stopped", name),
        Event::OomKilled { name, pid } => {
            d.insert("pid".into(), json!(pid));
            ("oom_killed", name)
        }
        Event::Usage { name, pid, stats } => {
            d.insert("pid".into(), json!(pid));
            d.insert("stats".into(), json!(stats));
            ("usage", name)
        }
        // A kind this version does not know: left out.
        _ => return None,
    };
    Some((kind, name, d))
}

/// An event of a batch before it has an id: process, group, kind, detail,
/// and whether it is about the peers.
type Pending<'a> = (
    Option<Name>,
    Option<Name>,
    &'a str,
    Map<String, Value>,
    bool,
);

/// Appends one batch to the ring and wakes the clients.
fn publish(
    hub: &Hub,
    batch: &[Event],
    extras: Vec<Extra>,
    lost: u64,
    status: Option<Vec<ProcessStatus>>,
    now: Timestamp,
) {
    let by_name: HashMap<&Name, &ProcessStatus> =
        status.iter().flatten().map(|s| (&s.name, s)).collect();
    let mut ring = lock(&hub.ring);
    let mut frames: Vec<Pending<'_>> = Vec::new();
    if lost > 0 {
        // The hub itself fell behind the supervisor: nobody can trust a
        // replay across this point.
        let mut d = Map::new();
        d.insert(
            "reason".into(),
            json!(format!(
                "{lost} events were lost inside the daemon; read /v1/status again"
            )),
        );
        frames.push((None, None, "reset", d, false));
    }
    for ev in batch {
        let Some((kind, name, detail)) = describe(ev) else {
            continue;
        };
        let group = by_name
            .get(name)
            .map(|s| s.group.clone())
            .or_else(|| ring.groups.get(name).cloned());
        frames.push((Some(name.clone()), group, kind, detail, false));
    }
    // Readiness and health have no event of their own in the core: a change
    // seen in the status becomes one.
    if let Some(all) = &status {
        for s in all {
            let was = ring.seen.insert(s.name.clone(), (s.ready, s.health));
            let (was_ready, was_health) = was.unwrap_or((false, Health::Unknown));
            let up = matches!(
                s.state,
                tend_core::StateName::Running | tend_core::StateName::Starting
            );
            if s.ready && !was_ready && up && was.is_some() {
                frames.push((
                    Some(s.name.clone()),
                    Some(s.group.clone()),
                    "ready",
                    Map::new(),
                    false,
                ));
            }
            if s.health != was_health && was.is_some() {
                let kind = match s.health {
                    Health::Healthy => "healthy",
                    Health::Unhealthy => "unhealthy",
                    Health::Unknown => "health_unknown",
                };
                frames.push((
                    Some(s.name.clone()),
                    Some(s.group.clone()),
                    kind,
                    Map::new(),
                    false,
                ));
            }
        }
    }
    for x in extras {
        frames.push((None, None, x.kind, x.detail, x.peer));
    }
    if frames.is_empty() && status.is_none() {
        return;
    }
    for (name, group, kind, detail, peer) in frames {
        let seq = ring.next_seq;
        ring.next_seq += 1;
        let id = format!("{}-{seq}", hub.epoch);
        let st = name.as_ref().and_then(|n| by_name.get(n).copied());
        let payload = Payload {
            id: &id,
            seq,
            time: now,
            kind,
            name: name.as_ref().map(Name::as_str),
            group: group.as_ref().map(Name::as_str),
            detail,
            status: if kind == "removed" { None } else { st },
        };
        let frame = frame(Some(&id), &payload);
        if ring.entries.len() == RING_EVENTS {
            ring.entries.pop_front();
        }
        ring.entries.push_back(Entry {
            seq,
            peer,
            name,
            group,
            frame,
        });
    }
    let gone: Vec<Name> = ring
        .seen
        .keys()
        .filter(|n| status.is_some() && !by_name.contains_key(n))
        .cloned()
        .collect();
    drop(by_name);
    if let Some(all) = status {
        for n in gone {
            ring.seen.remove(&n);
            ring.groups.remove(&n);
        }
        remember(&mut ring, &all);
        let seq = ring.last_seq();
        ring.snapshot = Arc::new(Snapshot {
            id: format!("{}-{seq}", hub.epoch),
            seq,
            time: now,
            processes: all,
        });
    }
    let last = ring.last_seq();
    drop(ring);
    hub.tick.send_replace(last);
}

/// One SSE frame: `id:` (when given), one `data:` line of JSON, a blank line.
fn frame(id: Option<&str>, payload: &impl Serialize) -> Bytes {
    let mut out = Vec::with_capacity(512);
    if let Some(id) = id {
        out.extend_from_slice(b"id: ");
        out.extend_from_slice(id.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    // Plain data into a Vec: cannot fail. JSON has no raw newline.
    let _ = serde_json::to_writer(&mut out, payload);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// The query of `GET /v1/events`, parsed.
#[derive(Debug, Default)]
struct Params {
    names: Vec<Pattern>,
    logs: bool,
    snapshot: bool,
    last_event_id: Option<String>,
    heartbeat: Option<Duration>,
    /// Watch the peers too (`crate::peers`).
    peers: bool,
}

fn flag(key: &str, value: &str) -> Result<bool, ApiError> {
    match value {
        "" | "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "{key}={value:?}: expected 1 or 0 (true or false)"
        ))),
    }
}

fn parse_params(query: Option<&str>) -> Result<Params, ApiError> {
    let mut p = Params::default();
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|s| !s.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value)
            .ok_or_else(|| ApiError::bad_request(format!("malformed query parameter {pair:?}")))?;
        match key {
            "names" | "pattern" => {
                let pat = Pattern::parse(&value)
                    .map_err(|e| ApiError::bad_request(format!("{key}: {e}")))?;
                p.names.push(pat);
            }
            "logs" => p.logs = flag(key, &value)?,
            "snapshot" => p.snapshot = flag(key, &value)?,
            "peers" => p.peers = flag(key, &value)?,
            "last_event_id" => p.last_event_id = Some(value),
            "heartbeat" => {
                let secs: u64 = value.parse().map_err(|_| {
                    ApiError::bad_request(format!("heartbeat={value:?} is not a number of seconds"))
                })?;
                let d = Duration::from_secs(secs);
                if d < MIN_HEARTBEAT {
                    return Err(ApiError::bad_request(format!(
                        "heartbeat={value:?}: at least {} seconds",
                        MIN_HEARTBEAT.as_secs()
                    )));
                }
                p.heartbeat = Some(d);
            }
            _ => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {key:?} (expected names, logs, snapshot, peers, last_event_id or heartbeat)"
                )));
            }
        }
    }
    Ok(p)
}

/// Which events and lines a client wants (and may see).
struct Filter {
    names: Vec<Pattern>,
    caller: Caller,
    /// Whether the client watches the peers (and may).
    peers: bool,
}

impl Filter {
    fn wants_entry(&self, e: &Entry) -> bool {
        if e.peer {
            return self.peers;
        }
        self.wants(e.name.as_ref(), e.group.as_ref())
    }

    fn wants(&self, name: Option<&Name>, group: Option<&Name>) -> bool {
        self.allowed(Right::View, name, group) && self.selected(name, group)
    }

    fn allowed(&self, right: Right, name: Option<&Name>, group: Option<&Name>) -> bool {
        match name {
            Some(n) => self
                .caller
                .may_str(right, n.as_str(), group.unwrap_or(n).as_str()),
            None => true,
        }
    }

    fn selected(&self, name: Option<&Name>, group: Option<&Name>) -> bool {
        if self.names.is_empty() {
            return true;
        }
        match (name, group) {
            (Some(n), Some(g)) => self.names.iter().any(|p| p.matches(n, g)),
            (Some(n), None) => self.names.iter().any(|p| p.matches(n, n)),
            // Daemon-wide events (reloaded, reset) go to everyone.
            (None, _) => true,
        }
    }
}

/// `GET /v1/events?names=P&logs=1&snapshot=1&last_event_id=ID&heartbeat=S`
pub(crate) async fn events(
    State(st): State<Daemon>,
    caller: Caller,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let mut p = parse_params(query.as_deref())?;
    // What the browser sends on a reconnect wins over the first position.
    if let Some(h) = headers.get("last-event-id") {
        let id = h
            .to_str()
            .map_err(|_| ApiError::bad_request("Last-Event-ID is not text"))?;
        p.last_event_id = Some(id.to_string());
    }
    let hub = st.events().await?;
    // Peers are shown to whom may see every process here; to others the
    // parameter asks for nothing.
    let peers = p.peers && caller.may_everything(Right::View);
    let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
    let last = Arc::new(Mutex::new(None));
    let client = Client {
        hub: hub.clone(),
        filter: Filter {
            names: std::mem::take(&mut p.names),
            caller,
            peers,
        },
        tx,
        last: last.clone(),
        peers: peers.then(|| st.peers().clone()),
    };
    let logs = p.logs.then(|| st.supervisor().subscribe_logs());
    tokio::spawn(client.run(p, logs, st.shutdown().clone()));
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            // Proxies must pass each event on as it comes.
            (
                header::HeaderName::from_static("x-accel-buffering"),
                HeaderValue::from_static("no"),
            ),
        ],
        Body::from_stream(SseBody { rx, last }),
    )
        .into_response())
}

/// The response body: the client's queue, then its final frame.
struct SseBody {
    rx: mpsc::Receiver<Bytes>,
    last: Arc<Mutex<Option<Bytes>>>,
}

impl futures_core::Stream for SseBody {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(b)) => Poll::Ready(Some(Ok(b))),
            Poll::Ready(None) => {
                let last = self.last.lock().ok().and_then(|mut l| l.take());
                Poll::Ready(last.map(Ok))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// One client's task: copies what it has not sent from the ring into its
/// queue, waiting only on its own queue.
struct Client {
    hub: EventHub,
    filter: Filter,
    tx: mpsc::Sender<Bytes>,
    /// The final frame (`cutoff`), sent after everything queued.
    last: Arc<Mutex<Option<Bytes>>>,
    /// The peers this client watches (`peers=1`).
    peers: Option<crate::peers::Peers>,
}

/// Where a client's stream starts, after what it is told first.
fn start(hub: &EventHub, p: &Params, filter: &Filter, out: &mut Vec<u8>) -> u64 {
    let ring = lock(&hub.hub.ring);
    let (first, last) = (ring.first_seq(), ring.last_seq());
    let reset = match p.last_event_id.as_deref() {
        None => None,
        Some(id) => match hub.parse_id(id) {
            Some(seq) if seq <= last && seq + 1 >= first => return seq,
            Some(_) => Some("the events after that id are no longer kept"),
            None if id.trim().is_empty() => None,
            None => Some("that id is not one of this daemon's (it restarted?)"),
        },
    };
    let snap = ring.snapshot.clone();
    drop(ring);
    if let Some(why) = reset {
        let reason = format!("{why}: read /v1/status again (or use snapshot=1)");
        out.extend_from_slice(&frame(
            Some(&snap.id),
            &json!({"id": snap.id, "seq": snap.seq, "time": Timestamp::now(), "kind": "reset", "reason": reason}),
        ));
    }
    if p.snapshot {
        let processes: Vec<&ProcessStatus> = snap
            .processes
            .iter()
            .filter(|s| filter.wants(Some(&s.name), Some(&s.group)))
            .collect();
        out.extend_from_slice(&frame(
            Some(&snap.id),
            &json!({"id": snap.id, "seq": snap.seq, "time": snap.time, "kind": "snapshot", "processes": processes}),
        ));
    }
    snap.seq
}

/// What reading the ring after a cursor gave.
enum Read {
    /// Frames up to this sequence number were looked at.
    Upto(u64),
    /// The ring no longer holds the events after the cursor: this many are lost.
    Evicted(u64),
}

impl Client {
    /// Appends the frames after `cursor` that the filter wants, up to about
    /// [`CHUNK_BYTES`].
    fn read(&self, cursor: u64, out: &mut Vec<u8>) -> Read {
        let ring = lock(&self.hub.hub.ring);
        let first = ring.first_seq();
        if cursor + 1 < first {
            return Read::Evicted(first - cursor - 1);
        }
        let skip = usize::try_from(cursor + 1 - first).unwrap_or(usize::MAX);
        let mut upto = cursor;
        for e in ring.entries.iter().skip(skip) {
            if out.len() >= CHUNK_BYTES {
                break;
            }
            if self.filter.wants_entry(e) {
                out.extend_from_slice(&e.frame);
            }
            upto = e.seq;
        }
        Read::Upto(upto)
    }

    fn log_lines(&self, out: &mut Vec<u8>, c: &LogChunk) {
        let group = lock(&self.hub.hub.ring).groups.get(&c.name).cloned();
        let (name, group) = (Some(&c.name), group.as_ref());
        if !self.filter.selected(name, group) || !self.filter.allowed(Right::Logs, name, group) {
            return;
        }
        for item in crate::json::logs::chunk_items(c) {
            #[derive(Serialize)]
            struct LogFrame<'a> {
                kind: &'static str,
                #[serde(flatten)]
                line: &'a LogLineItem,
            }
            out.extend_from_slice(&frame(
                None,
                &LogFrame {
                    kind: "log",
                    line: &item,
                },
            ));
        }
    }

    async fn run(
        self,
        p: Params,
        mut logs: Option<broadcast::Receiver<LogChunk>>,
        shutdown: Shutdown,
    ) {
        let mut tick = self.hub.hub.tick.subscribe();
        let mut out = b"retry: 1000\n\n".to_vec();
        let mut cursor = start(&self.hub, &p, &self.filter, &mut out);
        // After the start: the views published for this watcher follow it.
        let _watching = self.peers.as_ref().map(|peers| peers.watch(&self.hub));
        let ended = shutdown.streams_ended();
        tokio::pin!(ended);
        let mut beat = p.heartbeat.map(|d| {
            let mut i = tokio::time::interval_at(tokio::time::Instant::now() + d, d);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
        loop {
            // Everything there is to send, one chunk at a time, until a read
            // finds nothing new (a wake-up consumed while sending is not lost).
            loop {
                match self.read(cursor, &mut out) {
                    Read::Upto(seq) => {
                        let progressed = seq > cursor;
                        cursor = seq;
                        if !out.is_empty() && !self.send(&mut out, cursor, &mut tick).await {
                            return;
                        }
                        if !progressed {
                            break;
                        }
                    }
                    Read::Evicted(n) => return self.cut(cursor, n),
                }
            }
            tokio::select! {
                _ = self.tx.closed() => return,
                _ = &mut ended => return,
                changed = tick.changed() => if changed.is_err() { return },
                chunk = recv_logs(&mut logs) => match chunk {
                    Ok(c) => self.log_lines(&mut out, &c),
                    Err(broadcast::error::RecvError::Lagged(n)) => out.extend_from_slice(&frame(
                        None,
                        &json!({"kind": "log_lagged", "lagged": n}),
                    )),
                    Err(broadcast::error::RecvError::Closed) => logs = None,
                },
                _ = tick_beat(&mut beat) => out.extend_from_slice(b": keep-alive\n\n"),
            }
        }
    }

    /// Queues `out` toward the connection, waiting for room; gives up (false)
    /// when the client went away or fell so far behind that the ring
    /// overwrote what it has not sent yet (then it is cut off).
    async fn send(&self, out: &mut Vec<u8>, cursor: u64, tick: &mut watch::Receiver<u64>) -> bool {
        loop {
            tokio::select! {
                permit = self.tx.reserve() => {
                    let Ok(permit) = permit else { return false };
                    permit.send(Bytes::from(std::mem::take(out)));
                    return true;
                }
                changed = tick.changed() => {
                    if changed.is_err() {
                        return false;
                    }
                    let first = lock(&self.hub.hub.ring).first_seq();
                    if cursor + 1 < first {
                        self.cut(cursor, first - cursor - 1);
                        return false;
                    }
                }
            }
        }
    }

    /// Ends the stream with a `cutoff` event (sent after what is queued).
    fn cut(&self, cursor: u64, missed: u64) {
        let body = json!({
            "kind": "cutoff",
            "time": Timestamp::now(),
            "last_sent": self.hub.id(cursor),
            "missed": missed,
            "reason": format!(
                "this client read too slowly: {missed} events it had not received were dropped \
                 from the daemon's ring of {RING_EVENTS}; reconnect and read /v1/status again"
            ),
        });
        if let Ok(mut l) = self.last.lock() {
            *l = Some(frame(None, &body));
        }
        tracing::info!("an event stream client was cut off ({missed} events behind)");
    }
}

async fn recv_logs(
    logs: &mut Option<broadcast::Receiver<LogChunk>>,
) -> Result<LogChunk, broadcast::error::RecvError> {
    match logs {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn tick_beat(beat: &mut Option<tokio::time::Interval>) {
    match beat {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
