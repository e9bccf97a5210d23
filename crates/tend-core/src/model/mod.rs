//! The engine's vocabulary: plain data, no I/O.
//!
//! Everything the state machine ([`crate::machine`]) and the registry
//! ([`crate::registry`]) read and write is defined here, so the sans-IO layer
//! compiles against this module alone: no tokio, no file or socket, no system
//! call. The runtime and the Unix layer use the same types.
//!
//! | module | what |
//! |---|---|
//! | [`spec`] | [`ProcessSpec`](spec::ProcessSpec): what to run and how to keep it alive |
//! | [`probe`] | readiness and health checks as data ([`ProbeSpec`](probe::ProbeSpec), [`Check`](probe::Check)) |
//! | [`status`] | what status shows and the events published ([`StateName`](status::StateName), [`ProcessStatus`](status::ProcessStatus), [`Event`](status::Event), [`ExitInfo`](status::ExitInfo)) |
//! | [`outcome`] | the answer of a request, per process ([`Outcome`](outcome::Outcome), [`ActionResult`](outcome::ActionResult)) |
//! | [`notify_msg`] | `sd_notify` datagrams, parsed |
//! | [`task`] | what triggers a task ([`TaskConf`](task::TaskConf), [`CronSchedule`](task::CronSchedule)) |
//! | [`watch`] | the files whose changes restart a process ([`WatchSpec`](watch::WatchSpec)) |
//! | [`resources`] | cgroup limits, usage and exit reasons ([`ResourceLimits`](resources::ResourceLimits), [`ProcessStats`](resources::ProcessStats)) |
//! | [`launch`] | the spawn and signal vocabulary ([`KillTarget`](launch::KillTarget), [`SpawnError`](launch::SpawnError)) |
//! | [`name`], [`pattern`], [`signal`], [`duration`], [`time`] | names, target patterns, signal numbers, `1m30s`, the monotonic [`Mono`](time::Mono) |
//! | [`error`] | why a request failed |
//!
//! [`signal`] takes its numbers from `libc`'s constants (they differ between
//! architectures, and the real-time range between C libraries); it makes no
//! call into the system.

pub mod duration;
pub mod error;
pub mod launch;
pub mod name;
pub mod notify_msg;
pub mod outcome;
pub mod pattern;
pub mod probe;
pub mod resources;
pub mod signal;
pub mod spec;
pub mod status;
pub mod task;
pub mod time;
pub mod watch;
