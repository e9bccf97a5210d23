//! Resource limits the daemon needs: open files (each process holds pipes,
//! a pidfd and log files) and processes, as supervisord's `minfds` and
//! `minprocs` ask.

use tracing::{debug, info};

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
/// `processes` (what [`process_fds`] counts, and room for clients), a daemon
/// that may raise it (root) does, up to `fs.nr_open`, and says so; for one
/// that may not, [`connection_caps`] says whether they fit. Returns
/// supervisord's note when the soft limit was below `minfds` (`Increased
/// RLIMIT_NOFILE limit to N`).
pub(super) fn raise_fd_limit(
    minfds: Option<u64>,
    processes: &[std::sync::Arc<tend_core::ProcessSpec>],
) -> anyhow::Result<Option<String>> {
    let raised = raise_limit(
        nix::sys::resource::Resource::RLIMIT_NOFILE,
        minfds,
        true,
        "minfds",
        "file descriptors",
    )?;
    let fds = processes.iter().map(|p| process_fds(p)).sum();
    raise_for_processes(processes.len(), fds);
    Ok(raised.then(|| note("RLIMIT_NOFILE", minfds)))
}

/// Raises the hard descriptor limit (and the soft one with it) to what
/// `processes` needing `fds` descriptors in all ([`process_fds`]) may need,
/// with room to spare, when it is lower and we may. When we may not, the
/// budget of [`connection_caps`] says whether they fit at all.
fn raise_for_processes(processes: usize, fds: u64) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    // Only when the processes would take more than half of the limit: a
    // limit set on purpose for a small config (`ulimit -n 1024`) stays.
    if fds.saturating_mul(2) <= soft {
        return;
    }
    let need = fds.saturating_add(FDS_SPARE);
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
            "raised the open-file limit from {soft} (hard {hard}) to {want} for {} ({fds} descriptors at most, and room for clients)",
            crate::plural(processes, "process")
        ),
        Err(e) => debug!(
            "{} may hold {fds} descriptors; the open-file limit stays {soft} (it cannot be raised: {e})",
            crate::plural(processes, "process")
        ),
    }
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

/// Descriptors the daemon keeps for itself whatever the clients do: the
/// standard streams, its epoll sets, the runtime, its signal pipes, the
/// listening sockets, its own log, the pipes of the spawn under way, a
/// config file or certificate being read again.
const DAEMON_FDS: u64 = 64;

/// The fewest connections worth serving: below this the limit is too low to
/// run the daemon at all.
const MIN_CLIENT_FDS: u64 = 16;

/// How many descriptors one process may hold: its output pipes (one with
/// `merge_stderr`, none for a `"null"` stream), its pidfd, its stdin pipe, its log files (opened while
/// it writes) and a network check in flight.
fn process_fds(spec: &tend_core::ProcessSpec) -> u64 {
    use tend_core::spec::LogTarget;
    let logs = &spec.logs;
    // A "null" stream is /dev/null in the child: no pipe (10,000 quiet
    // processes need a pidfd each and nothing else).
    let (out, err) = logs.captured();
    let pipes = u64::from(out) + u64::from(err);
    let stdin = u64::from(spec.stdin_pipe);
    let files = match (&logs.stdout, &logs.stderr) {
        (LogTarget::File(a), LogTarget::File(b)) if a != b && !logs.merge_stderr => 2,
        (LogTarget::File(_), _) => 1,
        (_, LogTarget::File(_)) if !logs.merge_stderr => 1,
        _ => 0,
    };
    let probes = u64::from(spec.ready.is_some()) + u64::from(spec.health.is_some());
    pipes + 1 + stdin + files + probes
}

/// How many connections each listener may hold, so that clients can never
/// take the descriptors the processes need (a respawn that fails with "Too
/// many open files" would send a process to FATAL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ConnectionCaps {
    /// On the Unix socket: kept apart, so that `tend status` answers
    /// whatever the TCP clients hold.
    pub(super) unix: usize,
    /// Over every TCP listener together.
    pub(super) tcp: usize,
}

