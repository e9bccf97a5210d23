//! Forking and exec'ing one process.
//!
//! # In the parent
//!
//! [`prepare`] resolves everything that can fail for a reason retrying will not
//! fix, and reports it as a permanent [`SpawnError`] that names the culprit:
//! the working directory, the program (looked up on the `PATH` the *child* will
//! see, because exec's own `ENOENT` cannot say which of the two was missing),
//! and the user and groups (see `creds.rs`). The program is then exec'd by
//! absolute path, with `argv[0]` as the user wrote it.
//!
//! # Between fork and exec
//!
//! std's fork path dup2s the standard streams, changes directory (still with
//! the daemon's credentials), unblocks all signals and restores SIGPIPE, then
//! runs our `pre_exec` closure ([`ChildSetup::run`]). The child is a copy of a
//! possibly multi-threaded process in which another thread may have held the
//! allocator's lock at fork time, so the closure only makes async-signal-safe
//! syscalls on data computed before the fork and never allocates. The order:
//!
//! 1. `setpgid(0, 0)`: the child leads its own process group (pgid = pid) before
//!    anything else, so a group signal sent once `spawn` has returned reaches it
//!    and everything it forks, and a Ctrl-C aimed at the daemon's foreground
//!    group (`tend up` in a terminal) never reaches it directly: tend stops its
//!    children itself, in order.
//! 2. `setgroups`, `setgid`, `setuid` (only with `user` / `unix_group`): groups
//!    first, because changing them needs privileges that `setuid` gives up. We
//!    do this ourselves rather than with `Command::uid`/`gid`, which would drop
//!    the user's supplementary groups and run before this closure.
//! 3. `umask`.
//! 4. `prctl(PR_SET_PDEATHSIG, SIGKILL)`, after the credential change because
//!    the kernel clears the setting on one, then `getppid()`: had the daemon
//!    died before the prctl, no signal would ever come, so give up instead of
//!    exec'ing an orphan. The signal fires when the *forking thread* exits (see
//!    the module docs of `unix`).
//! 5. `close_range(3, ~0, CLOSE_RANGE_CLOEXEC)`: every inherited descriptor
//!    above stderr is closed by exec, whoever opened it without `O_CLOEXEC`.
//!    Marking instead of closing keeps std's exec-error pipe (already CLOEXEC)
//!    working until exec. On kernels before 5.11, or under a seccomp filter
//!    that refuses the call, this is skipped: descriptors then leak as they
//!    did before, which beats looping over a million fd numbers.
//! 6. Every signal disposition back to `SIG_DFL`. Handlers are reset by exec
//!    anyway, but *ignored* signals stay ignored: a daemon started with `nohup`
//!    or by `cmd &` in a script ignores HUP or INT and QUIT, and its children
//!    would inherit that and shrug off a `stop` with those signals.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::unistd::{self, AccessFlags};

use super::creds::{self, Creds};
use crate::launcher::SpawnError;
use crate::spec::ProcessSpec;

/// The `PATH` a child gets when neither its spec nor the daemon sets one
/// (what `execvp` uses in that case, minus the current directory).
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

fn permanent(message: String) -> SpawnError {
    SpawnError {
        message,
        permanent: true,
    }
}

/// Builds the `Command` for `spec`, resolving in the parent everything that can
/// be resolved there. Nothing is forked yet.
pub(super) fn prepare(spec: &ProcessSpec) -> Result<Command, SpawnError> {
    let Some(arg0) = spec.command.first().filter(|a| !a.is_empty()) else {
        return Err(permanent("command is empty".to_string()));
    };
    let cwd = match &spec.cwd {
        Some(cwd) => Some(check_cwd(cwd)?),
        None => None,
    };
    let program = resolve_program(arg0, &child_path(spec), cwd.as_deref())?;
    let setup = ChildSetup {
        parent: unistd::getpid().as_raw(),
        creds: creds::resolve(spec.user.as_deref(), spec.unix_group.as_deref())?,
        umask: spec.umask.map(|m| (m & 0o777) as libc::mode_t),
        last_signal: libc::SIGRTMAX(),
    };

    let mut command = Command::new(program);
    command.arg0(arg0).args(&spec.command[1..]);
    if spec.clear_env {
        command.env_clear();
    }
    command.envs(&spec.env);
    if let Some(cwd) = cwd {
        command.current_dir(cwd);
    }
    // SAFETY: `ChildSetup::run` only makes async-signal-safe syscalls on data
    // owned by `setup`, and does not allocate.
    unsafe {
        command.pre_exec(move || setup.run());
    }
    Ok(command)
}

/// Forks and execs `command`; returns the child's pid once exec has succeeded.
///
/// The `Child` handle is dropped without waiting (dropping one neither waits
/// nor kills): the reaper is the only thing that waits.
pub(super) fn run(command: &mut Command, spec: &ProcessSpec) -> Result<u32, SpawnError> {
    let child = command.spawn().map_err(|e| exec_error(spec, &e))?;
    Ok(child.id())
}

