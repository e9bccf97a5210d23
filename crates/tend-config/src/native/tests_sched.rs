//! Schedules (`[task.NAME] cron`, `timezone`), replicas and watches.

use std::path::Path;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::parse;
use crate::Config;

fn ok(text: &str) -> Config {
    parse(Path::new("/nonexistent-tend-test/tend.toml"), text)
        .unwrap_or_else(|e| panic!("expected a valid config, got:\n{e}"))
}

fn errors(text: &str) -> Vec<String> {
    match parse(Path::new("tend.toml"), text) {
        Ok(c) => panic!("expected errors, got {c:?}"),
        Err(e) => e.errors.iter().map(ToString::to_string).collect(),
    }
}

fn one_error(text: &str) -> String {
    let mut errs = errors(text);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    errs.remove(0)
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn cron_in_the_daemons_zone_or_the_tasks_own() {
    let c = ok(r#"
[daemon]
timezone = "Europe/Berlin"

[task.berlin]
command = "true"
cron = "@daily"

[task.tokyo]
command = "true"
cron = "0 9 * * 1-5"
timezone = "Asia/Tokyo"
"#);
    let task = |n: &str| {
        c.tasks
            .iter()
            .find(|t| t.name.as_str() == n)
            .and_then(|t| t.cron.clone())
            .unwrap_or_else(|| panic!("{n} has no cron"))
    };
    let berlin = task("berlin");
    assert_eq!(berlin.expr(), "@daily");
    assert_eq!(berlin.time_zone().iana_name(), Some("Europe/Berlin"));
    assert_eq!(
        berlin.next_after(at("2026-01-01T12:00:00Z")),
        Some(at("2026-01-01T23:00:00Z"))
    );
    // Thursday 2026-01-01, 12:00 UTC = 21:00 in Tokyo: next is Friday 09:00 JST.
    assert_eq!(
        task("tokyo").next_after(at("2026-01-01T12:00:00Z")),
        Some(at("2026-01-02T00:00:00Z"))
    );
    assert_eq!(c.daemon.timezone, TimeZone::get("Europe/Berlin").ok());
}

#[test]
fn cron_without_a_zone_is_in_the_systems() {
    let c = ok("[task.t]\ncommand = \"true\"\ncron = \"*/5 * * * *\"\n");
    let cron = c.tasks[0].cron.clone().unwrap_or_else(|| panic!("no cron"));
    assert_eq!(cron.time_zone(), &TimeZone::system());
}

#[test]
fn bad_schedules_are_errors_at_their_place() {
    assert_eq!(
        one_error("[task.t]\ncommand = \"t\"\ncron = \"*/5 * * *\"\n"),
        "tend.toml:3:8: a cron expression has 5 fields (minute hour day-of-month month day-of-week), \"*/5 * * *\" has 4"
    );
    let e = one_error("[task.t]\ncommand = \"t\"\ncron = \"99 * * * *\"\n");
    assert!(
        e.starts_with("tend.toml:3:8: invalid cron expression \"99 * * * *\""),
        "{e}"
    );
    let e = one_error("[task.t]\ncommand = \"t\"\ncron = \"@fortnightly\"\n");
    assert!(
        e.starts_with("tend.toml:3:8: unknown cron nickname \"@fortnightly\""),
        "{e}"
    );
    assert_eq!(
        one_error("[task.t]\ncommand = \"t\"\nevery = \"5m\"\ncron = \"@hourly\"\n"),
        "tend.toml:4:8: [task.t] has both every and cron: keep one (every = \"5m\" counts from the start, cron = \"*/5 * * * *\" follows the clock)"
    );
    let e =
        one_error("[task.t]\ncommand = \"t\"\ncron = \"@hourly\"\ntimezone = \"Mars/Olympus\"\n");
    assert!(
        e.starts_with("tend.toml:4:12: unknown time zone \"Mars/Olympus\""),
        "{e}"
    );
    let e = one_error("[daemon]\ntimezone = \"Nowhere\"\n");
    assert!(
        e.starts_with("tend.toml:2:12: unknown time zone \"Nowhere\""),
        "{e}"
    );
    assert_eq!(
        one_error("[task.t]\ncommand = \"t\"\ntimezone = \"UTC\"\n"),
        "tend.toml:3:1: timezone in [task.t] applies to cron, which it has not"
    );
    // A process is kept alive, not scheduled.
    let e = one_error("[process.p]\ncommand = \"p\"\ncron = \"@hourly\"\n");
    assert!(e.contains("cron"), "{e}");
}
