//! Many daemons from one `tend`: real daemons on distinct loopback addresses
//! (127.0.0.1, .2, .3), each with TLS and a bearer token, and the real client
//! fanning out to them through a hosts file: status (table and JSON), a host
//! down, a wrong CA, a host that never answers, merged logs (with -f), and a
//! rolling restart that stops at the host whose process does not become
//! ready.

// This test binary has no reaper: waiting for the programs it starts is its job.
#![allow(clippy::disallowed_methods)]

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Daemon, Run, TEND, TestEnv, wait_until};
use crate::pki::{self, Ca};

/// The token every daemon of these tests accepts (as `[access.token.ops]`).
const TOKEN: &str = "fleet-token-0123456789";

/// A daemon listening with TLS on `addr`, its certificate from `ca`, that
/// wants the token; `extra` is more config (its processes).
fn daemon(ca: &Ca, addr: &str, extra: &str) -> (Daemon, String) {
    let env = TestEnv::new("");
    let dir = env.dir.path().to_path_buf();
    ca.write(&dir.join("ca.pem"));
    ca.leaf(&dir, "server", "tend", &[addr], false);
    fs::write(
        &env.config,
        format!(
            "[http]\nlisten = [\"{addr}:0\"]\ntls_cert = \"server.pem\"\ntls_key = \"server.key\"\n\n\
             [access.token.ops]\nhash = \"{{PLAIN}}{TOKEN}\"\nroles = [\"admin\"]\n\n{extra}"
        ),
    )
    .expect("write config");
    let mut d = Daemon::start_in(env);
    let url = pki::wait_urls(&mut d, 1).remove(0);
    assert!(url.starts_with(&format!("https://{addr}:")), "{url}");
    (d, url)
}

fn running(d: &Daemon) {
    wait_until("web to run", Duration::from_secs(10), || {
        d.state("web") == "running"
    });
}

/// A process that says which host it runs on, and says it again on SIGHUP.
fn speaker(n: u32) -> String {
    format!(
        "[process.web]\ncommand = [\"sh\", \"-c\", \"trap 'echo hup-{n}' HUP; echo started-{n}; while :; do sleep 0.05; done\"]\n"
    )
}

/// Whether 127.0.0.2 can be bound (Linux routes all of 127/8 to lo).
fn loopbacks() -> bool {
    tend_testkit::require(
        std::net::TcpListener::bind("127.0.0.3:0").is_ok(),
        "127.0.0.3 cannot be bound here (no 127.0.0.0/8 on lo)",
    )
}

