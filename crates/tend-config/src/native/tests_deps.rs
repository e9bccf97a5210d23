//! Dependencies, checks and tasks in the native config.

use std::time::Duration;

use tend_core::probe::Check;
use tend_core::spec::{Condition, Dependency};
use tend_core::{RestartPolicy, Signal};

use super::*;
use crate::TaskConf;

const FAKE: &str = "/nonexistent-tend-test/app/tend.toml";

fn ok(text: &str) -> Config {
    parse(Path::new(FAKE), text).unwrap_or_else(|e| panic!("expected a valid config, got:\n{e}"))
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

fn spec<'c>(config: &'c Config, n: &str) -> &'c ProcessSpec {
    config
        .processes
        .iter()
        .find(|p| p.name.as_str() == n)
        .unwrap_or_else(|| panic!("no process {n}"))
}

fn dep(n: &str, condition: Condition, restart: bool) -> Dependency {
    Dependency {
        name: Name::new(n).expect("valid"),
        condition,
        restart,
    }
}

#[test]
fn depends_on_in_its_three_forms() {
    let c = ok(r#"
[process.db]
command = "db"
[process.db.health]
tcp = "127.0.0.1:5432"

[process.migrate]
command = "migrate"
restart = "never"

[process.a]
command = "a"
depends_on = ["db", "migrate"]

[process.b]
command = "b"
depends_on = { migrate = "completed", db = "healthy" }

[process.c]
command = "c"
depends_on = { db = { condition = "ready", restart = true }, a = { restart = true } }
"#);
    assert_eq!(
        spec(&c, "a").depends_on,
        [
            dep("db", Condition::Started, false),
            dep("migrate", Condition::Started, false)
        ]
    );
    // File order, not the table's key order.
    assert_eq!(
        spec(&c, "b").depends_on,
        [
            dep("migrate", Condition::Completed, false),
            dep("db", Condition::Healthy, false)
        ]
    );
    assert_eq!(
        spec(&c, "c").depends_on,
        [
            dep("db", Condition::Ready, true),
            dep("a", Condition::Started, true)
        ]
    );
    assert!(spec(&c, "db").depends_on.is_empty());
}

#[test]
fn an_unknown_dependency_is_an_error_with_a_suggestion() {
    let e = one_error(
        "[process.database]\ncommand = \"db\"\n[process.web]\ncommand = \"w\"\ndepends_on = [\"databse\"]\n",
    );
    assert_eq!(
        e,
        "tend.toml:5:15: unknown process \"databse\" in depends_on of [process.web] (did you mean \"database\"?)"
    );
    let e = one_error(
        "[process.database]\ncommand = \"db\"\n[process.web]\ncommand = \"w\"\ndepends_on = { databas = \"ready\" }\n",
    );
    assert!(
        e.starts_with("tend.toml:5:16: unknown process \"databas\"")
            && e.ends_with("(did you mean \"database\"?)"),
        "{e}"
    );
}

#[test]
fn a_process_with_errors_of_its_own_is_not_also_unknown() {
    let errs = errors(
        "[process.db]\ncommand = \"db\"\nbogus = 1\n[process.web]\ncommand = \"w\"\ndepends_on = [\"db\"]\n",
    );
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].contains("unknown key \"bogus\""), "{errs:#?}");
}

#[test]
fn a_cycle_is_named_at_its_first_edge() {
    let text = r#"
[process.a]
command = "a"
depends_on = ["b"]

[process.b]
command = "b"
depends_on = { c = "ready" }

[process.c]
command = "c"
depends_on = ["a"]

[process.d]
command = "d"
depends_on = ["a"]
"#;
    assert_eq!(
        one_error(text),
        "tend.toml:4:15: dependency cycle: a -> b -> c -> a"
    );
    assert_eq!(
        one_error("[process.a]\ncommand = \"a\"\ndepends_on = [\"a\"]\n"),
        "tend.toml:3:15: dependency cycle: a -> a"
    );
    // Two separate cycles, two errors.
    let errs = errors(
        "[process.a]\ncommand = \"a\"\ndepends_on = [\"b\"]\n[process.b]\ncommand = \"b\"\ndepends_on = [\"a\"]\n\
         [process.x]\ncommand = \"x\"\ndepends_on = [\"y\"]\n[process.y]\ncommand = \"y\"\ndepends_on = [\"x\"]\n",
    );
    assert_eq!(
        errs,
        [
            "tend.toml:3:15: dependency cycle: a -> b -> a",
            "tend.toml:9:15: dependency cycle: x -> y -> x"
        ]
    );
}

