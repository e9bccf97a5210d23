//! [`Caller`]: who sent a request and what it may do, as every face's
//! handlers see it, with the checks, the filters and the audit line.

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use tend_config::access::Right;
use tend_core::{Name, ProcessStatus};

use super::policy::{Grants, Identity, Policy};
use super::verify::shown;
use crate::listen::Peer;

/// Who sent a request, from where, and what it may do. The guard of every
/// listener puts one in each request; handlers take it as an extractor.
///
/// ```
/// use tend_server::access::{Caller, Right};
/// # use tend_core::Name;
/// let caller = Caller::internal();
/// let web = Name::new("web").unwrap();
/// assert!(caller.may(Right::Control, &web, &web));
/// assert!(caller.require(Right::Control, &web, &web).is_ok());
/// ```
#[derive(Clone, Debug)]
pub struct Caller {
    who: Arc<Identity>,
    peer: Option<Peer>,
    grants: Arc<Grants>,
}

/// A refused action, worded for the caller: `alice may not control db:
/// needs "control"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{who} may not {what}: needs \"{right}\"{over}")]
pub struct Denied {
    /// Who asked (`alice`, `token deploy`, `bob (uid 1001)`).
    pub who: String,
    /// What was refused (`control db`, `shut the daemon down`).
    pub what: String,
    /// The right that is missing.
    pub right: Right,
    /// ` over every process` for an action on the whole daemon.
    pub over: &'static str,
}

impl Caller {
    /// A caller with these grants.
    pub fn new(who: Identity, peer: Option<Peer>, grants: Grants) -> Caller {
        Caller {
            who: Arc::new(who),
            peer,
            grants: Arc::new(grants),
        }
    }

    /// The daemon itself (or an embedder's own call): every right.
    pub fn internal() -> Caller {
        Caller::new(
            Identity::Internal,
            None,
            Grants::everything("the daemon itself"),
        )
    }

    /// Who it is.
    pub fn identity(&self) -> &Identity {
        &self.who
    }

    /// Where it connected from (`None` for an internal call).
    pub fn peer(&self) -> Option<&Peer> {
        self.peer.as_ref()
    }

    /// What it may do.
    pub fn grants(&self) -> &Grants {
        &self.grants
    }

    /// Whether it may use `right` on the process `name` of `group`.
    pub fn may(&self, right: Right, name: &Name, group: &Name) -> bool {
        self.grants.allows(right, name, group)
    }

    /// Whether it may use `right` on every process: what an action on the
    /// whole daemon needs (shutdown: admin; reload: reload; the main log: logs).
    pub fn may_everything(&self, right: Right) -> bool {
        self.grants.allows_everything(right)
    }

    /// Whether it may add a process with a new command: admin over every
    /// process, from root or a role (never from a socket's file mode, nor
    /// from a supervisord.conf's username and password).
    pub fn may_spawn(&self) -> bool {
        self.grants.may_spawn()
    }

    /// [`Caller::may`], or why not.
    pub fn require(&self, right: Right, name: &Name, group: &Name) -> Result<(), Denied> {
        if self.may(right, name, group) {
            Ok(())
        } else {
            Err(self.denied(right, &phrase(right, name.as_str()), ""))
        }
    }

    /// [`Caller::may_everything`], or why not; `what` is the action
    /// (`"shut the daemon down"`).
    pub fn require_everything(&self, right: Right, what: &str) -> Result<(), Denied> {
        if self.may_everything(right) {
            Ok(())
        } else {
            Err(self.denied(right, what, " over every process"))
        }
    }

    /// [`Caller::may_spawn`], or why not.
    pub fn require_spawn(&self) -> Result<(), Denied> {
        if self.may_spawn() {
            Ok(())
        } else {
            Err(self.denied(
                Right::Admin,
                "add a process with a new command",
                " over every process",
            ))
        }
    }

    /// The refusal of `what` for lack of `right`.
    pub fn denied(&self, right: Right, what: &str, over: &'static str) -> Denied {
        Denied {
            who: self.who.to_string(),
            what: what.to_string(),
            right,
            over,
        }
    }

