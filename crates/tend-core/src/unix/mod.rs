//! The Unix layer: spawn, signal, reap.
//!
//! [`UnixLauncher`] is the real [`Launcher`]. It has two halves that share one
//! small piece of state:
//!
//! - **spawn** (`spawn/`, credentials in `creds.rs`): everything that can be
//!   decided in the parent (the program's path, the working directory, the
//!   user's uid, gid and supplementary groups) is resolved there, so a bad spec
//!   fails with a clear, *permanent* [`SpawnError`] instead of a child that dies
//!   with an errno. Then a vfork-style `clone` starts the child in the daemon's
//!   memory, without copying it or the descriptor table, and the child
//!   finishes its setup with plain system calls and execs (the order and its
//!   reasons are in `spawn/child.rs`, the only code that runs in the child).
//! - **the reaper** (`reaper.rs`): the only code in tend that waits for
//!   children. It wakes on SIGCHLD and nothing else, and sends every
//!   [`Reaped`] on an unbounded channel that the driver awaits.
//!
//! # Two reaping modes
//!
//! - `reap_all = true` (the daemon): tend becomes a child subreaper, so orphaned
//!   grandchildren are re-parented to it, and reaps *every* child with
//!   `waitpid(-1)`. Pids it did not spawn are still reported: the driver uses
//!   them as a cue to re-check process groups.
//! - `reap_all = false` (embedded in someone else's program): only the pids
//!   this launcher spawned are reaped, one `waitpid(pid)` each, so the embedding
//!   program's own children are left alone. Should that program reap one of
//!   ours anyway (its own `waitpid(-1)`, or SIGCHLD set to `SIG_IGN`), the
//!   exit status is lost and the child is reported with code `-1`, which no
//!   real exit has, so the driver still learns that it is gone.
//!
//! # The spawn lock
//!
//! The launcher holds the shared lock from just before the clone until the new
//! pid is recorded, and the reaper holds it for each `waitpid(-1)` (and for
//! each pass over its own children). That closes
//! two races on a multi-threaded runtime: a child that exits before its pid is
//! recorded would otherwise be missed by the own-children reaper forever; and
//! the launcher reaps a child whose `exec` failed itself, right after the
//! clone, which `waitpid(-1)` in the reaper must not do first. On the daemon's
//! current-thread runtime the lock is never contended.
//!
//! # Pidfds
//!
//! Each child is cloned with `CLONE_PIDFD` (Linux 5.2+). The pidfds sit in one
//! epoll set, registered once with tokio, with the pid as each one's token.
//! A pidfd becomes readable when its child exits, and the reaper then reaps
//! exactly that child with `waitpid(pid)`, which the kernel answers without
//! looking at the others; `waitpid(-1)` walks every child the daemon has,
//! cold in the cache after a quiet while, so its cost grows with the number
//! of children and dominates a restart beside many. The SIGCHLD path stays,
//! after a yield: it reaps orphans (reap-all mode) and children without a
//! pidfd, and whichever path reaps a child first forgets its pidfd, so each
//! exit is reported once. Signals to one process go through its pidfd, which names
//! that very process even if its pid were reused.
//!
//! # Cgroups and the guard
//!
//! With [`LaunchOptions::cgroup`], every process runs in a cgroup v2 of its
//! own under the daemon's (`cgroup.rs`): it joins it before exec, a stop's
//! SIGKILL becomes `cgroup.kill`, and its group is alive while its cgroup is
//! `populated`, so a daemonizing grandchild that left the process group is
//! found and stopped too. Without one (no cgroup v2 that tend may write),
//! process groups do all of that, as before.
//!
//! With [`LaunchOptions::guard`], a tiny forked process (`guard.rs`) kills
//! whatever the daemon leaves behind should it die without stopping it
//! (`kill -9`): its cgroup subtree, and every process group it spawned.
//!
//! # Threads and `PR_SET_PDEATHSIG`
//!
//! Children are spawned from the thread that runs the driver, and the kernel
//! sends a child its parent-death signal when the *forking thread* exits, not
//! the process. The daemon runs a current-thread runtime on its main thread, so
//! that is process exit. An embedder on a multi-threaded runtime is fine too
//! (tokio's worker threads live as long as the runtime), but must never drive
//! the supervisor from `spawn_blocking`, whose threads exit when idle.

