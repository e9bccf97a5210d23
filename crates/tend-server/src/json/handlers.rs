//! One small handler per verb. A new verb is one route in [`super::json_router`]
//! plus one function here (and, in tend-core, one `Request` variant).

use std::collections::{HashMap, HashSet};

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{Method, StatusCode, Uri};
use tend_core::pattern::Pattern;
use tend_core::{ActionResult, Error, Name, ProcessSpec, ProcessStatus};

use super::error::ApiError;
use super::extract::JsonBody;
use crate::Daemon;
use crate::access::{Caller, Right};
use crate::api::{
    ActionItem, ActionResponse, NameResponse, ReloadResponse, STATS_AUTO_MAX, ShutdownResponse,
    SignalRequest, StartRequest, StatsMode, TargetsRequest, VersionResponse, percent_decode,
};
use crate::daemon::AddError;

type ApiResult<T> = Result<T, ApiError>;

/// `GET /v1/status?pattern=P...&stats=true|false|auto`
pub(crate) async fn status(
    State(st): State<Daemon>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> ApiResult<StatusArray> {
    let (patterns, stats) = status_patterns(query.as_deref())?;
    let all = st.supervisor().status().await?;
    // What the caller may not see does not exist for it.
    let mut all = caller.visible(all);
    next_runs(&st, &mut all);
    st.config().mark_origin(&mut all);
    let mut selected: Vec<ProcessStatus> = if patterns.is_empty() {
        all
    } else {
        let names: HashSet<Name> = select(&all, &patterns)?.into_iter().collect();
        all.into_iter()
            .filter(|s| names.contains(&s.name))
            .collect()
    };
    // Usage is read for the processes of the answer alone, after the rest.
    let up: Vec<Name> = selected
        .iter()
        .filter(|s| s.state.is_up() && s.pid.is_some())
        .map(|s| s.name.clone())
        .collect();
    let read = match stats {
        StatsMode::No => false,
        StatsMode::Yes => true,
        StatsMode::Auto => up.len() <= STATS_AUTO_MAX,
    };
    if read && !up.is_empty() {
        let mut used: HashMap<Name, tend_core::model::resources::ProcessStats> =
            st.supervisor().stats_of(up).await?.into_iter().collect();
        for s in &mut selected {
            s.stats = used.remove(&s.name);
        }
    }
    Ok(StatusArray(selected))
}

/// The body of `GET /v1/status`: what `Json` answers, encoded into a buffer
/// sized for it at once. `Json` starts at 128 bytes and doubles, so the
/// 4.5 MB of 10,000 processes were copied about 9 MB over in 16 moves.
pub(crate) struct StatusArray(pub(crate) Vec<ProcessStatus>);

/// Bytes a process takes in a status array, about (a running one with a
/// short name takes about 450): the first guess of the buffer's size.
const STATUS_BYTES_EACH: usize = 512;

impl axum::response::IntoResponse for StatusArray {
    fn into_response(self) -> axum::response::Response {
        let mut buf = Vec::with_capacity(self.0.len().saturating_mul(STATUS_BYTES_EACH) + 2);
        match serde_json::to_writer(&mut buf, &self.0) {
            Ok(()) => (
                [(
                    axum::http::header::CONTENT_TYPE,
                    axum::http::HeaderValue::from_static("application/json"),
                )],
                buf,
            )
                .into_response(),
            Err(e) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot encode the status: {e}"),
            )
            .into_response(),
        }
    }
}

/// Fills in when each task on a timer or a schedule runs next.
fn next_runs(st: &Daemon, all: &mut [ProcessStatus]) {
    let tasks = st.tasks();
    if tasks.is_empty() {
        return;
    }
    let now = jiff::Timestamp::now();
    for p in all {
        if let Some(t) = tasks.iter().find(|t| t.name == p.name) {
            p.next_run = t.next_after(now);
        }
    }
}

/// The names of the processes in `all` that match any of `patterns` (every
/// process when there is none), in the order of `all`. A pattern that
/// matches nothing is an error, as in `Supervisor::resolve`.
pub(crate) fn select(all: &[ProcessStatus], patterns: &[String]) -> ApiResult<Vec<Name>> {
    Ok(selected(all, patterns)?
        .into_iter()
        .map(|s| s.name.clone())
        .collect())
}

/// [`select`], as the processes themselves.
pub(crate) fn selected<'a>(
    all: &'a [ProcessStatus],
    patterns: &[String],
) -> ApiResult<Vec<&'a ProcessStatus>> {
    if patterns.is_empty() {
        return Ok(all.iter().collect());
    }
    // Filtering a status snapshot rather than calling `Supervisor::resolve`
    // saves a second round trip to the driver; the matching rule is the same `Pattern`.
    let mut parsed = Vec::with_capacity(patterns.len());
    for p in patterns {
        let mut pat = Pattern::parse(p).map_err(Error::from)?;
        // No process of that name: the group of that name (the copies of
        // `replicas`), as `Supervisor::resolve` reads it.
        if let Some(g) = pat.as_group()
            && !all.iter().any(|s| pat.matches(&s.name, &s.group))
            && all.iter().any(|s| g.matches(&s.name, &s.group))
        {
            pat = g;
        }
        parsed.push(pat);
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
        .collect())
}

