//! Test support shared by tend's crates: one way for a test to say that it
//! cannot run here.
//!
//! A test that needs something the machine may lack (root, `redis-server`,
//! `systemd-notify`, the supervisor venv, a tmpfs mount) asks [`require()`] (or
//! [`require!`], [`require_program`], [`require_root`]) first. When the
//! prerequisite is missing:
//!
//! - under `CI=true` the test **fails**, with the reason: CI has everything
//!   (`scripts/test` installs it), so a missing piece is a broken setup;
//! - elsewhere the test is **skipped**: `SKIP <test>: <reason>` goes to stderr
//!   (past libtest's capture, so plain `cargo test` shows it too), the same
//!   line is appended to the skip log, and the test returns.
//!
//! The skip log is `$TEND_SKIP_LOG` when set, else `tend-skips.txt` in the
//! target directory of the running test binary. `scripts/test` empties it
//! before the tests and lists it at the end, so skips are counted in the
//! summary instead of passing unseen.

use std::fmt::Display;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

/// The skip log's file name in the target directory.
pub const SKIP_LOG: &str = "tend-skips.txt";

/// Whether the test can go on: `true` when `available`. Otherwise the test
/// cannot run here: under `CI=true` this panics with `why`; elsewhere it
/// prints and records the skip (see the crate docs) and returns `false`, and
/// the caller returns.
#[track_caller]
pub fn require(available: bool, why: impl Display) -> bool {
    if available {
        return true;
    }
    let line = format!("{}: {why}", test_name());
    if std::env::var_os("CI").is_some_and(|v| v == "true") {
        panic!("{line} (CI=true: a missing prerequisite is a failure)");
    }
    // To the stream itself: libtest captures `eprintln!` of passing tests.
    let _ = writeln!(std::io::stderr(), "SKIP {line}");
    if let Err(e) = record(&line) {
        let _ = writeln!(std::io::stderr(), "(skip not recorded: {e})");
    }
    false
}

/// [`require()`], returning from the enclosing function (a test returning `()`)
/// when the prerequisite is missing; the reason is a `format!` string.
///
/// ```
/// fn a_test() {
///     tend_testkit::require!(std::path::Path::new("/").is_dir(), "no root directory");
/// }
/// a_test();
/// ```
#[macro_export]
macro_rules! require {
    ($available:expr, $($why:tt)+) => {
        if !$crate::require($available, ::std::format_args!($($why)+)) {
            return;
        }
    };
}

/// `program` as found on `PATH`, or `None` (after [`require()`] has failed the
/// test or recorded the skip) when it is not installed.
#[track_caller]
pub fn require_program(program: &str) -> Option<PathBuf> {
    let found = on_path(program);
    require(
        found.is_some(),
        format_args!("{program} is not installed (scripts/test installs it)"),
    );
    found
}

/// Whether the test runs as root; if not, [`require()`] fails or skips it,
/// saying `why` root is needed.
#[track_caller]
pub fn require_root(why: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    require(root, format_args!("needs root ({why})"))
}

/// `program` in a directory of `PATH`, if there is one.
pub fn on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// `binary::thread`: the test binary without cargo's hash (`tend_core`, `it`)
/// and libtest's name for the test's thread (`unix::tests::a_test`).
fn test_name() -> String {
    let exe = std::env::current_exe().ok();
    let stem = exe
        .as_deref()
        .and_then(|p| p.file_stem())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let binary = match stem.rsplit_once('-') {
        Some((name, hash)) if hash.bytes().all(|b| b.is_ascii_hexdigit()) => name.to_string(),
        _ => stem,
    };
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("?");
    format!("{binary}::{test}")
}

/// Appends `line` to the skip log.
fn record(line: &str) -> std::io::Result<()> {
    let path = match std::env::var_os("TEND_SKIP_LOG") {
        Some(p) => PathBuf::from(p),
        None => target_dir()?.join(SKIP_LOG),
    };
    // One write of a short line with O_APPEND: lines of concurrent tests
    // (threads or processes) do not interleave.
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(format!("{line}\n").as_bytes())
}

/// The target directory of the running test binary: the nearest ancestor
/// with cargo's `CACHEDIR.TAG` (`target/debug/deps/x-hash` is in `target`).
fn target_dir() -> std::io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    exe.ancestors()
        .find(|d| d.join("CACHEDIR.TAG").is_file())
        .map(PathBuf::from)
        .ok_or_else(|| {
            std::io::Error::other(format!(
                "no target directory above {}; set TEND_SKIP_LOG",
                exe.display()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_available_prerequisite_goes_on() {
        assert!(require(true, "never shown"));
        assert!(require_program("sh").is_some());
    }

    const HELPER: &str = "TEND_TESTKIT_HELPER";

    /// This test binary again, running only [`skipping_helper`], with or
    /// without `CI=true`: its exit status, stderr and skip log.
    #[expect(
        clippy::disallowed_methods,
        reason = "no reaper here; the helper is this test's own child"
    )]
    fn run_helper(ci: bool) -> (bool, String, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join(SKIP_LOG);
        let mut cmd = std::process::Command::new(std::env::current_exe().expect("current_exe"));
        cmd.args(["--exact", "tests::skipping_helper", "--ignored"])
            .args(["--nocapture", "--test-threads=1"])
            .env(HELPER, "1")
            .env("TEND_SKIP_LOG", &log)
            .env_remove("CI");
        if ci {
            cmd.env("CI", "true");
        }
        let out = cmd.output().expect("run the helper");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (
            out.status.success(),
            stderr,
            std::fs::read_to_string(&log).unwrap_or_default(),
        )
    }

    #[test]
    fn a_missing_prerequisite_is_a_counted_skip_or_under_ci_a_failure() {
        let line = "tend_testkit::tests::skipping_helper: no widget here";
        let (ok, stderr, log) = run_helper(false);
        assert!(ok, "a skip passes:\n{stderr}");
        assert!(stderr.contains(&format!("SKIP {line}\n")), "{stderr}");
        assert_eq!(log, format!("{line}\n"));

        let (ok, stderr, log) = run_helper(true);
        assert!(!ok, "under CI=true it fails:\n{stderr}");
        assert!(
            stderr.contains(&format!(
                "{line} (CI=true: a missing prerequisite is a failure)"
            )),
            "{stderr}"
        );
        assert_eq!(log, "", "a failure is not a skip");
    }

    #[test]
    #[ignore = "runs in a process of its own, started by a_missing_prerequisite_is_a_counted_skip_or_under_ci_a_failure"]
    fn skipping_helper() {
        if std::env::var_os(HELPER).is_none() {
            return;
        }
        require!(false, "no {} here", "widget");
        panic!("require! went on without its prerequisite");
    }

    #[test]
    fn the_test_is_named_by_its_binary_and_thread() {
        assert_eq!(
            test_name(),
            "tend_testkit::tests::the_test_is_named_by_its_binary_and_thread"
        );
    }
}
