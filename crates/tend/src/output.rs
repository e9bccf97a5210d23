//! Human output: the status table and formatting helpers.

use std::borrow::Cow;
use std::io::{self, BufWriter, Stdout};

use serde::Deserialize;
use tend_core::model::status::{Health, ProbeKind};
use tend_core::{ExitInfo, StateName};

/// Where a verb writes: buffered stdout (written once at the end; a closed
/// pipe, `tend status | head`, is not an error worth reporting), or one
/// host's buffer when several answer.
pub type Out = dyn io::Write;

/// A buffered stdout.
pub fn stdout() -> BufWriter<Stdout> {
    BufWriter::with_capacity(64 * 1024, io::stdout())
}

/// Whether an error is a closed stdout pipe.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<io::Error>())
        .any(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

/// Writes lines of output as `name | line`, the name padded to a width and,
/// on a terminal, coloured per process (the same colour for a name every time).
#[derive(Debug, Clone)]
pub struct Prefixer {
    /// Names are padded to this many characters.
    pub width: usize,
    /// Whether to use ANSI colours.
    pub colour: bool,
    /// Whether the lines go to a terminal: then bytes that are not UTF-8 are
    /// written as `\xff` escapes, never raw.
    pub escape: bool,
}

/// Foreground colours for process names, as ANSI SGR codes.
const PALETTE: [&str; 10] = ["36", "33", "32", "35", "34", "96", "93", "92", "95", "94"];

impl Prefixer {
    /// A prefixer for `names`; colours when `terminal` and `NO_COLOR` is not set.
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>, terminal: bool) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Prefixer {
            width: names
                .into_iter()
                .map(|n| n.chars().count())
                .max()
                .unwrap_or(0),
            colour: terminal && !no_color,
            escape: terminal,
        }
    }

    /// Appends `name | ` to `out`.
    pub fn prefix(&self, out: &mut Vec<u8>, name: &str) {
        let pad = self.width.saturating_sub(name.chars().count());
        if self.colour {
            out.extend_from_slice(b"\x1b[");
            out.extend_from_slice(colour_of(name).as_bytes());
            out.push(b'm');
        }
        out.extend_from_slice(name.as_bytes());
        out.resize(out.len() + pad, b' ');
        out.extend_from_slice(b" |");
        if self.colour {
            out.extend_from_slice(b"\x1b[0m");
        }
        out.push(b' ');
    }

    /// Appends `text` with no prefix and no newline: more of a line that
    /// [`Prefixer::prefix`] began (escaped as it escapes).
    pub fn more(&self, out: &mut Vec<u8>, text: &[u8]) {
        if self.escape {
            escape_invalid(out, text);
        } else {
            out.extend_from_slice(text);
        }
    }
}

/// Prints lines with a [`Prefixer`], keeping a *partial* line (one whose
/// newline has not come yet: a prompt, a progress bar) open: it is printed
/// without its newline, and what continues it is printed right after it when
/// nothing else came between, else on a line of its own. Printed bytes are
/// never taken back: a prompt stays on the screen.
#[derive(Debug, Clone)]
pub struct LinePrinter {
    /// How lines are prefixed.
    pub prefixer: Prefixer,
    /// The last line printed has no newline yet: whose it is.
    open: Option<(String, tend_core::logs::Stream)>,
    /// Printed before the prefix of the next line that starts (not before
    /// a piece that continues an open line): `tend logs --timestamps`.
    pub next_stamp: Option<String>,
}

impl LinePrinter {
    /// A printer with no line open.
    pub fn new(prefixer: Prefixer) -> Self {
        LinePrinter {
            prefixer,
            open: None,
            next_stamp: None,
        }
    }

