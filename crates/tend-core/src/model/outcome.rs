//! What a request did, per process: the answer of a batch.

use super::error::Error;
use super::name::Name;

/// What a successful request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The request was carried out.
    Done,
    /// It was already running (start).
    AlreadyRunning,
    /// It was already stopped (stop).
    AlreadyStopped,
}

/// The result of a request for one process of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionResult {
    /// The process.
    pub name: Name,
    /// What happened to it.
    pub result: Result<Outcome, Error>,
}
