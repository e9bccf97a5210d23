//! The wire types of the JSON API, shared by the server and the `tend` client.
//!
//! Every endpoint lives under `/v1` and speaks JSON both ways; `docs/api.md`
//! documents them. An error is always [`ErrorResponse`] with a fitting status
//! code. Process snapshots are [`tend_core::ProcessStatus`] serialized as is.

use serde::{Deserialize, Serialize};

pub use tend_core::logs::Stream;
pub use tend_core::{Outcome, ProcessSpec, ProcessStatus, Signal};

/// The version prefix of every path.
pub const PREFIX: &str = "/v1";

/// Body of `POST /v1/stop` and `/v1/restart`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetsRequest {
    /// Patterns: `web`, `web-*`, `GROUP:*`, `GROUP:name` or `all`.
    pub targets: Vec<String>,
}

/// Body of `POST /v1/start`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// Patterns, as in [`TargetsRequest`].
    pub targets: Vec<String>,
    /// Do not start their stopped dependencies: a process whose
    /// dependencies do not hold waits for them (`tend start --no-deps`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_deps: bool,
}

/// Body of `POST /v1/signal`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalRequest {
    /// Patterns, as in [`TargetsRequest`].
    pub targets: Vec<String>,
    /// `HUP`, `SIGHUP`, `hup` or a number.
    pub signal: Signal,
}

/// The answer to a batch action: one entry per process, in the order acted on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionResponse {
    /// One result per process.
    pub results: Vec<ActionItem>,
}

/// What a batch action did to one process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionItem {
    /// The process.
    pub name: String,
    /// Whether the action succeeded for it.
    pub ok: bool,
    /// What happened, when `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// Why it failed, when not `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// It was not named by the request: a start or restart started it
    /// because a named process depends on it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dependency: bool,
}

impl From<tend_core::ActionResult> for ActionItem {
    fn from(r: tend_core::ActionResult) -> Self {
        let name = r.name.to_string();
        match r.result {
            Ok(outcome) => ActionItem {
                name,
                ok: true,
                outcome: Some(outcome),
                error: None,
                dependency: false,
            },
            Err(e) => ActionItem {
                name,
                ok: false,
                outcome: None,
                error: Some(e.to_string()),
                dependency: false,
            },
        }
    }
}

/// The answer to `POST /v1/reload`: process names, each list sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadResponse {
    /// Processes the file added (started if they autostart).
    pub added: Vec<String>,
    /// Processes whose settings changed (replaced; started again if they were up).
    pub changed: Vec<String>,
    /// Processes the file dropped (stopped and removed).
    pub removed: Vec<String>,
}

/// The answer to `POST /v1/processes` (201) and `DELETE /v1/processes/{name}` (200).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameResponse {
    /// The process added or removed.
    pub name: String,
}

/// The answer to `GET /v1/version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionResponse {
    /// The daemon's version.
    pub version: String,
    /// The daemon's pid.
    pub pid: u32,
}

/// The answer to `POST /v1/shutdown` (202).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShutdownResponse {
    /// Always true: the daemon has begun to stop every process and will exit.
    pub shutting_down: bool,
}

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// What went wrong, for a human.
    pub error: String,
}

/// One line of output in the `GET /v1/logs` stream (one JSON object per line).
///
/// Exactly one of `line` (the text, when it is valid UTF-8) and `line_b64`
/// (the raw bytes in standard base64, otherwise) is present, so no byte is lost.
///
/// A line whose newline has not come yet (a `Password: ` prompt, a `\r`
/// progress bar) is sent as it is 100 ms after its first byte was read
/// (`PARTIAL_AFTER`), with `partial`; what follows of it comes in the next item of that
/// process and stream, with `continues` (and `partial` again while it still
/// has not ended). Printed one after the other without a newline between
/// them, they give the line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLineItem {
    /// The process.
    pub name: String,
    /// `"stdout"` or `"stderr"`.
    pub stream: Stream,
    /// When the daemon read the line, RFC 3339.
    pub time: jiff::Timestamp,
    /// The line without its newline, when it is UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<String>,
    /// The line's raw bytes in base64, when it is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line_b64: Option<String>,
    /// The line has not ended yet (a prompt, a `\r` progress bar, shown
    /// before its newline came): the next item of this process and stream
    /// goes on with it. Left out when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
    /// This text continues the previous item of the same process and
    /// stream (the last one marked `partial`): more of that line, not a
    /// line of its own. Its `line` may be empty when it only ends that line.
    /// Left out when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub continues: bool,
}

