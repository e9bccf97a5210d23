//! The JSON API under `/v1` (see `docs/api.md`): one route per verb, one
//! small handler per route, over the [`Daemon`] handle.
//!
//! The routes are one table ([`ROUTES`]), from which the router is built and
//! against which the OpenAPI document (`GET /v1/openapi.json`) is checked:
//! a route missing from the document fails the tests.

mod error;
mod extract;
mod handlers;
pub(crate) mod logs;
mod more;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use tend_core::Supervisor;

use crate::{Daemon, Shutdown};

pub use error::ApiError;
pub use extract::parse as parse_body;
pub use handlers::parse_add_request;
pub use logs::ChannelStream;
pub use more::{
    Edge, Graph, Resources, StdinRequest, StdinResponse, TaskItem, TaskSchedule, Usage,
};

/// The OpenAPI 3.1 document of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Declares the route table once: the list and the router.
macro_rules! routes {
    ($($method:ident $path:literal => $handler:expr;)*) => {
        /// Every route of the JSON API, as `(method, path)`.
        pub const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path)),*];

        fn table() -> Router<Daemon> {
            Router::new()$(.route($path, $method($handler)))*
        }
    };
}

routes! {
    get "/v1/status" => handlers::status;
    post "/v1/start" => handlers::start;
    post "/v1/stop" => handlers::stop;
    post "/v1/restart" => handlers::restart;
    post "/v1/signal" => handlers::signal;
    post "/v1/stdin" => more::stdin;
    post "/v1/processes" => handlers::add;
    delete "/v1/processes/{name}" => handlers::remove;
    get "/v1/logs" => logs::logs;
    get "/v1/logs/file" => more::log_file;
    get "/v1/logs/files" => more::log_files;
    post "/v1/logs/reopen" => logs::reopen;
    get "/v1/events" => crate::events::events;
    get "/v1/graph" => more::graph;
    get "/v1/tasks" => more::tasks;
    get "/v1/resources" => more::resources;
    get "/v1/version" => handlers::version;
    get "/v1/peers" => crate::peers::list_peers;
    get "/v1/peers/{peer}/processes" => crate::peers::peer_processes;
    post "/v1/peers/{peer}/processes/{name}/{action}" => crate::peers::peer_action;
    get "/v1/telemetry" => crate::metrics::telemetry;
    get "/v1/openapi.json" => openapi;
    post "/v1/reload" => handlers::reload;
    post "/v1/shutdown" => handlers::shutdown;
}

/// `GET /v1/openapi.json`
async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

/// The JSON API under `/v1`, acting on `sup` (no config file: `POST
/// /v1/reload` answers 404). `POST /v1/shutdown` pulls `shutdown`.
pub fn router(sup: Supervisor, shutdown: Shutdown) -> Router {
    json_router(Daemon::without_config(sup, shutdown))
}

/// The JSON API under `/v1`, acting on `daemon`.
pub fn json_router(daemon: Daemon) -> Router {
    table()
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .with_state(daemon)
}

#[cfg(test)]
mod openapi_tests;