pub(crate) mod cgroup;
mod creds;
pub(crate) mod epoll;
mod guard;
pub mod init;
pub mod memory;
pub mod procfs;
mod reaper;
mod spawn;

#[cfg(test)]
mod cgroup_tests;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::mpsc;

use crate::launcher::{KillTarget, Launcher, Reaped, SpawnError, Spawned};
use crate::model::name::Name;
use crate::model::resources::ProcessStats;
use crate::model::signal::Signal;
use crate::model::spec::ProcessSpec;
use epoll::Epoll;

pub use cgroup::{CgroupMode, CgroupStatus};

/// How a [`UnixLauncher`] runs its processes.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct LaunchOptions {
    /// Reap every child of this process and become a child subreaper (the
    /// daemon); otherwise only the children it spawned (an embedder).
    pub reap_all: bool,
    /// Whether (and under which cgroup) each process gets a cgroup v2 of
    /// its own; off by default.
    pub cgroup: CgroupMode,
    /// The name of the daemon's cgroup subtree under tend's own cgroup in
    /// [`CgroupMode::Auto`] (default `tend-PID`). A daemon gives a name of
    /// its own (`tend up` hashes its socket path), so that the next run
    /// finds and kills what a killed one left there.
    pub cgroup_name: Option<String>,
    /// Fork a guard that kills every process left behind should this
    /// process die without stopping them (see the [module docs](self)).
    pub guard: bool,
}

impl LaunchOptions {
    /// The defaults, with `reap_all` as given.
    pub fn new(reap_all: bool) -> LaunchOptions {
        LaunchOptions {
            reap_all,
            ..LaunchOptions::default()
        }
    }
}

/// State shared by the launcher and its reaper; see "The spawn lock" above.
#[derive(Debug)]
struct Shared {
    /// Pids spawned and not reaped yet that have no pidfd (own-children
    /// mode only): the SIGCHLD path looks for them.
    own: HashSet<u32>,
    /// A pidfd for each child spawned with one, until it is reaped; each is
    /// in `epoll` with its pid as the token. See "Pidfds" above.
    pidfds: HashMap<u32, OwnedFd>,
    /// Where the pidfds wait to become readable (the child exited); `None`
    /// when no epoll instance could be made (then SIGCHLD finds everything).
    epoll: Option<Arc<Epoll>>,
}

impl Shared {
    /// Leaves every child to the SIGCHLD path from now on.
    fn give_up_pidfds(&mut self) {
        self.epoll = None;
        let watched: Vec<u32> = self.pidfds.drain().map(|(pid, _)| pid).collect();
        self.own.extend(watched);
    }

    /// Forgets the pidfd of `pid`, if it has one.
    fn drop_pidfd(&mut self, pid: u32) {
        if let Some(fd) = self.pidfds.remove(&pid)
            && let Some(epoll) = &self.epoll
        {
            epoll.delete(fd.as_fd());
        }
    }
}

type SharedState = Arc<Mutex<Shared>>;

/// Locks the shared state. A poisoned lock only means some thread panicked
/// while holding it; the set itself is always consistent, so keep going.
fn lock(shared: &SharedState) -> MutexGuard<'_, Shared> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The real [`Launcher`]: starts children with a vfork-style clone, signals
/// with `kill(2)`, and feeds a reaper task (see the [module docs](self)).
#[derive(Debug)]
pub struct UnixLauncher {
    reap_all: bool,
    shared: SharedState,
    /// Recent `PATH` lookups.
    paths: spawn::PathCache,
    /// The stack children run on until exec, mapped at the first spawn.
    stack: Option<spawn::Stack>,
    /// The descriptors children get their standard streams through,
    /// reserved at start so they have low numbers (see `spawn/stdio.rs`).
    slots: spawn::Slots,
    /// A cgroup per process, when asked for and possible.
    cgroups: Option<cgroup::Cgroups>,
    cgroup_status: CgroupStatus,
    /// Kills what is left should this process die (see `guard.rs`).
    guard: Option<guard::Guard>,
    /// Groups the guard was told of (and not told are empty yet).
    watched: HashSet<u32>,
    /// Of those, the ones whose leader was reaped while members remained:
    /// looked at again on each spawn and reap.
    lingering: HashSet<u32>,
    /// Runs without a cgroup: when each started and the last stats read
    /// (for CPU %), by pid.
    runs: HashMap<u32, (Instant, Option<(Instant, u64)>)>,
}

