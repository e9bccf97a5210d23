//! Finding the program to exec, on the `PATH` the child will see, as
//! `execvp` would in the child, so that a missing or non-executable program
//! is a permanent error that names it instead of a child dying of `ENOENT`.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::unistd::{self, AccessFlags};

use super::permanent;
use crate::model::launch::SpawnError;
use crate::model::spec::ProcessSpec;

/// The `PATH` a child gets when neither its spec nor the daemon sets one
/// (what `execvp` uses in that case, minus the current directory).
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// How long a `PATH` lookup is reused: long enough for a start-up of a
/// thousand processes or a crash loop, short enough that a program installed
/// earlier on `PATH` is picked up by the next start a human asks for, as with
/// `execvp` on every spawn.
const PATH_CACHE_TTL: Duration = Duration::from_secs(1);

/// Recent `PATH` lookups: each one is a `stat` per `PATH` entry, the largest
/// part of preparing a spawn.
#[derive(Debug, Default)]
pub(in crate::unix) struct PathCache {
    found: HashMap<(String, OsString, Option<PathBuf>), (PathBuf, Instant)>,
}

impl PathCache {
    /// `cmd` looked up on `path` (relative to `cwd`), reusing a lookup of
    /// the last second whose file is still executable.
    pub(super) fn resolve(
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

/// The `PATH` the child will see.
pub(super) fn child_path(spec: &ProcessSpec) -> OsString {
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
            *at = Instant::now()
                .checked_sub(PATH_CACHE_TTL)
                .expect("the clock is past one TTL");
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
}
