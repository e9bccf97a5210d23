//! Starting one process: a vfork-style `clone` and `execve`.
//!
//! # In the parent
//!
//! [`prepare`] resolves everything that can fail for a reason retrying will not
//! fix, and reports it as a permanent [`SpawnError`] that names the culprit:
//! the working directory, the program (looked up on the `PATH` the *child* will
//! see, because exec's own `ENOENT` cannot say which of the two was missing),
//! the user and groups (see `creds.rs`), and arguments or environment entries
//! that cannot be C strings (a `PATH` lookup is reused for a second, see
//! [`PathCache`]). It builds every C string and pointer array the
//! child needs, so the child never allocates. The program is exec'd by absolute
//! path, with `argv[0]` as the user wrote it.
//!
//! # Why not `fork`
//!
//! `fork` copies the daemon's page tables, and every page the daemon writes
//! afterwards faults and is copied while the child still shares it; then the
//! parent waits (std's exec-status pipe) until the child has exec'd. With a
//! thousand children that is most of a start-up, and it grows with the
//! daemon's size. [`spawn`] instead calls `clone(CLONE_VM | CLONE_VFORK)` on a
//! small stack of its own, as glibc's `posix_spawn` does: the child runs in the
//! daemon's memory, so nothing is copied, and the calling thread sleeps only
//! until the child's `execve` has replaced that memory (or the child has
//! exited). `posix_spawn` itself cannot be used: it has no parent-death signal,
//! no supplementary groups and no umask.
//!
//! Running in the parent's memory sets the rules for the child, all kept by
//! `child_main`: it only reads what [`prepare`] built; it never allocates,
//! unwinds or takes a lock; it makes raw system calls where a glibc wrapper
//! would touch process-wide state (`setuid` and friends signal every thread of
//! a multi-threaded process in glibc; here those "threads" would be the
//! daemon's); and it runs with every signal blocked until no handler of the
//! daemon can run in it (a handler would run on the daemon's data). A failure
//! is reported by writing the step and the errno into the shared
//! [`ChildArgs`], which the parent reads once the call returns, and the child
//! exits with 127.
//!
//! # The descriptor table
//!
//! A forked child gets a copy of the daemon's descriptor table, a reference
//! to every open file, and exec then closes them all again: with a thousand
//! children that is thousands of descriptors (their pipes), copied and closed
//! on every spawn, the largest cost of a restart. So the child starts out
//! *sharing* the table (`CLONE_FILES`: no copy), and its first act on it is
//! `close_range(N, ~0, CLOSE_RANGE_UNSHARE)`, which gives it a private table
//! holding only the descriptors below `N`, a handful. What it needs must
//! therefore sit below `N`: the launcher reserves three *slots* when it is
//! made (early, so their numbers are low), each holding `/dev/null`; a
//! spawn `dup3`s the child's stdin, stdout and stderr into them, and puts
//! `/dev/null` back once the child has exec'd, so a pipe's reader still sees
//! end-of-file when the child is gone. Where the kernel lacks the flag
//! (before 5.9), `unshare(CLONE_FILES)` copies the whole table instead.
//!
//! # Between clone and exec
//!
//! 1. `setpgid(0, 0)`: the child leads its own process group (pgid = pid) before
//!    anything else, so a group signal sent once `spawn` has returned reaches it
//!    and everything it forks, and a Ctrl-C aimed at the daemon's foreground
//!    group (`tend up` in a terminal) never reaches it directly: tend stops its
//!    children itself, in order.
//! 2. A private descriptor table (above), then `dup2` of the slots onto 0, 1
//!    and 2 (the slots are above 2, so no `dup2` overwrites another's source).
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
//!    this is skipped: descriptors then leak as they did before, which beats
//!    looping over a million fd numbers.
//! 8. Every signal disposition back to `SIG_DFL`: handlers because they must
//!    not run here, *ignored* signals because they would stay ignored across
//!    exec: a daemon started with `nohup` or by `cmd &` in a script ignores
//!    HUP or INT and QUIT, and its children would shrug off a `stop` with
//!    those signals. Then the signal mask is emptied and `execve` runs.