impl UnixLauncher {
    /// Creates the launcher and starts its reaper on the current tokio runtime.
    ///
    /// The SIGCHLD listener is installed before this returns, so no exit can be
    /// missed. With `reap_all`, the process also becomes a child subreaper and
    /// the reaper waits for every child (see the [module docs](self)).
    ///
    /// Returns the receiver of reaped children; the reaper task ends when it is
    /// dropped. Fails outside a tokio runtime.
    ///
    /// # Panics
    ///
    /// Inside a runtime built without `enable_io` (tokio panics when asked for
    /// a signal listener there); `#[tokio::main]` and `enable_all` are fine.
    pub fn new(reap_all: bool) -> io::Result<(UnixLauncher, mpsc::UnboundedReceiver<Reaped>)> {
        Self::with_options(LaunchOptions::new(reap_all))
    }

    /// [`UnixLauncher::new`] with cgroups and a guard as `opts` say. A
    /// cgroup setup that cannot be done is no error: processes then run
    /// without cgroups and [`UnixLauncher::cgroup_status`] says why.
    pub fn with_options(
        opts: LaunchOptions,
    ) -> io::Result<(UnixLauncher, mpsc::UnboundedReceiver<Reaped>)> {
        let reap_all = opts.reap_all;
        let slots = spawn::Slots::new()?;
        let name = opts
            .cgroup_name
            .clone()
            .unwrap_or_else(|| format!("tend-{}", std::process::id()));
        let (cgroups, cgroup_status) = cgroup::Cgroups::setup(&opts.cgroup, &name);
        // After the slots (so the guard's pipe is above them, out of every
        // child's table) and before any spawn.
        let guard = if opts.guard {
            match guard::Guard::start(cgroups.as_ref().map(cgroup::Cgroups::dir)) {
                Ok(g) => {
                    tracing::debug!(pid = g.pid(), "guard started");
                    Some(g)
                }
                Err(e) => {
                    tracing::warn!(
                        "cannot start the guard that kills tend's processes should it die: {e}"
                    );
                    None
                }
            }
        } else {
            None
        };
        let shared = SharedState::new(Mutex::new(Shared {
            own: HashSet::new(),
            pidfds: HashMap::new(),
            epoll: Epoll::new().ok().map(Arc::new),
        }));
        let exits = reaper::start(reap_all, shared.clone())?;
        Ok((
            UnixLauncher {
                reap_all,
                shared,
                paths: spawn::PathCache::default(),
                stack: None,
                slots,
                cgroups,
                cgroup_status,
                guard,
                watched: HashSet::new(),
                lingering: HashSet::new(),
                runs: HashMap::new(),
            },
            exits,
        ))
    }

    /// What the cgroup setup found and did.
    pub fn cgroup_status(&self) -> &CgroupStatus {
        &self.cgroup_status
    }

    /// Spawns `spec`, in its cgroup when `own_cgroup` and processes have cgroups.
    fn spawn_in(&mut self, spec: &ProcessSpec, own_cgroup: bool) -> Result<Spawned, SpawnError> {
        let prepared = spawn::prepare(spec, &mut self.paths)?;
        let mut cgroup_fd = match (&mut self.cgroups, own_cgroup) {
            (Some(cg), true) => match cg.prepare(&spec.name, &spec.limits) {
                Ok(fd) => Some(fd),
                Err(e) => {
                    // It still runs, as a process group alone.
                    tracing::warn!(process = %spec.name, "cannot make its cgroup: {e}");
                    None
                }
            },
            _ => None,
        };
        let raw = cgroup_fd.as_ref().map(std::os::fd::AsRawFd::as_raw_fd);
        let spawned = self.spawn_prepared(spec, &prepared, raw)?;
        // The child has joined (or failed before exec): closed here.
        drop(cgroup_fd.take());
        let pid = spawned.pid;
        match (&mut self.cgroups, raw) {
            (Some(cg), Some(_)) => cg.spawned(&spec.name, pid),
            _ => {
                self.runs.insert(pid, (Instant::now(), None));
            }
        }
        if let Some(g) = &mut self.guard {
            g.watch(pid);
            self.watched.insert(pid);
        }
        self.sweep_lingering();
        Ok(spawned)
    }