    /// Appends one line (or piece of one) of `name`'s `stream` to `out`.
    /// `continues`: it goes on with that stream's last partial line;
    /// `partial`: it has not ended yet.
    pub fn line(
        &mut self,
        out: &mut Vec<u8>,
        name: &str,
        stream: tend_core::logs::Stream,
        line: &[u8],
        partial: bool,
        continues: bool,
    ) {
        let same = self
            .open
            .as_ref()
            .is_some_and(|(n, s)| n == name && *s == stream);
        let join = continues && same;
        if continues && !join && line.is_empty() && !partial {
            // Only the end of a line that something else has ended on
            // screen already.
            return;
        }
        if self.open.take().is_some() && !join {
            out.push(b'\n');
        }
        let stamp = self.next_stamp.take();
        if !join {
            if let Some(stamp) = stamp {
                out.extend_from_slice(stamp.as_bytes());
            }
            self.prefixer.prefix(out, name);
        }
        self.prefixer.more(out, line);
        if partial {
            self.open = Some((name.to_string(), stream));
        } else {
            out.push(b'\n');
        }
    }

    /// Ends a line left open (at the end of the output).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.open.take().is_some() {
            out.push(b'\n');
        }
    }
}

/// `line` with every byte that is not part of valid UTF-8 as `\xNN`.
fn escape_invalid(out: &mut Vec<u8>, mut line: &[u8]) {
    loop {
        match std::str::from_utf8(line) {
            Ok(s) => {
                out.extend_from_slice(s.as_bytes());
                return;
            }
            Err(e) => {
                let (good, rest) = line.split_at(e.valid_up_to());
                out.extend_from_slice(good);
                let bad = e.error_len().unwrap_or(rest.len());
                for b in &rest[..bad] {
                    out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
                }
                line = &rest[bad..];
            }
        }
    }
}

/// A stable colour per name (FNV-1a of the name picks from the palette).
fn colour_of(name: &str) -> &'static str {
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    PALETTE[h as usize % PALETTE.len()]
}

/// What the table shows of one entry of `GET /v1/status`, its strings
/// borrowed from the daemon's answer: a thousand rows decode without a full
/// `ProcessStatus` (and its allocations) each. Fields it does not name are
/// skipped.
#[derive(Debug, Deserialize)]
pub struct Row<'a> {
    /// Process name.
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    /// Its group.
    #[serde(borrow)]
    pub group: Cow<'a, str>,
    /// Its state.
    pub state: StateName,
    /// Main pid, when running.
    #[serde(default)]
    pub pid: Option<u32>,
    /// How long the current run has lasted.
    #[serde(default)]
    pub uptime_ms: Option<u64>,
    /// Automatic restarts so far.
    #[serde(default)]
    pub restarts: u64,
    /// How the last run ended.
    #[serde(default)]
    pub last_exit: Option<ExitInfo>,
    /// Time until the next restart, in back-off.
    #[serde(default)]
    pub next_restart_in_ms: Option<u64>,
    /// Why it could not be started, or what went wrong.
    #[serde(default, borrow)]
    pub error: Option<Cow<'a, str>>,
    /// When the current run started (RFC 3339), parsed only when a check
    /// needs comparing with it.
    #[serde(default, borrow)]
    pub started_at: Option<Cow<'a, str>>,
    /// Whether it is ready.
    #[serde(default)]
    pub ready: bool,
    /// Health verdict.
    #[serde(default)]
    pub health: Health,
    /// The latest check.
    #[serde(default, borrow)]
    pub last_check: Option<CheckRow<'a>>,
    /// What it said with sd_notify `STATUS=`.
    #[serde(default, borrow)]
    pub status_text: Option<Cow<'a, str>>,
    /// What it waits for, in `waiting`.
    #[serde(default, borrow)]
    pub waiting_for: Option<Cow<'a, str>>,
    /// Why the last run ended, when the kernel ended it (`oom_kill`).
    #[serde(default)]
    pub exit_reason: Option<tend_core::ExitReason>,
    /// When a task on a timer or a schedule runs next (RFC 3339).
    #[serde(default, borrow)]
    pub next_run: Option<Cow<'a, str>>,
    /// Whether the config file has it.
    #[serde(default)]
    pub origin: tend_core::Origin,
}

/// The latest check of a [`Row`].
#[derive(Debug, Deserialize)]
pub struct CheckRow<'a> {
    /// Readiness or health.
    pub kind: ProbeKind,
    /// Whether it passed.
    pub ok: bool,
    /// What it found.
    #[serde(borrow)]
    pub detail: Cow<'a, str>,
    /// When (RFC 3339).
    #[serde(borrow)]
    pub at: Cow<'a, str>,
}

