//! Test doubles for the engine (feature `test-util`): a fake [`Launcher`]
//! for the driver, and a deterministic simulator for the sans-IO layer.
//!
//! - [`FakeLauncher`] stands in for [`crate::unix::UnixLauncher`] behind a
//!   real [`Supervisor`], under tokio's paused clock
//!   (`#[tokio::test(start_paused = true)]`): nothing is spawned, and a
//!   "process" is told how to behave by its command (see [`FakeLauncher`]).
//! - [`Sim`] drives a [`Registry`] with numbers for time: fake processes
//!   that exit when told, a clock that moves only when the test says so.
//!
//! ```toml
//! [dev-dependencies]
//! tend-core = { version = "0.1", features = ["test-util"] }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::launcher::{Launcher, Reaped, Spawned};
use crate::machine::{TimerId, TimerKind};
use crate::model::launch::{KillTarget, SpawnError};
use crate::model::name::Name;
use crate::model::outcome::{ActionResult, Outcome};
use crate::model::signal::Signal;
use crate::model::spec::ProcessSpec;
use crate::model::status::{Event, ExitInfo, ProbeKind, StateName};
use crate::model::time::Mono;
use crate::registry::{self, BatchId, Op, Registry};
use crate::runtime::{Options, Supervisor};

// ---- the fake launcher ------------------------------------------------------

/// A spawn the [`FakeLauncher`] pretended to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeSpawn {
    /// When (tokio's clock).
    pub at: Instant,
    /// Which process.
    pub name: Name,
    /// The pid it was given.
    pub pid: u32,
}

/// A signal the [`FakeLauncher`] was asked to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeKill {
    /// When (tokio's clock).
    pub at: Instant,
    /// To whom.
    pub target: KillTarget,
    /// Which signal.
    pub sig: Signal,
    /// The live process it hit, if one was alive with that pid.
    pub name: Option<Name>,
}

#[derive(Debug)]
struct World {
    started: Instant,
    next_pid: u32,
    spawns: Vec<FakeSpawn>,
    kills: Vec<FakeKill>,
    alive: Vec<(u32, Name)>,
    /// Pids whose end is an OOM kill (`oom:MS`), until the driver asks.
    oom: Vec<u32>,
    exits: mpsc::UnboundedSender<Reaped>,
}

/// What a [`FakeLauncher`] did, and a hand on its processes; cheap to clone.
#[derive(Debug, Clone)]
pub struct FakeWorld(Arc<Mutex<World>>);

impl FakeWorld {
    fn lock(&self) -> MutexGuard<'_, World> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// When the launcher was made.
    pub fn started(&self) -> Instant {
        self.lock().started
    }

    /// Milliseconds from [`FakeWorld::started`] to `at`.
    pub fn ms(&self, at: Instant) -> u64 {
        u64::try_from(at.duration_since(self.started()).as_millis()).unwrap_or(u64::MAX)
    }

    /// Every spawn so far, in order.
    pub fn spawns(&self) -> Vec<FakeSpawn> {
        self.lock().spawns.clone()
    }

    /// When each spawn of `name` happened, in milliseconds since the start.
    pub fn spawns_of(&self, name: &str) -> Vec<u64> {
        let w = self.lock();
        let t0 = w.started;
        w.spawns
            .iter()
            .filter(|s| s.name.as_str() == name)
            .map(|s| u64::try_from(s.at.duration_since(t0).as_millis()).unwrap_or(u64::MAX))
            .collect()
    }

    /// Every signal asked for so far, in order.
    pub fn kills(&self) -> Vec<FakeKill> {
        self.lock().kills.clone()
    }

    /// The pids alive now, oldest first.
    pub fn alive(&self) -> Vec<u32> {
        self.lock().alive.iter().map(|(p, _)| *p).collect()
    }

