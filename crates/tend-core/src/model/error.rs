//! Errors of the library API.

use super::name::{Name, NameError};
use super::pattern::PatternError;
use super::spec::SpecError;

/// Why a request to the supervisor failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No process has that name (Twisted raises `KeyError`).
    #[error("no such process: {0}")]
    UnknownProcess(String),
    /// A process with that name exists already.
    #[error("a process named {0} already exists")]
    Duplicate(Name),
    /// The spec breaks an invariant.
    #[error("invalid process spec: {0}")]
    InvalidSpec(#[from] SpecError),
    /// A name that is not a valid name.
    #[error(transparent)]
    InvalidName(#[from] NameError),
    /// A target pattern that does not parse.
    #[error(transparent)]
    InvalidPattern(#[from] PatternError),
    /// A pattern matched nothing.
    #[error("no process matches {0:?}")]
    NoMatch(String),
    /// The process could not be started.
    #[error("{name}: failed to start: {reason}")]
    StartFailed {
        /// Which process.
        name: Name,
        /// Why (spawn error, exited while starting, gave up).
        reason: String,
    },
    /// The request was superseded (e.g. a stop arrived while waiting for a start).
    #[error("{name}: {reason}")]
    Interrupted {
        /// Which process.
        name: Name,
        /// What happened instead.
        reason: String,
    },
    /// Sending a signal failed.
    #[error("{name}: {reason}")]
    SignalFailed {
        /// Which process.
        name: Name,
        /// Why.
        reason: String,
    },
    /// The process is not running (for `signal`).
    #[error("{0}: not running")]
    NotRunning(Name),
    /// The process was not started with a stdin pipe (`stdin_pipe`).
    #[error("{0}: has no stdin pipe (start it with stdin_pipe set)")]
    NoStdin(Name),
    /// The supervisor is shutting down or gone.
    #[error("the supervisor is shutting down")]
    ShuttingDown,
}
