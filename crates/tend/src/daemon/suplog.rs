//! tend's own log in supervisord's format (`[daemon] log_format =
//! "supervisord"`, what a supervisord.conf gets): supervisord's lines
//! (`2026-12-03 10:15:01,234 INFO spawned: 'x' with pid 123`), its levels
//! (CRIT ERRO WARN INFO DEBG TRAC BLAT) and its sentences for each event
//! (`tend_supervisor::mainlog`), and at `loglevel=debug` the processes'
//! output as supervisord copies it into its log.
//!
//! Everything still goes through `tracing`: this module gives it
//! supervisord's line format and levels, and turns the supervisor's events
//! into supervisord's sentences. supervisord's two levels that `tracing`
//! lacks are targets: CRIT is an error at [`CRIT`], BLAT a trace at
//! [`BLATHER`].

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tend_config::LogLevel;
use tend_core::Event;
use tend_core::runtime::LogChunk;
use tend_server::Daemon;
use tend_supervisor::mainlog::{self, Context, Line, MainLog};
use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing::{Level, Metadata};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use super::lock;

/// The target of an error that supervisord would log as CRIT.
pub(super) const CRIT: &str = "supervisord::crit";
/// The target of a trace that supervisord would log as BLAT.
pub(super) const BLATHER: &str = "supervisord::blather";

/// supervisord's level of a `tracing` event.
pub(super) fn sup_level(meta: &Metadata<'_>) -> LogLevel {
    match *meta.level() {
        Level::ERROR if meta.target() == CRIT => LogLevel::Critical,
        Level::ERROR => LogLevel::Error,
        Level::WARN => LogLevel::Warn,
        Level::INFO => LogLevel::Info,
        Level::DEBUG => LogLevel::Debug,
        Level::TRACE if meta.target() == BLATHER => LogLevel::Blather,
        Level::TRACE => LogLevel::Trace,
    }
}

/// Whether an event belongs in a supervisord-style log at `level`: the
/// daemon's own lines and supervisord's sentences at their level; the
/// engine's and the libraries' only from INFO up (their debug lines are
/// tend's internals, which supervisord's debug log does not have).
pub(super) fn wanted(meta: &Metadata<'_>, level: LogLevel) -> bool {
    let t = meta.target();
    let ours = t == "tend"
        || t.starts_with("tend::")
        || t.starts_with("supervisord::")
        || t.starts_with("tend_supervisor::eventlistener");
    let at = sup_level(meta);
    at >= level && (ours || at >= LogLevel::Info)
}

/// Logs one line at its supervisord level.
pub(super) fn emit(level: LogLevel, text: &str) {
    match level {
        LogLevel::Critical => tracing::error!(target: "supervisord::crit", "{text}"),
        LogLevel::Error => tracing::error!("{text}"),
        LogLevel::Warn => tracing::warn!("{text}"),
        LogLevel::Info => tracing::info!("{text}"),
        LogLevel::Debug => tracing::debug!("{text}"),
        LogLevel::Trace => tracing::trace!("{text}"),
        LogLevel::Blather => tracing::trace!(target: "supervisord::blather", "{text}"),
    }
}

fn emit_line(l: &Line) {
    emit(l.level, &l.text);
}

/// supervisord's line: `%(asctime)s %(levelname)s %(message)s`, the time
/// local with milliseconds (`2026-12-03 10:15:01,234`). The fields of an
/// event other than its message follow as `key=value`.
pub(super) struct SupervisordFormat;

impl<S, N> FormatEvent<S, N> for SupervisordFormat
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        writeln!(
            w,
            "{} {} {}{}",
            asctime(jiff::Zoned::now()),
            mainlog::level_name(sup_level(event.metadata())),
            fields.message,
            fields.rest
        )
    }
}

/// `2026-12-03 10:15:01,234`: Python's `time.strftime("%Y-%m-%d %H:%M:%S")`
/// and the milliseconds, cut (not rounded) as supervisord cuts them.
fn asctime(now: jiff::Zoned) -> String {
    format!(
        "{},{:03}",
        now.strftime("%Y-%m-%d %H:%M:%S"),
        now.subsec_nanosecond() / 1_000_000
    )
}