    /// The youngest live process exits now, like this (a crash).
    /// Returns its pid; `None` when nothing is alive.
    pub fn exit_youngest(&self, exit: ExitInfo) -> Option<u32> {
        let mut w = self.lock();
        let (pid, _) = w.alive.pop()?;
        let _ = w.exits.send(Reaped { pid, exit });
        Some(pid)
    }

    /// Process `pid` exits `after` from now, like this, if it is still alive then.
    fn exit_later(&self, pid: u32, after: Duration, exit: ExitInfo) {
        let world = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let mut w = world.lock();
            if let Some(i) = w.alive.iter().position(|(p, _)| *p == pid) {
                w.alive.remove(i);
                let _ = w.exits.send(Reaped { pid, exit });
            }
        });
    }
}

/// A [`Launcher`] that spawns nothing. A "process" does what its command
/// says:
///
/// - `missing`: cannot be spawned (a permanent error, as for a program not on
///   `PATH`);
/// - `run:MS`: runs for MS milliseconds, then exits with code 0;
/// - `oom:MS`: runs for MS milliseconds, then is killed by "the OOM killer"
///   (SIGKILL, and [`Launcher::oom_killed`] says so);
/// - anything else: runs until it gets a signal.
///
/// On a signal a process exits as killed by it, `term_delay` later (at once
/// for SIGKILL); its group is alive exactly while it is. Run it under tokio's
/// paused clock, so that the delays cost no time.
#[derive(Debug)]
pub struct FakeLauncher {
    world: FakeWorld,
    term_delay: Duration,
}

impl FakeLauncher {
    /// A launcher whose processes exit at once on any signal, the world to
    /// watch it by, and the channel its exits arrive on (for
    /// [`Supervisor::with_launcher`]). Must be called inside a tokio runtime.
    pub fn new() -> (FakeLauncher, FakeWorld, mpsc::UnboundedReceiver<Reaped>) {
        let (exits, rx) = mpsc::unbounded_channel();
        let world = FakeWorld(Arc::new(Mutex::new(World {
            started: Instant::now(),
            next_pid: 0,
            spawns: Vec::new(),
            kills: Vec::new(),
            alive: Vec::new(),
            oom: Vec::new(),
            exits,
        })));
        let launcher = FakeLauncher {
            world: world.clone(),
            term_delay: Duration::ZERO,
        };
        (launcher, world, rx)
    }

    /// Its processes take `delay` to exit after a signal other than SIGKILL
    /// (a long one: they ignore the stop signal in practice).
    pub fn term_delay(mut self, delay: Duration) -> Self {
        self.term_delay = delay;
        self
    }

    /// A [`Supervisor`] driven by this launcher, with default options; the
    /// driver's task ends with the last handle.
    pub fn supervisor(self, exits: mpsc::UnboundedReceiver<Reaped>) -> Supervisor {
        Supervisor::with_launcher(Options::default(), self, exits).0
    }
}

impl Launcher for FakeLauncher {
    fn spawn(&mut self, spec: &ProcessSpec) -> Result<Spawned, SpawnError> {
        let cmd = spec.command.first().map(String::as_str).unwrap_or_default();
        if cmd == "missing" {
            return Err(SpawnError {
                message: "command \"missing\" not found on PATH".into(),
                permanent: true,
            });
        }
        let pid = {
            let mut w = self.world.lock();
            w.next_pid += 1;
            let pid = 1000 + w.next_pid;
            let at = Instant::now();
            w.spawns.push(FakeSpawn {
                at,
                name: spec.name.clone(),
                pid,
            });
            w.alive.push((pid, spec.name.clone()));
            pid
        };
        if let Some(ms) = cmd.strip_prefix("oom:") {
            let ms = ms.parse().unwrap_or(0);
            self.world.lock().oom.push(pid);
            self.world.exit_later(
                pid,
                Duration::from_millis(ms),
                ExitInfo::Signal(Signal::KILL),
            );
        }
        if let Some(ms) = cmd.strip_prefix("run:") {
            let ms = ms.parse().unwrap_or(0);
            self.world
                .exit_later(pid, Duration::from_millis(ms), ExitInfo::Code(0));
        }
        Ok(Spawned::without_output(pid))
    }

