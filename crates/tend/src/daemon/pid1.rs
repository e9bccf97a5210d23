//! tend as PID 1 (or `tend up --init`), signals passed on to the processes,
//! and the daemon's exit status.
//!
//! # Init mode
//!
//! When tend is PID 1 of its PID namespace (a container's entrypoint, or
//! `unshare --pid --fork`) or runs with `--init`, it ignores every signal
//! whose default would end it and that it does not handle
//! (`tend_core::unix::init`): the kernel gives PID 1 no default actions, and
//! tend behaves the same under another init. Orphans are reaped by the
//! launcher's reap-all mode, as always. No guard is started as PID 1: when
//! PID 1 ends, the kernel kills its whole namespace.
//!
//! # Forwarded signals
//!
//! `[daemon] forward_signals` lists signals tend sends on to every running
//! process instead of acting on them (HUP instead of a reload, USR2 instead
//! of reopening the logs; USR1, WINCH, ... have no meaning of their own).
//! SIGUSR1 that is not forwarded is ignored, with a line in the log.
//!
//! # Exit status
//!
//! | status | when |
//! |---|---|
//! | 0 | every process stopped within its stop timeout |
//! | N | a process with `exit_with = true` ended with exit code N (128 + the signal that killed it; 127 when it could not be started) |
//! | 124 | some process had to be sent SIGKILL while stopping (a stop timed out, or a second Ctrl-C) |
//! | 1 | tend itself failed; 2 a config file with errors |
//!
//! An `exit_with` process's status wins over 124: it says what happened to
//! the one process that mattered.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tend_core::{Event, ExitInfo, Signal, StateName, Supervisor};
use tend_server::{Daemon, Shutdown};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, broadcast};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::lock;

/// The daemon's exit status when a stop timed out (as `timeout(1)`'s).
pub(crate) const EXIT_STOP_TIMEOUT: u8 = 124;

/// Whether the daemon runs as an init: PID 1, or `--init`.
pub(super) fn init_mode(asked: bool) -> bool {
    asked || tend_core::unix::init::is_pid1()
}

/// In init mode, ignores every signal that would end tend by default and
/// that it does not handle (`handled`: its own and the forwarded ones).
pub(super) fn ignore_unasked(init: bool, handled: &[Signal]) {
    if !init {
        return;
    }
    let mut handled = handled.to_vec();
    handled.extend([
        Signal::TERM,
        Signal::INT,
        Signal::QUIT,
        Signal::HUP,
        Signal::USR1,
        Signal::USR2,
    ]);
    let set = tend_core::unix::init::ignore_unasked_signals(&handled);
    tracing::debug!(
        count = set.len(),
        pid1 = tend_core::unix::init::is_pid1(),
        "init mode: signals tend does not handle are ignored"
    );
}

/// What the daemon's exit status will say (see the module docs).
#[derive(Debug, Default)]
pub(super) struct Outcome {
    /// The first `exit_with` process that ended, and its status.
    exit_with: Mutex<Option<(String, u8)>>,
    /// A process was sent SIGKILL during the shutdown.
    killed: AtomicBool,
}

impl Outcome {
    /// The exit status for a daemon that stopped without an error.
    pub(super) fn code(&self) -> u8 {
        if let Some((_, code)) = &*lock(&self.exit_with) {
            return *code;
        }
        if self.killed.load(Ordering::SeqCst) {
            return EXIT_STOP_TIMEOUT;
        }
        0
    }

    /// Says in the log what the status will be, and why.
    pub(super) fn log(&self) {
        if let Some((name, code)) = &*lock(&self.exit_with) {
            info!("exiting with status {code}, as {name} did (exit_with)");
        } else if self.killed.load(Ordering::SeqCst) {
            warn!(
                "exiting with status {EXIT_STOP_TIMEOUT}: some processes did not stop in time and were killed"
            );
        }
    }
}

/// An exit as a shell shows it: the code, 128 + the signal, 127 when the
/// program could not be started at all.
pub(super) fn shell_status(exit: Option<ExitInfo>) -> u8 {
    match exit {
        Some(ExitInfo::Code(c)) => u8::try_from(c).unwrap_or(1),
        Some(ExitInfo::Signal(s)) => u8::try_from(128 + s.number()).unwrap_or(1),
        None => 127,
    }
}