/// The processes of `patterns` the caller sees, split by whether it may use
/// `right` on them. Naming a process it may not act on refuses the whole
/// request (nothing is done), as `kubectl` refuses it; a glob, a group or
/// `all` is a selection: it acts on what the caller may act on and reports
/// the rest as refused, as `systemctl` does unit by unit. A selection of
/// nothing the caller may act on is refused too.
pub(crate) fn permitted(
    caller: &Caller,
    all: &[ProcessStatus],
    patterns: &[String],
    right: Right,
    action: &str,
) -> ApiResult<(Vec<Name>, Vec<ActionItem>)> {
    let chosen = selected(all, patterns)?;
    let exact: HashSet<&str> = patterns
        .iter()
        .filter_map(|p| Pattern::parse(p).ok())
        .filter_map(|p| p.exact_name().map(str::to_string))
        .filter_map(|n| chosen.iter().find(|s| s.name.as_str() == n))
        .map(|s| s.name.as_str())
        .collect();
    let mut go = Vec::new();
    let mut refused = Vec::new();
    for s in &chosen {
        match caller.require(right, &s.name, &s.group) {
            Ok(()) => go.push(s.name.clone()),
            Err(denied) => {
                // Reading is not an action worth a line each.
                if right != Right::Logs {
                    caller.audit_denied(action, s.name.as_str(), &denied);
                }
                if exact.contains(s.name.as_str()) {
                    return Err(denied.into());
                }
                refused.push(ActionItem {
                    name: s.name.to_string(),
                    ok: false,
                    outcome: None,
                    error: Some(denied.to_string()),
                    dependency: false,
                });
            }
        }
    }
    if go.is_empty()
        && let Some(first) = refused.first()
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            first.error.clone().unwrap_or_default(),
        ));
    }
    Ok((go, refused))
}

