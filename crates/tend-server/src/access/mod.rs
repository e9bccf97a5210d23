//! Access control: one check on every door.
//!
//! Every listener's router goes behind one guard ([`Access::guard`]), over
//! every face it serves (the JSON API, Supervisor's XML-RPC and tails, the
//! web UI). For each request the guard, before any body is read:
//!
//! 1. refuses a state-changing request (anything but `GET`/`HEAD`/`OPTIONS`)
//!    that a browser sent from another site: `Sec-Fetch-Site` other than
//!    `same-origin`/`none`, or an `Origin` that is not the request's own
//!    host (403). Clients that are not browsers send neither header;
//! 2. finds who is asking ([`Identity`]): the credentials of an
//!    `Authorization: Basic`/`Bearer` header (checked as [`verify`] says:
//!    bounded, cached, throttled, of equal cost when wrong), else the
//!    kernel's credentials of a Unix socket peer (uid, and its groups from
//!    `SO_PEERGROUPS`), else an anonymous TCP client. A listener with its own
//!    supervisord.conf credentials lets nobody in without them (except, on
//!    the socket, root and the daemon's user to the JSON API: `tend`'s CLI);
//! 3. computes what it may do from the current [`Policy`] ([`Grants`]) and
//!    hands the handlers a [`Caller`]. A caller with no right at all, where
//!    credentials exist that it could present, gets Supervisor's 401.
//!
//! The handlers then ask the caller, by right and process: a process it
//! may not [`Right::View`] does not exist for it (404, `BAD_NAME`); a
//! forbidden action on one it sees is [`Denied`] (403, `FAILED`), and every
//! action (allowed or not) is written to tend's log by [`Caller::audit`].
//!
//! The policy is replaced whole when the daemon reads its config file again
//! ([`Access::replace`]); requests under way keep the one they started with.

mod caller;
pub mod policy;
pub mod verify;

use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub use caller::{Caller, Denied};
pub use policy::{Grants, Identity, Policy};
pub use tend_config::access::Right;

use crate::auth::ErrorPage;
use crate::json::ApiError;
use crate::listen::{Peer, TlsClient};
use verify::{Failure, Verifier};

/// The access rules of one daemon, shared by all its listeners: the current
/// [`Policy`] and the credential checker. Cloning is cheap.
#[derive(Clone, Debug)]
pub struct Access {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    current: RwLock<(Arc<Policy>, u64)>,
    verifier: Verifier,
}

/// One listener, as the guard sees it.
#[derive(Clone, Debug)]
pub struct Door {
    /// Its name in the policy (`"unix"`, `"inet"`): whose own credentials
    /// apply ([`Policy::listener_auth`]).
    pub name: String,
    /// The page of a refused request outside the JSON API (Supervisor's
    /// face answers with Medusa's).
    pub page: ErrorPage,
}

impl Door {
    /// The listener `name`, refusing with `page`.
    pub fn new(name: impl Into<String>, page: ErrorPage) -> Door {
        Door {
            name: name.into(),
            page,
        }
    }
}

impl Access {
    /// Rules for `policy`.
    pub fn new(policy: Policy) -> Access {
        Access {
            inner: Arc::new(Inner {
                current: RwLock::new((Arc::new(policy), 0)),
                verifier: Verifier::default(),
            }),
        }
    }

    /// supervisord's rules for a daemon running as the current user.
    pub fn unconfigured() -> Access {
        Access::new(Policy::unconfigured(nix::unistd::geteuid().as_raw()))
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<Policy> {
        self.current().0
    }

    fn current(&self) -> (Arc<Policy>, u64) {
        let g = self.inner.current.read().unwrap_or_else(|p| p.into_inner());
        (g.0.clone(), g.1)
    }

    /// Puts `policy` in force (a reload): remembered logins are forgotten.
    pub fn replace(&self, policy: Policy) {
        {
            let mut g = self
                .inner
                .current
                .write()
                .unwrap_or_else(|p| p.into_inner());
            let generation = g.1.wrapping_add(1);
            *g = (Arc::new(policy), generation);
        }
        self.inner.verifier.forget();
    }

    /// What `who` may do under the policy in force.
    pub fn grants(&self, who: &Identity) -> Grants {
        self.policy().grants(who)
    }

    /// Puts every route of `router` behind the guard of `door` (see the
    /// module documentation).
    pub fn guard(&self, router: Router, door: Door) -> Router {
        router.layer(axum::middleware::from_fn_with_state(
            (self.clone(), Arc::new(door)),
            guard,
        ))
    }
}

/// Whether a path is the JSON API's (refusals in JSON).
fn is_json(path: &str) -> bool {
    path == "/v1" || path.starts_with("/v1/")
}

/// A browser's cross-site request, for a method that changes state.
fn cross_site(method: &Method, headers: &HeaderMap) -> Option<String> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return None;
    }
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or("?");
        if !matches!(site, "same-origin" | "none") {
            return Some(format!("Sec-Fetch-Site: {site}"));
        }
    }
    let origin = headers.get(header::ORIGIN)?;
    let origin = origin.to_str().unwrap_or("?");
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    // `scheme://host[:port]`: the part after the scheme must be our Host.
    let origin_host = origin.split_once("://").map_or("", |(_, h)| h);
    if !host.is_empty() && origin_host.eq_ignore_ascii_case(host) {
        return None;
    }
    Some(format!("Origin: {origin}"))
}

fn refusal(json: bool, page: ErrorPage, status: StatusCode, message: String) -> Response {
    if json {
        ApiError::new(status, message).into_response()
    } else {
        page(status)
    }
}

