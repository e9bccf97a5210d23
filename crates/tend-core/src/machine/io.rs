//! What goes into the machine ([`Input`]) and what comes out ([`Effect`]).

use super::TimerId;
use crate::model::launch::{KillTarget, SpawnError};
use crate::model::name::Name;
use crate::model::notify_msg::NotifyMsg;
use crate::model::signal::Signal;
use crate::model::status::{Event, ExitInfo, ProbeKind};
use crate::model::time::Mono;

/// Inputs to [`Process::handle`](super::Process::handle).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A user asks to start (clears `fatal` and the back-off).
    Start,
    /// A user asks to stop; it stays stopped.
    Stop,
    /// A user asks to stop, then start.
    Restart,
    /// Stop, then unregister.
    Remove,
    /// The driver spawned the process.
    Spawned {
        /// Its pid.
        pid: u32,
    },
    /// The driver could not spawn it.
    SpawnFailed(SpawnError),
    /// The group leader exited.
    Exited {
        /// How.
        exit: ExitInfo,
        /// Whether other members of its process group are still alive.
        group_alive: bool,
    },
    /// The process group of a stopping process has no member left.
    GroupEmpty,
    /// Its dependencies are not satisfied: wait (from `stopped` and friends),
    /// or update what it waits for.
    Wait {
        /// What it waits for.
        on: String,
        /// Why it cannot start, if it cannot.
        blocked: Option<String>,
    },
    /// A dependency it is bound to (`restart = true`) went down: stop, then wait.
    DependencyDown {
        /// Which.
        dependency: Name,
    },
    /// A readiness or health check finished.
    ProbeResult {
        /// Which check.
        kind: ProbeKind,
        /// The run (spawn) it was started for; results for an older run are ignored.
        run: u64,
        /// Passed.
        ok: bool,
        /// What it saw.
        detail: String,
    },
    /// A message on its notify socket.
    Notify(NotifyMsg),
    /// A timer fired.
    Timer(TimerId),
    /// Its `stop.command` ended (or could not be started).
    StopCommandDone,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Spawn the process now and answer with `Spawned` or `SpawnFailed`.
    Spawn,
    /// Send a signal.
    Kill {
        /// To whom.
        target: KillTarget,
        /// Which.
        sig: Signal,
    },
    /// Arm a timer (replacing any of the same kind).
    ArmTimer {
        /// Which.
        id: TimerId,
        /// When.
        at: Mono,
    },
    /// Disarm a timer.
    CancelTimer(TimerId),
    /// Tell subscribers.
    Publish(Event),
    /// Check whether process group `pgid` is empty and answer `GroupEmpty` if so.
    CheckGroup {
        /// The group.
        pgid: u32,
    },
    /// Begin a gentle stop of the process `pid`: run `stop.command` (with
    /// `MAINPID`) and answer `StopCommandDone` when it ends, or write
    /// `stop.stdin` to its stdin.
    GentleStop {
        /// The process being stopped.
        pid: u32,
    },
    /// Kill `stop.command` if it still runs; no answer.
    EndStopCommand,
    /// Run a check and answer with `ProbeResult`.
    RunProbe {
        /// Which check.
        kind: ProbeKind,
        /// The run it belongs to.
        run: u64,
    },
}
