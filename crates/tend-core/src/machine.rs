//! The state machine of one supervised process. Pure: no clock, no syscalls.
//!
//! ```text
//!                  start                 spawned (start_secs = 0)
//!   stopped ─────────────► (spawning) ───────────────────────────► running
//!   exited  ─────────────►     │  spawned (start_secs > 0)            ▲
//!   fatal   ─────────────►     └───────────► starting ──start_secs───┘
//!                                   │            │                    │
//!            permanent spawn error  │            └──── exit ────┐     │ exit
//!   fatal ◄─────────────────────────┘                           ▼     ▼
//!     ▲          give_up_after quick deaths in a row   ◄── (restart decision) ──► exited
//!     │                                                    │ delay 0   │ delay > 0   (policy says no)
//!     │                                                    ▼           ▼
//!     │                                               (spawning)    backoff ──timer──► (spawning)
//!
//!   starting/running ──stop──► stopping ──group empty──► stopped | (spawning) on restart | removed
//!                               │ └─timeout──► SIGKILL to the group, keep waiting
//!   backoff ──stop──► stopped (the pending restart is cancelled)
//! ```
//!
//! Time arrives as an argument ([`Mono`]); every delay is an [`Effect::ArmTimer`]
//! that the driver turns into a real timer (or a test into a number). A timer
//! carries a token: a firing whose token is not the one currently armed is stale
//! and ignored, so a cancelled restart can never start a process (Twisted #6611).

use std::time::Duration;

use crate::launcher::{KillTarget, SpawnError};
use crate::name::Name;
use crate::signal::Signal;
use crate::spec::{BackoffMode, ProcessSpec, RestartPolicy};
use crate::status::{Event, ExitInfo, StateName};
use crate::time::Mono;

/// The timers a process can have armed, at most one of each kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerKind {
    /// An automatic restart is due.
    Restart,
    /// The stop timeout ran out: SIGKILL the group.
    Kill,
    /// `start_secs` have passed: starting becomes running.
    StartSecs,
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
}

/// Where a process is. Each state carries exactly the data that exists in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Not running; only a user starts it.
    Stopped,
    /// A spawn was requested; the driver answers with `Spawned` or `SpawnFailed`.
    Spawning {
        /// Whether this spawn is an automatic restart.
        automatic: bool,
    },
    /// Spawned, `start_secs` not yet over.
    Starting {
        /// Pid (= pgid).
        pid: u32,
        /// When it was spawned.
        since: Mono,
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

/// Inputs to [`Process::handle`].
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
    /// A timer fired.
    Timer(TimerId),
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
}

/// Where the back-off stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cursor {
    /// Doubling: the delay the next quick death waits.
    Delay(Duration),
    /// Schedule: the index of the next step.
    Step(usize),
    /// Linear: failed starts in a row.
    Attempts(u32),
}

/// One supervised process: its spec, its state and its history.
#[derive(Debug, Clone)]
pub struct Process {
    spec: ProcessSpec,
    state: State,
    cursor: Cursor,
    quick_deaths: u32,
    restarts: u64,
    last_exit: Option<ExitInfo>,
    last_start: Option<Mono>,
    last_stop: Option<Mono>,
    error: Option<String>,
    armed: Vec<TimerId>,
    next_token: u64,
}

impl Process {
    /// A stopped process.
    pub fn new(spec: ProcessSpec) -> Self {
        let cursor = initial_cursor(&spec.backoff.mode);
        Process {
            spec,
            state: State::Stopped,
            cursor,
            quick_deaths: 0,
            restarts: 0,
            last_exit: None,
            last_start: None,
            last_stop: None,
            error: None,
            armed: Vec::new(),
            next_token: 0,
        }
    }

    /// Its spec.
    pub fn spec(&self) -> &ProcessSpec {
        &self.spec
    }

    /// Its name.
    pub fn name(&self) -> &Name {
        &self.spec.name
    }

    /// Its state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Automatic restarts so far.
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    /// Quick deaths in a row.
    pub fn quick_deaths(&self) -> u32 {
        self.quick_deaths
    }

    /// How the last run ended.
    pub fn last_exit(&self) -> Option<ExitInfo> {
        self.last_exit
    }

    /// When the current or last run was spawned.
    pub fn last_start(&self) -> Option<Mono> {
        self.last_start
    }

    /// When the last run ended (its main process exited).
    pub fn last_stop(&self) -> Option<Mono> {
        self.last_stop
    }

    /// The last spawn error or the reason for `fatal`.
    pub fn error(&self) -> Option<&str> {
        match &self.state {
            State::Fatal { reason } => Some(reason),
            _ => self.error.as_deref(),
        }
    }

