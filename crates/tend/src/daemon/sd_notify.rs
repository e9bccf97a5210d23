//! systemd's notify protocol, for tend itself (`Type=notify`): `READY=1`
//! once every autostarted process has got where it was going (running and
//! ready, or given up), `STATUS=` with the counts, `STOPPING=1` when the
//! shutdown begins, `WATCHDOG=1` while the engine answers, as
//! `WatchdogSec=` asks. (The notify sockets tend offers its *children* are
//! `tend_core`'s, `runtime/notify.rs`.)
//!
//! `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` are taken out of
//! tend's environment as soon as `tend up` starts, while it has one thread:
//! a child must never talk to systemd in tend's name (and a child with
//! `notify = true` gets a socket of tend's own instead).

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use tend_core::{StateName, Supervisor};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

/// The shortest time between two `STATUS=` updates.
const STATUS_EVERY: Duration = Duration::from_secs(1);

/// Where systemd listens, and how often it wants to hear from tend.
#[derive(Debug, Clone)]
pub(crate) struct Notifier {
    addr: String,
    watchdog: Option<Duration>,
}

/// Reads tend's notify settings from the environment and removes them from
/// it, so that no child inherits them.
///
/// Call it while the process has one thread (before the runtime or any
/// thread exists): the environment is not safe to change otherwise.
pub(crate) fn take_from_env() -> Option<Notifier> {
    let addr = std::env::var("NOTIFY_SOCKET").ok();
    let usec = std::env::var("WATCHDOG_USEC").ok();
    let pid = std::env::var("WATCHDOG_PID").ok();
    for key in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
        // SAFETY: called while the process is single-threaded (see above).
        unsafe { std::env::remove_var(key) };
    }
    let addr = addr.filter(|a| !a.is_empty())?;
    // WATCHDOG_PID names the process systemd expects pings from: ours, or
    // (after `tend up -d`'s forks) our parent's, which is ours too.
    let for_us = pid
        .as_deref()
        .and_then(|p| p.parse::<u32>().ok())
        .is_none_or(|p| p == std::process::id());
    let watchdog = usec
        .and_then(|u| u.parse::<u64>().ok())
        .filter(|u| *u > 0 && for_us)
        .map(Duration::from_micros);
    Some(Notifier { addr, watchdog })
}

impl Notifier {
    /// Sends one datagram; failures are logged, never fatal.
    pub(crate) fn send(&self, msg: &str) {
        if let Err(e) = self.try_send(msg) {
            warn!("cannot notify systemd ({}): {e}", self.addr);
        } else {
            debug!(message = msg, "notified systemd");
        }
    }

    fn try_send(&self, msg: &str) -> io::Result<()> {
        let sock = UnixDatagram::unbound()?;
        // `@name` is an abstract socket.
        let addr = match self.addr.strip_prefix('@') {
            Some(name) => SocketAddr::from_abstract_name(name.as_bytes())?,
            None => SocketAddr::from_pathname(&self.addr)?,
        };
        sock.send_to_addr(msg.as_bytes(), &addr).map(drop)
    }

    /// The watchdog interval systemd asked for, if it asked.
    pub(crate) fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }
}

/// `STATUS=` text: how many processes are in which state.
pub(crate) fn counts(status: &[tend_core::ProcessStatus]) -> String {
    let n = |s: StateName| status.iter().filter(|p| p.state == s).count();
    let parts: Vec<String> = [
        (StateName::Running, "running"),
        (StateName::Starting, "starting"),
        (StateName::Waiting, "waiting"),
        (StateName::Backoff, "in back-off"),
        (StateName::Fatal, "fatal"),
        (StateName::Exited, "exited"),
        (StateName::Stopping, "stopping"),
        (StateName::Stopped, "stopped"),
    ]
    .into_iter()
    .filter_map(|(s, word)| match n(s) {
        0 => None,
        k => Some(format!("{k} {word}")),
    })
    .collect();
    let total = status.len();
    let noun = if total == 1 { "process" } else { "processes" };
    if parts.is_empty() {
        format!("{total} {noun}")
    } else {
        format!("{total} {noun}: {}", parts.join(", "))
    }
}

/// `READY=1` with the counts (and `MAINPID` when detached: the pid
/// systemd started has exited by then).
pub(crate) async fn ready(n: &Notifier, sup: &Supervisor, detached: bool) {
    let status = sup.status().await.unwrap_or_default();
    let mut msg = format!("READY=1\nSTATUS={}", counts(&status));
    if detached {
        msg.push_str(&format!("\nMAINPID={}", std::process::id()));
    }
    n.send(&msg);
}

/// Keeps `STATUS=` current as processes change state (at most once per
/// [`STATUS_EVERY`]), and pings the watchdog while the engine answers.
pub(crate) fn spawn_updates(n: Notifier, sup: Supervisor) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut events = sup.subscribe();
        let mut dirty = false;
        let mut next_status = tokio::time::Instant::now();
        let mut watchdog = n.watchdog().map(|w| {
            // Half the interval, as sd_watchdog_enabled(3) advises.
            let mut t = tokio::time::interval(w / 2);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Ok(tend_core::Event::StateChanged { .. }) | Err(broadcast::error::RecvError::Lagged(_)) => dirty = true,
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                () = tokio::time::sleep_until(next_status), if dirty => {
                    dirty = false;
                    next_status = tokio::time::Instant::now() + STATUS_EVERY;
                    if let Ok(st) = sup.status().await {
                        n.send(&format!("STATUS={}", counts(&st)));
                    }
                }
                _ = tick(&mut watchdog) => {
                    // A ping says the engine works, not only that this task runs.
                    let within = n.watchdog().unwrap_or(Duration::from_secs(1)) / 4;
                    if let Ok(Ok(_)) = tokio::time::timeout(within, sup.status()).await {
                        n.send("WATCHDOG=1");
                    }
                }
            }
        }
    })
}

async fn tick(t: &mut Option<tokio::time::Interval>) {
    match t {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_counts_name_what_there_is() {
        assert_eq!(counts(&[]), "0 processes");
    }
}
