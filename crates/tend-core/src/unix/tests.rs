//! The Unix layer against real processes (own-children reaping, so tests in
//! one process never steal each other's children; `reap_all` runs in a child
//! process of its own).

use std::collections::BTreeSet;
use std::ffi::CString;
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedReceiver;

use super::UnixLauncher;
use crate::launcher::{KillTarget, Launcher, Reaped, SpawnError};
use crate::model::name::Name;
use crate::model::signal::Signal;
use crate::model::spec::ProcessSpec;
use crate::model::status::ExitInfo;

const DEADLINE: Duration = Duration::from_secs(10);

fn spec(argv: &[&str]) -> ProcessSpec {
    ProcessSpec::new(
        Name::new("test").expect("name"),
        argv.iter().map(|a| a.to_string()).collect(),
    )
}

/// `sh -c SCRIPT sh ARG`: the script reads its argument as `$1`, so paths need
/// no quoting.
fn sh(script: &str, arg: &Path) -> ProcessSpec {
    spec(&[
        "sh",
        "-c",
        script,
        "sh",
        arg.to_str().expect("utf-8 temp path"),
    ])
}

fn launcher() -> (UnixLauncher, UnboundedReceiver<Reaped>) {
    UnixLauncher::new(false).expect("launcher")
}

async fn exit_of(rx: &mut UnboundedReceiver<Reaped>, pid: u32) -> ExitInfo {
    tokio::time::timeout(DEADLINE, async {
        loop {
            let reaped = rx.recv().await.expect("reaper ended");
            if reaped.pid == pid {
                return reaped.exit;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("pid {pid} not reaped within {DEADLINE:?}"))
}

async fn run(spec: &ProcessSpec) -> ExitInfo {
    let (mut launcher, mut rx) = launcher();
    let spawned = launcher.spawn(spec).expect("spawn");
    // Output is always piped: forward it to the test's stderr, so a helper
    // process can print (and its output shows when the test fails).
    for fd in [spawned.stdout, spawned.stderr].into_iter().flatten() {
        std::thread::spawn(move || {
            let mut from = std::fs::File::from(fd);
            let _ = std::io::copy(&mut from, &mut std::io::stderr());
        });
    }
    exit_of(&mut rx, spawned.pid).await
}

fn spawn_err(spec: &ProcessSpec) -> SpawnError {
    let (mut launcher, _rx) = launcher();
    launcher.spawn(spec).expect_err("spawn should fail")
}

async fn poll_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// State and process group from `/proc/PID/stat`; `None` once the pid is gone.
fn proc_stat(pid: u32) -> Option<(char, i32)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.get(stat.rfind(')')? + 2..)?.split(' ');
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

#[tokio::test]
async fn exit_codes_and_signals_are_reported() {
    assert_eq!(run(&spec(&["true"])).await, ExitInfo::Code(0));
    assert_eq!(run(&spec(&["sh", "-c", "exit 3"])).await, ExitInfo::Code(3));
    assert_eq!(
        run(&spec(&["sh", "-c", "kill -9 $$"])).await,
        ExitInfo::Signal(Signal::KILL)
    );
}

#[tokio::test]
async fn exits_of_several_children_are_all_reaped() {
    let (mut launcher, mut rx) = launcher();
    let mut expected = BTreeSet::new();
    for code in 0..5 {
        let pid = launcher
            .spawn(&spec(&["sh", "-c", &format!("exit {code}")]))
            .expect("spawn")
            .pid;
        expected.insert((pid, code));
    }
    let mut seen = BTreeSet::new();
    while seen.len() < expected.len() {
        let reaped = tokio::time::timeout(DEADLINE, rx.recv())
            .await
            .expect("in time")
            .expect("reaper");
        let ExitInfo::Code(code) = reaped.exit else {
            panic!("{reaped:?}")
        };
        seen.insert((reaped.pid, code));
    }
    assert_eq!(seen, expected);
}

/// Some variable of the test process that no shell sets by itself.
fn inherited_var() -> String {
    std::env::vars()
        .map(|(k, _)| k)
        .find(|k| {
            !matches!(
                k.as_str(),
                "PATH" | "PWD" | "OLDPWD" | "SHLVL" | "_" | "IFS" | "PS1" | "PS2" | "PS4"
            )
        })
        .expect("the test process has some environment")
}

#[tokio::test]
async fn env_is_added_to_the_daemons() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("env");
    let mut s = sh(r#"env > "$1""#, &out);
    s.env.insert("TEND_TEST_ADDED".into(), "hello world".into());
    assert_eq!(run(&s).await, ExitInfo::Code(0));
    let env = read(&out);
    assert!(
        env.lines().any(|l| l == "TEND_TEST_ADDED=hello world"),
        "{env}"
    );
    let kept = format!("{}=", inherited_var());
    assert!(
        env.lines().any(|l| l.starts_with(&kept)),
        "{kept} missing from {env}"
    );
}

#[tokio::test]
async fn clear_env_starts_from_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("env");
    let mut s = sh(r#"env > "$1""#, &out);
    s.clear_env = true;
    s.env.insert("ONLY".into(), "1".into());
    // No PATH anywhere: `sh` is found on the default PATH.
    assert_eq!(run(&s).await, ExitInfo::Code(0));
    let env = read(&out);
    assert!(env.lines().any(|l| l == "ONLY=1"), "{env}");
    let dropped = format!("{}=", inherited_var());
    assert!(
        !env.lines().any(|l| l.starts_with(&dropped)),
        "{dropped} leaked into {env}"
    );
}

#[tokio::test]
async fn the_command_is_looked_up_on_the_childs_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let prog = dir.path().join("tend-test-prog");
    fs::write(&prog, "#!/bin/sh\nexit 7\n").expect("write");
    fs::set_permissions(&prog, fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut s = spec(&["tend-test-prog"]);
    s.env.insert(
        "PATH".into(),
        format!("/nonexistent:{}", dir.path().display()),
    );
    assert_eq!(run(&s).await, ExitInfo::Code(7));
}

#[tokio::test]
async fn cwd_is_entered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = spec(&["sh", "-c", "pwd -P > out"]);
    s.cwd = Some(dir.path().to_path_buf());
    assert_eq!(run(&s).await, ExitInfo::Code(0));
    let canonical = dir.path().canonicalize().expect("canonicalize");
    assert_eq!(
        read(&dir.path().join("out")).trim_end(),
        canonical.to_str().expect("utf-8")
    );
}

#[tokio::test]
async fn umask_is_applied() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("umask");
    let mut s = sh(r#"umask > "$1""#, &out);
    s.umask = Some(0o027);
    assert_eq!(run(&s).await, ExitInfo::Code(0));
    assert_eq!(read(&out).trim_end(), "0027");
}

#[tokio::test]
async fn unrunnable_programs_are_permanent_errors_naming_them() {
    let err = spawn_err(&spec(&["tend-no-such-command"]));
    assert!(err.permanent);
    assert!(
        err.message
            .starts_with("command \"tend-no-such-command\" not found on PATH ("),
        "{}",
        err.message
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let plain = dir.path().join("plain");
    fs::write(&plain, "#!/bin/sh\n").expect("write");
    fs::set_permissions(&plain, fs::Permissions::from_mode(0o644)).expect("chmod");
    let err = spawn_err(&spec(&[plain.to_str().expect("utf-8")]));
    assert!(err.permanent);
    assert!(
        err.message.contains(plain.to_str().expect("utf-8"))
            && err.message.ends_with("is not executable"),
        "{}",
        err.message
    );

    let err = spawn_err(&spec(&[dir.path().to_str().expect("utf-8")]));
    assert!(
        err.permanent && err.message.ends_with("is a directory"),
        "{}",
        err.message
    );

    // Only exec can tell: the interpreter named by #! is missing (ENOENT).
    let script = dir.path().join("script");
    fs::write(&script, "#!/nonexistent/interpreter\n").expect("write");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");
    let err = spawn_err(&spec(&[script.to_str().expect("utf-8")]));
    assert!(err.permanent, "{err:?}");
    assert!(
        err.message.starts_with(&format!(
            "cannot start {:?}: ",
            script.to_str().expect("utf-8")
        )),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn missing_cwd_is_a_permanent_error_naming_it() {
    let mut s = spec(&["true"]);
    s.cwd = Some("/nonexistent/tend-cwd".into());
    let err = spawn_err(&s);
    assert!(err.permanent);
    assert_eq!(
        err.message,
        "working directory \"/nonexistent/tend-cwd\" does not exist"
    );
}

#[tokio::test]
async fn unknown_user_and_group_are_permanent_errors_naming_them() {
    let mut s = spec(&["true"]);
    s.user = Some("tend-no-such-user".into());
    let err = spawn_err(&s);
    assert!(err.permanent);
    assert_eq!(err.message, "unknown user \"tend-no-such-user\"");

    let mut s = spec(&["true"]);
    s.unix_group = Some("tend-no-such-group".into());
    let err = spawn_err(&s);
    assert!(err.permanent);
    assert_eq!(err.message, "unknown group \"tend-no-such-group\"");
}

#[tokio::test]
async fn each_child_leads_its_own_process_group() {
    let (mut launcher, mut rx) = launcher();
    let pid = launcher
        .spawn(&spec(&["sleep", "1000"]))
        .expect("spawn")
        .pid;
    let (_, pgrp) = proc_stat(pid).expect("running");
    assert_eq!(u32::try_from(pgrp).ok(), Some(pid));
    assert!(launcher.group_alive(pid));
    launcher
        .kill(KillTarget::Process(pid), Signal::KILL)
        .expect("kill");
    assert_eq!(exit_of(&mut rx, pid).await, ExitInfo::Signal(Signal::KILL));
}

#[tokio::test]
async fn inherited_descriptors_do_not_leak() {
    let dir = tempfile::tempdir().expect("tempdir");
    let held = dir.path().join("held");
    fs::write(&held, "x").expect("write");
    let cpath = CString::new(held.as_os_str().as_bytes()).expect("no NUL");
    // Deliberately without O_CLOEXEC, as careless code (or a C library) would.
    // SAFETY: a valid C string; the fd is owned by `_held` from here on.
    let opened = unsafe { libc::open(cpath.as_ptr(), libc::O_RDONLY) };
    assert!(opened >= 0, "open: {}", std::io::Error::last_os_error());
    // SAFETY: `opened` was just opened and nothing else owns it.
    let opened = unsafe { OwnedFd::from_raw_fd(opened) };
    // Well above the fd ls opens itself, and still not close-on-exec.
    // SAFETY: F_DUPFD on a valid fd; the result is owned by `_held`.
    let fd = unsafe { libc::fcntl(opened.as_raw_fd(), libc::F_DUPFD, 64) };
    assert!(fd >= 64, "F_DUPFD: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` was just created and nothing else owns it.
    let _held = unsafe { OwnedFd::from_raw_fd(fd) };
    drop(opened);

    let out = dir.path().join("fds");
    assert_eq!(
        run(&sh(r#"ls /proc/self/fd > "$1""#, &out)).await,
        ExitInfo::Code(0)
    );
    let fds: Vec<i32> = read(&out)
        .lines()
        .map(|l| l.parse().expect("fd number"))
        .collect();
    assert!(!fds.contains(&fd), "fd {fd} leaked into the child: {fds:?}");
    // 0, 1, 2 and the directory ls reads.
    assert!(fds.iter().all(|&n| n <= 3), "{fds:?}");
}

#[tokio::test]
async fn killing_the_group_reaches_grandchildren() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pidfile = dir.path().join("grandchild");
    let (mut launcher, mut rx) = launcher();
    let pid = launcher
        .spawn(&sh(r#"sleep 1000 & echo $! > "$1"; wait"#, &pidfile))
        .expect("spawn")
        .pid;

    let mut grandchild = 0;
    poll_until("the grandchild's pid", || {
        let text = fs::read_to_string(&pidfile).unwrap_or_default();
        grandchild = text.trim_end().parse().unwrap_or(0);
        text.ends_with('\n') && grandchild > 0
    })
    .await;
    let (_, pgrp) = proc_stat(grandchild).expect("grandchild running");
    assert_eq!(
        u32::try_from(pgrp).ok(),
        Some(pid),
        "the grandchild is in the child's group"
    );
    assert!(launcher.group_alive(pid));

    launcher
        .kill(KillTarget::Group(pid), Signal::KILL)
        .expect("killpg");
    assert_eq!(exit_of(&mut rx, pid).await, ExitInfo::Signal(Signal::KILL));
    // Re-parented to init (or a subreaper), which reaps it; dead either way.
    poll_until("the grandchild to die", || {
        proc_stat(grandchild).is_none_or(|(state, _)| matches!(state, 'Z' | 'X'))
    })
    .await;
    poll_until("the group to empty", || !launcher.group_alive(pid)).await;
}

#[tokio::test]
async fn signalling_nothing_is_fine_and_bad_pids_are_refused() {
    let (mut launcher, _rx) = launcher();
    // Above pid_max: no process can have it.
    let pid_max: u32 = read(Path::new("/proc/sys/kernel/pid_max"))
        .trim()
        .parse()
        .expect("pid_max");
    let absent = pid_max + 1;
    launcher
        .kill(KillTarget::Process(absent), Signal::TERM)
        .expect("ESRCH is fine");
    launcher
        .kill(KillTarget::Group(absent), Signal::TERM)
        .expect("ESRCH is fine");
    assert!(!launcher.group_alive(absent));

    // 0 and values that wrap to negative pids would mean "our own group" or
    // "everyone"; they must never reach kill(2).
    for bad in [0, u32::MAX, 1 << 31] {
        for target in [KillTarget::Process(bad), KillTarget::Group(bad)] {
            let err = launcher.kill(target, Signal::TERM).expect_err("refused");
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        }
        assert!(!launcher.group_alive(bad));
    }
}

#[tokio::test]
async fn other_children_of_the_embedding_program_are_left_alone() {
    // Spawned by "the embedding program", not by tend.
    let mut theirs = std::process::Command::new("true").spawn().expect("spawn");
    let their_pid = theirs.id();
    poll_until("their child to exit", || {
        proc_stat(their_pid).is_some_and(|(s, _)| s == 'Z')
    })
    .await;

    // The reaper's drain passes (at start and on our child's SIGCHLD) run after
    // their child has exited; it must still be a zombie afterwards.
    assert_eq!(run(&spec(&["true"])).await, ExitInfo::Code(0));
    assert_eq!(
        proc_stat(their_pid).map(|(s, _)| s),
        Some('Z'),
        "their child was reaped by tend"
    );

    #[expect(
        clippy::disallowed_methods,
        reason = "the embedding program reaps its own child"
    )]
    let status = theirs
        .wait()
        .expect("their child is still theirs to wait for");
    assert!(status.success());
}

#[tokio::test]
async fn forget_drops_the_pid() {
    let (mut launcher, _rx) = launcher();
    let pid = launcher
        .spawn(&spec(&["sleep", "1000"]))
        .expect("spawn")
        .pid;
    let tracked = |l: &UnixLauncher| {
        let shared = super::lock(&l.shared);
        shared.own.contains(&pid) || shared.pidfds.contains_key(&pid)
    };
    assert!(tracked(&launcher));
    launcher.forget(pid);
    assert!(!tracked(&launcher));
    // Not ours any more: kill it and leave it to the test process's end.
    launcher
        .kill(KillTarget::Process(pid), Signal::KILL)
        .expect("kill");
}

const REAP_ALL_HELPER: &str = "TEND_TEST_REAP_ALL_HELPER";

/// `reap_all` reaps every child of the process, so it runs in a process of its
/// own: this test binary again, running only [`reap_all_helper`].
#[tokio::test]
async fn reap_all_reaps_orphaned_grandchildren() {
    let exe = std::env::current_exe().expect("current_exe");
    let mut s = spec(&[
        exe.to_str().expect("utf-8 path"),
        "--exact",
        "unix::tests::reap_all_helper",
        "--ignored",
        "--test-threads=1",
    ]);
    s.env.insert(REAP_ALL_HELPER.into(), "1".into());
    assert_eq!(
        run(&s).await,
        ExitInfo::Code(0),
        "the helper process failed; see its output above"
    );
}

#[tokio::test]
#[ignore = "runs in a process of its own, started by reap_all_reaps_orphaned_grandchildren"]
async fn reap_all_helper() {
    // Run directly (`--include-ignored`), it has nothing to check, and must
    // not turn a test process shared with other tests into a reap-all reaper.
    if std::env::var_os(REAP_ALL_HELPER).is_none() {
        return;
    }
    let (mut launcher, mut rx) = UnixLauncher::new(true).expect("launcher");
    assert_eq!(nix::sys::prctl::get_child_subreaper(), Ok(true));

    let dir = tempfile::tempdir().expect("tempdir");
    let pidfile = dir.path().join("grandchild");
    // The subshell waits for its parent to be gone (had it exited first, the
    // parent could reap it), so it is orphaned, re-parented to us, and must be
    // reaped and reported like any child. `$$` is the parent shell's pid.
    let script = r#"(while kill -0 $$ 2>/dev/null; do sleep 0.01; done; exit 9) & echo $! > "$1""#;
    let pid = launcher.spawn(&sh(script, &pidfile)).expect("spawn").pid;
    let (parent, orphan) = tokio::time::timeout(DEADLINE, async {
        let mut exits = std::collections::HashMap::new();
        loop {
            let reaped = rx.recv().await.expect("reaper");
            exits.insert(reaped.pid, reaped.exit);
            if let Some(&parent) = exits.get(&pid) {
                // Written before the parent exited.
                let orphan: u32 = read(&pidfile).trim_end().parse().expect("orphan pid");
                if let Some(&orphan) = exits.get(&orphan) {
                    return (parent, orphan);
                }
            }
        }
    })
    .await
    .expect("parent and orphan reaped in time");
    assert_eq!(parent, ExitInfo::Code(0));
    assert_eq!(orphan, ExitInfo::Code(9));

    // Many direct children exiting at once: each reported exactly once, by
    // whichever of the pidfd and the `waitpid(-1)` paths got there first.
    let mut want = std::collections::HashMap::new();
    for code in 0..30 {
        let s = spec(&["sh", "-c", &format!("exit {code}")]);
        want.insert(launcher.spawn(&s).expect("spawn").pid, code);
    }
    let mut seen = std::collections::HashSet::new();
    let check = |r: Reaped, seen: &mut std::collections::HashSet<u32>| {
        assert!(seen.insert(r.pid), "pid {} reported twice", r.pid);
        if let Some(&code) = want.get(&r.pid) {
            assert_eq!(r.exit, ExitInfo::Code(code));
        }
    };
    while !want.keys().all(|p| seen.contains(p)) {
        let r = tokio::time::timeout(DEADLINE, rx.recv())
            .await
            .expect("in time")
            .expect("reaper");
        check(r, &mut seen);
    }
    // A late duplicate would arrive before the exit of a child started now.
    let last = launcher.spawn(&spec(&["true"])).expect("spawn").pid;
    loop {
        let r = tokio::time::timeout(DEADLINE, rx.recv())
            .await
            .expect("in time")
            .expect("reaper");
        let done = r.pid == last;
        check(r, &mut seen);
        if done {
            break;
        }
    }
}

#[tokio::test]
async fn a_child_reaped_by_the_embedding_program_is_reported_once_as_unknown() {
    let (mut launcher, mut rx) = launcher();
    // Stop the child so it cannot exit before the "embedding program" waits.
    let pid = launcher
        .spawn(&spec(&["sleep", "1000"]))
        .expect("spawn")
        .pid;
    let raw = libc::pid_t::try_from(pid).expect("pid");
    // SAFETY: plain syscalls on our own child.
    unsafe {
        libc::kill(raw, libc::SIGKILL);
        let mut status = 0;
        // The embedding program's own wait steals the exit status.
        assert_eq!(libc::waitpid(raw, &mut status, 0), raw);
    }
    let r = tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .expect("in time")
        .expect("reaper");
    assert_eq!((r.pid, r.exit), (pid, ExitInfo::Code(-1)));
    // Nothing more about it: the next report is another child's.
    let next = launcher.spawn(&spec(&["true"])).expect("spawn").pid;
    let r = tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .expect("in time")
        .expect("reaper");
    assert_eq!(r.pid, next);
}

/// Runs `id -u`, `id -g` and `id -G` in a child with `user` / `unix_group`.
async fn ids_as(user: Option<&str>, group: Option<&str>) -> (u32, u32, BTreeSet<u32>) {
    let dir = tempfile::tempdir().expect("tempdir");
    // Writable by whoever the child runs as.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    let mut s = sh(
        r#"id -u > "$1/u"; id -g > "$1/g"; id -G > "$1/G""#,
        dir.path(),
    );
    s.user = user.map(str::to_string);
    s.unix_group = group.map(str::to_string);
    assert_eq!(run(&s).await, ExitInfo::Code(0));
    let num = |name: &str| -> u32 { read(&dir.path().join(name)).trim().parse().expect("id") };
    let groups = read(&dir.path().join("G"))
        .split_whitespace()
        .map(|g| g.parse().expect("gid"))
        .collect();
    (num("u"), num("g"), groups)
}

/// Whether the test runs as root, which switching users needs; if not, the
/// test fails under CI and is a counted skip elsewhere.
fn is_root() -> bool {
    tend_testkit::require_root("switching users")
}

#[tokio::test]
async fn user_switch_keeps_the_users_groups() {
    if !is_root() {
        return;
    }
    let nobody = nix::unistd::User::from_name("nobody")
        .expect("lookup")
        .expect("user nobody exists");
    let cname = CString::new("nobody").expect("no NUL");
    let expected: BTreeSet<u32> = nix::unistd::getgrouplist(&cname, nobody.gid)
        .expect("getgrouplist")
        .into_iter()
        .map(|g| g.as_raw())
        .collect();

    let (uid, gid, groups) = ids_as(Some("nobody"), None).await;
    assert_eq!(uid, nobody.uid.as_raw());
    assert_eq!(gid, nobody.gid.as_raw());
    assert_eq!(
        groups, expected,
        "root's groups must be gone, nobody's kept"
    );

    // A numeric uid works the same; unix_group replaces the primary group.
    let (uid, gid, groups) = ids_as(Some(&nobody.uid.to_string()), Some("4242")).await;
    assert_eq!((uid, gid), (nobody.uid.as_raw(), 4242));
    let mut with_primary = expected.clone();
    with_primary.insert(4242);
    assert_eq!(groups, with_primary);
}

#[tokio::test]
async fn group_only_switch_drops_the_daemons_groups() {
    if !is_root() {
        return;
    }
    let (uid, gid, groups) = ids_as(None, Some("4243")).await;
    assert_eq!((uid, gid), (0, 4243));
    assert_eq!(groups, BTreeSet::from([4243]));
}

#[tokio::test]
async fn ignored_signals_are_not_inherited() {
    // As if the daemon had been started with `nohup` or `&`: it ignores a
    // signal. Nothing else in this test binary uses SIGVTALRM.
    let vtalrm: Signal = "VTALRM".parse().expect("signal");
    // SAFETY: setting a disposition to SIG_IGN installs no handler code.
    unsafe { libc::signal(vtalrm.number(), libc::SIG_IGN) };
    let (mut launcher, mut rx) = launcher();
    let pid = launcher
        .spawn(&spec(&["sleep", "1000"]))
        .expect("spawn")
        .pid;
    launcher
        .kill(KillTarget::Process(pid), vtalrm)
        .expect("kill");
    let exit = tokio::time::timeout(DEADLINE, exit_of(&mut rx, pid)).await;
    if exit.is_err() {
        launcher
            .kill(KillTarget::Process(pid), Signal::KILL)
            .expect("kill");
    }
    assert_eq!(
        exit.ok(),
        Some(ExitInfo::Signal(vtalrm)),
        "the child ignored SIGVTALRM like its parent"
    );
}

const PDEATHSIG_HELPER: &str = "TEND_TEST_PDEATHSIG_HELPER";

/// A child dies with the daemon: the helper process spawns `sleep`, records
/// its pid and exits without stopping it.
#[tokio::test]
async fn children_die_with_the_daemon() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pidfile = dir.path().join("sleep");
    let exe = std::env::current_exe().expect("current_exe");
    let mut s = spec(&[
        exe.to_str().expect("utf-8 path"),
        "--exact",
        "unix::tests::pdeathsig_helper",
        "--ignored",
        "--test-threads=1",
    ]);
    s.env.insert(
        PDEATHSIG_HELPER.into(),
        pidfile.to_str().expect("utf-8").into(),
    );
    assert_eq!(
        run(&s).await,
        ExitInfo::Code(0),
        "the helper process failed; see its output above"
    );
    let orphan: u32 = read(&pidfile).trim_end().parse().expect("pid");
    poll_until("the daemon's child to die with it", || {
        proc_stat(orphan).is_none_or(|(state, _)| matches!(state, 'Z' | 'X'))
    })
    .await;
}

#[tokio::test]
#[ignore = "runs in a process of its own, started by children_die_with_the_daemon"]
async fn pdeathsig_helper() {
    // Run directly, it has nothing to check (and must not exit the test process).
    let Some(pidfile) = std::env::var_os(PDEATHSIG_HELPER) else {
        return;
    };
    let (mut launcher, _rx) = launcher();
    let pid = launcher
        .spawn(&spec(&["sleep", "1000"]))
        .expect("spawn")
        .pid;
    fs::write(pidfile, format!("{pid}\n")).expect("write pid");
    // Exit like a crashing daemon: no stop, no cleanup.
    std::process::exit(0);
}

#[test]
fn new_outside_a_runtime_is_an_error() {
    let err = UnixLauncher::new(false).expect_err("no runtime");
    assert!(err.to_string().contains("tokio runtime"), "{err}");
}

const UNPRIVILEGED_HELPER: &str = "TEND_TEST_UNPRIVILEGED_HELPER";

/// A daemon that is not root: this test binary again, run as `nobody`.
#[tokio::test]
async fn an_unprivileged_daemon_can_only_be_itself() {
    if !is_root() {
        return;
    }
    let exe = std::env::current_exe().expect("current_exe");
    let mut s = spec(&[
        exe.to_str().expect("utf-8 path"),
        "--exact",
        "unix::tests::unprivileged_helper",
        "--ignored",
        "--test-threads=1",
    ]);
    s.user = Some("nobody".into());
    s.cwd = Some("/".into());
    s.env.insert(UNPRIVILEGED_HELPER.into(), "1".into());
    assert_eq!(
        run(&s).await,
        ExitInfo::Code(0),
        "the helper process failed; see its output above"
    );
}

#[tokio::test]
#[ignore = "runs in a process of its own, started by an_unprivileged_daemon_can_only_be_itself"]
async fn unprivileged_helper() {
    if std::env::var_os(UNPRIVILEGED_HELPER).is_none() {
        return;
    }
    let me = nix::unistd::geteuid();
    assert!(!me.is_root(), "runs as nobody");

    let mut s = spec(&["true"]);
    s.user = Some("root".into());
    let err = spawn_err(&s);
    assert!(err.permanent, "{err:?}");
    assert!(
        err.message
            .starts_with("cannot run as user \"root\" (uid 0): tend runs as uid "),
        "{}",
        err.message
    );

    let mut s = spec(&["true"]);
    s.unix_group = Some("0".into());
    let err = spawn_err(&s);
    assert!(
        err.permanent && err.message.contains("only root can switch groups"),
        "{}",
        err.message
    );

    // Its own user is fine: no setgroups (EPERM), setgid/setuid to itself.
    let mut s = spec(&["true"]);
    s.user = Some(me.to_string());
    assert_eq!(run(&s).await, ExitInfo::Code(0));
}

/// Names the calling thread `name` until dropped. A child that never reached
/// `execve` (or whose exec failed) keeps the name of the thread that cloned it,
/// so the test can tell its own failed children apart from the zombies other
/// tests leave behind: plain `cargo test` runs the tests of this binary as
/// threads of one process, which is the parent of all their children.
struct ThreadName(CString);

impl ThreadName {
    fn set(name: &str) -> ThreadName {
        let old = nix::sys::prctl::get_name().expect("thread name");
        let new = CString::new(name).expect("no NUL");
        nix::sys::prctl::set_name(&new).expect("set thread name");
        ThreadName(old)
    }
}

impl Drop for ThreadName {
    fn drop(&mut self) {
        let _ = nix::sys::prctl::set_name(&self.0);
    }
}

/// Whether this process has a zombie child named `comm` (see [`ThreadName`])
/// that nobody reaped.
fn has_zombie_child_named(comm: &str) -> bool {
    let me = std::process::id();
    let Ok(entries) = fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|e| {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            return false;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split at the
        // first '(' and the last ')'.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            return false;
        };
        let name = head.split_once('(').map_or("", |(_, n)| n);
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        let ppid = fields.next().and_then(|p| p.parse::<u32>().ok());
        name == comm && state == Some("Z") && ppid == Some(me)
    })
}

#[tokio::test]
async fn a_failed_exec_is_reaped_and_named() {
    // The file passes every check the parent makes (exists, executable), so
    // only execve itself can fail: ENOEXEC is not retried by exec for a file
    // without #! (execve, unlike execvp, never falls back to /bin/sh).
    let dir = tempfile::tempdir().expect("tempdir");
    let junk = dir.path().join("junk");
    fs::write(&junk, [0u8, 1, 2, 3, 4, 5, 6, 7]).expect("write");
    fs::set_permissions(&junk, fs::Permissions::from_mode(0o755)).expect("chmod");
    let (mut launcher, _rx) = launcher();
    let name = ThreadName::set("tend-failexec");
    for _ in 0..3 {
        let err = launcher
            .spawn(&spec(&[junk.to_str().expect("utf-8")]))
            .expect_err("exec fails");
        assert!(err.permanent, "{err:?}");
        assert!(
            err.message.contains("not a binary this system can run"),
            "{}",
            err.message
        );
    }
    assert!(
        !has_zombie_child_named("tend-failexec"),
        "the children whose exec failed were not reaped"
    );
    // The check is not blind: a child cloned by this thread and not waited
    // for is seen (it only exits, which is all a forked child of a
    // multi-threaded process may do).
    // SAFETY: fork, then only `_exit` in the child; the parent waits for it.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        unsafe { libc::_exit(0) };
    }
    assert!(pid > 0, "fork: {}", std::io::Error::last_os_error());
    poll_until("an unreaped child to be seen", || {
        has_zombie_child_named("tend-failexec")
    })
    .await;
    // SAFETY: waits for the child forked above, ours alone.
    assert_eq!(unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) }, pid);
    drop(name);
    // And the launcher still works afterwards.
    let (mut launcher, mut rx) = (launcher, _rx);
    let pid = launcher.spawn(&spec(&["true"])).expect("spawn").pid;
    assert_eq!(exit_of(&mut rx, pid).await, ExitInfo::Code(0));
}

