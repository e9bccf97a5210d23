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

fn spec<'c>(c: &'c Config, n: &str) -> &'c tend_core::ProcessSpec {
    c.processes
        .iter()
        .find(|p| p.name.as_str() == n)
        .unwrap_or_else(|| panic!("no process {n}"))
}

#[test]
fn replicas_are_copies_with_an_index_in_a_group_of_the_tables_name() {
    let c = ok(r#"
[process.web]
command = "serve"
replicas = 3
env = { PORT = "8000" }

[process.proxy]
command = "proxy"
depends_on = { web = "ready" }

[task.warm]
command = "warm"
before = ["web"]
"#);
    let names: Vec<&str> = c.processes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["web-0", "web-1", "web-2", "proxy", "warm"]);
    for i in 0..3 {
        let s = spec(&c, &format!("web-{i}"));
        assert_eq!(s.group.as_str(), "web");
        assert_eq!(s.env.get("TEND_REPLICA"), Some(&i.to_string()));
        assert_eq!(s.env.get("PORT").map(String::as_str), Some("8000"));
        assert_eq!(s.command, ["serve"]);
        // Each its own default log file.
        let tend_core::spec::LogTarget::File(out) = &s.logs.stdout else {
            panic!("{:?}", s.logs.stdout)
        };
        assert!(out.ends_with(format!("logs/web-{i}.out.log")), "{out:?}");
        // `before = ["web"]`: every copy waits for the task.
        assert_eq!(s.depends_on.len(), 1);
        assert_eq!(s.depends_on[0].name.as_str(), "warm");
    }
    // A dependency on `web` is one on every copy.
    let deps: Vec<(&str, tend_core::spec::Condition)> = spec(&c, "proxy")
        .depends_on
        .iter()
        .map(|d| (d.name.as_str(), d.condition))
        .collect();
    let ready = tend_core::spec::Condition::Ready;
    assert_eq!(deps, [("web-0", ready), ("web-1", ready), ("web-2", ready)]);
    assert_eq!(
        c.declared
            .groups
            .iter()
            .filter(|g| g.name.as_str() == "web")
            .count(),
        1
    );
}

#[test]
fn replicas_listed_in_a_group_are_all_in_it() {
    let c = ok(r#"
[process.worker]
command = "work"
replicas = 2

[group.back]
processes = ["worker"]
"#);
    for n in ["worker-0", "worker-1"] {
        assert_eq!(spec(&c, n).group.as_str(), "back", "{n}");
    }
}

#[test]
fn the_copies_of_three_are_the_first_of_five() {
    let three = ok("[process.w]\ncommand = \"w\"\nreplicas = 3\n");
    let five = ok("[process.w]\ncommand = \"w\"\nreplicas = 5\n");
    // Same specs: a reload from 3 to 5 adds w-3 and w-4 and leaves the rest.
    assert_eq!(three.processes[..], five.processes[..3]);
}

#[test]
fn bad_replicas_are_errors_at_the_key() {
    assert_eq!(
        one_error("[process.w]\ncommand = \"w\"\nreplicas = 0\n"),
        "tend.toml:3:12: replicas = 0 in [process.w]: expected a number of copies from 1 to 10000 (leave it out for one process named after the table)"
    );
    let e = one_error("[process.w]\ncommand = \"w\"\nreplicas = -2\n");
    assert!(
        e.starts_with("tend.toml:3:12: replicas = -2 in [process.w]"),
        "{e}"
    );
    let e = one_error("[process.w]\ncommand = \"w\"\nreplicas = 10001\n");
    assert!(
        e.starts_with("tend.toml:3:12: replicas = 10001 in [process.w]"),
        "{e}"
    );
    let e = one_error("[process.w]\ncommand = \"w\"\nreplicas = \"3\"\n");
    assert!(e.starts_with("tend.toml:3:12: "), "{e}");
    assert_eq!(
        one_error("[process.w]\ncommand = \"w\"\nreplicas = 2\n\n[process.w-1]\ncommand = \"x\"\n"),
        "tend.toml:3:12: replicas = 2 in [process.w] makes \"w-1\", which is already the name of a process or a task"
    );
    // A task runs once: no copies.
    let e = one_error("[task.t]\ncommand = \"t\"\nreplicas = 2\n");
    assert!(e.contains("replicas"), "{e}");
}

#[test]
fn watch_is_rooted_at_the_cwd_or_the_config_files_directory() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir(dir.path().join("app")).unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("tend.toml");
    let c = parse(
        &path,
        r#"
[process.api]
command = "serve"
cwd = "app"
watch = ["src/**/*.py", "*.toml"]
watch_ignore = ["src/gen/**"]
watch_debounce = "200ms"

[process.plain]
command = "x"
watch = ["conf/*.ini"]
"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let api = spec(&c, "api")
        .watch
        .clone()
        .unwrap_or_else(|| panic!("no watch"));
    assert_eq!(api.root, dir.path().join("app"));
    assert_eq!(api.patterns, ["src/**/*.py", "*.toml"]);
    assert_eq!(api.ignore, ["src/gen/**"]);
    assert_eq!(api.debounce, std::time::Duration::from_millis(200));
    let plain = spec(&c, "plain")
        .watch
        .clone()
        .unwrap_or_else(|| panic!("no watch"));
    assert_eq!(plain.root, dir.path());
    assert_eq!(plain.debounce, tend_core::model::watch::DEFAULT_DEBOUNCE);
    assert!(plain.ignore.is_empty());
}

#[test]
fn bad_watches_are_errors_at_their_place() {
    let e = one_error("[process.p]\ncommand = \"p\"\nwatch = [\"src/[a.py\"]\n");
    assert!(
        e.starts_with("tend.toml:3:10: watch: invalid pattern \"src/[a.py\""),
        "{e}"
    );
    let e = one_error("[process.p]\ncommand = \"p\"\nwatch = [\"/abs/*.py\"]\n");
    assert!(
        e.starts_with("tend.toml:3:10: watch pattern \"/abs/*.py\": write it relative"),
        "{e}"
    );
    let e = one_error("[process.p]\ncommand = \"p\"\nwatch = []\n");
    assert!(e.starts_with("tend.toml:3:9: watch is empty"), "{e}");
    let e = one_error("[process.p]\ncommand = \"p\"\nwatch = \"*.py\"\n");
    assert!(e.starts_with("tend.toml:3:9: "), "{e}");
    assert_eq!(
        one_error("[process.p]\ncommand = \"p\"\nwatch_ignore = [\"x\"]\n"),
        "tend.toml:3:1: watch_ignore in [process.p] applies to watch, which it has not"
    );
    let e =
        one_error("[process.p]\ncommand = \"p\"\nwatch = [\"*.py\"]\nwatch_debounce = \"0s\"\n");
    assert!(
        e.starts_with("tend.toml:4:18: watch_debounce must be more than 0"),
        "{e}"
    );
    let e = one_error("[process.p]\ncommand = \"p\"\nwatch = [\"*.py\"]\nignore_watch = [\"a\"]\n");
    assert!(e.contains("did you mean \"watch_ignore\""), "{e}");
    let e = one_error("[task.t]\ncommand = \"t\"\nwatch = [\"*.py\"]\n");
    assert!(e.contains("watch"), "{e}");
}