/// Watches the events for what the exit status must say: the end of an
/// `exit_with` process (which also begins the shutdown) and SIGKILLs sent
/// while shutting down. Subscribe before anything starts.
pub(super) fn watch(daemon: &Daemon, outcome: Arc<Outcome>) -> Watcher {
    let daemon = daemon.clone();
    let mut events = daemon.supervisor().subscribe();
    let done = Arc::new(Notify::new());
    let stop = done.clone();
    let handle = tokio::spawn(async move {
        loop {
            let ev = tokio::select! {
                biased;
                r = events.recv() => match r {
                    Ok(ev) => ev,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                // The driver has ended: what it published is all there is
                // (the channel itself stays open: every handle holds it).
                () = stop.notified() => {
                    loop {
                        match events.try_recv() {
                            Ok(ev) => note(&daemon, &outcome, ev).await,
                            Err(broadcast::error::TryRecvError::Lagged(_)) => {}
                            Err(_) => return,
                        }
                    }
                }
            };
            note(&daemon, &outcome, ev).await;
        }
    });
    Watcher { handle, done }
}

/// The task of [`watch`].
pub(super) struct Watcher {
    handle: JoinHandle<()>,
    done: Arc<Notify>,
}

impl Watcher {
    /// Once the driver has ended: takes the events it published last, and
    /// ends (within `limit`). It waited for the channel to close before,
    /// which never happened, so every shutdown took a second longer.
    pub(super) async fn finish(self, limit: std::time::Duration) {
        self.done.notify_one();
        let _ = tokio::time::timeout(limit, self.handle).await;
    }
}

/// What one event means for the exit status.
async fn note(daemon: &Daemon, outcome: &Outcome, ev: Event) {
    match ev {
        Event::Killed { .. } if daemon.shutdown().is_triggered() => {
            outcome.killed.store(true, Ordering::SeqCst);
        }
        Event::StateChanged {
            name,
            to: to @ (StateName::Exited | StateName::Fatal),
            ..
        } => {
            let exit_with = daemon
                .config()
                .process_config(name.as_str())
                .is_some_and(|p| p.spec.exit_with);
            if !exit_with || daemon.shutdown().is_triggered() {
                return;
            }
            let st = daemon.supervisor().status().await.unwrap_or_default();
            let last = st.iter().find(|s| s.name == name).and_then(|s| s.last_exit);
            let code = match (to, last) {
                // Gave up before it ever ran: a spawn error.
                (StateName::Fatal, None) => 127,
                (_, last) => shell_status(last),
            };
            info!(
                "{name} ended ({to}, status {code}) and has exit_with = true: stopping everything"
            );
            lock(&outcome.exit_with).get_or_insert((name.to_string(), code));
            daemon.shutdown().trigger();
        }
        _ => {}
    }
}

/// The signals to forward, listened to from the start (so that none that
/// arrives during start-up is lost, or kills tend).
pub(super) struct Forwarding {
    streams: Vec<(Signal, tokio::signal::unix::Signal)>,
    /// SIGUSR1, when it is not forwarded: ignored, with a line in the log.
    usr1: Option<tokio::signal::unix::Signal>,
}

impl Forwarding {
    /// Installs the handlers now.
    pub(super) fn install(forwarded: &[Signal]) -> Forwarding {
        let mut streams = Vec::new();
        for &sig in forwarded {
            match signal(SignalKind::from_raw(sig.number())) {
                Ok(s) => streams.push((sig, s)),
                Err(e) => warn!("cannot forward SIG{sig}: {e}"),
            }
        }
        let usr1 = if forwarded.contains(&Signal::USR1) {
            None
        } else {
            signal(SignalKind::user_defined1())
                .map_err(|e| warn!("cannot handle SIGUSR1: {e}"))
                .ok()
        };
        Forwarding { streams, usr1 }
    }

    /// Starts a task per forwarded signal that sends it to every running
    /// process (not while shutting down), and one that ignores SIGUSR1.
    pub(super) fn start(self, sup: &Supervisor, shutdown: &Shutdown) -> Vec<JoinHandle<()>> {
        let mut tasks = Vec::new();
        for (sig, mut stream) in self.streams {
            let sup = sup.clone();
            let shutdown = shutdown.clone();
            tasks.push(tokio::spawn(async move {
                while stream.recv().await.is_some() {
                    if shutdown.is_triggered() {
                        continue;
                    }
                    let names = sup.resolve(&["all".to_string()]).await.unwrap_or_default();
                    let results = sup.signal_many(names, sig).await.unwrap_or_default();
                    let sent = results.iter().filter(|r| r.result.is_ok()).count();
                    info!("SIG{sig} received; forwarded to {sent} running processes");
                }
            }));
        }
        if let Some(mut stream) = self.usr1 {
            tasks.push(tokio::spawn(async move {
                while stream.recv().await.is_some() {
                    info!("SIGUSR1 ignored (list it in [daemon] forward_signals to pass it on)");
                }
            }));
        }
        tasks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_map_to_statuses_as_a_shell_shows_them() {
        assert_eq!(shell_status(Some(ExitInfo::Code(0))), 0);
        assert_eq!(shell_status(Some(ExitInfo::Code(3))), 3);
        assert_eq!(shell_status(Some(ExitInfo::Signal(Signal::KILL))), 137);
        assert_eq!(shell_status(Some(ExitInfo::Signal(Signal::TERM))), 143);
        assert_eq!(shell_status(Some(ExitInfo::Code(-1))), 1);
        assert_eq!(shell_status(None), 127);
    }

    #[test]
    fn an_exit_with_status_wins_over_a_timed_out_stop() {
        let o = Outcome::default();
        assert_eq!(o.code(), 0);
        o.killed.store(true, Ordering::SeqCst);
        assert_eq!(o.code(), EXIT_STOP_TIMEOUT);
        *lock(&o.exit_with) = Some(("job".into(), 3));
        assert_eq!(o.code(), 3);
    }
}
