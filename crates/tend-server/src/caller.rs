//! The access check as the dashboard, the event stream and the endpoints
//! they use call it: the real [`Caller`] of [`crate::access`], asked by the
//! names that status and events carry.

use tend_core::Name;

pub use crate::access::Caller;
pub use tend_config::access::Right;

/// [`Caller::may`] by the names as strings: a name that is not a valid
/// process name names nothing the caller may touch.
pub(crate) trait MayByName {
    /// Whether the caller may use `right` on the process `name` of `group`.
    fn may_str(&self, right: Right, name: &str, group: &str) -> bool;
}

impl MayByName for Caller {
    fn may_str(&self, right: Right, name: &str, group: &str) -> bool {
        match (Name::new(name), Name::new(group)) {
            (Ok(n), Ok(g)) => self.may(right, &n, &g),
            _ => false,
        }
    }
}
