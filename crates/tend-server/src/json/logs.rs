//! `GET /v1/logs` (the tail, then optionally a live follow) and `POST /v1/logs/reopen`.
//!
//! The answer is NDJSON: one [`LogItem`] per line. A follow subscribes to the
//! supervisor's stream of output (not to files), so it carries on across
//! restarts of a process and rotations of its files.

use std::collections::HashSet;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use tend_core::Name;
use tend_core::logs::Stream;
use tend_core::runtime::{LogChunk, LogLine, LogQuery};
use tokio::sync::{broadcast, mpsc};

use super::error::ApiError;
use super::handlers::permitted;
use crate::access::{Caller, Right};
use crate::api::{LogItem, LogLineItem, ReopenError, ReopenResponse, percent_decode};
use crate::{Daemon, Shutdown};

/// Lines sent when the client does not say.
pub const DEFAULT_LINES: usize = 20;
/// A follower's batch: chunks already waiting are sent together up to this size.
const BATCH_BYTES: usize = 64 * 1024;
const NDJSON: &str = "application/x-ndjson";

/// The query of `GET /v1/logs`, parsed.
struct Params {
    patterns: Vec<String>,
    n: usize,
    stream: Option<Stream>,
    since: Option<Timestamp>,
    follow: bool,
}

fn parse_params(query: Option<&str>) -> Result<Params, ApiError> {
    let mut p = Params {
        patterns: Vec::new(),
        n: DEFAULT_LINES,
        stream: None,
        since: None,
        follow: false,
    };
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|s| !s.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value)
            .ok_or_else(|| ApiError::bad_request(format!("malformed query parameter {pair:?}")))?;
        match key {
            "pattern" => p.patterns.push(value),
            "n" => {
                p.n = value.parse().map_err(|_| {
                    ApiError::bad_request(format!(
                        "n={value:?} is not a number of lines (0 or more)"
                    ))
                })?
            }
            "stream" => {
                p.stream = match value.as_str() {
                    "stdout" => Some(Stream::Stdout),
                    "stderr" => Some(Stream::Stderr),
                    "" | "all" | "both" => None,
                    _ => {
                        return Err(ApiError::bad_request(format!(
                            "stream={value:?}: expected stdout or stderr"
                        )));
                    }
                }
            }
            "since" => p.since = Some(parse_since(&value, Timestamp::now())?),
            "follow" => {
                p.follow = match value.as_str() {
                    "" | "true" | "1" | "yes" => true,
                    "false" | "0" | "no" => false,
                    _ => {
                        return Err(ApiError::bad_request(format!(
                            "follow={value:?}: expected true or false"
                        )));
                    }
                }
            }
            _ => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {key:?} (expected pattern, n, stream, since or follow)"
                )));
            }
        }
    }
    Ok(p)
}

/// An RFC 3339 time, or a duration before `now` (`"10m"`, `"1h"`, `"30"` seconds).
fn parse_since(value: &str, now: Timestamp) -> Result<Timestamp, ApiError> {
    if let Ok(t) = value.parse::<Timestamp>() {
        return Ok(t);
    }
    let bad = |why: String| {
        ApiError::bad_request(format!(
            "since={value:?} is neither an RFC 3339 time (2026-01-02T10:00:00Z) nor a duration ago (10m): {why}"
        ))
    };
    let d = tend_core::duration::parse(value).map_err(|e| bad(e.why.to_string()))?;
    let d = jiff::SignedDuration::try_from(d).map_err(|e| bad(e.to_string()))?;
    now.checked_sub(d).map_err(|e| bad(e.to_string()))
}