    fn kill(&mut self, target: KillTarget, sig: Signal) -> std::io::Result<()> {
        let pid = match target {
            KillTarget::Process(p) | KillTarget::Group(p) => p,
        };
        {
            let mut w = self.world.lock();
            let name = w
                .alive
                .iter()
                .find(|(p, _)| *p == pid)
                .map(|(_, n)| n.clone());
            w.kills.push(FakeKill {
                at: Instant::now(),
                target,
                sig,
                name,
            });
        }
        let delay = if sig == Signal::KILL {
            Duration::ZERO
        } else {
            self.term_delay
        };
        self.world.exit_later(pid, delay, ExitInfo::Signal(sig));
        Ok(())
    }

    fn group_alive(&mut self, pgid: u32) -> bool {
        self.world.lock().alive.iter().any(|(p, _)| *p == pgid)
    }

    fn oom_killed(&mut self, pgid: u32) -> bool {
        let mut w = self.world.lock();
        let found = w.oom.iter().position(|p| *p == pgid);
        found.map(|i| w.oom.swap_remove(i)).is_some()
    }
}

// ---- the simulator ----------------------------------------------------------

/// How a [`Sim`] process reacts to signals (Twisted's DummyProcess by
/// default: TERM exits after 1 s with status 0, KILL exits at once).
#[derive(Debug, Clone, Copy)]
pub struct Behaviour {
    /// Delay before exiting on the stop signal; `None` ignores it.
    pub term_delay: Option<Duration>,
    /// Members of its group that outlive the leader until KILLed.
    pub lingering_group: bool,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            term_delay: Some(Duration::from_secs(1)),
            lingering_group: false,
        }
    }
}

/// A process of a [`Sim`], by pid.
#[derive(Debug)]
pub struct FakeProc {
    /// Whose.
    pub name: Name,
    /// The leader has not exited.
    pub alive: bool,
    /// Its process group has members.
    pub group_alive: bool,
    /// How it reacts to signals.
    pub behaviour: Behaviour,
}

/// A spawn a [`Sim`] carried out.
#[derive(Debug, Clone)]
pub struct SpawnRecord {
    /// When.
    pub at: Mono,
    /// The pid it got.
    pub pid: u32,
    /// The spec it was spawned from.
    pub spec: ProcessSpec,
}

/// A deterministic world around a [`Registry`]: it executes the registry's
/// effects at once (spawns get fresh pids, signals schedule exits as the
/// process's [`Behaviour`] says, timers wait for [`Sim::advance`]) and records
/// what happened. Time is a number that moves only when the test moves it.
///
/// Helpers that name a process panic when it does not exist: they are for
/// tests.
pub struct Sim {
    /// The registry under test.
    pub registry: Registry,
    /// The simulated clock.
    pub now: Mono,
    timers: BTreeMap<(Mono, u64), (Name, TimerId)>,
    timer_index: HashMap<(Name, TimerId), (Mono, u64)>,
    exits: BTreeMap<(Mono, u64), (u32, ExitInfo)>,
    seq: u64,
    next_pid: u32,
    /// Every process spawned, by pid.
    pub procs: HashMap<u32, FakeProc>,
    /// Every spawn, in order.
    pub spawns: Vec<SpawnRecord>,
    /// Every event published, with when.
    pub events: Vec<(Mono, Event)>,
    /// Every signal sent: when, to whom, which.
    pub kills: Vec<(Mono, KillTarget, Signal)>,
    /// The results of the batches that are done.
    pub done: HashMap<BatchId, Vec<ActionResult>>,
    next_batch: BatchId,
    /// How each process reacts to signals (the default when not set).
    pub behaviour: HashMap<Name, Behaviour>,
    /// Spawns of these processes fail with this error.
    pub spawn_errors: HashMap<Name, SpawnError>,
    /// Checks the registry asked to run, not answered yet: (name, kind, run).
    pub probes: Vec<(Name, ProbeKind, u64)>,
    /// Gentle stops begun (`stop.command` or `stop.stdin`): when, whose, the pid.
    pub gentle: Vec<(Mono, Name, u32)>,
    /// `stop.command`s the registry asked to kill: when, whose.
    pub ended_stop_commands: Vec<(Mono, Name)>,
}

