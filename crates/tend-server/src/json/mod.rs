//! The JSON API under `/v1` (see `docs/api.md`): one route per verb, one
//! small handler per route, over the [`Daemon`] handle.

mod error;
mod extract;
mod handlers;
mod logs;

use axum::Router;
use axum::routing::{delete, get, post};
use tend_core::Supervisor;

use crate::{Daemon, Shutdown};

pub use error::ApiError;
pub use extract::parse as parse_body;
pub use handlers::parse_add_request;
pub use logs::ChannelStream;

/// The JSON API under `/v1`, acting on `sup` (no config file: `POST
/// /v1/reload` answers 404). `POST /v1/shutdown` pulls `shutdown`.
pub fn router(sup: Supervisor, shutdown: Shutdown) -> Router {
    json_router(Daemon::without_config(sup, shutdown))
}

/// The JSON API under `/v1`, acting on `daemon`.
pub fn json_router(daemon: Daemon) -> Router {
    Router::new()
        .route("/v1/status", get(handlers::status))
        .route("/v1/start", post(handlers::start))
        .route("/v1/stop", post(handlers::stop))
        .route("/v1/restart", post(handlers::restart))
        .route("/v1/signal", post(handlers::signal))
        .route("/v1/processes", post(handlers::add))
        .route("/v1/processes/{name}", delete(handlers::remove))
        .route("/v1/logs", get(logs::logs))
        .route("/v1/logs/reopen", post(logs::reopen))
        .route("/v1/version", get(handlers::version))
        .route("/v1/reload", post(handlers::reload))
        .route("/v1/shutdown", post(handlers::shutdown))
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .with_state(daemon)
}
