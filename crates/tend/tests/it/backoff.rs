//! Restart delays of a crash loop.
//!
//! The back-off schedule itself is tested under virtual time in the core;
//! here a real daemon and a real crashing child show that the delays the
//! daemon announces are the schedule's and that no restart comes early.
//! Upper bounds on the delays are not asserted: on a loaded machine a spawn
//! may come late, and that is the machine's, not the schedule's.

use std::time::Duration;

use crate::harness::{Daemon, wait_until};

/// The time of a log line (`2026-12-03T16:09:59.305308Z  INFO ...`).
fn at(line: &str) -> jiff::Timestamp {
    line.split_whitespace()
        .next()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no time on {line:?}"))
}

#[test]
fn a_crash_loop_waits_longer_and_longer() {
    let d = Daemon::start(
        r#"
[process.crash]
command = ["sh", "-c", "exit 1"]

[process.crash.backoff]
initial = "200ms"
max = "1s"
"#,
    );
    // While it waits, status says so, with the last exit and a delay within max.
    wait_until("the first back-off", Duration::from_secs(20), || {
        d.proc("crash")["state"] == "backoff"
    });
    let p = d.proc("crash");
    assert_eq!(p["last_exit"], serde_json::json!({"code": 1}), "{p}");
    let delay = p["next_restart_in_ms"].as_u64().expect("a delay");
    assert!(delay <= 1000, "a delay above max was announced: {p}");

    // Six spawns: five delays announced between them.
    wait_until("six spawns", Duration::from_secs(30), || {
        d.log_text().matches("crash: spawned").count() >= 6
    });
    let log = d.log_text();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("crash: spawned") || l.contains("crash: restart in "))
        .collect();
    let announced: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.split("crash: restart in ").nth(1))
        .take(5)
        .collect();
    // Doubling from 200ms, capped at 1s.
    assert_eq!(announced, ["200ms", "400ms", "800ms", "1s", "1s"], "{log}");
    // Each spawn comes no earlier than the delay announced before it.
    let delays = [200, 400, 800, 1000, 1000];
    let mut waited = Vec::new();
    for pair in lines.windows(2) {
        if pair[0].contains("restart in ") && pair[1].contains("spawned") {
            waited.push(at(pair[1]).duration_since(at(pair[0])).as_millis());
        }
    }
    assert!(waited.len() >= 5, "{lines:?}");
    for (w, d) in waited.iter().zip(delays) {
        // The log's clock is the wall clock, the timer's the monotonic one:
        // a millisecond of slack for the two.
        assert!(
            *w + 1 >= d,
            "restarted after {w} ms, before its {d} ms: {lines:?}"
        );
    }
    let restarts = d.proc("crash")["restarts"].as_u64().unwrap_or(0);
    assert!(restarts >= 5, "restarts = {restarts}");
}
