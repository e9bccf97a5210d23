//! Dependencies, readiness, health and tasks, with real peers: Python's
//! `http.server`, `redis-server`, `systemd-notify`, sockets held by the test.

use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::harness::{Daemon, TestEnv, alive, free_port};

const LONG: Duration = Duration::from_secs(20);

/// A daemon for the config `make` writes, given the test's directory.
fn daemon(make: impl FnOnce(&str) -> String) -> Daemon {
    let env = TestEnv::new("");
    let dir = env.dir.path().display().to_string();
    std::fs::write(&env.config, make(&dir)).expect("write config");
    Daemon::start_in(env)
}

/// Whether `program` is on PATH; if not, the test fails under CI and is a
/// counted skip elsewhere.
fn have(program: &str) -> bool {
    tend_testkit::require_program(program).is_some()
}

fn started_at(p: &Value) -> Option<jiff::Timestamp> {
    p["started_at"].as_str().and_then(|t| t.parse().ok())
}

fn is(p: &Value, state: &str) -> bool {
    p["state"] == state
}

fn ready(p: &Value) -> bool {
    is(p, "running") && p["ready"] == true
}

/// How many times the daemon's log says `name` was spawned.
fn spawns(d: &Daemon, name: &str) -> usize {
    d.log_text()
        .matches(&format!(" {name}: spawned (pid "))
        .count()
}

fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn kill9(pid: u32) {
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).expect("kill -9");
}

#[test]
fn a_dependent_waits_until_an_http_server_answers() {
    let port = free_port();
    let mut d = daemon(|dir| {
        format!(
            r#"
[process.server]
# Answers only after a second: the client must wait for it.
command = ["sh", "-c", "sleep 1; exec python3 -m http.server {port} --bind 127.0.0.1"]
ready = {{ http = "http://127.0.0.1:{port}/", period = "100ms" }}

[process.client]
command = ["python3", "-c", "import urllib.request, time; r = urllib.request.urlopen('http://127.0.0.1:{port}/'); open('{dir}/client.txt', 'w').write(str(r.status)); time.sleep(1000)"]
depends_on = {{ server = "ready" }}
"#
        )
    });
    d.wait_for("the client to wait", LONG, |d| {
        is(&d.proc("client"), "waiting")
    });
    let client = d.proc("client");
    assert_eq!(client["waiting_for"], "server (ready)", "{client}");
    assert!(client["pid"].is_null(), "{client}");
    let table = d.ok(&["status"]).stdout;
    assert!(
        table.contains("waiting for server (ready)"),
        "the table says what it waits for:\n{table}"
    );

    d.wait_for("the client to run", LONG, |d| {
        is(&d.proc("client"), "running")
    });
    let server = d.proc("server");
    assert!(ready(&server), "{server}");
    assert_eq!(server["last_check"]["kind"], "ready", "{server}");
    assert_eq!(server["last_check"]["ok"], true, "{server}");
    assert_eq!(server["last_check"]["detail"], "HTTP 200", "{server}");
    d.wait_for("the client's request", LONG, |d| {
        read(d.dir.path().join("client.txt")) == "200"
    });
    let table = d.ok(&["status", "server"]).stdout;
    assert!(table.contains("ready (HTTP 200)"), "{table}");
}

