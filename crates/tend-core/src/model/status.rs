//! What status reports about a process, and the events the supervisor publishes.

use serde::{Deserialize, Serialize};

use super::name::Name;
use super::signal::Signal;

/// Supervisor's process states, lower-case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateName {
    /// Not running, and nothing will start it but a user.
    Stopped,
    /// Asked to start; waits for its dependencies.
    Waiting,
    /// Spawned, not yet past `start_secs`.
    Starting,
    /// Up.
    Running,
    /// Waiting for a restart that is due at `next_restart_in_ms`.
    Backoff,
    /// Asked to stop; waiting for its group to exit.
    Stopping,
    /// Exited by itself and its restart policy does not restart it.
    Exited,
    /// Gave up: too many quick deaths, or it cannot be spawned at all.
    Fatal,
}

impl StateName {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            StateName::Stopped => "stopped",
            StateName::Waiting => "waiting",
            StateName::Starting => "starting",
            StateName::Running => "running",
            StateName::Backoff => "backoff",
            StateName::Stopping => "stopping",
            StateName::Exited => "exited",
            StateName::Fatal => "fatal",
        }
    }

    /// Whether a process in this state has (or is about to have) a live pid.
    pub fn is_up(self) -> bool {
        matches!(
            self,
            StateName::Starting | StateName::Running | StateName::Stopping
        )
    }
}

impl std::fmt::Display for StateName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a process ended: `{"code": 1}` or `{"signal": "KILL"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExitInfo {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal.
    Signal(Signal),
}

impl std::fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitInfo::Code(c) => write!(f, "exit code {c}"),
            ExitInfo::Signal(s) => write!(f, "signal {s}"),
        }
    }
}

/// A snapshot of one process, as `status --json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProcessStatus {
    /// Name.
    pub name: Name,
    /// Logical group.
    pub group: Name,
    /// Current state.
    pub state: StateName,
    /// Pid of the running process, if any.
    pub pid: Option<u32>,
    /// When the current (or last) run started, RFC 3339.
    pub started_at: Option<jiff::Timestamp>,
    /// When the last run ended, RFC 3339; null before the first exit.
    pub stopped_at: Option<jiff::Timestamp>,
    /// Milliseconds since the current run started (null unless up).
    pub uptime_ms: Option<u64>,
    /// Automatic restarts so far (manual starts are not counted).
    pub restarts: u64,
    /// How the last run ended; null before the first exit.
    pub last_exit: Option<ExitInfo>,
    /// Milliseconds until the next automatic restart; null unless in back-off.
    pub next_restart_in_ms: Option<u64>,
    /// Why it is `fatal`, or the last spawn error.
    pub error: Option<String>,
    /// Quick deaths in a row so far.
    pub quick_deaths: u32,
    /// Lower starts first, stops last.
    pub priority: i32,
    /// Whether the current run is ready (readiness check passed or `READY=1`;
    /// running, when it has neither).
    pub ready: bool,
    /// `unknown`, `healthy` or `unhealthy`.
    pub health: Health,
    /// The last readiness or health check.
    pub last_check: Option<CheckStatus>,
    /// Free text the process sent as `STATUS=`.
    pub status_text: Option<String>,
    /// What a `waiting` process waits for, e.g. `db (ready)`.
    pub waiting_for: Option<String>,
    /// Bytes of output that could not be written to its log files (disk
    /// full, file not writable); 0 when nothing was lost.
    pub log_dropped_bytes: u64,
    /// Bytes of output read from it so far (both streams, every run of
    /// this process since it was added), whether or not a file took them.
    #[serde(default)]
    pub log_bytes: u64,
    /// Why the last run ended, when the kernel ended it (`oom_kill`); null
    /// otherwise.
    #[serde(default)]
    pub exit_reason: Option<super::resources::ExitReason>,
    /// For a task on a timer or a cron schedule: when it runs next, RFC
    /// 3339 (the daemon fills it in; the registry does not know schedules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run: Option<jiff::Timestamp>,
    /// What it uses now: only in a status asked for with stats
    /// ([`crate::Supervisor::status_with_stats`]), and only while it is up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<super::resources::ProcessStats>,
    /// Whether the config file has it or it was added at run time (the
    /// supervisor itself knows no file: its own status says `config`; the
    /// daemon's faces tell the added ones).
    #[serde(default)]
    pub origin: Origin,
}

