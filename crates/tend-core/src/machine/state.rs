//! Where a process is: its states, each with the data that exists in it, and
//! the timers a state can have armed.

use crate::model::status::{ExitInfo, ProbeKind, StateName};
use crate::model::time::Mono;

/// The timers a process can have armed, at most one of each kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerKind {
    /// An automatic restart is due.
    Restart,
    /// The stop timeout ran out: SIGKILL the group.
    Kill,
    /// `start_secs` have passed: starting becomes running.
    StartSecs,
    /// `start_timeout` ran out before the process was ready.
    StartTimeout,
    /// Time to run the readiness check.
    ReadyProbe,
    /// Time to run the health check.
    HealthProbe,
    /// No `WATCHDOG=1` arrived in time.
    Watchdog,
    /// Look again whether a stopping process's group is empty (its leader
    /// has exited, but members remain that may not be ours to reap).
    GroupCheck,
}

/// Identifies one arming of a timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId {
    /// Which timer.
    pub kind: TimerKind,
    /// Which arming of it.
    pub token: u64,
}

/// What to do once a stopping process has fully stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterStop {
    /// Stay stopped.
    Stay,
    /// Start again (a user's restart).
    Start,
    /// Unregister the process.
    Remove,
    /// Wait for its dependencies again (a dependency went down).
    Wait,
    /// It was killed for failing (health, watchdog, start timeout): treat
    /// its end as a death and go through the back-off.
    Recover {
        /// It never got ready: count it as a quick death whatever it ran.
        failed_start: bool,
    },
}

/// Where a process is. Each state carries exactly the data that exists in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Not running; only a user starts it.
    Stopped,
    /// Asked to start, but its dependencies are not satisfied yet.
    Waiting {
        /// What it waits for, e.g. `db (ready), migrate (completed)`.
        on: String,
        /// Why it cannot start as things stand (a dependency gave up or
        /// was stopped), if so.
        blocked: Option<String>,
    },
    /// A spawn was requested; the driver answers with `Spawned` or `SpawnFailed`.
    Spawning {
        /// Whether this spawn is an automatic restart.
        automatic: bool,
    },
    /// Spawned, not yet up: `start_secs` not over, or not ready yet.
    Starting {
        /// Pid (= pgid).
        pid: u32,
        /// When it was spawned.
        since: Mono,
        /// `start_secs` have not passed yet.
        secs_pending: bool,
        /// The readiness check (or `READY=1`) has not passed yet.
        ready_pending: bool,
    },
    /// Up.
    Running {
        /// Pid (= pgid).
        pid: u32,
        /// When it was spawned.
        since: Mono,
    },
    /// A restart is due at `retry_at`.
    Backoff {
        /// When.
        retry_at: Mono,
    },
    /// Stop signal sent; waiting for the leader to exit and the group to empty.
    Stopping {
        /// Pid (= pgid) of the group.
        pid: u32,
        /// When the run started.
        since: Mono,
        /// Set once the leader has exited (the group may still have members).
        leader_exit: Option<ExitInfo>,
        /// Whether SIGKILL was sent after the timeout.
        killed: bool,
        /// Group checks so far since the leader exited (each waits twice as long).
        group_checks: u32,
        /// What happens after.
        then: AfterStop,
    },
    /// Exited by itself; the restart policy says no restart.
    Exited,
    /// Gave up.
    Fatal {
        /// Why.
        reason: String,
    },
    /// Stopped and unregistered; the owner drops it.
    Removed,
}

impl State {
    /// The name users see.
    pub fn name(&self) -> StateName {
        match self {
            State::Stopped | State::Removed => StateName::Stopped,
            State::Waiting { .. } => StateName::Waiting,
            State::Spawning { .. } | State::Starting { .. } => StateName::Starting,
            State::Running { .. } => StateName::Running,
            State::Backoff { .. } => StateName::Backoff,
            State::Stopping { .. } => StateName::Stopping,
            State::Exited => StateName::Exited,
            State::Fatal { .. } => StateName::Fatal,
        }
    }

    /// The live pid, if any.
    pub fn pid(&self) -> Option<u32> {
        match *self {
            State::Starting { pid, .. } | State::Running { pid, .. } => Some(pid),
            State::Stopping {
                pid,
                leader_exit: None,
                ..
            } => Some(pid),
            _ => None,
        }
    }
}

/// The last check that ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRecord {
    /// Which check.
    pub kind: ProbeKind,
    /// Passed.
    pub ok: bool,
    /// What it saw.
    pub detail: String,
    /// When it finished.
    pub at: Mono,
}