/// The `tend status` table.
pub fn status_table(list: &[Row<'_>]) -> String {
    status_table_hosts(None, list)
}

/// The `tend status` table, with a HOST column first when `hosts` is
/// given (`hosts[i]` is the host of `list[i]`).
pub fn status_table_hosts(hosts: Option<&[&str]>, list: &[Row<'_>]) -> String {
    // Hand-written: plain columns, two spaces apart, PID and RESTARTS
    // right-aligned. A table crate spent more time than the whole round trip
    // to the daemon with a thousand rows.
    const HEADER: [&str; 8] = [
        "NAME",
        "GROUP",
        "STATE",
        "PID",
        "UPTIME",
        "RESTARTS",
        "LAST EXIT",
        "INFO",
    ];
    const RIGHT: [bool; 8] = [false, false, false, true, false, true, false, false];
    let with_host = hosts.is_some();
    let dash = || Cow::Borrowed("-");
    let rows: Vec<Vec<Cow<'_, str>>> = list
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut row = Vec::with_capacity(9);
            if let Some(h) = hosts {
                row.push(Cow::Borrowed(h.get(i).copied().unwrap_or("-")));
            }
            row.extend([
                Cow::Borrowed(&*p.name),
                Cow::Borrowed(&*p.group),
                Cow::Borrowed(p.state.as_str()),
                p.pid.map_or_else(dash, |pid| Cow::Owned(pid.to_string())),
                p.uptime_ms.map_or_else(dash, |ms| Cow::Owned(uptime(ms))),
                Cow::Owned(p.restarts.to_string()),
                p.last_exit
                    .as_ref()
                    .map_or_else(dash, |e| Cow::Owned(exit(e))),
                Cow::Owned(info(p)),
            ]);
            row
        })
        .collect();
    let mut header: Vec<&str> = Vec::with_capacity(9);
    let mut right: Vec<bool> = Vec::with_capacity(9);
    if with_host {
        header.push("HOST");
        right.push(false);
    }
    header.extend(HEADER);
    right.extend(RIGHT);
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut s = String::with_capacity((rows.len() + 1) * 100);
    let line = |cells: &mut dyn Iterator<Item = &str>, s: &mut String| {
        let start = s.len();
        for (i, cell) in cells.enumerate() {
            let pad = width[i].saturating_sub(cell.chars().count());
            if right[i] {
                s.extend(std::iter::repeat_n(' ', pad));
                s.push_str(cell);
            } else {
                s.push_str(cell);
                s.extend(std::iter::repeat_n(' ', pad));
            }
            s.push_str("  ");
        }
        let end = s[start..].trim_end().len() + start;
        s.truncate(end);
        s.push('\n');
    };
    line(&mut header.iter().copied(), &mut s);
    for row in &rows {
        line(&mut row.iter().map(|c| &**c), &mut s);
    }
    s
}

fn exit(e: &ExitInfo) -> String {
    match e {
        ExitInfo::Code(c) => format!("code {c}"),
        ExitInfo::Signal(s) => format!("signal {s}"),
    }
}

/// What a process waits for, how its checks go, what it said, and what
/// went wrong: `waiting for db (ready)`, `healthy (HTTP 200)`,
/// `not ready (connection refused)`, `restart in 2.0s; exit code 1`.
fn info(p: &Row<'_>) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(w) = &p.waiting_for {
        parts.push(format!("waiting for {w}"));
    }
    if matches!(p.state, StateName::Starting | StateName::Running) {
        parts.extend(checks(p));
        if let Some(text) = p.status_text.as_deref().filter(|t| !t.is_empty()) {
            parts.push(text.to_string());
        }
    }
    if let Some(ms) = p.next_restart_in_ms {
        parts.push(format!("restart in {}", seconds(ms)));
    }
    if p.exit_reason == Some(tend_core::ExitReason::OomKill) {
        parts.push("killed by the kernel's OOM killer (over memory_max)".into());
    }
    parts.extend(p.error.as_deref().map(str::to_string));
    parts.extend(p.next_run.as_deref().map(next_run));
    if p.origin == tend_core::Origin::Added {
        parts.push("added (not in the config file)".into());
    }
    parts.join("; ")
}

