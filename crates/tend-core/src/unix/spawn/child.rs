//! The child, from `clone` to `execve`: the only code of tend that runs as
//! another process in the daemon's memory.
//!
//! # Rules for everything in this file
//!
//! The child shares the daemon's memory (`CLONE_VM`) and, until its first
//! step on it, the daemon's descriptor table (`CLONE_FILES`), while the
//! daemon's spawning thread sleeps (`CLONE_VFORK`). So the code here:
//!
//! - reads only what [`prepare`](super::prepare) built in the parent (C
//!   strings, pointer arrays, resolved ids), and writes only
//!   [`ChildArgs::failed`];
//! - never allocates, takes a lock, or unwinds: no `String`, `Vec`,
//!   `format!`, no `Mutex`, no `tracing`, nothing that can panic (errno is
//!   read through `io::Error::last_os_error`, which does not allocate);
//! - makes raw system calls (`libc::syscall`) where a glibc wrapper would
//!   touch process-wide state: glibc's `setuid` and friends signal every
//!   thread of a multi-threaded process, and here those threads are the
//!   daemon's;
//! - runs with every signal blocked until just before `execve`, so that no
//!   handler of the daemon runs on the daemon's data in the child.
//!
//! Whatever can be decided in the parent is decided in `prepare.rs`; add
//! nothing here that breaks these rules.
//!
//! # The steps, in order
//!
//! 0. With a cgroup of its own (see `unix/cgroup.rs`) it was cloned into it
//!    (`CLONE_INTO_CGROUP`); on a kernel without that, a raw `write(2)` of
//!    `0` to its `cgroup.procs`, opened by the parent: the kernel moves the
//!    writer, so the child is in its cgroup before it does anything else and
//!    long before the program runs. (It shares the daemon's memory, not its
//!    cgroup: the memory it touches until exec is charged to the daemon.)
//! 1. `setpgid(0, 0)`: the child leads its own process group (pgid = pid) before
//!    anything else, so a group signal sent once `spawn` has returned reaches it
//!    and everything it forks, and a Ctrl-C aimed at the daemon's foreground
//!    group (`tend up` in a terminal) never reaches it directly: tend stops its
//!    children itself, in order.
//! 2. A private descriptor table (see `stdio.rs`), then `dup2` of the slots
//!    onto 0, 1 and 2 (the slots are above 2, so no `dup2` overwrites
//!    another's source).
//! 3. `setgroups`, `setgid`, `setuid` (only with `user` / `unix_group`): groups
//!    first, because changing them needs privileges that `setuid` gives up.
//! 4. `chdir`, as the new user (like supervisord), so a directory only that
//!    user may enter works.
//! 5. `umask`.
//! 6. `prctl(PR_SET_PDEATHSIG, SIGKILL)`, after the credential change because
//!    the kernel clears the setting on one, then `getppid()`: had the daemon
//!    died before the prctl, no signal would ever come, so give up instead of
//!    exec'ing an orphan. The signal fires when the *spawning thread* exits
//!    (see the module docs of `unix`).
//! 7. `close_range(3, ~0, CLOSE_RANGE_CLOEXEC)`: every inherited descriptor
//!    above stderr is closed by exec, whoever opened it without `O_CLOEXEC`.
//!    On kernels before 5.11, or under a seccomp filter that refuses the call,
//!    this is skipped: inherited descriptors then leak into the program,
//!    which beats looping over a million fd numbers.
//! 8. Every signal disposition back to `SIG_DFL`: handlers because they must
//!    not run here, *ignored* signals because they would stay ignored across
//!    exec: a daemon started with `nohup` or by `cmd &` in a script ignores
//!    HUP or INT and QUIT, and its children would shrug off a `stop` with
//!    those signals. Then the signal mask is emptied and `execve` runs.

use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::io;
use std::ptr;

use super::prepare::Prepared;

/// What went wrong in the child, written there and read by the parent once
/// `clone` returns (the child shares the parent's memory until exec).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// The `clone` itself, in the parent.
    Clone,
    Cgroup,
    Setpgid,
    Dup2,
    Setgroups,
    Setgid,
    Setuid,
    Chdir,
    Pdeathsig,
    ParentGone,
    Unshare,
    Exec,
}

