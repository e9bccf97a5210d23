//! tend's own log: text or JSON lines to stderr or to a file that rotates
//! like the processes' files, and one line per event worth a human's
//! attention.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tend_config::{DaemonConfig, LogFormat, LogLevel};
use tend_core::logs::LogFile;
use tend_core::{Event, Supervisor};
use tokio::sync::broadcast;
use tracing::{debug, error, info, warn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

use super::{lock, suplog};

/// tend's own log: text, JSON or supervisord's lines, to stderr or appended
/// to `log_file` (and to the terminal too with `echo_log` in the
/// foreground, as supervisord `nodaemon` does: supervisord's lines to
/// stdout, as it writes them, others to stderr). Returns the file, to reopen
/// it on SIGUSR2.
pub(super) fn init_logging(cfg: &DaemonConfig, foreground: bool) -> Result<Option<OwnLog>, String> {
    use tracing_subscriber::fmt::writer::MakeWriterExt;
    let supervisord = cfg.log_format == LogFormat::Supervisord;
    let echo = || -> BoxMakeWriter {
        if supervisord {
            BoxMakeWriter::new(std::io::stdout)
        } else {
            BoxMakeWriter::new(std::io::stderr)
        }
    };
    let (writer, ansi, file) = match &cfg.log_file {
        Some(path) => {
            let file = OwnLog::open(path, cfg.log_max_size, cfg.log_backups)
                .map_err(|e| format!("cannot open the log file {}: {e}", path.display()))?;
            let writer = if cfg.echo_log && foreground {
                BoxMakeWriter::new(file.clone().and(echo()))
            } else {
                BoxMakeWriter::new(file.clone())
            };
            (writer, false, Some(file))
        }
        None if supervisord && !(cfg.echo_log && foreground) => {
            (BoxMakeWriter::new(std::io::sink), false, None)
        }
        None => (
            echo(),
            !supervisord && std::io::stderr().is_terminal(),
            None,
        ),
    };
    let from_env = tracing_subscriber::EnvFilter::try_from_default_env().ok();
    let level = cfg.log_level.unwrap_or(LogLevel::Info);
    if supervisord {
        use tracing_subscriber::Layer;
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_ansi(false)
            .event_format(suplog::SupervisordFormat);
        let _ = match from_env {
            Some(env) => tracing_subscriber::registry()
                .with(layer.with_filter(env))
                .with(otel_beside_supervisord())
                .try_init(),
            None => tracing_subscriber::registry()
                .with(
                    layer.with_filter(tracing_subscriber::filter::filter_fn(move |meta| {
                        suplog::wanted(meta, level)
                    })),
                )
                .with(otel_beside_supervisord())
                .try_init(),
        };
        return Ok(file);
    }
    let filter = from_env.unwrap_or_else(|| tracing_subscriber::EnvFilter::new(level.directive()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi)
        .with_target(false);
    // Beside the formatter, the layer that offers tend's own lines to the
    // OTLP exporter (idle until telemetry starts).
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    #[cfg(feature = "otel")]
    let otel = super::telemetry::layer();
    #[cfg(not(feature = "otel"))]
    let otel = tracing_subscriber::layer::Identity::new();
    let _ = match cfg.log_format {
        LogFormat::Json => builder.json().finish().with(otel).try_init(),
        LogFormat::Text | LogFormat::Supervisord => builder.finish().with(otel).try_init(),
    };
    Ok(file)
}

/// The OTLP layer beside supervisord's log format, with a filter of its
/// own (it takes warnings, audit lines and info spans, whatever
/// supervisord's log level shows).
#[cfg(feature = "otel")]
fn otel_beside_supervisord<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use tracing_subscriber::Layer;
    super::telemetry::layer().with_filter(tracing_subscriber::filter::LevelFilter::INFO)
}

/// Without the `otel` feature, nothing.
#[cfg(not(feature = "otel"))]
fn otel_beside_supervisord<S: tracing::Subscriber>() -> impl tracing_subscriber::Layer<S> {
    tracing_subscriber::layer::Identity::new()
}

/// tend's own log file. Every event is one `write(2)` in append mode, made
/// while the event is logged, so nothing waits in a buffer when the daemon
/// exits. It rotates like the processes' files (`log_max_size`,
/// `log_backups`), and like them it never makes the daemon fail: what cannot
/// be written is dropped and counted.
#[derive(Clone)]
pub(super) struct OwnLog(Arc<OwnLogInner>);

pub(super) struct OwnLogInner {
    file: Mutex<LogFile>,
    origin: Instant,
}

impl OwnLog {
    fn open(path: &Path, max_size: u64, backups: u32) -> std::io::Result<OwnLog> {
        // Opened (and its directory made) here, so a bad path stops `tend up`
        // with the reason instead of a silent log.
        drop(open_append(path)?);
        Ok(OwnLog(Arc::new(OwnLogInner {
            file: Mutex::new(LogFile::open(path.to_path_buf(), max_size, backups)),
            origin: Instant::now(),
        })))
    }

    /// Opens the file again at its path (after logrotate moved it).
    fn reopen(&self) -> std::io::Result<()> {
        lock(&self.0.file).reopen()
    }
}

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
}

/// A locked handle on tend's own log file for one event.
pub(super) struct OwnLogWriter<'a> {
    file: MutexGuard<'a, LogFile>,
    origin: Instant,
}

