//! `POST /v1/scale`: change how many copies of a replicated process run, as
//! process-compose's `scale` does, until the next reload or restart.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::extract::JsonBody;
use crate::Daemon;
use crate::caller::Caller;
use crate::daemon::AddError;

type ApiResult<T> = Result<T, ApiError>;

/// The body of `POST /v1/scale`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleRequest {
    /// The replicated process: its group, `web` for `web-0`, `web-1`...
    pub name: String,
    /// How many copies to run.
    pub replicas: u32,
}

/// The answer of `POST /v1/scale`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScaleResponse {
    /// The replicated process.
    pub name: String,
    /// How many copies ran before.
    pub from: u32,
    /// How many run now.
    pub to: u32,
    /// The copies added (and started if they autostart).
    pub added: Vec<String>,
    /// The copies stopped and removed.
    pub removed: Vec<String>,
}

/// `POST /v1/scale`
pub(crate) async fn scale(
    State(st): State<Daemon>,
    caller: Caller,
    JsonBody(body): JsonBody<ScaleRequest>,
) -> ApiResult<Json<ScaleResponse>> {
    // New processes run as the daemon's user: the right to add them.
    if let Err(denied) = caller.require_spawn() {
        caller.audit_denied("scale", &body.name, &denied);
        return Err(denied.into());
    }
    let max = tend_config::MAX_REPLICAS;
    if !(1..=max).contains(&body.replicas) {
        return Err(ApiError::bad_request(format!(
            "replicas = {}: expected a number of copies from 1 to {max}",
            body.replicas
        )));
    }
    let base = body.name.as_str();
    let all = st.supervisor().status().await?;
    // The copies: `BASE-i` in the group `BASE`... or in the group a
    // `[group.X]` put them in.
    let copies: BTreeMap<usize, tend_core::Name> = all
        .iter()
        .filter_map(|p| {
            let i = p.name.as_str().strip_prefix(base)?.strip_prefix('-')?;
            if i.is_empty()
                || !i.bytes().all(|b| b.is_ascii_digit())
                || (i.len() > 1 && i.starts_with('0'))
            {
                return None;
            }
            Some((i.parse().ok()?, p.name.clone()))
        })
        .collect();
    let configs: Vec<_> = copies
        .values()
        .filter_map(|n| st.config().process_config(n.as_str()))
        .collect();
    // The copies' template (`${TEND_REPLICA}` kept) when the file made them,
    // else any copy as it is.
    let template = configs.iter().find_map(|c| c.template.clone());
    let Some(any) = configs.first() else {
        return Err(ApiError::not_found(format!(
            "{base} has no replicas: no process {base}-0, {base}-1... (set replicas in its table)"
        )));
    };
    let from = u32::try_from(copies.len()).unwrap_or(u32::MAX);
    let to = body.replicas as usize;
    let mut added = Vec::new();
    let mut removed = Vec::new();
    for i in 0..to {
        if copies.contains_key(&i) {
            continue;
        }
        let spec = match &template {
            Some(t) if t.name.as_str() == base => tend_config::replica_from_template(t, i),
            _ => tend_config::replica_copy(&any.spec, base, i),
        };
        let Some(spec) = spec else {
            return Err(ApiError::bad_request(format!(
                "{base}-{i} is not a valid name"
            )));
        };
        let name = st.add_process(spec, true).await.map_err(|e| match e {
            AddError::Invalid(why) => ApiError::bad_request(why),
            AddError::Refused(e) => e.into(),
        })?;
        if let Some(t) = &template {
            // So that a reload finds it the same as the file's copy.
            st.config().set_template(&name, t.clone());
        }
        added.push(name.to_string());
    }
    for (_, name) in copies.range(to..).rev() {
        st.remove_process(name.as_str()).await?;
        removed.push(name.to_string());
    }
    removed.reverse();
    caller.audit_result::<(), String>("scale", &format!("{base} {from} -> {to}"), &Ok(()));
    Ok(Json(ScaleResponse {
        name: base.to_string(),
        from,
        to: body.replicas,
        added,
        removed,
    }))
}