/// `GET /v1/logs?pattern=P...&n=20&stream=stdout|stderr&since=T&follow=true`
pub(crate) async fn logs(
    State(st): State<Daemon>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let p = parse_params(query.as_deref())?;
    // Only what the caller sees exists; of that, only what it may read the
    // logs of is read (naming one it may not is a 403).
    let all = caller.visible(st.supervisor().status().await?);
    let (names, _refused) = if all.is_empty() && p.patterns.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        permitted(&caller, &all, &p.patterns, Right::Logs, "read the logs of")?
    };
    // Subscribe before reading the tails so that no line falls in between;
    // what arrives in both is skipped by `Seen`.
    let live = p.follow.then(|| st.supervisor().subscribe_logs());
    let lines = st.supervisor().log_lines(&LogQuery {
        names: names.clone(),
        last: p.n,
        stream: p.stream,
        since: p.since,
    });
    let mut first = Vec::with_capacity(lines.len() * 100);
    for l in &lines {
        encode(
            &mut first,
            l.name.as_str(),
            l.stream,
            l.time,
            &l.line,
            (l.partial, false),
        );
    }
    let Some(live) = live else {
        return Ok(([(header::CONTENT_TYPE, NDJSON)], first).into_response());
    };
    let (tx, rx) = mpsc::channel(4);
    let follower = Follower {
        names: names.into_iter().collect(),
        stream: p.stream,
        since: p.since,
        seen: Seen::new(&lines),
        tx,
    };
    tokio::spawn(follower.run(first, live, st.shutdown().clone()));
    Ok((
        [
            (header::CONTENT_TYPE, NDJSON),
            // Proxies must pass each line on as it comes.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(ChannelStream(rx)),
    )
        .into_response())
}

/// The items of a chunk, one per line. The last is `partial` when the
/// chunk ends inside a line (shown before its newline came); the first
/// `continues` when the chunk starts with more of such a line. A chunk that
/// only ends such a line (its stream ended, or the newline came alone) is one
/// empty item that continues it, so a client knows the line is complete.
pub(crate) fn chunk_items(c: &LogChunk) -> impl Iterator<Item = LogLineItem> + '_ {
    let n = c.lines().count();
    c.lines().enumerate().map(move |(i, line)| {
        LogLineItem::new(c.name.as_str(), c.stream, c.time, line)
            .with_flags(c.partial && i + 1 == n, c.continues && i == 0)
    })
}

/// Appends one line as a JSON object and a newline; `flags` are
/// (`partial`, `continues`).
fn encode(
    out: &mut Vec<u8>,
    name: &str,
    stream: Stream,
    time: Timestamp,
    line: &[u8],
    flags: (bool, bool),
) {
    let item =
        LogItem::Line(LogLineItem::new(name, stream, time, line).with_flags(flags.0, flags.1));
    // Serializing plain strings and a timestamp into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &item);
    out.push(b'\n');
}

/// The chunks the first answer already covered: a chunk that was in a tail
/// when it was read may also arrive through the subscription.
struct Seen {
    /// Anything older than the oldest line sent was cut by `n`.
    oldest: Option<Timestamp>,
    newest: Option<Timestamp>,
    /// Lines of one chunk share its process, stream and time.
    chunks: HashSet<(Name, Stream, Timestamp)>,
}

impl Seen {
    fn new(lines: &[LogLine]) -> Self {
        Seen {
            oldest: lines.iter().map(|l| l.time).min(),
            newest: lines.iter().map(|l| l.time).max(),
            chunks: lines
                .iter()
                .map(|l| (l.name.clone(), l.stream, l.time))
                .collect(),
        }
    }

    fn covers(&self, c: &LogChunk) -> bool {
        match (self.oldest, self.newest) {
            (Some(oldest), Some(newest)) if c.time <= newest => {
                c.time < oldest || self.chunks.contains(&(c.name.clone(), c.stream, c.time))
            }
            _ => false,
        }
    }
}

struct Follower {
    names: HashSet<Name>,
    stream: Option<Stream>,
    since: Option<Timestamp>,
    seen: Seen,
    tx: mpsc::Sender<Bytes>,
}

impl Follower {
    fn wanted(&self, c: &LogChunk) -> bool {
        self.names.contains(&c.name)
            && self.stream.is_none_or(|s| s == c.stream)
            && self.since.is_none_or(|t| c.time >= t)
            && !self.seen.covers(c)
    }

    fn push(&self, out: &mut Vec<u8>, c: &LogChunk) {
        if self.wanted(c) {
            for item in chunk_items(c) {
                // Serializing plain strings and a timestamp into a Vec cannot fail.
                let _ = serde_json::to_writer(&mut *out, &LogItem::Line(item));
                out.push(b'\n');
            }
        }
    }

