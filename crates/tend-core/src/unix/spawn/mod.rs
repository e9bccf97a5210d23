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

    /// The usable part of the mapping, above its guard page: its lowest
    /// address, and its top (16-byte aligned).
    fn bounds(&self) -> (usize, usize) {
        (self.base as usize + page_size(), self.top() as usize)
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

/// Starts the child and returns its pid once it has exec'd; `cgroup` is the
/// directory of the cgroup to start it in.
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
    let mut args = ChildArgs {
        prepared,
        stdio: raw,
        keep_below: raw.iter().max().map_or(3, |m| m + 1),
        exec_mask: empty,
        cgroup: -1,
        failed: Cell::new(None),
    };
    // Without `clone3`, the child joins by writing to `cgroup.procs`.
    let mut procs: Option<OwnedFd> = None;
    if let Some(dir) = cgroup.filter(|_| !clone3::usable()) {
        match open_procs(dir) {
            Ok(fd) => {
                args.cgroup = std::os::fd::AsRawFd::as_raw_fd(&fd);
                procs = Some(fd);
            }
            Err(e) => return Err(exec_error(spec, Step::Cgroup, &e)),
        }
    }

    if let Err(e) = slots.fill(stdio) {
        slots.clear();
        return Err(exec_error(spec, Step::Dup2, &e));
    }
    // Every signal blocked on this thread while the child shares its memory
    // (the child inherits the mask and unblocks only right before exec).
    // SAFETY: valid sigset pointers.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old) };
    let flags = libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_FILES | libc::SIGCHLD;
    let mut pidfd: c_int = -1;
    let mut clone_err = None;
    let mut pid: libc::pid_t = -1;
    if let Some(dir) = cgroup.filter(|_| procs.is_none()) {
        // SAFETY: as for the clones below; `dir` is an open cgroup directory.
        match unsafe { clone3::spawn_into(dir, stack, want_pidfd, &args, &mut pidfd) } {
            Ok(p) => pid = p,
            Err(e) if clone3::missing(&e) => {
                // An older kernel (or a filter that refuses `clone3`): the
                // child joins by itself, from now on.
                clone3::give_up();
                match open_procs(dir) {
                    Ok(fd) => {
                        args.cgroup = std::os::fd::AsRawFd::as_raw_fd(&fd);
                        procs = Some(fd);
                    }
                    Err(e) => clone_err = Some((Step::Cgroup, e)),
                }
            }
            Err(e) => {
                let step = if clone3::cgroup_refused(&e) {
                    Step::Cgroup
                } else {
                    Step::Clone
                };
                clone_err = Some((step, e));
            }
        }
    }
    if pid < 0 && clone_err.is_none() {
        // SAFETY (both clones): `child_main` follows the rules of a CLONE_VM
        // child (see the module docs); `stack` is a mapping of its own that
        // nothing else uses while this thread sleeps; `args` (and `pidfd`)
        // outlive the call, which returns only once the child has exec'd or
        // exited.
        if want_pidfd {
            // With CLONE_PIDFD the kernel stores a pidfd where the parent's tid
            // would go (glibc passes the fifth argument through).
            pid = unsafe {
                libc::clone(
                    child_main,
                    stack.top(),
                    flags | libc::CLONE_PIDFD,
                    ptr::addr_of!(args) as *mut c_void,
                    ptr::addr_of_mut!(pidfd),
                )
            };
        }
        if pid < 0
            && (!want_pidfd || io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL))
        {
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
        if pid < 0 {
            clone_err = Some((Step::Clone, io::Error::last_os_error()));
        }
    }
    slots.clear();
    drop(procs);
    // SAFETY: restores the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, ptr::null_mut()) };

    if let Some((step, e)) = clone_err {
        return Err(exec_error(spec, step, &e));
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

/// `cgroup.procs` of the cgroup directory `dir`, opened for writing.
fn open_procs(dir: c_int) -> io::Result<OwnedFd> {
    // SAFETY: openat on a directory descriptor we hold, with a C string.
    let fd = unsafe {
        libc::openat(
            dir,
            c"cgroup.procs".as_ptr(),
            libc::O_WRONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor just opened, owned by nobody else.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// `clone3(2)` with `CLONE_INTO_CGROUP`: the child is made in its cgroup
/// instead of moving there. glibc has no wrapper that runs a function on
/// a stack of our own (its `clone3` is internal), and a `CLONE_VM` child
/// comes back from the system call on that stack, where no Rust frame is:
/// so the call and the child's first instructions are a few lines of
/// assembly, which call `child_main` and exit with what it returns (it
/// never returns: it execs or `_exit`s). x86-64 only; elsewhere the child
/// writes to `cgroup.procs` as before.
pub(crate) mod clone3 {
    use std::ffi::c_int;
    use std::io;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::{ChildArgs, Stack};

    /// Set once the kernel has said it has no `clone3` or no
    /// `CLONE_INTO_CGROUP`.
    static MISSING: AtomicBool = AtomicBool::new(!cfg!(target_arch = "x86_64"));

    /// Whether to try `clone3` at all.
    pub(crate) fn usable() -> bool {
        !MISSING.load(Ordering::Relaxed)
    }

    /// Stops trying.
    pub(super) fn give_up() {
        MISSING.store(true, Ordering::Relaxed);
    }

    /// Tries `clone3` again (or not): for the tests of both ways in.
    #[cfg(test)]
    pub(crate) fn set_usable(on: bool) {
        MISSING.store(!on || !cfg!(target_arch = "x86_64"), Ordering::Relaxed);
    }

    /// The kernel has no `clone3` (before 5.3), or no `CLONE_INTO_CGROUP`
    /// (before 5.7: an argument block too big, or a flag it does not know),
    /// or a seccomp filter refuses the call (Docker's says ENOSYS, so that
    /// libcs fall back to `clone`).
    pub(super) fn missing(e: &io::Error) -> bool {
        matches!(
            e.raw_os_error(),
            Some(libc::ENOSYS | libc::E2BIG | libc::EINVAL)
        )
    }

    /// The cgroup would not take the child (gone, or with controllers
    /// that forbid processes in it, or threaded).
    pub(super) fn cgroup_refused(e: &io::Error) -> bool {
        matches!(
            e.raw_os_error(),
            Some(
                libc::EBUSY
                    | libc::EOPNOTSUPP
                    | libc::ENOENT
                    | libc::EBADF
                    | libc::ENODEV
                    | libc::EACCES
                    | libc::EPERM
            )
        )
    }

    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

    /// The kernel's `struct clone_args` (version 2, with `cgroup`).
    #[repr(C)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }

    /// Clones `child_main(args)` into the cgroup directory `dir`, as
    /// `libc::clone(CLONE_VM | CLONE_VFORK | CLONE_FILES)` would, on
    /// `stack`; returns once the child has exec'd or exited.
    ///
    /// # Safety
    ///
    /// As for the `libc::clone` in [`super::spawn`]: the child runs in our
    /// memory with every signal blocked, follows the rules of `child.rs`,
    /// and `args`, `pidfd` and `stack` outlive the call.
    #[cfg(target_arch = "x86_64")]
    pub(super) unsafe fn spawn_into(
        dir: c_int,
        stack: &mut Stack,
        want_pidfd: bool,
        args: &ChildArgs<'_>,
        pidfd: &mut c_int,
    ) -> io::Result<libc::pid_t> {
        let (base, top) = stack.bounds();
        let mut flags = (libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_FILES) as u64;
        flags |= CLONE_INTO_CGROUP;
        if want_pidfd {
            flags |= libc::CLONE_PIDFD as u64;
        }
        let cl = CloneArgs {
            flags,
            pidfd: if want_pidfd {
                std::ptr::from_mut(pidfd) as u64
            } else {
                0
            },
            child_tid: 0,
            parent_tid: 0,
            exit_signal: libc::SIGCHLD as u64,
            stack: base as u64,
            stack_size: (top - base) as u64,
            tls: 0,
            set_tid: 0,
            set_tid_size: 0,
            cgroup: dir as u64,
        };
        let f: extern "C" fn(*mut std::ffi::c_void) -> c_int = super::child_main;
        let arg = std::ptr::from_ref(args) as *mut std::ffi::c_void;
        let ret: i64;
        // SAFETY: see the function's contract. The parent comes back from
        // `syscall` with every register but rax, rcx and r11 as it was. The
        // child comes back with rax = 0 on `stack` (16-byte aligned at its
        // top, so `call` enters `child_main` as the ABI wants), with r12 and
        // r13 as the parent had them, and never reaches the parent's code.
        unsafe {
            std::arch::asm!(
                "syscall",
                "test rax, rax",
                "jnz 2f",
                "xor ebp, ebp",
                "mov rdi, r12",
                "call r13",
                "mov edi, eax",
                "mov eax, 60",
                "syscall",
                "ud2",
                "2:",
                inlateout("rax") libc::SYS_clone3 => ret,
                in("rdi") std::ptr::addr_of!(cl),
                in("rsi") std::mem::size_of::<CloneArgs>(),
                in("r12") arg,
                in("r13") f,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        if ret < 0 {
            return Err(io::Error::from_raw_os_error(
                i32::try_from(-ret).unwrap_or(libc::EINVAL),
            ));
        }
        libc::pid_t::try_from(ret).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
    }

    /// Elsewhere there is no `clone3` path ([`usable`] is false).
    #[cfg(not(target_arch = "x86_64"))]
    pub(super) unsafe fn spawn_into(
        _dir: c_int,
        _stack: &mut Stack,
        _want_pidfd: bool,
        _args: &ChildArgs<'_>,
        _pidfd: &mut c_int,
    ) -> io::Result<libc::pid_t> {
        Err(io::Error::from_raw_os_error(libc::ENOSYS))
    }
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
