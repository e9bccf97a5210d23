//! # tend-core: the supervision engine of tend
//!
//! tend starts named processes, watches them, restarts them when they die
//! (with a back-off for quick deaths), and stops them cleanly: the stop signal
//! to the whole process group, then SIGKILL after a timeout. This crate is that
//! engine, usable from any tokio program, the way Twisted programs embed
//! `ProcessMonitor`. It has no HTTP, no CLI and no UI.
//!
//! ## Theory of operation
//!
//! Three layers, each testable on its own:
//!
//! 1. **A pure state machine per process** ([`machine::Process`]). It takes
//!    `(now, input)` and returns effects. It never reads a clock or makes a
//!    syscall: time is an argument ([`time::Mono`]) and every delay (back-off,
//!    stop timeout, `start_secs`) is an [`machine::Effect::ArmTimer`]. States
//!    carry their data ([`machine::State::Running`] has a pid, `Backoff` has
//!    the instant the restart is due), so impossible combinations cannot be
//!    written down.
//! 2. **The registry** ([`registry::Registry`]): every machine by name, requests in
//!    batches that respect priority (start in priority order; stop in reverse
//!    priority order, one level at a time), and completion: it knows when "stop
//!    these five" has finished. Still sans-IO.
//! 3. **The driver**, one tokio task behind the [`Supervisor`] handle. It owns
//!    the registry, executes effects through a [`launcher::Launcher`] (the real one
//!    is [`unix::UnixLauncher`]: a vfork-style clone and exec that copies
//!    nothing of the daemon, one reaper on SIGCHLD), keeps timers in a sorted
//!    map and sleeps until the earliest. When nothing happens it does not
//!    wake up.
//!
//! Semantics worth knowing:
//!
//! - A *quick death* is a run shorter than `backoff.min_uptime`. In doubling
//!   mode (the default, Twisted's) it waits the current delay, which then
//!   doubles up to `max`; a longer run restarts at once and resets the delay.
//!   In schedule mode (the Electron manager's) each restart waits the next step
//!   of a table; a run of `reset_after` starts the table again.
//!   `give_up_after` quick deaths in a row lead to `fatal`.
//! - A process a user stopped is never restarted by tend until a user starts
//!   it; a pending restart is cancelled by `stop` and `remove`.
//! - A process is `stopped` only once its whole process group is gone.
//! - When the last [`Supervisor`] handle is dropped, every child is stopped.
//!
//! ## Example
//!
//! ```
//! use std::time::Duration;
//! use tend_core::{Event, Name, Options, ProcessSpec, StateName, Supervisor};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! rt.block_on(async {
//!     // `false`: reap only our own children, leave the rest of the program's alone.
//!     let (sup, driver) = Supervisor::spawn(Options::default(), false)?;
//!     let mut events = sup.subscribe();
//!
//!     let mut spec = ProcessSpec::new(Name::new("sleeper")?, vec!["sleep".into(), "30".into()]);
//!     spec.stop.timeout = Duration::from_secs(2);
//!     sup.add(spec).await?;          // registered; the service is not started yet
//!     sup.start("sleeper").await?;   // returns once it is running
//!
//!     let st = sup.status().await?;
//!     assert_eq!(st[0].state, StateName::Running);
//!     assert!(matches!(events.recv().await?, Event::Added { .. }));
//!
//!     sup.stop("sleeper").await?;    // TERM to its group; returns once the group is gone
//!     assert_eq!(sup.status().await?[0].state, StateName::Stopped);
//!
//!     sup.shutdown().await?;         // stops everything and ends the driver
//!     driver.await?;
//!     Ok::<_, Box<dyn std::error::Error>>(())
//! })
//! # }
//! ```
#![deny(missing_docs)]

pub mod launcher;
pub mod logs;
pub mod machine;
pub mod model;
pub mod registry;
pub mod runtime;
pub mod unix;

// The vocabulary by its short paths (`tend_core::spec::LogTarget`).
pub use model::{duration, error, name, pattern, probe, signal, spec, status, time};

#[cfg(any(test, feature = "test-util"))]
pub mod testing;
#[cfg(test)]
mod tests;

pub use error::Error;
pub use name::Name;
pub use runtime::{ActionResult, Options, Outcome, Supervisor};
pub use signal::Signal;
pub use spec::{Backoff, BackoffMode, ProcessSpec, RestartPolicy, StopSpec};
pub use status::{Event, ExitInfo, ProcessStatus, StateName};
