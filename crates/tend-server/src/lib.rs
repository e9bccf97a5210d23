//! # tend-server: the faces of the daemon over one handle
//!
//! Every face of a tend daemon takes one [`Daemon`]: the supervisor, the
//! config state ([`ConfigState`]: groups, reloads) and the shutdown latch.
//! This crate serves the JSON API (see `docs/api.md`) on it ([`json_router`],
//! or [`router`] for a bare [`tend_core::Supervisor`]), puts every listener
//! behind one access guard ([`access`]: who is asking, what it may do, on
//! every face), and binds them: [`UnixServer`] (or the
//! [`serve_unix`] shortcut) on a Unix socket, [`TcpServer`] on TCP. Other
//! faces (Supervisor's XML-RPC in `tend-supervisor`) bring their own routes
//! and are merged into a listener's by [`app`], which also serves
//! `GET /metrics` ([`metrics`]) and counts every request by door. The request and response
//! types live in [`api`], so the `tend` client and the server cannot drift
//! apart.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use tend_core::{Options, Supervisor};
//! use tend_server::{Shutdown, router, serve_unix};
//!
//! let (sup, _driver) = Supervisor::spawn(Options::default(), true)?;
//! let shutdown = Shutdown::new();
//! let app = router(sup.clone(), shutdown.clone());
//! // Log followers (`GET /v1/logs?follow=true`) hold their connection open
//! // until told to end: do so before the server stops.
//! let until = { let s = shutdown.clone(); async move { s.triggered().await; s.end_streams() } };
//! serve_unix("/run/tend.sock".as_ref(), 0o600, app, until).await?;
//! sup.shutdown().await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod access;
pub mod api;
pub mod auth;
pub mod caller;
mod daemon;
pub mod events;
pub mod health;
pub mod html;
mod json;
pub mod listen;
pub mod metrics;
pub mod peers;
pub mod state;
pub mod web;

use tokio::sync::watch;

pub use auth::BasicAuth;
/// The router type every face builds (axum's).
pub use axum::Router;
pub use daemon::{AddError, Daemon, PrepareSpec, SaveSpec};
pub use events::EventHub;
pub use health::{health_only_router, health_router};
pub use json::{
    ApiError, ChannelStream, OPENAPI, ROUTES, json_router, parse_add_request, parse_body, router,
};
/// The types of the endpoints the dashboard added (graph, tasks, resources, stdin).
pub mod more {
    pub use crate::json::{
        Edge, Graph, Resources, StdinRequest, StdinResponse, TaskItem, TaskSchedule, Usage,
    };
}
pub use listen::{
    Connections, Limits, Peer, ServeError, ServerTls, TcpServer, Tls, TlsClient, TlsError,
    UnixServer, serve_connection, serve_unix,
};
pub use state::ConfigState;

/// A one-way latch that asks the daemon to shut down (`POST /v1/shutdown`).
///
/// The server only pulls it; whoever runs the daemon waits on
/// [`Shutdown::triggered`] and then stops the supervisor and the server.
///
/// It holds a second latch for the live log streams: a follower of
/// `GET /v1/logs?follow=true` keeps its connection open until
/// [`Shutdown::end_streams`], so that it still sees the output of processes
/// while they stop. Pull it before ending the server, whose graceful shutdown
/// otherwise waits for those connections.
#[derive(Clone, Debug)]
pub struct Shutdown {
    tx: watch::Sender<bool>,
    streams: watch::Sender<bool>,
}

impl Shutdown {
    /// A latch that has not been pulled.
    pub fn new() -> Self {
        Shutdown {
            tx: watch::Sender::new(false),
            streams: watch::Sender::new(false),
        }
    }

    /// Ends every live log stream (their responses finish). Idempotent.
    pub fn end_streams(&self) {
        self.streams.send_replace(true);
    }

