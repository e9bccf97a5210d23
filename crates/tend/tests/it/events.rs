//! `GET /v1/events` from a real daemon over its Unix socket: the order of a
//! stop, `reloaded`, and a reconnect with `Last-Event-ID` replaying what
//! happened in between.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::Daemon;

/// An open event stream: the decoded `data:` of each event, with its id.
struct Stream {
    r: BufReader<UnixStream>,
    buf: String,
}

impl Stream {
    fn open(d: &Daemon, last_id: Option<&str>) -> Stream {
        let mut s = UnixStream::connect(&d.socket).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let extra = last_id.map_or(String::new(), |id| format!("Last-Event-ID: {id}\r\n"));
        write!(s, "GET /v1/events HTTP/1.1\r\nHost: x\r\n{extra}\r\n").expect("request");
        let mut r = BufReader::new(s);
        let mut line = String::new();
        r.read_line(&mut line).expect("status line");
        assert!(line.starts_with("HTTP/1.1 200"), "{line}");
        loop {
            line.clear();
            r.read_line(&mut line).expect("header");
            if line == "\r\n" {
                break;
            }
        }
        Stream {
            r,
            buf: String::new(),
        }
    }

    /// The next event (id, data); chunk framing is skipped.
    fn next(&mut self) -> (Option<String>, Value) {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let raw: String = self.buf.drain(..end + 2).collect();
                let mut id = None;
                let mut data = None;
                for l in raw.lines() {
                    if let Some(v) = l.strip_prefix("id: ") {
                        id = Some(v.to_string());
                    } else if let Some(v) = l.strip_prefix("data: ") {
                        data = Some(serde_json::from_str(v).expect("JSON data"));
                    }
                }
                if let Some(data) = data {
                    return (id, data);
                }
                continue;
            }
            // One chunk: its size line, its bytes, its CRLF.
            let mut size = String::new();
            self.r.read_line(&mut size).expect("chunk size");
            let n = usize::from_str_radix(size.trim(), 16).expect("hex");
            assert!(n > 0, "the stream ended");
            let mut chunk = vec![0; n + 2];
            self.r.read_exact(&mut chunk).expect("chunk");
            self.buf.push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    }

    fn until(&mut self, mut pred: impl FnMut(&Value) -> bool) -> Vec<(Option<String>, Value)> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut out = Vec::new();
        while Instant::now() < deadline {
            let ev = self.next();
            let done = pred(&ev.1);
            out.push(ev);
            if done {
                return out;
            }
        }
        panic!("no such event within 20 s: {out:?}");
    }
}

#[test]
fn a_real_daemon_streams_a_stop_in_order_and_replays_after_a_reconnect() {
    let mut d =
        Daemon::start("[process.a]\ncommand = [\"sleep\", \"1000\"]\nstop.timeout = \"2s\"\n");
    d.wait_for("a to run", Duration::from_secs(20), |d| {
        d.state("a") == "running"
    });
    let mut s = Stream::open(&d, None);
    d.ok(&["stop", "a"]);
    let evs = s.until(|v| v["kind"] == "stopped");
    let kinds: Vec<&str> = evs.iter().filter_map(|(_, v)| v["kind"].as_str()).collect();
    let at = |k: &str| kinds.iter().position(|x| *x == k).unwrap_or(usize::MAX);
    assert!(at("exited") < at("stopped"), "{kinds:?}");
    assert!(
        evs.iter()
            .any(|(_, v)| v["kind"] == "state" && v["to"] == "stopping"),
        "{kinds:?}"
    );
    let seqs: Vec<u64> = evs.iter().filter_map(|(_, v)| v["seq"].as_u64()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    assert_eq!(
        evs.last().map(|(_, v)| v["status"]["state"].clone()),
        Some("stopped".into())
    );
    let last = evs.last().and_then(|(id, _)| id.clone()).expect("an id");
    drop(s);
    // While nobody listens: a start and a reload.
    d.ok(&["start", "a"]);
    d.ok(&["reload"]);
    let mut again = Stream::open(&d, Some(&last));
    let missed = again.until(|v| v["kind"] == "reloaded");
    let first = missed[0].1["seq"].as_u64().expect("seq");
    assert_eq!(first, seqs.last().copied().unwrap_or(0) + 1, "{missed:?}");
    assert!(missed.iter().any(|(_, v)| v["kind"] == "spawned"));
    let reloaded = &missed.last().expect("reloaded").1;
    assert_eq!(reloaded["added"], serde_json::json!([]));
}
