//! One small handler per verb. A new verb is one route in [`super::json_router`]
//! plus one function here (and, in tend-core, one `Request` variant).

use std::collections::HashSet;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{Method, StatusCode, Uri};
use tend_core::pattern::Pattern;
use tend_core::{ActionResult, Error, Name, ProcessSpec, ProcessStatus, Supervisor};

use super::error::ApiError;
use super::extract::JsonBody;
use crate::Daemon;
use crate::api::{
    ActionResponse, NameResponse, ReloadResponse, ShutdownResponse, SignalRequest, StartRequest,
    TargetsRequest, VersionResponse, percent_decode,
};
use crate::daemon::AddError;

type ApiResult<T> = Result<T, ApiError>;

/// `GET /v1/status?pattern=P...`
pub(crate) async fn status(
    State(st): State<Daemon>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Vec<ProcessStatus>>> {
    let (patterns, stats) = status_patterns(query.as_deref())?;
    let all = if stats {
        st.supervisor().status_with_stats().await?
    } else {
        st.supervisor().status().await?
    };
    if patterns.is_empty() {
        return Ok(Json(all));
    }
    let names: HashSet<Name> = select(&all, &patterns)?.into_iter().collect();
    let selected = all
        .into_iter()
        .filter(|s| names.contains(&s.name))
        .collect();
    Ok(Json(selected))
}

/// The names of the processes in `all` that match any of `patterns` (every
/// process when there is none), in the order of `all`. A pattern that
/// matches nothing is an error, as in `Supervisor::resolve`.
pub(crate) fn select(all: &[ProcessStatus], patterns: &[String]) -> ApiResult<Vec<Name>> {
    if patterns.is_empty() {
        return Ok(all.iter().map(|s| s.name.clone()).collect());
    }
    // Filtering a status snapshot rather than calling `Supervisor::resolve`
    // saves a second round trip to the driver; the matching rule is the same `Pattern`.
    let mut parsed = Vec::with_capacity(patterns.len());
    for p in patterns {
        parsed.push(Pattern::parse(p).map_err(Error::from)?);
    }
    for (pat, text) in parsed.iter().zip(patterns) {
        if !all.iter().any(|s| pat.matches(&s.name, &s.group)) {
            return Err(match pat.exact_name() {
                Some(n) => Error::UnknownProcess(n.to_string()),
                None => Error::NoMatch(text.clone()),
            }
            .into());
        }
    }
    Ok(all
        .iter()
        .filter(|s| parsed.iter().any(|p| p.matches(&s.name, &s.group)))
        .map(|s| s.name.clone())
        .collect())
}

/// The patterns of a status query, and whether it asks for `stats=true`
/// (what each process uses, read for this request).
fn status_patterns(query: Option<&str>) -> ApiResult<(Vec<String>, bool)> {
    let mut out = Vec::new();
    let mut stats = false;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|s| !s.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == "stats" {
            stats = match value {
                "true" | "1" | "" => true,
                "false" | "0" => false,
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "stats must be true or false, found {value:?}"
                    )));
                }
            };
            continue;
        }
        if key != "pattern" {
            return Err(ApiError::bad_request(format!(
                "unknown query parameter {key:?} (expected pattern=... or stats=true)"
            )));
        }
        let value = percent_decode(value)
            .ok_or_else(|| ApiError::bad_request(format!("malformed query parameter {pair:?}")))?;
        out.push(value);
    }
    Ok((out, stats))
}

/// `POST /v1/start`
pub(crate) async fn start(
    State(st): State<Daemon>,
    JsonBody(req): JsonBody<StartRequest>,
) -> ApiResult<Json<ActionResponse>> {
    let names = resolve(st.supervisor(), &req.targets).await?;
    if req.no_deps {
        return results(st.supervisor().start_many_no_deps(names).await?);
    }
    results(st.supervisor().start_many(names).await?)
}

/// `POST /v1/stop`
pub(crate) async fn stop(
    State(st): State<Daemon>,
    JsonBody(req): JsonBody<TargetsRequest>,
) -> ApiResult<Json<ActionResponse>> {
    let names = resolve(st.supervisor(), &req.targets).await?;
    results(st.supervisor().stop_many(names).await?)
}

