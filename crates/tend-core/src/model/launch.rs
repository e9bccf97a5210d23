//! What the engine asks of the operating system, and what it hears back
//! about a spawn: the vocabulary of the [`crate::launcher::Launcher`] seam that
//! the state machine uses, without the seam itself.

/// Why a spawn failed before the program ran.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SpawnError {
    /// Human-readable reason, e.g. `command "foo" not found on PATH`.
    pub message: String,
    /// True when retrying cannot help (missing or non-executable program,
    /// unknown user): the process goes to `fatal` instead of backing off.
    pub permanent: bool,
}

/// Where a signal goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillTarget {
    /// One process.
    Process(u32),
    /// A whole process group (every child leads its own group, pgid = pid).
    Group(u32),
}
