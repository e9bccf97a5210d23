//! Starting one process: a vfork-style `clone` and `execve`.
//!
//! The parent resolves and builds everything first ([`prepare`], with the
//! `PATH` lookup in `path.rs` and the credentials in `creds.rs`), so a bad
//! spec is a clear, *permanent* [`SpawnError`] that names the culprit, and
//! the child never allocates. Then [`spawn`] clones the child, which sets
//! itself up and execs (`child.rs`), its standard streams passed through the
//! launcher's slots (`stdio.rs`).
//!
//! # Why not `fork`
//!
//! `fork` copies the daemon's page tables, and every page the daemon writes
//! afterwards faults and is copied while the child still shares it; then the
//! parent waits (std's exec-status pipe) until the child has exec'd. That is
//! paid on every spawn and grows with the daemon's size. [`spawn`] instead
//! calls `clone(CLONE_VM | CLONE_VFORK)` on a small stack of its own, as
//! glibc's `posix_spawn` does: the child runs in the daemon's memory, so
//! nothing is copied, and the calling thread sleeps only until the child's
//! `execve` has replaced that memory (or the child has exited).
//! `posix_spawn` itself cannot be used: it has no parent-death signal, no
//! supplementary groups and no umask.
//!
//! Running in the parent's memory sets strict rules for the child; they are
//! stated at the top of `child.rs`, the only file whose code runs there. A
//! failure is reported by writing the step and the errno into the shared
//! `ChildArgs`, which the parent reads once the call returns, and the child
//! exits with 127.

mod child;
mod path;
mod prepare;
mod stdio;

use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::io;
use std::os::fd::OwnedFd;
use std::ptr;

use crate::model::launch::SpawnError;
use crate::model::spec::ProcessSpec;
use child::{ChildArgs, Step, child_main};

pub(super) use path::PathCache;
pub(super) use prepare::{Prepared, prepare};
pub(super) use stdio::{Slots, Stdio, pipes};

/// Size of the stack the child runs on until exec. It makes a few dozen
/// system calls and nothing else; glibc's `posix_spawn` gets by with less.
const STACK_SIZE: usize = 64 * 1024;

pub(super) fn permanent(message: String) -> SpawnError {
    SpawnError {
        message,
        permanent: true,
    }
}

/// The small stack the child runs on, mapped once per launcher and reused:
/// the parent sleeps while the child uses it, so one is enough.
#[derive(Debug)]
pub(super) struct Stack {
    base: *mut c_void,
    len: usize,
}

// SAFETY: the mapping is owned by this value alone and only used while the
// owner (the launcher, behind `&mut`) is spawning.
unsafe impl Send for Stack {}

impl Stack {
    pub(super) fn new() -> io::Result<Stack> {
        let page = page_size();
        let len = STACK_SIZE + page;
        // SAFETY: a fresh anonymous mapping; no existing memory is affected.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // A guard page below the stack: an overflow faults in the child
        // instead of writing over the daemon's memory.
        // SAFETY: the first page of the mapping just made.
        if unsafe { libc::mprotect(base, page, libc::PROT_NONE) } != 0 {
            let err = io::Error::last_os_error();
            // SAFETY: unmapping exactly what was mapped above.
            unsafe { libc::munmap(base, len) };
            return Err(err);
        }
        Ok(Stack { base, len })
    }

    /// The highest address, 16-byte aligned: stacks grow down.
    fn top(&self) -> *mut c_void {
        let top = self.base as usize + self.len;
        (top & !15) as *mut c_void
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `new` mapped; nothing uses it now.
        unsafe { libc::munmap(self.base, self.len) };
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).ok().filter(|n| *n > 0).unwrap_or(4096)
}

