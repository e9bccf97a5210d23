//! The daemon's signals and what each one means: TERM, INT and QUIT stop
//! everything; USR2 reopens the log files; HUP reloads or restarts, as the
//! config says (`[daemon] on_hup`). A task that runs on one of these
//! signals takes it over (see `Tasks::claims`).

use anyhow::Context;
use tend_config::OnHup;
use tend_core::runtime::tasks::Tasks;
use tend_server::{ConfigState, Daemon};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tracing::{error, info};

/// The daemon's signal streams, installed before anything else so that a
/// signal that arrives while starting up is not lost.
pub(super) struct Signals {
    pub(super) term: Signal,
    pub(super) int: Signal,
    pub(super) quit: Signal,
    pub(super) usr2: Signal,
    pub(super) hup: Signal,
}

impl Signals {
    pub(super) fn install() -> anyhow::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
            quit: signal(SignalKind::quit()).context("cannot handle SIGQUIT")?,
            usr2: signal(SignalKind::user_defined2()).context("cannot handle SIGUSR2")?,
            hup: signal(SignalKind::hangup()).context("cannot handle SIGHUP")?,
        })
    }
}

/// SIGHUP: `restart` is Supervisor's in-process restart (stop everything,
/// read the file again, start again); `reload` is `tend reload` (apply the
/// changes, leave the rest running). `supervisord`: say it in its words.
pub(super) fn on_hangup(on_hup: OnHup, daemon: &Daemon, supervisord: bool) {
    match on_hup {
        OnHup::Restart => {
            if supervisord {
                tracing::warn!("received SIGHUP indicating restart request");
            } else {
                info!("SIGHUP received; restarting every process with the config file read again");
            }
            ConfigState::begin_restart(daemon.config());
        }
        OnHup::Reload => {
            info!("SIGHUP received; reloading the config file");
            let daemon = daemon.clone();
            tokio::spawn(async move {
                match daemon.config().reload().await {
                    Ok(r) => info!(
                        "reloaded: added {:?}, changed {:?}, removed {:?}",
                        r.added, r.changed, r.removed
                    ),
                    Err(e) => error!("reload failed: {e}"),
                }
            });
        }
    }
}

/// Whether a task runs on `sig`, which then has no other meaning for the
/// daemon (HUP reloads or restarts, INT, TERM and QUIT stop tend otherwise).
pub(super) fn claims(tasks: &Tasks, sig: SignalKind) -> bool {
    tasks
        .signals()
        .iter()
        .any(|s| SignalKind::from_raw(s.number()) == sig)
}