use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::{CString, OsStr, OsString, c_char, c_int, c_void};
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::ptr;
use std::time::{Duration, Instant};

use nix::unistd::{self, AccessFlags};

use super::creds::{self, Creds};
use crate::launcher::SpawnError;
use crate::model::spec::ProcessSpec;

/// The `PATH` a child gets when neither its spec nor the daemon sets one
/// (what `execvp` uses in that case, minus the current directory).
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Size of the stack the child runs on until exec. It makes a few dozen
/// system calls and nothing else; glibc's `posix_spawn` gets by with less.
const STACK_SIZE: usize = 64 * 1024;

fn permanent(message: String) -> SpawnError {
    SpawnError {
        message,
        permanent: true,
    }
}

/// Everything the child needs, built in the parent: C strings, the pointer
/// arrays `execve` takes, and the setup steps.
pub(super) struct Prepared {
    program: CString,
    /// Owns the strings `argv_ptrs` points into.
    _argv: Vec<CString>,
    argv_ptrs: Vec<*const c_char>,
    /// Owns the strings `envp_ptrs` points into.
    _envp: Vec<CString>,
    envp_ptrs: Vec<*const c_char>,
    cwd: Option<CString>,
    setup: ChildSetup,
}

/// A NUL-terminated copy of `s`, or a permanent error naming `what`.
fn c_string(s: &[u8], what: impl FnOnce() -> String) -> Result<CString, SpawnError> {
    CString::new(s).map_err(|_| permanent(format!("{} contains a NUL byte", what())))
}

/// Pointers to `strings`, NULL-terminated, as `execve` wants them.
fn pointers(strings: &[CString]) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(ptr::null()))
        .collect()
}

/// How long a `PATH` lookup is reused: long enough for a start-up of a
/// thousand processes or a crash loop, short enough that a program installed
/// earlier on `PATH` is picked up by the next start a human asks for, as with
/// `execvp` on every spawn.
const PATH_CACHE_TTL: Duration = Duration::from_secs(1);

/// Recent `PATH` lookups: each one is a `stat` per `PATH` entry, the largest
/// part of preparing a spawn.
#[derive(Debug, Default)]
pub(super) struct PathCache {
    found: HashMap<(String, OsString, Option<PathBuf>), (PathBuf, Instant)>,
}

impl PathCache {
    /// `cmd` looked up on `path` (relative to `cwd`), reusing a lookup of
    /// the last second whose file is still executable.
    fn resolve(
        &mut self,
        cmd: &str,
        path: OsString,
        cwd: Option<&Path>,
    ) -> Result<PathBuf, SpawnError> {
        if cmd.contains('/') {
            return resolve_program(cmd, &path, cwd);
        }
        let key = (cmd.to_string(), path, cwd.map(Path::to_path_buf));
        if let Some((file, at)) = self.found.get(&key)
            && at.elapsed() < PATH_CACHE_TTL
            && unistd::access(file, AccessFlags::X_OK).is_ok()
        {
            return Ok(file.clone());
        }
        let file = resolve_program(cmd, &key.1, cwd)?;
        if self.found.len() >= 256 {
            self.found
                .retain(|_, (_, at)| at.elapsed() < PATH_CACHE_TTL);
        }
        self.found.insert(key, (file.clone(), Instant::now()));
        Ok(file)
    }
}

