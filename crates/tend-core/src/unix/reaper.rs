//! The reaper: the only code in tend that waits for children.
//!
//! Any other `wait*` would steal exit statuses from it (clippy.toml bans the
//! usual ways). It is a tokio task that sleeps on SIGCHLD and nothing else, and
//! on each one drains every child that has exited:
//!
//! - `reap_all`: `waitpid(-1, WNOHANG)` until nothing is left, after becoming a
//!   child subreaper so orphaned grandchildren come to us too. Pids the driver
//!   did not spawn are sent as well; it uses them as a cue to re-check groups.
//! - own children only: `waitpid(pid, WNOHANG)` for each pid the launcher
//!   recorded, so an embedding program's other children are left alone.
//!
//! SIGCHLDs coalesce (several exits can raise one signal), which is why every
//! wake-up drains rather than reaping one child. The listener is installed
//! before the first drain pass, so a child that exits at any time is either
//! seen by that pass or raises a signal the task has not consumed yet.
//!
//! Statuses are converted without nix's `WaitStatus`, which cannot represent a
//! death by a real-time signal and would lose that exit.

use std::io;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::epoll::{self, Registered};
use super::{SharedState, lock};
use crate::launcher::Reaped;
use crate::model::signal::Signal;
use crate::model::status::ExitInfo;

/// The exit reported for one of our children that vanished without us reaping
/// it (the embedding program waited for it, or set SIGCHLD to `SIG_IGN`). Real
/// exit codes are 0..=255, so this cannot be mistaken for one, and the driver
/// still learns the process is gone.
const UNKNOWN_EXIT: ExitInfo = ExitInfo::Code(-1);

/// Installs the SIGCHLD listener (and, with `reap_all`, makes this process a
/// child subreaper), then spawns the reaper task on the current runtime.
pub(super) fn start(
    reap_all: bool,
    shared: SharedState,
) -> io::Result<mpsc::UnboundedReceiver<Reaped>> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|e| {
        io::Error::other(format!(
            "the Unix launcher must be created inside a tokio runtime: {e}"
        ))
    })?;
    if reap_all {
        // Without it, orphans go to init and their groups still empty out; we
        // only lose the chance to reap them ourselves. Not worth failing for.
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            tracing::warn!("cannot become a child subreaper, orphans will be reaped by init: {e}");
        }
    }
    let mut sigchld = signal(SignalKind::child())?;
    let pidfds = match lock(&shared).epoll.clone().map(Registered::register) {
        Some(Ok(fd)) => Some(fd),
        Some(Err(e)) => {
            tracing::debug!(error = %e, "cannot watch pidfds; SIGCHLD will do");
            lock(&shared).give_up_pidfds();
            None
        }
        None => None,
    };
    let (tx, rx) = mpsc::unbounded_channel();
    runtime.spawn(async move {
        // The first pass runs at once: children may have exited before the
        // listener existed.
        let mut drain_at = Some(Instant::now());
        loop {
            if drain_at.is_some_and(|at| at <= Instant::now()) {
                drain_at = None;
                let alive = if reap_all {
                    drain_all(&shared, &tx).await
                } else {
                    drain_own(&shared, &tx)
                };
                if !alive {
                    return;
                }
            }
            tokio::select! {
                biased;
                ready = readable(pidfds.as_ref()) => {
                    let Ok(mut ready) = ready else { return };
                    let (gone, more) = reap_ready(reap_all, &shared);
                    if !more {
                        ready.clear_ready();
                    }
                    let reaped = !gone.is_empty();
                    for r in gone {
                        if tx.send(r).is_err() {
                            return;
                        }
                    }
                    if reaped {
                        // The driver restarts them before anything else here.
                        tokio::task::yield_now().await;
                    }
                }
                got = sigchld.recv() => {
                    if got.is_none() {
                        return;
                    }
                    if drain_at.is_none() {
                        drain_at = Some(Instant::now() + walk_delay(reap_all, &shared));
                    }
                }
                () = sleep_until(drain_at) => {}
                () = tx.closed() => return,
            }
        }
    });
    Ok(rx)
}

