//! Restart delays of a crash loop.

use std::time::{Duration, Instant};

use crate::harness::Daemon;

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
    // Each spawn has its own started_at; collect the first five and the
    // largest delay announced while waiting.
    let mut starts: Vec<jiff::Timestamp> = Vec::new();
    let mut max_delay = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while starts.len() < 5 {
        assert!(
            Instant::now() < deadline,
            "only {} spawns seen: {starts:?}",
            starts.len()
        );
        let p = d.proc("crash");
        if let Some(t) = p["started_at"]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            && starts.last() != Some(&t)
        {
            starts.push(t);
        }
        max_delay = max_delay.max(p["next_restart_in_ms"].as_u64().unwrap_or(0));
        if p["state"] == "backoff" {
            assert_eq!(p["last_exit"], serde_json::json!({"code": 1}), "{p}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let gaps: Vec<i64> = starts
        .windows(2)
        .map(|w| w[1].duration_since(w[0]).as_millis() as i64)
        .collect();
    // Doubling from 200ms, capped at 1s: about 200, 400, 800, 1000.
    assert!(gaps[0] >= 190 && gaps[0] < 600, "{gaps:?}");
    assert!(gaps[1] as f64 > gaps[0] as f64 * 1.5, "{gaps:?}");
    assert!(gaps[2] as f64 > gaps[1] as f64 * 1.5, "{gaps:?}");
    assert!(gaps[3] >= 990 && gaps[3] < 1600, "capped at max: {gaps:?}");
    assert!(
        max_delay <= 1000,
        "a delay above max was announced: {max_delay}"
    );
    let restarts = d.proc("crash")["restarts"].as_u64().unwrap_or(0);
    assert!(restarts >= 4, "restarts = {restarts}");
}