fn tend(hosts: &Path, args: &[&str], envs: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(TEND);
    cmd.arg("--hosts")
        .arg(hosts)
        .args(args)
        .env_remove("TEND_SOCKET")
        .env_remove("TEND_TOKEN")
        .env_remove("TEND_HOST")
        .stdin(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run tend");
    Run::from(out, args)
}

struct Fleet {
    daemons: Vec<(Daemon, String)>,
    hosts: PathBuf,
    _dir: tempfile::TempDir,
}

/// Three daemons, and a hosts file naming them, one more that is down, one
/// with the wrong CA and one that accepts connections but never answers.
fn fleet(configs: [&str; 3], hung: &std::net::TcpListener) -> Fleet {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("fleet CA");
    let ca_file = ca.write(&dir.path().join("ca.pem"));
    let other = Ca::new("another CA");
    let other_file = other.write(&dir.path().join("other.pem"));
    let daemons: Vec<(Daemon, String)> = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
        .iter()
        .zip(configs)
        .map(|(addr, extra)| daemon(&ca, addr, extra))
        .collect();
    fs::write(dir.path().join("token"), format!("{TOKEN}\n")).expect("token file");
    let down = pki::free_port();
    let hung_port = hung.local_addr().expect("addr").port();
    let text = format!(
        r#"[host.h1]
url = "{u1}"
ca = "ca.pem"
token = "{TOKEN}"

[host.h2]
url = "{u2}"
ca = "ca.pem"
token_command = ["cat", "{tok}"]

# No login here: TEND_TOKEN.
[host.h3]
url = "{u3}"
ca = "ca.pem"

[host.down]
url = "https://127.0.0.1:{down}"
ca = "ca.pem"

[host.badca]
url = "{u1}"
ca = "{other}"
token = "{TOKEN}"

[host.hung]
url = "https://127.0.0.1:{hung_port}"
ca = "ca.pem"

[group]
web = ["h1", "h2", "h3"]
"#,
        u1 = daemons[0].1,
        u2 = daemons[1].1,
        u3 = daemons[2].1,
        tok = dir.path().join("token").display(),
        other = other_file.display(),
    );
    let _ = ca_file;
    let hosts = dir.path().join("hosts.toml");
    fs::write(&hosts, text).expect("hosts file");
    Fleet {
        daemons,
        hosts,
        _dir: dir,
    }
}

/// Status, errors, logs and signals across three daemons.
#[test]
fn fan_out_status_errors_and_merged_logs() {
    if !loopbacks() {
        return;
    }
    let hung = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let f = fleet([&speaker(1), &speaker(2), &speaker(3)], &hung);
    let env = [("TEND_TOKEN", TOKEN)];
    for (d, _) in &f.daemons {
        running(d);
    }

    // The table gains a HOST column, in the order of the group.
    let run = tend(&f.hosts, &["-H", "@web", "status"], &env);
    assert_eq!(run.code, Some(0), "{run}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("HOST  NAME  GROUP  STATE"), "{run}");
    for (i, line) in lines[1..].iter().enumerate() {
        assert!(
            line.starts_with(&format!("h{}    web   web    running", i + 1)),
            "{run}"
        );
    }
    assert_eq!(lines.len(), 4, "{run}");

    // --json: one array, `host` on each element.
    let run = tend(&f.hosts, &["-H", "all", "status", "--json", "web"], &env);
    let all: Vec<Value> = serde_json::from_str(&run.stdout).expect("json");
    let hosts: Vec<&str> = all.iter().filter_map(|p| p["host"].as_str()).collect();
    assert_eq!(hosts, ["h1", "h2", "h3"], "{run}");
    assert!(all.iter().all(|p| p["name"] == "web"), "{run}");
    // `all` includes the broken hosts too: each its own line, the others answer.
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stderr.contains("down: error: cannot reach"), "{run}");
    assert!(run.stderr.contains("badca: error: TLS"), "{run}");
    assert!(run.stderr.contains("hung: error: "), "{run}");
    assert!(
        run.stderr
            .ends_with("error: 3 of 6 hosts failed: badca, down, hung\n"),
        "{run}"
    );

    // A host that accepts but never answers costs --timeout, no more.
    let t0 = Instant::now();
    let run = tend(
        &f.hosts,
        &["-H", "h1,hung", "--timeout", "1s", "status"],
        &env,
    );
    assert!(t0.elapsed() < Duration::from_secs(5), "{run}");
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stdout.contains("h1    web"), "{run}");
    assert!(run.stderr.contains("hung: error: "), "{run}");
    assert!(run.stderr.contains("1 of 2 hosts failed: hung"), "{run}");

    // Without TEND_TOKEN, h3 (which names no login) is refused; the rest answer.
    let run = tend(&f.hosts, &["-H", "@web", "status"], &[]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stderr.contains("h3: error: "), "{run}");
    assert!(run.stderr.contains("wants credentials"), "{run}");
    assert_eq!(run.stdout.lines().count(), 3, "{run}");

    // Unknown names, with a suggestion, and a bad hosts file at its line.
    let run = tend(&f.hosts, &["-H", "h4", "status"], &env);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stderr.contains("-H h4: no such host in"), "{run}");
    let bad = f.hosts.with_file_name("bad.toml");
    fs::write(&bad, "[host.x]\nurl = \"https://x:1\"\ntokn = \"t\"\n").expect("write");
    let run = tend(&bad, &["-H", "x", "status"], &env);
    assert!(
        run.stderr
            .contains("bad.toml:3:1: unknown key \"tokn\" in [host.x]"),
        "{run}"
    );

    // Merged logs: `host/name |`.
    let run = tend(&f.hosts, &["-H", "@web", "logs", "web"], &env);
    assert_eq!(run.code, Some(0), "{run}");
    for n in 1..=3 {
        assert!(
            run.stdout.contains(&format!("h{n}/web | started-{n}\n")),
            "{run}"
        );
    }

    // logs -f from two hosts, and a signal fanned out to them.
    let mut follow = Command::new(TEND)
        .arg("--hosts")
        .arg(&f.hosts)
        .args(["-H", "h1,h2", "logs", "-f", "-n", "0", "web"])
        .env("TEND_TOKEN", TOKEN)
        .env_remove("TEND_HOST")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("logs -f");
    let (tx, rx) = mpsc::channel();
    let stdout = follow.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let want = ["h1/web | hup-1", "h2/web | hup-2"];
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut next_signal = Instant::now();
    while !want.iter().all(|w| seen.iter().any(|s: &String| s == w)) {
        assert!(Instant::now() < deadline, "saw only {seen:?}");
        // The stream may open after the first signal: send it again.
        if Instant::now() >= next_signal {
            let run = tend(&f.hosts, &["-H", "h1,h2", "signal", "HUP", "web"], &env);
            assert_eq!(run.code, Some(0), "{run}");
            assert!(run.stdout.contains("h1: web: sent HUP\n"), "{run}");
            assert!(run.stdout.contains("h2: web: sent HUP\n"), "{run}");
            next_signal = Instant::now() + Duration::from_secs(2);
        }
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push(line);
        }
    }
    assert!(!seen.iter().any(|l| l.contains("h3/")), "{seen:?}");
    let _ = follow.kill();
    let _ = follow.wait();
    drop(hung);
}

