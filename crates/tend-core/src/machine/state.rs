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
        /// What this run has seen so far.
        run: Run,
    },
    /// Up (and ready: readiness passed, or it has none to pass).
    Running {
        /// Pid (= pgid).
        pid: u32,
        /// When it was spawned.
        since: Mono,
        /// What this run has seen so far (carried over from `Starting`).
        run: Run,
    },
    /// A restart is due at `retry_at`.
    Backoff {
        /// When.
        retry_at: Mono,
        /// The wait follows a run that got up and exited, and only
        /// `backoff.floor` holds its restart back (not a failed start): users
        /// see `exited` until the restart, as Supervisor shows a process
        /// between its exit and its automatic restart.
        exited: bool,
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
        /// `stop.command` runs or `stop.stdin` was written, and the stop
        /// signal is not sent yet.
        gentle: bool,
        /// Group checks so far since the leader exited (each waits twice as long).
        group_checks: u32,
        /// What happens after.
        then: AfterStop,
    },
    /// Exited by itself; the restart policy says no restart. (A process
    /// whose restart only waits out `backoff.floor` is in `Backoff` and is
    /// also shown as exited.)
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
            State::Backoff { exited: true, .. } => StateName::Exited,
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

    /// The data of the run that is up (starting or running).
    pub fn run(&self) -> Option<&Run> {
        match self {
            State::Starting { run, .. } | State::Running { run, .. } => Some(run),
            _ => None,
        }
    }

    pub(super) fn run_mut(&mut self) -> Option<&mut Run> {
        match self {
            State::Starting { run, .. } | State::Running { run, .. } => Some(run),
            _ => None,
        }
    }
}

/// What exists only while a run is up (starting or running) and goes with
/// it: the streaks of its checks and what it announced. What outlives a run
/// (its health, its exit, `STATUS=`, the last check) is kept by the
/// [`Process`](super::Process), because status shows it after the run ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Run {
    /// Readiness passes in a row.
    pub ready_streak: u32,
    /// Health passes in a row.
    pub health_ok_streak: u32,
    /// Health failures in a row.
    pub health_fail_streak: u32,
    /// It sent `STOPPING=1`: on its way out, whatever its state says.
    pub announced_stopping: bool,
}

/// The state changes [`Process::handle`](super::Process::handle) may make, by
/// the names users see, one input at a time (an input can go through states
/// on its way: an exit while stopping for a restart ends in `starting`).
/// Checked in debug builds after every input; a test checks that every entry
/// is reachable.
pub const TRANSITIONS: &[(StateName, StateName)] = {
    use StateName::{Backoff, Exited, Fatal, Running, Starting, Stopped, Stopping, Waiting};
    &[
        (Stopped, Starting),
        (Stopped, Waiting),
        (Waiting, Starting),
        (Waiting, Stopped),
        (Starting, Running),
        (Starting, Stopping),
        (Starting, Backoff),
        (Starting, Exited),
        (Starting, Fatal),
        (Running, Starting),
        (Running, Stopping),
        (Running, Backoff),
        (Running, Exited),
        (Running, Fatal),
        (Backoff, Starting),
        (Backoff, Stopped),
        (Backoff, Waiting),
        (Stopping, Stopped),
        (Stopping, Starting),
        (Stopping, Waiting),
        (Stopping, Backoff),
        (Stopping, Exited),
        (Stopping, Fatal),
        (Exited, Starting),
        (Exited, Waiting),
        (Exited, Stopped),
        (Fatal, Starting),
        (Fatal, Waiting),
        (Fatal, Stopped),
    ]
};

/// Whether `from -> to` is in [`TRANSITIONS`] (a state kept is always allowed).
pub fn allowed(from: StateName, to: StateName) -> bool {
    from == to || TRANSITIONS.contains(&(from, to))
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
