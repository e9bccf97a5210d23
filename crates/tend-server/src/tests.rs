//! Tests of the API through the router (tower `oneshot`) with a real
//! supervisor, and of the Unix socket server over a real socket.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tend_core::spec::LogTarget;
use tend_core::{Name, Options, ProcessSpec, Supervisor};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

use crate::{ServeError, Shutdown, UnixServer, router};

struct Fixture {
    sup: Supervisor,
    shutdown: Shutdown,
}

impl Fixture {
    fn new() -> Fixture {
        let (sup, _driver) = Supervisor::spawn(Options::default(), false).expect("supervisor");
        Fixture {
            sup,
            shutdown: Shutdown::new(),
        }
    }

    async fn add_idle(&self, name: &str, group: &str) {
        let mut spec = ProcessSpec::new(
            Name::new(name).expect("name"),
            vec!["sleep".into(), "1000".into()],
        );
        spec.group = Name::new(group).expect("group");
        spec.autostart = false;
        spec.stop.timeout = Duration::from_secs(2);
        self.sup.add(spec).await.expect("add");
    }

    async fn call(&self, method: &str, uri: &str, body: Option<&str>) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .expect("request");
        let app = router(self.sup.clone(), self.shutdown.clone());
        let resp = app.oneshot(req).await.expect("infallible");
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body");
        let value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{method} {uri}: not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        (status, value)
    }

    async fn finish(self) {
        self.sup.shutdown().await.expect("shutdown");
    }
}

fn error_of(v: &Value) -> &str {
    v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message in {v}"))
}