/// `restart --one-at-a-time --wait-ready`: h1 restarts and is ready, h2's
/// process never becomes ready, so h3 is not touched.
#[test]
fn rolling_restart_stops_at_the_first_host_not_ready() {
    if !loopbacks() {
        return;
    }
    let hung = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let plain = "[process.web]\ncommand = [\"sleep\", \"1000\"]\n";
    let never_ready = "[process.web]\ncommand = [\"sleep\", \"1000\"]\n\n[process.web.ready]\nexec = [\"false\"]\nperiod = \"100ms\"\n";
    let f = fleet([plain, never_ready, plain], &hung);
    let env = [("TEND_TOKEN", TOKEN)];
    running(&f.daemons[0].0);
    running(&f.daemons[2].0);
    let pids: Vec<u32> = f.daemons.iter().map(|(d, _)| d.pid("web")).collect();

    let run = tend(
        &f.hosts,
        &[
            "-H",
            "@web",
            "restart",
            "--one-at-a-time",
            "--wait-ready",
            "--ready-timeout",
            "1s",
            "web",
        ],
        &env,
    );
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.stdout.contains("h1: web: restarted\nh1: ready\n"),
        "{run}"
    );
    assert!(!run.stdout.contains("h2:"), "{run}");
    assert!(!run.stdout.contains("h3:"), "{run}");
    assert!(
        run.stderr
            .contains("h2: error: the restart did not finish within 1s: web not ready"),
        "{run}"
    );
    assert!(
        run.stderr
            .contains("h2: the rolling restart stops here; not restarted: h3"),
        "{run}"
    );
    assert!(
        run.stderr.ends_with("error: 1 of 3 hosts failed: h2\n"),
        "{run}"
    );
    assert_ne!(f.daemons[0].0.pid("web"), pids[0], "h1 restarted");
    assert_eq!(f.daemons[2].0.pid("web"), pids[2], "h3 untouched");

    // Without --one-at-a-time every host restarts at once.
    let run = tend(&f.hosts, &["-H", "h1,h3", "restart", "web"], &env);
    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.stdout.contains("h3: web: restarted\n"), "{run}");
    assert_ne!(f.daemons[2].0.pid("web"), pids[2], "h3 restarted");
    drop(hung);
}

/// With several hosts, the verbs whose `--json` is one document per host
/// print one array (`host` on each element), and `logs -f` writes each line
/// as it arrives, whichever host it comes from.
#[test]
fn several_hosts_give_one_json_document_and_follow_in_arrival_order() {
    if !loopbacks() {
        return;
    }
    let hung = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let f = fleet([&speaker(1), &speaker(2), &speaker(3)], &hung);
    let env = [("TEND_TOKEN", TOKEN)];
    for (d, _) in &f.daemons {
        running(d);
    }
    let array = |args: &[&str]| -> Vec<Value> {
        let run = tend(&f.hosts, args, &env);
        assert_eq!(run.code, Some(0), "{run}");
        assert_eq!(run.stdout.lines().count(), 1, "one document: {run}");
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run}"))
    };
    let hosts_of = |all: &[Value]| -> Vec<String> {
        all.iter()
            .map(|v| v["host"].as_str().unwrap_or("?").to_string())
            .collect()
    };

    let pids = array(&["-H", "@web", "pid", "--json", "web"]);
    assert_eq!(hosts_of(&pids), ["h1", "h2", "h3"]);
    for (v, (d, _)) in pids.iter().zip(&f.daemons) {
        assert_eq!(v["pid"], d.pid("web"), "{v}");
        assert_eq!(v["name"], "web", "{v}");
    }

    let reloads = array(&["-H", "@web", "reload", "--json"]);
    assert_eq!(hosts_of(&reloads), ["h1", "h2", "h3"]);
    assert!(
        reloads
            .iter()
            .all(|r| r["changed"] == serde_json::json!([])),
        "{reloads:?}"
    );

    let files = array(&["-H", "@web", "logs", "--files", "--json", "web"]);
    assert_eq!(hosts_of(&files), ["h1", "h2", "h3"]);
    assert!(
        files
            .iter()
            .all(|i| i["name"] == "web" && i["stdout"].is_string()),
        "{files:?}"
    );

    let lines = array(&["-H", "@web", "logs", "--json", "web"]);
    for n in 1..=3 {
        assert!(
            lines.iter().any(|l| l["host"] == format!("h{n}")
                && l["line"]
                    .as_str()
                    .is_some_and(|t| t.contains(&format!("started-{n}")))),
            "h{n}'s first line: {lines:?}"
        );
    }
    let times: Vec<&str> = lines.iter().filter_map(|l| l["time"].as_str()).collect();
    let mut sorted = times.clone();
    sorted.sort_unstable();
    assert_eq!(times, sorted, "in time order");

    // logs -f from h1 and h2: h2, then h1, then h2 again, each seen before
    // the next is caused; a host's lines are never held back for another's.
    let mut follow = Command::new(TEND)
        .arg("--hosts")
        .arg(&f.hosts)
        .args(["-H", "h1,h2", "logs", "-f", "-n", "0", "web"])
        .env("TEND_TOKEN", TOKEN)
        .env_remove("TEND_HOST")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("logs -f");
    let (tx, rx) = mpsc::channel();
    let stdout = follow.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen: Vec<String> = Vec::new();
    for (host, n) in [("h2", 2), ("h1", 1), ("h2", 2)] {
        let want = format!("{host}/web | hup-{n}");
        let before = seen.iter().filter(|l| **l == want).count();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut next_signal = Instant::now();
        while seen.iter().filter(|l| **l == want).count() == before {
            assert!(
                Instant::now() < deadline,
                "waiting for {want}, saw {seen:?}"
            );
            // The stream may open after the first signal: send it again.
            if Instant::now() >= next_signal {
                let run = tend(&f.hosts, &["-H", host, "signal", "HUP", "web"], &env);
                assert_eq!(run.code, Some(0), "{run}");
                next_signal = Instant::now() + Duration::from_secs(2);
            }
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
                seen.push(line);
            }
        }
    }
    let order: Vec<&str> = seen
        .iter()
        .filter(|l| l.contains("| hup-"))
        .map(|l| &l[..2])
        .collect();
    // Repeated signals may repeat a line; the order of hosts is the order caused.
    let mut dedup = order.clone();
    dedup.dedup();
    assert_eq!(dedup, ["h2", "h1", "h2"], "{seen:?}");
    let _ = follow.kill();
    let _ = follow.wait();
    drop(hung);
}

