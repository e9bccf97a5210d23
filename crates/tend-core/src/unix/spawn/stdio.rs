//! The child's standard streams: its pipes, and the three low *slots*
//! through which it gets them.
//!
//! # The descriptor table
//!
//! A forked child gets a copy of the daemon's descriptor table, a reference
//! to every open file (two pipes per child the daemon runs), and exec then
//! closes them all again, on every spawn. So the child starts out *sharing*
//! the table (`CLONE_FILES`: no copy), and its first act on it is
//! `close_range(N, ~0, CLOSE_RANGE_UNSHARE)`, which gives it a private table
//! holding only the descriptors below `N`, a handful. What it needs must
//! therefore sit below `N`: the launcher reserves three [`Slots`] when it is
//! made (early, so their numbers are low), each holding `/dev/null`; a spawn
//! `dup3`s the child's stdin, stdout and stderr into them, and puts
//! `/dev/null` back once the child has exec'd, so a pipe's reader still sees
//! end-of-file when the child is gone.
//!
//! # Which streams get a pipe
//!
//! Only the ones someone reads: a stream whose log target is `null` is
//! `/dev/null` itself (opened read-write, so the child's writes succeed and
//! vanish), which costs no descriptor in the daemon and no reading. Ten
//! thousand quiet processes with `null` output then hold a pidfd each and
//! nothing else. Where the kernel lacks the flag
//! (before 5.9), `unshare(CLONE_FILES)` copies the whole table instead.

use std::ffi::c_int;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::model::launch::SpawnError;

/// The child's three standard streams, as descriptors of the parent.
pub(in crate::unix) struct Stdio<'a> {
    pub(in crate::unix) stdin: &'a OwnedFd,
    pub(in crate::unix) stdout: &'a OwnedFd,
    pub(in crate::unix) stderr: &'a OwnedFd,
}

/// Three descriptors reserved when the launcher is made, at low numbers,
/// through which a child gets its standard streams; see "The descriptor
/// table" in the module docs. Between spawns each holds `/dev/null`.
#[derive(Debug)]
pub(in crate::unix) struct Slots {
    fds: [OwnedFd; 3],
    /// What each slot holds between spawns.
    placeholder: OwnedFd,
}

impl Slots {
    /// Reserves the slots, all above the standard streams.
    pub(in crate::unix) fn new() -> io::Result<Slots> {
        // Read-write: it stands in for stdout and stderr too.
        let null = || -> io::Result<OwnedFd> {
            let f = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")?;
            above_stdio(f.into())
        };
        Ok(Slots {
            fds: [null()?, null()?, null()?],
            placeholder: null()?,
        })
    }

    /// `/dev/null`, read-write: what a stream without a pipe is, and what
    /// the slots hold between spawns.
    pub(in crate::unix) fn dev_null(&self) -> &OwnedFd {
        &self.placeholder
    }

    pub(super) fn raw(&self) -> [c_int; 3] {
        [
            self.fds[0].as_raw_fd(),
            self.fds[1].as_raw_fd(),
            self.fds[2].as_raw_fd(),
        ]
    }

    /// Puts `stdio` into the slots (close-on-exec, for any other fork of
    /// the process meanwhile).
    pub(super) fn fill(&self, stdio: &Stdio<'_>) -> io::Result<()> {
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
    pub(super) fn clear(&self) {
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

/// The parent's ends of a child's pipes, and the child's ends until the
/// spawn is done. A stream without a pipe is `/dev/null` in the child.
#[derive(Debug)]
pub(in crate::unix) struct Pipes {
    /// Read end of stdout (and of stderr when merged).
    pub(in crate::unix) stdout: Option<OwnedFd>,
    /// Read end of stderr; `None` when merged into stdout or not read.
    pub(in crate::unix) stderr: Option<OwnedFd>,
    /// Write end of stdin, when asked for.
    pub(in crate::unix) stdin: Option<OwnedFd>,
    /// The child's ends: stdin's read end, stdout's and stderr's write ends
    /// (`None`: `/dev/null`; stderr's is stdout's when merged). Closed after
    /// the spawn, so the reader sees end-of-file once the child (and
    /// everything that inherited them) is gone.
    pub(in crate::unix) child_stdin: Option<OwnedFd>,
    pub(in crate::unix) child_stdout: Option<OwnedFd>,
    pub(in crate::unix) child_stderr: Option<OwnedFd>,
}

/// A close-on-exec pipe whose ends are both above the standard streams, so
/// that the child's `dup2`s onto 0, 1 and 2 never overwrite one of them
/// (a daemon started with a closed stdin would otherwise get fd 0 here).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = io::pipe()?;
    Ok((above_stdio(r.into())?, above_stdio(w.into())?))
}

/// `fd`, moved above 2 if it is one of the standard stream numbers.
fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    let moved = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that we now own.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(moved as RawFd) })
}

/// Fresh pipes for the streams that are read (see "Which streams get a
/// pipe"): stdout and stderr (one pipe for both with `merge_stderr`, so
/// their order is the child's), and stdin with `stdin_pipe`.
///
/// What is read, the daemon splits into lines, keeps in a tail and writes
/// where the spec says.
pub(in crate::unix) fn pipes(
    logs: &crate::model::spec::LogSpec,
    stdin_pipe: bool,
) -> Result<Pipes, SpawnError> {
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
    let (read_stdout, read_stderr) = logs.captured();
    let (stdout, child_stdout) = if read_stdout {
        let (r, w) = pipe().map_err(transient)?;
        (Some(r), Some(w))
    } else {
        (None, None)
    };
    let (stderr, child_stderr) = if read_stderr {
        let (r, w) = pipe().map_err(transient)?;
        (Some(r), Some(w))
    } else {
        (None, None)
    };
    Ok(Pipes {
        stdout,
        stderr,
        stdin,
        child_stdin,
        child_stdout,
        child_stderr,
    })
}
