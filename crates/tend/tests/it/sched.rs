//! Issue 17's schedules, replicas and watches, with a real daemon: cron
//! tasks in status, `replicas = N`, and `watch` restarting on file changes.
//! (When a cron task fires is tested under virtual time in tend-core.)

use std::time::Duration;

use serde_json::Value;

use crate::harness::{Daemon, TestEnv};

const LONG: Duration = Duration::from_secs(20);

/// A daemon for the config `make` writes, given the test's directory.
fn daemon(make: impl FnOnce(&str) -> String) -> Daemon {
    let env = TestEnv::new("");
    let dir = env.dir.path().display().to_string();
    std::fs::write(&env.config, make(&dir)).expect("write config");
    Daemon::start_in(env)
}

fn timestamp(v: &Value) -> jiff::Timestamp {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an RFC 3339 time: {v}"))
}

#[test]
fn status_shows_when_a_cron_task_runs_next() {
    let d = daemon(|_| {
        r#"
[daemon]
timezone = "Asia/Kathmandu"

[task.minutely]
command = ["true"]
cron = "* * * * *"

[task.nightly]
command = ["true"]
cron = "@midnight"

[task.manual]
command = ["true"]
"#
        .to_string()
    });
    let now = jiff::Timestamp::now();
    let p = d.proc("minutely");
    let next = timestamp(&p["next_run"]);
    // The next whole minute.
    assert!(
        next > now && next.as_second() - now.as_second() <= 61,
        "{p}"
    );
    assert_eq!(next.as_second() % 60, 0, "{p}");
    // Midnight in Kathmandu (UTC+05:45): 18:15 UTC.
    let p = d.proc("nightly");
    let next = timestamp(&p["next_run"]).to_zoned(jiff::tz::TimeZone::UTC);
    assert_eq!((next.hour(), next.minute()), (18, 15), "{p}");
    // No schedule, no field.
    let p = d.proc("manual");
    assert!(p.get("next_run").is_none(), "{p}");

    let table = d.ok(&["status", "nightly"]).stdout;
    assert!(table.contains("next run "), "{table}");
    assert!(table.contains("T18:15:00Z (in "), "{table}");
}