/// Where a process comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// The config file.
    #[default]
    Config,
    /// `tend add` (the API) and not saved in the config file: a restart of
    /// the daemon forgets it.
    Added,
}

/// Something that happened, published to every subscriber.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A process was registered.
    Added {
        /// Its name.
        name: Name,
    },
    /// A process was unregistered (after it stopped).
    Removed {
        /// Its name.
        name: Name,
    },
    /// A process changed state.
    StateChanged {
        /// Its name.
        name: Name,
        /// Old state.
        from: StateName,
        /// New state.
        to: StateName,
    },
    /// A process was spawned.
    Spawned {
        /// Its name.
        name: Name,
        /// The new pid.
        pid: u32,
    },
    /// A spawn failed before the program ran.
    SpawnFailed {
        /// Its name.
        name: Name,
        /// Why.
        error: String,
    },
    /// A process exited.
    Exited {
        /// Its name.
        name: Name,
        /// The pid that exited.
        pid: u32,
        /// How.
        exit: ExitInfo,
        /// Whether tend expected it (it was being stopped).
        expected: bool,
    },
    /// An automatic restart was scheduled.
    RestartScheduled {
        /// Its name.
        name: Name,
        /// In how many milliseconds.
        delay_ms: u64,
    },
    /// tend gave up restarting a process.
    GaveUp {
        /// Its name.
        name: Name,
        /// Why.
        reason: String,
    },
    /// A process did not exit within its stop timeout and was sent SIGKILL.
    Killed {
        /// Its name.
        name: Name,
        /// The pid that was killed.
        pid: u32,
    },
    /// A check failed (health, watchdog, start timeout): the process is
    /// killed and restarted through the back-off.
    CheckFailed {
        /// Its name.
        name: Name,
        /// What failed.
        reason: String,
    },
    /// A process stopped at a user's request.
    Stopped {
        /// Its name.
        name: Name,
    },
    /// The kernel's OOM killer ended a run (its cgroup went over
    /// `memory_max`); the `exited` event that follows says how.
    OomKilled {
        /// Its name.
        name: Name,
        /// The main pid of the run.
        pid: u32,
    },
    /// What a run used, once its main process has been reaped.
    Usage {
        /// Its name.
        name: Name,
        /// The main pid of the run.
        pid: u32,
        /// CPU time, memory peak and processes of the run.
        stats: super::resources::ProcessStats,
    },
    /// A process keeps exiting before `backoff.floor` has passed since its
    /// spawn: its restarts are held to one per floor. Told once per loop.
    RespawnLoop {
        /// Its name.
        name: Name,
        /// The floor, in milliseconds.
        floor_ms: u64,
    },
    /// The loop [`Event::RespawnLoop`] told of is over: a run lasted the
    /// floor, or a user started or stopped the process.
    RespawnLoopEnded {
        /// Its name.
        name: Name,
        /// Runs shorter than the floor in a row, in all.
        spawns: u64,
    },
}

/// The last check of a process, as status shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckStatus {
    /// `ready` or `health`.
    pub kind: ProbeKind,
    /// Whether it passed.
    pub ok: bool,
    /// What it saw (`HTTP 200`, `connection refused`, ...).
    pub detail: String,
    /// When it finished.
    pub at: jiff::Timestamp,
}

/// The two kinds of checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeKind {
    /// Readiness: gates `running` and dependents.
    Ready,
    /// Liveness: failing it restarts the process.
    Health,
}

/// Health as status shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// No verdict yet (or no health check).
    #[default]
    Unknown,
    /// The last `success_threshold` runs passed.
    Healthy,
    /// The last `failure_threshold` runs failed.
    Unhealthy,
}
