//! `user` and `unix_group`, resolved to numeric ids in the parent.
//!
//! Looking users up reads NSS (files, LDAP, ...), which allocates and takes
//! locks, so it cannot happen between fork and exec. Everything the child needs
//! is computed here; `pre_exec` only copies numbers into syscalls.

use std::ffi::CString;

use nix::unistd::{self, Gid, Group, Uid, User};

use crate::launcher::SpawnError;

/// The identity a child switches to before exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Creds {
    /// `setuid` to this; `None` keeps the daemon's user (only `unix_group` set).
    pub uid: Option<libc::uid_t>,
    /// `setgid` to this.
    pub gid: libc::gid_t,
    /// `setgroups` to this. `None` when the daemon is not root: it could not
    /// change its groups anyway, and can only run children as itself.
    pub groups: Option<Vec<libc::gid_t>>,
}

/// A user as named in a spec.
#[derive(Debug)]
struct ResolvedUser {
    uid: Uid,
    /// Login name and primary group, when the user database knows the uid.
    entry: Option<(String, Gid)>,
}

fn permanent(message: String) -> SpawnError {
    SpawnError {
        message,
        permanent: true,
    }
}

fn transient(message: String) -> SpawnError {
    SpawnError {
        message,
        permanent: false,
    }
}