    /// Sends `first`, then every new line, until the client goes away or
    /// the daemon stops serving.
    async fn run(
        self,
        first: Vec<u8>,
        mut live: broadcast::Receiver<LogChunk>,
        shutdown: Shutdown,
    ) {
        if !first.is_empty() && self.tx.send(Bytes::from(first)).await.is_err() {
            return;
        }
        let ended = shutdown.streams_ended();
        tokio::pin!(ended);
        loop {
            let got = tokio::select! {
                _ = self.tx.closed() => return,
                _ = &mut ended => return,
                got = live.recv() => got,
            };
            let mut out = Vec::new();
            match got {
                Ok(c) => self.push(&mut out, &c),
                Err(broadcast::error::RecvError::Lagged(n)) => lagged(&mut out, n),
                Err(broadcast::error::RecvError::Closed) => return,
            }
            // Whatever else is already waiting goes in the same write.
            while out.len() < BATCH_BYTES {
                match live.try_recv() {
                    Ok(c) => self.push(&mut out, &c),
                    Err(broadcast::error::TryRecvError::Lagged(n)) => lagged(&mut out, n),
                    Err(_) => break,
                }
            }
            if !out.is_empty() && self.tx.send(Bytes::from(out)).await.is_err() {
                return;
            }
        }
    }
}

fn lagged(out: &mut Vec<u8>, n: u64) {
    let _ = serde_json::to_writer(&mut *out, &LogItem::Lagged { lagged: n });
    out.push(b'\n');
}

/// The receiving end of a channel of bytes as a streaming response body
/// (a log follower; Supervisor's `/logtail`).
#[derive(Debug)]
pub struct ChannelStream(pub mpsc::Receiver<Bytes>);

impl futures_core::Stream for ChannelStream {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|b| b.map(Ok))
    }
}

/// `POST /v1/logs/reopen`
pub(crate) async fn reopen(
    State(st): State<Daemon>,
    caller: Caller,
) -> Result<Json<ReopenResponse>, ApiError> {
    if let Err(denied) = caller.require_everything(Right::Reload, "reopen the log files") {
        caller.audit_denied("reopen logs", "", &denied);
        return Err(denied.into());
    }
    let errors: Vec<ReopenError> = st
        .supervisor()
        .reopen_logs()
        .into_iter()
        .map(|(path, e)| {
            tracing::warn!(path = %path.display(), error = %e, "cannot reopen log file");
            ReopenError {
                path: path.display().to_string(),
                error: e.to_string(),
            }
        })
        .collect();
    tracing::info!("log files reopened");
    caller.audit("reopen logs", "", &format_args!("{} errors", errors.len()));
    Ok(Json(ReopenResponse {
        reopened: true,
        errors,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_a_time_or_a_duration_ago() {
        let now: Timestamp = "2026-01-02T10:00:00Z".parse().expect("time");
        let at = |s| parse_since(s, now).map(|t| t.to_string());
        assert_eq!(at("5m").as_deref(), Ok("2026-01-02T09:55:00Z"));
        assert_eq!(at("90").as_deref(), Ok("2026-01-02T09:58:30Z"));
        assert_eq!(
            at("2025-12-31T23:00:00+01:00").as_deref(),
            Ok("2025-12-31T22:00:00Z")
        );
        let err = parse_since("yesterday", now).expect_err("bad");
        assert!(err.message.contains("neither an RFC 3339 time"), "{err:?}");
    }

    #[test]
    fn params() {
        let p = parse_params(Some(
            "pattern=a&pattern=g%3A%2A&n=5&stream=stderr&follow=true",
        ))
        .expect("valid");
        assert_eq!(p.patterns, ["a", "g:*"]);
        assert_eq!((p.n, p.stream, p.follow), (5, Some(Stream::Stderr), true));
        let p = parse_params(None).expect("valid");
        assert_eq!((p.n, p.stream, p.follow), (DEFAULT_LINES, None, false));
        for bad in [
            "n=-1",
            "stream=out",
            "follow=maybe",
            "lines=3",
            "since=soon",
        ] {
            assert!(parse_params(Some(bad)).is_err(), "{bad}");
        }
    }
}
