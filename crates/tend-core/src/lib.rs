//! # tend-core: the supervision engine of tend
//!
//! (The theory-of-operation section and runnable example are written with the driver.)
#![deny(missing_docs)]

pub mod core;
pub mod duration;
pub mod error;
pub mod launcher;
pub mod machine;
pub mod name;
pub mod pattern;
pub mod runtime;
pub mod signal;
pub mod spec;
pub mod status;
pub mod time;
pub mod unix;

#[cfg(test)]
mod tests;

pub use error::Error;
pub use name::Name;
pub use runtime::{ActionResult, Options, Outcome, Supervisor};
pub use signal::Signal;
pub use spec::{Backoff, BackoffMode, ProcessSpec, RestartPolicy, StopSpec};
pub use status::{Event, ExitInfo, ProcessStatus, StateName};