#[test]
fn a_redis_check_speaks_to_a_real_redis_server() {
    if !have("redis-server") {
        return;
    }
    let port = free_port();
    let mut d = daemon(|_| {
        format!(
            r#"
[process.redis]
command = ["redis-server", "--port", "{port}", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--requirepass", "s3cret"]
ready = {{ redis = {{ addr = "127.0.0.1:{port}", password = "s3cret" }}, period = "100ms" }}

[process.app]
command = ["sleep", "1000"]
depends_on = {{ redis = "ready" }}

# Asks without the password: redis answers NOAUTH, so this is never ready.
[process.nopw]
command = ["sleep", "1000"]
depends_on = {{ redis = "ready" }}
ready = {{ redis = "127.0.0.1:{port}", period = "100ms" }}
"#
        )
    });
    d.wait_for("app to run", LONG, |d| is(&d.proc("app"), "running"));
    let redis = d.proc("redis");
    assert!(ready(&redis), "{redis}");
    assert_eq!(redis["last_check"]["detail"], "PONG", "{redis}");
    d.wait_for("nopw's check to fail", LONG, |d| {
        let p = d.proc("nopw");
        p["last_check"]["ok"] == false
    });
    let nopw = d.proc("nopw");
    assert!(is(&nopw, "starting") && nopw["ready"] == false, "{nopw}");
    let detail = nopw["last_check"]["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("NOAUTH"), "{nopw}");
}

#[test]
fn systemd_notify_makes_a_process_ready() {
    if !have("systemd-notify") {
        return;
    }
    let mut d = daemon(|_| {
        r#"
[process.svc]
command = ["sh", "-c", "sleep 0.5; systemd-notify --ready --status='serving requests'; exec sleep 1000"]
notify = true

[process.after]
command = ["sleep", "1000"]
depends_on = { svc = "ready" }
"#
        .to_string()
    });
    d.wait_for("svc to be spawned", LONG, |d| {
        is(&d.proc("svc"), "starting")
    });
    let svc = d.proc("svc");
    assert!(svc["ready"] == false, "not ready before READY=1: {svc}");
    assert!(is(&d.proc("after"), "waiting"));
    d.wait_for("after to run", LONG, |d| is(&d.proc("after"), "running"));
    let svc = d.proc("svc");
    assert!(ready(&svc), "{svc}");
    assert_eq!(svc["status_text"], "serving requests", "{svc}");
    let table = d.ok(&["status", "svc"]).stdout;
    assert!(table.contains("serving requests"), "{table}");
}

#[test]
fn a_watchdog_restarts_a_process_that_stops_pinging() {
    if !have("systemd-notify") {
        return;
    }
    let mut d = daemon(|_| {
        r#"
[process.silent]
command = ["sh", "-c", "systemd-notify --ready; exec sleep 1000"]
notify = true
watchdog = "300ms"
backoff = { initial = "100ms", min_uptime = "10ms" }

[process.pinging]
command = ["sh", "-c", "systemd-notify --ready; while true; do systemd-notify WATCHDOG=1; sleep 0.05; done"]
notify = true
watchdog = "1s"
"#
        .to_string()
    });
    d.wait_for("pinging to be ready", LONG, |d| ready(&d.proc("pinging")));
    let pinging = d.pid("pinging");
    d.wait_for("silent to be restarted twice", LONG, |d| {
        spawns(d, "silent") >= 3
    });
    assert!(
        d.log_text()
            .contains("watchdog: no WATCHDOG=1 within 300ms"),
        "{}",
        d.log_text()
    );
    // More than a second has passed: the one that pings was left alone.
    assert_eq!(d.pid("pinging"), pinging);
    assert_eq!(spawns(&d, "pinging"), 1);
}

#[test]
fn tcp_and_port_free_checks_follow_a_socket_held_by_the_test() {
    let tcp_port = free_port();
    // Held on every interface, where the port_free check binds.
    let held = TcpListener::bind("0.0.0.0:0").expect("bind");
    let busy_port = held.local_addr().expect("addr").port();
    let mut d = daemon(|_| {
        format!(
            r#"
[process.uses]
command = ["sleep", "1000"]
ready = {{ tcp = "127.0.0.1:{tcp_port}", period = "100ms" }}

[process.binds]
command = ["sleep", "1000"]
ready = {{ port_free = {busy_port}, period = "100ms" }}

[process.after_uses]
command = ["sleep", "1000"]
depends_on = {{ uses = "ready" }}

[process.after_binds]
command = ["sleep", "1000"]
depends_on = {{ binds = "ready" }}
"#
        )
    });
    // Nothing listens on tcp_port, and the test holds busy_port.
    d.wait_for("both checks to fail", LONG, |d| {
        d.proc("uses")["last_check"]["ok"] == false && d.proc("binds")["last_check"]["ok"] == false
    });
    let uses = d.proc("uses");
    assert_eq!(uses["last_check"]["detail"], "connection refused", "{uses}");
    let binds = d.proc("binds");
    assert_eq!(
        binds["last_check"]["detail"],
        format!("port {busy_port} is in use"),
        "{binds}"
    );
    for (name, dep) in [("after_uses", "uses"), ("after_binds", "binds")] {
        let p = d.proc(name);
        assert!(is(&p, "waiting"), "{p}");
        assert_eq!(p["waiting_for"], format!("{dep} (ready)"));
    }

    // Listening makes `uses` ready; `binds` still is not.
    let listener = TcpListener::bind(("127.0.0.1", tcp_port)).expect("bind the tcp port");
    d.wait_for("after_uses to run", LONG, |d| {
        is(&d.proc("after_uses"), "running")
    });
    assert!(ready(&d.proc("uses")));
    let binds = d.proc("binds");
    assert!(is(&binds, "starting") && binds["ready"] == false, "{binds}");
    assert!(is(&d.proc("after_binds"), "waiting"));

    // Releasing the port lets `binds` be ready, and its dependent start.
    drop(held);
    d.wait_for("after_binds to run", LONG, |d| {
        is(&d.proc("after_binds"), "running")
    });
    assert!(ready(&d.proc("binds")));
    drop(listener);
}

#[test]
fn killing_the_head_of_a_chain_restarts_the_chain_in_order() {
    let ports = [free_port(), free_port(), free_port()];
    let mut d = daemon(|_| {
        let [a, b, c] = ports;
        format!(
            r#"
[process.a]
command = ["python3", "-m", "http.server", "{a}", "--bind", "127.0.0.1"]
ready = {{ http = "http://127.0.0.1:{a}/", period = "100ms" }}

[process.b]
command = ["python3", "-m", "http.server", "{b}", "--bind", "127.0.0.1"]
ready = {{ http = "http://127.0.0.1:{b}/", period = "100ms" }}
depends_on = {{ a = {{ condition = "ready", restart = true }} }}

[process.c]
command = ["python3", "-m", "http.server", "{c}", "--bind", "127.0.0.1"]
ready = {{ http = "http://127.0.0.1:{c}/", period = "100ms" }}
depends_on = {{ b = {{ condition = "ready", restart = true }} }}
"#
        )
    });
    d.wait_for("the chain to be ready", LONG, |d| {
        d.status(&[]).iter().all(ready)
    });
    let before: Vec<Value> = ["a", "b", "c"].iter().map(|n| d.proc(n)).collect();
    let first = |i: usize| started_at(&before[i]).expect("started");
    assert!(first(0) < first(1) && first(1) < first(2), "{before:?}");
    let pids: Vec<u32> = ["a", "b", "c"].iter().map(|n| d.pid(n)).collect();

    kill9(pids[0]);
    d.wait_for("the chain to come back", LONG, |d| {
        let now = d.status(&[]);
        now.len() == 3
            && now.iter().all(ready)
            && now
                .iter()
                .zip(&before)
                .all(|(n, b)| started_at(n) != started_at(b))
    });
    let after: Vec<Value> = ["a", "b", "c"].iter().map(|n| d.proc(n)).collect();
    let again = |i: usize| started_at(&after[i]).expect("started");
    assert!(
        again(0) < again(1) && again(1) < again(2),
        "restarted in order a, b, c: {after:?}"
    );
    // b and c were stopped, not left running beside the new a.
    for (name, pid) in ["a", "b", "c"].iter().zip(&pids) {
        assert!(!alive(*pid), "the old {name} ({pid}) still runs");
        assert_eq!(spawns(&d, name), 2, "{name} is started exactly once more");
    }
    // Only a died by itself.
    assert_eq!(after[0]["last_exit"], serde_json::json!({"signal": "KILL"}));
    assert_eq!(after[1]["restarts"], 0, "{after:?}");
}

#[test]
fn a_failing_health_check_kills_a_process_that_still_runs() {
    let mut d = daemon(|dir| {
        std::fs::write(format!("{dir}/healthy"), "").expect("flag");
        format!(
            r#"
[process.h]
command = ["sleep", "1000"]
health = {{ exec = ["test", "-e", "{dir}/healthy"], period = "100ms", failure_threshold = 2 }}
backoff = {{ initial = "100ms", min_uptime = "10ms" }}
"#
        )
    });
    d.wait_for("h to be healthy", LONG, |d| {
        d.proc("h")["health"] == "healthy"
    });
    let pid = d.pid("h");
    std::fs::remove_file(d.dir.path().join("healthy")).expect("remove the flag");
    d.wait_for("h to be killed", LONG, |_| !alive(pid));
    assert!(
        d.log_text()
            .contains("health check failed 2 times in a row"),
        "{}",
        d.log_text()
    );
    std::fs::write(d.dir.path().join("healthy"), "").expect("flag");
    d.wait_for("a new h to be healthy", LONG, |d| {
        let p = d.proc("h");
        p["health"] == "healthy" && p["pid"] != pid
    });
    let h = d.proc("h");
    assert!(h["restarts"].as_u64().unwrap_or(0) >= 1, "{h}");
    assert_eq!(h["last_exit"], serde_json::json!({"signal": "TERM"}), "{h}");
}

#[test]
fn a_process_not_ready_within_start_timeout_is_restarted() {
    let mut d = daemon(|_| {
        r#"
[process.slow]
command = ["sleep", "1000"]
ready = { exec = ["false"], period = "100ms" }
start_timeout = "500ms"
backoff = { initial = "100ms", min_uptime = "10ms" }
"#
        .to_string()
    });
    d.wait_for("slow to be spawned", LONG, |d| {
        d.proc("slow")["pid"].is_u64()
    });
    let pid = d.pid("slow");
    d.wait_for("slow to be killed", LONG, |_| !alive(pid));
    d.wait_for("slow to be spawned again", LONG, |d| spawns(d, "slow") >= 2);
    assert!(
        d.log_text()
            .contains("not ready within start_timeout (500ms)"),
        "{}",
        d.log_text()
    );
    let slow = d.proc("slow");
    assert!(slow["restarts"].as_u64().unwrap_or(0) >= 1, "{slow}");
    assert_eq!(slow["last_check"]["detail"], "exit code 1", "{slow}");
}

#[test]
fn start_starts_stopped_dependencies_unless_no_deps() {
    let mut d = daemon(|_| {
        r#"
[process.db]
command = ["sleep", "1000"]
autostart = false

[process.web]
command = ["sleep", "1000"]
autostart = false
depends_on = { db = "started" }
"#
        .to_string()
    });
    let run = d.tend(&["start", "--no-deps", "web"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.stdout
            .contains("waiting for db (started), but db is stopped"),
        "{run}"
    );
    let web = d.proc("web");
    assert!(is(&web, "waiting"), "{web}");
    assert_eq!(web["waiting_for"], "db (started); db is stopped");
    assert!(is(&d.proc("db"), "stopped"));
    let table = d.ok(&["status", "web"]).stdout;
    assert!(
        table.contains("waiting for db (started); db is stopped"),
        "{table}"
    );
    // Starting db lets the waiting web go.
    d.ok(&["start", "db"]);
    d.wait_for("web to run", LONG, |d| is(&d.proc("web"), "running"));

    d.ok(&["stop", "all"]);
    assert!(is(&d.proc("db"), "stopped") && is(&d.proc("web"), "stopped"));
    // Without --no-deps, db comes first.
    let run = d.ok(&["start", "web"]);
    assert_eq!(
        run.stdout, "db: started (a dependency)\nweb: started\n",
        "{run}"
    );
    assert!(is(&d.proc("db"), "running"));
    assert!(is(&d.proc("web"), "running"));
}

#[test]
fn stop_all_stops_dependents_first() {
    let mut d = daemon(|_| {
        r#"
[process.db]
command = ["sleep", "1000"]
priority = 900

[process.web]
command = ["sleep", "1000"]
priority = 1
depends_on = ["db"]
"#
        .to_string()
    });
    d.wait_for("both to run", LONG, |d| {
        d.status(&[]).iter().all(|p| is(p, "running"))
    });
    d.ok(&["stop", "all"]);
    let log = d.log_text();
    let at = |s: &str| log.find(s).unwrap_or_else(|| panic!("no {s:?} in\n{log}"));
    assert!(at(" web: stopped\n") < at(" db: stopped\n"), "{log}");
}

#[test]
fn a_task_before_a_process_runs_once_before_it_starts() {
    let mut d = daemon(|dir| {
        format!(
            r#"
[task.migrate]
command = ["sh", "-c", "sleep 0.3; echo run >> {dir}/runs.txt"]
before = ["web", "worker"]

[process.web]
command = ["sh", "-c", "cat {dir}/runs.txt > {dir}/seen-by-web.txt; exec sleep 1000"]

[process.worker]
command = ["sh", "-c", "cat {dir}/runs.txt > {dir}/seen-by-worker.txt; exec sleep 1000"]
"#
        )
    });
    d.wait_for("web and worker to run", LONG, |d| {
        is(&d.proc("web"), "running") && is(&d.proc("worker"), "running")
    });
    let dir = d.dir.path().to_path_buf();
    assert_eq!(read(dir.join("runs.txt")), "run\n");
    assert_eq!(read(dir.join("seen-by-web.txt")), "run\n");
    assert_eq!(read(dir.join("seen-by-worker.txt")), "run\n");
    let migrate = d.proc("migrate");
    assert!(is(&migrate, "exited"), "{migrate}");
    assert_eq!(migrate["last_exit"], serde_json::json!({"code": 0}));
    assert_eq!(spawns(&d, "migrate"), 1);
}

#[test]
fn a_task_before_a_process_that_does_not_autostart_waits_for_it() {
    let mut d = daemon(|dir| {
        format!(
            r#"
[task.migrate]
command = ["sh", "-c", "echo run >> {dir}/runs.txt"]
before = ["web"]

[process.web]
command = ["sleep", "1000"]
autostart = false

[process.other]
command = ["sleep", "1000"]
"#
        )
    });
    d.wait_for("other to run", LONG, |d| is(&d.proc("other"), "running"));
    assert!(is(&d.proc("migrate"), "stopped"), "not run at up");
    let runs = d.dir.path().join("runs.txt");
    assert_eq!(read(&runs), "");
    let run = d.ok(&["start", "web"]);
    assert_eq!(
        run.stdout, "migrate: started (a dependency)\nweb: started\n",
        "{run}"
    );
    assert_eq!(read(&runs), "run\n");
    assert!(is(&d.proc("migrate"), "exited"));
    // Completed already: a restart of web does not run it again.
    d.ok(&["restart", "web"]);
    assert!(is(&d.proc("web"), "running"));
    assert_eq!(read(&runs), "run\n");
}

#[test]
fn a_failing_task_before_a_process_leaves_it_waiting_and_says_why() {
    let mut d = daemon(|_| {
        r#"
[task.migrate]
command = ["sh", "-c", "exit 7"]
before = ["web"]

[process.web]
command = ["sleep", "1000"]
"#
        .to_string()
    });
    d.wait_for("migrate to fail", LONG, |d| {
        is(&d.proc("migrate"), "exited")
    });
    let migrate = d.proc("migrate");
    assert_eq!(
        migrate["last_exit"],
        serde_json::json!({"code": 7}),
        "{migrate}"
    );
    d.wait_for("web to say why it waits", LONG, |d| {
        d.proc("web")["waiting_for"] == "migrate (completed); migrate exited without success"
    });
    let table = d.ok(&["status"]).stdout;
    let line = table
        .lines()
        .find(|l| l.starts_with("migrate"))
        .unwrap_or_default();
    assert!(
        line.contains("exited") && line.contains("code 7"),
        "{table}"
    );
}

#[test]
fn a_task_on_sighup_with_shutdown_runs_with_everything_else_stopped() {
    let mut d = daemon(|dir| {
        format!(
            r#"
[process.db]
command = ["sleep", "1000"]

[process.web]
command = ["sleep", "1000"]
depends_on = ["db"]

[process.api]
command = ["sleep", "1000"]

# Checks that db is down while it runs; it needs api, which stays up.
[task.backup]
command = ["sh", "-c", "if kill -0 $(cat {dir}/db.pid) 2>/dev/null; then echo db alive; else echo db down; fi >> {dir}/backup.txt"]
depends_on = ["api"]
on_signal = "HUP"
shutdown = true
"#
        )
    });
    d.wait_for("everything to run", LONG, |d| {
        ["db", "web", "api"]
            .iter()
            .all(|n| is(&d.proc(n), "running"))
    });
    let pids: Vec<u32> = ["db", "web", "api"].iter().map(|n| d.pid(n)).collect();
    std::fs::write(d.dir.path().join("db.pid"), pids[0].to_string()).expect("write pid");
    assert!(is(&d.proc("backup"), "stopped"), "not run at start");

    kill(Pid::from_raw(d.daemon_pid() as i32), Signal::SIGHUP).expect("HUP");
    d.wait_for("the task to run and db to be back", LONG, |d| {
        is(&d.proc("backup"), "exited")
            && ["db", "web"]
                .iter()
                .zip(&pids)
                .all(|(n, pid)| is(&d.proc(n), "running") && d.proc(n)["pid"] != *pid)
    });
    assert_eq!(read(d.dir.path().join("backup.txt")), "db down\n");
    assert_eq!(
        d.pid("api"),
        pids[2],
        "what the task depends on is not stopped"
    );
    let log = d.log_text();
    assert!(
        !log.contains("reloading"),
        "HUP runs the task instead:\n{log}"
    );
    let at = |s: &str| log.find(s).unwrap_or_else(|| panic!("no {s:?} in\n{log}"));
    assert!(
        at(" web: stopped\n") < at(" db: stopped\n"),
        "dependents first:\n{log}"
    );
    assert!(at(" db: stopped\n") < at(" backup: spawned"), "{log}");
    assert!(log.contains("task backup: done (exit code 0)"), "{log}");

    // A second HUP runs it again.
    kill(Pid::from_raw(d.daemon_pid() as i32), Signal::SIGHUP).expect("HUP");
    d.wait_for("the second run", LONG, |d| {
        read(d.dir.path().join("backup.txt")) == "db down\ndb down\n"
    });
    d.wait_for("db to be back again", LONG, |d| {
        is(&d.proc("db"), "running")
    });
}

#[test]
fn a_task_every_300ms_runs_periodically_and_is_skipped_while_it_runs() {
    let mut d = daemon(|dir| {
        format!(
            r#"
[task.tick]
command = ["sh", "-c", "echo tick >> {dir}/ticks.txt"]
every = "300ms"

# Takes longer than its period: some of its turns are skipped.
[task.slow]
command = ["sh", "-c", "echo start >> {dir}/slow.txt; sleep 0.5; echo end >> {dir}/slow.txt"]
every = "300ms"
"#
        )
    });
    d.wait_for("three ticks", LONG, |d| {
        read(d.dir.path().join("ticks.txt")).lines().count() >= 3
    });
    let tick = d.proc("tick");
    assert_eq!(tick["last_exit"], serde_json::json!({"code": 0}), "{tick}");
    d.wait_for("a skipped turn of slow", LONG, |d| {
        d.log_text()
            .contains("task slow: still running; its run every 300ms skipped")
    });
    d.wait_for("two runs of slow", LONG, |d| {
        read(d.dir.path().join("slow.txt")).matches("end").count() >= 2
    });
    // Never two runs at once: starts and ends alternate.
    let slow = read(d.dir.path().join("slow.txt"));
    for (i, line) in slow.lines().enumerate() {
        let want = if i % 2 == 0 { "start" } else { "end" };
        assert_eq!(line, want, "line {i} of\n{slow}");
    }
}

#[test]
fn a_failing_task_is_logged_with_its_exit_code_and_shown_in_status() {
    let mut d = daemon(|_| {
        r#"
[task.fails]
command = ["sh", "-c", "exit 3"]
on_signal = "USR1"
"#
        .to_string()
    });
    kill(Pid::from_raw(d.daemon_pid() as i32), Signal::SIGUSR1).expect("USR1");
    d.wait_for("the task to fail", LONG, |d| {
        d.log_text().contains("task fails: failed (exit code 3)")
    });
    let p = d.proc("fails");
    assert!(is(&p, "exited"), "{p}");
    assert_eq!(p["last_exit"], serde_json::json!({"code": 3}), "{p}");
}

#[test]
fn a_task_on_sigterm_with_terminate_runs_then_tend_exits() {
    let mut d = daemon(|dir| {
        format!(
            r#"
[process.svc]
command = ["sleep", "1000"]

[task.farewell]
command = ["sh", "-c", "echo bye > {dir}/bye.txt"]
on_signal = "TERM"
terminate = true
"#
        )
    });
    d.wait_for("svc to run", LONG, |d| is(&d.proc("svc"), "running"));
    let svc = d.pid("svc");
    let status = d.signal_and_wait(Signal::SIGTERM, LONG);
    assert!(status.success(), "{status}");
    assert_eq!(read(d.dir.path().join("bye.txt")), "bye\n");
    assert!(!alive(svc));
    let log = d.log_text();
    let at = |s: &str| log.find(s).unwrap_or_else(|| panic!("no {s:?} in\n{log}"));
    assert!(at("task farewell: done") < at(" svc: stopped\n"), "{log}");
}

#[test]
fn check_names_a_cycle_and_suggests_a_known_dependency() {
    let env = TestEnv::new(
        r#"
[process.a]
command = "sleep 1000"
depends_on = ["b"]

[process.b]
command = "sleep 1000"
depends_on = { c = "ready" }

[process.c]
command = "sleep 1000"
depends_on = ["a", "databse"]

[process.database]
command = "sleep 1000"
"#,
    );
    let run = env.tend(&["check"]);
    assert_eq!(run.code, Some(2), "{run}");
    let file = env.config.display();
    assert_eq!(
        run.stderr,
        format!(
            "{file}:4:15: dependency cycle: a -> b -> c -> a\n\
             {file}:12:20: unknown process \"databse\" in depends_on of [process.c] (did you mean \"database\"?)\n"
        ),
        "{run}"
    );
}