/// How long after a SIGCHLD the `waitpid(-1)` pass runs. At once, unless
/// every child is watched through a pidfd (then a SIGCHLD is most likely one
/// of theirs, already reaped): the pass is there for orphans, and a walk over
/// a thousand children right after a restart's clone would share the CPU
/// with the new child's exec. The delay is a one-shot timer after a SIGCHLD,
/// never a tick.
fn walk_delay(reap_all: bool, shared: &SharedState) -> Duration {
    if reap_all && lock(shared).epoll.is_some() {
        ORPHAN_REAP_DELAY
    } else {
        Duration::ZERO
    }
}

/// See [`walk_delay`]. Orphans (and the groups they keep alive) linger this
/// long after their exit.
const ORPHAN_REAP_DELAY: Duration = Duration::from_millis(10);

/// Sleeps until `at`; never without one.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Waits until a watched pidfd is readable; never without pidfds.
async fn readable(
    pidfds: Option<&AsyncFd<Registered>>,
) -> io::Result<tokio::io::unix::AsyncFdReadyGuard<'_, Registered>> {
    match pidfds {
        Some(fd) => fd.readable().await,
        None => std::future::pending().await,
    }
}

/// Reaps the children whose pidfds are readable (they exited): one
/// `waitpid(pid)` each, which the kernel answers without looking at the
/// other children. Returns them, and whether more may be ready.
fn reap_ready(reap_all: bool, shared: &SharedState) -> (Vec<Reaped>, bool) {
    const EVENTS: usize = 64;
    let mut shared = lock(shared);
    let Some(epoll) = shared.epoll.clone() else {
        return (Vec::new(), false);
    };
    let mut events = [epoll::EMPTY; EVENTS];
    let n = match epoll.poll(&mut events) {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the pidfd set");
            return (Vec::new(), false);
        }
    };
    let mut gone = Vec::new();
    for ev in &events[..n] {
        let Ok(pid) = u32::try_from(epoll::token(ev)) else {
            continue;
        };
        shared.drop_pidfd(pid);
        let Ok(raw) = libc::pid_t::try_from(pid) else {
            continue;
        };
        match wait_pid(raw) {
            Waited::Exited(exit) => gone.push(Reaped { pid, exit }),
            // Readable means exited; should it not be reapable yet, the
            // SIGCHLD path takes it from here.
            Waited::Running => {
                if !reap_all {
                    shared.own.insert(pid);
                }
            }
            // Reaped by someone else: the embedding program's own wait
            // (the daemon's `waitpid(-1)` forgets the pidfd when it reaps).
            Waited::NoChild => {
                if !reap_all {
                    tracing::warn!(
                        pid,
                        "child was reaped by someone else; its exit status is lost"
                    );
                    gone.push(Reaped {
                        pid,
                        exit: UNKNOWN_EXIT,
                    });
                }
            }
        }
    }
    (gone, n == EVENTS)
}

/// Reaps every child that has exited (`reap_all`). Returns false once the
/// receiver is gone.
///
/// After each child it yields, so the driver (woken by the send) restarts
/// that child before the next `waitpid(-1)`: each call walks every child
/// the daemon has (a cost that grows with their number), and the last one
/// of a pass finds nothing.
async fn drain_all(shared: &SharedState, tx: &mpsc::UnboundedSender<Reaped>) -> bool {
    loop {
        // Held for each call: see "The spawn lock" in the module docs of `unix`.
        let got = {
            let mut held = lock(shared);
            let got = wait_any();
            if let Some((pid, _)) = got {
                held.drop_pidfd(pid);
            }
            got
        };
        let Some((pid, exit)) = got else {
            return true;
        };
        if let Some(exit) = exit {
            if tx.send(Reaped { pid, exit }).is_err() {
                return false;
            }
            tokio::task::yield_now().await;
        }
    }
}

