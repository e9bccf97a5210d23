//! OTLP export against a real decoder: a receiver that parses what tend
//! sends with the protobuf classes of `opentelemetry-proto` (PyPI) sees a
//! crash loop as log records, metrics and spans; with the receiver gone tend
//! keeps supervising and counts what it dropped; with it back, records flow
//! again.

// This test binary waits for the receiver it starts.
#![allow(clippy::disallowed_methods)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Daemon, TestEnv};
use crate::metrics::get_unix;

/// A Python that has `opentelemetry.proto` (`TEND_PYTHON`, or the
/// repository's `.venv` that `scripts/test` makes).
fn python() -> Option<PathBuf> {
    let candidate = std::env::var_os("TEND_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python"));
    let ok = Command::new(&candidate)
        .args([
            "-c",
            "import opentelemetry.proto.collector.logs.v1.logs_service_pb2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    tend_testkit::require(
        ok,
        format!(
            "no Python with opentelemetry-proto at {} (scripts/test installs it; or set TEND_PYTHON)",
            candidate.display()
        ),
    )
    .then_some(candidate)
}

/// The receiver: records go to `out`, one JSON object a line.
struct Receiver {
    child: Child,
    port: u16,
}

impl Receiver {
    fn start(python: &Path, dir: &Path, port: Option<u16>) -> Receiver {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/otlp/receiver.py");
        let port_file = dir.join("receiver.port");
        let _ = fs::remove_file(&port_file);
        let mut cmd = Command::new(python);
        cmd.arg(&script)
            .arg(&port_file)
            .arg(dir.join("received.jsonl"));
        if let Some(p) = port {
            cmd.arg(p.to_string());
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.join("receiver.err")).expect("stderr file"))
            .spawn()
            .expect("start the receiver");
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = loop {
            if let Some(p) = fs::read_to_string(&port_file)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                break p;
            }
            assert!(
                Instant::now() < deadline,
                "the receiver did not start: {}",
                fs::read_to_string(dir.join("receiver.err")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        Receiver { child, port }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Everything received so far.
fn received(dir: &Path) -> Vec<Value> {
    fs::read_to_string(dir.join("received.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Polls the received items until `ok` holds for them.
fn wait_received(d: &Daemon, dir: &Path, what: &str, ok: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = received(dir);
        if ok(&got) {
            return got;
        }
        if Instant::now() >= deadline {
            let shown: Vec<String> = got.iter().rev().take(30).map(Value::to_string).collect();
            panic!(
                "timed out waiting for {what}; last received:\n{}\ndaemon log:\n{}",
                shown.join("\n"),
                d.log_text()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn logs<'a>(
    items: &'a [Value],
    event: &'a str,
    process: &'a str,
) -> impl Iterator<Item = &'a Value> {
    items.iter().filter(move |v| {
        v["signal"] == "logs" && v["event"] == event && v["attrs"]["tend.process"] == process
    })
}

fn metric<'a>(items: &'a [Value], name: &str, attrs: &[(&str, &str)]) -> Option<&'a Value> {
    items.iter().rev().find(|v| {
        v["signal"] == "metrics"
            && v["name"] == name
            && attrs.iter().all(|(k, want)| v["attrs"][*k] == *want)
    })
}

/// A sample of the daemon's `/metrics` on its socket.
fn scraped(d: &Daemon, series: &str) -> Option<f64> {
    let (_, text) = get_unix(&d.socket, "/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

#[test]
fn a_crash_loop_reaches_the_collector_and_a_dead_collector_costs_nothing() {
    let Some(python) = python() else { return };
    let rdir = tempfile::tempdir().expect("tempdir");
    let mut receiver = Receiver::start(&python, rdir.path(), None);
    let port = receiver.port;
    let conf = format!(
        r#"
[telemetry]
otlp_endpoint = "http://127.0.0.1:{port}"
service_name = "tend-test"
headers = {{ "x-test-header" = "yes" }}
metrics_interval = "1s"
queue_size = 64

[process.crash]
command = ["sh", "-c", "echo crashing; exit 3"]
backoff = {{ initial = "50ms", max = "50ms", give_up_after = 3 }}

[process.flood]
command = ["sh", "-c", "exit 1"]
autostart = false
backoff = {{ initial = "10ms", max = "10ms" }}
"#
    );
    let env = TestEnv::new(&conf);
    let mut d = Daemon::start_in(env);

    // The crash loop, as log records with the process, pid and reason.
    let got = wait_received(&d, rdir.path(), "the crash loop's records", |items| {
        logs(items, "tend.process.gave_up", "crash").count() == 1
            && logs(items, "tend.process.exited", "crash").count() == 3
    });
    let spawned: Vec<&Value> = logs(&got, "tend.process.spawned", "crash").collect();
    assert_eq!(spawned.len(), 3, "{spawned:#?}");
    assert!(
        spawned
            .iter()
            .all(|r| r["attrs"]["process.pid"].as_i64().is_some_and(|p| p > 0))
    );
    assert_eq!(spawned[0]["severity_text"], "INFO");
    assert_eq!(spawned[0]["resource"]["service.name"], "tend-test");
    assert_eq!(spawned[0]["scope"], "tend");
    assert_eq!(spawned[0]["header"], "yes");
    assert!(
        spawned[0]["user_agent"]
            .as_str()
            .is_some_and(|u| u.starts_with("tend/"))
    );
    for exit in logs(&got, "tend.process.exited", "crash") {
        assert_eq!(exit["attrs"]["process.exit.code"], 3, "{exit}");
        assert_eq!(exit["attrs"]["tend.reason"], "code", "{exit}");
        assert_eq!(exit["severity_text"], "WARN", "{exit}");
        assert!(
            exit["body"]
                .as_str()
                .is_some_and(|b| b.contains("exit code 3")),
            "{exit}"
        );
    }
    assert_eq!(logs(&got, "tend.process.backoff", "crash").count(), 2);
    let gave_up = logs(&got, "tend.process.gave_up", "crash")
        .next()
        .expect("gave up");
    assert_eq!(gave_up["severity_text"], "ERROR");
    assert!(gave_up["attrs"]["tend.reason"].as_str().is_some());

    // The same metrics as /metrics, as cumulative sums and gauges.
    // Every figure checked below is waited for: the receiver writes an
    // export item by item, so a read can catch the newest one in part.
    let got = wait_received(&d, rdir.path(), "the crash loop's metrics", |items| {
        metric(items, "tend_process_restarts", &[("process", "crash")])
            .is_some_and(|m| m["value"] == 2)
            && metric(
                items,
                "tend_process_state",
                &[("process", "crash"), ("state", "fatal")],
            )
            .is_some_and(|m| m["value"] == 1)
            && metric(
                items,
                "tend_process_exits",
                &[("process", "crash"), ("reason", "code")],
            )
            .is_some_and(|m| m["value"] == 3)
            && metric(items, "tend_processes", &[("state", "fatal")])
                .is_some_and(|m| m["value"] == 1)
    });
    let restarts =
        metric(&got, "tend_process_restarts", &[("process", "crash")]).expect("restarts");
    assert_eq!(restarts["kind"], "sum");
    assert_eq!(restarts["monotonic"], true);
    assert_eq!(restarts["temporality"], 2, "cumulative");
    assert!(restarts["start"].as_u64() < restarts["time"].as_u64());
    let exits = metric(
        &got,
        "tend_process_exits",
        &[("process", "crash"), ("reason", "code")],
    )
    .expect("exits");
    assert_eq!(exits["value"], 3);
    let cpu = metric(&got, "process_cpu_seconds", &[]).expect("the daemon's cpu");
    assert_eq!(cpu["unit"], "s");
    assert_eq!(
        metric(&got, "tend_processes", &[("state", "fatal")]).expect("by state")["value"],
        1
    );

    // Spans: the start (with start_secs = 0 it succeeds at the spawn),
    // each restart cycle with its steps as events, the last one failed.
    let got = wait_received(&d, rdir.path(), "the spans", |items| {
        items.iter().filter(|v| v["signal"] == "traces").count() >= 4
    });
    let spans: Vec<&Value> = got.iter().filter(|v| v["signal"] == "traces").collect();
    let steps = |v: &Value| -> Vec<String> {
        v["events"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let shown: Vec<String> = spans
        .iter()
        .map(|v| format!("{} {} {:?}", v["name"], v["status"], steps(v)))
        .collect();
    assert_eq!(spans[0]["name"], "start crash", "{shown:#?}");
    assert_eq!(spans[0]["status"], 1, "{shown:#?}");
    assert_eq!(steps(spans[0]), ["spawned"], "{shown:#?}");
    assert_eq!(spans[1]["name"], "restart crash", "{shown:#?}");
    assert_eq!(spans[1]["status"], 1, "{shown:#?}");
    assert_eq!(
        steps(spans[1]),
        ["exited", "backoff", "spawned"],
        "{shown:#?}"
    );
    let last = spans[3];
    assert_eq!(last["name"], "restart crash", "{shown:#?}");
    assert_eq!(last["status"], 2, "{shown:#?}");
    assert_eq!(steps(last), ["exited", "gave_up"], "{shown:#?}");
    assert_eq!(last["trace_id_len"], 16);
    assert_eq!(last["span_id_len"], 8);
    assert!(last["start"].as_u64() <= last["end"].as_u64());

    // An access decision (the audit line of a start) is a log record too.
    d.ok(&["start", "crash"]);
    wait_received(&d, rdir.path(), "the audit record", |items| {
        items.iter().any(|v| {
            v["event"] == "tend.audit"
                && v["body"]
                    .as_str()
                    .is_some_and(|b| b.contains("start crash"))
        })
    });

    // A reload is a span too, with its steps as events.
    fs::write(
        &d.env.config,
        format!("{conf}\n[process.extra]\ncommand = [\"sleep\", \"1000\"]\n"),
    )
    .expect("rewrite the config");
    d.ok(&["reload"]);
    let got = wait_received(&d, rdir.path(), "the reload span", |items| {
        items
            .iter()
            .any(|v| v["signal"] == "traces" && v["name"] == "reload")
    });
    let reload = got
        .iter()
        .find(|v| v["signal"] == "traces" && v["name"] == "reload")
        .expect("reload span");
    assert_eq!(steps(reload), ["read", "added", "starting"], "{reload}");
    assert_eq!(
        reload["event_attrs"][1]["tend.process"], "extra",
        "{reload}"
    );
    assert_eq!(reload["status"], 1, "{reload}");
    assert_eq!(
        reload["attrs"]["tend.outcome"], "ok: 1 added, 0 changed, 0 removed",
        "{reload}"
    );

    // supervisorctl's `update` (reloadConfig, then addProcessGroup per new
    // group) is exported as spans too: `reread` and `add_group`.
    fs::write(
        &d.env.config,
        format!(
            "{conf}\n[process.extra]\ncommand = [\"sleep\", \"1000\"]\n\n\
             [process.later]\ncommand = [\"sleep\", \"1000\"]\n"
        ),
    )
    .expect("rewrite the config");
    for (method, param) in [
        ("supervisor.reloadConfig", ""),
        (
            "supervisor.addProcessGroup",
            "<param><value><string>later</string></value></param>",
        ),
    ] {
        let body = format!(
            "<?xml version='1.0'?><methodCall><methodName>{method}</methodName>\
             <params>{param}</params></methodCall>"
        );
        let answer = rpc_unix(&d.socket, &body);
        assert!(!answer.contains("<fault>"), "{method}: {answer}");
    }
    let got = wait_received(&d, rdir.path(), "the update spans", |items| {
        items
            .iter()
            .any(|v| v["signal"] == "traces" && v["name"] == "add_group")
    });
    let span = |name: &str| {
        got.iter()
            .find(|v| v["signal"] == "traces" && v["name"] == name)
            .unwrap_or_else(|| panic!("a {name} span"))
    };
    let reread = span("reread");
    assert_eq!(reread["status"], 1, "{reread}");
    assert_eq!(
        reread["attrs"]["tend.outcome"], "ok: 1 added, 0 changed, 0 removed",
        "{reread}"
    );
    let add = span("add_group");
    assert_eq!(add["status"], 1, "{add}");
    assert_eq!(add["attrs"]["tend.group"], "later", "{add}");
    assert_eq!(steps(add), ["added"], "{add}");
    assert_eq!(add["event_attrs"][0]["tend.process"], "later", "{add}");

    // The collector goes away: a fast crash loop goes on, the queue fills,
    // and what does not fit is counted.
    receiver.stop();
    d.ok(&["start", "flood"]);
    let dropped = "tend_telemetry_dropped_total{signal=\"logs\"}";
    d.wait_for("dropped log records", Duration::from_secs(60), |d| {
        scraped(d, dropped).is_some_and(|n| n > 0.0)
    });
    let restarts = "tend_process_restarts_total{process=\"flood\",group=\"flood\"}";
    let before = scraped(&d, restarts).expect("flood restarts");
    d.wait_for("flood restarted further", Duration::from_secs(10), |d| {
        scraped(d, restarts).is_some_and(|n| n > before + 5.0)
    });
    let started = Instant::now();
    assert_eq!(d.status(&[]).len(), 4, "crash, flood, extra, later");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "tend status took {:?} with the collector down",
        started.elapsed()
    );
    assert!(
        scraped(&d, "tend_telemetry_export_failures_total{signal=\"logs\"}")
            .is_some_and(|n| n >= 1.0)
    );
    // tend status tells of it (after the table, on stderr); it exits 3,
    // as supervisorctl does, since crash is fatal and flood in back-off.
    let run = d.tend(&["status"]);
    assert_eq!(run.code, Some(3), "{run}");
    assert!(
        run.stderr.contains("telemetry: ")
            && run.stderr.contains("dropped (logs ")
            && run.stderr.contains("export fails: 127.0.0.1:"),
        "{run}"
    );
    d.ok(&["stop", "flood"]);
    assert!(
        d.log_text().contains("telemetry: cannot export"),
        "{}",
        d.log_text()
    );

    // Back on the same port: what happens from then on arrives again
    // (what happened meanwhile was dropped, and counted).
    let gave_up = logs(&received(rdir.path()), "tend.process.gave_up", "crash").count();
    let _receiver = Receiver::start(&python, rdir.path(), Some(port));
    d.wait_for(
        "the exporter to reach the collector again",
        Duration::from_secs(60),
        |d| {
            d.log_text().contains("again (")
                && scraped(d, "tend_telemetry_queue_length").is_some_and(|n| n == 0.0)
        },
    );
    d.ok(&["start", "crash"]);
    wait_received(
        &d,
        rdir.path(),
        "records after the collector came back",
        |items| logs(items, "tend.process.gave_up", "crash").count() > gave_up,
    );
}

/// One XML-RPC call over the daemon's Unix socket: the response body.
fn rpc_unix(socket: &Path, body: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket).expect("connect");
    write!(
        stream,
        "POST /RPC2 HTTP/1.0\r\nHost: localhost\r\nContent-Type: text/xml\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    text.split_once("\r\n\r\n")
        .map_or(text.clone(), |(_, b)| b.to_string())
}