/// `--wait-ready` learns of readiness from the event stream: it returns
/// soon after the process becomes ready, with a handful of requests however
/// long it waited (not one status read every tenth of a second). (With a
/// `ready` check the restart's own answer already waits for it; the wait
/// then reads the stream's snapshot and is done.)
#[test]
fn wait_ready_follows_the_event_stream() {
    if !loopbacks() {
        return;
    }
    let ca = Ca::new("wait CA");
    let (d, url) = daemon(
        &ca,
        "127.0.0.1",
        "[process.web]\ncommand = [\"sleep\", \"1000\"]\nstop.timeout = \"2s\"\n\n\
         [process.web.ready]\nexec = [\"test\", \"-f\", \"ready.flag\"]\nperiod = \"100ms\"\n",
    );
    let flag = d.dir.path().join("ready.flag");
    fs::write(&flag, "").expect("flag");
    wait_until("web to be ready", Duration::from_secs(10), || {
        d.proc("web")["ready"] == true
    });
    fs::remove_file(&flag).expect("unflag");
    let ca_file = d.dir.path().join("ca.pem");
    let requests = || -> u64 {
        let port = crate::browser::tcp_to_unix(&d.socket);
        let text = crate::browser::http_get(port, "/metrics");
        text.lines()
            .filter(|l| l.starts_with("tend_http_requests_total{door=\"inet\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    let before = requests();
    let mut restart = Command::new(TEND)
        .args(["--host", &url, "--ca"])
        .arg(&ca_file)
        .args([
            "restart",
            "--one-at-a-time",
            "--wait-ready",
            "--ready-timeout",
            "20s",
            "web",
        ])
        .env("TEND_TOKEN", TOKEN)
        .env_remove("TEND_HOSTS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("restart");
    // Restarted and not ready: waiting.
    wait_until(
        "web to run again, not ready",
        Duration::from_secs(10),
        || {
            if let Some(st) = restart.try_wait().expect("try_wait") {
                let mut err = String::new();
                let _ = std::io::Read::read_to_string(
                    restart.stderr.as_mut().expect("stderr"),
                    &mut err,
                );
                panic!("restart ended early ({st}): {err}");
            }
            let p = d.proc("web");
            (p["state"] == "starting" || p["state"] == "running") && p["ready"] == false
        },
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert!(restart.try_wait().expect("try_wait").is_none(), "it waits");
    let made_ready = Instant::now();
    fs::write(&flag, "").expect("flag");
    let status = loop {
        if let Some(s) = restart.try_wait().expect("try_wait") {
            break s;
        }
        assert!(
            made_ready.elapsed() < Duration::from_secs(10),
            "it did not notice"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "restart --wait-ready failed");
    let asked = requests() - before;
    assert!(asked <= 5, "{asked} requests for one wait");
}
