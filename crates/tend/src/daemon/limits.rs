//! Resource limits the daemon needs: open files (each process holds pipes,
//! a pidfd and log files) and processes, as supervisord's `minfds` and
//! `minprocs` ask.

use tracing::debug;

/// Each process costs two pipe ends and its log files; the default soft limit
/// (often 1024) is too low for a few hundred processes, the hard one is not.
///
/// `minfds` (`[supervisord] minfds`) must be reached, raising the hard limit
/// too if need be (as root), or the daemon does not start, as supervisord.
/// Without it the soft limit is raised to the hard one: each running process
/// holds its pipes and a pidfd. Returns supervisord's note when the soft
/// limit was below `minfds` (`Increased RLIMIT_NOFILE limit to N`).
pub(super) fn raise_fd_limit(minfds: Option<u64>) -> anyhow::Result<Option<String>> {
    raise_limit(
        nix::sys::resource::Resource::RLIMIT_NOFILE,
        minfds,
        true,
        "minfds",
        "file descriptors",
    )
    .map(|raised| raised.then(|| note("RLIMIT_NOFILE", minfds)))
}

fn note(name: &str, min: Option<u64>) -> String {
    format!("Increased {name} limit to {}", min.unwrap_or(0))
}

/// `minprocs` (`[supervisord] minprocs`): the processes limit must reach it,
/// as supervisord requires (with its note when it was raised).
pub(super) fn raise_proc_limit(minprocs: Option<u64>) -> anyhow::Result<Option<String>> {
    if minprocs.is_none() {
        return Ok(None);
    }
    raise_limit(
        nix::sys::resource::Resource::RLIMIT_NPROC,
        minprocs,
        false,
        "minprocs",
        "available processes",
    )
    .map(|raised| raised.then(|| note("RLIMIT_NPROC", minprocs)))
}

/// Raises the soft limit of `resource` to at least `want` (the hard limit
/// too, as root), and to the hard limit with `to_hard`. Failing to reach
/// `want` is an error worded as supervisord words it. `true` when the soft
/// limit was below `want` and now is not (supervisord says so).
fn raise_limit(
    resource: nix::sys::resource::Resource,
    want: Option<u64>,
    to_hard: bool,
    setting: &str,
    what: &str,
) -> anyhow::Result<bool> {
    use nix::sys::resource::{getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(resource) else {
        return Ok(false);
    };
    let want = want.unwrap_or(0);
    let new_hard = hard.max(want);
    let new_soft = if to_hard { new_hard } else { soft.max(want) };
    if soft >= new_soft {
        return Ok(false);
    }
    let below = soft < want;
    match setrlimit(resource, new_soft, new_hard) {
        Ok(()) => debug!("raised the {what} limit from {soft} to {new_soft}"),
        Err(e) if soft >= want => {
            debug!("cannot raise the {what} limit from {soft} to {new_soft}: {e}")
        }
        Err(e) => anyhow::bail!(
            "the minimum number of {what} required to run this process is {want} as per the \"{setting}\" setting; the current environment will only allow {hard} ({e})"
        ),
    }
    Ok(below)
}
