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

    // The API's task list and the dashboard say the same.
    let port = crate::browser::tcp_to_unix(&d.socket);
    let tasks = crate::browser::http_get(port, "/v1/tasks");
    let body = tasks.split("\r\n\r\n").nth(1).unwrap_or_default();
    let tasks: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {tasks}"));
    let nightly = tasks
        .as_array()
        .and_then(|a| a.iter().find(|t| t["name"] == "nightly"))
        .unwrap_or_else(|| panic!("no nightly in {tasks}"));
    assert_eq!(nightly["cron"], "@midnight", "{nightly}");
    assert_eq!(nightly["timezone"], "Asia/Kathmandu", "{nightly}");
    let page = crate::browser::http_get(port, "/ui/");
    assert!(page.contains("cron @midnight (Asia/Kathmandu)"), "{page}");
    assert!(page.contains("data-cron=\"1\""), "{page}");
}

fn replicas_config(dir: &str, n: u32) -> String {
    format!(
        r#"
[process.web]
command = ["sh", "-c", "echo $TEND_REPLICA > {dir}/replica-$TEND_REPLICA; exec sleep 600"]
replicas = {n}
"#
    )
}

fn pids(d: &Daemon, names: &[&str]) -> Vec<u32> {
    names.iter().map(|n| d.pid(n)).collect()
}