/// Reaps the launcher's own children that have exited. Returns false once
/// the receiver is gone.
fn drain_own(shared: &SharedState, tx: &mpsc::UnboundedSender<Reaped>) -> bool {
    // Held for the whole pass: see "The spawn lock" in the module docs of `unix`.
    let mut shared = lock(shared);
    let mut gone = Vec::new();
    for &pid in &shared.own {
        let Ok(raw) = libc::pid_t::try_from(pid) else {
            gone.push(Reaped {
                pid,
                exit: UNKNOWN_EXIT,
            });
            continue;
        };
        match wait_pid(raw) {
            Waited::Exited(exit) => gone.push(Reaped { pid, exit }),
            Waited::NoChild => {
                tracing::warn!(
                    pid,
                    "child was reaped by someone else; its exit status is lost"
                );
                gone.push(Reaped {
                    pid,
                    exit: UNKNOWN_EXIT,
                });
            }
            Waited::Running => {}
        }
    }
    for reaped in gone {
        shared.own.remove(&reaped.pid);
        if tx.send(reaped).is_err() {
            return false;
        }
    }
    true
}

/// One `waitpid(-1, WNOHANG)`: `None` when no child has exited (or there are
/// no children at all), else the pid and its exit (`None` for a stop or
/// continue, which the caller skips).
fn wait_any() -> Option<(u32, Option<ExitInfo>)> {
    match waitpid(-1, libc::WNOHANG) {
        Ok((0, _)) => None,
        Ok((pid, status)) => Some((pid.unsigned_abs(), decode(status))),
        Err(e) if e.raw_os_error() == Some(libc::ECHILD) => None,
        Err(e) => {
            tracing::error!("waitpid failed: {e}");
            None
        }
    }
}

enum Waited {
    Exited(ExitInfo),
    Running,
    NoChild,
}

/// `waitpid(pid, WNOHANG)` for one of our own children.
fn wait_pid(pid: libc::pid_t) -> Waited {
    match waitpid(pid, libc::WNOHANG) {
        Ok((0, _)) => Waited::Running,
        Ok((_, status)) => decode(status).map_or(Waited::Running, Waited::Exited),
        Err(_) => Waited::NoChild,
    }
}

/// `waitpid(pid, options)`, retried on `EINTR`: the pid that changed state
/// (0 when none has yet, with `WNOHANG`) and its status.
pub(super) fn waitpid(
    pid: libc::pid_t,
    options: libc::c_int,
) -> io::Result<(libc::pid_t, libc::c_int)> {
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid place for waitpid to write to.
        let ret = unsafe { libc::waitpid(pid, &mut status, options) };
        if ret >= 0 {
            return Ok((ret, status));
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// An exit status as tend reports it; `None` for stopped / continued.
///
/// A death by a signal number tend has no name for (Linux's 32 and 33, which
/// glibc keeps for itself) is reported as the code a shell would show for it,
/// 128 + n: it cannot be a [`Signal`], and it still reads as a failure.
pub(super) fn decode(status: libc::c_int) -> Option<ExitInfo> {
    if libc::WIFEXITED(status) {
        Some(ExitInfo::Code(libc::WEXITSTATUS(status)))
    } else if libc::WIFSIGNALED(status) {
        let n = libc::WTERMSIG(status);
        Some(Signal::from_number(n).map_or(ExitInfo::Code(128 + n), ExitInfo::Signal))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_wait_statuses() {
        // Encodings from the kernel: exit code in bits 8..16, signal in 0..7,
        // 0x7f in the low byte for stopped, 0xffff for continued.
        assert_eq!(decode(3 << 8), Some(ExitInfo::Code(3)));
        assert_eq!(decode(0), Some(ExitInfo::Code(0)));
        assert_eq!(decode(libc::SIGKILL), Some(ExitInfo::Signal(Signal::KILL)));
        assert_eq!(
            decode(libc::SIGTERM | 0x80),
            Some(ExitInfo::Signal(Signal::TERM)),
            "core dumped"
        );
        let rt = libc::SIGRTMIN() + 2;
        assert_eq!(decode(rt), Signal::from_number(rt).map(ExitInfo::Signal));
        assert_eq!(decode(32), Some(ExitInfo::Code(160)));
        assert_eq!(decode((libc::SIGSTOP << 8) | 0x7f), None);
        assert_eq!(decode(0xffff), None);
    }
}
