//! Checking the credentials a request presents (`Authorization: Basic` or
//! `Bearer`), as an attacker cannot exploit it:
//!
//! - at most [`PERMITS`] verifications run at once, off the async thread
//!   (argon2 costs tens of milliseconds and 19 MiB each): a flood of logins
//!   queues behind them instead of eating memory and CPU, and one that waits
//!   longer than [`BUSY_AFTER`] is answered 503;
//! - a request for an unknown user still runs a verification as costly as a
//!   known user's, and every bearer token is checked against every stored
//!   hash, so a wrong answer comes after the same delay as a right one;
//! - a success is remembered for [`CACHE_FOR`], keyed by a SHA-256 of the
//!   credentials (never the credentials themselves), so a client that logs
//!   in on every request pays once;
//! - each failure is logged with the user and the peer, and a peer with
//!   [`FREE_FAILURES`] failures in a row is refused (429) for a time that
//!   doubles with each further failure, up to [`MAX_LOCK`], without any
//!   verification.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::policy::{Identity, Policy};
use crate::listen::Peer;

/// Verifications running at once.
pub const PERMITS: usize = 2;
/// How long a request waits for a verification slot before 503.
pub const BUSY_AFTER: Duration = Duration::from_secs(10);
/// How long a verified credential is remembered.
pub const CACHE_FOR: Duration = Duration::from_secs(60);
/// Credentials remembered at most.
const CACHE_ENTRIES: usize = 1024;
/// Failures in a row a peer may have before it is slowed down.
pub const FREE_FAILURES: u32 = 5;
/// The longest a peer is refused after failures.
pub const MAX_LOCK: Duration = Duration::from_secs(60);
/// Failures older than this are forgotten.
const FAILURE_MEMORY: Duration = Duration::from_secs(15 * 60);
/// Peers whose failures are remembered at most.
const FAILURE_ENTRIES: usize = 10_000;

/// Credentials in a request.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Presented {
    /// `Authorization: Basic base64(user:password)`.
    Basic {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
    /// `Authorization: Bearer TOKEN`.
    Bearer(String),
    /// A scheme tend does not take, or Basic without a `:`: wrong, as
    /// Medusa answers it.
    Unusable,
}

impl std::fmt::Debug for Presented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Presented::Basic { user, .. } => write!(f, "Basic({user:?}, ***)"),
            Presented::Bearer(_) => f.write_str("Bearer(***)"),
            Presented::Unusable => f.write_str("Unusable"),
        }
    }
}

impl Presented {
    /// Who it claims to be, for the log: `user "alice"`, `a bearer token`.
    pub(crate) fn claimed(&self) -> String {
        match self {
            Presented::Basic { user, .. } => format!("user {user:?}"),
            Presented::Bearer(_) => "a bearer token".to_string(),
            Presented::Unusable => "an unusable Authorization header".to_string(),
        }
    }
}

/// The `Authorization` header was Basic but not base64 (Medusa answers 400).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Malformed;

/// The credentials of `headers`, if any.
pub(crate) fn presented(headers: &HeaderMap) -> Result<Option<Presented>, Malformed> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let Ok(value) = value.to_str() else {
        return Ok(Some(Presented::Unusable));
    };
    let Some((scheme, rest)) = value.split_once(' ') else {
        return Ok(Some(Presented::Unusable));
    };
    if scheme.eq_ignore_ascii_case("bearer") {
        let token = rest.trim();
        return Ok(Some(if token.is_empty() {
            Presented::Unusable
        } else {
            Presented::Bearer(token.to_string())
        }));
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(Some(Presented::Unusable));
    }
    let decoded = crate::auth::base64_decode(rest)
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or(Malformed)?;
    Ok(Some(match decoded.split_once(':') {
        Some((user, password)) => Presented::Basic {
            user: user.to_string(),
            password: password.to_string(),
        },
        None => Presented::Unusable,
    }))
}