    /// In doubling mode, the delay the next quick death will wait (Twisted's
    /// `delay[name]`).
    pub fn current_delay(&self) -> Option<Duration> {
        match self.cursor {
            Cursor::Delay(d) => Some(d),
            _ => None,
        }
    }

    /// The timers currently armed.
    pub fn armed_timers(&self) -> &[TimerId] {
        &self.armed
    }

    /// Feeds one input at time `now` and returns what the driver must do.
    pub fn handle(&mut self, now: Mono, input: Input) -> Vec<Effect> {
        let mut fx = Vec::new();
        let before = self.state.name();
        self.step(now, input, &mut fx);
        let after = self.state.name();
        if before != after {
            fx.push(Effect::Publish(Event::StateChanged {
                name: self.spec.name.clone(),
                from: before,
                to: after,
            }));
        }
        fx
    }

    fn step(&mut self, now: Mono, input: Input, fx: &mut Vec<Effect>) {
        match input {
            Input::Start => self.on_start(fx),
            Input::Stop => self.on_stop(now, AfterStop::Stay, fx),
            Input::Restart => match self.state {
                State::Starting { .. } | State::Running { .. } | State::Stopping { .. } => {
                    self.on_stop(now, AfterStop::Start, fx)
                }
                _ => self.on_start(fx),
            },
            Input::Remove => self.on_stop(now, AfterStop::Remove, fx),
            Input::Spawned { pid } => self.on_spawned(now, pid, fx),
            Input::SpawnFailed(err) => self.on_spawn_failed(now, err, fx),
            Input::Exited { exit, group_alive } => {
                self.last_stop = Some(now);
                self.on_exit(now, exit, group_alive, fx)
            }
            Input::GroupEmpty => {
                if let State::Stopping {
                    leader_exit: Some(_),
                    ..
                } = self.state
                {
                    self.finish_stop(fx);
                }
            }
            Input::Timer(id) => {
                if !self.armed.contains(&id) {
                    return; // stale: cancelled or superseded
                }
                self.armed.retain(|t| *t != id);
                self.on_timer(now, id.kind, fx);
            }
        }
    }

    // --- commands -------------------------------------------------------

    fn on_start(&mut self, fx: &mut Vec<Effect>) {
        match self.state {
            State::Stopped | State::Exited | State::Fatal { .. } | State::Backoff { .. } => {
                self.cancel(TimerKind::Restart, fx);
                self.reset_backoff();
                self.error = None;
                self.spawn(false, fx);
            }
            State::Stopping { ref mut then, .. } => {
                if *then != AfterStop::Remove {
                    *then = AfterStop::Start;
                }
            }
            State::Spawning { .. }
            | State::Starting { .. }
            | State::Running { .. }
            | State::Removed => {}
        }
    }

    fn on_stop(&mut self, now: Mono, after: AfterStop, fx: &mut Vec<Effect>) {
        match self.state {
            State::Starting { pid, since } | State::Running { pid, since } => {
                fx.push(Effect::Kill {
                    target: KillTarget::Group(pid),
                    sig: self.spec.stop.signal,
                });
                self.cancel(TimerKind::StartSecs, fx);
                self.arm(TimerKind::Kill, now + self.spec.stop.timeout, fx);
                self.state = State::Stopping {
                    pid,
                    since,
                    leader_exit: None,
                    killed: false,
                    then: after,
                };
            }
            State::Stopping { ref mut then, .. } => {
                // Remove wins over everything; a stop cancels a pending restart.
                if *then != AfterStop::Remove {
                    *then = after;
                }
            }
            State::Backoff { .. } => {
                self.cancel(TimerKind::Restart, fx);
                self.state = State::Stopped;
                self.settle_stopped(after, fx);
            }
            State::Stopped | State::Exited | State::Fatal { .. } => match after {
                AfterStop::Stay => {}
                AfterStop::Start => self.on_start(fx),
                AfterStop::Remove => self.state = State::Removed,
            },
            State::Spawning { .. } | State::Removed => {}
        }
    }

    // --- what the driver reports ------------------------------------------

    fn spawn(&mut self, automatic: bool, fx: &mut Vec<Effect>) {
        self.state = State::Spawning { automatic };
        fx.push(Effect::Spawn);
    }

    fn on_spawned(&mut self, now: Mono, pid: u32, fx: &mut Vec<Effect>) {
        let State::Spawning { automatic } = self.state else {
            return;
        };
        if automatic {
            self.restarts += 1;
        }
        self.last_start = Some(now);
        self.error = None;
        fx.push(Effect::Publish(Event::Spawned {
            name: self.spec.name.clone(),
            pid,
        }));
        if self.spec.start_secs.is_zero() {
            self.become_running(pid, now);
        } else {
            self.state = State::Starting { pid, since: now };
            self.arm(TimerKind::StartSecs, now + self.spec.start_secs, fx);
        }
    }