impl Write for OwnLogWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // Dropped and counted when it cannot be written (see `LogFile`).
        self.file.write(buf, self.origin.elapsed());
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for OwnLog {
    type Writer = OwnLogWriter<'a>;
    fn make_writer(&'a self) -> Self::Writer {
        OwnLogWriter {
            file: lock(&self.0.file),
            origin: self.0.origin,
        }
    }
}

/// SIGUSR2: reopen every log file, tend's own included. supervisord says
/// so before it reopens (so the old file gets the line).
pub(super) fn reopen_logs(sup: &Supervisor, own_log: Option<&OwnLog>, supervisord: bool) {
    if supervisord {
        info!("received SIGUSR2 indicating log reopen request");
        info!("supervisord logreopen");
    }
    if let Some(l) = own_log
        && let Err(e) = l.reopen()
    {
        warn!(
            "cannot reopen tend's log file {}: {e}",
            lock(&l.0.file).path().display()
        );
    }
    let errors = sup.reopen_logs();
    for (path, e) in &errors {
        warn!("cannot reopen log file {}: {e}", path.display());
    }
    if !supervisord {
        info!(
            "SIGUSR2 received; log files reopened{}",
            if errors.is_empty() {
                ""
            } else {
                " (with errors)"
            }
        );
    }
}

/// One log line per event worth a human's attention. A process in a
/// respawn loop is told once when the loop begins and once when it ends;
/// its spawns and exits meanwhile are debug lines.
pub(super) async fn log_events(mut rx: broadcast::Receiver<Event>) {
    let mut looping = std::collections::HashSet::new();
    loop {
        match rx.recv().await {
            Ok(ev) => {
                let quiet = event_name(&ev).is_some_and(|n| looping.contains(n));
                match &ev {
                    Event::RespawnLoop { name, .. } => {
                        looping.insert(name.clone());
                    }
                    Event::RespawnLoopEnded { name, .. } | Event::Removed { name } => {
                        looping.remove(name);
                    }
                    _ => {}
                }
                if quiet && is_per_spawn(&ev) {
                    debug!("{ev:?}");
                } else {
                    log_event(&ev);
                }
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                warn!("event log lagged; {n} events not shown")
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

fn event_name(ev: &Event) -> Option<&tend_core::Name> {
    match ev {
        Event::Spawned { name, .. }
        | Event::Exited { name, .. }
        | Event::RestartScheduled { name, .. }
        | Event::StateChanged { name, .. } => Some(name),
        _ => None,
    }
}

/// The events a respawn loop repeats on every spawn.
fn is_per_spawn(ev: &Event) -> bool {
    matches!(
        ev,
        Event::Spawned { .. } | Event::Exited { .. } | Event::RestartScheduled { .. }
    )
}

fn log_event(ev: &Event) {
    match ev {
        Event::Spawned { name, pid } => info!("{name}: spawned (pid {pid})"),
        Event::SpawnFailed { name, error } => error!("{name}: cannot spawn: {error}"),
        Event::Exited {
            name,
            pid,
            exit,
            expected: true,
        } => info!("{name}: exited (pid {pid}, {exit})"),
        // An exit with code 0 that tend did not ask for (a task, a one-shot)
        // is news, not a warning.
        Event::Exited {
            name,
            pid,
            exit: exit @ tend_core::ExitInfo::Code(0),
            expected: false,
        } => info!("{name}: exited (pid {pid}, {exit})"),
        Event::Exited {
            name,
            pid,
            exit,
            expected: false,
        } => warn!("{name}: exited unexpectedly (pid {pid}, {exit})"),
        Event::RestartScheduled { name, delay_ms } => {
            info!(
                "{name}: restart in {}",
                tend_core::duration::format(std::time::Duration::from_millis(*delay_ms))
            )
        }
        Event::GaveUp { name, reason } => error!("{}", gave_up_line(name.as_str(), reason)),
        Event::Killed { name, pid } => {
            warn!("{name}: did not stop in time; sent SIGKILL (pid {pid})")
        }
        Event::Stopped { name } => info!("{name}: stopped"),
        Event::CheckFailed { name, reason } => warn!("{name}: {reason}; restarting it"),
        Event::OomKilled { name, pid } => {
            error!("{name}: killed by the kernel's OOM killer (pid {pid}): it went over memory_max")
        }
        Event::RespawnLoop { name, floor_ms } => warn!(
            "{name}: exits as soon as it starts; respawning it no more than once every {} (its spawns are logged at debug level until it stays up)",
            tend_core::duration::format(std::time::Duration::from_millis(*floor_ms))
        ),
        Event::RespawnLoopEnded { name, spawns } => {
            info!("{name}: out of its respawn loop after {spawns} quick runs")
        }
        Event::Added { name } => debug!("{name}: added"),
        Event::Removed { name } => info!("{name}: removed"),
        Event::StateChanged { name, from, to } => debug!("{name}: {from} -> {to}"),
        _ => debug!("{ev:?}"),
    }
}

/// The daemon's log line for a process that gave up: the reason once, not
/// "gave up: gave up after...".
pub(crate) fn gave_up_line(name: &str, reason: &str) -> String {
    if reason.starts_with("gave up") {
        format!("{name}: {reason}")
    } else {
        format!("{name}: gave up: {reason}")
    }
}

#[cfg(test)]
mod gave_up_tests {
    use super::gave_up_line;

    #[test]
    fn says_gave_up_once() {
        assert_eq!(
            gave_up_line("web", "gave up after 3 quick deaths in a row"),
            "web: gave up after 3 quick deaths in a row"
        );
        assert_eq!(
            gave_up_line("web", "spawn error: no such file"),
            "web: gave up: spawn error: no such file"
        );
    }
}
