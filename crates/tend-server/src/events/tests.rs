//! The event stream with a real supervisor and real processes: through the
//! router, and over a real Unix socket for the rate test.

use std::pin::Pin;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;
use tend_core::{Name, Options, ProcessSpec, Supervisor};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tower::ServiceExt;

use super::*;
use crate::{Daemon, Shutdown, json_router, serve_unix};

const WAIT: Duration = Duration::from_secs(20);

fn daemon() -> Daemon {
    let (sup, _driver) = Supervisor::spawn(Options::default(), false).expect("supervisor");
    Daemon::without_config(sup, Shutdown::new())
}

async fn add(d: &Daemon, name: &str, cmd: &str) {
    let mut spec = ProcessSpec::new(
        Name::new(name).expect("name"),
        vec!["sh".into(), "-c".into(), cmd.into()],
    );
    spec.autostart = false;
    spec.stop.timeout = Duration::from_secs(2);
    d.supervisor().add(spec).await.expect("add");
}

/// One parsed SSE frame.
#[derive(Debug, Clone)]
struct Frame {
    id: Option<String>,
    data: Value,
}

impl Frame {
    fn kind(&self) -> &str {
        self.data["kind"].as_str().unwrap_or_default()
    }
    fn seq(&self) -> u64 {
        self.data["seq"].as_u64().unwrap_or_default()
    }
}

/// Splits whole frames off `buf`.
fn frames(buf: &mut Vec<u8>) -> Vec<Frame> {
    let mut out = Vec::new();
    while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
        let raw: Vec<u8> = buf.drain(..end + 2).collect();
        let text = String::from_utf8_lossy(&raw);
        let (mut id, mut data) = (None, None);
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("id: ") {
                id = Some(v.to_string());
            } else if let Some(v) = line.strip_prefix("data: ") {
                data = Some(serde_json::from_str(v).expect("data is JSON"));
            }
        }
        if let Some(data) = data {
            out.push(Frame { id, data });
        }
    }
    out
}

/// A stream opened through the router.
struct Sse {
    body: axum::body::BodyDataStream,
    buf: Vec<u8>,
    queue: std::collections::VecDeque<Frame>,
}

impl Sse {
    async fn open(d: &Daemon, uri: &str, last_id: Option<&str>) -> Sse {
        let mut req = Request::builder().uri(uri);
        if let Some(id) = last_id {
            req = req.header("Last-Event-ID", id);
        }
        let resp = json_router(d.clone())
            .oneshot(req.body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        Sse {
            body: resp.into_body().into_data_stream(),
            buf: Vec::new(),
            queue: Default::default(),
        }
    }

    /// The next frame; `None` when the stream ended.
    async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(f) = self.queue.pop_front() {
                return Some(f);
            }
            let chunk = tokio::time::timeout(
                WAIT,
                std::future::poll_fn(|cx| {
                    futures_core::Stream::poll_next(Pin::new(&mut self.body), cx)
                }),
            )
            .await
            .expect("a frame in time");
            match chunk {
                Some(Ok(b)) => {
                    self.buf.extend_from_slice(&b);
                    self.queue.extend(frames(&mut self.buf));
                }
                _ => return None,
            }
        }
    }

    /// Frames up to and including the first that satisfies `pred`.
    async fn until(&mut self, mut pred: impl FnMut(&Frame) -> bool) -> Vec<Frame> {
        let mut seen = Vec::new();
        loop {
            let f = self.next().await.expect("the stream goes on");
            let done = pred(&f);
            seen.push(f);
            if done {
                return seen;
            }
        }
    }
}

fn state_to(f: &Frame, name: &str, to: &str) -> bool {
    f.kind() == "state" && f.data["name"] == name && f.data["to"] == to
}

