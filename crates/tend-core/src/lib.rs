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
//!    written down, and the changes between them are a checked table
//!    ([`machine::TRANSITIONS`]).
//! 2. **The registry** ([`registry::Registry`]): every machine by name,
//!    requests in batches that respect priority (start in priority order;
//!    stop in reverse priority order, one level at a time), dependencies, and
//!    completion: it knows when "stop these five" has finished. Still sans-IO.
//! 3. **The driver**, one tokio task behind the [`Supervisor`] handle. It owns
//!    the registry, executes effects through a [`Launcher`] (the real one is
//!    [`UnixLauncher`]: a vfork-style clone and exec that copies nothing of
//!    the daemon, one reaper on SIGCHLD), keeps timers in a sorted map and
//!    sleeps until the earliest. When nothing happens it does not wake up.
//!
//! Both sans-IO layers speak the vocabulary of [`model`] (specs, states,
//! events, outcomes: plain data) and nothing else, so they can be driven by
//! hand, as the tests do (`tend_core::testing`, feature `test-util`).
//!
//! ## From a request to a process
//!
//! The three layers have three vocabularies. A [`Supervisor`] method sends a
//! request (`runtime::Request`, private) to the driver, which turns it into a
//! batch over the named processes ([`registry::Op`]); the registry orders the
//! batch and feeds each process one input ([`machine::Input`]).
//!
//! | [`Supervisor`] method | `Request` | [`registry::Op`] | [`machine::Input`] |
//! |---|---|---|---|
//! | `add` | `Add` | none ([`Registry::add`](registry::Registry::add)) | `Start` if the service runs and it autostarts |
//! | `start`, `start_many` | `Start` | `Start` (its stopped dependencies first, as `StartNoDeps`) | `Start`, or `Wait` while its dependencies do not hold |
//! | `start_many_no_deps` | `StartNoDeps` | `StartNoDeps` | `Start` or `Wait` |
//! | `start_autostart` | `StartAll` | `Start` over the autostart processes ([`Registry::start_service`](registry::Registry::start_service)) | `Start` or `Wait` |
//! | `stop`, `stop_many`, `stop_all` | `Stop` | `Stop` | `Stop` |
//! | `restart`, `restart_many`, `restart_all` | `Restart` | `Restart`: every stop, then every start | `Stop`, then `Start` |
//! | `signal`, `signal_many` | `Signal` | `Signal(sig)` | none: the registry asks for the kill itself |
//! | `remove` | `Remove` | `Remove` | `Remove` (stop, then unregister) |
//! | `shutdown` | `Shutdown` | `Stop` over everything ([`Registry::shutdown`](registry::Registry::shutdown)) | `Stop` |
//! | `resolve`, `status` | `Resolve`, `Status` | none (read only) | none |
//! | `send_stdin`, `log_lines`, `subscribe_logs`, `reopen_logs` | none: the log hub answers | none | none |
//!
//! What the OS reports comes in beside them, through the registry's other
//! entry points: a spawn's result ([`Registry::spawned`](registry::Registry::spawned)
//! → `Spawned` or `SpawnFailed`), a reaped leader (`exited` → `Exited`), an
//! empty group (`group_empty` → `GroupEmpty`), a timer (`timer` → `Timer`), a
//! check (`probe_result` → `ProbeResult`) and a notify datagram (`notify` →
//! `Notify`). The registry adds `Wait` and `DependencyDown` of its own, when
//! dependencies change.
//!
//! ## Where things are
//!
//! | module | what |
//! |---|---|
//! | [`model`] | the vocabulary: specs, states, events, outcomes, names (pure data) |
//! | [`machine`] | one process's state machine (sans-IO) |
//! | [`registry`] | every process, batches, dependencies, the status view (sans-IO) |
//! | [`runtime`] | the driver behind [`Supervisor`], the log hub, checks, notify sockets, [`runtime::tasks`] |
//! | [`launcher`] | the [`Launcher`] seam between the driver and the OS |
//! | [`unix`] | the real launcher: spawn, signal, reap |
//! | [`logs`] | the synchronous pieces of the output pipeline ([`logs::LogFile`]) |
//! | `testing` | a fake launcher and a simulator (feature `test-util`) |
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

#[cfg(any(test, feature = "test-util"))]
pub mod testing;
#[cfg(test)]
mod tests;

// The vocabulary by its short paths (`tend_core::spec::LogTarget`).
pub use model::{duration, error, name, pattern, probe, resources, signal, spec, status, time};

// What an embedder needs, at the root.
pub use launcher::{Launcher, Reaped, Spawned};
pub use logs::Stream;
pub use model::error::Error;
pub use model::launch::{KillTarget, SpawnError};
pub use model::name::{Name, NameError};
pub use model::outcome::{ActionResult, Outcome};
pub use model::pattern::{Pattern, PatternError};
pub use model::probe::{Check, ProbeSpec};
pub use model::resources::{ExitReason, ProcessStats, ResourceLimits, StatsSource};
pub use model::signal::{Signal, UnknownSignal};
pub use model::spec::{
    Backoff, BackoffMode, Condition, Dependency, LogSpec, LogTarget, ProcessSpec, RestartPolicy,
    SpecError, StopSpec,
};
pub use model::status::{
    CheckStatus, Event, ExitInfo, Health, Origin, ProbeKind, ProcessStatus, StateName,
};
pub use model::task::TaskConf;
pub use runtime::{LogChunk, LogLine, LogQuery, Options, Supervisor, Tap, TapChunk};
pub use unix::UnixLauncher;