impl LogLineItem {
    /// The item for a line of raw bytes (without its newline).
    pub fn new(name: &str, stream: Stream, time: jiff::Timestamp, line: &[u8]) -> Self {
        let (line, line_b64) = match std::str::from_utf8(line) {
            Ok(s) => (Some(s.to_string()), None),
            Err(_) => (None, Some(base64_encode(line))),
        };
        LogLineItem {
            name: name.to_string(),
            stream,
            time,
            line,
            line_b64,
            partial: false,
            continues: false,
        }
    }

    /// The same item, marked as a partial line and/or as going on with one.
    pub fn with_flags(mut self, partial: bool, continues: bool) -> Self {
        self.partial = partial;
        self.continues = continues;
        self
    }

    /// The line's bytes (without the newline); `None` when `line_b64` is not base64.
    pub fn bytes(&self) -> Option<Vec<u8>> {
        match (&self.line, &self.line_b64) {
            (Some(s), _) => Some(s.as_bytes().to_vec()),
            (None, Some(b)) => base64_decode(b),
            (None, None) => Some(Vec::new()),
        }
    }
}

/// One object of the `GET /v1/logs` stream: a line, or a notice that a slow
/// follower missed `lagged` batches of lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LogItem {
    /// A line of output.
    Line(LogLineItem),
    /// Batches of lines skipped because the client read too slowly.
    Lagged {
        /// How many batches (each one or more lines) were skipped.
        lagged: u64,
    },
}

/// One process in the answer of `GET /v1/logs/files`: where its output is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogFilesItem {
    /// The process.
    pub name: String,
    /// Where stdout goes: an absolute file path, `"inherit"` (the daemon's
    /// own stdout), `"memory"` (the in-memory tail only) or `"null"`.
    pub stdout: String,
    /// Where stderr goes, as `stdout`; `null` when it is merged into stdout.
    pub stderr: Option<String>,
}

/// The path of `GET /v1/logs/files` for `patterns` (every process when empty).
pub fn log_files_path(patterns: &[String]) -> String {
    status_path(patterns).replacen("/status", "/logs/files", 1)
}

/// The query of `GET /v1/logs`, as the client builds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogsQuery {
    /// Patterns, as in [`TargetsRequest`]; every process when empty.
    pub patterns: Vec<String>,
    /// The last `n` lines (the server's default, 20, when `None`).
    pub n: Option<usize>,
    /// Only this stream; both when `None`.
    pub stream: Option<Stream>,
    /// Only lines since then: an RFC 3339 time or a duration ago (`"5m"`).
    pub since: Option<String>,
    /// Keep sending new lines until the client disconnects.
    pub follow: bool,
}

impl LogsQuery {
    /// The path and query string for this request.
    pub fn path(&self) -> String {
        let mut path = format!("{PREFIX}/logs");
        let mut sep = '?';
        let mut push = |path: &mut String, key: &str, value: &str| {
            path.push(sep);
            sep = '&';
            path.push_str(key);
            path.push('=');
            percent_encode_into(value, path);
        };
        for p in &self.patterns {
            push(&mut path, "pattern", p);
        }
        if let Some(n) = self.n {
            push(&mut path, "n", &n.to_string());
        }
        if let Some(s) = self.stream {
            push(&mut path, "stream", s.as_str());
        }
        if let Some(since) = &self.since {
            push(&mut path, "since", since);
        }
        if self.follow {
            push(&mut path, "follow", "true");
        }
        path
    }
}

/// The answer to `POST /v1/logs/reopen`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReopenResponse {
    /// Always true: every log file was closed and opened again (or tried to be).
    pub reopened: bool,
    /// The files that could not be opened again; output to them is dropped
    /// (and counted) until they can.
    pub errors: Vec<ReopenError>,
}

