//! The daemon's own user (`[supervisord] user`, `supervisord -u`):
//! supervisord's `drop_privileges`, before anything is opened.

use std::ffi::CString;

use nix::unistd::{Uid, User, getgrouplist, setgid, setgroups, setuid};

/// Becomes `user` (a name or a uid): its groups, its gid, then its uid.
/// Nothing to do when it is the current user already. Returns
/// supervisord's note (`Set uid to user 1000 succeeded`) or its error.
pub(super) fn drop_privileges(user: &str) -> Result<String, String> {
    let pw = match user.parse::<u32>() {
        Ok(uid) => User::from_uid(Uid::from_raw(uid))
            .ok()
            .flatten()
            .ok_or_else(|| format!("Can't find uid {uid}"))?,
        Err(_) => User::from_name(user)
            .ok()
            .flatten()
            .ok_or_else(|| format!("Can't find username {}", py_quote(user)))?,
    };
    let note = format!("Set uid to user {} succeeded", pw.uid);
    let current = Uid::current();
    if current == pw.uid {
        return Ok(note);
    }
    if !current.is_root() {
        return Err("Can't drop privilege as nonroot user".to_string());
    }
    let name = CString::new(pw.name.as_bytes())
        .map_err(|_| "Could not set groups of effective user".to_string())?;
    // The primary group first, as supervisord puts it.
    let mut groups = getgrouplist(&name, pw.gid).unwrap_or_default();
    groups.retain(|g| *g != pw.gid);
    groups.insert(0, pw.gid);
    setgroups(&groups).map_err(|_| "Could not set groups of effective user".to_string())?;
    setgid(pw.gid).map_err(|_| "Could not set group id of effective user".to_string())?;
    setuid(pw.uid).map_err(|e| format!("Could not set user id of effective user: {e}"))?;
    Ok(note)
}

/// Python's `%r` of a plain name.
fn py_quote(s: &str) -> String {
    tend_config::supervisord::ini::py_repr(s)
}