#[tokio::test]
async fn nul_bytes_in_arguments_or_environment_are_permanent_errors() {
    let err = spawn_err(&spec(&["true", "a\0b"]));
    assert!(err.permanent);
    assert_eq!(err.message, "argument 1 of the command contains a NUL byte");

    let mut s = spec(&["true"]);
    s.env.insert("TEND_X".into(), "a\0b".into());
    let err = spawn_err(&s);
    assert!(err.permanent);
    assert_eq!(
        err.message,
        "environment variable \"TEND_X\" contains a NUL byte"
    );

    let mut s = spec(&["true"]);
    s.env.insert("A=B".into(), "c".into());
    let err = spawn_err(&s);
    assert!(err.permanent);
    assert!(err.message.contains("\"A=B\""), "{}", err.message);
}

#[tokio::test]
async fn a_failing_setup_step_is_named() {
    if !is_root() {
        return;
    }
    // A directory only root may enter: the child changes to it after
    // becoming `nobody`, so the chdir fails there, in the child.
    let dir = tempfile::tempdir().expect("tempdir");
    let private = dir.path().join("private");
    fs::create_dir(&private).expect("mkdir");
    fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).expect("chmod");
    let mut s = spec(&["/bin/true"]);
    s.user = Some("nobody".into());
    s.cwd = Some(private.clone());
    let name = ThreadName::set("tend-failsetup");
    let err = spawn_err(&s);
    assert!(err.permanent, "{err:?}");
    assert!(
        err.message
            .contains("changing to the working directory: Permission denied"),
        "{}",
        err.message
    );
    assert!(
        !has_zombie_child_named("tend-failsetup"),
        "the child whose setup failed was not reaped"
    );
    drop(name);
}