#[tokio::test]
async fn events_come_in_order_with_ids_and_status() {
    let d = daemon();
    add(&d, "a", "exec sleep 100").await;
    let mut s = Sse::open(&d, "/v1/events", None).await;
    d.supervisor().start("a").await.expect("start");
    let up = s.until(|f| state_to(f, "a", "running")).await;
    d.supervisor().stop("a").await.expect("stop");
    let down = s.until(|f| f.kind() == "stopped").await;
    let all: Vec<Frame> = up.into_iter().chain(down).collect();
    let kinds: Vec<&str> = all.iter().map(Frame::kind).collect();
    let pos = |k: &str| kinds.iter().position(|x| *x == k).unwrap_or(usize::MAX);
    assert!(pos("spawned") < pos("exited"), "{kinds:?}");
    assert!(pos("exited") < pos("stopped"), "{kinds:?}");
    // Ids: one more each time, and the SSE id is the JSON's.
    for w in all.windows(2) {
        assert_eq!(w[1].seq(), w[0].seq() + 1, "{kinds:?}");
    }
    for f in &all {
        assert_eq!(f.id.as_deref(), f.data["id"].as_str());
        assert!(f.data["time"].is_string());
        assert_eq!(f.data["group"], "a");
    }
    let spawned = &all[pos("spawned")];
    assert!(spawned.data["pid"].as_u64().is_some());
    assert!(spawned.data["status"]["pid"].is_u64() || spawned.data["status"]["pid"].is_null());
    let exited = &all[pos("exited")];
    assert_eq!(exited.data["expected"], true);
    assert_eq!(exited.data["exit"]["signal"], "TERM");
    let last = all.last().expect("frames");
    assert_eq!(last.data["status"]["state"], "stopped");
    d.supervisor().shutdown().await.expect("shutdown");
}