#[tokio::test]
async fn status_lists_all_or_the_matching_processes() {
    let f = Fixture::new();
    f.add_idle("web-1", "front").await;
    f.add_idle("web-2", "front").await;
    f.add_idle("db", "db").await;

    let (st, all) = f.call("GET", "/v1/status", None).await;
    assert_eq!(st, StatusCode::OK);
    let names: Vec<&str> = all
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names.len(), 3, "{all}");
    for key in [
        "name",
        "group",
        "state",
        "pid",
        "started_at",
        "restarts",
        "last_exit",
        "next_restart_in_ms",
    ] {
        assert!(all[0].get(key).is_some(), "status lacks {key}: {}", all[0]);
    }
    assert_eq!(all[0]["state"], "stopped");

    let (st, some) = f
        .call("GET", "/v1/status?pattern=front%3A%2A&pattern=db", None)
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(some.as_array().map(Vec::len), Some(3));
    let (st, one) = f.call("GET", "/v1/status?pattern=web-*", None).await;
    assert_eq!(st, StatusCode::OK);
    let names: Vec<&str> = one
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["web-1", "web-2"]);

    let (st, err) = f
        .call("GET", "/v1/status?pattern=web-1&pattern=nope", None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(error_of(&err), "no such process: nope");
    let (st, err) = f.call("GET", "/v1/status?pattern=nope-*", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(error_of(&err), "no process matches \"nope-*\"");
    let (st, err) = f.call("GET", "/v1/status?name=web", None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(error_of(&err).contains("name"), "{err}");
    let (st, _) = f.call("GET", "/v1/status?pattern=%zz", None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    f.finish().await;
}

#[tokio::test]
async fn bad_bodies_are_400_and_name_the_problem() {
    let f = Fixture::new();
    f.add_idle("web", "web").await;
    let (st, err) = f
        .call("POST", "/v1/start", Some(r#"{"targetz": ["web"]}"#))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(error_of(&err).contains("targetz"), "{err}");
    let (st, err) = f
        .call("POST", "/v1/start", Some(r#"{"targets": "web"}"#))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(error_of(&err).contains("invalid type"), "{err}");
    let (st, err) = f.call("POST", "/v1/stop", None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(error_of(&err).contains("empty"), "{err}");
    let (st, _) = f.call("POST", "/v1/stop", Some("{not json")).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, err) = f
        .call("POST", "/v1/restart", Some(r#"{"targets": []}"#))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(error_of(&err).contains("targets"), "{err}");
    let (st, err) = f
        .call(
            "POST",
            "/v1/signal",
            Some(r#"{"targets": ["web"], "signal": "NOPE"}"#),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(error_of(&err).contains("unknown signal"), "{err}");
    let (st, err) = f
        .call(
            "POST",
            "/v1/start",
            Some(r#"{"targets": ["web", "ghost"]}"#),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(error_of(&err), "no such process: ghost");
    let (st, err) = f
        .call("POST", "/v1/start", Some(r#"{"targets": ["ghost-*"]}"#))
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(error_of(&err), "no process matches \"ghost-*\"");
    f.finish().await;
}

#[tokio::test]
async fn start_stop_and_signal_report_per_process_results() {
    let f = Fixture::new();
    f.add_idle("web", "web").await;
    let (st, v) = f
        .call("POST", "/v1/start", Some(r#"{"targets": ["web"]}"#))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        v,
        json!({"results": [{"name": "web", "ok": true, "outcome": "done"}]})
    );
    let (_, v) = f
        .call("POST", "/v1/start", Some(r#"{"targets": ["all"]}"#))
        .await;
    assert_eq!(v["results"][0]["outcome"], "already_running");
    let (_, v) = f.call("GET", "/v1/status?pattern=web", None).await;
    assert_eq!(v[0]["state"], "running");
    assert!(v[0]["pid"].as_u64().is_some(), "{v}");
    let (st, v) = f
        .call(
            "POST",
            "/v1/signal",
            Some(r#"{"targets": ["web"], "signal": "CONT"}"#),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["results"][0]["ok"], true, "{v}");
    let (st, v) = f
        .call("POST", "/v1/stop", Some(r#"{"targets": ["web", "web*"]}"#))
        .await;
    assert_eq!(st, StatusCode::OK);
    // Overlapping patterns act once per process.
    assert_eq!(
        v,
        json!({"results": [{"name": "web", "ok": true, "outcome": "done"}]})
    );
    let (_, v) = f
        .call(
            "POST",
            "/v1/signal",
            Some(r#"{"targets": ["web"], "signal": 1}"#),
        )
        .await;
    assert_eq!(v["results"][0]["ok"], false, "{v}");
    assert!(
        v["results"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("not running")),
        "{v}"
    );
    f.finish().await;
}

#[tokio::test]
async fn processes_are_added_and_removed() {
    let f = Fixture::new();
    let spec = r#"{"name": "job", "command": ["sleep", "1000"], "autostart": false}"#;
    let (st, v) = f.call("POST", "/v1/processes", Some(spec)).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v, json!({"name": "job"}));
    let (_, v) = f.call("GET", "/v1/status?pattern=job", None).await;
    assert_eq!(v[0]["group"], "job", "group defaults to the name");

    let (st, v) = f.call("POST", "/v1/processes", Some(spec)).await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_eq!(error_of(&v), "a process named job already exists");
    let (st, v) = f
        .call(
            "POST",
            "/v1/processes",
            Some(r#"{"name": "x", "command": []}"#),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(error_of(&v).contains("command is empty"), "{v}");
    let (st, v) = f
        .call(
            "POST",
            "/v1/processes",
            Some(r#"{"name": "x", "command": ["a"], "colour": 1}"#),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(error_of(&v).contains("colour"), "{v}");
    let (st, v) = f
        .call(
            "POST",
            "/v1/processes",
            Some(r#"{"name": "../x", "command": ["a"]}"#),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(error_of(&v).contains("../x"), "{v}");

    let (st, v) = f.call("DELETE", "/v1/processes/job", None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v, json!({"name": "job"}));
    let (st, v) = f.call("DELETE", "/v1/processes/job", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert!(error_of(&v).contains("job"), "{v}");
    let (_, v) = f.call("GET", "/v1/status", None).await;
    assert_eq!(v, json!([]));
    f.finish().await;
}

#[tokio::test]
async fn version_shutdown_and_unknown_routes() {
    let f = Fixture::new();
    let (st, v) = f.call("GET", "/v1/version", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        v,
        json!({"version": env!("CARGO_PKG_VERSION"), "pid": std::process::id()})
    );

    let (st, v) = f.call("GET", "/v2/nothing", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert!(error_of(&v).contains("/v2/nothing"), "{v}");
    let (st, v) = f.call("GET", "/v1/start", None).await;
    assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED);
    assert!(error_of(&v).contains("GET"), "{v}");

    assert!(!f.shutdown.is_triggered());
    let (st, v) = f.call("POST", "/v1/shutdown", None).await;
    assert_eq!(st, StatusCode::ACCEPTED);
    assert_eq!(v, json!({"shutting_down": true}));
    tokio::time::timeout(Duration::from_secs(5), f.shutdown.triggered())
        .await
        .expect("latch pulled");
    f.finish().await;
}

async fn raw_get(path: &std::path::Path, uri: &str) -> String {
    let mut s = tokio::net::UnixStream::connect(path)
        .await
        .expect("connect");
    let req = format!("GET {uri} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out
}

#[tokio::test]
async fn unix_server_binds_with_the_mode_and_cleans_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tend.sock");
    let f = Fixture::new();

    // A stale socket file (nobody listening) is replaced.
    drop(std::os::unix::net::UnixListener::bind(&path).expect("stale socket"));
    assert!(path.exists());
    let server = UnixServer::bind(&path, 0o600).expect("bind over a stale socket");
    let mode = std::fs::metadata(&path)
        .expect("socket")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);

    // A second daemon on the same socket is refused, and leaves the first intact.
    match UnixServer::bind(&path, 0o600) {
        Err(e @ ServeError::AlreadyRunning(_)) => {
            assert_eq!(
                e.to_string(),
                format!("another tend is already running on {}", path.display())
            );
        }
        other => panic!("expected AlreadyRunning, got {other:?}"),
    }

    let stop = Shutdown::new();
    let until = {
        let stop = stop.clone();
        async move { stop.triggered().await }
    };
    let task = tokio::spawn(server.serve(router(f.sup.clone(), f.shutdown.clone()), until));
    let answer = raw_get(&path, "/v1/version").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains(&format!("\"pid\":{}", std::process::id())),
        "{answer}"
    );
    let answer = raw_get(&path, "/v1/status?pattern=x").await;
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");

    stop.trigger();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("server stops")
        .expect("no panic")
        .expect("served");
    assert!(!path.exists(), "the socket file is removed");
    f.finish().await;
}

#[tokio::test]
async fn unix_server_refuses_to_replace_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tend.sock");
    std::fs::write(&path, "precious").expect("write");
    match UnixServer::bind(&path, 0o600) {
        Err(e @ ServeError::NotASocket(_)) => {
            assert!(e.to_string().contains("is not a socket"), "{e}")
        }
        other => panic!("expected NotASocket, got {other:?}"),
    }
    assert_eq!(
        std::fs::read_to_string(&path).expect("still there"),
        "precious"
    );
    let other_mode = dir.path().join("group.sock");
    let server = UnixServer::bind(&other_mode, 0o660).expect("bind");
    let mode = std::fs::metadata(&other_mode)
        .expect("socket")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o660);
    drop(server);
    assert!(
        !other_mode.exists(),
        "dropping the server removes its socket"
    );
}

/// A process that writes three lines (the last one not UTF-8), then waits;
/// its output is kept only in memory.
fn talker(name: &str) -> ProcessSpec {
    let mut spec = ProcessSpec::new(
        Name::new(name).expect("name"),
        vec![
            "sh".into(),
            "-c".into(),
            r"echo one; echo two >&2; printf '\377\376ok\n'; exec sleep 1000".into(),
        ],
    );
    spec.logs.stdout = LogTarget::Memory;
    spec.logs.stderr = LogTarget::Memory;
    spec.stop.timeout = Duration::from_secs(2);
    spec
}

/// The NDJSON objects of a complete answer.
async fn ndjson(app: axum::Router, uri: &str) -> (StatusCode, Vec<Value>) {
    let req = Request::builder()
        .uri(uri)
        .body(Body::empty())
        .expect("request");
    let resp = app.oneshot(req).await.expect("infallible");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    let text = String::from_utf8(bytes.to_vec()).expect("NDJSON is UTF-8");
    let values = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    (status, values)
}

/// Polls `cond` every 10 ms until it holds, failing after 10 s.
async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    mut cond: impl FnMut() -> F,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn lines_of(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|v| match (v["line"].as_str(), v["line_b64"].as_str()) {
            (Some(l), None) => format!(
                "{}/{}: {l}",
                v["name"].as_str().unwrap_or("?"),
                v["stream"].as_str().unwrap_or("?")
            ),
            (None, Some(b)) => format!(
                "{}/{}: b64 {b}",
                v["name"].as_str().unwrap_or("?"),
                v["stream"].as_str().unwrap_or("?")
            ),
            _ => format!("odd item {v}"),
        })
        .collect()
}

#[tokio::test]
async fn logs_serve_the_tail_merged_and_filtered() {
    let f = Fixture::new();
    f.sup.add(talker("talk")).await.expect("add");
    f.sup.start("talk").await.expect("start");
    f.add_idle("quiet", "quiet").await;
    let app = || router(f.sup.clone(), f.shutdown.clone());
    eventually("three lines", || async {
        ndjson(app(), "/v1/logs?pattern=talk").await.1.len() == 3
    })
    .await;

    let (st, all) = ndjson(app(), "/v1/logs").await;
    assert_eq!(st, StatusCode::OK);
    let mut got = lines_of(&all);
    // stdout and stderr are read by two tasks: their relative order is not fixed.
    got.sort();
    assert_eq!(
        got,
        [
            "talk/stderr: two",
            "talk/stdout: b64 //5vaw==",
            "talk/stdout: one"
        ]
    );
    let t = all[0]["time"].as_str().expect("time");
    assert!(t.parse::<jiff::Timestamp>().is_ok(), "{t}");

    let (_, err) = ndjson(app(), "/v1/logs?pattern=talk&stream=stderr").await;
    assert_eq!(lines_of(&err), ["talk/stderr: two"]);
    let (_, out) = ndjson(app(), "/v1/logs?pattern=talk&stream=stdout&n=1").await;
    assert_eq!(lines_of(&out), ["talk/stdout: b64 //5vaw=="]);
    let (_, none) = ndjson(app(), "/v1/logs?pattern=quiet").await;
    assert!(none.is_empty());
    let (_, later) = ndjson(app(), "/v1/logs?since=2999-01-01T00:00:00Z").await;
    assert!(later.is_empty());
    let (_, recent) = ndjson(app(), "/v1/logs?since=1h").await;
    assert_eq!(recent.len(), 3);

    let (st, v) = f.call("GET", "/v1/logs?pattern=nope", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(error_of(&v), "no such process: nope");
    let (st, v) = f.call("GET", "/v1/logs?n=lots", None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(error_of(&v).contains("n=\"lots\""), "{v}");

    let (st, v) = f.call("POST", "/v1/logs/reopen", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v, json!({"reopened": true, "errors": []}));
    f.finish().await;
}

/// Reads the next frame of a streamed body, or `None` at its end.
async fn next_frame(body: &mut axum::body::BodyDataStream) -> Option<String> {
    let frame = std::future::poll_fn(|cx| {
        futures_core::Stream::poll_next(std::pin::Pin::new(&mut *body), cx)
    });
    let frame = tokio::time::timeout(Duration::from_secs(10), frame)
        .await
        .expect("a frame within 10 s")?;
    Some(String::from_utf8_lossy(&frame.expect("frame")).into_owned())
}

#[tokio::test]
async fn logs_follow_across_a_restart_until_the_streams_end() {
    let f = Fixture::new();
    f.sup.add(talker("talk")).await.expect("add");
    f.sup.start("talk").await.expect("start");
    let app = router(f.sup.clone(), f.shutdown.clone());
    eventually("three lines", || async {
        f.sup
            .log_lines(&tend_core::runtime::LogQuery {
                names: vec![Name::new("talk").expect("name")],
                last: 10,
                stream: None,
                since: None,
            })
            .len()
            == 3
    })
    .await;
    let req = Request::builder()
        .uri("/v1/logs?pattern=talk&stream=stdout&n=1&follow=true")
        .body(Body::empty())
        .expect("request");
    let resp = app.oneshot(req).await.expect("infallible");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    let mut body = resp.into_body().into_data_stream();
    let mut seen = String::new();
    seen.push_str(&next_frame(&mut body).await.expect("the tail"));
    f.sup.restart("talk").await.expect("restart");
    while seen.matches("\"line\":\"one\"").count() < 1 || seen.matches("//5vaw==").count() < 2 {
        seen.push_str(&next_frame(&mut body).await.expect("more lines"));
    }
    let items: Vec<Value> = seen
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(
        lines_of(&items),
        [
            "talk/stdout: b64 //5vaw==",
            "talk/stdout: one",
            "talk/stdout: b64 //5vaw=="
        ],
        "the last line, then the new run's stdout only, each once"
    );
    f.shutdown.end_streams();
    assert_eq!(next_frame(&mut body).await, None, "the answer ends");
    f.finish().await;
}

#[tokio::test]
async fn a_slow_follower_is_told_what_it_missed() {
    let mut opts = Options::default();
    opts.log_capacity = 2;
    let (sup, _driver) = Supervisor::spawn(opts, false).expect("supervisor");
    let f = Fixture {
        sup,
        shutdown: Shutdown::new(),
    };
    let mut spec = ProcessSpec::new(
        Name::new("chatty").expect("name"),
        vec![
            "sh".into(),
            "-c".into(),
            // Each line its own write, some time apart, so each is its own chunk.
            "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do echo $i; sleep 0.01; done; exec sleep 1000".into(),
        ],
    );
    spec.logs.stdout = LogTarget::Memory;
    spec.logs.stderr = LogTarget::Memory;
    spec.stop.timeout = Duration::from_secs(2);
    f.sup.add(spec).await.expect("add");
    let app = router(f.sup.clone(), f.shutdown.clone());
    let req = Request::builder()
        .uri("/v1/logs?follow=true&n=0")
        .body(Body::empty())
        .expect("request");
    let resp = app.oneshot(req).await.expect("infallible");
    let mut body = resp.into_body().into_data_stream();
    // Following from before the first line.
    f.sup.start("chatty").await.expect("start");
    // Not reading while the process writes everything.
    eventually("twenty lines", || async {
        f.sup
            .log_lines(&tend_core::runtime::LogQuery {
                names: vec![Name::new("chatty").expect("name")],
                last: 100,
                stream: None,
                since: None,
            })
            .len()
            == 20
    })
    .await;
    let mut seen = String::new();
    while !seen.contains("\"line\":\"20\"") {
        seen.push_str(&next_frame(&mut body).await.expect("more"));
    }
    let items: Vec<Value> = seen
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let lagged: u64 = items.iter().filter_map(|v| v["lagged"].as_u64()).sum();
    let lines = items.iter().filter(|v| v.get("line").is_some()).count() as u64;
    assert!(lagged > 0, "{seen}");
    assert_eq!(lines + lagged, 20, "each chunk is one line here: {seen}");
    f.shutdown.end_streams();
    f.finish().await;
}

#[tokio::test]
async fn the_daemon_prepares_specs_added_through_the_api() {
    let f = Fixture::new();
    let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = calls.clone();
    let prepare: crate::PrepareSpec = std::sync::Arc::new(move |spec: &mut ProcessSpec, given| {
        seen.lock()
            .expect("lock")
            .push((spec.name.to_string(), given));
        if spec.name.as_str() == "bad" {
            return Err("no good".into());
        }
        spec.logs.stdout = LogTarget::Memory;
        Ok(())
    });
    let daemon =
        crate::Daemon::without_config(f.sup.clone(), f.shutdown.clone()).with_prepare_spec(prepare);
    let app = || crate::json_router(daemon.clone());
    let post = |body: &'static str| {
        let app = app();
        async move {
            let req = Request::builder()
                .method("POST")
                .uri("/v1/processes")
                .body(Body::from(body))
                .expect("request");
            app.oneshot(req).await.expect("infallible").status()
        }
    };
    assert_eq!(
        post(r#"{"name": "a", "command": ["true"], "autostart": false}"#).await,
        StatusCode::CREATED
    );
    assert_eq!(
        post(r#"{"name": "b", "command": ["true"], "autostart": false, "logs": {"stdout": "inherit"}}"#).await,
        StatusCode::CREATED
    );
    assert_eq!(
        post(r#"{"name": "bad", "command": ["true"]}"#).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        *calls.lock().expect("lock"),
        [
            ("a".to_string(), false),
            ("b".to_string(), true),
            ("bad".to_string(), false)
        ]
    );
    let (_, v) = f.call("GET", "/v1/status", None).await;
    assert_eq!(
        v.as_array().map(Vec::len),
        Some(2),
        "bad was not added: {v}"
    );
    f.finish().await;
}

#[tokio::test]
async fn the_status_body_is_the_snapshot_encoded_as_is_and_shows_each_change() {
    let f = Fixture::new();
    f.add_idle("b", "g").await;
    f.add_idle("a", "g").await;
    let raw = |f: &Fixture| {
        let app = router(f.sup.clone(), f.shutdown.clone());
        async move {
            let req = Request::builder()
                .uri("/v1/status")
                .body(Body::empty())
                .expect("request");
            let resp = app.oneshot(req).await.expect("infallible");
            assert_eq!(resp.status(), StatusCode::OK);
            assert_eq!(
                resp.headers().get("content-type").map(|v| v.as_bytes()),
                Some(&b"application/json"[..])
            );
            axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .expect("body")
        }
    };
    let body = raw(&f).await;
    // What `Json` would have answered, byte for byte (no process is up, so
    // nothing in it moves with the clock).
    let snapshot = f.sup.status().await.expect("status");
    assert_eq!(
        body,
        serde_json::to_vec(&snapshot).expect("encode"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v[0]["name"], "a");
    assert_eq!(v[0]["state"], "stopped");
    // A start shows in the next answer: nothing of the last one is kept.
    f.sup
        .start_many(vec![Name::new("a").expect("name")])
        .await
        .expect("start");
    let v: Value = serde_json::from_slice(&raw(&f).await).expect("json");
    assert_ne!(v[0]["state"], "stopped", "{v}");
    assert!(v[0]["pid"].is_u64(), "{v}");
    assert_eq!(v[1]["state"], "stopped");
    f.finish().await;
}