/// The child runs in the daemon's memory until exec; other threads of the
/// process keep running meanwhile (an embedder's multi-threaded runtime).
/// Many spawns from several threads while others allocate must all work.
#[test]
fn spawning_from_a_multi_threaded_runtime_while_others_allocate() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (launcher, mut rx) = UnixLauncher::new(false).expect("launcher");
        let launcher = std::sync::Arc::new(std::sync::Mutex::new(launcher));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let churn: Vec<_> = (0..2)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut keep: Vec<Vec<u8>> = Vec::new();
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        keep.push(vec![7; 4096]);
                        if keep.len() > 256 {
                            keep.clear();
                        }
                    }
                })
            })
            .collect();
        let mut spawners = Vec::new();
        for t in 0..4 {
            let launcher = launcher.clone();
            spawners.push(tokio::spawn(async move {
                let mut pids = Vec::new();
                for i in 0..50 {
                    let s = spec(&["sh", "-c", &format!("exit {}", (t * 50 + i) % 7)]);
                    let pid = launcher.lock().expect("lock").spawn(&s).expect("spawn").pid;
                    pids.push((pid, (t * 50 + i) % 7));
                    tokio::task::yield_now().await;
                }
                pids
            }));
        }
        let mut want = std::collections::HashMap::new();
        for s in spawners {
            want.extend(s.await.expect("spawner"));
        }
        while !want.is_empty() {
            let got = tokio::time::timeout(DEADLINE, rx.recv())
                .await
                .expect("an exit in time")
                .expect("reaper alive");
            let code = want.remove(&got.pid).expect("one of ours");
            assert_eq!(got.exit, ExitInfo::Code(code));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for c in churn {
            c.join().expect("churn thread");
        }
    });
}