/// The patterns of a status query, and what it asks of `stats`.
pub(crate) fn status_patterns(query: Option<&str>) -> ApiResult<(Vec<String>, StatsMode)> {
    let mut out = Vec::new();
    let mut stats = StatsMode::No;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|s| !s.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == "stats" {
            stats = match value {
                "true" | "1" | "" => StatsMode::Yes,
                "false" | "0" => StatsMode::No,
                "auto" => StatsMode::Auto,
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "stats must be true, false or auto, found {value:?}"
                    )));
                }
            };
            continue;
        }
        if key != "pattern" {
            return Err(ApiError::bad_request(format!(
                "unknown query parameter {key:?} (expected pattern=... or stats=true|false|auto)"
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
    caller: Caller,
    JsonBody(req): JsonBody<StartRequest>,
) -> ApiResult<Json<ActionResponse>> {
    let (names, refused) = resolve(&st, &caller, &req.targets, "start").await?;
    let targets: HashSet<Name> = names.iter().cloned().collect();
    let done = if req.no_deps {
        st.supervisor().start_many_no_deps(names).await?
    } else {
        st.supervisor().start_many(names).await?
    };
    with_dependencies(results(&caller, "start", done, refused), &targets)
}

/// `POST /v1/stop`
pub(crate) async fn stop(
    State(st): State<Daemon>,
    caller: Caller,
    JsonBody(req): JsonBody<TargetsRequest>,
) -> ApiResult<Json<ActionResponse>> {
    let (names, refused) = resolve(&st, &caller, &req.targets, "stop").await?;
    results(
        &caller,
        "stop",
        st.supervisor().stop_many(names).await?,
        refused,
    )
}

/// `POST /v1/restart`
pub(crate) async fn restart(
    State(st): State<Daemon>,
    caller: Caller,
    JsonBody(req): JsonBody<TargetsRequest>,
) -> ApiResult<Json<ActionResponse>> {
    let (names, refused) = resolve(&st, &caller, &req.targets, "restart").await?;
    let targets: HashSet<Name> = names.iter().cloned().collect();
    let done = st.supervisor().restart_many(names).await?;
    with_dependencies(results(&caller, "restart", done, refused), &targets)
}

/// `POST /v1/signal`
pub(crate) async fn signal(
    State(st): State<Daemon>,
    caller: Caller,
    JsonBody(req): JsonBody<SignalRequest>,
) -> ApiResult<Json<ActionResponse>> {
    let action = format!("signal {}", req.signal);
    let (names, refused) = resolve(&st, &caller, &req.targets, &action).await?;
    let done = st.supervisor().signal_many(names, req.signal).await?;
    results(&caller, &action, done, refused)
}

/// `POST /v1/processes`
pub(crate) async fn add(
    State(st): State<Daemon>,
    caller: Caller,
    RawQuery(query): RawQuery,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> ApiResult<(StatusCode, Json<NameResponse>)> {
    // `?save=true`: also into the config file (`tend add --save`).
    let save = match query.as_deref().unwrap_or("") {
        "" => false,
        "save=true" | "save=1" | "save" => true,
        "save=false" | "save=0" => false,
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown query {other:?}: the one parameter is save=true"
            )));
        }
    };
    let shown = body
        .get("name")
        .and_then(|n| n.as_str())
        .unwrap_or("?")
        .to_string();
    // A new command runs as the daemon's user (root, often): admin over
    // every process, from root or a role, and nothing else.
    if let Err(denied) = caller.require_spawn() {
        caller.audit_denied("add", &shown, &denied);
        return Err(denied.into());
    }
    let (spec, logs_given) = add_request(body)?;
    let target = format!("{} {:?}", spec.name, spec.command);
    let added = st.add_process_saved(spec, logs_given, save).await;
    caller.audit_result("add", &target, &added);
    let name = added.map_err(|e| match e {
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

/// The process of a `POST /v1/processes` body, parsed as the handler
/// parses it, and whether it gave its log settings (`"logs"`). For tests
/// and fuzzing: a bad body is the 400 the handler would answer.
pub fn parse_add_request(body: &[u8]) -> Result<(ProcessSpec, bool), ApiError> {
    add_request(super::extract::parse(body)?)
}

fn add_request(body: serde_json::Value) -> ApiResult<(ProcessSpec, bool)> {
    let logs_given = body.get("logs").is_some();
    Ok((parse_spec(body)?, logs_given))
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
    caller: Caller,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<NameResponse>> {
    let Path(name) = name.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let all = caller.visible(st.supervisor().status().await?);
    let Some(s) = all.iter().find(|s| s.name.as_str() == name) else {
        return Err(Error::UnknownProcess(name).into());
    };
    if let Err(denied) = caller.require(Right::Admin, &s.name, &s.group) {
        caller.audit_denied("remove", &name, &denied);
        return Err(denied.into());
    }
    let removed = st.remove_process(&name).await;
    caller.audit_result("remove", &name, &removed);
    removed?;
    Ok(Json(NameResponse { name }))
}

/// `POST /v1/reload`: applies the config file again, process by process.
pub(crate) async fn reload(
    State(st): State<Daemon>,
    caller: Caller,
) -> ApiResult<Json<ReloadResponse>> {
    if let Err(denied) = caller.require_everything(Right::Reload, "reload the config file") {
        caller.audit_denied("reload", "", &denied);
        return Err(denied.into());
    }
    if !st.config().has_loader() {
        return Err(ApiError::not_found(
            "this daemon has no config file to reload",
        ));
    }
    let reloaded = st.reload().await;
    caller.audit_result("reload", "", &reloaded);
    match reloaded {
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
pub(crate) async fn shutdown(
    State(st): State<Daemon>,
    caller: Caller,
) -> ApiResult<(StatusCode, Json<ShutdownResponse>)> {
    if let Err(denied) = caller.require_everything(Right::Admin, "shut the daemon down") {
        caller.audit_denied("shutdown", "", &denied);
        return Err(denied.into());
    }
    caller.audit("shutdown", "", &"ok");
    st.shutdown().trigger();
    Ok((
        StatusCode::ACCEPTED,
        Json(ShutdownResponse {
            shutting_down: true,
        }),
    ))
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

/// The processes `targets` select that the caller may control, and the
/// ones it may not (see [`permitted`]).
async fn resolve(
    st: &Daemon,
    caller: &Caller,
    targets: &[String],
    action: &str,
) -> ApiResult<(Vec<Name>, Vec<ActionItem>)> {
    if targets.is_empty() {
        return Err(ApiError::bad_request(
            "targets is empty (give names, patterns or \"all\")",
        ));
    }
    // Overlapping patterns (`web` and `web-*`) yield each process once, in
    // priority order (the status snapshot's).
    let all = caller.visible(st.supervisor().status().await?);
    permitted(caller, &all, targets, Right::Control, action)
}

/// Marks the results of processes the request did not name: dependencies
/// a start or restart started first.
fn with_dependencies(
    resp: ApiResult<Json<ActionResponse>>,
    targets: &HashSet<Name>,
) -> ApiResult<Json<ActionResponse>> {
    let Json(mut resp) = resp?;
    for item in &mut resp.results {
        item.dependency = item.error.is_none() && !targets.iter().any(|t| t.as_str() == item.name);
    }
    Ok(Json(resp))
}

fn results(
    caller: &Caller,
    action: &str,
    results: Vec<ActionResult>,
    refused: Vec<ActionItem>,
) -> ApiResult<Json<ActionResponse>> {
    for r in &results {
        caller.audit_result(action, r.name.as_str(), &r.result);
    }
    let mut items: Vec<ActionItem> = results.into_iter().map(Into::into).collect();
    items.extend(refused);
    Ok(Json(ActionResponse { results: items }))
}
