//! Who is asking: HTTP Basic credentials on a listener, and the peer of a
//! Unix socket (`SO_PEERCRED`). One guard ([`require_auth`]) in front of
//! every face a listener serves.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;

use crate::listen::Peer;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// At most this much of a refused request's body is read (and dropped),
/// within [`DRAIN_TIME`]: enough for any real client's request, so that it
/// sees its 401, and nothing a client without credentials can make costly.
/// A refused request that declares a larger body is not read at all.
const DRAIN_LIMIT: usize = 64 * 1024;
/// The most time spent draining a refused request's body.
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// `(username, password) -> ok`.
type Check = dyn Fn(&str, &str) -> bool + Send + Sync;

/// Checks HTTP Basic credentials.
#[derive(Clone)]
pub struct BasicAuth(Arc<Check>);

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BasicAuth(<fn>)")
    }
}

/// What an `Authorization` header is worth.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Ok,
    Unauthorized,
    /// A Basic cookie that is not base64 (Medusa answers 400).
    Malformed,
}

impl BasicAuth {
    /// Credentials checked by `check`.
    pub fn new(check: impl Fn(&str, &str) -> bool + Send + Sync + 'static) -> BasicAuth {
        BasicAuth(Arc::new(check))
    }

    /// One user with a clear-text password.
    pub fn plain(username: impl Into<String>, password: impl Into<String>) -> BasicAuth {
        let (u, p) = (username.into(), password.into());
        BasicAuth::new(move |user, pass| {
            let user_ok = constant_eq(user.as_bytes(), u.as_bytes());
            let pass_ok = constant_eq(pass.as_bytes(), p.as_bytes());
            user_ok & pass_ok
        })
    }

    /// Medusa's `auth_handler`: a `Basic` scheme (any case), a base64
    /// `user:password`, and the checker's word.
    fn verdict(&self, headers: &HeaderMap) -> Verdict {
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return Verdict::Unauthorized;
        };
        let Some((scheme, cookie)) = value.split_once(' ') else {
            return Verdict::Unauthorized;
        };
        if !scheme.eq_ignore_ascii_case("basic") {
            return Verdict::Unauthorized;
        }
        let Some(decoded) = base64_decode(cookie).and_then(|b| String::from_utf8(b).ok()) else {
            return Verdict::Malformed;
        };
        match decoded.split_once(':') {
            Some((user, pass)) if (self.0)(user, pass) => Verdict::Ok,
            _ => Verdict::Unauthorized,
        }
    }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Python's `base64.decodebytes`: characters outside the alphabet are
/// skipped; missing padding is an error.
pub(crate) fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut sextets = Vec::with_capacity(s.len());
    let mut pads = 0;
    for b in s.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                pads += 1;
                if (sextets.len() + pads) % 4 == 0 {
                    break;
                }
                continue;
            }
            _ => continue,
        };
        if pads > 0 {
            // Data after a lone '=' restarts the quantum in Python; keep it simple.
            return None;
        }
        sextets.push(v);
    }
    match sextets.len() % 4 {
        1 => return None,
        r @ (2 | 3) if pads < 4 - r => return None,
        _ => {}
    }
    let mut out = Vec::with_capacity(sextets.len() * 3 / 4);
    for quad in sextets.chunks(4) {
        let n = quad
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &v)| acc | (u32::from(v) << (18 - 6 * i)));
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..quad.len()]);
    }
    Some(out)
}

/// The page a refused request gets, by status (401 or 400); the guard adds
/// `WWW-Authenticate` and `Connection: close` to a 401.
pub type ErrorPage = fn(StatusCode) -> Response;

#[derive(Clone)]
struct Guard {
    auth: BasicAuth,
    trust_owner: bool,
    page: ErrorPage,
}

/// Puts `router` behind HTTP Basic auth: a request without valid
/// credentials gets 401 with `WWW-Authenticate: Basic realm="default"` (as
/// supervisord answers), a malformed `Authorization` 400, each with `page`.
/// With `trust_owner`, a Unix socket peer running as the daemon's user or
/// as root needs no credentials.
pub fn require_auth(router: Router, auth: BasicAuth, trust_owner: bool, page: ErrorPage) -> Router {
    router.layer(axum::middleware::from_fn_with_state(
        Guard {
            auth,
            trust_owner,
            page,
        },
        guard,
    ))
}

/// A plain error page: the status line's reason as text.
pub fn plain_page(status: StatusCode) -> Response {
    let reason = status.canonical_reason().unwrap_or("Error");
    (status, format!("{} {reason}\n", status.as_u16())).into_response()
}

async fn guard(State(g): State<Guard>, req: Request, next: Next) -> Response {
    if g.trust_owner
        && req
            .extensions()
            .get::<ConnectInfo<Peer>>()
            .is_some_and(|ConnectInfo(p)| p.is_owner())
    {
        return next.run(req).await;
    }
    let reject = match g.auth.verdict(req.headers()) {
        Verdict::Ok => return next.run(req).await,
        Verdict::Unauthorized => {
            let mut resp = (g.page)(StatusCode::UNAUTHORIZED);
            let h = resp.headers_mut();
            h.insert(header::CONNECTION, HeaderValue::from_static("close"));
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"default\""),
            );
            resp
        }
        Verdict::Malformed => (g.page)(StatusCode::BAD_REQUEST),
    };
    // Read (and drop) what the client is still sending, as Medusa does: a
    // client that writes its body after its headers (Python's http.client)
    // would otherwise get EPIPE instead of the 401 it must see.
    drain_refused(req).await;
    reject
}

/// Reads and drops the body of a refused request, bounded: at most
/// [`DRAIN_LIMIT`] bytes within [`DRAIN_TIME`], nothing when it declares
/// more. Every guard that refuses a request (this one, the access guard)
/// drains through here.
pub(crate) async fn drain_refused(req: Request) {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    if declared.is_none_or(|n| n <= DRAIN_LIMIT) {
        let drain = axum::body::to_bytes(req.into_body(), DRAIN_LIMIT);
        let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_as_python_decodes_it() {
        assert_eq!(
            base64_decode("YWRtaW46c2VjcmV0").as_deref(),
            Some(&b"admin:secret"[..])
        );
        assert_eq!(base64_decode("YWI=").as_deref(), Some(&b"ab"[..]));
        assert_eq!(base64_decode("YQ==").as_deref(), Some(&b"a"[..]));
        assert_eq!(base64_decode("Y W\nI=").as_deref(), Some(&b"ab"[..]));
        assert_eq!(base64_decode("").as_deref(), Some(&b""[..]));
        assert_eq!(base64_decode("YWI"), None);
        assert_eq!(base64_decode("Y"), None);
    }

    #[test]
    fn verdicts() {
        let auth = BasicAuth::plain("admin", "secret");
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                header::AUTHORIZATION,
                HeaderValue::from_str(v).expect("header"),
            );
            auth.verdict(&h)
        };
        assert_eq!(auth.verdict(&HeaderMap::new()), Verdict::Unauthorized);
        assert_eq!(with("Basic YWRtaW46c2VjcmV0"), Verdict::Ok);
        assert_eq!(with("basic YWRtaW46c2VjcmV0"), Verdict::Ok);
        assert_eq!(with("Basic YWRtaW46d3Jvbmc="), Verdict::Unauthorized);
        assert_eq!(with("Bearer YWRtaW46c2VjcmV0"), Verdict::Unauthorized);
        assert_eq!(with("Basic YWI"), Verdict::Malformed);
        assert_eq!(with("Basic YWRtaW4="), Verdict::Unauthorized);
    }
}
