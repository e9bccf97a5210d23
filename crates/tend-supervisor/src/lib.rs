//! # tend-supervisor: Supervisor's face of a tend daemon
//!
//! Everything that speaks Supervisor's words, in one place, so that the real
//! `supervisorctl` and tools built on Supervisor's API work against tend
//! unchanged:
//!
//! - [`xmlrpc`]: the XML-RPC codec, byte for byte what Python's
//!   `xmlrpc.client` writes;
//! - [`rpc::Rpc`]: every `supervisor.*` and `system.*` method of Supervisor
//!   4 over a [`Face`], with Supervisor's argument rules, namespecs, return
//!   shapes, faults and "mood" ([`Mood`]);
//! - [`routes`]: `POST /RPC2`, the streaming tails `GET /logtail/...` and
//!   `GET /mainlogtail`, and Medusa's error pages ([`medusa_error`]);
//! - [`web`]: Supervisor's web UI at its URLs (`/`, `/index.html`,
//!   `/tail.html`), its action links and messages;
//! - [`eventlistener`]: `[eventlistener:x]` pools, told tend's events the
//!   way supervisord tells them;
//! - [`mainlog`]: supervisord's main-log sentences for tend's events, for a
//!   daemon that writes its log as supervisord does.
//!
//! The face holds no config state of its own: groups, reloads and restarts
//! are the daemon's ([`tend_server::ConfigState`], through the
//! [`tend_server::Daemon`] handle every face shares). The supervisord.conf
//! *reader* lives with the other reader in `tend-config`.
//!
//! Supervisor names processes `group:name`; tend's process names are unique
//! on their own, so a namespec is resolved against the name and checked
//! against the group, exactly as Supervisor's `split_namespec` rules say.
#![deny(missing_docs)]

pub mod eventlistener;
mod files;
mod http;
mod info;
pub mod mainlog;
mod methods;
mod program;
pub mod rpc;
pub mod web;
pub mod xmlrpc;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;

use tend_core::{RestartPolicy, StateName, Supervisor};
use tend_server::{ConfigState, Daemon};
use tokio::sync::broadcast;

pub use http::{medusa_error, require_auth, routes};

/// The version `getSupervisorVersion` reports: the Supervisor release whose
/// behaviour tend follows (`supervisorctl version` prints it).
pub const SUPERVISOR_VERSION: &str = "4.3.0";
/// The XML-RPC API version (`getAPIVersion`, `getVersion`); supervisorctl
/// refuses to talk to a server that answers anything else.
pub const API_VERSION: &str = "3.0";

/// An event sent with `sendRemoteCommEvent`, for event listeners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteCommEvent {
    /// The `type` argument.
    pub kind: String,
    /// The `data` argument.
    pub data: String,
}

/// Supervisor's "mood" (`getState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mood {
    /// Running normally (`statecode` 1).
    Running,
    /// Stopping everything to read the config again (0).
    Restarting,
    /// Shutting down (-1).
    Shutdown,
}

impl Mood {
    /// `(statecode, statename)`.
    pub fn code(self) -> (i32, &'static str) {
        match self {
            Mood::Running => (1, "RUNNING"),
            Mood::Restarting => (0, "RESTARTING"),
            Mood::Shutdown => (-1, "SHUTDOWN"),
        }
    }
}

/// Settings of Supervisor's face.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct FaceOptions {
    /// What `getIdentification` answers (`[supervisord] identifier`).
    pub identification: String,
    /// tend's own log file (`readLog`, `clearLog`, `/mainlogtail`).
    pub main_log: Option<PathBuf>,
    /// What one XML-RPC request may ask (`[http] max_multicall`,
    /// `max_response`).
    pub limits: xmlrpc::CallLimits,
}

impl FaceOptions {
    /// Options with this identification and nothing else.
    pub fn new(identification: impl Into<String>) -> Self {
        FaceOptions {
            identification: identification.into(),
            ..FaceOptions::default()
        }
    }
}

/// Supervisor's face of one daemon: the daemon handle, and what only
/// Supervisor's protocol has (identification, the main log, remote
/// communication events for the event listeners).
pub struct Face {
    daemon: Daemon,
    opts: FaceOptions,
    remote: broadcast::Sender<RemoteCommEvent>,
}

impl std::fmt::Debug for Face {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Face")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl Face {
    /// The face of `daemon`.
    pub fn new(daemon: Daemon, opts: FaceOptions) -> Arc<Face> {
        let (remote, _) = broadcast::channel(64);
        Arc::new(Face {
            daemon,
            opts,
            remote,
        })
    }

    /// The daemon handle.
    pub fn daemon(&self) -> &Daemon {
        &self.daemon
    }

    /// The supervisor.
    pub fn supervisor(&self) -> &Supervisor {
        self.daemon.supervisor()
    }

    /// The daemon's config state.
    pub fn config(&self) -> &Arc<ConfigState> {
        self.daemon.config()
    }

    /// What `getIdentification` answers.
    pub fn identification(&self) -> &str {
        &self.opts.identification
    }

    /// tend's own log file.
    pub fn main_log(&self) -> Option<&PathBuf> {
        self.opts.main_log.as_ref()
    }

    /// The current mood.
    pub fn mood(&self) -> Mood {
        if self.daemon.shutdown().is_triggered() {
            Mood::Shutdown
        } else if self.config().is_restarting() {
            Mood::Restarting
        } else {
            Mood::Running
        }
    }

    /// Pulls the shutdown latch (`shutdown()`).
    pub fn request_shutdown(&self) {
        self.daemon.shutdown().trigger();
    }

    /// Events sent with `sendRemoteCommEvent` from now on.
    pub fn subscribe_remote(&self) -> broadcast::Receiver<RemoteCommEvent> {
        self.remote.subscribe()
    }

    pub(crate) fn send_remote(&self, ev: RemoteCommEvent) {
        // Nobody listening is fine: Supervisor drops the event then too.
        let _ = self.remote.send(ev);
    }

    /// The log file of a stream of `name` (`None` when it has none).
    pub(crate) fn logfile(&self, name: &str, stderr: bool) -> Option<PathBuf> {
        let pc = self.config().process_config(name)?;
        program::logfile(&pc, stderr).map(std::path::Path::to_path_buf)
    }
}

/// Supervisor's RUNNING_STATES.
pub(crate) fn is_running(s: StateName) -> bool {
    matches!(
        s,
        StateName::Starting | StateName::Running | StateName::Backoff | StateName::Waiting
    )
}

/// `autorestart` as Supervisor spells it in `getAllConfigInfo`.
pub(crate) fn autorestart_value(p: RestartPolicy) -> xmlrpc::Value {
    use xmlrpc::Value;
    match p {
        RestartPolicy::Always => Value::Bool(true),
        RestartPolicy::Never => Value::Bool(false),
        RestartPolicy::OnFailure => Value::from("unexpected"),
    }
}
