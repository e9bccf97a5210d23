//! The cgroup layer on the machine's real cgroup2 mount (found as the
//! daemon finds it): grouping, `cgroup.kill`, `populated`, stats and
//! leftovers. Where no cgroup v2 is writable, each test says why and is
//! counted as skipped. Limits, which need controllers this machine may not
//! delegate, are checked against a fake tree in `cgroup.rs`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::cgroup::{self, CgroupMode, Cgroups};
use super::{LaunchOptions, UnixLauncher};
use crate::launcher::{KillTarget, Launcher};
use crate::model::name::Name;
use crate::model::resources::StatsSource;
use crate::model::signal::Signal;
use crate::model::spec::ProcessSpec;

const DEADLINE: Duration = Duration::from_secs(10);

/// A subtree name no other test (or test process) uses.
fn unique(what: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "tend-test-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Where cgroups can be made here, or why not (the test then skips).
fn usable() -> Result<(), String> {
    let name = unique("probe");
    match Cgroups::setup(&CgroupMode::Auto, &name) {
        (Some(cg), _) => {
            drop(cg);
            Ok(())
        }
        (None, st) => Err(st.problem.unwrap_or_else(|| "no cgroup".into())),
    }
}

macro_rules! require_cgroups {
    () => {
        let ok = usable();
        tend_testkit::require!(
            ok.is_ok(),
            "no writable cgroup v2 here: {}",
            ok.err().unwrap_or_default()
        );
    };
}

fn launcher(
    name: &str,
) -> (
    UnixLauncher,
    tokio::sync::mpsc::UnboundedReceiver<crate::Reaped>,
) {
    let mut o = LaunchOptions::new(false);
    o.cgroup = CgroupMode::Auto;
    o.cgroup_name = Some(name.to_string());
    UnixLauncher::with_options(o).expect("launcher")
}

fn sh(name: &str, script: &str, arg: &Path) -> ProcessSpec {
    ProcessSpec::new(
        Name::new(name).expect("name"),
        vec![
            "sh".into(),
            "-c".into(),
            script.into(),
            "sh".into(),
            arg.display().to_string(),
        ],
    )
}

/// The cgroup v2 path of `pid` (the `0::` line of /proc/PID/cgroup).
fn cgroup_of(pid: u32) -> Option<String> {
    let t = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    cgroup::own_cgroup(&t).map(str::to_string)
}

fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, r)| !r.trim_start().starts_with(['Z', 'X']))
    })
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn read_pid(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[tokio::test]
async fn a_daemon_that_left_its_group_is_in_the_cgroup_and_dies_with_it() {
    require_cgroups!();
    let name = unique("kill");
    let (mut l, _rx) = launcher(&name);
    let dir: PathBuf = l.cgroup_status().dir.clone().expect("a cgroup subtree");
    assert!(dir.ends_with(&name), "{}", dir.display());
    let tmp = tempfile::tempdir().expect("tempdir");
    let pidfile = tmp.path().join("stray");
    // A grandchild that daemonizes (its own session, so not in the group)
    // and shrugs off SIGTERM: only the cgroup finds it.
    let script =
        r#"setsid sh -c 'trap "" TERM; exec sleep 1234' & echo $! > "$1"; exec sleep 1235"#;
    let pid = l.spawn(&sh("web", script, &pidfile)).expect("spawn").pid;
    until("the stray's pid", || read_pid(&pidfile).is_some()).await;
    let stray = read_pid(&pidfile).expect("stray pid");
    until("the stray to exec sleep", || {
        fs::read_to_string(format!("/proc/{stray}/cmdline")).is_ok_and(|c| c.starts_with("sleep"))
    })
    .await;
    let leaf = dir.join("web.proc");
    let want = cgroup_of(std::process::id()).expect("own cgroup");
    for p in [pid, stray] {
        let cg = cgroup_of(p).expect("cgroup of a child");
        assert!(cg.ends_with(&format!("{name}/web.proc")), "{p} is in {cg}");
        assert!(
            cg.starts_with(want.trim_end_matches('/')),
            "{cg} under {want}"
        );
    }
    assert!(cgroup::populated(&leaf));

    // The stop signal reaches the group and the stray; the leader dies,
    // the stray ignores it: the group is still alive.
    l.kill(KillTarget::Group(pid), Signal::TERM).expect("TERM");
    until("the leader to die", || !alive(pid)).await;
    assert!(alive(stray), "the stray ignores TERM");
    assert!(l.group_alive(pid), "populated while the stray lives");

    // A stop's SIGKILL is cgroup.kill: the stray dies too, and the group
    // is empty ("stopped" means populated 0).
    l.kill(KillTarget::Group(pid), Signal::KILL).expect("KILL");
    until("the stray to die", || !alive(stray)).await;
    until("the cgroup to empty", || !l.group_alive(pid)).await;

    drop(l);
    until("the subtree to be removed", || !dir.exists()).await;
}

/// A child starts in its cgroup both ways: cloned into it (`clone3`,
/// `CLONE_INTO_CGROUP`), and, on a kernel without that, by writing to
/// `cgroup.procs` as its first step.
#[tokio::test]
async fn a_child_starts_in_its_cgroup_with_clone3_and_without() {
    require_cgroups!();
    let name = unique("join");
    let (mut l, _rx) = launcher(&name);
    let tmp = tempfile::tempdir().expect("tempdir");
    for (process, clone3) in [("into", true), ("moved", false)] {
        super::spawn::clone3::set_usable(clone3);
        let pid = l
            .spawn(&sh(process, "exec sleep 1236", tmp.path()))
            .expect("spawn")
            .pid;
        let used = super::spawn::clone3::usable();
        super::spawn::clone3::set_usable(true);
        if clone3 && cfg!(target_arch = "x86_64") {
            assert!(used, "this kernel (5.7 or later) has CLONE_INTO_CGROUP");
        }
        let cg = cgroup_of(pid).expect("cgroup of a child");
        assert!(
            cg.ends_with(&format!("{name}/{process}.proc")),
            "{pid} is in {cg}"
        );
        l.kill(KillTarget::Group(pid), Signal::KILL).expect("kill");
        until("the cgroup to empty", || !l.group_alive(pid)).await;
    }
}

#[tokio::test]
async fn stats_come_from_the_cgroup() {
    require_cgroups!();
    let name = unique("stats");
    let (mut l, _rx) = launcher(&name);
    let tmp = tempfile::tempdir().expect("tempdir");
    let spec = sh(
        "busy",
        r#"sleep 30 & i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; exec sleep 31"#,
        tmp.path(),
    );
    let pid = l.spawn(&spec).expect("spawn").pid;
    let mut last = None;
    until("some CPU time", || {
        last = l.stats(pid);
        last.as_ref()
            .is_some_and(|s| s.cpu_usec > 10_000 && s.processes == Some(2))
    })
    .await;
    let st = last.expect("stats");
    assert_eq!(st.source, StatsSource::Cgroup);
    assert!(st.memory_bytes.is_some_and(|m| m > 0), "{st:?}");
    l.kill(KillTarget::Group(pid), Signal::KILL).expect("kill");
    until("the cgroup to empty", || !l.group_alive(pid)).await;
}

#[tokio::test]
async fn the_next_run_kills_what_a_dead_one_left() {
    require_cgroups!();
    let name = unique("left");
    let tmp = tempfile::tempdir().expect("tempdir");
    let pidfile = tmp.path().join("pid");
    let stray = {
        let (mut l, _rx) = launcher(&name);
        l.spawn(&sh(
            "old",
            r#"setsid sleep 1236 & echo $! > "$1"; exec sleep 1237"#,
            &pidfile,
        ))
        .expect("spawn");
        until("the stray's pid", || read_pid(&pidfile).is_some()).await;
        let stray = read_pid(&pidfile).expect("pid");
        // As if the daemon were killed: nothing of it runs to clean up.
        std::mem::forget(l);
        stray
    };
    assert!(alive(stray));
    let (l, _rx) = launcher(&name);
    let st = l.cgroup_status().clone();
    assert_eq!(st.leftovers_killed, 2, "{st:?}");
    until("the leftover to die", || !alive(stray)).await;
}

#[tokio::test]
async fn a_retired_process_loses_its_cgroup_before_the_subtree_goes() {
    require_cgroups!();
    let name = unique("retire");
    let (mut l, _rx) = launcher(&name);
    let dir: PathBuf = l.cgroup_status().dir.clone().expect("a cgroup subtree");
    let tmp = tempfile::tempdir().expect("tempdir");
    // Two runs of one process: the second run's leader is the one known.
    let first = l
        .spawn(&sh("one", "exit 0", tmp.path()))
        .expect("spawn")
        .pid;
    until("the first run to end", || !l.group_alive(first)).await;
    l.forget(first);
    let second = l
        .spawn(&sh("one", "exec sleep 1238", tmp.path()))
        .expect("spawn")
        .pid;
    let other = l
        .spawn(&sh("two", "exec sleep 1239", tmp.path()))
        .expect("spawn")
        .pid;
    assert!(l.group_alive(second));
    assert!(
        l.stats(second).is_some(),
        "the second run's leader has the cgroup"
    );
    assert!(
        l.stats(first).is_none(),
        "the first run's leader no longer does"
    );
    l.kill(KillTarget::Group(second), Signal::KILL)
        .expect("kill");
    until("one's cgroup to empty", || !l.group_alive(second)).await;
    l.retire(&Name::new("one").expect("name"));
    until("one's cgroup to be removed", || {
        !dir.join("one.proc").exists()
    })
    .await;
    assert!(dir.join("two.proc").exists(), "only the retired one goes");
    assert!(l.group_alive(other));
    drop(l);
    until("the subtree to be removed", || !dir.exists()).await;
    assert!(!alive(other));
}