    /// Resolves once [`Shutdown::end_streams`] has been called.
    pub async fn streams_ended(&self) {
        let mut rx = self.streams.subscribe();
        let _ = rx.wait_for(|ended| *ended).await;
    }

    /// Pulls the latch. Idempotent.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// Whether the latch has been pulled.
    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }

    /// Resolves once the latch has been pulled (at once if it already was).
    pub async fn triggered(&self) {
        let mut rx = self.tx.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = rx.wait_for(|pulled| *pulled).await;
    }
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

/// The engine's tasks (a task with `terminate = true`, a second stop signal)
/// pull the daemon's latch.
impl tend_core::runtime::tasks::ShutdownLatch for Shutdown {
    fn trigger(&self) {
        Shutdown::trigger(self);
    }

    fn is_triggered(&self) -> bool {
        Shutdown::is_triggered(self)
    }

    async fn triggered(&self) {
        Shutdown::triggered(self).await;
    }
}

/// What one listener serves, and to whom.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Listener {
    /// Serve the JSON API under `/v1`.
    pub json_api: bool,
    /// Put every face behind the daemon's access guard as this door
    /// ([`access::Access::guard`]); `auth` and `trust_owner` are then unused.
    pub door: Option<access::Door>,
    /// Require these HTTP Basic credentials on every route.
    pub auth: Option<BasicAuth>,
    /// On a Unix socket, let a peer running as the daemon's user or root use
    /// the JSON API without credentials: `tend`'s own CLI.
    pub trust_owner: bool,
}

impl Listener {
    /// A listener with these settings.
    pub fn new(json_api: bool, auth: Option<BasicAuth>, trust_owner: bool) -> Listener {
        Listener {
            json_api,
            door: None,
            auth,
            trust_owner,
        }
    }

    /// A listener behind the daemon's access guard as `door`: who may do
    /// what is the daemon's [`access::Access`], on every face.
    pub fn guarded(json_api: bool, door: access::Door) -> Listener {
        Listener {
            json_api,
            door: Some(door),
            auth: None,
            trust_owner: false,
        }
    }
}

/// Everything one listener serves: the JSON API (with `listener.json_api`)
/// merged with `faces`, the other faces' routes. With `listener.door`, all
/// of it is behind the daemon's access guard (the daemon uses this), with
/// `GET /metrics` beside it and every request counted in the daemon's
/// [`metrics::Metrics`] as that door;
/// otherwise only the JSON API is, behind `listener.auth` when set (which
/// its owner on a Unix socket may skip with `listener.trust_owner`), and
/// the other faces guard themselves.
pub fn app(daemon: Daemon, listener: &Listener, faces: impl IntoIterator<Item = Router>) -> Router {
    // `/healthz` and `/readyz` need no credentials on any listener: a
    // kubelet's probe has none, and they tell no more than up or not.
    // Merged after the guard's layer, so it does not wrap them.
    let health = health::health_router(daemon.clone());
    let mut router = Router::new();
    for face in faces {
        router = router.merge(face);
    }
    if let Some(door) = &listener.door {
        router = router.merge(metrics::router(daemon.clone()));
        if listener.json_api {
            // The dashboard talks only to the JSON API: it is served with it.
            router = router
                .merge(json_router(daemon.clone()))
                .merge(web::router(daemon.clone()));
        }
        let guarded = daemon.access().guard(router, door.clone());
        return health.merge(metrics::count_requests(
            guarded,
            daemon.metrics().clone(),
            &door.name,
        ));
    }
    if listener.json_api {
        // The dashboard talks only to the JSON API: it is served with it.
        let mut r = json_router(daemon.clone()).merge(web::router(daemon));
        if let Some(auth) = &listener.auth {
            r = auth::require_auth(r, auth.clone(), listener.trust_owner, auth::plain_page);
        }
        router = router.merge(r);
    }
    health.merge(router)
}

#[cfg(test)]
mod health_tests;
#[cfg(test)]
mod tests;
