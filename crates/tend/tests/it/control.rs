//! `tend start|stop|restart|signal|add|remove`.

use std::time::Duration;

use crate::harness::{Daemon, alive, wait_until};

const FLEET: &str = r#"
[group.workers]
processes = ["w1", "w2"]

[process.web]
command = "sleep 1000"
priority = 1

[process.w1]
command = "sleep 1000"

[process.w2]
command = "sleep 1000"
"#;

fn lines(s: &str) -> Vec<&str> {
    let mut v: Vec<&str> = s.lines().collect();
    v.sort_unstable();
    v
}

#[test]
fn start_stop_restart_by_name_glob_group_and_all() {
    let d = Daemon::start(FLEET);
    for n in ["web", "w1", "w2"] {
        assert_eq!(d.state(n), "running", "{n}");
    }

    let run = d.ok(&["stop", "w1"]);
    assert_eq!(run.stdout, "w1: stopped\n");
    assert_eq!(
        (d.state("w1"), d.state("w2")),
        ("stopped".into(), "running".into())
    );

    let run = d.ok(&["stop", "workers:*"]);
    assert_eq!(lines(&run.stdout), ["w1: already stopped", "w2: stopped"]);
    assert_eq!(d.state("web"), "running");

    let run = d.ok(&["start", "w*"]);
    assert_eq!(
        lines(&run.stdout),
        ["w1: started", "w2: started", "web: already running"]
    );

    let before: Vec<u32> = ["web", "w1", "w2"].iter().map(|n| d.pid(n)).collect();
    let run = d.ok(&["restart", "all"]);
    assert_eq!(
        lines(&run.stdout),
        ["w1: restarted", "w2: restarted", "web: restarted"]
    );
    for (n, old) in ["web", "w1", "w2"].iter().zip(before) {
        assert_ne!(d.pid(n), old, "{n} has a new pid");
        assert!(!alive(old), "{n}'s old pid {old} is gone");
    }

    let run = d.ok(&["stop", "all"]);
    // Reverse priority order: web (priority 1) stops last.
    assert_eq!(run.stdout.lines().last(), Some("web: stopped"), "{run}");
    assert!(d.status(&[]).iter().all(|p| p["state"] == "stopped"));
    let run = d.ok(&["start", "web", "workers:"]);
    assert_eq!(
        run.stdout.lines().next(),
        Some("web: started"),
        "priority order: {run}"
    );
}

#[test]
fn unknown_targets_fail_with_the_reason() {
    let d = Daemon::start(FLEET);
    let run = d.tend(&["stop", "ghost"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert_eq!(run.stderr.trim(), "error: no such process: ghost");
    let run = d.tend(&["restart", "web", "ghost-*"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert_eq!(run.stderr.trim(), "error: no process matches \"ghost-*\"");
    // Nothing was done: web kept its pid... and is still running.
    assert_eq!(d.state("web"), "running");
    let run = d.tend(&["start"]);
    assert_eq!(run.code, Some(2), "a pattern is required: {run}");
}

#[test]
fn signal_reaches_the_process() {
    let d = Daemon::start(
        r#"
[process.once]
command = "sleep 1000"
restart = "never"
"#,
    );
    let pid = d.pid("once");
    let run = d.ok(&["signal", "usr1", "once"]);
    assert_eq!(run.stdout, "once: sent USR1\n");
    wait_until("once to exit", Duration::from_secs(5), || {
        d.state("once") == "exited"
    });
    assert_eq!(
        d.proc("once")["last_exit"],
        serde_json::json!({"signal": "USR1"})
    );
    assert!(!alive(pid));
    let run = d.tend(&["signal", "HUP", "once"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert_eq!(run.stdout, "once: ERROR not running\n");
    let run = d.tend(&["signal", "NOPE", "once"]);
    assert_eq!(run.code, Some(2), "{run}");
    assert!(run.stderr.contains("unknown signal"), "{run}");
}

#[test]
fn add_then_remove() {
    let d = Daemon::start(FLEET);
    let cwd = d.dir.path().to_str().expect("utf-8 path").to_string();
    let run = d.ok(&[
        "add",
        "job",
        "--cwd",
        &cwd,
        "--env",
        "JOB=1",
        "--in-group",
        "workers",
        "--priority",
        "5",
        "--restart",
        "on-failure",
        "--stop-signal",
        "INT",
        "--stop-timeout",
        "2s",
        "--",
        "sh",
        "-c",
        "echo $JOB > job.out; exec sleep 1000",
    ]);
    assert_eq!(run.stdout, "job: added\n");
    let job = d.proc("job");
    assert_eq!(
        (job["state"].as_str(), job["group"].as_str()),
        (Some("running"), Some("workers")),
        "{job}"
    );
    let pid = d.pid("job");
    let out = d.dir.path().join("job.out");
    wait_until("job to write its file", Duration::from_secs(5), || {
        std::fs::read_to_string(&out).is_ok_and(|s| s == "1\n")
    });
    assert_eq!(d.status(&["workers:*"]).len(), 3);

    let run = d.tend(&["add", "job", "--", "true"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert_eq!(
        run.stderr.trim(),
        "error: a process named job already exists"
    );

    let run = d.ok(&["remove", "job"]);
    assert_eq!(run.stdout, "job: removed\n");
    assert!(!alive(pid), "removing stops the process");
    let run = d.tend(&["status", "job"]);
    assert_eq!(run.code, Some(1), "{run}");
    let run = d.tend(&["remove", "job"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stderr.contains("no such process: job"), "{run}");

    let run = d.ok(&["add", "later", "--no-autostart", "--", "sleep", "1000"]);
    assert_eq!(run.stdout, "later: added\n");
    assert_eq!(d.state("later"), "stopped");
    let run = d.tend(&["add", "bad/name", "--", "true"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stderr.contains("bad/name"), "{run}");
}
