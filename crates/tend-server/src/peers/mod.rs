//! The other daemons the dashboard shows beside this one (tend.toml's
//! `[[peer]]`, `docs/fleet.md`): each peer's health and processes, read
//! from its own `GET /v1/events` stream, and actions on them forwarded with
//! the peer's token.
//!
//! Nothing runs while nobody looks: a peer is connected to only while at
//! least one client of the local event stream asked for `peers=1` (the
//! dashboard does) and may see every process. The first such client starts
//! one task per peer; the last one to go stops them, and the daemon is back
//! to no wake-up at all. While watched, each task holds one connection to
//! its peer (a keep-alive comment every [`HEARTBEAT`] tells a vanished
//! machine from a quiet one) and, when it breaks, marks the peer unreachable
//! and connects again with a growing pause ([`backoff`]).
//!
//! Every change is an event of the local stream (`peer`, `peer_process`,
//! `peers`), so the page is live; `GET /v1/peers` and
//! `GET /v1/peers/{peer}/processes` answer the same view.

mod client;
mod routes;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::task::AbortHandle;

use crate::events::EventHub;

pub(crate) use routes::{peer_action, peer_processes, peers as list_peers};

/// How often a watched peer is asked for a keep-alive comment: three
/// missed in a row and the connection is given up as dead.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// The longest pause between two connection attempts to a peer.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The pause before the next attempt after `failures` failed ones in a row:
/// half a second, doubling, at most [`MAX_BACKOFF`].
pub fn backoff(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let ms = 500u64.saturating_mul(1u64 << failures.saturating_sub(1).min(16));
    Duration::from_millis(ms).min(MAX_BACKOFF)
}

/// One peer: where it listens and how this daemon logs in to it.
pub struct PeerSpec {
    /// Its name (`[[peer]] name`).
    pub name: String,
    /// Its URL as written, for the page.
    pub url: String,
    /// How to reach it.
    pub endpoint: PeerEndpoint,
    /// The `Authorization` header's value, if any (`Bearer TOKEN`).
    pub authorization: Option<String>,
    /// How long connecting and a plain answer may take.
    pub timeout: Duration,
}

impl std::fmt::Debug for PeerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerSpec")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("authorization", &self.authorization.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

/// Where a peer listens.
pub enum PeerEndpoint {
    /// A Unix socket (a second daemon on this machine).
    Unix(PathBuf),
    /// TCP, in TLS with this configuration (`https`) or plain (`http`, on
    /// loopback only).
    Tcp {
        /// A name or an address (an IPv6 one without brackets).
        host: String,
        /// The port.
        port: u16,
        /// The client's TLS configuration (its trust, its certificate).
        tls: Option<Arc<rustls::ClientConfig>>,
    },
}

impl PeerEndpoint {
    fn host_header(&self) -> String {
        match self {
            PeerEndpoint::Unix(_) => "localhost".to_string(),
            PeerEndpoint::Tcp { host, port, .. } if host.contains(':') => {
                format!("[{host}]:{port}")
            }
            PeerEndpoint::Tcp { host, port, .. } => format!("{host}:{port}"),
        }
    }
}

/// Whether a peer answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerState {
    /// Nobody watches: no connection is held (the view is the last one seen).
    Idle,
    /// The first connection is being made.
    Connecting,
    /// Its event stream is open.
    Reachable,
    /// The last attempt failed (see `error`); another one follows.
    Unreachable,
}

/// What this daemon knows of one peer.
#[derive(Debug, Clone, Serialize)]
pub struct PeerView {
    /// Its name.
    pub name: String,
    /// Its URL.
    pub url: String,
    /// Whether it answers.
    pub state: PeerState,
    /// Since when it is in that state.
    pub since: Timestamp,
    /// Why the last attempt failed (when unreachable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Its version (`GET /v1/version`), once it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// How many of its processes are in which state (`running`, `fatal`...).
    pub counts: BTreeMap<String, usize>,
    /// Its processes (as its `GET /v1/status` shows them), in its order.
    #[serde(skip)]
    pub processes: Vec<Value>,
}

impl PeerView {
    fn new(spec: &PeerSpec) -> PeerView {
        PeerView {
            name: spec.name.clone(),
            url: spec.url.clone(),
            state: PeerState::Idle,
            since: Timestamp::now(),
            error: None,
            version: None,
            counts: BTreeMap::new(),
            processes: Vec::new(),
        }
    }

    fn recount(&mut self) {
        self.counts.clear();
        for p in &self.processes {
            let state = p.get("state").and_then(Value::as_str).unwrap_or("unknown");
            *self.counts.entry(state.to_string()).or_default() += 1;
        }
    }

    fn set_state(&mut self, state: PeerState, error: Option<String>) -> bool {
        let changed = self.state != state || self.error != error;
        if self.state != state {
            self.since = Timestamp::now();
        }
        self.state = state;
        self.error = error;
        changed
    }
}

/// The peers of one daemon and what is known of them. Cloning is cheap;
/// every clone is the same set.
#[derive(Clone, Default)]
pub struct Peers {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.lock();
        f.debug_struct("Peers")
            .field("peers", &st.specs.len())
            .field("viewers", &st.viewers)
            .finish()
    }
}

