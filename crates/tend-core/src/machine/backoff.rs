//! The restart decision after an unrequested death, and the back-off delays
//! of the three modes (doubling, schedule, linear).

use std::time::Duration;

use super::{Effect, Process, State, TimerKind};
use crate::model::spec::{BackoffMode, RestartPolicy};
use crate::model::status::Event;
use crate::model::time::Mono;

/// Where the back-off stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Cursor {
    /// Doubling: the delay the next quick death waits.
    Delay(Duration),
    /// Schedule: the index of the next step.
    Step(usize),
    /// Linear: failed starts in a row.
    Attempts(u32),
}

impl Process {
    /// Decides what follows an unrequested death after a run of `ran`.
    /// `was_starting`: it died before getting up; `force_quick`: count it as
    /// a quick death whatever it ran (it never got ready).
    pub(super) fn after_death(
        &mut self,
        now: Mono,
        ran: Duration,
        failed: bool,
        was_starting: bool,
        force_quick: bool,
        fx: &mut Vec<Effect>,
    ) {
        // A start that did not get past start_secs is retried whatever the
        // policy says (Supervisor: STARTING -> BACKOFF).
        let failed_start = (was_starting && !self.spec.start_secs.is_zero()) || force_quick;
        let wants_restart = failed_start
            || match self.spec.restart {
                RestartPolicy::Always => true,
                RestartPolicy::OnFailure => failed,
                RestartPolicy::Never => false,
            };
        if !wants_restart {
            self.end_loop(fx);
            self.state = State::Exited;
            return;
        }
        let quick = ran < self.spec.backoff.min_uptime || failed_start;
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
            self.end_loop(fx);
            self.give_up(
                format!(
                    "gave up after {} quick {} in a row{last}",
                    self.quick_deaths,
                    if self.quick_deaths == 1 {
                        "death"
                    } else {
                        "deaths"
                    }
                ),
                fx,
            );
            return;
        }
        let mode_delay = self.next_delay(ran, quick);
        let delay = mode_delay.map(|d| self.floored(d, ran, fx));
        // Only the floor holds back the restart of a run that got up: users
        // see it as exited until then, as in Supervisor.
        let exited = !failed_start && mode_delay.is_some_and(|d| d.is_zero());
        match delay {
            None => {
                self.end_loop(fx);
                self.state = State::Exited;
            }
            Some(d) if d.is_zero() => self.spawn(true, fx),
            Some(d) => {
                let at = now + d;
                self.state = State::Backoff {
                    retry_at: at,
                    exited,
                };
                self.arm(TimerKind::Restart, at, fx);
                fx.push(Effect::Publish(Event::RestartScheduled {
                    name: self.spec.name.clone(),
                    delay_ms: u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
                }));
            }
        }
    }

    /// `delay`, held back so that the next spawn is at least `backoff.floor`
    /// after the last one (`ran` ago): a process that exits at once is not
    /// respawned in a hot loop, whatever the mode says. Restarts the floor
    /// holds back in a row are a *respawn loop*, told once
    /// ([`Event::RespawnLoop`]) when it begins and once when it ends.
    fn floored(&mut self, delay: Duration, ran: Duration, fx: &mut Vec<Effect>) -> Duration {
        let wait = self.spec.backoff.floor.saturating_sub(ran);
        if wait <= delay {
            // A run just over the floor (a `true` on a loaded machine) is
            // still the loop: it ends with a run of a few floors.
            if ran
                >= self
                    .spec
                    .backoff
                    .floor
                    .saturating_mul(LOOP_ENDS_AFTER_FLOORS)
            {
                self.end_loop(fx);
            }
            return delay;
        }
        self.short_runs += 1;
        if self.short_runs >= LOOP_AFTER && !self.loop_told {
            self.loop_told = true;
            fx.push(Effect::Publish(Event::RespawnLoop {
                name: self.spec.name.clone(),
                floor_ms: u64::try_from(self.spec.backoff.floor.as_millis()).unwrap_or(u64::MAX),
            }));
        }
        wait
    }

    /// The respawn loop, if any, is over.
    pub(super) fn end_loop(&mut self, fx: &mut Vec<Effect>) {
        if self.loop_told {
            fx.push(Effect::Publish(Event::RespawnLoopEnded {
                name: self.spec.name.clone(),
                spawns: self.short_runs,
            }));
        }
        self.loop_told = false;
        self.short_runs = 0;
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

    pub(super) fn reset_backoff(&mut self) {
        self.cursor = initial_cursor(&self.spec.backoff.mode);
        self.quick_deaths = 0;
    }
}

pub(super) fn initial_cursor(mode: &BackoffMode) -> Cursor {
    match mode {
        BackoffMode::Doubling { initial, max } => Cursor::Delay((*initial).min(*max)),
        BackoffMode::Schedule { .. } => Cursor::Step(0),
        BackoffMode::Linear { .. } => Cursor::Attempts(0),
    }
}

/// Restarts held back by the floor in a row before they are a respawn loop.
const LOOP_AFTER: u64 = 3;
/// A respawn loop ends with a run at least this many floors long.
const LOOP_ENDS_AFTER_FLOORS: u32 = 5;

/// An empty schedule, or exactly `[0]`, means "never restart".
fn schedule_disabled(steps: &[Duration]) -> bool {
    steps.is_empty() || (steps.len() == 1 && steps[0].is_zero())
}
