//! Resource limits the daemon needs: open files (each process holds pipes,
//! a pidfd and log files) and processes, as supervisord's `minfds` and
//! `minprocs` ask.

use tracing::{debug, info, warn};

/// Descriptors a process may hold at most: a pidfd, a pipe for stdout, one
/// for stderr, one for stdin (a `null` stream has none).
const FDS_PER_PROCESS: u64 = 4;
/// Descriptors the daemon holds besides: listeners, connections, log files,
/// its epoll sets.
const FDS_SPARE: u64 = 1024;

/// Each process costs two pipe ends and its log files; the default soft limit
/// (often 1024) is too low for a few hundred processes, the hard one is not.
///
/// `minfds` (`[supervisord] minfds`) must be reached, raising the hard limit
/// too if need be (as root), or the daemon does not start, as supervisord.
/// Without it the soft limit is raised to the hard one: each running process
/// holds its pipes and a pidfd. When even the hard limit is short for
/// `processes` (ten thousand of them need up to 41,024), a daemon that may
/// raise it (root) does, up to `fs.nr_open`, and says so; one that may not
/// says how many it can run.
pub(super) fn raise_fd_limit(minfds: Option<u64>, processes: usize) -> anyhow::Result<()> {
    raise_limit(
        nix::sys::resource::Resource::RLIMIT_NOFILE,
        minfds,
        true,
        "minfds",
        "file descriptors",
    )?;
    raise_for_processes(processes as u64);
    Ok(())
}

/// Raises the hard descriptor limit (and the soft one with it) to what
/// `processes` may need, when it is lower and we may.
fn raise_for_processes(processes: u64) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    let need = processes
        .saturating_mul(FDS_PER_PROCESS)
        .saturating_add(FDS_SPARE);
    if soft >= need {
        return;
    }
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(1 << 20);
    let want = need.min(nr_open).max(hard);
    match setrlimit(Resource::RLIMIT_NOFILE, want, want) {
        Ok(()) => info!(
            "raised the open-file limit from {soft} (hard {hard}) to {want} for {processes} processes ({FDS_PER_PROCESS} descriptors each at most)"
        ),
        Err(e) => warn!(
            "{processes} processes may need {need} open files ({FDS_PER_PROCESS} each with output and stdin pipes, 1 with null output), but the limit is {soft} and cannot be raised ({e}): spawns past it fail with \"Too many open files\""
        ),
    }
}

/// `minprocs` (`[supervisord] minprocs`): the processes limit must reach it,
/// as supervisord requires.
pub(super) fn raise_proc_limit(minprocs: Option<u64>) -> anyhow::Result<()> {
    if minprocs.is_none() {
        return Ok(());
    }
    raise_limit(
        nix::sys::resource::Resource::RLIMIT_NPROC,
        minprocs,
        false,
        "minprocs",
        "available processes",
    )
}

/// Raises the soft limit of `resource` to at least `want` (the hard limit
/// too, as root), and to the hard limit with `to_hard`. Failing to reach
/// `want` is an error worded as supervisord words it.
fn raise_limit(
    resource: nix::sys::resource::Resource,
    want: Option<u64>,
    to_hard: bool,
    setting: &str,
    what: &str,
) -> anyhow::Result<()> {
    use nix::sys::resource::{getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(resource) else {
        return Ok(());
    };
    let want = want.unwrap_or(0);
    let new_hard = hard.max(want);
    let new_soft = if to_hard { new_hard } else { soft.max(want) };
    if soft >= new_soft {
        return Ok(());
    }
    match setrlimit(resource, new_soft, new_hard) {
        Ok(()) => debug!("raised the {what} limit from {soft} to {new_soft}"),
        Err(e) if soft >= want => {
            debug!("cannot raise the {what} limit from {soft} to {new_soft}: {e}")
        }
        Err(e) => anyhow::bail!(
            "the minimum number of {what} required to run this process is {want} as per the \"{setting}\" setting; the current environment will only allow {hard} ({e})"
        ),
    }
    Ok(())
}
