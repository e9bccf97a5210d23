//! `GET /v1/peers`, `GET /v1/peers/{peer}/processes` and
//! `POST /v1/peers/{peer}/processes/{name}/{action}`.
//!
//! Seeing the peers takes the `view` right over every process of this
//! daemon; acting on one takes `control` over every process here, and then
//! whatever the peer itself grants the token it is sent with: its answer
//! (success or refusal) comes back as it is.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::Method;
use serde_json::{Value, json};

use crate::Daemon;
use crate::access::{Caller, Right};
use crate::json::ApiError;

/// How long a forwarded action may take (a start waits for the process).
const ACTION_TIMEOUT: Duration = Duration::from_secs(120);

/// `GET /v1/peers`
pub(crate) async fn peers(State(st): State<Daemon>, caller: Caller) -> Result<Response, ApiError> {
    caller.require_everything(Right::View, "see the peers")?;
    let peers = st.peers();
    Ok(Json(json!({
        "watched": peers.watched(),
        "peers": peers.views(),
    }))
    .into_response())
}

/// `GET /v1/peers/{peer}/processes`
pub(crate) async fn peer_processes(
    State(st): State<Daemon>,
    caller: Caller,
    Path(peer): Path<String>,
) -> Result<Response, ApiError> {
    caller.require_everything(Right::View, "see the peers")?;
    let view = st
        .peers()
        .view(&peer)
        .ok_or_else(|| ApiError::not_found(format!("no peer named {peer:?}")))?;
    Ok(Json(Value::Array(view.processes)).into_response())
}

/// `POST /v1/peers/{peer}/processes/{name}/{action}`: `start`, `stop` or
/// `restart` of one process of a peer, by the peer.
pub(crate) async fn peer_action(
    State(st): State<Daemon>,
    caller: Caller,
    Path((peer, name, action)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    if !matches!(action.as_str(), "start" | "stop" | "restart") {
        return Err(ApiError::not_found(format!(
            "unknown action {action:?} (expected start, stop or restart)"
        )));
    }
    let what = format!("{action} a peer's process");
    if let Err(denied) = caller.require_everything(Right::Control, &what) {
        caller.audit_denied(&action, &format!("{peer}/{name}"), &denied);
        return Err(denied.into());
    }
    let spec = st
        .peers()
        .spec(&peer)
        .ok_or_else(|| ApiError::not_found(format!("no peer named {peer:?}")))?;
    let body = serde_json::to_vec(&json!({ "targets": [name] }))
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let path = format!("/v1/{action}");
    let answer = super::client::call(&spec, Method::POST, &path, Some(body), ACTION_TIMEOUT).await;
    let target = format!("{peer}/{name}");
    match answer {
        Ok((status, body)) => {
            let outcome = if status.is_success() {
                "forwarded".to_string()
            } else {
                format!("refused by the peer ({})", status.as_u16())
            };
            caller.audit(&action, &target, &outcome);
            Ok((status, [(header::CONTENT_TYPE, "application/json")], body).into_response())
        }
        Err(e) => {
            let message = format!("peer {peer:?} is unreachable: {e}");
            caller.audit(&action, &target, &message);
            Err(ApiError::new(StatusCode::BAD_GATEWAY, message))
        }
    }
}