/// Resolves and builds everything for `spec`, in the parent. Nothing is
/// started yet.
pub(super) fn prepare(spec: &ProcessSpec, paths: &mut PathCache) -> Result<Prepared, SpawnError> {
    let Some(arg0) = spec.command.first().filter(|a| !a.is_empty()) else {
        return Err(permanent("command is empty".to_string()));
    };
    let cwd = match &spec.cwd {
        Some(cwd) => Some(check_cwd(cwd)?),
        None => None,
    };
    let program = paths.resolve(arg0, child_path(spec), cwd.as_deref())?;
    let setup = ChildSetup {
        parent: unistd::getpid().as_raw(),
        creds: creds::resolve(spec.user.as_deref(), spec.unix_group.as_deref())?,
        umask: spec.umask.map(|m| (m & 0o777) as libc::mode_t),
        last_signal: libc::SIGRTMAX(),
    };

    let argv = spec
        .command
        .iter()
        .enumerate()
        .map(|(i, a)| c_string(a.as_bytes(), || format!("argument {i} of the command")))
        .collect::<Result<Vec<_>, _>>()?;
    let envp = environment(spec)?;
    let program = c_string(program.as_os_str().as_bytes(), || {
        format!("the path of the command ({})", program.display())
    })?;
    let cwd = match cwd {
        Some(cwd) => Some(c_string(cwd.as_os_str().as_bytes(), || {
            format!("the working directory ({})", cwd.display())
        })?),
        None => None,
    };
    Ok(Prepared {
        program,
        argv_ptrs: pointers(&argv),
        _argv: argv,
        envp_ptrs: pointers(&envp),
        _envp: envp,
        cwd,
        setup,
    })
}

/// The child's environment as `KEY=VALUE` strings: the daemon's (unless
/// `clear_env`), with the spec's variables added or replacing.
fn environment(spec: &ProcessSpec) -> Result<Vec<CString>, SpawnError> {
    let entry = |k: &[u8], v: &[u8]| {
        let mut kv = Vec::with_capacity(k.len() + 1 + v.len());
        kv.extend_from_slice(k);
        kv.push(b'=');
        kv.extend_from_slice(v);
        c_string(&kv, || {
            format!(
                "environment variable {:?}",
                String::from_utf8_lossy(k).into_owned()
            )
        })
    };
    let mut env = Vec::new();
    if !spec.clear_env {
        for (k, v) in std::env::vars_os() {
            let overridden = k.to_str().is_some_and(|k| spec.env.contains_key(k));
            if !overridden {
                env.push(entry(k.as_bytes(), v.as_bytes())?);
            }
        }
    }
    for (k, v) in &spec.env {
        if k.is_empty() || k.contains('=') {
            return Err(permanent(format!(
                "environment variable name {k:?} is empty or contains '='"
            )));
        }
        env.push(entry(k.as_bytes(), v.as_bytes())?);
    }
    Ok(env)
}

/// The child's three standard streams, as descriptors of the parent.
pub(super) struct Stdio<'a> {
    pub stdin: &'a OwnedFd,
    pub stdout: &'a OwnedFd,
    pub stderr: &'a OwnedFd,
}

/// Three descriptors reserved when the launcher is made, at low numbers,
/// through which a child gets its standard streams; see "The descriptor
/// table" in the module docs. Between spawns each holds `/dev/null`.
#[derive(Debug)]
pub(super) struct Slots {
    fds: [OwnedFd; 3],
    /// What each slot holds between spawns.
    placeholder: OwnedFd,
}

impl Slots {
    /// Reserves the slots, all above the standard streams.
    pub(super) fn new() -> io::Result<Slots> {
        let null = || -> io::Result<OwnedFd> { above_stdio(fs::File::open("/dev/null")?.into()) };
        Ok(Slots {
            fds: [null()?, null()?, null()?],
            placeholder: null()?,
        })
    }

    /// The descriptor that holds stdin between spawns: `/dev/null`.
    pub(super) fn dev_null(&self) -> &OwnedFd {
        &self.placeholder
    }

    fn raw(&self) -> [c_int; 3] {
        [
            self.fds[0].as_raw_fd(),
            self.fds[1].as_raw_fd(),
            self.fds[2].as_raw_fd(),
        ]
    }

    /// Puts `stdio` into the slots (close-on-exec, for any other fork of
    /// the process meanwhile).
    fn fill(&self, stdio: &Stdio<'_>) -> io::Result<()> {
        for (src, slot) in [stdio.stdin, stdio.stdout, stdio.stderr]
            .into_iter()
            .zip(self.raw())
        {
            dup_into(src.as_raw_fd(), slot)?;
        }
        Ok(())
    }