    /// The processes of `all` it may use `right` on, in their order: what
    /// it sees of a list (with [`Right::View`], every face's status).
    pub fn filter<'a>(
        &'a self,
        right: Right,
        all: impl IntoIterator<Item = &'a ProcessStatus>,
    ) -> impl Iterator<Item = &'a ProcessStatus> {
        all.into_iter()
            .filter(move |s| self.may(right, &s.name, &s.group))
    }

    /// [`Caller::filter`] of an owned list: the processes it may see are
    /// the only ones that exist for it.
    pub fn visible(&self, all: Vec<ProcessStatus>) -> Vec<ProcessStatus> {
        all.into_iter()
            .filter(|s| self.may(Right::View, &s.name, &s.group))
            .collect()
    }

    /// `alice@127.0.0.1`, `token:deploy@10.0.0.2`, `bob(uid 1001)@unix:4242`.
    pub fn shown(&self) -> String {
        let who = match &*self.who {
            Identity::Internal => "tend".to_string(),
            Identity::Unix {
                uid, user: Some(u), ..
            } => format!("{u}(uid {uid})"),
            Identity::Unix { uid, .. } => format!("uid:{uid}"),
            Identity::User(u) | Identity::ListenerUser(u) => u.clone(),
            Identity::Token(t) => format!("token:{t}"),
            Identity::Anonymous => "anonymous".to_string(),
        };
        let from = match &self.peer {
            Some(Peer {
                ip: None,
                pid: Some(pid),
                ..
            }) => format!("unix:{pid}"),
            Some(Peer { ip: None, .. }) => "unix".to_string(),
            p => shown(p.as_ref()),
        };
        format!("{who}@{from}")
    }

    /// Writes one line to tend's own log: who, from where, what, on what,
    /// and the result (`audit: alice@127.0.0.1 restart web-1: ok`).
    pub fn audit(&self, action: &str, target: &str, result: &dyn fmt::Display) {
        let sep = if target.is_empty() { "" } else { " " };
        tracing::info!(
            target: "tend::audit",
            "audit: {} {action}{sep}{target}: {result}",
            self.shown()
        );
    }

    /// [`Caller::audit`] of a result: `ok`, or `failed (why)`.
    pub fn audit_result<T, E: fmt::Display>(
        &self,
        action: &str,
        target: &str,
        result: &Result<T, E>,
    ) {
        match result {
            Ok(_) => self.audit(action, target, &"ok"),
            Err(e) => self.audit(action, target, &format_args!("failed ({e})")),
        }
    }

    /// [`Caller::audit`] of a refusal.
    pub fn audit_denied(&self, action: &str, target: &str, denied: &Denied) {
        let over = if denied.over.is_empty() {
            ""
        } else {
            " over every process"
        };
        tracing::warn!(
            target: "tend::audit",
            "audit: {} {action}{}{target}: denied (needs \"{}\"{over})",
            self.shown(),
            if target.is_empty() { "" } else { " " },
            denied.right
        );
    }

    /// The caller of a request that no guard saw (a router served without
    /// [`crate::app`]): from its peer under supervisord's default rights,
    /// or [`Caller::internal`] when it came through no socket.
    pub fn unguarded(peer: Option<&Peer>) -> Caller {
        let Some(peer) = peer else {
            return Caller::internal();
        };
        let policy = Policy::unconfigured(nix::unistd::geteuid().as_raw());
        let who = identity_of(peer);
        let grants = policy.grants(&who);
        Caller::new(who, Some(peer.clone()), grants)
    }
}

/// The identity a peer has without credentials.
pub(crate) fn identity_of(peer: &Peer) -> Identity {
    match peer.uid {
        Some(uid) => {
            let mut gids: Vec<u32> = peer.gid.into_iter().collect();
            if let Some(g) = &peer.groups {
                gids.extend(g.iter().copied());
            }
            gids.sort_unstable();
            gids.dedup();
            Identity::unix(uid, gids)
        }
        None => Identity::Anonymous,
    }
}

/// `control db`, `read the logs of db`, ...
fn phrase(right: Right, name: &str) -> String {
    match right {
        Right::View => format!("see {name}"),
        Right::Logs => format!("read the logs of {name}"),
        Right::Control => format!("control {name}"),
        Right::Stdin => format!("write to the stdin of {name}"),
        Right::Reload => format!("reload {name}"),
        Right::Admin => format!("administer {name}"),
        Right::Metrics => format!("read the metrics of {name}"),
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        if let Some(c) = parts.extensions.get::<Caller>() {
            return Ok(c.clone());
        }
        let peer = parts.extensions.get::<ConnectInfo<Peer>>().map(|c| &c.0);
        Ok(Caller::unguarded(peer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_missing_right() {
        let c = Caller::new(Identity::User("alice".into()), None, Grants::none());
        let db = Name::new("db").expect("name");
        let e = c.require(Right::Control, &db, &db).expect_err("denied");
        assert_eq!(e.to_string(), "alice may not control db: needs \"control\"");
        let e = c
            .require_everything(Right::Admin, "shut the daemon down")
            .expect_err("denied");
        assert_eq!(
            e.to_string(),
            "alice may not shut the daemon down: needs \"admin\" over every process"
        );
        assert_eq!(
            c.require_spawn().expect_err("denied").to_string(),
            "alice may not add a process with a new command: needs \"admin\" over every process"
        );
        assert_eq!(c.shown(), "alice@internal");
        let peer = Peer::unix(1001, 1001, Some(42));
        let c = Caller::new(identity_of(&peer), Some(peer), Grants::none());
        assert!(c.shown().ends_with("@unix:42"), "{}", c.shown());
    }
}