fn numeric(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Resolves `user` (a name or a uid) and `unix_group` (a name or a gid).
///
/// - The primary group is `unix_group` when given, else the user's own.
/// - With a user, the supplementary groups are the user's (`getgrouplist`, as
///   `initgroups` would set them); with only a group, just that group, so a
///   root daemon's own groups never leak into the child.
/// - A numeric uid the user database does not know is accepted (containers
///   often run as such ids) but then needs an explicit `unix_group`.
/// - A numeric gid is used as given; a group needs no database entry.
///
/// Unknown names, and ids a non-root daemon cannot switch to, are permanent
/// errors; a failing user database (LDAP down) is not.
pub(super) fn resolve(
    user: Option<&str>,
    group: Option<&str>,
) -> Result<Option<Creds>, SpawnError> {
    if user.is_none() && group.is_none() {
        return Ok(None);
    }
    let resolved_user = user.map(lookup_user).transpose()?;
    let gid = match (group, &resolved_user) {
        (Some(group), _) => lookup_group(group)?,
        (
            None,
            Some(ResolvedUser {
                entry: Some((_, primary)),
                ..
            }),
        ) => *primary,
        (None, _) => {
            return Err(permanent(format!(
                "user {:?} has no entry in the user database, so its primary group is unknown; set unix_group",
                user.unwrap_or_default()
            )));
        }
    };

    let groups = if unistd::geteuid().is_root() {
        Some(match &resolved_user {
            Some(ResolvedUser {
                entry: Some((name, primary)),
                ..
            }) => supplementary_groups(name, *primary)?,
            _ => vec![gid.as_raw()],
        })
    } else {
        check_unprivileged(user, resolved_user.as_ref(), group, gid)?;
        None
    };

    Ok(Some(Creds {
        uid: resolved_user.map(|u| u.uid.as_raw()),
        gid: gid.as_raw(),
        groups,
    }))
}

fn lookup_user(user: &str) -> Result<ResolvedUser, SpawnError> {
    let looked_up = match numeric(user) {
        Some(n) => User::from_uid(Uid::from_raw(n)),
        None => User::from_name(user),
    };
    match looked_up {
        Ok(Some(entry)) => Ok(ResolvedUser {
            uid: entry.uid,
            entry: Some((entry.name, entry.gid)),
        }),
        Ok(None) => match numeric(user) {
            Some(n) => Ok(ResolvedUser {
                uid: Uid::from_raw(n),
                entry: None,
            }),
            None => Err(permanent(format!("unknown user {user:?}"))),
        },
        Err(e) => Err(transient(format!("cannot look up user {user:?}: {e}"))),
    }
}

fn lookup_group(group: &str) -> Result<Gid, SpawnError> {
    if let Some(n) = numeric(group) {
        return Ok(Gid::from_raw(n));
    }
    match Group::from_name(group) {
        Ok(Some(entry)) => Ok(entry.gid),
        Ok(None) => Err(permanent(format!("unknown group {group:?}"))),
        Err(e) => Err(transient(format!("cannot look up group {group:?}: {e}"))),
    }
}

fn supplementary_groups(name: &str, primary: Gid) -> Result<Vec<libc::gid_t>, SpawnError> {
    // A name from the user database never holds a NUL; be safe anyway.
    let cname = CString::new(name)
        .map_err(|_| permanent(format!("user name {name:?} contains a NUL byte")))?;
    let groups = unistd::getgrouplist(&cname, primary)
        .map_err(|e| transient(format!("cannot read the groups of user {name:?}: {e}")))?;
    Ok(groups.into_iter().map(Gid::as_raw).collect())
}

/// A daemon that is not root can only "switch" to its own ids: say so now,
/// rather than failing with EPERM after fork.
fn check_unprivileged(
    user: Option<&str>,
    resolved: Option<&ResolvedUser>,
    group: Option<&str>,
    gid: Gid,
) -> Result<(), SpawnError> {
    if let (Some(name), Some(u)) = (user, resolved)
        && u.uid != unistd::getuid()
        && u.uid != unistd::geteuid()
    {
        return Err(permanent(format!(
            "cannot run as user {name:?} (uid {}): tend runs as uid {} and only root can switch users",
            u.uid,
            unistd::geteuid()
        )));
    }
    if gid != unistd::getgid() && gid != unistd::getegid() {
        let what = match group {
            Some(g) => format!("group {g:?}"),
            None => "the user's primary group".to_string(),
        };
        return Err(permanent(format!(
            "cannot run with {what} (gid {gid}): tend runs with gid {} and only root can switch groups",
            unistd::getegid()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_to_resolve() {
        assert_eq!(resolve(None, None), Ok(None));
    }

    #[test]
    fn unknown_names_are_permanent_and_named() {
        let err = resolve(Some("tend-no-such-user"), None).expect_err("unknown user");
        assert!(err.permanent);
        assert!(
            err.message.contains("\"tend-no-such-user\""),
            "{}",
            err.message
        );

        let err = resolve(None, Some("tend-no-such-group")).expect_err("unknown group");
        assert!(err.permanent);
        assert!(
            err.message.contains("\"tend-no-such-group\""),
            "{}",
            err.message
        );
    }

    #[test]
    fn numeric_uid_without_entry_needs_a_group() {
        // uid 4_000_000_000 has no passwd entry on any sane system.
        let err = resolve(Some("4000000000"), None).expect_err("no primary group");
        assert!(err.permanent);
        assert!(err.message.contains("unix_group"), "{}", err.message);
    }

    #[test]
    fn current_user_resolves_to_itself() {
        let me = unistd::geteuid();
        let creds = resolve(Some(&me.to_string()), None)
            .expect("own uid")
            .expect("creds");
        assert_eq!(creds.uid, Some(me.as_raw()));
        let entry = User::from_uid(me).expect("lookup").expect("entry");
        assert_eq!(creds.gid, entry.gid.as_raw());
        if me.is_root() {
            let groups = creds.groups.expect("root sets groups");
            assert!(groups.contains(&entry.gid.as_raw()), "{groups:?}");
        } else {
            assert_eq!(creds.groups, None);
        }
    }

    #[test]
    fn group_only_keeps_the_uid() {
        let gid = unistd::getegid();
        let creds = resolve(None, Some(&gid.to_string()))
            .expect("own gid")
            .expect("creds");
        assert_eq!(creds.uid, None);
        assert_eq!(creds.gid, gid.as_raw());
        if unistd::geteuid().is_root() {
            assert_eq!(creds.groups, Some(vec![gid.as_raw()]));
        }
    }
}