/// Why credentials were not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Wrong or unknown: 401.
    Wrong,
    /// The peer failed too often: 429, try again after this long.
    Throttled(Duration),
    /// Every verification slot stayed taken: 503.
    Busy,
}

/// Who the throttle counts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum PeerKey {
    Uid(u32),
    Ip(IpAddr),
    Unknown,
}

fn peer_key(peer: Option<&Peer>) -> PeerKey {
    match peer {
        Some(Peer { uid: Some(uid), .. }) => PeerKey::Uid(*uid),
        Some(Peer { ip: Some(ip), .. }) => PeerKey::Ip(*ip),
        _ => PeerKey::Unknown,
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

impl Failures {
    /// Until when the peer is refused, if it is.
    fn locked_until(&self) -> Option<Instant> {
        let over = self.count.checked_sub(FREE_FAILURES)?;
        let lock = Duration::from_secs(1u64 << over.min(6)).min(MAX_LOCK);
        Some(self.last + lock)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The credential checker of one daemon (see the module documentation).
#[derive(Debug)]
pub(crate) struct Verifier {
    permits: Arc<Semaphore>,
    cache: Mutex<HashMap<[u8; 32], (Identity, Instant)>>,
    failures: Mutex<HashMap<PeerKey, Failures>>,
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier {
            permits: Arc::new(Semaphore::new(PERMITS)),
            cache: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
        }
    }
}

impl Verifier {
    /// Forgets every remembered success (the policy changed).
    pub(crate) fn forget(&self) {
        lock(&self.cache).clear();
    }

    /// Checks `presented` on the listener `door` under `policy` (of
    /// `generation`), for a request from `peer`.
    pub(crate) async fn verify(
        &self,
        policy: &Arc<Policy>,
        generation: u64,
        door: &str,
        presented: Presented,
        peer: Option<&Peer>,
    ) -> Result<Identity, Failure> {
        let key = peer_key(peer);
        let now = Instant::now();
        if let Some(until) = lock(&self.failures)
            .get(&key)
            .and_then(Failures::locked_until)
            .filter(|until| *until > now)
        {
            tracing::debug!("refused a login from {}: too many failures", shown(peer));
            return Err(Failure::Throttled(until - now));
        }
        let digest = cache_key(generation, door, &presented);
        if let Some((who, at)) = lock(&self.cache).get(&digest)
            && now.duration_since(*at) < CACHE_FOR
        {
            return Ok(who.clone());
        }
        let Ok(Ok(permit)) =
            tokio::time::timeout(BUSY_AFTER, self.permits.clone().acquire_owned()).await
        else {
            return Err(Failure::Busy);
        };
        let (p, d, claimed) = (policy.clone(), door.to_string(), presented.claimed());
        let checked = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            check(&p, &d, &presented)
        })
        .await
        .unwrap_or(None);
        match checked {
            Some(who) => {
                lock(&self.failures).remove(&key);
                let mut cache = lock(&self.cache);
                if cache.len() >= CACHE_ENTRIES {
                    cache.retain(|_, (_, at)| now.duration_since(*at) < CACHE_FOR);
                    if cache.len() >= CACHE_ENTRIES {
                        cache.clear();
                    }
                }
                cache.insert(digest, (who.clone(), now));
                Ok(who)
            }
            None => {
                // From the end of the check: a slow one must not shorten the lock.
                let count = self.record_failure(key, Instant::now());
                tracing::warn!(
                    target: "tend::audit",
                    "audit: failed login as {claimed} from {}{}",
                    shown(peer),
                    if count >= FREE_FAILURES {
                        format!(" ({count} in a row: refusing this peer for a while)")
                    } else {
                        String::new()
                    }
                );
                Err(Failure::Wrong)
            }
        }
    }

    fn record_failure(&self, key: PeerKey, now: Instant) -> u32 {
        let mut f = lock(&self.failures);
        if f.len() >= FAILURE_ENTRIES {
            f.retain(|_, v| now.duration_since(v.last) < FAILURE_MEMORY);
            if f.len() >= FAILURE_ENTRIES {
                f.clear();
            }
        }
        let e = f.entry(key).or_insert(Failures {
            count: 0,
            last: now,
        });
        if now.duration_since(e.last) >= FAILURE_MEMORY {
            e.count = 0;
        }
        e.count += 1;
        e.last = now;
        e.count
    }
}

/// Where a request came from, for the log.
pub(crate) fn shown(peer: Option<&Peer>) -> String {
    match peer {
        Some(Peer { ip: Some(ip), .. }) => ip.to_string(),
        Some(Peer {
            uid: Some(uid),
            pid: Some(pid),
            ..
        }) => format!("unix:{pid}(uid {uid})"),
        Some(Peer { uid: Some(uid), .. }) => format!("unix(uid {uid})"),
        Some(_) => "an unknown peer".to_string(),
        None => "internal".to_string(),
    }
}

fn cache_key(generation: u64, door: &str, presented: &Presented) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(generation.to_le_bytes());
    h.update(door.as_bytes());
    h.update([0]);
    match presented {
        Presented::Basic { user, password } => {
            h.update(b"basic\0");
            h.update(user.as_bytes());
            h.update([0]);
            h.update(password.as_bytes());
        }
        Presented::Bearer(t) => {
            h.update(b"bearer\0");
            h.update(t.as_bytes());
        }
        Presented::Unusable => h.update(b"unusable"),
    }
    h.finalize().into()
}

