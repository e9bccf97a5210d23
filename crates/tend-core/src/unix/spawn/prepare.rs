//! Everything a spawn can decide in the parent, before the clone.
//!
//! [`prepare`] resolves everything that can fail for a reason retrying will
//! not fix, and reports it as a permanent [`SpawnError`] that names the
//! culprit: the working directory, the program (looked up on the `PATH` the
//! *child* will see, because exec's own `ENOENT` cannot say which of the two
//! was missing; see `path.rs`), the user and groups (see `creds.rs`), and
//! arguments or environment entries that cannot be C strings. It builds every
//! C string and pointer array the child needs, so the child never allocates.
//! The program is exec'd by absolute path, with `argv[0]` as the user wrote it.

use std::ffi::{CString, c_char};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::ptr;

use nix::unistd;

use super::path::{PathCache, child_path};
use super::permanent;
use crate::model::launch::SpawnError;
use crate::model::spec::ProcessSpec;
use crate::unix::creds::{self, Creds};

/// Everything the child needs, built in the parent: C strings, the pointer
/// arrays `execve` takes, and the setup steps.
pub(in crate::unix) struct Prepared {
    pub(super) program: CString,
    /// Owns the strings `argv_ptrs` points into.
    pub(super) _argv: Vec<CString>,
    pub(super) argv_ptrs: Vec<*const c_char>,
    /// Owns the strings `envp_ptrs` points into.
    pub(super) _envp: Vec<CString>,
    pub(super) envp_ptrs: Vec<*const c_char>,
    pub(super) cwd: Option<CString>,
    pub(super) setup: ChildSetup,
}

/// What the child does between clone and exec, besides the streams and the
/// directory; see the module docs for the order and the reasons.
#[derive(Debug)]
pub(super) struct ChildSetup {
    /// The daemon's pid, read before the clone, for the `getppid` check.
    pub(super) parent: libc::pid_t,
    pub(super) creds: Option<Creds>,
    pub(super) umask: Option<libc::mode_t>,
    /// Highest signal number to reset (SIGRTMAX, read in the parent).
    pub(super) last_signal: libc::c_int,
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

/// Resolves and builds everything for `spec`, in the parent. Nothing is
/// started yet.
pub(in crate::unix) fn prepare(
    spec: &ProcessSpec,
    paths: &mut PathCache,
) -> Result<Prepared, SpawnError> {
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