/// An OOM kill (the fake launcher's `oom:MS`: no memory controller is needed)
/// is its own event, before the exit it causes, and its status says why.
#[tokio::test]
async fn an_oom_kill_is_an_event_before_its_exit() {
    let (launcher, _world, exits) = tend_core::testing::FakeLauncher::new();
    let d = Daemon::without_config(launcher.supervisor(exits), Shutdown::new());
    let mut spec = ProcessSpec::new(Name::new("hog").expect("name"), vec!["oom:50".into()]);
    spec.autostart = false;
    spec.restart = tend_core::RestartPolicy::Never;
    d.supervisor().add(spec).await.expect("add");
    let mut s = Sse::open(&d, "/v1/events", None).await;
    d.supervisor().start("hog").await.expect("start");
    let seen = s.until(|f| f.kind() == "exited").await;
    let kinds: Vec<&str> = seen.iter().map(Frame::kind).collect();
    let oom = seen
        .iter()
        .find(|f| f.kind() == "oom_killed")
        .unwrap_or_else(|| panic!("no oom_killed: {kinds:?}"));
    let exited = seen.last().expect("frames");
    assert_eq!(oom.data["name"], "hog");
    assert_eq!(oom.data["pid"], exited.data["pid"]);
    assert!(oom.seq() < exited.seq());
    assert_eq!(exited.data["exit"]["signal"], "KILL");
    assert_eq!(exited.data["status"]["exit_reason"], "oom_kill");
    d.supervisor().shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_reconnect_replays_what_was_missed_or_says_to_read_again() {
    let d = daemon();
    add(&d, "a", "exec sleep 100").await;
    let mut s = Sse::open(&d, "/v1/events", None).await;
    d.supervisor().start("a").await.expect("start");
    let seen = s.until(|f| state_to(f, "a", "running")).await;
    let last = seen.last().and_then(|f| f.id.clone()).expect("an id");
    drop(s);
    d.supervisor().stop("a").await.expect("stop");
    // What happened while away, from right after the last id seen.
    let mut again = Sse::open(&d, "/v1/events", Some(&last)).await;
    let missed = again.until(|f| f.kind() == "stopped").await;
    assert_eq!(missed[0].seq(), seen.last().map_or(0, Frame::seq) + 1);
    assert!(missed.iter().any(|f| f.kind() == "exited"));
    // The same position given in the query (a page that rendered a snapshot).
    let uri = format!("/v1/events?last_event_id={last}");
    let mut q = Sse::open(&d, &uri, None).await;
    assert_eq!(q.next().await.map(|f| f.seq()), Some(missed[0].seq()));
    // An id of another run: a reset, then a snapshot when asked for.
    let mut other = Sse::open(&d, "/v1/events?snapshot=1", Some("1-5")).await;
    let reset = other.next().await.expect("reset");
    assert_eq!(reset.kind(), "reset", "{reset:?}");
    assert!(
        reset.data["reason"]
            .as_str()
            .unwrap_or("")
            .contains("/v1/status")
    );
    let snap = other.next().await.expect("snapshot");
    assert_eq!(snap.kind(), "snapshot");
    assert_eq!(snap.data["processes"][0]["name"], "a");
    assert_eq!(snap.data["processes"][0]["state"], "stopped");
    assert_eq!(snap.id, reset.id);
    d.supervisor().shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn names_filter_and_logs_interleave() {
    let d = daemon();
    add(&d, "a", "echo hello-from-a; echo oops >&2; exec sleep 100").await;
    add(&d, "b", "echo hello-from-b; exec sleep 100").await;
    let mut s = Sse::open(&d, "/v1/events?names=a&logs=1", None).await;
    d.supervisor().start("b").await.expect("start b");
    d.supervisor().start("a").await.expect("start a");
    let mut got = Vec::new();
    let (mut out, mut err) = (false, false);
    while !(out && err) {
        let f = s.next().await.expect("frame");
        if f.kind() == "log" {
            out |= f.data["stream"] == "stdout" && f.data["line"] == "hello-from-a";
            err |= f.data["stream"] == "stderr" && f.data["line"] == "oops";
            assert!(f.id.is_none(), "log lines carry no id: {f:?}");
        }
        got.push(f);
    }
    assert!(got.iter().all(|f| f.data["name"] == "a"), "{got:?}");
    assert!(got.iter().any(|f| f.kind() == "spawned"));
    let e = json_router(d.clone())
        .oneshot(
            Request::builder()
                .uri("/v1/events?names=%5B")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible");
    assert_eq!(e.status(), StatusCode::BAD_REQUEST);
    d.supervisor().shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_stalled_client_is_cut_off_while_others_keep_receiving() {
    let d = daemon();
    let mut reader = Sse::open(&d, "/v1/events", None).await;
    // Opened, then never read until the end.
    let mut stalled = Sse::open(&d, "/v1/events", None).await;
    let hub = d.events().await.expect("hub");
    let n = RING_EVENTS + 2000;
    let reading = tokio::spawn(async move {
        let (mut got, mut last_seq) = (0, 0);
        while got < n {
            let f = reader.next().await.expect("the reader gets everything");
            assert_eq!(f.kind(), "reloaded", "{f:?}");
            assert_eq!(f.seq(), last_seq + 1, "nothing lost");
            last_seq = f.seq();
            got += 1;
        }
        got
    });
    for i in 0..n {
        hub.reloaded(&[format!("p{i}")], &[], &[]);
        if i % 64 == 0 {
            tokio::task::yield_now().await;
        }
    }
    assert_eq!(reading.await.expect("reader"), n);
    // The stalled one: what was queued before it fell behind, then the cut.
    let mut frames = Vec::new();
    while let Some(f) = stalled.next().await {
        frames.push(f);
    }
    let last = frames.last().expect("a final frame");
    assert_eq!(last.kind(), "cutoff", "{last:?}");
    assert!(last.data["missed"].as_u64().unwrap_or(0) > 0);
    assert!(frames.len() < n, "it did not get everything");
    d.supervisor().shutdown().await.expect("shutdown");
}

/// Reads an HTTP/1.1 response's head, up to the blank line.
async fn read_head(r: &mut BufReader<tokio::net::UnixStream>) {
    let mut line = String::new();
    loop {
        line.clear();
        r.read_line(&mut line).await.expect("head");
        if line == "\r\n" {
            break;
        }
    }
}

/// Reads a chunked body's chunks (after the head), calling `each` on the
/// bytes, until `each` says stop or the body ends.
async fn read_chunks(
    r: &mut BufReader<tokio::net::UnixStream>,
    mut each: impl FnMut(&[u8]) -> bool,
) {
    let mut line = String::new();
    loop {
        line.clear();
        r.read_line(&mut line).await.expect("chunk size");
        let n = usize::from_str_radix(line.trim(), 16).expect("hex size");
        if n == 0 {
            return;
        }
        let mut chunk = vec![0; n + 2];
        r.read_exact(&mut chunk).await.expect("chunk");
        if !each(&chunk[..n]) {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_events_a_second_for_ten_seconds_lose_nothing() {
    let d = daemon();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tend.sock");
    let shutdown = d.shutdown().clone();
    let until = {
        let s = shutdown.clone();
        async move {
            s.triggered().await;
            s.end_streams();
        }
    };
    let server = tokio::spawn({
        let (path, app) = (path.clone(), json_router(d.clone()));
        async move { serve_unix(&path, 0o600, app, until).await }
    });
    let conn = loop {
        if let Ok(c) = tokio::net::UnixStream::connect(&path).await {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let mut r = BufReader::new(conn);
    r.get_mut()
        .write_all(b"GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("request");
    // The stream starts where the hub is when the client's task begins: the
    // producer must not run before that (a client without Last-Event-ID
    // never sees what came before it), or the count below could never be
    // reached. The first chunk (`retry:`) is sent once the cursor is set.
    let mut buf = Vec::new();
    let started = async {
        read_head(&mut r).await;
        read_chunks(&mut r, |chunk| {
            buf.extend_from_slice(chunk);
            !buf.starts_with(b"retry:")
        })
        .await;
    };
    tokio::time::timeout(Duration::from_secs(60), started)
        .await
        .expect("the stream starts");
    assert!(buf.starts_with(b"retry:"), "{buf:?}");
    buf.clear();
    let hub = d.events().await.expect("hub");
    const RATE: usize = 1000;
    const SECS: usize = 10;
    let total = RATE * SECS;
    let producer = tokio::spawn({
        let hub = hub.clone();
        async move {
            let start = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let mut sent = 0;
            while sent < total {
                tick.tick().await;
                for _ in 0..RATE / 100 {
                    hub.reloaded(&[], &[], &[]);
                    sent += 1;
                }
            }
            start.elapsed()
        }
    });
    let (mut got, mut last_seq, mut bad) = (0usize, 0u64, Vec::new());
    let reading = async {
        read_chunks(&mut r, |chunk| {
            buf.extend_from_slice(chunk);
            for f in frames(&mut buf) {
                if f.kind() == "reloaded" {
                    if f.seq() != last_seq + 1 {
                        bad.push(format!("seq {} after {last_seq}", f.seq()));
                    }
                    last_seq = f.seq();
                    got += 1;
                } else {
                    bad.push(format!("{:?}", f.data));
                }
            }
            got < total
        })
        .await
    };
    tokio::time::timeout(Duration::from_secs(60), reading)
        .await
        .expect("every event within the time");
    let took = producer.await.expect("producer");
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(got, total);
    assert!(took >= Duration::from_secs(9), "paced: {took:?}");
    shutdown.trigger();
    let _ = tokio::time::timeout(WAIT, server).await;
    d.supervisor().shutdown().await.expect("shutdown");
}

/// A process added at run time says `origin: "added"` on the stream from its
/// first event on, in a snapshot, and on the web page; the file's say
/// `config`.
#[tokio::test]
async fn an_added_process_is_marked_added_on_the_stream() {
    let d = daemon();
    add(&d, "filed", "exec sleep 100").await;
    let mut s = Sse::open(&d, "/v1/events", None).await;
    let mut spec = ProcessSpec::new(
        Name::new("extra").expect("name"),
        vec!["sh".into(), "-c".into(), "exec sleep 100".into()],
    );
    spec.autostart = false;
    spec.stop.timeout = Duration::from_secs(2);
    d.add_process(spec, false).await.expect("add");
    let added = s
        .until(|f| f.kind() == "added" && f.data["name"] == "extra")
        .await;
    let added = added.last().expect("the added event");
    assert_eq!(added.data["status"]["origin"], "added", "{:?}", added.data);
    d.supervisor().start("extra").await.expect("start");
    d.supervisor().start("filed").await.expect("start");
    let up = s.until(|f| state_to(f, "extra", "running")).await;
    assert_eq!(
        up.last().expect("running").data["status"]["origin"],
        "added"
    );
    let up = s.until(|f| state_to(f, "filed", "running")).await;
    assert_eq!(
        up.last().expect("running").data["status"]["origin"],
        "config"
    );

    let mut snap = Sse::open(&d, "/v1/events?snapshot=1", None).await;
    let first = snap.next().await.expect("the snapshot");
    assert_eq!(first.kind(), "snapshot");
    let origin = |name: &str| {
        first.data["processes"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name))
            .map(|p| p["origin"].clone())
    };
    assert_eq!(
        origin("extra"),
        Some(Value::from("added")),
        "{:?}",
        first.data
    );
    assert_eq!(origin("filed"), Some(Value::from("config")));

    // A name taken is refused, and the process that has it is not marked.
    let mut again = ProcessSpec::new(Name::new("filed").expect("name"), vec!["true".into()]);
    again.autostart = false;
    assert!(d.add_process(again, false).await.is_err());
    let mut all = d.supervisor().status().await.expect("status");
    d.config().mark_origin(&mut all);
    let filed = all
        .iter()
        .find(|p| p.name.as_str() == "filed")
        .expect("filed");
    assert_eq!(filed.origin, tend_core::Origin::Config);
    d.supervisor().shutdown().await.expect("shutdown");
}
