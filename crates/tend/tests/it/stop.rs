//! Stopping: stop timeouts, process groups, and a daemon that dies.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::harness::{Daemon, alive, children, cmdline, gone, wait_until};

#[test]
fn a_process_ignoring_sigterm_is_killed_after_the_stop_timeout() {
    let d = Daemon::start(
        r#"
[process.stubborn]
# The shell ignores TERM, and an ignored signal stays ignored across exec.
command = ["sh", "-c", "trap '' TERM; exec sleep 1000"]

[process.stubborn.stop]
timeout = "1s"
"#,
    );
    let pid = d.pid("stubborn");
    // Only once `sleep` runs has the trap been set.
    wait_until("the trap to be set", Duration::from_secs(5), || {
        cmdline(pid).starts_with("sleep")
    });
    let t = Instant::now();
    let run = d.ok(&["stop", "stubborn"]);
    let took = t.elapsed();
    assert_eq!(run.stdout, "stubborn: stopped\n");
    assert!(
        took >= Duration::from_secs(1),
        "stop took {took:?}, before the timeout"
    );
    assert!(took < Duration::from_secs(5), "stop took {took:?}");
    assert!(!alive(pid), "the process is gone");
    assert_eq!(
        d.proc("stubborn")["last_exit"],
        serde_json::json!({"signal": "KILL"})
    );
    assert!(
        d.log_text().contains("did not stop in time"),
        "{}",
        d.log_text()
    );
}

#[test]
fn a_grandchild_dies_with_its_process_group() {
    let d = Daemon::start(
        r#"
[process.parent]
command = ["sh", "-c", "sleep 1000 & wait"]
"#,
    );
    let pid = d.pid("parent");
    let mut kids = Vec::new();
    // Wait for the exec: between fork and exec the child still shows sh's
    // command line.
    wait_until(
        "the grandchild to exec sleep",
        Duration::from_secs(5),
        || {
            kids = children(pid);
            kids.len() == 1 && cmdline(kids[0]).starts_with("sleep")
        },
    );
    let grandchild = kids[0];
    d.ok(&["stop", "parent"]);
    // `stop` returns only once the whole group is gone (and reaped).
    assert!(
        !alive(grandchild),
        "stop returned while the grandchild lived"
    );
    assert!(!alive(pid));
}

#[test]
fn sigkill_of_the_daemon_leaves_no_child_and_a_new_daemon_takes_over() {
    let config = r#"
[process.a]
command = "sleep 1000"

[process.b]
command = ["sh", "-c", "exec sleep 1000"]
"#;
    let mut d = Daemon::start(config);
    let pids = [d.pid("a"), d.pid("b")];
    d.signal_and_wait(Signal::SIGKILL, Duration::from_secs(5));
    wait_until(
        "the children to die with the daemon",
        Duration::from_secs(5),
        || pids.iter().all(|&p| !alive(p)),
    );
    assert!(!gone(&d.socket), "a killed daemon leaves its socket file");

    // The stale socket does not stop the next daemon.
    let env = std::mem::replace(&mut d.env, crate::harness::TestEnv::new(""));
    drop(d);
    let d = Daemon::start_in(env);
    assert_eq!(d.state("a"), "running");
}

#[test]
fn sigterm_stops_everything_and_removes_the_socket() {
    let mut d = Daemon::start(
        r#"
[process.first]
command = "sleep 1000"
priority = 1

[process.second]
command = "sleep 1000"
priority = 2
"#,
    );
    let pids = [d.pid("first"), d.pid("second")];
    let status = d.signal_and_wait(Signal::SIGTERM, Duration::from_secs(10));
    assert!(status.success(), "daemon exit: {status}\n{}", d.log_text());
    assert!(pids.iter().all(|&p| !alive(p)));
    assert!(gone(&d.socket), "the socket file is removed");
    let log = d.log_text();
    let stopped = |n: &str| {
        log.find(&format!("{n}: stopped\n"))
            .unwrap_or_else(|| panic!("{n} not stopped:\n{log}"))
    };
    assert!(
        stopped("second") < stopped("first"),
        "reverse priority order:\n{log}"
    );
}

/// `stop.command` runs first, with `MAINPID`; the stop signal follows it.
#[test]
fn the_stop_command_runs_with_mainpid_before_the_signal() {
    let d = Daemon::start(
        r#"
[process.app]
command = ["sh", "-c", "trap 'echo term >> signals; exit 0' TERM; while :; do sleep 0.05; done"]

[process.app.stop]
command = ["sh", "-c", "echo $MAINPID ${MAINPID} > mainpid; [ ! -e signals ] && echo before >> order"]
timeout = "5s"
"#,
    );
    let pid = d.pid("app");
    let dir = d.dir.path().to_path_buf();
    let run = d.ok(&["stop", "app"]);
    assert_eq!(run.stdout, "app: stopped\n");
    let mainpid = std::fs::read_to_string(dir.join("mainpid")).expect("the stop command ran");
    assert_eq!(mainpid.trim(), format!("{pid} {pid}"));
    // It ran before the signal, and the signal came after it.
    assert_eq!(
        std::fs::read_to_string(dir.join("order")).expect("order"),
        "before\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("signals")).expect("the signal came"),
        "term\n"
    );
    assert_eq!(d.proc("app")["last_exit"], serde_json::json!({"code": 0}));
}

/// A stop command that hangs is killed when the stop timeout is over, and the
/// stop goes on to the signal.
#[test]
fn a_hanging_stop_command_is_killed_at_the_timeout() {
    let d = Daemon::start(
        r#"
[process.app]
command = ["sh", "-c", "trap 'echo term >> signals; exit 0' TERM; while :; do sleep 0.05; done"]

[process.app.stop]
command = ["sh", "-c", "echo $$$$ > cmd.pid; exec sleep 1000"]
timeout = "1s"
"#,
    );
    let dir = d.dir.path().to_path_buf();
    let t = Instant::now();
    d.ok(&["stop", "app"]);
    let took = t.elapsed();
    assert!(took >= Duration::from_secs(1), "stop took {took:?}");
    assert!(took < Duration::from_secs(5), "stop took {took:?}");
    let cmd: u32 = std::fs::read_to_string(dir.join("cmd.pid"))
        .expect("the stop command ran")
        .trim()
        .parse()
        .expect("pid");
    wait_until(
        "the stop command to be gone",
        Duration::from_secs(5),
        || !alive(cmd),
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("signals")).expect("the signal came"),
        "term\n"
    );
    assert_eq!(d.proc("app")["last_exit"], serde_json::json!({"code": 0}));
}

/// `stop.stdin` asks a program that reads its stdin to quit: it exits by
/// itself and no signal is sent.
#[test]
fn a_stdin_message_stops_a_reading_child_without_a_signal() {
    let d = Daemon::start(
        r#"
[process.repl]
command = ["sh", "-c", "trap 'echo term >> signals' TERM; while read -r line; do [ \"$line\" = quit ] && { echo bye > said; exit 0; }; done"]

[process.repl.stop]
stdin = "quit\n"
timeout = "10s"
"#,
    );
    let dir = d.dir.path().to_path_buf();
    let t = Instant::now();
    d.ok(&["stop", "repl"]);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(
        std::fs::read_to_string(dir.join("said")).expect("it read the message"),
        "bye\n"
    );
    assert!(!dir.join("signals").exists(), "a signal was sent");
    assert_eq!(d.proc("repl")["last_exit"], serde_json::json!({"code": 0}));
}