    fn become_running(&mut self, pid: u32, since: Mono) {
        // Supervisor: reaching RUNNING forgets earlier failed starts.
        if let Cursor::Attempts(_) = self.cursor {
            self.cursor = Cursor::Attempts(0);
        }
        self.state = State::Running { pid, since };
    }

    fn on_spawn_failed(&mut self, now: Mono, err: SpawnError, fx: &mut Vec<Effect>) {
        let State::Spawning { .. } = self.state else {
            return;
        };
        fx.push(Effect::Publish(Event::SpawnFailed {
            name: self.spec.name.clone(),
            error: err.message.clone(),
        }));
        self.error = Some(format!("spawn error: {}", err.message));
        if err.permanent {
            self.give_up(format!("spawn error: {}", err.message), fx);
        } else {
            // A transient failure (EAGAIN, ENOMEM) is a quick death: it backs off.
            self.after_death(now, Duration::ZERO, true, true, fx);
        }
    }

    fn on_exit(&mut self, now: Mono, exit: ExitInfo, group_alive: bool, fx: &mut Vec<Effect>) {
        match self.state {
            State::Starting { pid, since } | State::Running { pid, since } => {
                let was_starting = matches!(self.state, State::Starting { .. });
                self.last_exit = Some(exit);
                self.cancel(TimerKind::StartSecs, fx);
                fx.push(Effect::Publish(Event::Exited {
                    name: self.spec.name.clone(),
                    pid,
                    exit,
                    expected: false,
                }));
                if group_alive {
                    // The leader died on its own; what it left behind in its group
                    // would be orphans holding ports and files. Reap them now.
                    fx.push(Effect::Kill {
                        target: KillTarget::Group(pid),
                        sig: Signal::KILL,
                    });
                }
                let failed = !matches!(exit, ExitInfo::Code(c) if self.spec.is_success(c));
                self.after_death(now, now.since(since), failed, was_starting, fx);
            }
            State::Stopping {
                pid,
                ref mut leader_exit,
                ..
            } if leader_exit.is_none() => {
                *leader_exit = Some(exit);
                self.last_exit = Some(exit);
                fx.push(Effect::Publish(Event::Exited {
                    name: self.spec.name.clone(),
                    pid,
                    exit,
                    expected: true,
                }));
                if !group_alive {
                    self.finish_stop(fx);
                }
            }
            _ => {}
        }
    }

    /// Decides what follows an unrequested death after a run of `ran`.
    fn after_death(
        &mut self,
        now: Mono,
        ran: Duration,
        failed: bool,
        failed_start: bool,
        fx: &mut Vec<Effect>,
    ) {
        // A start that did not get past start_secs is retried whatever the
        // policy says (Supervisor: STARTING -> BACKOFF).
        let wants_restart = failed_start && !self.spec.start_secs.is_zero()
            || match self.spec.restart {
                RestartPolicy::Always => true,
                RestartPolicy::OnFailure => failed,
                RestartPolicy::Never => false,
            };
        if !wants_restart {
            self.state = State::Exited;
            return;
        }
        let quick =
            ran < self.spec.backoff.min_uptime || (failed_start && !self.spec.start_secs.is_zero());
        self.quick_deaths = if quick {
            self.quick_deaths.saturating_add(1)
        } else {
            0
        };
        if let Some(limit) = self.spec.backoff.give_up_after
            && self.quick_deaths >= limit
        {
            let last = match self.last_exit {
                Some(e) => format!(" (last: {e})"),
                None => String::new(),
            };
            self.give_up(
                format!(
                    "gave up after {} quick deaths in a row{last}",
                    self.quick_deaths
                ),
                fx,
            );
            return;
        }
        match self.next_delay(ran, quick) {
            None => self.state = State::Exited,
            Some(d) if d.is_zero() => self.spawn(true, fx),
            Some(d) => {
                let at = now + d;
                self.state = State::Backoff { retry_at: at };
                self.arm(TimerKind::Restart, at, fx);
                fx.push(Effect::Publish(Event::RestartScheduled {
                    name: self.spec.name.clone(),
                    delay_ms: u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
                }));
            }
        }
    }