#[test]
fn a_cycle_through_a_task_before_is_found() {
    let e = one_error(
        r#"
[task.migrate]
command = "migrate"
before = ["web"]
depends_on = ["web"]

[process.web]
command = "w"
"#,
    );
    assert_eq!(e, "tend.toml:4:11: dependency cycle: web -> migrate -> web");
}

#[test]
fn conditions_a_dependency_cannot_meet_are_errors() {
    let e = one_error(
        "[process.db]\ncommand = \"db\"\n[process.web]\ncommand = \"w\"\ndepends_on = { db = \"healthy\" }\n",
    );
    assert!(
        e.starts_with("tend.toml:5:16: \"db\" has no health check"),
        "{e}"
    );
    let e = one_error(
        "[process.db]\ncommand = \"db\"\n[process.web]\ncommand = \"w\"\ndepends_on = { db = \"completed\" }\n",
    );
    assert!(
        e.starts_with("tend.toml:5:16: \"db\" is restarted after every exit"),
        "{e}"
    );
    let e = one_error(
        "[process.db]\ncommand = \"db\"\n[process.web]\ncommand = \"w\"\ndepends_on = { db = \"service_healthy\" }\n",
    );
    assert!(
        e.starts_with("tend.toml:5:21: unknown condition \"service_healthy\"")
            && e.ends_with("(did you mean \"healthy\"?)"),
        "{e}"
    );
}

#[test]
fn malformed_depends_on() {
    let e = one_error("[process.w]\ncommand = \"w\"\ndepends_on = \"db\"\n");
    assert!(e.contains("write depends_on = [\"db\"]"), "{e}");
    let e = one_error(
        "[process.db]\ncommand = \"db\"\n[process.w]\ncommand = \"w\"\ndepends_on = [\"db\", \"db\"]\n",
    );
    assert_eq!(e, "tend.toml:5:21: \"db\" is listed twice in depends_on");
    let e = one_error(
        "[process.db]\ncommand = \"db\"\n[process.w]\ncommand = \"w\"\ndepends_on = { db = { condition = \"ready\", restrat = true } }\n",
    );
    assert!(
        e.contains("unknown key \"restrat\"") && e.ends_with("(did you mean \"restart\"?)"),
        "{e}"
    );
}