/// The verification itself (blocking, costly by design).
pub(crate) fn check(policy: &Policy, door: &str, presented: &Presented) -> Option<Identity> {
    match presented {
        Presented::Basic { user, password } => check_basic(policy, door, user, password),
        Presented::Bearer(token) => {
            let mut found = None;
            // Every hash, always: the time does not tell which one matched.
            for t in &policy.tokens {
                if t.secret.verify(token.as_bytes()) && found.is_none() {
                    found = Some(Identity::Token(t.name.clone()));
                }
            }
            found
        }
        Presented::Unusable => {
            // As costly as a real check, so that it tells nothing either.
            dummy(policy, b"");
            None
        }
    }
}

fn check_basic(policy: &Policy, door: &str, user: &str, password: &str) -> Option<Identity> {
    let mut found = None;
    let mut costly = false;
    for u in policy.users.iter().filter(|u| u.name == user) {
        costly |= u.secret.is_costly();
        if u.secret.verify(password.as_bytes()) && found.is_none() {
            found = Some(Identity::User(u.name.clone()));
        }
    }
    // The listener's own credentials (supervisord.conf): plain or {SHA},
    // checked in constant time.
    if let Some(a) = policy.listener_auth(door)
        && a.matches(user, password)
        && found.is_none()
    {
        found = Some(Identity::ListenerUser(user.to_string()));
    }
    if !costly {
        // An unknown user (or a cheap secret) costs a verification too.
        dummy(policy, password.as_bytes());
    }
    found
}

