//! All processes together, still sans-IO: the registry, ordering by priority,
//! and knowing when a request is finished.
//!
//! [`Registry`] turns requests ("stop these five") into inputs for each
//! [`Process`] machine, in the right order (stop in reverse priority order, one
//! priority level at a time; start in priority order), and reports a batch as
//! done once every process in it has settled. The driver owns one `Registry`,
//! executes its [`Effect`]s and feeds back what the OS reported; tests
//! drive it with numbers for time.
//!
//! - this file: the processes by name, the bookkeeping kept beside them, and
//!   [`Registry::feed`](Registry), the one place a state changes;
//! - `batch.rs`: requests as levels of steps, and when each step has settled;
//! - `deps.rs`: dependencies (waiting, the `restart = true` cascade, stop order);
//! - `view.rs`: the status snapshot.

mod batch;
mod deps;
mod view;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

pub use batch::Op;
use batch::{Batch, Wait};

use crate::machine::{self, Input, Process, State, TimerId};
use crate::model::error::Error;
use crate::model::launch::{KillTarget, SpawnError};
use crate::model::name::Name;
use crate::model::notify_msg::NotifyMsg;
use crate::model::outcome::ActionResult;
use crate::model::pattern::Pattern;
use crate::model::signal::Signal;
use crate::model::spec::ProcessSpec;
use crate::model::status::{Event, ExitInfo, ProbeKind};
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
    /// Begin a gentle stop of `name` (pid `pid`): run its `stop.command` and
    /// call [`Registry::stop_command_done`] when it ends, or write its
    /// `stop.stdin`.
    GentleStop {
        /// Whose.
        name: Name,
        /// The process being stopped, for `MAINPID`.
        pid: u32,
    },
    /// Kill `name`'s `stop.command` if it still runs.
    EndStopCommand(Name),
    /// A request is complete.
    BatchDone {
        /// Which request.
        batch: BatchId,
        /// Per process.
        results: Vec<ActionResult>,
    },
}

/// Every process, and the requests in flight.
///
/// An input concerns one process, so the work it causes should not grow with
/// the number of processes: waits are kept by process, and the processes in
/// the few states the registry looks for after every input (waiting, draining a
/// group, up) are kept in sets that `feed` updates, the only place a
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
            // A name is itself first, whatever glob characters it holds
            // (`a*b`, `web[1]`), and so is `group:name`.
            if let Some(p) = self.exact(raw) {
                if seen.insert(p.name()) {
                    picked.push(p.name().clone());
                }
                continue;
            }
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

    /// The process `raw` names exactly: `name`, or `group:name`.
    fn exact(&self, raw: &str) -> Option<&Process> {
        if let Some(p) = self.procs.get(raw) {
            return Some(&**p);
        }
        let (group, name) = raw.split_once(':')?;
        self.procs
            .get(name)
            .map(|p| &**p)
            .filter(|p| p.spec().group.as_str() == group)
    }

    /// Sorts names by (priority, name).
    pub(super) fn sorted(&self, mut names: Vec<Name>) -> Vec<Name> {
        names.sort_by(|a, b| {
            let pa = self.procs.get(a).map_or(0, |p| p.spec().priority);
            let pb = self.procs.get(b).map_or(0, |p| p.spec().priority);
            (pa, a).cmp(&(pb, b))
        });
        names
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

    /// `name`'s `stop.command` ended.
    pub fn stop_command_done(&mut self, now: Mono, name: &Name) -> Vec<Effect> {
        let mut out = Vec::new();
        self.feed(now, name, Input::StopCommandDone, &mut out);
        out
    }

    /// A message arrived on `name`'s notify socket.
    pub fn notify(&mut self, now: Mono, name: &Name, msg: NotifyMsg) -> Vec<Effect> {
        let mut out = Vec::new();
        self.feed(now, name, Input::Notify(msg), &mut out);
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
                machine::Effect::GentleStop { pid } => Effect::GentleStop {
                    name: name.clone(),
                    pid,
                },
                machine::Effect::EndStopCommand => Effect::EndStopCommand(name.clone()),
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
}

/// The pid of a process that is up (starting or running).
fn up_pid(s: &State) -> Option<u32> {
    match s {
        State::Starting { pid, .. } | State::Running { pid, .. } => Some(*pid),
        _ => None,
    }
}
