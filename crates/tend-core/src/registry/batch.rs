//! Requests as batches: levels of steps, issued one level at a time, and a
//! batch done once every step in it has settled.

use std::collections::VecDeque;

use super::deps::DepState;
use super::{BatchId, Effect, Registry};
use crate::machine::{AfterStop, Input, Process, State};
use crate::model::error::Error;
use crate::model::launch::KillTarget;
use crate::model::name::Name;
use crate::model::outcome::{ActionResult, Outcome};
use crate::model::signal::Signal;
use crate::model::time::Mono;

/// The verbs a batch can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Start (clear fatal and back-off), starting stopped dependencies first.
    Start,
    /// Start without starting its dependencies (it waits for them).
    StartNoDeps,
    /// Stop and stay stopped.
    Stop,
    /// Stop all (reverse priority), then start all (priority).
    Restart,
    /// Send a signal to the main process.
    Signal(Signal),
    /// Stop, then unregister.
    Remove,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WaitFor {
    /// Until it is running (or fails to be).
    Up,
    /// Until it is down.
    Down,
    /// Until it is unregistered.
    Gone,
}

/// A step of a batch that is not settled yet (kept by process name).
#[derive(Debug)]
pub(super) struct Wait {
    batch: BatchId,
    want: WaitFor,
    report: bool,
}

#[derive(Debug)]
pub(super) struct Step {
    name: Name,
    op: Op,
    report: bool,
}

#[derive(Debug, Default)]
pub(super) struct Batch {
    levels: VecDeque<Vec<Step>>,
    pending: usize,
    results: Vec<ActionResult>,
}