/// Starts the child and returns its pid once it has exec'd.
///
/// On an exec or setup failure the child has already exited; it is reaped
/// here (the caller holds the spawn lock, so the reaper cannot take it) and
/// the error names the step that failed.
pub(super) fn spawn(
    prepared: &Prepared,
    stdio: &Stdio<'_>,
    slots: &Slots,
    stack: &mut Stack,
    want_pidfd: bool,
    cgroup: Option<c_int>,
    spec: &ProcessSpec,
) -> Result<(u32, Option<OwnedFd>), SpawnError> {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it.
    let mut empty: libc::sigset_t = unsafe { std::mem::zeroed() };
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to sigset_t values owned by this frame.
    unsafe {
        libc::sigemptyset(&mut empty);
        libc::sigfillset(&mut all);
    }
    let raw = slots.raw();
    let args = ChildArgs {
        prepared,
        stdio: raw,
        keep_below: raw.iter().max().map_or(3, |m| m + 1),
        exec_mask: empty,
        cgroup: cgroup.unwrap_or(-1),
        failed: Cell::new(None),
    };

    if let Err(e) = slots.fill(stdio) {
        slots.clear();
        return Err(exec_error(spec, Step::Dup2, &e));
    }
    // Every signal blocked on this thread while the child shares its memory
    // (the child inherits the mask and unblocks only right before exec).
    // SAFETY: valid sigset pointers.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old) };
    // SAFETY (both clones): `child_main` follows the rules of a CLONE_VM
    // child (see the module docs); `stack` is a mapping of its own that
    // nothing else uses while this thread sleeps; `args` (and `pidfd`)
    // outlive the call, which returns only once the child has exec'd or
    // exited.
    let flags = libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_FILES | libc::SIGCHLD;
    let mut pidfd: c_int = -1;
    let mut pid = if want_pidfd {
        // With CLONE_PIDFD the kernel stores a pidfd where the parent's tid
        // would go (glibc passes the fifth argument through).
        unsafe {
            libc::clone(
                child_main,
                stack.top(),
                flags | libc::CLONE_PIDFD,
                ptr::addr_of!(args) as *mut c_void,
                ptr::addr_of_mut!(pidfd),
            )
        }
    } else {
        -1
    };
    if pid < 0 && (!want_pidfd || io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL)) {
        // A kernel before 5.2 has no pidfds: the reaper's SIGCHLD path
        // finds every child without them (the launcher stops asking).
        pidfd = -1;
        pid = unsafe {
            libc::clone(
                child_main,
                stack.top(),
                flags,
                ptr::addr_of!(args) as *mut c_void,
            )
        };
    }
    let clone_err = io::Error::last_os_error();
    slots.clear();
    // SAFETY: restores the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, ptr::null_mut()) };

    if pid < 0 {
        return Err(exec_error(spec, Step::Clone, &clone_err));
    }
    // SAFETY: a pidfd the kernel just made for us, owned by nobody else.
    let pidfd =
        (pidfd >= 0).then(|| unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(pidfd) });
    let Some((step, errno)) = args.failed.get() else {
        return Ok((pid.unsigned_abs(), pidfd));
    };
    drop(pidfd);
    let err = io::Error::from_raw_os_error(errno);
    reap_failed(pid);
    Err(exec_error(spec, step, &err))
}

/// Waits for a child that reported a failure and is exiting.
fn reap_failed(pid: libc::pid_t) {
    let _ = super::reaper::waitpid(pid, 0);
}

impl Step {
    /// How the error message names the step; empty for exec itself.
    fn label(self) -> &'static str {
        match self {
            Step::Clone | Step::Exec => "",
            Step::Cgroup => "joining its cgroup: ",
            Step::Setpgid => "setpgid: ",
            Step::Dup2 => "redirecting stdin/stdout/stderr: ",
            Step::Setgroups => "setgroups: ",
            Step::Setgid => "setgid: ",
            Step::Setuid => "setuid: ",
            Step::Chdir => "changing to the working directory: ",
            Step::Pdeathsig => "prctl(PR_SET_PDEATHSIG): ",
            Step::ParentGone => "",
            Step::Unshare => "unsharing the descriptor table: ",
        }
    }
}

/// Maps a failure of the clone, a setup step or exec to a spawn error.
fn exec_error(spec: &ProcessSpec, step: Step, err: &io::Error) -> SpawnError {
    let cmd = spec.command.first().map(String::as_str).unwrap_or_default();
    let errno = err.raw_os_error();
    // Problems with the program, the paths or the credentials stay until a
    // human fixes them; anything else (EAGAIN, ENOMEM, EMFILE, ETXTBSY, ...)
    // may go away by itself, so the process backs off and retries.
    let permanent = matches!(
        errno,
        Some(
            libc::ENOENT
                | libc::EACCES
                | libc::ENOEXEC
                | libc::ENOTDIR
                | libc::EISDIR
                | libc::EPERM
                | libc::EINVAL
                | libc::E2BIG
                | libc::ELOOP
                | libc::ENAMETOOLONG
                | libc::ELIBBAD
        )
    );
    let hint = match errno {
        Some(libc::ENOEXEC) => " (not a binary this system can run, and no #! line)",
        Some(libc::ESRCH) => " (tend exited while it was starting)",
        _ => "",
    };
    SpawnError {
        message: format!("cannot start {cmd:?}: {}{err}{hint}", step.label()),
        permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_errors_split_into_permanent_and_transient() {
        let spec = ProcessSpec::new(crate::Name::new("x").expect("name"), vec!["prog".into()]);
        for errno in [libc::ENOENT, libc::EACCES, libc::ENOEXEC, libc::ENOTDIR] {
            assert!(
                exec_error(&spec, Step::Exec, &io::Error::from_raw_os_error(errno)).permanent,
                "errno {errno}"
            );
        }
        for errno in [libc::EAGAIN, libc::ENOMEM, libc::EMFILE, libc::ESRCH] {
            assert!(
                !exec_error(&spec, Step::Exec, &io::Error::from_raw_os_error(errno)).permanent,
                "errno {errno}"
            );
        }
        assert!(
            exec_error(
                &spec,
                Step::Exec,
                &io::Error::from_raw_os_error(libc::EAGAIN)
            )
            .message
            .contains("\"prog\"")
        );
    }
}