/// What `child_main` reads, and where it reports a failure.
pub(super) struct ChildArgs<'a> {
    pub(super) prepared: &'a Prepared,
    /// The slots holding stdin, stdout and stderr.
    pub(super) stdio: [c_int; 3],
    /// One above the highest slot: the child's own table keeps only the
    /// descriptors below this.
    pub(super) keep_below: c_int,
    /// Signal mask to restore right before exec (empty).
    pub(super) exec_mask: libc::sigset_t,
    /// The `cgroup.procs` of its cgroup, opened by the parent, for a child
    /// not cloned into it; -1 for none.
    pub(super) cgroup: c_int,
    /// The failed step and its errno, written by the child. The parent
    /// reads it only once `clone` has returned, when the child has exec'd
    /// or exited (`CLONE_VFORK`), so the two never touch it at once.
    pub(super) failed: Cell<Option<(Step, c_int)>>,
}

#[cfg(any(target_arch = "x86", target_arch = "arm"))]
mod ids {
    pub const SETGROUPS: libc::c_long = libc::SYS_setgroups32;
    pub const SETGID: libc::c_long = libc::SYS_setgid32;
    pub const SETUID: libc::c_long = libc::SYS_setuid32;
}

#[cfg(not(any(target_arch = "x86", target_arch = "arm")))]
mod ids {
    pub const SETGROUPS: libc::c_long = libc::SYS_setgroups;
    pub const SETGID: libc::c_long = libc::SYS_setgid;
    pub const SETUID: libc::c_long = libc::SYS_setuid;
}

/// The child, from `clone` to `execve`. See the module docs for its rules:
/// no allocation, no locks, no unwinding, raw calls where glibc would reach
/// into process-wide state.
pub(super) extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `ChildArgs` that `spawn` keeps alive until the
    // child has exec'd or exited.
    let args = unsafe { &*(arg as *const ChildArgs<'_>) };
    args.failed.set(Some(child_setup_and_exec(args)));
    // SAFETY: ends this process without running anything of the parent's
    // (no atexit handlers, no stdio flush: they belong to the daemon).
    unsafe { libc::_exit(127) }
}

/// Runs the steps; returns only on failure, with the step and errno.
fn child_setup_and_exec(args: &ChildArgs<'_>) -> (Step, c_int) {
    let p = args.prepared;
    let s = &p.setup;
    let errno = || {
        io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    };
    // SAFETY (whole block): plain system calls on data `prepare` built and
    // that outlives the child's use of it.
    unsafe {
        if args.cgroup >= 0 && libc::write(args.cgroup, b"0".as_ptr().cast(), 1) != 1 {
            return (Step::Cgroup, errno());
        }
        if libc::setpgid(0, 0) != 0 {
            return (Step::Setpgid, errno());
        }
        // Still the daemon's own descriptor table: nothing may touch it
        // before this. A private copy of the few descriptors below the
        // slots; the kernel copies nothing above. Failing that, a private
        // copy of all of them (close-on-exec then closes the rest).
        if libc::syscall(
            libc::SYS_close_range,
            args.keep_below as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_UNSHARE,
        ) != 0
            && libc::unshare(libc::CLONE_FILES) != 0
        {
            return (Step::Unshare, errno());
        }
        for (target, &src) in (0..).zip(args.stdio.iter()) {
            if libc::dup2(src, target) < 0 {
                return (Step::Dup2, errno());
            }
        }
        if let Some(creds) = &s.creds {
            if let Some(groups) = &creds.groups
                && libc::syscall(ids::SETGROUPS, groups.len(), groups.as_ptr()) != 0
            {
                return (Step::Setgroups, errno());
            }
            if libc::syscall(ids::SETGID, creds.gid) != 0 {
                return (Step::Setgid, errno());
            }
            if let Some(uid) = creds.uid
                && libc::syscall(ids::SETUID, uid) != 0
            {
                return (Step::Setuid, errno());
            }
        }
        if let Some(cwd) = &p.cwd
            && libc::chdir(cwd.as_ptr()) != 0
        {
            return (Step::Chdir, errno());
        }
        if let Some(mask) = s.umask {
            libc::umask(mask);
        }
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
            return (Step::Pdeathsig, errno());
        }
        if libc::getppid() != s.parent {
            return (Step::ParentGone, libc::ESRCH);
        }
        // Errors (ENOSYS, EINVAL, a seccomp EPERM) are ignored on purpose:
        // see step 7 in the module docs.
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        for sig in 1..=s.last_signal {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                // glibc refuses its two internal signals with EINVAL; fine.
                libc::sigaction(sig, &dfl, ptr::null_mut());
            }
        }
        libc::sigprocmask(libc::SIG_SETMASK, &args.exec_mask, ptr::null_mut());
        libc::execve(
            p.program.as_ptr(),
            p.argv_ptrs.as_ptr(),
            p.envp_ptrs.as_ptr(),
        );
        (Step::Exec, errno())
    }
}
