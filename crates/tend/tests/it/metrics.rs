//! `GET /metrics` against the real Prometheus: `promtool check metrics`
//! accepts the exposition, and a Prometheus server scraping a daemon every
//! second sees the series and sees them move when a process restarts.

// This test binary waits for the Prometheus it starts.
#![allow(clippy::disallowed_methods)]

use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::harness::{Daemon, TestEnv, free_port};

/// One HTTP/1.0 exchange on `stream`: the status and the body.
fn exchange(mut stream: impl Read + Write, path: &str, accept: &str) -> (u16, String) {
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: localhost\r\nAccept: {accept}\r\n\r\n"
    )
    .expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

fn get_tcp(port: u16, path: &str) -> (u16, String) {
    let s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    exchange(s, path, "text/plain")
}

pub(crate) fn get_unix(socket: &Path, path: &str) -> (u16, String) {
    let s = std::os::unix::net::UnixStream::connect(socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    exchange(s, path, "text/plain")
}

/// A supervisord.conf with a TCP listener on `port`: `web` runs until
/// killed (and is restarted), `chatty` prints a line.
fn conf(port: u16) -> String {
    format!(
        r#"[unix_http_server]
file=%(here)s/supervisor.sock

[inet_http_server]
port=127.0.0.1:{port}

[supervisord]
logfile=%(here)s/supervisord.log
childlogdir=%(here)s/logs

[program:web]
command=/bin/sleep 100000
startsecs=0
stopwaitsecs=2

[program:chatty]
command=/bin/sh -c "echo hello from chatty; exec sleep 100000"
startsecs=0
stopwaitsecs=2
"#
    )
}

/// A Prometheus server on a loopback port with its own config and storage
/// in `dir`, scraping `target` every second; killed when dropped.
struct Prometheus {
    child: Child,
    port: u16,
}

impl Prometheus {
    fn start(binary: &Path, dir: &Path, target: u16) -> Prometheus {
        let port = free_port();
        let config = dir.join("prometheus.yml");
        fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n  - job_name: tend\n    static_configs:\n      \
                 - targets: ['127.0.0.1:{target}']\n"
            ),
        )
        .expect("write prometheus.yml");
        let log = fs::File::create(dir.join("prometheus.log")).expect("log");
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        Prometheus { child, port }
    }

    /// The result vector of an instant query (empty on any error).
    fn query(&self, q: &str) -> Vec<Value> {
        let path = format!("/api/v1/query?query={}", encode(q));
        let Ok(s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return Vec::new();
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let (status, body) = exchange(s, &path, "application/json");
        if status != 200 {
            return Vec::new();
        }
        let v: Value = serde_json::from_str(&body).unwrap_or_default();
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// The single value of a query, if it has exactly one series.
    fn value(&self, q: &str) -> Option<f64> {
        match self.query(q).as_slice() {
            [one] => one["value"][1].as_str()?.parse().ok(),
            _ => None,
        }
    }

    /// Polls until `q` has the single value `want` (or panics after `timeout`).
    fn wait_value(&self, q: &str, want: f64, timeout: Duration, dir: &Path) {
        self.wait(q, |v| v == want, &format!("{want}"), timeout, dir);
    }

    /// Polls until the single value of `q` passes `ok` (or panics after `timeout`).
    fn wait(&self, q: &str, ok: impl Fn(f64) -> bool, want: &str, timeout: Duration, dir: &Path) {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.value(q);
            if got.is_some_and(&ok) {
                return;
            }
            if Instant::now() >= deadline {
                let log = fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
                let tail: String = log.lines().rev().take(20).collect::<Vec<_>>().join("\n");
                panic!("Prometheus: {q} is {got:?}, not {want}, after {timeout:?}\n{tail}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes a query for a URL.
fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn prometheus_scrapes_the_series_and_sees_a_restart() {
    let Some(prometheus) = tend_testkit::require_program("prometheus") else {
        return;
    };
    let Some(promtool) = tend_testkit::require_program("promtool") else {
        return;
    };
    let port = free_port();
    let mut d = Daemon::start_supervisord_in(TestEnv::new(""), &conf(port));
    d.wait_for("web and chatty running", Duration::from_secs(10), |d| {
        d.state("web") == "running" && d.state("chatty") == "running"
    });

    // The exposition, on both doors; promtool's linter accepts it.
    let (status, text) = get_tcp(port, "/metrics");
    assert_eq!(status, 200, "{text}");
    let (status, unix_text) = get_unix(&d.socket, "/metrics");
    assert_eq!(status, 200, "{unix_text}");
    assert!(unix_text.contains("tend_process_up{process=\"web\",group=\"web\"} 1"));
    let mut check = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    check
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let out = check.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // The real Prometheus, scraping every second (it asks for OpenMetrics).
    let dir = tempfile::tempdir().expect("tempdir");
    let prom = Prometheus::start(&prometheus, dir.path(), port);
    let minute = Duration::from_secs(60);
    prom.wait_value("up{job=\"tend\"}", 1.0, minute, dir.path());
    prom.wait_value(
        "tend_process_restarts_total{process=\"web\"}",
        0.0,
        minute,
        dir.path(),
    );
    prom.wait_value(
        "tend_process_state{process=\"web\",state=\"running\"}",
        1.0,
        minute,
        dir.path(),
    );
    prom.wait_value(
        "tend_process_log_bytes_total{process=\"chatty\"}",
        "hello from chatty\n".len() as f64,
        minute,
        dir.path(),
    );
    prom.wait_value("tend_processes{state=\"running\"}", 2.0, minute, dir.path());
    for name in [
        "tend_process_up",
        "tend_process_exits_total",
        "tend_process_uptime_seconds",
        "tend_process_start_time_seconds",
        "tend_process_ready",
        "tend_process_health",
        "tend_process_cpu_seconds_total",
        "tend_process_resident_memory_bytes",
        "tend_process_open_fds",
        "tend_process_log_dropped_bytes_total",
        "tend_events_total",
        "tend_http_requests_total",
        "tend_build_info",
    ] {
        assert!(
            !prom.query(name).is_empty(),
            "Prometheus has no {name}:\n{text}"
        );
    }

    // A crash: the restart and the exit by signal reach Prometheus.
    let pid = d.pid("web");
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).expect("kill web");
    d.wait_for("web restarted", Duration::from_secs(10), |d| {
        d.state("web") == "running" && d.pid("web") != pid
    });
    prom.wait_value(
        "tend_process_restarts_total{process=\"web\"}",
        1.0,
        minute,
        dir.path(),
    );
    prom.wait_value(
        "tend_process_exits_total{process=\"web\",reason=\"signal\"}",
        1.0,
        minute,
        dir.path(),
    );
    // Every scrape is a request on the TCP door.
    prom.wait(
        "tend_http_requests_total{door=\"inet\",face=\"metrics\",code=\"200\"}",
        |n| n >= 3.0,
        "at least 3",
        minute,
        dir.path(),
    );
}