#[test]
fn check_tables_of_every_kind() {
    let c = ok(r#"
[process.a]
command = "a"
ready = { http = "http://127.0.0.1:8080/health", period = "2s", timeout = 0.5 }
health = { tcp = "127.0.0.1:5432", failure_threshold = 5, success_threshold = 2, initial_delay = "1s" }

[process.b]
command = "b"
[process.b.ready]
port_free = 8080
[process.b.health]
redis = "127.0.0.1"

[process.c]
command = "c"
ready = { redis = { addr = "127.0.0.1:6380", password = "pw", username = "u" } }
health = { exec = "pg_isready -q" }

[process.d]
command = "d"
ready = { exec = ["test", "-e", "/tmp/x"] }
"#);
    let a = spec(&c, "a");
    let ready = a.ready.as_ref().expect("ready");
    assert_eq!(
        ready.check,
        Check::Http("http://127.0.0.1:8080/health".into())
    );
    assert_eq!(ready.period, Duration::from_secs(2));
    assert_eq!(ready.timeout, Duration::from_millis(500));
    assert_eq!(ready.failure_threshold, 3, "Kubernetes' default");
    let health = a.health.as_ref().expect("health");
    assert_eq!(health.check, Check::Tcp("127.0.0.1:5432".into()));
    assert_eq!(
        (
            health.failure_threshold,
            health.success_threshold,
            health.initial_delay,
            health.period
        ),
        (5, 2, Duration::from_secs(1), Duration::from_secs(10))
    );
    let b = spec(&c, "b");
    assert_eq!(
        b.ready.as_ref().map(|p| &p.check),
        Some(&Check::PortFree(8080))
    );
    assert_eq!(
        b.health.as_ref().map(|p| &p.check),
        Some(&Check::Redis {
            addr: "127.0.0.1".into(),
            password: None,
            username: None
        })
    );
    let cc = spec(&c, "c");
    assert_eq!(
        cc.ready.as_ref().map(|p| &p.check),
        Some(&Check::Redis {
            addr: "127.0.0.1:6380".into(),
            password: Some("pw".into()),
            username: Some("u".into())
        })
    );
    assert_eq!(
        cc.health.as_ref().map(|p| &p.check),
        Some(&Check::Exec(vec!["pg_isready".into(), "-q".into()]))
    );
    assert_eq!(
        spec(&c, "d").ready.as_ref().map(|p| &p.check),
        Some(&Check::Exec(vec![
            "test".into(),
            "-e".into(),
            "/tmp/x".into()
        ]))
    );
}

#[test]
fn bad_check_tables() {
    let e = one_error("[process.a]\ncommand = \"a\"\n[process.a.ready]\nperiod = \"1s\"\n");
    assert!(
        e.starts_with("tend.toml:3:1: [process.a.ready] needs a check"),
        "{e}"
    );
    let e = one_error(
        "[process.a]\ncommand = \"a\"\nready = { http = \"http://x/\", tcp = \"x:1\" }\n",
    );
    assert!(
        e.starts_with(
            "tend.toml:3:31: [process.a.ready] has one check, found \"http\" and \"tcp\""
        ),
        "{e}"
    );
    let e = one_error("[process.a]\ncommand = \"a\"\nready = { http = \"https://x/\" }\n");
    assert!(
        e.starts_with("tend.toml:3:18: http check:") && e.contains("https is not supported"),
        "{e}"
    );
    let e = one_error("[process.a]\ncommand = \"a\"\nhealth = { tcp = \"localhost\" }\n");
    assert!(
        e.starts_with("tend.toml:3:18: tcp check:") && e.contains("has no port"),
        "{e}"
    );
    let e = one_error("[process.a]\ncommand = \"a\"\nready = { port_free = 0 }\n");
    assert_eq!(e, "tend.toml:3:23: 0 is not a port (1 to 65535)");
    let e = one_error("[process.a]\ncommand = \"a\"\nready = { tcp = \"x:1\", period = 0 }\n");
    assert_eq!(e, "tend.toml:3:33: period must be more than 0");
    let e = one_error(
        "[process.a]\ncommand = \"a\"\nready = { tcp = \"x:1\", failure_threshold = 0 }\n",
    );
    assert_eq!(e, "tend.toml:3:44: failure_threshold must be at least 1");
    let e = one_error("[process.a]\ncommand = \"a\"\nready = { exec = [] }\n");
    assert!(e.contains("exec check: the command is empty"), "{e}");
    let e =
        one_error("[process.a]\ncommand = \"a\"\nready = { tcp = \"x:1\", interval = \"1s\" }\n");
    assert!(
        e.contains("unknown key \"interval\" in [process.a.ready] (did you mean \"period\"?)"),
        "{e}"
    );
    let e = one_error(
        "[process.a]\ncommand = \"a\"\nready = { redis = { host = \"x\", addr = \"x\" } }\n",
    );
    assert!(e.contains("(did you mean \"addr\"?)"), "{e}");
    let e = one_error(
        "[process.a]\ncommand = \"a\"\nready = { redis = { addr = \"x\", username = \"u\" } }\n",
    );
    assert!(e.contains("a username needs a password"), "{e}");
}

#[test]
fn notify_watchdog_start_timeout_and_reset_on_ready() {
    let c = ok(r#"
[process.a]
command = "a"
notify = true
watchdog = "10s"
start_timeout = "30s"
backoff = { reset_on_ready = true }
"#);
    let a = spec(&c, "a");
    assert!(a.notify);
    assert_eq!(a.watchdog, Some(Duration::from_secs(10)));
    assert_eq!(a.start_timeout, Some(Duration::from_secs(30)));
    assert!(a.backoff.reset_on_ready);
    let d = ok("[process.a]\ncommand = \"a\"\n");
    let a = spec(&d, "a");
    assert!(!a.notify && a.watchdog.is_none() && a.start_timeout.is_none());
    assert!(!a.backoff.reset_on_ready);

    let e = one_error("[process.a]\ncommand = \"a\"\nwatchdog = \"10s\"\n");
    assert!(
        e.starts_with("tend.toml:3:1: watchdog needs notify = true"),
        "{e}"
    );
    let e = one_error("[process.a]\ncommand = \"a\"\nstart_timeout = \"10s\"\n");
    assert!(
        e.starts_with("tend.toml:3:1: start_timeout in [process.a] never fires"),
        "{e}"
    );
    ok("[process.a]\ncommand = \"a\"\nstart_timeout = \"10s\"\nstart_secs = 1\n");
    ok("[process.a]\ncommand = \"a\"\nstart_timeout = \"10s\"\nready = { tcp = \"x:1\" }\n");
    let e = one_error("[process.a]\ncommand = \"a\"\nnotify = true\nwatchdog = 0\n");
    assert_eq!(e, "tend.toml:4:12: watchdog must be more than 0");
    let e = one_error("[process.a]\ncommand = \"a\"\nreset_on_ready = true\n");
    assert!(
        e.contains("(did you mean \"backoff.reset_on_ready\"?)"),
        "{e}"
    );
}

#[test]
fn tasks_become_processes_that_run_to_completion() {
    let c = ok(r#"
[process.db]
command = "db"

[task.migrate]
command = "migrate --all"
depends_on = { db = "ready" }
before = ["web", "worker"]
env = { A = "1" }

[process.web]
command = "web"
depends_on = ["db"]

[process.worker]
command = "worker"

[task.backup]
command = ["backup"]
on_signal = "HUP"
shutdown = true

[task.tick]
command = "tick"
every = "300ms"

[task.bye]
command = "bye"
on_signal = "SIGTERM"
terminate = true

[task.manual]
command = "manual"
"#);
    let names: Vec<&str> = c.processes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "db", "migrate", "web", "worker", "backup", "tick", "bye", "manual"
        ]
    );
    let migrate = spec(&c, "migrate");
    assert_eq!(migrate.restart, RestartPolicy::Never);
    assert!(
        !migrate.autostart,
        "it runs as a dependency of web and worker"
    );
    assert_eq!(migrate.depends_on, [dep("db", Condition::Ready, false)]);
    assert_eq!(migrate.env.get("A").map(String::as_str), Some("1"));
    assert_eq!(
        spec(&c, "web").depends_on,
        [
            dep("db", Condition::Started, false),
            dep("migrate", Condition::Completed, false)
        ]
    );
    assert_eq!(
        spec(&c, "worker").depends_on,
        [dep("migrate", Condition::Completed, false)]
    );
    for t in ["backup", "tick", "bye", "manual"] {
        let s = spec(&c, t);
        assert!(!s.autostart, "{t}");
        assert_eq!(s.restart, RestartPolicy::Never, "{t}");
    }
    let task = |n: &str| c.tasks.iter().find(|t| t.name.as_str() == n).cloned();
    assert_eq!(c.tasks.len(), 5);
    assert_eq!(
        task("backup"),
        Some(TaskConf {
            name: Name::new("backup").expect("valid"),
            on_signal: Some(Signal::HUP),
            every: None,
            cron: None,
            shutdown: true,
            terminate: false,
        })
    );
    let tick = task("tick").expect("tick");
    assert_eq!(tick.every, Some(Duration::from_millis(300)));
    assert_eq!(tick.on_signal, None);
    let bye = task("bye").expect("bye");
    assert_eq!(bye.on_signal, Some(Signal::TERM));
    assert!(bye.terminate && !bye.shutdown);
    let manual = task("manual").expect("manual");
    assert_eq!((manual.on_signal, manual.every), (None, None));
}

#[test]
fn bad_tasks() {
    let e = one_error("[task.t]\ncommand = \"t\"\nrestart = \"always\"\n");
    assert!(
        e.starts_with("tend.toml:3:1: unknown key \"restart\" in [task.t]"),
        "{e}"
    );
    let e = one_error("[task.t]\ncommand = \"t\"\nready = { tcp = \"x:1\" }\n");
    assert!(e.contains("unknown key \"ready\" in [task.t]"), "{e}");
    let e = one_error("[task.t]\ncommand = \"t\"\nsignal = \"HUP\"\n");
    assert!(e.ends_with("(did you mean \"on_signal\"?)"), "{e}");
    let e = one_error("[task.t]\ncommand = \"t\"\non_signal = \"USR2\"\n");
    assert!(
        e.starts_with("tend.toml:3:13: on_signal cannot be USR2"),
        "{e}"
    );
    let e = one_error("[task.t]\ncommand = \"t\"\non_signal = \"WINCH\"\n");
    assert!(
        e.starts_with("tend.toml:3:13: on_signal cannot be WINCH"),
        "{e}"
    );
    let e = one_error("[task.t]\ncommand = \"t\"\non_signal = \"TERM\"\n");
    assert!(
        e.starts_with("tend.toml:3:13: on_signal = \"TERM\" in [task.t]: SIGTERM stops tend")
            && e.contains("terminate = true"),
        "{e}"
    );
    let e = one_error("[task.t]\ncommand = \"t\"\non_signal = \"HPU\"\n");
    assert!(e.ends_with("(did you mean \"HUP\"?)"), "{e}");
    let e = one_error("[task.t]\ncommand = \"t\"\nshutdown = true\n");
    assert!(
        e.starts_with(
            "tend.toml:3:1: shutdown = true in [task.t] applies when on_signal, every or cron"
        ),
        "{e}"
    );
    let e = one_error("[task.t]\ncommand = \"t\"\nevery = \"10ms\"\n");
    assert_eq!(e, "tend.toml:3:9: every must be at least 100ms");
    let e = one_error(
        "[process.web]\ncommand = \"w\"\n[task.t]\ncommand = \"t\"\nbefore = [\"wbe\"]\n",
    );
    assert_eq!(
        e,
        "tend.toml:5:11: unknown process \"wbe\" in before of [task.t] (did you mean \"web\"?)"
    );
    let e = one_error(
        "[process.web]\ncommand = \"w\"\ndepends_on = [\"t\"]\n[task.t]\ncommand = \"t\"\nbefore = [\"web\"]\n",
    );
    assert!(
        e.starts_with("tend.toml:6:11: \"web\" already has \"t\" in depends_on"),
        "{e}"
    );
    let e = one_error("[process.x]\ncommand = \"x\"\n[task.x]\ncommand = \"t\"\n");
    assert!(
        e.starts_with("tend.toml:3:7: \"x\" is already the name of a process or a task"),
        "{e}"
    );
    let e = one_error("[task.t]\nbefore = []\n");
    assert!(
        e.contains("missing required key \"command\" in [task.t]"),
        "{e}"
    );
    let e = one_error("[tasks.t]\ncommand = \"t\"\n");
    assert!(e.contains("(did you mean [task]?)"), "{e}");
}

#[test]
fn a_task_is_completed_dependency_material_and_a_process_may_be_too() {
    // A process that runs once (restart = "never") can be waited for as well.
    let c = ok(r#"
[process.setup]
command = "setup"
restart = "on-failure"
[process.web]
command = "w"
depends_on = { setup = "completed" }
"#);
    assert_eq!(
        spec(&c, "web").depends_on,
        [dep("setup", Condition::Completed, false)]
    );
}

#[test]
fn the_dependency_example_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/deps.toml");
    let config = load(&path).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = config.processes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["db", "migrate", "api", "worker", "backup"]);
    assert_eq!(
        spec(&config, "api").depends_on,
        [
            dep("db", Condition::Ready, true),
            dep("migrate", Condition::Completed, false)
        ]
    );
    let tasks: Vec<&str> = config.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(tasks, ["migrate", "backup"]);
}
