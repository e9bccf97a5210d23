//! Readiness and health: check results, and what the process says on its
//! notify socket (`READY=1`, `WATCHDOG=1`, `STATUS=`, `STOPPING=1`).

use super::{CheckRecord, Effect, Process, State, TimerKind};
use crate::model::notify_msg::NotifyMsg;
use crate::model::status::{Health, ProbeKind};
use crate::model::time::Mono;

impl Process {
    pub(super) fn on_probe(
        &mut self,
        now: Mono,
        kind: ProbeKind,
        run: u64,
        ok: bool,
        detail: String,
        fx: &mut Vec<Effect>,
    ) {
        if run != self.run || !matches!(self.state, State::Starting { .. } | State::Running { .. })
        {
            return; // a check of an earlier run, or of a process being stopped
        }
        self.last_check = Some(CheckRecord {
            kind,
            ok,
            detail: detail.clone(),
            at: now,
        });
        match kind {
            ProbeKind::Ready => {
                let Some(spec) = self.spec.ready.clone() else {
                    return;
                };
                let State::Starting {
                    ready_pending: true,
                    run: live,
                    ..
                } = &mut self.state
                else {
                    return;
                };
                live.ready_streak = if ok { live.ready_streak + 1 } else { 0 };
                if ok && live.ready_streak >= spec.success_threshold.max(1) {
                    self.starting_progress(false, true, fx);
                } else {
                    self.arm(TimerKind::ReadyProbe, now + spec.period, fx);
                }
            }
            ProbeKind::Health => {
                let Some(spec) = self.spec.health.clone() else {
                    return;
                };
                let Some(live) = self.state.run_mut() else {
                    return;
                };
                if ok {
                    live.health_fail_streak = 0;
                    live.health_ok_streak += 1;
                    if live.health_ok_streak >= spec.success_threshold.max(1) {
                        self.health = Health::Healthy;
                    }
                } else {
                    live.health_ok_streak = 0;
                    live.health_fail_streak += 1;
                    if live.health_fail_streak >= spec.failure_threshold.max(1) {
                        let n = live.health_fail_streak;
                        self.health = Health::Unhealthy;
                        self.recover(
                            now,
                            format!("health check failed {n} times in a row: {detail}"),
                            false,
                            fx,
                        );
                        return;
                    }
                }
                self.arm(TimerKind::HealthProbe, now + spec.period, fx);
            }
        }
    }

    pub(super) fn on_notify(&mut self, now: Mono, msg: NotifyMsg, fx: &mut Vec<Effect>) {
        if !matches!(self.state, State::Starting { .. } | State::Running { .. }) {
            return;
        }
        if let Some(text) = msg.status {
            self.status_text = Some(text);
        }
        if msg.stopping
            && let Some(live) = self.state.run_mut()
        {
            live.announced_stopping = true;
        }
        if msg.watchdog
            && let Some(w) = self.spec.watchdog
        {
            self.arm(TimerKind::Watchdog, now + w, fx);
        }
        if msg.ready && self.spec.notify {
            self.last_check = Some(CheckRecord {
                kind: ProbeKind::Ready,
                ok: true,
                detail: "READY=1".into(),
                at: now,
            });
            // With both a probe and notify, READY=1 counts as the probe passing.
            self.starting_progress(false, true, fx);
        }
    }
}