#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.rest.push_str(&format!(" {}={value}", field.name()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message.push_str(&format!("{value:?}"));
        } else {
            self.rest.push_str(&format!(" {}={value:?}", field.name()));
        }
    }
}

/// What supervisord logs as it starts, beyond the file's own notes: the
/// lines that depend on the daemon (root, the pid).
#[derive(Debug, Clone, Default)]
pub(super) struct StartLines {
    /// As the log opens (criticals, warnings, infos).
    pub(super) opening: Vec<Line>,
    /// As the HTTP servers open.
    pub(super) servers: Vec<Line>,
}

impl StartLines {
    pub(super) fn emit_opening(&self) {
        self.opening.iter().for_each(emit_line);
    }

    pub(super) fn emit_servers(&self) {
        self.servers.iter().for_each(emit_line);
    }
}

/// `Supervisor is running as root. ...`: supervisord's warning when it
/// keeps root's privileges because no `user` is set.
pub(super) const ROOT_WARNING: &str = "Supervisor is running as root.  Privileges were not dropped because no user is specified in the config file.  If you intend to run as root, you can set user=root in the config file to avoid this message.";

/// The supervisor's events as supervisord's sentences, with its periodic
/// reports (`waiting for x to stop`, `waiting for a, b to die`) while a
/// stop, a restart or the shutdown is under way; and, after a restart,
/// supervisord's start-up lines again.
pub(super) async fn log_events(
    mut rx: broadcast::Receiver<Event>,
    ctx: Arc<Mutex<Context>>,
    daemon: Daemon,
    start: StartLines,
) {
    let mut log = MainLog::new();
    let mut stopping_all = false;
    let mut restarted = false;
    loop {
        let next = log.next_report().map(tokio::time::Instant::from_std);
        tokio::select! {
            r = rx.recv() => match r {
                Ok(ev) => {
                    let now = Instant::now();
                    let restarting = daemon.config().is_restarting();
                    let all = restarting || daemon.shutdown().is_triggered();
                    if all && !stopping_all {
                        log.shutting_down(now);
                        restarted = false;
                    } else if !all && stopping_all {
                        log.running();
                    }
                    stopping_all = all;
                    if restarting && !restarted && matches!(ev, Event::Added { .. }) {
                        // The file was read again: supervisord starts over.
                        restarted = true;
                        start.emit_opening();
                        start.emit_servers();
                        emit(LogLevel::Info, &format!("supervisord started with pid {}", std::process::id()));
                    }
                    let lines = log.lines(&ev, &lock(&ctx), now);
                    lines.iter().for_each(emit_line);
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!("event log lagged; {n} events not shown")
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = sleep_until(next) => {
                let lines = log.reports(&lock(&ctx), Instant::now());
                lines.iter().for_each(emit_line);
            }
            _ = daemon.shutdown().triggered(), if !stopping_all => {
                // The first report comes at once, as supervisord's does.
                stopping_all = true;
                log.shutting_down(Instant::now());
            }
        }
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// At `loglevel=debug`, what the processes write, as supervisord copies it
/// into its log: `'x' stdout output:` and the text, or `Undecodable:
/// b'...'`, never the raw bytes.
pub(super) async fn log_output(mut rx: broadcast::Receiver<LogChunk>) {
    loop {
        match rx.recv().await {
            // A bare newline that only ends a line shown in part: nothing to copy.
            Ok(c) if c.continues && &*c.data == b"\n" => {}
            Ok(c) => emit_line(&mainlog::output_line(&c.name, c.stream, &c.data)),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::debug!("{n} batches of output not copied into the log")
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_is_pythons_asctime() {
        let t: jiff::Zoned = "2026-12-03T10:15:01.2349+00:00[UTC]".parse().expect("time");
        assert_eq!(asctime(t), "2026-12-03 10:15:01,234");
        let t: jiff::Zoned = "2026-01-02T03:04:05.007+00:00[UTC]".parse().expect("time");
        assert_eq!(asctime(t), "2026-01-02 03:04:05,007");
    }
}
