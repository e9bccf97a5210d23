//! All processes together, still sans-IO: the registry, ordering by priority,
//! and knowing when a request is finished.
//!
//! [`Registry`] turns requests ("stop these five") into inputs for each
//! [`Process`] machine, in the right order (stop in reverse priority order, one
//! priority level at a time; start in priority order), and reports a batch as
//! done once every process in it has settled. The driver owns one `Registry`,
//! executes its [`Effect`]s and feeds back what the OS reported; tests
//! drive it with numbers for time.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use jiff::Timestamp;

use crate::machine::{self, AfterStop, Input, Process, State, TimerId};
use crate::model::error::Error;
use crate::model::launch::{KillTarget, SpawnError};
use crate::model::name::Name;
use crate::model::notify_msg::NotifyMsg;
use crate::model::outcome::{ActionResult, Outcome};
use crate::model::pattern::Pattern;
use crate::model::signal::Signal;
use crate::model::spec::{Condition, ProcessSpec};
use crate::model::status::{Event, ExitInfo, Health, ProbeKind, ProcessStatus};
use crate::model::time::Mono;

/// Identifies a request to the registry; its [`Effect::BatchDone`] carries it back.
pub type BatchId = u64;

/// What the driver must do, for which process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Spawn this process now and call [`Registry::spawned`] with the result.
    Spawn(Name),
    /// Send a signal.
    Kill {
        /// For which process.
        name: Name,
        /// To whom.
        target: KillTarget,
        /// Which signal.
        sig: Signal,
    },
    /// Arm a timer; call [`Registry::timer`] when it fires.
    ArmTimer {
        /// Whose.
        name: Name,
        /// Which.
        id: TimerId,
        /// When.
        at: Mono,
    },
    /// Disarm a timer.
    CancelTimer {
        /// Whose.
        name: Name,
        /// Which.
        id: TimerId,
    },
    /// Publish an event.
    Publish(Event),
    /// Call [`Registry::group_empty`] for `name` if group `pgid` has no member left.
    CheckGroup {
        /// Whose.
        name: Name,
        /// The group.
        pgid: u32,
    },
    /// Run a check of `name` and call [`Registry::probe_result`].
    RunProbe {
        /// Whose.
        name: Name,
        /// Which.
        kind: ProbeKind,
        /// The run it belongs to.
        run: u64,
    },
    /// A request is complete.
    BatchDone {
        /// Which request.
        batch: BatchId,
        /// Per process.
        results: Vec<ActionResult>,
    },
}

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
enum WaitFor {
    /// Until it is running (or fails to be).
    Up,
    /// Until it is down.
    Down,
    /// Until it is unregistered.
    Gone,
}

/// A step of a batch that is not settled yet (kept by process name).
#[derive(Debug)]
struct Wait {
    batch: BatchId,
    want: WaitFor,
    report: bool,
}

#[derive(Debug)]
struct Step {
    name: Name,
    op: Op,
    report: bool,
}

#[derive(Debug, Default)]
struct Batch {
    levels: VecDeque<Vec<Step>>,
    pending: usize,
    results: Vec<ActionResult>,
}

/// Every process, and the requests in flight.
///
/// An input concerns one process, so the work it causes should not grow with
/// the number of processes: waits are kept by process, and the processes in
/// the few states the registry looks for after every input (waiting, draining a
/// group, up) are kept in sets that [`Registry::feed`] updates, the only place a
/// state changes.
#[derive(Debug, Default)]
pub struct Registry {
    /// Boxed: a B-tree node has room for 11 entries and is often half empty
    /// (names mostly arrive in order), and an empty slot should cost a
    /// pointer, not a whole process.
    procs: BTreeMap<Name, Box<Process>>,
    pids: HashMap<u32, Name>,
    active: bool,
    shutting_down: bool,
    /// Unsettled steps of batches, by process, in the order they were issued.
    waits: HashMap<Name, Vec<Wait>>,
    batches: BTreeMap<BatchId, Batch>,
    /// Processes in `waiting`.
    waiting: BTreeSet<Name>,
    /// Stopping processes whose leader has exited (see [`Registry::draining`]).
    draining: BTreeSet<Name>,
    /// How many processes are up or on their way up or down (see [`Registry::any_up`]).
    live: usize,
    /// Dependency name -> the processes bound to it (`restart = true`), for
    /// the cascade when it goes down. The dependency need not exist (yet).
    bound: HashMap<Name, BTreeSet<Name>>,
}

