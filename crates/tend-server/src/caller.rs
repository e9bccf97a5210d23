//! HOOK(access): who is asking, and what they may do: the one place where
//! the access check plugs into the dashboard and the endpoints it uses.
//!
//! Today every caller may do everything (what a listener lets in is decided
//! by its credentials, [`crate::auth`]). The access work replaces
//! [`Caller`] with the real one (users, roles, rights): the handlers of the
//! event stream, the dashboard and the endpoints added for it already take a
//! `Caller` and ask [`Caller::may`] once per process they show or act on, so
//! nothing else changes. Cross-origin protection belongs in the same place
//! (the dashboard sends its actions as same-origin `fetch` with a JSON body).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

/// What a caller may do to a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Right {
    /// See it: its status, its events, its place in the graph.
    View,
    /// Start, stop or restart it.
    Control,
    /// Send it a signal.
    Signal,
    /// Write to its stdin.
    Stdin,
    /// Read its output and download its log files.
    Logs,
}

/// The caller of a request.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Caller {}

impl Caller {
    /// Whether the caller may use `right` on the process `name` of `group`.
    /// HOOK(access): everyone may do everything until the access check lands.
    pub fn may(&self, right: Right, name: &str, group: &str) -> bool {
        let _ = (right, name, group);
        true
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(_parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // HOOK(access): build the caller from the request (peer, credentials).
        Ok(Caller {})
    }
}
