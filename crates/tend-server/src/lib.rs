//! # tend-server: the HTTP surface of tend as a library
//!
//! [`router`] builds the JSON API (see `docs/api.md`) on top of a
//! [`tend_core::Supervisor`]; [`UnixServer`] (or the [`serve_unix`] shortcut)
//! serves it on a Unix socket. The request and response types live in [`api`],
//! so the `tend` client and the server cannot drift apart.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use tend_core::{Options, Supervisor};
//! use tend_server::{Shutdown, router, serve_unix};
//!
//! let (sup, _driver) = Supervisor::spawn(Options::default(), true)?;
//! let shutdown = Shutdown::new();
//! let app = router(sup.clone(), shutdown.clone());
//! let until = { let s = shutdown.clone(); async move { s.triggered().await } };
//! serve_unix("/run/tend.sock".as_ref(), 0o600, app, until).await?;
//! sup.shutdown().await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod api;
mod error;
mod extract;
mod handlers;
mod unix;

use axum::Router;
use axum::routing::{delete, get, post};
use tokio::sync::watch;

pub use error::ApiError;
pub use unix::{ServeError, UnixServer, serve_unix};

/// A one-way latch that asks the daemon to shut down (`POST /v1/shutdown`).
///
/// The server only pulls it; whoever runs the daemon waits on
/// [`Shutdown::triggered`] and then stops the supervisor and the server.
#[derive(Clone, Debug)]
pub struct Shutdown {
    tx: watch::Sender<bool>,
}

impl Shutdown {
    /// A latch that has not been pulled.
    pub fn new() -> Self {
        Shutdown {
            tx: watch::Sender::new(false),
        }
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

#[derive(Clone)]
pub(crate) struct AppState {
    sup: tend_core::Supervisor,
    shutdown: Shutdown,
}

/// The JSON API under `/v1`, acting on `sup`. `POST /v1/shutdown` pulls `shutdown`.
pub fn router(sup: tend_core::Supervisor, shutdown: Shutdown) -> Router {
    Router::new()
        .route("/v1/status", get(handlers::status))
        .route("/v1/start", post(handlers::start))
        .route("/v1/stop", post(handlers::stop))
        .route("/v1/restart", post(handlers::restart))
        .route("/v1/signal", post(handlers::signal))
        .route("/v1/processes", post(handlers::add))
        .route("/v1/processes/{name}", delete(handlers::remove))
        .route("/v1/version", get(handlers::version))
        .route("/v1/shutdown", post(handlers::shutdown))
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .with_state(AppState { sup, shutdown })
}

#[cfg(test)]
mod tests;