    /// Tells the guard of the lingering groups that have emptied.
    fn sweep_lingering(&mut self) {
        if self.lingering.is_empty() {
            return;
        }
        let gone: Vec<u32> = self
            .lingering
            .iter()
            .copied()
            .filter(|&pgid| !pgid_alive(pgid))
            .collect();
        for pgid in gone {
            self.lingering.remove(&pgid);
            self.watched.remove(&pgid);
            if let Some(g) = &mut self.guard {
                g.unwatch(pgid);
            }
        }
    }
}

/// Whether any process is in group `pgid` (EPERM: members exist but belong
/// to someone else, a child that switched users; still alive).
fn pgid_alive(pgid: u32) -> bool {
    let Ok(pgid) = checked_pid(pgid) else {
        return false;
    };
    // SAFETY: kill(2) with signal 0 only checks for existence and permission.
    if unsafe { libc::kill(-pgid, 0) } == 0 {
        return true;
    }
    io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

impl UnixLauncher {
    /// The clone and exec of a prepared spec, joining `cgroup` (a
    /// `cgroup.procs` descriptor) first.
    fn spawn_prepared(
        &mut self,
        spec: &ProcessSpec,
        prepared: &spawn::Prepared,
        cgroup: Option<std::ffi::c_int>,
    ) -> Result<Spawned, SpawnError> {
        let pipes = spawn::pipes(&spec.logs, spec.stdin_pipe)?;
        let transient = |what: &str, e: io::Error| SpawnError {
            message: format!("cannot start {:?}: {what}: {e}", spec.command.join(" ")),
            permanent: false,
        };
        let stack = match &mut self.stack {
            Some(stack) => stack,
            None => self.stack.insert(
                spawn::Stack::new().map_err(|e| transient("no memory for a spawn stack", e))?,
            ),
        };
        let slots = &self.slots;
        let dev_null = slots.dev_null();
        let stdout = pipes.child_stdout.as_ref().unwrap_or(dev_null);
        let stderr = match (&pipes.child_stderr, spec.logs.merge_stderr) {
            (Some(fd), _) => fd,
            (None, true) => stdout,
            (None, false) => dev_null,
        };
        let stdio = spawn::Stdio {
            stdin: pipes.child_stdin.as_ref().unwrap_or(dev_null),
            stdout,
            stderr,
        };
        let mut shared = lock(&self.shared);
        // A pidfd only when there is a set to watch it in: none once the
        // kernel has said it has none (see below).
        let want_pidfd = shared.epoll.is_some();
        let (pid, pidfd) = spawn::spawn(prepared, &stdio, slots, stack, want_pidfd, cgroup, spec)?;
        let watched = match (pidfd, shared.epoll.clone()) {
            (Some(fd), Some(epoll)) => match epoll.add(fd.as_fd(), u64::from(pid)) {
                Ok(()) => {
                    shared.pidfds.insert(pid, fd);
                    true
                }
                Err(e) => {
                    // Rare (out of memory): SIGCHLD alone finds every child
                    // from now on, at once (see `walk_delay` in the reaper).
                    tracing::debug!(pid, error = %e, "cannot watch the pidfd; SIGCHLD will do");
                    shared.give_up_pidfds();
                    false
                }
            },
            (None, Some(_)) => {
                // The kernel gives no pidfds: the same.
                shared.give_up_pidfds();
                false
            }
            _ => false,
        };
        if !self.reap_all && !watched {
            shared.own.insert(pid);
        }
        drop(shared);
        // The child's ends close here, when `pipes` is taken apart.
        Ok(Spawned {
            pid,
            stdout: pipes.stdout,
            stderr: pipes.stderr,
            stdin: pipes.stdin,
        })
    }
}

impl Launcher for UnixLauncher {
    fn spawn(&mut self, spec: &ProcessSpec) -> Result<Spawned, SpawnError> {
        self.spawn_in(spec, true)
    }

    fn spawn_check(&mut self, spec: &ProcessSpec) -> Result<Spawned, SpawnError> {
        self.spawn_in(spec, false)
    }

    fn kill(&mut self, target: KillTarget, sig: Signal) -> io::Result<()> {
        if let (KillTarget::Group(pgid), Some(cg)) = (target, &self.cgroups) {
            if sig == Signal::KILL {
                // The whole cgroup, whatever left the process group.
                if let Err(e) = cg.kill(pgid) {
                    tracing::debug!(pgid, error = %e, "cgroup.kill failed; the group alone is killed");
                }
            } else {
                // The group gets it below; those that left it, here.
                cg.signal_strays(pgid, sig.number());
            }
        }
        let raw = match target {
            KillTarget::Process(pid) => checked_pid(pid)?,
            KillTarget::Group(pgid) => -checked_pid(pgid)?,
        };
        // A child with a pidfd is signalled through it: the pidfd names that
        // very process, even should its pid be reused after an exit nobody
        // has reaped yet.
        let by_pidfd = match target {
            KillTarget::Process(pid) => lock(&self.shared).pidfds.get(&pid).map(|fd| {
                // SAFETY: pidfd_send_signal on a pidfd we own; no info struct.
                let r = unsafe {
                    libc::syscall(
                        libc::SYS_pidfd_send_signal,
                        fd.as_raw_fd(),
                        sig.number(),
                        std::ptr::null::<libc::siginfo_t>(),
                        0,
                    )
                };
                if r == 0 {
                    Ok(())
                } else {
                    Err(io::Error::last_os_error())
                }
            }),
            KillTarget::Group(_) => None,
        };
        let err = match by_pidfd {
            Some(Ok(())) => return Ok(()),
            Some(Err(e)) if e.raw_os_error() != Some(libc::ENOSYS) => e,
            // SAFETY: kill(2) has no memory-safety preconditions.
            _ if unsafe { libc::kill(raw, sig.number()) } == 0 => return Ok(()),
            _ => io::Error::last_os_error(),
        };
        match err.raw_os_error() {
            Some(libc::ESRCH) => Ok(()),
            _ => {
                let what = match target {
                    KillTarget::Process(pid) => format!("process {pid}"),
                    KillTarget::Group(pgid) => format!("process group {pgid}"),
                };
                Err(io::Error::new(
                    err.kind(),
                    format!("cannot send SIG{sig} to {what}: {err}"),
                ))
            }
        }
    }

    fn group_alive(&mut self, pgid: u32) -> bool {
        // With a cgroup, "stopped" means its cgroup is empty: a daemon that
        // left the process group still counts.
        if let Some(alive) = self.cgroups.as_ref().and_then(|cg| cg.alive(pgid)) {
            return alive;
        }
        pgid_alive(pgid)
    }

    fn forget(&mut self, pid: u32) {
        {
            let mut shared = lock(&self.shared);
            shared.own.remove(&pid);
            shared.drop_pidfd(pid);
        }
        self.runs.remove(&pid);
        if self.watched.contains(&pid) {
            if pgid_alive(pid) {
                self.lingering.insert(pid);
            } else {
                self.watched.remove(&pid);
                if let Some(g) = &mut self.guard {
                    g.unwatch(pid);
                }
            }
        }
        self.sweep_lingering();
    }

    fn stats(&mut self, pgid: u32) -> Option<ProcessStats> {
        if let Some(cg) = &mut self.cgroups
            && cg.dir_of(pgid).is_some()
        {
            return cg.stats(pgid);
        }
        let (started, last) = self.runs.get(&pgid).copied()?;
        let st = cgroup::proc_stats(procfs::ProcFs::shared(), pgid, started, last)?;
        self.runs
            .insert(pgid, (started, Some((Instant::now(), st.cpu_usec))));
        Some(st)
    }

    fn oom_killed(&mut self, pgid: u32) -> bool {
        self.cgroups.as_mut().is_some_and(|cg| cg.oom_killed(pgid))
    }

    fn removed(&mut self, name: &Name) {
        if let Some(cg) = &mut self.cgroups {
            cg.removed(name);
        }
    }

    fn retire(&mut self, name: &Name) {
        if let Some(cg) = &mut self.cgroups {
            cg.retire(name);
        }
    }
}

/// A pid that `kill(2)` reads as exactly one process or group. 0 and anything
/// that does not fit a positive `pid_t` would address our own process group or
/// every process we may signal, so they are refused.
fn checked_pid(pid: u32) -> io::Result<libc::pid_t> {
    match libc::pid_t::try_from(pid) {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("refusing to signal invalid pid {pid}"),
        )),
    }
}
