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

/// An empty schedule, or exactly `[0]`, means "never restart".
fn schedule_disabled(steps: &[Duration]) -> bool {
    steps.is_empty() || (steps.len() == 1 && steps[0].is_zero())
}