/// `next run 2026-03-01T10:05:00Z (in 4m 12s)`.
fn next_run(at: &str) -> String {
    let Ok(t) = at.parse::<jiff::Timestamp>() else {
        return format!("next run {at}");
    };
    let secs = jiff::Timestamp::now().duration_until(t).as_secs();
    match u64::try_from(secs) {
        Ok(s) => format!("next run {t:.0} (in {})", uptime(s.saturating_mul(1000))),
        Err(_) => format!("next run {t:.0} (due)"),
    }
}

/// `healthy (HTTP 200)`, `unhealthy (timed out after 1s)`, `ready (PONG)`,
/// `not ready (connection refused)`; nothing for a process without checks.
fn checks(p: &Row<'_>) -> Option<String> {
    let last = p.last_check.as_ref()?;
    // A check of the previous run says nothing of this one.
    let time = |t: &str| t.parse::<jiff::Timestamp>().ok();
    if let (Some(start), Some(at)) = (p.started_at.as_deref().and_then(time), time(&last.at))
        && at < start
    {
        return None;
    }
    let word = match p.health {
        Health::Unhealthy => "unhealthy",
        Health::Healthy => "healthy",
        Health::Unknown if p.ready => "ready",
        Health::Unknown => "not ready",
    };
    let detail = match (last.kind, last.ok) {
        // A failing health check before the verdict says so.
        (ProbeKind::Health, false) if p.health != Health::Unhealthy => {
            format!("health check failed: {}", last.detail)
        }
        _ => last.detail.to_string(),
    };
    Some(if detail.is_empty() {
        word.to_string()
    } else {
        format!("{word} ({detail})")
    })
}

/// `3.2s`, `45s`, `2m 5s`.
fn seconds(ms: u64) -> String {
    if ms < 60_000 {
        format!("{}.{}s", ms / 1000, (ms % 1000) / 100)
    } else {
        uptime(ms)
    }
}