/// A log file that could not be reopened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReopenError {
    /// The file.
    pub path: String,
    /// Why.
    pub error: String,
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 (RFC 4648, with padding).
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for group in data.chunks(3) {
        let b = [
            group[0],
            group.get(1).copied().unwrap_or(0),
            group.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= group.len() {
                out.push(B64[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 with padding; `None` when it is malformed.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let value = |c: u8| B64.iter().position(|&b| b == c).map(|v| v as u32);
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let groups = bytes.len() / 4;
    for (i, group) in bytes.chunks(4).enumerate() {
        let pad = group.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && i + 1 != groups) {
            return None;
        }
        let mut n = 0u32;
        for &c in &group[..4 - pad] {
            n = (n << 6) | value(c)?;
        }
        n <<= 6 * pad as u32;
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&decoded[..3 - pad]);
    }
    Some(out)
}

/// What `GET /v1/status?stats=...` asks for: what each process uses
/// ([`tend_core::ProcessStatus::stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatsMode {
    /// No usage (`stats=false`, or no `stats` at all).
    #[default]
    No,
    /// Usage for every process of the answer that is up (`stats=true`).
    Yes,
    /// Usage when the answer has at most [`STATS_AUTO_MAX`] processes that
    /// are up, none otherwise (`stats=auto`, what `tend status --json`
    /// asks for).
    Auto,
}

/// Up to this many processes that are up, `stats=auto` reads what each
/// uses. Reading it is a few files of the kernel's per process (its
/// cgroup's `cpu.stat`, `cgroup.procs`, `memory.current`): ~35 µs each,
/// 9 ms for 256, but 0.4 s for 10,000, where the status itself is 15 ms.
/// Beyond, a listing stays a listing (as `docker ps` and `kubectl get` leave
/// usage to `docker stats` and `kubectl top`): `stats=true` reads it anyway.
pub const STATS_AUTO_MAX: usize = 256;

/// Appends `pattern=P` pairs for `GET /v1/status` to `path`, percent-encoding each.
pub fn status_path(patterns: &[String]) -> String {
    let mut path = format!("{PREFIX}/status");
    for (i, p) in patterns.iter().enumerate() {
        path.push(if i == 0 { '?' } else { '&' });
        path.push_str("pattern=");
        percent_encode_into(p, &mut path);
    }
    path
}

/// Percent-encodes everything but unreserved characters (RFC 3986) into `out`.
pub fn percent_encode_into(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// Decodes a query-string component (`%XX` and `+` for space). `None` when an
/// escape is malformed or the result is not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_path_round_trips_patterns() {
        let pats = vec![
            "web".to_string(),
            "grp:*".to_string(),
            "a b&c=%".to_string(),
        ];
        let path = status_path(&pats);
        assert_eq!(
            path,
            "/v1/status?pattern=web&pattern=grp%3A%2A&pattern=a%20b%26c%3D%25"
        );
        let query = path.split_once('?').map(|(_, q)| q).unwrap_or_default();
        let back: Vec<String> = query
            .split('&')
            .filter_map(|kv| kv.strip_prefix("pattern="))
            .filter_map(percent_decode)
            .collect();
        assert_eq!(back, pats);
    }

    #[test]
    fn base64_round_trips() {
        for (raw, enc) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"\xff\xfe ok", "//4gb2s="),
        ] {
            assert_eq!(base64_encode(raw), enc);
            assert_eq!(base64_decode(enc).as_deref(), Some(raw));
        }
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(base64_decode(&base64_encode(&all)), Some(all));
        for bad in ["Zg=", "Z===", "Zg==Zm8=", "Zm9*", "Zm9v="] {
            assert_eq!(base64_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn log_items() {
        let t: jiff::Timestamp = "2026-01-02T10:00:00Z".parse().expect("time");
        let text = LogLineItem::new("web", Stream::Stdout, t, b"hello");
        let json = serde_json::to_string(&LogItem::Line(text.clone())).expect("json");
        assert_eq!(
            json,
            r#"{"name":"web","stream":"stdout","time":"2026-01-02T10:00:00Z","line":"hello"}"#
        );
        let mut more = text.clone();
        more.continues = true;
        let json = serde_json::to_string(&LogItem::Line(more.clone())).expect("json");
        assert_eq!(
            json,
            r#"{"name":"web","stream":"stdout","time":"2026-01-02T10:00:00Z","line":"hello","continues":true}"#
        );
        let back: LogItem = serde_json::from_str(&json).expect("decode");
        assert_eq!(back, LogItem::Line(more));
        let raw = LogLineItem::new("web", Stream::Stderr, t, b"\xff\xfeok");
        assert_eq!(raw.line, None);
        assert_eq!(raw.bytes().as_deref(), Some(&b"\xff\xfeok"[..]));
        let back: LogItem =
            serde_json::from_str(&serde_json::to_string(&raw).expect("json")).expect("decode");
        assert_eq!(back, LogItem::Line(raw));
        let lagged: LogItem = serde_json::from_str(r#"{"lagged": 3}"#).expect("decode");
        assert_eq!(lagged, LogItem::Lagged { lagged: 3 });
        let q = LogsQuery {
            patterns: vec!["g:*".into(), "web".into()],
            n: Some(5),
            stream: Some(Stream::Stderr),
            since: Some("5m".into()),
            follow: true,
        };
        assert_eq!(
            q.path(),
            "/v1/logs?pattern=g%3A%2A&pattern=web&n=5&stream=stderr&since=5m&follow=true"
        );
        assert_eq!(LogsQuery::default().path(), "/v1/logs");
    }

    #[test]
    fn malformed_escapes_are_rejected() {
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%FF"), None);
        assert_eq!(percent_decode("a+b"), Some("a b".into()));
    }
}