    /// The delay before the next automatic restart, advancing the cursor;
    /// `None` when the schedule says never.
    fn next_delay(&mut self, ran: Duration, quick: bool) -> Option<Duration> {
        match (&self.spec.backoff.mode, &mut self.cursor) {
            (BackoffMode::Doubling { initial, max }, Cursor::Delay(cur)) => {
                if quick {
                    let d = *cur;
                    *cur = cur.saturating_mul(2).min(*max);
                    Some(d)
                } else {
                    *cur = (*initial).min(*max);
                    Some(Duration::ZERO)
                }
            }
            (BackoffMode::Schedule { steps, reset_after }, Cursor::Step(i)) => {
                if schedule_disabled(steps) {
                    return None;
                }
                if ran >= *reset_after {
                    *i = 0;
                }
                let d = steps[(*i).min(steps.len() - 1)];
                *i = (*i + 1).min(steps.len() - 1);
                Some(d)
            }
            (BackoffMode::Linear { step }, Cursor::Attempts(n)) => {
                if quick {
                    *n = n.saturating_add(1);
                    Some(step.saturating_mul(*n))
                } else {
                    *n = 0;
                    Some(Duration::ZERO)
                }
            }
            // The cursor always matches the mode (set together in `new` and
            // `reset_backoff`); this arm is unreachable but harmless.
            _ => {
                self.cursor = initial_cursor(&self.spec.backoff.mode);
                Some(Duration::ZERO)
            }
        }
    }

    fn give_up(&mut self, reason: String, fx: &mut Vec<Effect>) {
        fx.push(Effect::Publish(Event::GaveUp {
            name: self.spec.name.clone(),
            reason: reason.clone(),
        }));
        self.state = State::Fatal { reason };
    }

    fn on_timer(&mut self, now: Mono, kind: TimerKind, fx: &mut Vec<Effect>) {
        match (kind, &mut self.state) {
            (TimerKind::Restart, State::Backoff { .. }) => self.spawn(true, fx),
            (TimerKind::StartSecs, State::Starting { pid, since }) => {
                let (pid, since) = (*pid, *since);
                self.become_running(pid, since);
            }
            (TimerKind::Kill, State::Stopping { pid, killed, .. }) => {
                *killed = true;
                let pid = *pid;
                fx.push(Effect::Kill {
                    target: KillTarget::Group(pid),
                    sig: Signal::KILL,
                });
                fx.push(Effect::Publish(Event::Killed {
                    name: self.spec.name.clone(),
                    pid,
                }));
            }
            _ => {}
        }
        let _ = now;
    }

    fn finish_stop(&mut self, fx: &mut Vec<Effect>) {
        let State::Stopping { then, .. } = self.state else {
            return;
        };
        self.cancel(TimerKind::Kill, fx);
        self.state = State::Stopped;
        self.settle_stopped(then, fx);
    }

    fn settle_stopped(&mut self, then: AfterStop, fx: &mut Vec<Effect>) {
        match then {
            AfterStop::Stay => fx.push(Effect::Publish(Event::Stopped {
                name: self.spec.name.clone(),
            })),
            AfterStop::Start => self.on_start(fx),
            AfterStop::Remove => self.state = State::Removed,
        }
    }

    // --- helpers -----------------------------------------------------------

    fn reset_backoff(&mut self) {
        self.cursor = initial_cursor(&self.spec.backoff.mode);
        self.quick_deaths = 0;
    }

    fn arm(&mut self, kind: TimerKind, at: Mono, fx: &mut Vec<Effect>) {
        self.cancel(kind, fx);
        self.next_token += 1;
        let id = TimerId {
            kind,
            token: self.next_token,
        };
        self.armed.push(id);
        fx.push(Effect::ArmTimer { id, at });
    }

    fn cancel(&mut self, kind: TimerKind, fx: &mut Vec<Effect>) {
        if let Some(pos) = self.armed.iter().position(|t| t.kind == kind) {
            let id = self.armed.remove(pos);
            fx.push(Effect::CancelTimer(id));
        }
    }

    /// When the pending automatic restart is due, if one is.
    pub fn retry_at(&self) -> Option<Mono> {
        match self.state {
            State::Backoff { retry_at } => Some(retry_at),
            _ => None,
        }
    }
}

fn initial_cursor(mode: &BackoffMode) -> Cursor {
    match mode {
        BackoffMode::Doubling { initial, max } => Cursor::Delay((*initial).min(*max)),
        BackoffMode::Schedule { .. } => Cursor::Step(0),
        BackoffMode::Linear { .. } => Cursor::Attempts(0),
    }
}

/// An empty schedule, or exactly `[0]`, means "never restart".
fn schedule_disabled(steps: &[Duration]) -> bool {
    steps.is_empty() || (steps.len() == 1 && steps[0].is_zero())
}