/// Verifies `password` against the first costly user hash (whose result
/// is thrown away): the cost of a known user's check.
fn dummy(policy: &Policy, password: &[u8]) {
    if let Some(u) = policy.users.iter().find(|u| u.secret.is_costly()) {
        let _ = u.secret.verify(password);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use tend_config::access::{AccessConfig, Secret, UserConf, hash_password};
    use tend_config::supervisord::Auth;

    fn header(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(v).expect("header"),
        );
        h
    }

    #[test]
    fn authorization_headers() {
        assert_eq!(presented(&HeaderMap::new()), Ok(None));
        assert_eq!(
            presented(&header("Basic YWRtaW46c2VjcmV0")),
            Ok(Some(Presented::Basic {
                user: "admin".into(),
                password: "secret".into()
            }))
        );
        assert_eq!(
            presented(&header("bearer tok")),
            Ok(Some(Presented::Bearer("tok".into())))
        );
        assert_eq!(presented(&header("Basic YWI")), Err(Malformed));
        assert_eq!(
            presented(&header("Basic YWRtaW4=")),
            Ok(Some(Presented::Unusable))
        );
        assert_eq!(
            presented(&header("Digest x")),
            Ok(Some(Presented::Unusable))
        );
    }

    fn policy() -> Arc<Policy> {
        let access = AccessConfig {
            configured: true,
            users: vec![UserConf {
                name: "alice".into(),
                password: Some(Secret::parse(&hash_password(b"pw").expect("hash")).expect("parse")),
                certificates: Vec::new(),
                roles: vec!["admin".into()],
            }],
            ..AccessConfig::default()
        };
        let listener = Auth::Plain {
            username: "admin".into(),
            password: "secret".into(),
        };
        Arc::new(Policy::new(&access, [("inet".to_string(), listener)], 0))
    }

    fn basic(user: &str, password: &str) -> Presented {
        Presented::Basic {
            user: user.into(),
            password: password.into(),
        }
    }

    #[test]
    fn users_listener_credentials_and_unknowns() {
        let p = policy();
        assert_eq!(
            check(&p, "inet", &basic("alice", "pw")),
            Some(Identity::User("alice".into()))
        );
        assert_eq!(check(&p, "inet", &basic("alice", "px")), None);
        assert_eq!(
            check(&p, "inet", &basic("admin", "secret")),
            Some(Identity::ListenerUser("admin".into()))
        );
        // The inet listener's credentials are not the socket's.
        assert_eq!(check(&p, "unix", &basic("admin", "secret")), None);
        assert_eq!(check(&p, "inet", &basic("nobody", "pw")), None);
    }

    #[test]
    fn an_unknown_user_costs_what_a_known_one_does() {
        let p = policy();
        let time = |who: &str| {
            let t = Instant::now();
            for _ in 0..3 {
                let _ = check(&p, "inet", &basic(who, "wrong"));
            }
            t.elapsed()
        };
        let (known, unknown) = (time("alice"), time("mallory"));
        // Both run one argon2 verification per try (tens of ms); without the
        // dummy the unknown user would answer in microseconds.
        assert!(unknown * 3 > known, "known {known:?}, unknown {unknown:?}");
    }

    #[tokio::test]
    async fn failures_are_throttled_and_successes_cached() {
        let v = Verifier::default();
        let p = policy();
        let peer = Peer::tcp("192.0.2.7".parse().expect("ip"));
        for _ in 0..FREE_FAILURES {
            assert_eq!(
                v.verify(&p, 1, "inet", basic("admin", "nope"), Some(&peer))
                    .await,
                Err(Failure::Wrong)
            );
        }
        match v
            .verify(&p, 1, "inet", basic("admin", "secret"), Some(&peer))
            .await
        {
            Err(Failure::Throttled(d)) => assert!(d <= Duration::from_secs(1)),
            other => panic!("expected a throttle, got {other:?}"),
        }
        // Another peer is not slowed down by this one.
        let other = Peer::tcp("192.0.2.8".parse().expect("ip"));
        assert_eq!(
            v.verify(&p, 1, "inet", basic("alice", "pw"), Some(&other))
                .await,
            Ok(Identity::User("alice".into()))
        );
        // The second time comes from the cache: no argon2 at all.
        let t = Instant::now();
        assert!(
            v.verify(&p, 1, "inet", basic("alice", "pw"), Some(&other))
                .await
                .is_ok()
        );
        assert!(t.elapsed() < Duration::from_millis(5), "{:?}", t.elapsed());
        // A new policy generation does not see the old entry.
        v.forget();
        assert!(lock(&v.cache).is_empty());
    }
}
