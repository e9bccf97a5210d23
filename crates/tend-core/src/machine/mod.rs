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
//!
//! - this file: [`Process`] and [`Process::handle`], the commands and what the
//!   driver reports (spawned, exited, timers);
//! - `state.rs`: [`State`] and the data each state carries, the timers;
//! - `io.rs`: [`Input`] and [`Effect`];
//! - `backoff.rs`: the restart decision after a death and the back-off delays;
//! - `checks.rs`: readiness and health results, and notify messages.

mod backoff;
mod checks;
mod io;
mod state;

use std::sync::Arc;
use std::time::Duration;

use backoff::{Cursor, initial_cursor};
pub use io::{Effect, Input};
pub use state::{AfterStop, CheckRecord, Run, State, TRANSITIONS, TimerId, TimerKind, allowed};

use crate::model::launch::{KillTarget, SpawnError};
use crate::model::name::Name;
use crate::model::signal::Signal;
use crate::model::spec::ProcessSpec;
use crate::model::status::{Event, ExitInfo, Health, ProbeKind};
use crate::model::time::Mono;

/// One supervised process: its spec, its state and its history.
#[derive(Debug, Clone)]
pub struct Process {
    /// Shared with whoever else keeps the configuration (the daemon's
    /// Supervisor-compatible view): one copy per process, however many readers.
    spec: Arc<ProcessSpec>,
    state: State,
    cursor: Cursor,
    quick_deaths: u32,
    /// Restarts in a row held back by `backoff.floor` (see `backoff.rs`).
    short_runs: u64,
    /// Whether [`Event::RespawnLoop`] was told for the current loop.
    loop_told: bool,
    restarts: u64,
    last_exit: Option<ExitInfo>,
    last_start: Option<Mono>,
    last_stop: Option<Mono>,
    error: Option<String>,
    armed: Vec<TimerId>,
    next_token: u64,
    /// Spawns so far; probe results carry it so stale ones are dropped.
    run: u64,
    // What the current or last run left, shown by status after it ended too
    // (what only a live run has is in its state: `Run`). Reset at a spawn.
    /// Whether the last run exited with a success code (`completed`).
    completed: bool,
    health: Health,
    /// `STATUS=` from its notify socket.
    status_text: Option<String>,
    /// Kept across runs: status shows the last check whenever it ran.
    last_check: Option<CheckRecord>,
}