#[derive(Default)]
struct Inner {
    specs: Vec<Arc<PeerSpec>>,
    views: HashMap<String, PeerView>,
    /// Clients of the event stream that watch the peers.
    viewers: usize,
    /// Where changes are published while watched.
    hub: Option<EventHub>,
    /// One task per peer while watched.
    tasks: HashMap<String, AbortHandle>,
}

impl Inner {
    fn ordered(&self) -> Vec<&PeerView> {
        self.specs
            .iter()
            .filter_map(|s| self.views.get(&s.name))
            .collect()
    }
}

impl Peers {
    /// The set of `specs` (nothing is connected to until someone watches).
    pub fn new(specs: Vec<PeerSpec>) -> Peers {
        let peers = Peers::default();
        peers.replace(specs);
        peers
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The views stay consistent even if a holder panicked.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether there are any peers at all.
    pub fn is_empty(&self) -> bool {
        self.lock().specs.is_empty()
    }

    /// Whether anyone watches (and so the peers are connected to).
    pub fn watched(&self) -> bool {
        self.lock().viewers > 0
    }

    /// The peers become `specs` (a reload): the ones gone are forgotten,
    /// and while watched every peer is connected to again.
    pub fn replace(&self, specs: Vec<PeerSpec>) {
        let mut st = self.lock();
        for (_, t) in st.tasks.drain() {
            t.abort();
        }
        let specs: Vec<Arc<PeerSpec>> = specs.into_iter().map(Arc::new).collect();
        let mut views = HashMap::new();
        for s in &specs {
            let mut v = st.views.remove(&s.name).unwrap_or_else(|| PeerView::new(s));
            v.url = s.url.clone();
            views.insert(s.name.clone(), v);
        }
        st.views = views;
        st.specs = specs;
        if st.viewers > 0 {
            self.start_all(&mut st);
            let list: Vec<&PeerView> = st.ordered();
            let detail = json!({ "peers": list });
            if let Some(hub) = &st.hub {
                hub.peer_event("peers", into_map(detail));
            }
        }
    }

    fn start_all(&self, st: &mut Inner) {
        for spec in st.specs.clone() {
            if let Some(v) = st.views.get_mut(&spec.name) {
                v.set_state(PeerState::Connecting, None);
            }
            let task = tokio::spawn(client::run(self.clone(), spec.clone()));
            st.tasks.insert(spec.name.clone(), task.abort_handle());
        }
    }

    /// One more watcher; the first starts the connections. The peers stay
    /// watched until the returned guard is dropped. Every view is published
    /// to `hub` at once, so this watcher starts with all of them.
    pub fn watch(&self, hub: &EventHub) -> Watching {
        let mut st = self.lock();
        st.viewers += 1;
        if st.viewers == 1 {
            st.hub = Some(hub.clone());
            self.start_all(&mut st);
        }
        for v in st.ordered() {
            hub.peer_event("peer", view_detail(v, true));
        }
        Watching {
            peers: self.clone(),
        }
    }

    fn unwatch(&self) {
        let mut st = self.lock();
        st.viewers = st.viewers.saturating_sub(1);
        if st.viewers > 0 {
            return;
        }
        for (_, t) in st.tasks.drain() {
            t.abort();
        }
        st.hub = None;
        for v in st.views.values_mut() {
            v.set_state(PeerState::Idle, None);
        }
    }

    /// Every peer's view, in the config's order.
    pub fn views(&self) -> Vec<PeerView> {
        self.lock().ordered().into_iter().cloned().collect()
    }

    /// One peer's view.
    pub fn view(&self, name: &str) -> Option<PeerView> {
        self.lock().views.get(name).cloned()
    }

    /// One peer's spec.
    pub(crate) fn spec(&self, name: &str) -> Option<Arc<PeerSpec>> {
        self.lock().specs.iter().find(|s| s.name == name).cloned()
    }

    /// Changes `name`'s view with `f` (if it still is a peer of the
    /// current set, `spec` being the one its task runs for) and publishes
    /// the event `f` returns.
    fn update(
        &self,
        spec: &Arc<PeerSpec>,
        f: impl FnOnce(&mut PeerView) -> Option<(&'static str, Map<String, Value>)>,
    ) {
        let mut st = self.lock();
        if !st.specs.iter().any(|s| Arc::ptr_eq(s, spec)) {
            return;
        }
        let Some(view) = st.views.get_mut(&spec.name) else {
            return;
        };
        let event = f(view);
        if let (Some((kind, detail)), Some(hub)) = (event, &st.hub) {
            hub.peer_event(kind, detail);
        }
    }
}

/// The event detail of a whole view (with its processes when `processes`).
fn view_detail(v: &PeerView, processes: bool) -> Map<String, Value> {
    let mut d = Map::new();
    d.insert("peer".into(), json!(v));
    if processes {
        d.insert("processes".into(), Value::Array(v.processes.clone()));
    }
    d
}

fn into_map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Keeps the peers watched while held (see [`Peers::watch`]).
pub struct Watching {
    peers: Peers,
}

impl std::fmt::Debug for Watching {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Watching")
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.peers.unwatch();
    }
}

#[cfg(test)]
mod tests;