/// Compact uptime: `12s`, `5m 3s`, `2h 10m`, `3d 4h`.
pub fn uptime(ms: u64) -> String {
    let s = ms / 1000;
    let (d, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_lines() {
        use tend_core::logs::Stream::{Stderr, Stdout};
        let mut p = LinePrinter::new(Prefixer::new(["web", "worker"], false));
        let mut out = Vec::new();
        p.line(&mut out, "web", Stdout, b"hello", false, false);
        p.line(&mut out, "worker", Stdout, b"\xff raw", false, false);
        assert_eq!(out, b"web    | hello\nworker | \xff raw\n");
        // A partial line stays open for what continues it...
        let mut out = Vec::new();
        p.line(&mut out, "web", Stdout, b"Password: ", true, false);
        assert_eq!(out, b"web    | Password: ");
        p.line(&mut out, "web", Stdout, b"ok", false, true);
        assert_eq!(out, b"web    | Password: ok\n");
        // ...unless something else comes between: then it goes on a line
        // of its own.
        let mut out = Vec::new();
        p.line(&mut out, "web", Stdout, b"\r10%", true, false);
        p.line(&mut out, "web", Stderr, b"warn", false, false);
        p.line(&mut out, "web", Stdout, b"\r20%", true, true);
        p.finish(&mut out);
        assert_eq!(out, b"web    | \r10%\nweb    | warn\nweb    | \r20%\n");
        let c = LinePrinter::new(Prefixer {
            width: 3,
            colour: true,
            escape: true,
        });
        let mut c = c;
        let mut out = Vec::new();
        c.line(&mut out, "web", Stdout, b"x", false, false);
        let code = colour_of("web");
        assert_eq!(out, format!("\x1b[{code}mweb |\x1b[0m x\n").into_bytes());
        assert_eq!(colour_of("web"), code, "stable");
        // To a terminal, what is not UTF-8 is escaped; names pad by characters.
        let mut t = LinePrinter::new(Prefixer {
            width: 8,
            colour: false,
            escape: true,
        });
        let mut out = Vec::new();
        t.line(
            &mut out,
            "test_öäü",
            Stdout,
            b"\xff\xfeok \xc3\xa9 \xc3",
            false,
            false,
        );
        assert_eq!(out, "test_öäü | \\xff\\xfeok é \\xc3\n".as_bytes());
        // The bare end of a line that another's line has ended on screen
        // already prints nothing (no empty line).
        let mut out = Vec::new();
        p.line(&mut out, "web", Stdout, b"Password: ", true, false);
        p.line(&mut out, "worker", Stdout, b"w", false, false);
        p.line(&mut out, "web", Stdout, b"", false, true);
        assert_eq!(out, b"web    | Password: \nworker | w\n");
    }

    use serde_json::json;

    /// A status entry: these fields over a plain running one. (Leaked: a
    /// row borrows from its text, and tests are short.)
    fn status(extra: serde_json::Value) -> Row<'static> {
        let mut v = json!({
            "name": "web", "group": "web", "state": "running", "pid": 42,
            "started_at": null, "stopped_at": null, "uptime_ms": 1000, "restarts": 0,
            "last_exit": null, "next_restart_in_ms": null, "error": null,
            "quick_deaths": 0, "priority": 999, "ready": true, "health": "unknown",
            "last_check": null, "status_text": null, "waiting_for": null,
            "log_dropped_bytes": 0
        });
        if let (Some(v), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
            v.extend(extra.clone());
        }
        let text: &'static str = Box::leak(v.to_string().into_boxed_str());
        serde_json::from_str(text).expect("a valid status")
    }

    fn check(kind: &str, ok: bool, detail: &str) -> serde_json::Value {
        json!({"kind": kind, "ok": ok, "detail": detail, "at": "2026-01-01T00:00:00Z"})
    }

    #[test]
    fn info_says_what_a_process_waits_for_and_how_its_checks_go() {
        assert_eq!(info(&status(json!({}))), "");
        assert_eq!(
            info(&status(
                json!({"state": "waiting", "pid": null, "ready": false,
                "waiting_for": "db (ready), migrate (completed)"})
            )),
            "waiting for db (ready), migrate (completed)"
        );
        assert_eq!(
            info(&status(json!({"state": "starting", "ready": false,
                "last_check": check("ready", false, "connection refused")}))),
            "not ready (connection refused)"
        );
        assert_eq!(
            info(&status(
                json!({"last_check": check("ready", true, "HTTP 200")})
            )),
            "ready (HTTP 200)"
        );
        assert_eq!(
            info(&status(
                json!({"health": "healthy", "last_check": check("health", true, "PONG")})
            )),
            "healthy (PONG)"
        );
        assert_eq!(
            info(&status(json!({"health": "healthy",
                "last_check": check("health", false, "timed out after 1s")}))),
            "healthy (health check failed: timed out after 1s)"
        );
        assert_eq!(
            info(&status(json!({"health": "unhealthy",
                "last_check": check("health", false, "HTTP 500"), "status_text": "busy"}))),
            "unhealthy (HTTP 500); busy"
        );
        // A check of the previous run says nothing of this one.
        assert_eq!(
            info(&status(json!({"state": "starting", "ready": false,
                "started_at": "2026-01-01T00:00:01Z",
                "last_check": check("ready", true, "HTTP 200")}))),
            ""
        );
        assert_eq!(
            info(&status(json!({"state": "stopping",
                "last_check": check("ready", true, "HTTP 200")}))),
            ""
        );
        // Checks of a run that has ended are not news.
        assert_eq!(
            info(&status(
                json!({"state": "backoff", "pid": null, "next_restart_in_ms": 2000,
                "last_check": check("health", false, "HTTP 500"), "error": "health check failed"})
            )),
            "restart in 2.0s; health check failed"
        );
    }

    #[test]
    fn formats_durations() {
        assert_eq!(uptime(0), "0s");
        assert_eq!(uptime(59_999), "59s");
        assert_eq!(uptime(61_000), "1m 1s");
        assert_eq!(uptime(3 * 3_600_000 + 120_000), "3h 2m");
        assert_eq!(uptime(2 * 86_400_000 + 3_600_000), "2d 1h");
        assert_eq!(seconds(3_250), "3.2s");
        assert_eq!(seconds(90_000), "1m 30s");
    }
}