    /// Back to `/dev/null`, dropping the slots' references to the child's
    /// pipe ends (the readers must see end-of-file when the child is gone).
    fn clear(&self) {
        for slot in self.raw() {
            // Cannot fail: both descriptors are open and valid.
            let _ = dup_into(self.placeholder.as_raw_fd(), slot);
        }
    }
}

/// `dup3(src, dst, O_CLOEXEC)`: replaces `dst` atomically.
fn dup_into(src: c_int, dst: c_int) -> io::Result<()> {
    loop {
        // SAFETY: dup3 on two open descriptors; `dst` is one of ours.
        if unsafe { libc::dup3(src, dst, libc::O_CLOEXEC) } >= 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// What went wrong in the child, written there and read by the parent once
/// `clone` returns (the child shares the parent's memory until exec).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The `clone` itself, in the parent.
    Clone,
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

impl Step {
    /// How the error message names the step; empty for exec itself.
    fn label(self) -> &'static str {
        match self {
            Step::Clone | Step::Exec => "",
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

/// What `child_main` reads, and where it reports a failure.
struct ChildArgs<'a> {
    prepared: &'a Prepared,
    /// The slots holding stdin, stdout and stderr.
    stdio: [c_int; 3],
    /// One above the highest slot: the child's own table keeps only the
    /// descriptors below this.
    keep_below: c_int,
    /// Signal mask to restore right before exec (empty).
    exec_mask: libc::sigset_t,
    /// The failed step and its errno, written by the child. The parent
    /// reads it only once `clone` has returned, when the child has exec'd
    /// or exited (`CLONE_VFORK`), so the two never touch it at once.
    failed: Cell<Option<(Step, c_int)>>,
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
extern "C" fn child_main(arg: *mut c_void) -> c_int {
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

/// The parent's ends of a child's pipes, and the child's ends until the
/// spawn is done.
#[derive(Debug)]
pub(super) struct Pipes {
    /// Read end of stdout (and of stderr when merged).
    pub stdout: OwnedFd,
    /// Read end of stderr; `None` when merged into stdout.
    pub stderr: Option<OwnedFd>,
    /// Write end of stdin, when asked for.
    pub stdin: Option<OwnedFd>,
    /// The child's ends: stdin's read end (none: `/dev/null`), stdout's and
    /// stderr's write ends (the same pipe when merged). Closed after the
    /// spawn, so the reader sees end-of-file once the child (and everything
    /// that inherited them) is gone.
    pub child_stdin: Option<OwnedFd>,
    pub child_stdout: OwnedFd,
    pub child_stderr: Option<OwnedFd>,
}

/// A close-on-exec pipe whose ends are both above the standard streams, so
/// that the child's `dup2`s onto 0, 1 and 2 never overwrite one of them
/// (a daemon started with a closed stdin would otherwise get fd 0 here).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = io::pipe()?;
    Ok((above_stdio(r.into())?, above_stdio(w.into())?))
}

/// `fd`, moved above 2 if it is one of the standard stream numbers.
pub(super) fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    let moved = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that we now own.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(moved as RawFd) })
}

/// Fresh pipes for stdout and stderr (one pipe for both with
/// `merge_stderr`, so their order is the child's), and for stdin with
/// `stdin_pipe`.
///
/// Output is always captured, whatever the log target: the daemon splits it
/// into lines, keeps a tail and writes it where the spec says.
pub(super) fn pipes(merge_stderr: bool, stdin_pipe: bool) -> Result<Pipes, SpawnError> {
    let transient = |e: io::Error| SpawnError {
        message: format!("cannot create a pipe for the child: {e}"),
        permanent: false,
    };
    let (stdin, child_stdin) = if stdin_pipe {
        let (r, w) = pipe().map_err(transient)?;
        (Some(w), Some(r))
    } else {
        (None, None)
    };
    let (out_r, out_w) = pipe().map_err(transient)?;
    let (stderr, child_stderr) = if merge_stderr {
        (None, None)
    } else {
        let (r, w) = pipe().map_err(transient)?;
        (Some(r), Some(w))
    };
    Ok(Pipes {
        stdout: out_r,
        stderr,
        stdin,
        child_stdin,
        child_stdout: out_w,
        child_stderr,
    })
}

/// What the child does between clone and exec, besides the streams and the
/// directory; see the module docs for the order and the reasons.
#[derive(Debug)]
struct ChildSetup {
    /// The daemon's pid, read before the clone, for the `getppid` check.
    parent: libc::pid_t,
    creds: Option<Creds>,
    umask: Option<libc::mode_t>,
    /// Highest signal number to reset (SIGRTMAX, read in the parent).
    last_signal: libc::c_int,
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

/// Checks the working directory and makes it absolute, so relative program
/// paths can be resolved against it in the parent.
fn check_cwd(cwd: &Path) -> Result<PathBuf, SpawnError> {
    match fs::metadata(cwd) {
        Ok(m) if m.is_dir() => Ok(std::path::absolute(cwd).unwrap_or_else(|_| cwd.to_path_buf())),
        Ok(_) => Err(permanent(format!(
            "working directory {cwd:?} is not a directory"
        ))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(permanent(format!(
            "working directory {cwd:?} does not exist"
        ))),
        Err(e) => Err(permanent(format!("working directory {cwd:?}: {e}"))),
    }
}

/// The `PATH` the child will see.
fn child_path(spec: &ProcessSpec) -> OsString {
    if let Some(path) = spec.env.get("PATH") {
        return path.into();
    }
    if !spec.clear_env
        && let Some(path) = std::env::var_os("PATH")
    {
        return path;
    }
    DEFAULT_PATH.into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    Executable,
    NotExecutable,
    Directory,
    Missing,
}

fn probe(path: &Path) -> Probe {
    match fs::metadata(path) {
        Err(_) => Probe::Missing,
        Ok(m) if m.is_dir() => Probe::Directory,
        Ok(m) if m.permissions().mode() & 0o111 == 0 => Probe::NotExecutable,
        // access(2) also catches what the mode bits do not show: another
        // owner's 0700 file, a noexec mount.
        Ok(_) if unistd::access(path, AccessFlags::X_OK).is_ok() => Probe::Executable,
        Ok(_) => Probe::NotExecutable,
    }
}

/// Finds the file to exec, as `execvp` would in the child: a command with a `/`
/// is a path (relative to `cwd`), anything else is searched on `path`, where
/// the first executable match wins. Returns an absolute path when `cwd` is
/// absolute (it always is once through [`check_cwd`]).
fn resolve_program(cmd: &str, path: &OsStr, cwd: Option<&Path>) -> Result<PathBuf, SpawnError> {
    let on_disk = |p: PathBuf| match cwd {
        Some(cwd) if p.is_relative() => cwd.join(p),
        _ => p,
    };

    if cmd.contains('/') {
        let file = on_disk(PathBuf::from(cmd));
        let shown = if file.as_os_str() == cmd {
            String::new()
        } else {
            format!(" ({})", file.display())
        };
        return match probe(&file) {
            Probe::Executable => Ok(file),
            Probe::Missing => Err(permanent(format!("command {cmd:?}{shown} does not exist"))),
            Probe::Directory => Err(permanent(format!("command {cmd:?}{shown} is a directory"))),
            Probe::NotExecutable => Err(permanent(format!(
                "command {cmd:?}{shown} is not executable"
            ))),
        };
    }

    let mut unusable = None;
    for dir in std::env::split_paths(path) {
        // An empty PATH entry means the current directory.
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let file = on_disk(dir.join(cmd));
        match probe(&file) {
            Probe::Executable => return Ok(file),
            Probe::Missing => {}
            found => {
                unusable.get_or_insert((file, found));
            }
        }
    }
    Err(permanent(match unusable {
        Some((file, Probe::Directory)) => {
            format!(
                "command {cmd:?} is a directory ({}) and nothing else on PATH matches",
                file.display()
            )
        }
        Some((file, _)) => {
            format!(
                "command {cmd:?} is not executable ({}) and nothing else on PATH matches",
                file.display()
            )
        }
        None => format!(
            "command {cmd:?} not found on PATH ({})",
            path.to_string_lossy()
        ),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_file(path: &Path, mode: u32) {
        fs::write(path, "#!/bin/sh\nexit 0\n").expect("write");
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
    }

    #[test]
    fn path_search_takes_the_first_executable_match() {
        let a = tempfile::tempdir().expect("tempdir");
        let b = tempfile::tempdir().expect("tempdir");
        write_file(&a.path().join("prog"), 0o644);
        fs::create_dir(b.path().join("sub")).expect("mkdir");
        write_file(&b.path().join("prog"), 0o755);
        let path = std::env::join_paths([a.path(), b.path()]).expect("join");
        assert_eq!(
            resolve_program("prog", &path, None),
            Ok(b.path().join("prog"))
        );

        // Only unusable matches: the error says what is wrong with the first.
        let err = resolve_program("prog", a.path().as_os_str(), None).expect_err("not executable");
        assert!(
            err.permanent && err.message.contains("is not executable"),
            "{}",
            err.message
        );
        let err = resolve_program("sub", b.path().as_os_str(), None).expect_err("directory");
        assert!(
            err.permanent && err.message.contains("is a directory"),
            "{}",
            err.message
        );
    }

    #[test]
    fn path_lookups_are_reused_only_while_fresh_and_present() {
        let early = tempfile::tempdir().expect("tempdir");
        let late = tempfile::tempdir().expect("tempdir");
        write_file(&late.path().join("prog"), 0o755);
        let path = std::env::join_paths([early.path(), late.path()]).expect("join");
        let mut cache = PathCache::default();
        let found = cache.resolve("prog", path.clone(), None).expect("found");
        assert_eq!(found, late.path().join("prog"));

        // A copy installed earlier on PATH: the fresh lookup is reused...
        write_file(&early.path().join("prog"), 0o755);
        assert_eq!(cache.resolve("prog", path.clone(), None), Ok(found.clone()));
        // ...until it is older than the TTL.
        for (_, at) in cache.found.values_mut() {
            *at = Instant::now() - PATH_CACHE_TTL;
        }
        assert_eq!(
            cache.resolve("prog", path.clone(), None),
            Ok(early.path().join("prog"))
        );

        // The cached file removed: looked up again at once.
        fs::remove_file(early.path().join("prog")).expect("rm");
        assert_eq!(cache.resolve("prog", path.clone(), None), Ok(found));
        fs::remove_file(late.path().join("prog")).expect("rm");
        let err = cache.resolve("prog", path, None).expect_err("gone");
        assert!(
            err.permanent && err.message.contains("not found on PATH"),
            "{}",
            err.message
        );
    }

    #[test]
    fn missing_command_names_the_command_and_the_path() {
        let err = resolve_program(
            "tend-no-such-prog",
            OsStr::new("/nonexistent:/also-not"),
            None,
        )
        .expect_err("missing");
        assert!(err.permanent);
        assert_eq!(
            err.message,
            "command \"tend-no-such-prog\" not found on PATH (/nonexistent:/also-not)"
        );
    }

    #[test]
    fn relative_paths_and_empty_path_entries_resolve_against_cwd() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_file(&dir.path().join("prog"), 0o755);
        assert_eq!(
            resolve_program("./prog", OsStr::new(""), Some(dir.path())),
            Ok(dir.path().join("./prog"))
        );
        assert_eq!(
            resolve_program("prog", OsStr::new("/nonexistent:"), Some(dir.path())),
            Ok(dir.path().join("./prog"))
        );
        let err = resolve_program("./nope", OsStr::new(""), Some(dir.path())).expect_err("missing");
        assert!(
            err.permanent && err.message.contains("does not exist"),
            "{}",
            err.message
        );
    }

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