impl Process {
    /// A stopped process.
    pub fn new(spec: impl Into<Arc<ProcessSpec>>) -> Self {
        let spec = spec.into();
        let cursor = initial_cursor(&spec.backoff.mode);
        Process {
            spec,
            state: State::Stopped,
            cursor,
            quick_deaths: 0,
            short_runs: 0,
            loop_told: false,
            restarts: 0,
            last_exit: None,
            last_start: None,
            last_stop: None,
            error: None,
            armed: Vec::new(),
            next_token: 0,
            run: 0,
            completed: false,
            health: Health::Unknown,
            status_text: None,
            last_check: None,
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

    /// Whether the current run is ready (readiness passed, or none to pass):
    /// exactly when it is running.
    pub fn is_ready(&self) -> bool {
        matches!(self.state, State::Running { .. })
    }

    /// Whether the last run exited with a success code and none runs now.
    pub fn completed(&self) -> bool {
        self.completed
    }

    /// Health as the checks see it.
    pub fn health(&self) -> Health {
        self.health
    }

    /// The last check that ran.
    pub fn last_check(&self) -> Option<&CheckRecord> {
        self.last_check.as_ref()
    }

    /// `STATUS=` text the process sent, if any.
    pub fn status_text(&self) -> Option<&str> {
        self.status_text.as_deref()
    }

    /// Whether the run that is up announced `STOPPING=1`.
    pub fn announced_stopping(&self) -> bool {
        self.state.run().is_some_and(|r| r.announced_stopping)
    }

    /// The spawn count, which probe results must carry.
    pub fn run(&self) -> u64 {
        self.run
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
        debug_assert!(
            allowed(before, after),
            "{}: {before} -> {after} is not in machine::TRANSITIONS",
            self.spec.name
        );
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
                    self.finish_stop(now, fx);
                }
            }
            Input::Wait { on, blocked } => self.on_wait(on, blocked, fx),
            Input::DependencyDown { .. } => match self.state {
                State::Starting { .. } | State::Running { .. } => {
                    self.on_stop(now, AfterStop::Wait, fx)
                }
                State::Stopping { ref mut then, .. } if *then == AfterStop::Start => {
                    *then = AfterStop::Wait;
                }
                State::Backoff { .. } => {
                    self.cancel(TimerKind::Restart, fx);
                    self.state = State::Waiting {
                        on: String::new(),
                        blocked: None,
                    };
                }
                _ => {}
            },
            Input::ProbeResult {
                kind,
                run,
                ok,
                detail,
            } => self.on_probe(now, kind, run, ok, detail, fx),
            Input::Notify(msg) => self.on_notify(now, msg, fx),
            Input::Timer(id) => {
                if !self.armed.contains(&id) {
                    return; // stale: cancelled or superseded
                }
                self.armed.retain(|t| *t != id);
                self.on_timer(now, id.kind, fx);
            }
            Input::StopCommandDone => self.on_stop_command_done(fx),
        }
    }

    // --- commands -------------------------------------------------------

    fn on_start(&mut self, fx: &mut Vec<Effect>) {
        self.end_loop(fx);
        match self.state {
            State::Stopped
            | State::Exited
            | State::Fatal { .. }
            | State::Backoff { .. }
            | State::Waiting { .. } => {
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
        if matches!(after, AfterStop::Stay | AfterStop::Remove) {
            self.end_loop(fx);
        }
        match self.state {
            State::Starting { pid, since, .. } | State::Running { pid, since, .. } => {
                let gentle = self.spec.stop.is_gentle();
                if gentle {
                    fx.push(Effect::GentleStop { pid });
                } else {
                    fx.push(Effect::Kill {
                        target: KillTarget::Group(pid),
                        sig: self.spec.stop.signal,
                    });
                }
                self.cancel_run_timers(fx);
                self.arm(TimerKind::Kill, now + self.spec.stop.timeout, fx);
                self.state = State::Stopping {
                    pid,
                    since,
                    leader_exit: None,
                    killed: false,
                    gentle,
                    group_checks: 0,
                    then: after,
                };
            }
            State::Stopping { ref mut then, .. } => {
                // Remove wins over everything; a stop cancels a pending restart.
                if *then != AfterStop::Remove {
                    *then = after;
                }
            }
            State::Backoff { .. } | State::Waiting { .. } => {
                self.cancel(TimerKind::Restart, fx);
                self.state = State::Stopped;
                self.settle_stopped(now, None, after, fx);
            }
            State::Stopped | State::Exited | State::Fatal { .. } => match after {
                AfterStop::Stay | AfterStop::Recover { .. } => {}
                AfterStop::Start => self.on_start(fx),
                AfterStop::Remove => self.state = State::Removed,
                AfterStop::Wait => {
                    self.state = State::Waiting {
                        on: String::new(),
                        blocked: None,
                    }
                }
            },
            State::Spawning { .. } | State::Removed => {}
        }
    }

    /// The registry says its dependencies are not satisfied.
    fn on_wait(&mut self, on: String, blocked: Option<String>, fx: &mut Vec<Effect>) {
        match self.state {
            State::Stopped
            | State::Exited
            | State::Fatal { .. }
            | State::Backoff { .. }
            | State::Waiting { .. } => {
                self.cancel(TimerKind::Restart, fx);
                self.state = State::Waiting { on, blocked };
            }
            State::Stopping { ref mut then, .. } => {
                if *then != AfterStop::Remove {
                    *then = AfterStop::Wait;
                }
            }
            State::Spawning { .. }
            | State::Starting { .. }
            | State::Running { .. }
            | State::Removed => {}
        }
    }

    /// Kills a process that is failing (health, watchdog, start timeout) and
    /// restarts it through the back-off once it is down.
    fn recover(&mut self, now: Mono, reason: String, failed_start: bool, fx: &mut Vec<Effect>) {
        fx.push(Effect::Publish(Event::CheckFailed {
            name: self.spec.name.clone(),
            reason: reason.clone(),
        }));
        self.error = Some(reason);
        self.on_stop(now, AfterStop::Recover { failed_start }, fx);
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
        self.run += 1;
        self.last_start = Some(now);
        self.error = None;
        self.completed = false;
        self.health = Health::Unknown;
        self.status_text = None;
        fx.push(Effect::Publish(Event::Spawned {
            name: self.spec.name.clone(),
            pid,
        }));

        let secs_pending = !self.spec.start_secs.is_zero();
        let ready_pending = self.spec.ready.is_some() || self.spec.notify;
        if secs_pending {
            self.arm(TimerKind::StartSecs, now + self.spec.start_secs, fx);
        }
        if let Some(r) = &self.spec.ready {
            let at = now + r.initial_delay;
            self.arm(TimerKind::ReadyProbe, at, fx);
        }
        if let Some(h) = &self.spec.health {
            let at = now + h.initial_delay;
            self.arm(TimerKind::HealthProbe, at, fx);
        }
        if let Some(w) = self.spec.watchdog {
            self.arm(TimerKind::Watchdog, now + w, fx);
        }
        if secs_pending || ready_pending {
            if let Some(t) = self.spec.start_timeout {
                self.arm(TimerKind::StartTimeout, now + t, fx);
            }
            self.state = State::Starting {
                pid,
                since: now,
                secs_pending,
                ready_pending,
                run: Run::default(),
            };
        } else {
            self.become_running(pid, now, Run::default(), fx);
        }
    }

    /// Starting is over: it is up (and ready).
    fn become_running(&mut self, pid: u32, since: Mono, run: Run, fx: &mut Vec<Effect>) {
        self.cancel(TimerKind::StartTimeout, fx);
        // Supervisor: reaching RUNNING forgets earlier failed starts.
        if let Cursor::Attempts(_) = self.cursor {
            self.cursor = Cursor::Attempts(0);
        }
        if self.spec.backoff.reset_on_ready {
            self.reset_backoff();
        }
        self.state = State::Running { pid, since, run };
    }

    /// One of the two conditions of `starting` is met; maybe both are.
    fn starting_progress(&mut self, secs_done: bool, ready_done: bool, fx: &mut Vec<Effect>) {
        if let State::Starting {
            pid,
            since,
            ref mut secs_pending,
            ref mut ready_pending,
            ref mut run,
        } = self.state
        {
            if secs_done {
                *secs_pending = false;
            }
            if ready_done {
                *ready_pending = false;
            }
            if !*secs_pending && !*ready_pending {
                let run = std::mem::take(run);
                self.become_running(pid, since, run, fx);
            }
        }
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
            self.after_death(now, Duration::ZERO, true, true, true, fx);
        }
    }

    fn on_exit(&mut self, now: Mono, exit: ExitInfo, group_alive: bool, fx: &mut Vec<Effect>) {
        let success = matches!(exit, ExitInfo::Code(c) if self.spec.is_success(c));
        match self.state {
            State::Starting { pid, since, .. } | State::Running { pid, since, .. } => {
                let was_starting = matches!(self.state, State::Starting { .. });
                self.last_exit = Some(exit);
                self.completed = success;
                self.cancel_run_timers(fx);
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
                self.after_death(now, now.since(since), !success, was_starting, false, fx);
            }
            State::Stopping {
                pid,
                ref mut leader_exit,
                ..
            } if leader_exit.is_none() => {
                *leader_exit = Some(exit);
                self.last_exit = Some(exit);
                self.completed = false;
                fx.push(Effect::Publish(Event::Exited {
                    name: self.spec.name.clone(),
                    pid,
                    exit,
                    expected: true,
                }));
                if group_alive {
                    // Members remain. Orphans we reap ourselves (as a subreaper)
                    // trigger checks; others (reaped by someone else, or still
                    // dying) need us to look again.
                    self.arm(TimerKind::GroupCheck, now + GROUP_CHECK_FIRST, fx);
                } else {
                    self.finish_stop(now, fx);
                }
            }
            _ => {}
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
            (TimerKind::StartSecs, State::Starting { .. }) => {
                self.starting_progress(true, false, fx)
            }
            (
                TimerKind::Kill,
                State::Stopping {
                    pid,
                    gentle: gentle @ true,
                    leader_exit: None,
                    ..
                },
            ) => {
                // The gentle way used the whole timeout: now the signal,
                // with a timeout of its own.
                *gentle = false;
                let pid = *pid;
                if self.spec.stop.command.is_some() {
                    fx.push(Effect::EndStopCommand);
                }
                fx.push(Effect::Kill {
                    target: KillTarget::Group(pid),
                    sig: self.spec.stop.signal,
                });
                self.arm(TimerKind::Kill, now + self.spec.stop.timeout, fx);
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
            (
                TimerKind::GroupCheck,
                State::Stopping {
                    pid,
                    leader_exit: Some(_),
                    group_checks,
                    ..
                },
            ) => {
                *group_checks += 1;
                let (pgid, n) = (*pid, *group_checks);
                fx.push(Effect::CheckGroup { pgid });
                let wait = GROUP_CHECK_FIRST
                    .saturating_mul(1 << n.min(6))
                    .min(GROUP_CHECK_MAX);
                self.arm(TimerKind::GroupCheck, now + wait, fx);
            }
            (
                TimerKind::ReadyProbe,
                State::Starting {
                    ready_pending: true,
                    ..
                },
            ) => {
                fx.push(Effect::RunProbe {
                    kind: ProbeKind::Ready,
                    run: self.run,
                });
            }
            (TimerKind::HealthProbe, State::Starting { .. } | State::Running { .. }) => {
                fx.push(Effect::RunProbe {
                    kind: ProbeKind::Health,
                    run: self.run,
                });
            }
            (TimerKind::Watchdog, State::Starting { .. } | State::Running { .. }) => {
                let w = self
                    .spec
                    .watchdog
                    .map(crate::model::duration::format)
                    .unwrap_or_default();
                self.recover(
                    now,
                    format!("watchdog: no WATCHDOG=1 within {w}"),
                    false,
                    fx,
                );
            }
            (TimerKind::StartTimeout, State::Starting { .. }) => {
                let t = self
                    .spec
                    .start_timeout
                    .map(crate::model::duration::format)
                    .unwrap_or_default();
                self.recover(
                    now,
                    format!("not ready within start_timeout ({t})"),
                    true,
                    fx,
                );
            }
            _ => {}
        }
    }

    /// `stop.command` ended: the stop signal goes now, within what is left
    /// of the timeout.
    fn on_stop_command_done(&mut self, fx: &mut Vec<Effect>) {
        if let State::Stopping {
            pid,
            ref mut gentle,
            leader_exit: None,
            ..
        } = self.state
            && *gentle
            && self.spec.stop.command.is_some()
        {
            *gentle = false;
            fx.push(Effect::Kill {
                target: KillTarget::Group(pid),
                sig: self.spec.stop.signal,
            });
        }
    }

    fn finish_stop(&mut self, now: Mono, fx: &mut Vec<Effect>) {
        let State::Stopping {
            then,
            since,
            gentle,
            ..
        } = self.state
        else {
            return;
        };
        // The process ended while its stop command ran: the command has
        // nothing left to stop.
        if gentle && self.spec.stop.command.is_some() {
            fx.push(Effect::EndStopCommand);
        }
        self.cancel(TimerKind::Kill, fx);
        self.cancel(TimerKind::GroupCheck, fx);
        self.state = State::Stopped;
        self.settle_stopped(now, Some(since), then, fx);
    }

    fn settle_stopped(
        &mut self,
        now: Mono,
        since: Option<Mono>,
        then: AfterStop,
        fx: &mut Vec<Effect>,
    ) {
        match then {
            AfterStop::Stay => fx.push(Effect::Publish(Event::Stopped {
                name: self.spec.name.clone(),
            })),
            AfterStop::Start => self.on_start(fx),
            AfterStop::Remove => self.state = State::Removed,
            AfterStop::Wait => {
                self.state = State::Waiting {
                    on: String::new(),
                    blocked: None,
                }
            }
            AfterStop::Recover { failed_start } => {
                let ran = since.map_or(Duration::ZERO, |s| now.since(s));
                self.after_death(now, ran, true, failed_start, failed_start, fx);
            }
        }
    }

    // --- helpers -----------------------------------------------------------

    /// Disarms every timer that belongs to a run (not Restart or Kill).
    fn cancel_run_timers(&mut self, fx: &mut Vec<Effect>) {
        for kind in [
            TimerKind::StartSecs,
            TimerKind::StartTimeout,
            TimerKind::ReadyProbe,
            TimerKind::HealthProbe,
            TimerKind::Watchdog,
        ] {
            self.cancel(kind, fx);
        }
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
            State::Backoff { retry_at, .. } => Some(retry_at),
            _ => None,
        }
    }
}

/// First re-check of a draining group; each later one waits twice as long, up to the max.
const GROUP_CHECK_FIRST: Duration = Duration::from_millis(20);
const GROUP_CHECK_MAX: Duration = Duration::from_secs(1);
