//! `tend status`, `tend pid`.

use crate::harness::Daemon;

const TWO: &str = r#"
[group.workers]
processes = ["w1"]

[process.web]
command = "sleep 1000"

[process.w1]
command = ["sleep", "1000"]
autostart = false
"#;

#[test]
fn status_json_is_the_api_array() {
    let d = Daemon::start(TWO);
    let all = d.status(&[]);
    assert_eq!(all.len(), 2, "{all:?}");
    for p in &all {
        for key in [
            "name",
            "group",
            "state",
            "pid",
            "started_at",
            "uptime_ms",
            "restarts",
            "last_exit",
            "next_restart_in_ms",
            "error",
        ] {
            assert!(p.get(key).is_some(), "status lacks {key}: {p}");
        }
    }
    let web = d.proc("web");
    assert_eq!(web["group"], "web");
    assert_eq!(web["state"], "running");
    assert!(web["pid"].as_u64().is_some_and(|p| p > 1), "{web}");
    assert!(
        web["started_at"]
            .as_str()
            .is_some_and(|t| t.parse::<jiff::Timestamp>().is_ok()),
        "{web}"
    );
    assert_eq!(web["restarts"], 0);
    assert!(
        web["last_exit"].is_null() && web["next_restart_in_ms"].is_null(),
        "{web}"
    );

    let w1 = d.proc("w1");
    assert_eq!(
        (w1["group"].as_str(), w1["state"].as_str()),
        (Some("workers"), Some("stopped"))
    );
    assert!(w1["pid"].is_null() && w1["started_at"].is_null(), "{w1}");

    assert_eq!(d.status(&["workers:*"]).len(), 1);
    let missing = d.tend(&["status", "--json", "nope-*"]);
    assert_eq!(missing.code, Some(1), "{missing}");
    assert!(
        missing.stderr.contains("no process matches \"nope-*\""),
        "{missing}"
    );
}

#[test]
fn status_table_shows_every_column() {
    let d = Daemon::start(TWO);
    let run = d.ok(&["status"]);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{run}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME", "GROUP", "STATE", "PID", "UPTIME", "RESTARTS", "LAST", "EXIT", "INFO"
        ]
    );
    let pid = d.pid("web").to_string();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("web") && l.contains("running") && l.contains(&pid)),
        "{run}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("w1") && l.contains("workers") && l.contains("stopped")),
        "{run}"
    );
}

#[test]
fn pid_prints_the_daemon_or_a_process() {
    let d = Daemon::start(TWO);
    assert_eq!(d.ok(&["pid"]).stdout.trim(), d.daemon_pid().to_string());
    assert_eq!(
        d.ok(&["pid", "web"]).stdout.trim(),
        d.pid("web").to_string()
    );
    let run = d.tend(&["pid", "w1"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert_eq!(run.stderr.trim(), "w1: not running");
    let run = d.tend(&["pid", "ghost"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stderr.contains("ghost"), "{run}");
}

#[test]
fn a_missing_command_shows_a_spawn_error() {
    let d = Daemon::start(
        r#"
[process.broken]
command = "no-such-program-for-tend-tests --flag"
"#,
    );
    let mut p = d.proc("broken");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while p["state"] != "fatal" && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
        p = d.proc("broken");
    }
    assert_eq!(p["state"], "fatal", "{p}");
    let error = p["error"].as_str().unwrap_or_default();
    assert!(error.contains("no-such-program-for-tend-tests"), "{p}");
    let run = d.tend(&["status"]);
    // A fatal process makes `status` exit 3 (a health check); the table is whole.
    assert_eq!(run.code, Some(3), "{run}");
    let table = run.stdout;
    assert!(table.contains("no-such-program-for-tend-tests"), "{table}");
    let start = d.tend(&["start", "broken"]);
    assert_eq!(start.code, Some(1), "{start}");
    assert!(
        start.stdout.starts_with("broken: ERROR ") && start.stdout.contains("no-such-program"),
        "{start}"
    );
}