/// `s` as a name; panics on an invalid one (a test's own literal).
fn name(s: &str) -> Name {
    match Name::new(s) {
        Ok(n) => n,
        Err(e) => panic!("{s:?} is not a valid name: {e}"),
    }
}

impl Default for Sim {
    fn default() -> Self {
        Self::new()
    }
}

impl Sim {
    /// An empty registry at time zero.
    pub fn new() -> Self {
        Sim {
            registry: Registry::new(),
            now: Mono::ZERO,
            timers: BTreeMap::new(),
            timer_index: HashMap::new(),
            exits: BTreeMap::new(),
            seq: 0,
            next_pid: 100,
            procs: HashMap::new(),
            spawns: Vec::new(),
            events: Vec::new(),
            kills: Vec::new(),
            done: HashMap::new(),
            next_batch: 0,
            behaviour: HashMap::new(),
            spawn_errors: HashMap::new(),
            probes: Vec::new(),
            gentle: Vec::new(),
            ended_stop_commands: Vec::new(),
        }
    }

    /// Registers a process (and starts it if the service runs and it autostarts).
    pub fn add(&mut self, spec: ProcessSpec) -> Result<(), crate::Error> {
        let fx = self.registry.add(self.now, spec)?;
        self.run(fx);
        Ok(())
    }

    /// Starts every autostart process; returns the batch.
    pub fn start_service(&mut self) -> BatchId {
        let b = self.batch();
        let fx = self.registry.start_service(self.now, b);
        self.run(fx);
        b
    }

    /// Stops everything for good; returns the batch.
    pub fn shutdown(&mut self) -> BatchId {
        let b = self.batch();
        let fx = self.registry.shutdown(self.now, b);
        self.run(fx);
        b
    }

    /// Applies `op` to these processes; returns the batch ([`Sim::results`]).
    pub fn request(&mut self, op: Op, names: &[&str]) -> BatchId {
        let b = self.batch();
        let fx = self
            .registry
            .request(self.now, b, op, names.iter().map(|s| name(s)).collect());
        self.run(fx);
        b
    }

    /// The results of a finished batch, as (name, Ok(outcome) or Err(text)).
    pub fn results(&self, b: BatchId) -> Option<Vec<(String, Result<Outcome, String>)>> {
        self.done.get(&b).map(|v| {
            v.iter()
                .map(|r| {
                    (
                        r.name.to_string(),
                        r.result.clone().map_err(|e| e.to_string()),
                    )
                })
                .collect()
        })
    }

    fn batch(&mut self) -> BatchId {
        self.next_batch += 1;
        self.next_batch
    }