#[test]
fn replicas_run_with_their_index_restart_as_a_group_and_reload_by_the_difference() {
    let mut d = daemon(|dir| replicas_config(dir, 3));
    let three = ["web-0", "web-1", "web-2"];
    d.wait_for("three copies running", LONG, |d| {
        three.iter().all(|n| d.state(n) == "running")
    });
    for i in 0..3 {
        let path = d.dir.path().join(format!("replica-{i}"));
        crate::harness::wait_until("the copy's file", LONG, || path.exists());
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(text.trim(), i.to_string());
    }
    for p in d.status(&[]) {
        assert_eq!(p["group"], "web", "{p}");
    }

    // `web` is the group: every copy restarts.
    let before = pids(&d, &three);
    d.ok(&["restart", "web"]);
    let after = pids(&d, &three);
    for (b, a) in before.iter().zip(&after) {
        assert_ne!(b, a, "restarted: {before:?} -> {after:?}");
    }

    // 3 -> 5 adds two and leaves the three alone.
    let dir = d.dir.path().display().to_string();
    std::fs::write(&d.config, replicas_config(&dir, 5)).expect("write config");
    d.ok(&["reload"]);
    let five = ["web-0", "web-1", "web-2", "web-3", "web-4"];
    d.wait_for("five copies running", LONG, |d| {
        five.iter().all(|n| d.state(n) == "running")
    });
    assert_eq!(pids(&d, &three), after, "the first three were left running");

    // 5 -> 2 removes three.
    std::fs::write(&d.config, replicas_config(&dir, 2)).expect("write config");
    d.ok(&["reload"]);
    let names: Vec<String> = d
        .status(&[])
        .iter()
        .map(|p| p["name"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(names, ["web-0", "web-1"]);
    assert_eq!(pids(&d, &["web-0", "web-1"]), after[..2]);
}

#[test]
fn a_dependency_on_replicas_waits_for_all_of_them() {
    let d = daemon(|dir| {
        format!(
            r#"
[process.web]
# Copy 1 is ready a second after the others.
command = ["sh", "-c", "sleep $TEND_REPLICA; touch {dir}/ready-$TEND_REPLICA; exec sleep 600"]
replicas = 2
ready = {{ exec = ["sh", "-c", "test -e {dir}/ready-$TEND_REPLICA"], period = "100ms" }}

[process.proxy]
# Written whole, then renamed: the test never reads it half-written.
command = ["sh", "-c", "ls {dir} > {dir}/seen.tmp && mv {dir}/seen.tmp {dir}/seen; exec sleep 600"]
depends_on = {{ web = "ready" }}
"#
        )
    });
    let seen = d.dir.path().join("seen");
    crate::harness::wait_until("proxy to start", LONG, || seen.exists());
    let text = std::fs::read_to_string(&seen).unwrap_or_default();
    assert!(
        text.contains("ready-0") && text.contains("ready-1"),
        "proxy started before both copies were ready:\n{text}"
    );
}

/// How many times the daemon's log says `name` was restarted by its watch.
fn watch_restarts(d: &Daemon, name: &str) -> usize {
    d.log_text()
        .matches(&format!("{name}: restarting: "))
        .count()
}

#[test]
fn a_change_to_a_watched_file_restarts_the_process_once_and_ignored_files_do_not() {
    let mut d = daemon(|dir| {
        std::fs::create_dir_all(format!("{dir}/app/src/gen")).expect("mkdir");
        std::fs::write(format!("{dir}/app/src/main.py"), "print(1)\n").expect("write");
        format!(
            r#"
[process.api]
command = ["sleep", "600"]
cwd = "{dir}/app"
watch = ["src/**/*.py"]
watch_ignore = ["src/gen/**"]
watch_debounce = "300ms"
"#
        )
    });
    let src = d.dir.path().join("app/src");
    d.wait_for("api running", LONG, |d| d.state("api") == "running");
    let first = d.pid("api");

    // Touching a matching file (its times alone change) restarts it, and
    // the log says which file.
    std::fs::File::options()
        .write(true)
        .open(src.join("main.py"))
        .and_then(|f| f.set_modified(std::time::SystemTime::now()))
        .expect("touch");
    d.wait_for("a restart", LONG, |d| watch_restarts(d, "api") == 1);
    assert!(
        d.log_text()
            .contains("api: restarting: src/main.py changed (watch)"),
        "{}",
        d.log_text()
    );
    d.wait_for("a new pid", LONG, |d| {
        d.state("api") == "running" && d.pid("api") != first
    });
    let second = d.pid("api");

    // An ignored file and a file that does not match: no restart. Then a
    // burst of 20 writes to a matching file: one.
    std::fs::write(src.join("gen/out.py"), "x\n").expect("write");
    std::fs::write(src.join("notes.txt"), "x\n").expect("write");
    for i in 0..20 {
        std::fs::write(src.join("burst.py"), format!("{i}\n")).expect("write");
    }
    d.wait_for("the burst's restart", LONG, |d| {
        watch_restarts(d, "api") == 2
    });
    let log = d.log_text();
    assert!(
        log.contains("api: restarting: src/burst.py changed"),
        "{log}"
    );
    assert!(
        !log.contains("gen/out.py") && !log.contains("notes.txt"),
        "{log}"
    );
    d.wait_for("a third pid", LONG, |d| {
        d.state("api") == "running" && d.pid("api") != second
    });
    // A later change restarts it again: the burst made exactly one.
    std::fs::write(src.join("later.py"), "x\n").expect("write");
    d.wait_for("the next restart", LONG, |d| {
        d.log_text()
            .contains("api: restarting: src/later.py changed")
    });
    assert_eq!(watch_restarts(&d, "api"), 3, "{}", d.log_text());
}

#[test]
fn a_reload_changes_what_is_watched() {
    let mut d = daemon(|dir| {
        std::fs::create_dir_all(format!("{dir}/a")).expect("mkdir");
        std::fs::create_dir_all(format!("{dir}/b")).expect("mkdir");
        "[process.w]\ncommand = [\"sleep\", \"600\"]\nwatch = [\"a/*.txt\"]\nwatch_debounce = \"100ms\"\n"
            .to_string()
    });
    d.wait_for("w running", LONG, |d| d.state("w") == "running");
    std::fs::write(
        &d.config,
        "[process.w]\ncommand = [\"sleep\", \"600\"]\nwatch = [\"b/*.txt\"]\nwatch_debounce = \"100ms\"\n",
    )
    .expect("write config");
    d.ok(&["reload"]);
    d.wait_for("w running again", LONG, |d| d.state("w") == "running");
    let dir = d.dir.path().to_path_buf();
    std::fs::write(dir.join("a/old.txt"), "x").expect("write");
    std::fs::write(dir.join("b/new.txt"), "x").expect("write");
    d.wait_for("the restart", LONG, |d| watch_restarts(d, "w") == 1);
    let log = d.log_text();
    assert!(log.contains("w: restarting: b/new.txt changed"), "{log}");
    assert!(!log.contains("a/old.txt"), "{log}");
}

#[test]
fn scale_adds_and_removes_copies_at_run_time() {
    let mut d = daemon(|dir| replicas_config(dir, 2));
    d.wait_for("two copies running", LONG, |d| {
        ["web-0", "web-1"].iter().all(|n| d.state(n) == "running")
    });
    let before = pids(&d, &["web-0", "web-1"]);

    let out = d.ok(&["scale", "web", "4"]).stdout;
    assert_eq!(out, "web: 2 -> 4 replicas; added web-2, web-3\n");
    d.wait_for("four copies running", LONG, |d| {
        ["web-2", "web-3"].iter().all(|n| d.state(n) == "running")
    });
    assert_eq!(pids(&d, &["web-0", "web-1"]), before, "left running");
    let p = d.dir.path().join("replica-3");
    crate::harness::wait_until("copy 3's file", LONG, || p.exists());
    assert_eq!(std::fs::read_to_string(&p).unwrap_or_default().trim(), "3");
    for p in d.status(&[]) {
        assert_eq!(p["group"], "web", "{p}");
    }

    let out = d.ok(&["scale", "web", "1"]).stdout;
    assert_eq!(out, "web: 4 -> 1 replicas; removed web-1, web-2, web-3\n");
    let names: Vec<Value> = d.status(&[]).iter().map(|p| p["name"].clone()).collect();
    assert_eq!(names, ["web-0"]);
    assert_eq!(d.pid("web-0"), before[0]);

    for (args, want) in [
        (["scale", "nope", "2"], "nope has no replicas"),
        (
            ["scale", "web", "0"],
            "expected a number of copies from 1 to 10000",
        ),
    ] {
        let run = d.tend(&args);
        assert_ne!(run.code, Some(0), "{run}");
        assert!(run.stderr.contains(want), "{run}");
    }
}

/// Ten ports `BASE0` .. `BASE9` that nothing listens on now, as `BASE`.
fn port_base() -> u16 {
    for _ in 0..50 {
        let base = crate::harness::free_port() / 10;
        if (1000..6553).contains(&base)
            && (0..10).all(|i| std::net::TcpListener::bind(("127.0.0.1", base * 10 + i)).is_ok())
        {
            return base;
        }
    }
    panic!("no ten free ports in a row after 50 tries");
}

/// A copy that writes its index into the file named by its first argument and
/// listens on the port of its second: no shell, so tend must have put the
/// index into the arguments, the log path and the check.
fn indexed_config(dir: &str, base: u16, n: u32, extra: &str) -> String {
    format!(
        r#"
[daemon]
env = {{ PORT_BASE = "{base}" }}

[process.web]
replicas = {n}
command = ["python3", "-c", 'import socket, sys; open(sys.argv[1], "w").write(sys.argv[2]); print("copy on", sys.argv[2], flush=True); s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[2]))); s.listen(); [s.accept()[0].close() for _ in iter(int, 1)]', "{dir}/copy-${{TEND_REPLICA}}.txt", "${{PORT_BASE}}${{TEND_REPLICA}}"{extra}]
logs.stdout = "{dir}/web-${{TEND_REPLICA}}.out"
ready = {{ tcp = "127.0.0.1:${{PORT_BASE}}${{TEND_REPLICA}}", period = "100ms" }}
"#
    )
}

#[test]
fn each_copy_gets_its_index_in_its_command_logs_and_check_and_so_does_a_scaled_one() {
    let base = port_base();
    let mut d = daemon(|dir| indexed_config(dir, base, 2, ""));
    let ready = |d: &Daemon, n: &str| {
        let p = d.proc(n);
        p["state"] == "running" && p["ready"] == true
    };
    d.wait_for("two copies ready", LONG, |d| {
        ready(d, "web-0") && ready(d, "web-1")
    });
    let check = |d: &Daemon, i: u16| {
        let port = base * 10 + i;
        let file = d.dir.path().join(format!("copy-{i}.txt"));
        assert_eq!(
            std::fs::read_to_string(&file).unwrap_or_default(),
            port.to_string()
        );
        std::net::TcpStream::connect(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("copy {i} listens on {port}: {e}"));
        let log = d.dir.path().join(format!("web-{i}.out"));
        crate::harness::wait_until("the copy's own log", LONG, || {
            std::fs::read_to_string(&log).is_ok_and(|t| t.contains(&format!("copy on {port}")))
        });
    };
    check(&d, 0);
    check(&d, 1);

    // A copy made by `tend scale` has its own index, not copy 0's.
    let out = d.ok(&["scale", "web", "3"]).stdout;
    assert_eq!(out, "web: 2 -> 3 replicas; added web-2\n");
    d.wait_for("the third copy ready", LONG, |d| ready(d, "web-2"));
    check(&d, 2);

    // The file saying 3 copies is what runs: nothing restarts.
    let three = pids(&d, &["web-0", "web-1", "web-2"]);
    let dir = d.dir.path().display().to_string();
    std::fs::write(&d.config, indexed_config(&dir, base, 3, "")).expect("write config");
    d.ok(&["reload"]);
    assert_eq!(
        pids(&d, &["web-0", "web-1", "web-2"]),
        three,
        "left running"
    );

    // A changed template is a changed copy: all of them restart, each with
    // its own index still.
    std::fs::write(&d.config, indexed_config(&dir, base, 3, r#", "again""#)).expect("write config");
    d.ok(&["reload"]);
    d.wait_for("three restarted copies ready", LONG, |d| {
        (0..3).all(|i| ready(d, &format!("web-{i}")))
    });
    let after = pids(&d, &["web-0", "web-1", "web-2"]);
    for (b, a) in three.iter().zip(&after) {
        assert_ne!(b, a, "restarted: {three:?} -> {after:?}");
    }
    for i in 0..3 {
        check(&d, i);
    }
}

/// `tend import` of `numprocs`: one table with `replicas`, and the imported
/// file runs each copy with its own number where supervisord had
/// `%(process_num)d`.
#[test]
fn an_imported_numprocs_runs_as_copies_with_their_index() {
    let env = TestEnv::new("");
    let conf = env.dir.path().join("supervisord.conf");
    std::fs::write(
        &conf,
        "[supervisord]\nlogfile=%(here)s/supervisord.log\nchildlogdir=%(here)s\n\n\
         [program:w]\n\
         command=sh -c 'echo %(process_num)d > %(here)s/n-%(process_num)d; exec sleep 600'\n\
         process_name=%(program_name)s-%(process_num)d\n\
         numprocs=2\n\
         environment=N=\"%(process_num)d\"\n",
    )
    .expect("write supervisord.conf");
    let run = env.tend_bare(&["import", conf.to_str().expect("utf-8")]);
    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.stdout.contains("[process.w]\nreplicas = 2\n"), "{run}");
    assert!(!run.stdout.contains("differ"), "nothing differs:\n{run}");
    std::fs::write(&env.config, &run.stdout).expect("write tend.toml");
    let mut d = Daemon::start_in(env);
    d.wait_for("both copies running", LONG, |d| {
        ["w-0", "w-1"].iter().all(|n| d.state(n) == "running")
    });
    for i in 0..2 {
        let path = d.dir.path().join(format!("n-{i}"));
        crate::harness::wait_until("the copy's file", LONG, || path.exists());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap_or_default().trim(),
            i.to_string()
        );
        let pid = d.pid(&format!("w-{i}"));
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let environ = String::from_utf8_lossy(&environ);
        assert!(
            environ.split('\0').any(|v| v == format!("N={i}")),
            "{environ}"
        );
    }
}
