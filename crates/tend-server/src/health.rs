//! `GET /healthz` and `GET /readyz`: what a Kubernetes kubelet (or a load
//! balancer, or `curl -f`) asks of a daemon, answered without credentials
//! and saying no more than that.
//!
//! - `/healthz` is 200 `ok` while the supervisor answers (a status round
//!   trip to its driver within [`ANSWER_WITHIN`]), 503 otherwise: a liveness
//!   probe restarts a daemon whose engine is stuck, not one that is busy.
//! - `/readyz` is 200 `ready` when every process marked `ready_gate = true`
//!   is running and ready (its readiness check passed or it sent
//!   `READY=1`), 503 with the list of those that are not, and 503 once the
//!   daemon is shutting down, so that traffic stops before the processes do.
//!
//! Both are on every listener (before its credentials) and on the health
//! listener of their own (`[http] health`), which serves nothing else.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tend_core::StateName;

use crate::Daemon;

/// How long the driver may take to answer before `/healthz` says it is
/// unhealthy.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(2);

/// The two routes alone (the health listener serves this router; other
/// listeners merge it).
pub fn health_router(daemon: Daemon) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(daemon)
}

/// The health listener's whole router: the two routes, and 404 for the rest.
pub fn health_only_router(daemon: Daemon) -> Router {
    health_router(daemon).fallback(|| async { text(StatusCode::NOT_FOUND, "not found\n".into()) })
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// `GET /healthz`
async fn healthz(State(daemon): State<Daemon>) -> Response {
    match tokio::time::timeout(ANSWER_WITHIN, daemon.supervisor().status()).await {
        Ok(Ok(_)) => text(StatusCode::OK, "ok\n".into()),
        Ok(Err(_)) if daemon.shutdown().is_triggered() => {
            text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n".into())
        }
        Ok(Err(e)) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
        Err(_) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the supervisor did not answer within {}\n",
                tend_core::duration::format(ANSWER_WITHIN)
            ),
        ),
    }
}

/// `GET /readyz`
async fn readyz(State(daemon): State<Daemon>) -> Response {
    if daemon.shutdown().is_triggered() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n".into());
    }
    let status = match tokio::time::timeout(ANSWER_WITHIN, daemon.supervisor().status()).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return text(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
        Err(_) => {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "the supervisor did not answer\n".into(),
            );
        }
    };
    let gated: Vec<tend_core::Name> = daemon.config().with_procs(|procs| {
        procs
            .values()
            .filter(|p| p.spec.ready_gate)
            .map(|p| p.spec.name.clone())
            .collect()
    });
    let not_ready: Vec<String> = gated
        .iter()
        .filter_map(|name| match status.iter().find(|s| &s.name == name) {
            Some(s) if s.state == StateName::Running && s.ready => None,
            Some(s) if s.state == StateName::Running => Some(format!("{name} (not ready)")),
            Some(s) => Some(format!("{name} ({})", s.state)),
            // Registered in the config but not (yet, or any more) in the
            // supervisor: not ready either.
            None => Some(format!("{name} (not added)")),
        })
        .collect();
    if not_ready.is_empty() {
        text(StatusCode::OK, "ready\n".into())
    } else {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", not_ready.join(", ")),
        )
    }
}