/// The parent's ends of a child's output pipes.
#[derive(Debug)]
pub(super) struct Pipes {
    /// Read end of stdout (and of stderr when merged).
    pub stdout: OwnedFd,
    /// Read end of stderr; `None` when merged into stdout.
    pub stderr: Option<OwnedFd>,
    /// Write end of stdin, when asked for.
    pub stdin: Option<OwnedFd>,
}

/// Gives the child `/dev/null` (or a pipe, with `stdin_pipe`) as stdin and
/// fresh pipes as stdout and stderr (one pipe for both with `merge_stderr`,
/// so their order is the child's).
///
/// Output is always captured, whatever the log target: the daemon splits it
/// into lines, keeps a tail and writes it where the spec says. The pipes are
/// created close-on-exec; the child gets its ends through `dup2` onto 0, 1
/// and 2. The child's ends live in `command` and are closed when it is
/// dropped, right after the spawn, so the reader sees end-of-file when the
/// child (and every process that inherited them) is gone.
pub(super) fn attach_pipes(
    command: &mut Command,
    merge_stderr: bool,
    stdin_pipe: bool,
) -> Result<Pipes, SpawnError> {
    let transient = |e: io::Error| SpawnError {
        message: format!("cannot create a pipe for the child: {e}"),
        permanent: false,
    };
    let stdin = if stdin_pipe {
        let (in_r, in_w) = io::pipe().map_err(transient)?;
        command.stdin(in_r);
        Some(in_w.into())
    } else {
        command.stdin(Stdio::null());
        None
    };
    let (out_r, out_w) = io::pipe().map_err(transient)?;
    if merge_stderr {
        let err_w = out_w.try_clone().map_err(transient)?;
        command.stdout(out_w).stderr(err_w);
        return Ok(Pipes {
            stdout: out_r.into(),
            stderr: None,
            stdin,
        });
    }
    let (err_r, err_w) = io::pipe().map_err(transient)?;
    command.stdout(out_w).stderr(err_w);
    Ok(Pipes {
        stdout: out_r.into(),
        stderr: Some(err_r.into()),
        stdin,
    })
}

/// What the child does between fork and exec; see the module docs for the
/// order and the reasons.
#[derive(Debug)]
struct ChildSetup {
    /// The daemon's pid, read before the fork, for the `getppid` check.
    parent: libc::pid_t,
    creds: Option<Creds>,
    umask: Option<libc::mode_t>,
    /// Highest signal number to reset (SIGRTMAX, read in the parent).
    last_signal: libc::c_int,
}

/// Turns a `-1` return into the errno it set, without allocating.
fn check(ret: libc::c_int) -> io::Result<()> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl ChildSetup {
    /// Runs in the forked child: async-signal-safe syscalls only, no allocation.
    fn run(&self) -> io::Result<()> {
        // SAFETY: each call is a plain syscall wrapper; the only pointer passed
        // (the group list) points into a Vec owned by `self` that outlives it.
        unsafe {
            check(libc::setpgid(0, 0))?;

            if let Some(creds) = &self.creds {
                if let Some(groups) = &creds.groups {
                    check(libc::setgroups(groups.len(), groups.as_ptr()))?;
                }
                check(libc::setgid(creds.gid))?;
                if let Some(uid) = creds.uid {
                    check(libc::setuid(uid))?;
                }
            }

            if let Some(mask) = self.umask {
                libc::umask(mask);
            }

            check(libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
            ))?;
            if libc::getppid() != self.parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }

            // Errors (ENOSYS, EINVAL, a seccomp EPERM) are ignored on purpose:
            // see step 5 in the module docs.
            libc::syscall(
                libc::SYS_close_range,
                3 as libc::c_uint,
                libc::c_uint::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );

            for sig in 1..=self.last_signal {
                if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                    // glibc refuses its two internal signals with EINVAL; fine.
                    libc::signal(sig, libc::SIG_DFL);
                }
            }
        }
        Ok(())
    }
}

/// Maps an error from `Command::spawn` (fork, chdir, our setup or exec).
fn exec_error(spec: &ProcessSpec, err: &io::Error) -> SpawnError {
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
        message: format!("cannot start {cmd:?}: {err}{hint}"),
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
                exec_error(&spec, &io::Error::from_raw_os_error(errno)).permanent,
                "errno {errno}"
            );
        }
        for errno in [libc::EAGAIN, libc::ENOMEM, libc::EMFILE, libc::ESRCH] {
            assert!(
                !exec_error(&spec, &io::Error::from_raw_os_error(errno)).permanent,
                "errno {errno}"
            );
        }
        assert!(
            exec_error(&spec, &io::Error::from_raw_os_error(libc::EAGAIN))
                .message
                .contains("\"prog\"")
        );
    }
}