impl Registry {
    /// Applies `op` to `names`; a [`Effect::BatchDone`] with `batch` follows
    /// (maybe at once) when every process has settled.
    pub fn request(&mut self, now: Mono, batch: BatchId, op: Op, names: Vec<Name>) -> Vec<Effect> {
        let mut out = Vec::new();
        let mut b = Batch::default();
        let mut known = Vec::new();
        for n in names {
            if self.procs.contains_key(&n) {
                known.push(n);
            } else {
                b.results.push(ActionResult {
                    result: Err(Error::UnknownProcess(n.to_string())),
                    name: n,
                });
            }
        }
        let asc = self.sorted(known);
        let steps = |op: Op| {
            asc.iter()
                .map(|n| Step {
                    name: n.clone(),
                    op,
                    report: true,
                })
                .collect::<Vec<_>>()
        };
        let stop_levels = |op: Op, report: bool, reg: &Registry| {
            reg.stop_levels(&asc)
                .into_iter()
                .map(|level| {
                    level
                        .into_iter()
                        .map(|name| Step { name, op, report })
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
        };
        // Start and restart follow one rule: the stopped dependencies of the
        // targets start first, in the same level as the targets (spawned in
        // priority order; the dependents wait for them), and are reported
        // too, so the caller sees everything that was done.
        let start_level = |reg: &Registry| {
            let mut with_deps = reg.down_dependencies(&asc);
            with_deps.retain(|n| !asc.contains(n));
            let mut level: Vec<Step> = reg
                .sorted(with_deps)
                .into_iter()
                .map(|name| Step {
                    name,
                    op: Op::StartNoDeps,
                    report: true,
                })
                .collect();
            level.extend(steps(Op::Start));
            level
        };
        match op {
            Op::Stop | Op::Remove => b.levels.extend(stop_levels(op, true, self)),
            Op::Restart => {
                let start = start_level(self);
                b.levels.extend(stop_levels(Op::Stop, false, self));
                b.levels.push_back(start);
            }
            Op::Start => {
                let start = start_level(self);
                b.levels.push_back(start);
            }
            Op::StartNoDeps | Op::Signal(_) => b.levels.push_back(steps(op)),
        }
        self.batches.insert(batch, b);
        self.advance(now, batch, &mut out);
        out
    }

    /// Issues the next level of `batch`, or reports it done.
    pub(super) fn advance(&mut self, now: Mono, batch: BatchId, out: &mut Vec<Effect>) {
        loop {
            let Some(b) = self.batches.get_mut(&batch) else {
                return;
            };
            if b.pending > 0 {
                return;
            }
            let Some(level) = b.levels.pop_front() else {
                if let Some(b) = self.batches.remove(&batch) {
                    out.push(Effect::BatchDone {
                        batch,
                        results: b.results,
                    });
                }
                return;
            };
            for step in level {
                self.issue(now, batch, step, out);
            }
        }
    }

    fn issue(&mut self, now: Mono, batch: BatchId, step: Step, out: &mut Vec<Effect>) {
        let Some(p) = self.procs.get(&step.name) else {
            self.record(
                batch,
                step.report,
                step.name.clone(),
                Err(Error::UnknownProcess(step.name.to_string())),
            );
            return;
        };
        let st = p.state();
        let up = matches!(
            st,
            State::Spawning { .. } | State::Starting { .. } | State::Running { .. }
        );
        let down = matches!(st, State::Stopped | State::Exited | State::Fatal { .. });
        let (input, want) = match step.op {
            Op::Start | Op::StartNoDeps => {
                if self.shutting_down {
                    self.record(batch, step.report, step.name, Err(Error::ShuttingDown));
                    return;
                }
                if matches!(st, State::Running { .. }) {
                    self.record(batch, step.report, step.name, Ok(Outcome::AlreadyRunning));
                    return;
                }
                let input = if up {
                    None
                } else {
                    match self.dependency_state(&step.name) {
                        DepState::Satisfied => Some(Input::Start),
                        DepState::Waiting { on, blocked } => Some(Input::Wait { on, blocked }),
                    }
                };
                (input, WaitFor::Up)
            }
            Op::Stop => {
                self.supersede_starts(&step.name, batch);
                if down {
                    self.record(batch, step.report, step.name, Ok(Outcome::AlreadyStopped));
                    return;
                }
                (Some(Input::Stop), WaitFor::Down)
            }
            Op::Remove => {
                self.supersede_starts(&step.name, batch);
                (Some(Input::Remove), WaitFor::Gone)
            }
            // Batches expand a restart into stop and start levels; a single
            // restart step is the machine's own stop-then-start.
            Op::Restart => (Some(Input::Restart), WaitFor::Up),
            Op::Signal(sig) => {
                let result = match st.pid() {
                    Some(pid) => {
                        out.push(Effect::Kill {
                            name: step.name.clone(),
                            target: KillTarget::Process(pid),
                            sig,
                        });
                        Ok(Outcome::Done)
                    }
                    None => Err(Error::NotRunning(step.name.clone())),
                };
                self.record(batch, step.report, step.name, result);
                return;
            }
        };
        if let Some(b) = self.batches.get_mut(&batch) {
            b.pending += 1;
        }
        self.waits
            .entry(step.name.clone())
            // Most processes have one wait at a time: no room for four.
            .or_insert_with(|| Vec::with_capacity(1))
            .push(Wait {
                batch,
                want,
                report: step.report,
            });
        match input {
            Some(i) => self.feed(now, &step.name, i, out),
            None => self.settle(now, &step.name, out),
        }
    }

    /// A stop or remove wins over a start that an earlier request (a restart)
    /// still has queued for the same process: the latest request decides.
    fn supersede_starts(&mut self, name: &Name, current: BatchId) {
        for (id, b) in self.batches.iter_mut() {
            if *id == current {
                continue;
            }
            for level in b.levels.iter_mut() {
                level.retain(|s| {
                    if &s.name == name && s.op == Op::Start {
                        if s.report {
                            b.results.push(ActionResult {
                                name: name.clone(),
                                result: Err(Error::Interrupted {
                                    name: name.clone(),
                                    reason: "stopped before it was started again".into(),
                                }),
                            });
                        }
                        false
                    } else {
                        true
                    }
                });
            }
        }
    }

    pub(super) fn record(
        &mut self,
        batch: BatchId,
        report: bool,
        name: Name,
        result: Result<Outcome, Error>,
    ) {
        if let (true, Some(b)) = (report, self.batches.get_mut(&batch)) {
            b.results.push(ActionResult { name, result });
        }
    }

    /// Resolves the waits on `name` that its current state answers.
    pub(super) fn settle(&mut self, now: Mono, name: &Name, out: &mut Vec<Effect>) {
        let Some(waits) = self.waits.get_mut(name) else {
            return;
        };
        let p = self.procs.get(name).map(|p| &**p);
        let mut done: Vec<(BatchId, bool, Result<Outcome, Error>)> = Vec::new();
        waits.retain(|w| {
            let verdict = match (p.map(Process::state), w.want) {
                (None, WaitFor::Gone) => Some(Ok(Outcome::Done)),
                (None, _) => Some(Err(Error::Interrupted {
                    name: name.clone(),
                    reason: "removed".into(),
                })),
                (Some(_), WaitFor::Gone) => None,
                (Some(s), WaitFor::Up) => up_verdict(name, s, p),
                (Some(s), WaitFor::Down) => down_verdict(name, s),
            };
            match verdict {
                Some(r) => {
                    done.push((w.batch, w.report, r));
                    false
                }
                None => true,
            }
        });
        if waits.is_empty() {
            self.waits.remove(name);
        }
        let mut ready = Vec::new();
        for (batch, report, result) in done {
            self.record(batch, report, name.clone(), result);
            if let Some(b) = self.batches.get_mut(&batch) {
                b.pending = b.pending.saturating_sub(1);
                if b.pending == 0 {
                    ready.push(batch);
                }
            }
        }
        for batch in ready {
            self.advance(now, batch, out);
        }
    }
}

fn up_verdict(name: &Name, s: &State, p: Option<&Process>) -> Option<Result<Outcome, Error>> {
    let fail = |reason: String| {
        Some(Err(Error::StartFailed {
            name: name.clone(),
            reason,
        }))
    };
    let last = p
        .and_then(|p| p.last_exit())
        .map(|e| format!("exited with {e}"))
        .unwrap_or_else(|| "exited".into());
    match s {
        State::Running { .. } => Some(Ok(Outcome::Done)),
        State::Spawning { .. } | State::Starting { .. } => None,
        State::Stopping {
            then: AfterStop::Start,
            ..
        } => None,
        State::Stopping { .. } | State::Stopped | State::Removed => Some(Err(Error::Interrupted {
            name: name.clone(),
            reason: "stopped before it was running".into(),
        })),
        State::Backoff { .. } => match p.and_then(|p| p.error()) {
            Some(e) => fail(format!("{e}; retrying")),
            None => fail(format!("{last} while starting; retrying")),
        },
        State::Exited => fail(format!("{last} while starting")),
        State::Waiting { blocked: None, .. } => None,
        State::Waiting {
            on,
            blocked: Some(why),
        } => fail(format!("waiting for {on}, but {why}")),
        State::Fatal { reason } => fail(reason.clone()),
    }
}

fn down_verdict(name: &Name, s: &State) -> Option<Result<Outcome, Error>> {
    match s {
        State::Stopped
        | State::Exited
        | State::Fatal { .. }
        | State::Removed
        | State::Waiting { .. } => Some(Ok(Outcome::Done)),
        State::Stopping {
            then: AfterStop::Start,
            ..
        } => Some(Err(Error::Interrupted {
            name: name.clone(),
            reason: "restarted before it stopped".into(),
        })),
        State::Stopping { .. } => None,
        State::Spawning { .. }
        | State::Starting { .. }
        | State::Running { .. }
        | State::Backoff { .. } => Some(Err(Error::Interrupted {
            name: name.clone(),
            reason: "started again before it stopped".into(),
        })),
    }
}