/// `POST /v1/restart`
pub(crate) async fn restart(
    State(st): State<Daemon>,
    JsonBody(req): JsonBody<TargetsRequest>,
) -> ApiResult<Json<ActionResponse>> {
    let names = resolve(st.supervisor(), &req.targets).await?;
    results(st.supervisor().restart_many(names).await?)
}

/// `POST /v1/signal`
pub(crate) async fn signal(
    State(st): State<Daemon>,
    JsonBody(req): JsonBody<SignalRequest>,
) -> ApiResult<Json<ActionResponse>> {
    let names = resolve(st.supervisor(), &req.targets).await?;
    results(st.supervisor().signal_many(names, req.signal).await?)
}

/// `POST /v1/processes`
pub(crate) async fn add(
    State(st): State<Daemon>,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> ApiResult<(StatusCode, Json<NameResponse>)> {
    let logs_given = body.get("logs").is_some();
    let spec = parse_spec(body)?;
    let name = st
        .add_process(spec, logs_given)
        .await
        .map_err(|e| match e {
            AddError::Invalid(why) => ApiError::bad_request(why),
            AddError::Refused(e) => e.into(),
        })?;
    Ok((
        StatusCode::CREATED,
        Json(NameResponse {
            name: name.to_string(),
        }),
    ))
}

/// A spec from JSON; `group` defaults to the name, as in the config file, so a
/// minimal body is `{"name": "web", "command": ["python3", "-m", "http.server"]}`.
fn parse_spec(mut value: serde_json::Value) -> ApiResult<ProcessSpec> {
    if let Some(obj) = value.as_object_mut()
        && !obj.contains_key("group")
        && let Some(name) = obj.get("name").cloned()
    {
        obj.insert("group".to_string(), name);
    }
    serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request(format!("invalid process spec: {e}")))
}

/// `DELETE /v1/processes/{name}`
pub(crate) async fn remove(
    State(st): State<Daemon>,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<NameResponse>> {
    let Path(name) = name.map_err(|e| ApiError::bad_request(e.body_text()))?;
    st.remove_process(&name).await?;
    Ok(Json(NameResponse { name }))
}

/// `POST /v1/reload`: applies the config file again, process by process.
pub(crate) async fn reload(State(st): State<Daemon>) -> ApiResult<Json<ReloadResponse>> {
    if !st.config().has_loader() {
        return Err(ApiError::not_found(
            "this daemon has no config file to reload",
        ));
    }
    match st.reload().await {
        Ok(r) => Ok(Json(ReloadResponse {
            added: r.added,
            changed: r.changed,
            removed: r.removed,
        })),
        Err(why) => Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, why)),
    }
}

/// `GET /v1/version`
pub(crate) async fn version() -> Json<VersionResponse> {
    Json(VersionResponse {
        version: env!("CARGO_PKG_VERSION").to_string(),
        pid: std::process::id(),
    })
}

/// `POST /v1/shutdown`: answers at once; the daemon then stops everything and exits.
pub(crate) async fn shutdown(State(st): State<Daemon>) -> (StatusCode, Json<ShutdownResponse>) {
    st.shutdown().trigger();
    (
        StatusCode::ACCEPTED,
        Json(ShutdownResponse {
            shutting_down: true,
        }),
    )
}

/// Any path that is not an endpoint.
pub(crate) async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no such endpoint: {method} {}", uri.path()))
}

/// A known path with the wrong method.
pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}", uri.path()),
    )
}

async fn resolve(sup: &Supervisor, targets: &[String]) -> ApiResult<Vec<Name>> {
    if targets.is_empty() {
        return Err(ApiError::bad_request(
            "targets is empty (give names, patterns or \"all\")",
        ));
    }
    // Overlapping patterns (`web` and `web-*`) yield each process once.
    Ok(sup.resolve(targets).await?)
}

fn results(results: Vec<ActionResult>) -> ApiResult<Json<ActionResponse>> {
    Ok(Json(ActionResponse {
        results: results.into_iter().map(Into::into).collect(),
    }))
}
