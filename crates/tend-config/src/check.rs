//! The value rules a process spec must follow wherever it comes from: the
//! config file (which reports each at its key) and the JSON API's `POST
//! /v1/processes` (which reports them all in its 400), so that the API can
//! never add a process the config file would refuse.

use std::path::Path;

use tend_core::ProcessSpec;

/// A working directory must exist and be a directory.
pub(crate) fn working_dir(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(format!(
            "working directory {} is not a directory",
            path.display()
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
            "working directory {} does not exist",
            path.display()
        )),
        Err(e) => Err(format!(
            "cannot use working directory {}: {e}",
            path.display()
        )),
    }
}

/// A user that exists here: a name is looked up; a numeric id is taken as
/// is (containers often run ids with no passwd entry).
pub(crate) fn user_exists(s: &str) -> Result<(), String> {
    account(s, "user", |n| {
        nix::unistd::User::from_name(n).map(|u| u.is_some())
    })
}

/// A group that exists here (see [`user_exists`]).
pub(crate) fn group_exists(s: &str) -> Result<(), String> {
    account(s, "group", |n| {
        nix::unistd::Group::from_name(n).map(|g| g.is_some())
    })
}

fn account(
    s: &str,
    what: &str,
    lookup: impl FnOnce(&str) -> nix::Result<bool>,
) -> Result<(), String> {
    if s.parse::<u32>().is_ok() {
        return Ok(());
    }
    if s.is_empty() {
        return Err(format!("{what} is empty"));
    }
    match lookup(s) {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!("no {what} named {s:?} on this machine")),
        Err(e) => Err(format!("cannot look up {what} {s:?}: {e}")),
    }
}

/// An exit code is 0 to 255.
pub(crate) fn exit_code(code: i64) -> Result<(), String> {
    if (0..=255).contains(&code) {
        Ok(())
    } else {
        Err(format!(
            "{code} is out of range: expected an exit code (0 to 255)"
        ))
    }
}

/// `watchdog` needs `notify` (`place`: ` in [process.x]`, or nothing).
pub(crate) fn watchdog_needs_notify(place: &str) -> String {
    format!("watchdog needs notify = true{place} (the pings come through the notify socket)")
}

/// `start_timeout` needs something that keeps a process `starting`.
pub(crate) fn start_timeout_never_fires(place: &str) -> String {
    format!(
        "start_timeout{place} never fires: it limits how long a process may stay starting, \
         which needs a [ready] check, notify = true or start_secs"
    )
}

/// Whether `start_timeout` can fire for `spec`.
pub(crate) fn start_timeout_can_fire(spec: &ProcessSpec) -> bool {
    spec.ready.is_some() || spec.notify || !spec.start_secs.is_zero()
}

/// Every rule the config file applies to a process, applied to a spec that
/// arrived otherwise (the JSON API): each problem as `field: what is wrong`.
/// Paths must be absolute (there is no config file to be relative to).
pub fn check_spec(spec: &ProcessSpec) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    if let Err(e) = spec.validate() {
        problems.push(e.to_string());
    }
    if let Some(cwd) = &spec.cwd {
        if cwd.is_relative() {
            problems.push(format!(
                "cwd: {} is relative (give an absolute path)",
                cwd.display()
            ));
        } else if let Err(why) = working_dir(cwd) {
            problems.push(format!("cwd: {why}"));
        }
    }
    for code in &spec.success_exit_codes {
        if let Err(why) = exit_code(i64::from(*code)) {
            problems.push(format!("success_exit_codes: {why}"));
        }
    }
    if let Some(u) = &spec.user
        && let Err(why) = user_exists(u)
    {
        problems.push(format!("user: {why}"));
    }
    if let Some(g) = &spec.unix_group
        && let Err(why) = group_exists(g)
    {
        problems.push(format!("unix_group: {why}"));
    }
    if spec.watchdog.is_some() && !spec.notify {
        problems.push(watchdog_needs_notify(""));
    }
    if spec.watchdog.is_some_and(|d| d.is_zero()) {
        problems.push("watchdog must be more than 0".to_string());
    }
    if spec.start_timeout.is_some_and(|d| d.is_zero()) {
        problems.push("start_timeout must be more than 0".to_string());
    } else if spec.start_timeout.is_some() && !start_timeout_can_fire(spec) {
        problems.push(start_timeout_never_fires(""));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tend_core::Name;

    fn spec() -> ProcessSpec {
        ProcessSpec::new(Name::new("x").expect("name"), vec!["true".into()])
    }

    #[test]
    fn the_api_gets_the_config_files_rules() {
        assert_eq!(check_spec(&spec()), Ok(()));
        let mut s = spec();
        s.cwd = Some("relative/dir".into());
        s.success_exit_codes = vec![0, 256, -1];
        s.user = Some("no-such-user-anywhere".into());
        s.watchdog = Some(std::time::Duration::from_secs(1));
        let problems = check_spec(&s).expect_err("refused");
        assert_eq!(problems.len(), 5, "{problems:?}");
        assert!(problems[0].contains("cwd: relative/dir is relative"));
        assert!(problems[1].contains("256 is out of range"));
        assert!(problems[2].contains("-1 is out of range"));
        assert!(problems[3].contains("no user named"));
        assert!(problems[4].contains("watchdog needs notify"));
        let mut s = spec();
        s.cwd = Some("/nonexistent/dir/here".into());
        assert!(check_spec(&s).expect_err("refused")[0].contains("does not exist"));
    }
}