/// What the registry tracks of a process's state beyond the process itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Marks {
    waiting: bool,
    draining: bool,
    live: bool,
}

impl Marks {
    fn of(s: &State) -> Marks {
        Marks {
            waiting: matches!(s, State::Waiting { .. }),
            draining: matches!(
                s,
                State::Stopping {
                    leader_exit: Some(_),
                    ..
                }
            ),
            live: matches!(
                s,
                State::Starting { .. }
                    | State::Running { .. }
                    | State::Stopping { .. }
                    | State::Spawning { .. }
            ),
        }
    }
}

/// Adds `name` to `set` or takes it out.
fn mark(set: &mut BTreeSet<Name>, name: &Name, on: bool) {
    if on {
        set.insert(name.clone());
    } else {
        set.remove(name);
    }
}

impl Registry {
    /// An empty registry; nothing starts until [`Registry::start_service`].
    pub fn new() -> Self {
        Self::default()
    }

    /// The process called `name`.
    pub fn get(&self, name: &str) -> Option<&Process> {
        self.procs.get(name).map(|p| &**p)
    }

    /// Every process, by name.
    pub fn processes(&self) -> impl Iterator<Item = &Process> {
        self.procs.values().map(|p| &**p)
    }

    /// The process that owns `pid`, if it is a live group leader.
    pub fn owner_of(&self, pid: u32) -> Option<&Name> {
        self.pids.get(&pid)
    }

    /// Whether [`Registry::start_service`] has run (and no shutdown since).
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// Whether a shutdown is under way.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// Whether any process still has a live pid or a group being drained.
    pub fn any_up(&self) -> bool {
        self.live > 0
    }

    /// Groups whose leader has exited while being stopped but which may still
    /// have members: `(name, pgid)`. The driver re-checks them when orphans are reaped.
    pub fn draining(&self) -> Vec<(Name, u32)> {
        self.draining
            .iter()
            .filter_map(|n| match self.procs.get(n)?.state() {
                State::Stopping {
                    pid,
                    leader_exit: Some(_),
                    ..
                } => Some((n.clone(), *pid)),
                _ => None,
            })
            .collect()
    }

    /// Registers a process. Starts it if the service is active and it autostarts.
    pub fn add(
        &mut self,
        now: Mono,
        spec: impl Into<Arc<ProcessSpec>>,
    ) -> Result<Vec<Effect>, Error> {
        if self.shutting_down {
            return Err(Error::ShuttingDown);
        }
        let spec = spec.into();
        spec.validate()?;
        if self.procs.contains_key(&spec.name) {
            return Err(Error::Duplicate(spec.name.clone()));
        }
        let name = spec.name.clone();
        let autostart = spec.autostart;
        for d in spec.depends_on.iter().filter(|d| d.restart) {
            self.bound
                .entry(d.name.clone())
                .or_default()
                .insert(name.clone());
        }
        self.procs
            .insert(name.clone(), Box::new(Process::new(spec)));
        let mut out = vec![Effect::Publish(Event::Added { name: name.clone() })];
        if self.active && autostart {
            self.feed(now, &name, Input::Start, &mut out);
        }
        Ok(out)
    }

    /// Starts every autostart process in priority order (Twisted's `startService`).
    pub fn start_service(&mut self, now: Mono, batch: BatchId) -> Vec<Effect> {
        self.active = true;
        let names = self.sorted(
            self.procs
                .values()
                .filter(|p| p.spec().autostart)
                .map(|p| p.name().clone())
                .collect(),
        );
        self.request(now, batch, Op::Start, names)
    }

    /// Stops everything (reverse priority order) and refuses new work.
    pub fn shutdown(&mut self, now: Mono, batch: BatchId) -> Vec<Effect> {
        self.shutting_down = true;
        self.active = false;
        let names = self.procs.keys().cloned().collect();
        self.request(now, batch, Op::Stop, names)
    }

    /// Expands patterns into names in priority order, without duplicates.
    pub fn resolve(&self, patterns: &[String]) -> Result<Vec<Name>, Error> {
        let mut picked: Vec<Name> = Vec::new();
        let mut seen: HashSet<&Name> = HashSet::new();
        for raw in patterns {
            let pat = Pattern::parse(raw)?;
            let before = picked.len();
            for p in self.procs.values() {
                if pat.matches(p.name(), &p.spec().group) && seen.insert(p.name()) {
                    picked.push(p.name().clone());
                }
            }
            let matched_any = picked.len() > before
                || self
                    .procs
                    .values()
                    .any(|p| pat.matches(p.name(), &p.spec().group));
            if !matched_any {
                return Err(match pat.exact_name() {
                    Some(n) => Error::UnknownProcess(n.to_string()),
                    None => Error::NoMatch(raw.clone()),
                });
            }
        }
        Ok(self.sorted(picked))
    }

