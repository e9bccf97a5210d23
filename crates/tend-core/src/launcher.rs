//! The seam between the driver and the operating system.
//!
//! The driver never calls fork, kill or waitpid itself: it goes through a
//! [`Launcher`]. The real one is [`crate::unix::UnixLauncher`]; driver tests use a
//! fake that records calls and decides when "processes" exit, under tokio's
//! paused clock.

use std::os::fd::OwnedFd;

pub use crate::model::launch::{KillTarget, SpawnError};
use crate::model::name::Name;
use crate::model::resources::ProcessStats;
use crate::model::signal::Signal;
use crate::model::spec::ProcessSpec;
use crate::model::status::ExitInfo;

/// A child that was reaped: its pid and how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reaped {
    /// The pid that exited.
    pub pid: u32,
    /// How it exited.
    pub exit: ExitInfo,
}

/// A process that was just spawned.
#[derive(Debug)]
pub struct Spawned {
    /// Its pid, which is also its process group id.
    pub pid: u32,
    /// The read end of its stdout pipe (with `merge_stderr`, stderr too).
    pub stdout: Option<OwnedFd>,
    /// The read end of its stderr pipe; `None` when merged into stdout.
    pub stderr: Option<OwnedFd>,
    /// The write end of its stdin pipe, when the spec asked for one.
    pub stdin: Option<OwnedFd>,
}

impl Spawned {
    /// A spawn with no output pipes (fakes and tests).
    pub fn without_output(pid: u32) -> Self {
        Spawned {
            pid,
            stdout: None,
            stderr: None,
            stdin: None,
        }
    }
}

/// Spawns and signals processes for the driver.
///
/// Exits are not returned here: they arrive on the channel the launcher's reaper
/// feeds (see [`crate::unix::UnixLauncher::new`]), so the driver can await them with
/// everything else.
pub trait Launcher: Send + 'static {
    /// Starts `spec` in a new process group and returns its pid (= pgid) and
    /// the read ends of its output pipes.
    fn spawn(&mut self, spec: &ProcessSpec) -> Result<Spawned, SpawnError>;

    /// Sends `sig`. A target that is already gone is not an error.
    fn kill(&mut self, target: KillTarget, sig: Signal) -> std::io::Result<()>;

    /// Whether any process is still in group `pgid`.
    fn group_alive(&mut self, pgid: u32) -> bool;

    /// The pid has been reaped and routed; forget anything kept about it.
    fn forget(&mut self, _pid: u32) {}

    /// Starts an exec check of a process (`spec` is named after it): like
    /// [`Launcher::spawn`], but it is not a run of that process (the Unix
    /// launcher keeps it out of the process's cgroup).
    fn spawn_check(&mut self, spec: &ProcessSpec) -> Result<Spawned, SpawnError> {
        self.spawn(spec)
    }

    /// What the run whose group `pgid` leads uses now, read on request;
    /// `None` when nothing can be read.
    fn stats(&mut self, _pgid: u32) -> Option<ProcessStats> {
        None
    }

    /// Whether the run whose group `pgid` leads (its leader just reaped)
    /// was ended by the kernel's OOM killer.
    fn oom_killed(&mut self, _pgid: u32) -> bool {
        false
    }

    /// The process `name` was removed: release what was kept for it (its
    /// cgroup).
    fn removed(&mut self, _name: &Name) {}

    /// The process `name` has stopped for good (the supervisor is shutting
    /// down) and nothing of its run is left: what was kept for it may be let
    /// go now, while the others are still stopping, rather than all at the
    /// end.
    fn retire(&mut self, _name: &Name) {}
}