/// The descriptor budget: the open-files limit (as raised) less what the
/// processes and the daemon need, a quarter of the rest kept for processes
/// added later; the clients share the other three quarters, a quarter of it
/// for the Unix socket when there are TCP listeners too. Too few
/// descriptors for even that is an error that says what to raise, as
/// supervisord's `minfds` check does.
pub(super) fn connection_caps(
    processes: &[std::sync::Arc<tend_core::ProcessSpec>],
    max_connections: usize,
    tcp: bool,
) -> anyhow::Result<ConnectionCaps> {
    let Ok((nofile, _)) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
    else {
        return Ok(ConnectionCaps {
            unix: max_connections,
            tcp: max_connections,
        });
    };
    let caps = budget(
        nofile,
        processes.iter().map(|p| process_fds(p)).sum(),
        processes.len(),
        max_connections,
        tcp,
    )?;
    debug!(
        "open-files limit {nofile}: connections at most {} on the socket, {} over TCP",
        caps.unix, caps.tcp
    );
    Ok(caps)
}

/// [`connection_caps`] for a limit of `nofile` and processes that need
/// `process_fds` descriptors in all.
fn budget(
    nofile: u64,
    process_fds: u64,
    processes: usize,
    max_connections: usize,
    tcp: bool,
) -> anyhow::Result<ConnectionCaps> {
    let needed = process_fds + DAEMON_FDS + MIN_CLIENT_FDS;
    if nofile < needed {
        anyhow::bail!(
            "the open-files limit is {nofile}, too low for {}: they need about {process_fds} descriptors, and the daemon {} more for itself and its clients; raise it to at least {needed} (`ulimit -n {needed}`, LimitNOFILE= in a systemd unit, or minfds in [supervisord])",
            crate::plural(processes, "process"),
            DAEMON_FDS + MIN_CLIENT_FDS
        );
    }
    let spare = nofile - process_fds - DAEMON_FDS;
    let clients = (spare - spare / 4).max(MIN_CLIENT_FDS);
    let clients = usize::try_from(clients).unwrap_or(usize::MAX);
    let (unix, tcp) = if tcp {
        let unix = (clients / 4).max(MIN_CLIENT_FDS as usize / 2);
        (unix, clients.saturating_sub(unix).max(1))
    } else {
        (clients, 0)
    };
    Ok(ConnectionCaps {
        unix: unix.min(max_connections),
        tcp: tcp.min(max_connections),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_keeps_descriptors_for_the_processes() {
        // 200 processes under `ulimit -n 256`: refused, with what to raise.
        let e = budget(256, 600, 200, 1024, false).expect_err("too few");
        assert_eq!(
            e.to_string(),
            "the open-files limit is 256, too low for 200 processes: they need about 600 descriptors, and the daemon 80 more for itself and its clients; raise it to at least 680 (`ulimit -n 680`, LimitNOFILE= in a systemd unit, or minfds in [supervisord])"
        );
        // 1024 with 100 processes of 3: 660 spare, 495 for clients.
        assert_eq!(
            budget(1024, 300, 100, 1024, false).expect("fits"),
            ConnectionCaps { unix: 495, tcp: 0 }
        );
        assert_eq!(
            budget(1024, 300, 100, 1024, true).expect("fits"),
            ConnectionCaps {
                unix: 123,
                tcp: 372
            }
        );
        // Plenty: the configured maximum.
        assert_eq!(
            budget(1 << 20, 300, 100, 1024, true).expect("fits"),
            ConnectionCaps {
                unix: 1024,
                tcp: 1024
            }
        );
        // Just enough: the fewest worth serving.
        assert_eq!(budget(680, 600, 200, 1024, false).expect("fits").unix, 16);
    }

    #[test]
    fn a_null_stream_needs_no_pipe() {
        use tend_core::spec::{LogTarget, ProcessSpec};
        let mut spec = ProcessSpec::new(tend_core::Name::new("s").unwrap(), vec!["sleep".into()]);
        // Both streams read: two pipes and the pidfd.
        assert_eq!(process_fds(&spec), 3);
        spec.logs.stdout = LogTarget::Null;
        spec.logs.stderr = LogTarget::Null;
        // 10,000 of these run in 20,000 descriptors (issue 16).
        assert_eq!(process_fds(&spec), 1);
        spec.logs.stderr = LogTarget::Memory;
        assert_eq!(process_fds(&spec), 2);
    }
}