    /// Sorts names by (priority, name).
    fn sorted(&self, mut names: Vec<Name>) -> Vec<Name> {
        names.sort_by(|a, b| {
            let pa = self.procs.get(a).map_or(0, |p| p.spec().priority);
            let pb = self.procs.get(b).map_or(0, |p| p.spec().priority);
            (pa, a).cmp(&(pb, b))
        });
        names
    }

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
        match op {
            Op::Stop | Op::Remove => b.levels.extend(stop_levels(op, true, self)),
            Op::Restart => {
                b.levels.extend(stop_levels(Op::Stop, false, self));
                b.levels.push_back(steps(Op::Start));
            }
            Op::Start => {
                // Stopped dependencies start first, in the same level: they
                // are spawned in priority order and the dependents wait.
                let mut with_deps = self.down_dependencies(&asc);
                with_deps.retain(|n| !asc.contains(n));
                let mut level: Vec<Step> = self
                    .sorted(with_deps)
                    .into_iter()
                    .map(|name| Step {
                        name,
                        op: Op::StartNoDeps,
                        report: false,
                    })
                    .collect();
                level.extend(steps(Op::Start));
                b.levels.push_back(level);
            }
            Op::StartNoDeps | Op::Signal(_) => b.levels.push_back(steps(op)),
        }
        self.batches.insert(batch, b);
        self.advance(now, batch, &mut out);
        out
    }

    /// Issues the next level of `batch`, or reports it done.
    fn advance(&mut self, now: Mono, batch: BatchId, out: &mut Vec<Effect>) {
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

    fn record(&mut self, batch: BatchId, report: bool, name: Name, result: Result<Outcome, Error>) {
        if let (true, Some(b)) = (report, self.batches.get_mut(&batch)) {
            b.results.push(ActionResult { name, result });
        }
    }

    /// The driver spawned `name` (or failed to).
    pub fn spawned(
        &mut self,
        now: Mono,
        name: &Name,
        result: Result<u32, SpawnError>,
    ) -> Vec<Effect> {
        let mut out = Vec::new();
        let input = match result {
            Ok(pid) => {
                self.pids.insert(pid, name.clone());
                Input::Spawned { pid }
            }
            Err(e) => Input::SpawnFailed(e),
        };
        self.feed(now, name, input, &mut out);
        out
    }

    /// A group leader exited. Unknown pids are ignored (return nothing).
    pub fn exited(
        &mut self,
        now: Mono,
        pid: u32,
        exit: ExitInfo,
        group_alive: bool,
    ) -> Vec<Effect> {
        let mut out = Vec::new();
        if let Some(name) = self.pids.remove(&pid) {
            self.feed(now, &name, Input::Exited { exit, group_alive }, &mut out);
        }
        out
    }

    /// The group of a stopping process is empty.
    pub fn group_empty(&mut self, now: Mono, name: &Name) -> Vec<Effect> {
        let mut out = Vec::new();
        self.feed(now, name, Input::GroupEmpty, &mut out);
        out
    }

    /// A timer armed for `name` fired.
    pub fn timer(&mut self, now: Mono, name: &Name, id: TimerId) -> Vec<Effect> {
        let mut out = Vec::new();
        self.feed(now, name, Input::Timer(id), &mut out);
        out
    }

    /// Feeds one input to one machine and follows up on waits.
    fn feed(&mut self, now: Mono, name: &Name, input: Input, out: &mut Vec<Effect>) {
        let Some(p) = self.procs.get_mut(name) else {
            return;
        };
        let was_up = up_pid(p.state());
        let before = Marks::of(p.state());
        for fx in p.handle(now, input) {
            out.push(match fx {
                machine::Effect::Spawn => Effect::Spawn(name.clone()),
                machine::Effect::Kill { target, sig } => Effect::Kill {
                    name: name.clone(),
                    target,
                    sig,
                },
                machine::Effect::ArmTimer { id, at } => Effect::ArmTimer {
                    name: name.clone(),
                    id,
                    at,
                },
                machine::Effect::CancelTimer(id) => Effect::CancelTimer {
                    name: name.clone(),
                    id,
                },
                machine::Effect::Publish(ev) => Effect::Publish(ev),
                machine::Effect::RunProbe { kind, run } => Effect::RunProbe {
                    name: name.clone(),
                    kind,
                    run,
                },
                machine::Effect::CheckGroup { pgid } => Effect::CheckGroup {
                    name: name.clone(),
                    pgid,
                },
            });
        }
        let went_down = was_up.is_some() && up_pid(p.state()) != was_up;
        let removed = matches!(p.state(), State::Removed);
        let after = if removed {
            Marks::default()
        } else {
            Marks::of(p.state())
        };
        if before != after {
            mark(&mut self.waiting, name, after.waiting);
            mark(&mut self.draining, name, after.draining);
            match (before.live, after.live) {
                (false, true) => self.live += 1,
                (true, false) => self.live = self.live.saturating_sub(1),
                _ => {}
            }
        }
        if removed {
            if let Some(p) = self.procs.remove(name) {
                for id in p.armed_timers() {
                    out.push(Effect::CancelTimer {
                        name: name.clone(),
                        id: *id,
                    });
                }
                for d in p.spec().depends_on.iter().filter(|d| d.restart) {
                    if let Some(set) = self.bound.get_mut(&d.name) {
                        set.remove(name);
                        if set.is_empty() {
                            self.bound.remove(&d.name);
                        }
                    }
                }
            }
            self.pids.retain(|_, n| n != name);
            out.push(Effect::Publish(Event::Removed { name: name.clone() }));
        }
        self.settle(now, name, out);
        if went_down {
            self.cascade(now, name, out);
        }
        self.reconcile(now, out);
        #[cfg(test)]
        self.check_bookkeeping();
    }

    /// The sets kept beside the processes say what a scan of every process
    /// would (the simulator and the proptests run this after every input).
    #[cfg(test)]
    fn check_bookkeeping(&self) {
        let with = |f: fn(&Marks) -> bool| -> BTreeSet<Name> {
            self.procs
                .iter()
                .filter(|(_, p)| f(&Marks::of(p.state())))
                .map(|(n, _)| n.clone())
                .collect()
        };
        assert_eq!(self.waiting, with(|m| m.waiting), "waiting");
        assert_eq!(self.draining, with(|m| m.draining), "draining");
        assert_eq!(self.live, with(|m| m.live).len(), "live");
        let mut bound: HashMap<Name, BTreeSet<Name>> = HashMap::new();
        for p in self.procs.values() {
            for d in p.spec().depends_on.iter().filter(|d| d.restart) {
                bound
                    .entry(d.name.clone())
                    .or_default()
                    .insert(p.name().clone());
            }
        }
        assert_eq!(self.bound, bound, "bound");
        assert!(self.waits.values().all(|w| !w.is_empty()), "empty waits");
    }

    /// `name` went down (died, or was stopped or restarted): processes bound
    /// to it (`restart = true`) stop and wait for it to be back. Their own
    /// dependents follow when they go down in turn.
    fn cascade(&mut self, now: Mono, name: &Name, out: &mut Vec<Effect>) {
        let bound: Vec<Name> = match self.bound.get(name) {
            Some(set) => set.iter().cloned().collect(),
            None => return,
        };
        for dependent in bound {
            self.feed(
                now,
                &dependent,
                Input::DependencyDown {
                    dependency: name.clone(),
                },
                out,
            );
        }
    }

    /// Starts every waiting process whose dependencies now hold, and updates
    /// what the others wait for. Each input fed here goes through
    /// [`Registry::feed`], which reconciles again, nested.
    fn reconcile(&mut self, now: Mono, out: &mut Vec<Effect>) {
        if self.shutting_down {
            return;
        }
        loop {
            let waiting: Vec<(Name, String, Option<String>)> = self
                .waiting
                .iter()
                .filter_map(|n| match self.procs.get(n)?.state() {
                    State::Waiting { on, blocked } => {
                        Some((n.clone(), on.clone(), blocked.clone()))
                    }
                    _ => None,
                })
                .collect();
            let mut changed = false;
            for (name, on, blocked) in waiting {
                match self.dependency_state(&name) {
                    DepState::Satisfied => {
                        self.feed(now, &name, Input::Start, out);
                        changed = true;
                    }
                    DepState::Waiting {
                        on: now_on,
                        blocked: now_blocked,
                    } => {
                        if now_on != on || now_blocked != blocked {
                            self.feed(
                                now,
                                &name,
                                Input::Wait {
                                    on: now_on,
                                    blocked: now_blocked,
                                },
                                out,
                            );
                        }
                    }
                }
            }
            if !changed {
                break;
            }
        }
    }

    /// Whether `name`'s dependencies hold, and if not, what it waits for.
    fn dependency_state(&self, name: &Name) -> DepState {
        let Some(p) = self.procs.get(name) else {
            return DepState::Satisfied;
        };
        let mut on = Vec::new();
        let mut blocked = Vec::new();
        for d in &p.spec().depends_on {
            let Some(dp) = self.procs.get(&d.name) else {
                on.push(format!("{} ({})", d.name, d.condition.as_str()));
                blocked.push(format!("{} is not defined", d.name));
                continue;
            };
            let st = dp.state();
            let up = matches!(st, State::Starting { .. } | State::Running { .. });
            let holds = match d.condition {
                Condition::Started => up,
                Condition::Ready => dp.is_ready(),
                Condition::Healthy => match dp.spec().health {
                    Some(_) => up && dp.health() == Health::Healthy,
                    None => dp.is_ready(),
                },
                Condition::Completed => dp.completed() && !up,
            };
            if holds {
                continue;
            }
            on.push(format!("{} ({})", d.name, d.condition.as_str()));
            let why = match st {
                State::Fatal { .. } => Some(format!("{} is fatal", d.name)),
                State::Stopped => Some(format!("{} is stopped", d.name)),
                State::Exited if d.condition == Condition::Completed => {
                    Some(format!("{} exited without success", d.name))
                }
                State::Exited if d.condition != Condition::Completed => {
                    Some(format!("{} exited", d.name))
                }
                _ => None,
            };
            blocked.extend(why);
        }
        if on.is_empty() {
            DepState::Satisfied
        } else {
            DepState::Waiting {
                on: on.join(", "),
                blocked: (!blocked.is_empty()).then(|| blocked.join("; ")),
            }
        }
    }

    /// The dependencies (transitively) of `names` that are down and would
    /// have to be started for them: not running, not already completed.
    fn down_dependencies(&self, names: &[Name]) -> Vec<Name> {
        let mut out: Vec<Name> = Vec::new();
        let mut todo: Vec<Name> = names.to_vec();
        while let Some(n) = todo.pop() {
            let Some(p) = self.procs.get(&n) else {
                continue;
            };
            for d in &p.spec().depends_on {
                let Some(dp) = self.procs.get(&d.name) else {
                    continue;
                };
                if out.contains(&d.name) {
                    continue;
                }
                let down = matches!(
                    dp.state(),
                    State::Stopped | State::Exited | State::Fatal { .. }
                );
                let done = d.condition == Condition::Completed && dp.completed();
                if down && !done {
                    out.push(d.name.clone());
                }
                todo.push(d.name.clone());
            }
        }
        out
    }

    /// Stop levels: dependents before what they depend on, then higher
    /// priority numbers first; each level is stopped before the next starts.
    fn stop_levels(&self, names: &[Name]) -> Vec<Vec<Name>> {
        // depth 0: nothing in the set depends on it; otherwise one more than
        // its deepest dependent in the set. Linear in processes + edges.
        let in_set: HashSet<&Name> = names.iter().collect();
        let mut dependents: HashMap<&Name, Vec<&Name>> = HashMap::new();
        for m in names {
            if let Some(p) = self.procs.get(m) {
                for d in &p.spec().depends_on {
                    if let Some(dep) = in_set.get(&d.name) {
                        dependents.entry(*dep).or_default().push(m);
                    }
                }
            }
        }
        let mut depth: HashMap<Name, usize> = HashMap::new();
        for n in names {
            depth_of(n, &dependents, &mut depth, &mut HashSet::new());
        }
        let mut ordered: Vec<Name> = names.to_vec();
        let prio = |n: &Name| self.procs.get(n).map_or(0, |p| p.spec().priority);
        ordered.sort_by(|a, b| {
            (
                depth.get(a),
                std::cmp::Reverse(prio(a)),
                std::cmp::Reverse(a),
            )
                .cmp(&(
                    depth.get(b),
                    std::cmp::Reverse(prio(b)),
                    std::cmp::Reverse(b),
                ))
        });
        let mut levels: Vec<Vec<Name>> = Vec::new();
        let mut last = None;
        for n in ordered {
            let key = (depth.get(&n).copied(), prio(&n));
            if last != Some(key) {
                levels.push(Vec::new());
                last = Some(key);
            }
            if let Some(l) = levels.last_mut() {
                l.push(n);
            }
        }
        levels
    }

    /// A check of `name` finished.
    pub fn probe_result(
        &mut self,
        now: Mono,
        name: &Name,
        kind: ProbeKind,
        run: u64,
        ok: bool,
        detail: String,
    ) -> Vec<Effect> {
        let mut out = Vec::new();
        self.feed(
            now,
            name,
            Input::ProbeResult {
                kind,
                run,
                ok,
                detail,
            },
            &mut out,
        );
        out
    }

    /// A message arrived on `name`'s notify socket.
    pub fn notify(&mut self, now: Mono, name: &Name, msg: NotifyMsg) -> Vec<Effect> {
        let mut out = Vec::new();
        self.feed(now, name, Input::Notify(msg), &mut out);
        out
    }

    /// Resolves the waits on `name` that its current state answers.
    fn settle(&mut self, now: Mono, name: &Name, out: &mut Vec<Effect>) {
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

    /// A status snapshot. `wall` maps a monotonic instant to wall-clock time.
    pub fn status(&self, now: Mono, wall: impl Fn(Mono) -> Timestamp) -> Vec<ProcessStatus> {
        let names = self.sorted(self.procs.keys().cloned().collect());
        names
            .iter()
            .filter_map(|n| self.procs.get(n))
            .map(|p| {
                let st = p.state();
                let up_since = match st {
                    State::Starting { since, .. }
                    | State::Running { since, .. }
                    | State::Stopping { since, .. } => Some(*since),
                    _ => None,
                };
                ProcessStatus {
                    name: p.name().clone(),
                    group: p.spec().group.clone(),
                    // A process that sent STOPPING=1 is on its way out: say so.
                    state: match st {
                        State::Running { .. } | State::Starting { .. }
                            if p.announced_stopping() =>
                        {
                            crate::model::status::StateName::Stopping
                        }
                        _ => st.name(),
                    },
                    pid: st.pid(),
                    started_at: p.last_start().map(&wall),
                    stopped_at: p.last_stop().map(&wall),
                    uptime_ms: up_since.map(|s| millis(now.since(s))),
                    restarts: p.restarts(),
                    last_exit: p.last_exit(),
                    next_restart_in_ms: p.retry_at().map(|at| millis(at.since(now))),
                    error: p.error().map(str::to_string),
                    quick_deaths: p.quick_deaths(),
                    priority: p.spec().priority,
                    log_dropped_bytes: 0,
                    ready: p.is_ready(),
                    health: p.health(),
                    last_check: p.last_check().map(|c| crate::model::status::CheckStatus {
                        kind: c.kind,
                        ok: c.ok,
                        detail: c.detail.clone(),
                        at: wall(c.at),
                    }),
                    status_text: p.status_text().map(str::to_string),
                    waiting_for: match st {
                        State::Waiting { on, blocked: None } => Some(on.clone()),
                        State::Waiting {
                            on,
                            blocked: Some(b),
                        } => Some(format!("{on}; {b}")),
                        _ => None,
                    },
                }
            })
            .collect()
    }
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
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

enum DepState {
    Satisfied,
    Waiting { on: String, blocked: Option<String> },
}

/// The pid of a process that is up (starting or running).
fn up_pid(s: &State) -> Option<u32> {
    match s {
        State::Starting { pid, .. } | State::Running { pid, .. } => Some(*pid),
        _ => None,
    }
}

/// How many dependents deep `n` is (memoized; a cycle, which config
/// validation rejects, is cut where it closes).
fn depth_of<'a>(
    n: &'a Name,
    dependents: &HashMap<&'a Name, Vec<&'a Name>>,
    memo: &mut HashMap<Name, usize>,
    visiting: &mut HashSet<&'a Name>,
) -> usize {
    if let Some(d) = memo.get(n) {
        return *d;
    }
    if !visiting.insert(n) {
        return 0;
    }
    let d = dependents.get(n).map_or(0, |ds| {
        ds.iter()
            .map(|m| depth_of(m, dependents, memo, visiting) + 1)
            .max()
            .unwrap_or(0)
    });
    visiting.remove(n);
    memo.insert(n.clone(), d);
    d
}