    fn seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// The live pid of `name`.
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.registry.get(name).and_then(|p| p.state().pid())
    }

    /// The state of `name` (`stopped` when there is no such process).
    pub fn state(&self, name: &str) -> StateName {
        self.registry
            .get(name)
            .map(|p| p.state().name())
            .unwrap_or(StateName::Stopped)
    }

    /// The error `name` last reported; panics if there is no such process.
    pub fn error(&self, name: &str) -> Option<&str> {
        match self.registry.get(name) {
            Some(p) => p.error(),
            None => panic!("error: no process {name:?}"),
        }
    }

    /// How often `name` was spawned.
    pub fn spawn_count(&self, name: &str) -> usize {
        self.spawns
            .iter()
            .filter(|s| s.spec.name.as_str() == name)
            .count()
    }

    /// When `name` was last spawned.
    pub fn last_spawn_at(&self, name: &str) -> Option<Mono> {
        self.spawns
            .iter()
            .rev()
            .find(|s| s.spec.name.as_str() == name)
            .map(|s| s.at)
    }

    /// When each spawn of `name` happened, in milliseconds.
    pub fn spawns_at(&self, name: &str) -> Vec<u64> {
        self.spawns
            .iter()
            .filter(|s| s.spec.name.as_str() == name)
            .map(|s| u64::try_from(s.at.since(Mono::ZERO).as_millis()).unwrap_or(u64::MAX))
            .collect()
    }

    /// How many leaders of `name` are alive (more than one is a bug).
    pub fn live_pids_of(&self, name: &str) -> usize {
        self.procs
            .values()
            .filter(|p| p.name.as_str() == name && p.alive)
            .count()
    }

    /// The delays of the restarts scheduled for `name`, in milliseconds.
    pub fn restart_delays(&self, name: &str) -> Vec<u64> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::RestartScheduled { name: nm, delay_ms } if nm.as_str() == name => {
                    Some(*delay_ms)
                }
                _ => None,
            })
            .collect()
    }

    /// The process exits by itself now (Twisted's `processEnded`); panics
    /// when it has no pid.
    pub fn crash(&mut self, name: &str, exit: ExitInfo) {
        let Some(pid) = self.pid(name) else {
            panic!("crash: {name:?} has no pid");
        };
        self.exit_now(pid, exit);
    }

    fn exit_now(&mut self, pid: u32, exit: ExitInfo) {
        let group_alive = match self.procs.get_mut(&pid) {
            Some(p) if p.alive => {
                p.alive = false;
                p.group_alive = p.group_alive && p.behaviour.lingering_group;
                p.group_alive
            }
            _ => return,
        };
        let fx = self.registry.exited(self.now, pid, exit, group_alive);
        self.run(fx);
    }

    /// Answers every pending check of `name` of this kind; returns how many.
    pub fn answer(&mut self, name: &str, kind: ProbeKind, ok: bool) -> usize {
        // Checks due now (initial_delay 0) are asked for when their timer fires.
        self.advance(Duration::ZERO);
        let mine: Vec<_> = self
            .probes
            .iter()
            .filter(|p| p.0.as_str() == name && p.1 == kind)
            .cloned()
            .collect();
        self.probes
            .retain(|p| !(p.0.as_str() == name && p.1 == kind));
        for (n, k, run) in &mine {
            let fx = self.registry.probe_result(
                self.now,
                n,
                *k,
                *run,
                ok,
                if ok { "ok".into() } else { "refused".into() },
            );
            self.run(fx);
        }
        mine.len()
    }

    /// `name` sends this datagram on its notify socket (`b"READY=1"`).
    pub fn notify(&mut self, name: &str, datagram: &[u8]) {
        let fx = self.registry.notify(
            self.now,
            &self::name(name),
            crate::model::notify_msg::parse(datagram),
        );
        self.run(fx);
    }

    /// Moves the clock forward by `d`, delivering every timer and exit due on the way.
    pub fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        loop {
            let t = self.timers.keys().next().map(|k| k.0);
            let e = self.exits.keys().next().map(|k| k.0);
            let next = match (t, e) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (None, None) => break,
            };
            if next > target {
                break;
            }
            self.now = next;
            if e == Some(next) {
                if let Some((_, (pid, exit))) = self.exits.pop_first() {
                    self.exit_now(pid, exit);
                }
                continue;
            }
            if let Some((key, (name, id))) = self.timers.pop_first() {
                let _ = key;
                self.timer_index.remove(&(name.clone(), id));
                let fx = self.registry.timer(self.now, &name, id);
                self.run(fx);
            }
        }
        self.now = target;
    }

    /// `name`'s `stop.command` ended.
    pub fn stop_command_done(&mut self, name: &str) {
        let fx = self.registry.stop_command_done(self.now, &self::name(name));
        self.run(fx);
    }

    /// Whether `name` has a timer of this kind armed.
    pub fn armed(&self, name: &str, kind: TimerKind) -> bool {
        self.timer_index
            .keys()
            .any(|(nm, id)| nm.as_str() == name && id.kind == kind)
    }

    fn run(&mut self, fx: Vec<registry::Effect>) {
        let mut queue: std::collections::VecDeque<registry::Effect> = fx.into();
        while let Some(effect) = queue.pop_front() {
            match effect {
                registry::Effect::Spawn(name) => {
                    let Some(spec) = self.registry.get(name.as_str()).map(|p| p.spec().clone())
                    else {
                        panic!("spawn of an unknown process {name}");
                    };
                    let result = match self.spawn_errors.get(&name) {
                        Some(e) => Err(e.clone()),
                        None => {
                            self.next_pid += 1;
                            let pid = self.next_pid;
                            let behaviour = self.behaviour.get(&name).copied().unwrap_or_default();
                            self.procs.insert(
                                pid,
                                FakeProc {
                                    name: name.clone(),
                                    alive: true,
                                    group_alive: true,
                                    behaviour,
                                },
                            );
                            self.spawns.push(SpawnRecord {
                                at: self.now,
                                pid,
                                spec,
                            });
                            Ok(pid)
                        }
                    };
                    let more = self.registry.spawned(self.now, &name, result);
                    queue.extend(more);
                }
                registry::Effect::Kill { target, sig, .. } => {
                    self.kills.push((self.now, target, sig));
                    let pid = match target {
                        KillTarget::Process(p) | KillTarget::Group(p) => p,
                    };
                    let Some(p) = self.procs.get_mut(&pid) else {
                        continue;
                    };
                    if sig == Signal::KILL {
                        if matches!(target, KillTarget::Group(_)) {
                            p.group_alive = false;
                        }
                        if p.alive {
                            let s = self.seq();
                            self.exits
                                .insert((self.now, s), (pid, ExitInfo::Signal(Signal::KILL)));
                        } else if matches!(target, KillTarget::Group(_)) {
                            // Only lingering members were left: the group empties.
                            let name = p.name.clone();
                            let fx = self.registry.group_empty(self.now, &name);
                            queue.extend(fx);
                        }
                    } else if p.alive
                        && let Some(d) = p.behaviour.term_delay
                    {
                        let s = self.seq();
                        self.exits
                            .insert((self.now + d, s), (pid, ExitInfo::Code(0)));
                    }
                }
                registry::Effect::ArmTimer { name, id, at } => {
                    let s = self.seq();
                    self.timers.insert((at, s), (name.clone(), id));
                    self.timer_index.insert((name, id), (at, s));
                }
                registry::Effect::CancelTimer { name, id } => {
                    if let Some(k) = self.timer_index.remove(&(name, id)) {
                        self.timers.remove(&k);
                    }
                }
                registry::Effect::Publish(ev) => self.events.push((self.now, ev)),
                registry::Effect::RunProbe { name, kind, run } => {
                    self.probes.push((name, kind, run))
                }
                registry::Effect::CheckGroup { name, pgid } => {
                    if !self.procs.get(&pgid).is_some_and(|p| p.group_alive) {
                        let fx = self.registry.group_empty(self.now, &name);
                        queue.extend(fx);
                    }
                }
                registry::Effect::BatchDone { batch, results } => {
                    self.done.insert(batch, results);
                }
                registry::Effect::GentleStop { name, pid } => {
                    self.gentle.push((self.now, name, pid))
                }
                registry::Effect::EndStopCommand(name) => {
                    self.ended_stop_commands.push((self.now, name))
                }
            }
        }
    }
}