fn unauthorized(json: bool, page: ErrorPage, message: &str) -> Response {
    let mut resp = refusal(json, page, StatusCode::UNAUTHORIZED, message.to_string());
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    h.insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"default\""),
    );
    resp
}

/// Reads (and drops) what the client is still sending, as Medusa does: a
/// client that writes its body after its headers (Python's http.client)
/// would otherwise get EPIPE instead of the answer it must see.
/// Bounded: see `crate::auth::drain_refused`.
async fn drained(req: Request, resp: Response) -> Response {
    crate::auth::drain_refused(req).await;
    resp
}

async fn guard(
    State((access, door)): State<(Access, Arc<Door>)>,
    mut req: Request,
    next: Next,
) -> Response {
    let json = is_json(req.uri().path());
    let page = door.page;
    let peer = req
        .extensions()
        .get::<ConnectInfo<Peer>>()
        .map(|c| c.0.clone());
    if let Some(why) = cross_site(req.method(), req.headers()) {
        tracing::warn!(
            target: "tend::audit",
            "audit: refused a cross-site {} {} from {} ({why})",
            req.method(),
            req.uri().path(),
            verify::shown(peer.as_ref())
        );
        let message = format!(
            "cross-site request refused ({why}): state-changing requests must come from the daemon's own origin"
        );
        return drained(req, refusal(json, page, StatusCode::FORBIDDEN, message)).await;
    }
    let (policy, generation) = access.current();
    let presented = match verify::presented(req.headers()) {
        Ok(Some(p)) => {
            let bearer = matches!(p, verify::Presented::Bearer(_));
            policy.checks(&door.name, bearer).then_some(p)
        }
        Ok(None) => None,
        Err(verify::Malformed) if !policy.checks(&door.name, false) => None,
        Err(verify::Malformed) => {
            let resp = refusal(
                json,
                page,
                StatusCode::BAD_REQUEST,
                "malformed Authorization header (Basic needs base64 of user:password)".into(),
            );
            return drained(req, resp).await;
        }
    };
    let certificate_user = req
        .extensions()
        .get::<TlsClient>()
        .and_then(|c| policy.certificate_user(c))
        .map(str::to_string);
    let who = match presented {
        Some(p) => {
            match access
                .inner
                .verifier
                .verify(&policy, generation, &door.name, p, peer.as_ref())
                .await
            {
                Ok(who) => who,
                Err(Failure::Wrong) => {
                    let resp = unauthorized(json, page, "wrong credentials");
                    return drained(req, resp).await;
                }
                Err(Failure::Throttled(wait)) => {
                    let secs = wait.as_secs().max(1);
                    let mut resp = refusal(
                        json,
                        page,
                        StatusCode::TOO_MANY_REQUESTS,
                        format!("too many failed logins: try again in {secs} s"),
                    );
                    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                        resp.headers_mut().insert(header::RETRY_AFTER, v);
                    }
                    return drained(req, resp).await;
                }
                Err(Failure::Busy) => {
                    let resp = refusal(
                        json,
                        page,
                        StatusCode::SERVICE_UNAVAILABLE,
                        "too many logins at once: try again".into(),
                    );
                    return drained(req, resp).await;
                }
            }
        }
        None if certificate_user.is_some() => {
            // Mutual TLS: rustls verified the chain to the listener's
            // client_ca; the certificate is this user's, no password.
            Identity::User(certificate_user.unwrap_or_default())
        }
        None => {
            let who = match &peer {
                None => Identity::Internal,
                Some(p) => caller::identity_of(p),
            };
            let owner = matches!(who, Identity::Unix { uid, .. } if policy.is_owner(uid));
            // A listener with credentials of its own (supervisord.conf)
            // needs them; `tend`'s CLI, as root or the daemon's user on the
            // socket, needs none for the JSON API.
            if policy.listener_auth(&door.name).is_some() && !(json && owner) {
                let resp = unauthorized(json, page, "this listener requires credentials");
                return drained(req, resp).await;
            }
            who
        }
    };
    let grants = policy.grants(&who);
    if grants.is_empty()
        && !matches!(who, Identity::User(_) | Identity::Token(_))
        && policy.has_credentials_for(&door.name)
    {
        let resp = unauthorized(
            json,
            page,
            &format!("{who} has no rights here: give credentials"),
        );
        return drained(req, resp).await;
    }
    req.extensions_mut().insert(Caller::new(who, peer, grants));
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn browsers_from_elsewhere_are_refused() {
        let post = Method::POST;
        // curl, supervisorctl, tend: no Origin, no Sec-Fetch-Site.
        assert_eq!(cross_site(&post, &headers(&[("host", "localhost")])), None);
        assert_eq!(
            cross_site(
                &post,
                &headers(&[
                    ("host", "127.0.0.1:9001"),
                    ("origin", "http://127.0.0.1:9001"),
                    ("sec-fetch-site", "same-origin")
                ])
            ),
            None
        );
        assert!(
            cross_site(
                &post,
                &headers(&[("host", "127.0.0.1:9001"), ("sec-fetch-site", "cross-site")])
            )
            .is_some()
        );
        // Another port of the same host is the same site, not the same origin.
        assert!(
            cross_site(
                &post,
                &headers(&[
                    ("host", "127.0.0.1:9001"),
                    ("origin", "http://127.0.0.1:8000")
                ])
            )
            .is_some()
        );
        assert!(
            cross_site(
                &post,
                &headers(&[("host", "localhost:9001"), ("origin", "null")])
            )
            .is_some()
        );
        // Reading is not refused (a page cannot read the answer anyway).
        assert_eq!(
            cross_site(
                &Method::GET,
                &headers(&[("host", "x"), ("sec-fetch-site", "cross-site")])
            ),
            None
        );
    }
}
