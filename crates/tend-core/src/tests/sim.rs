use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::machine::TimerId;
use crate::model::launch::{KillTarget, SpawnError};
use crate::model::name::Name;
use crate::model::signal::Signal;
use crate::model::spec::{Backoff, BackoffMode, ProcessSpec};
use crate::model::status::{Event, ExitInfo, StateName};
use crate::model::time::Mono;
use crate::registry::{self, BatchId, Op, Registry};
use crate::runtime::ActionResult;

/// How a fake process reacts to signals (Twisted's DummyProcess by default:
/// TERM exits after 1 s with status 0, KILL exits at once).
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

#[derive(Debug)]
pub struct FakeProc {
    pub name: Name,
    pub alive: bool,
    pub group_alive: bool,
    pub behaviour: Behaviour,
}

#[derive(Debug, Clone)]
pub struct SpawnRecord {
    pub at: Mono,
    pub pid: u32,
    pub spec: ProcessSpec,
}

/// A deterministic world around a [`Registry`].
pub struct Sim {
    pub registry: Registry,
    pub now: Mono,
    timers: BTreeMap<(Mono, u64), (Name, TimerId)>,
    timer_index: HashMap<(Name, TimerId), (Mono, u64)>,
    exits: BTreeMap<(Mono, u64), (u32, ExitInfo)>,
    seq: u64,
    next_pid: u32,
    pub procs: HashMap<u32, FakeProc>,
    pub spawns: Vec<SpawnRecord>,
    pub events: Vec<(Mono, Event)>,
    pub kills: Vec<(Mono, KillTarget, Signal)>,
    pub done: HashMap<BatchId, Vec<ActionResult>>,
    next_batch: BatchId,
    pub behaviour: HashMap<Name, Behaviour>,
    pub spawn_errors: HashMap<Name, SpawnError>,
    /// Checks the registry asked to run, not answered yet: (name, kind, run).
    pub probes: Vec<(Name, crate::model::status::ProbeKind, u64)>,
}

pub fn n(s: &str) -> Name {
    Name::new(s).expect("valid test name")
}

/// Twisted's test setUp: minRestartDelay 2, maxRestartDelay 10, threshold 10, killTime 5.
pub fn twisted_spec(name: &str) -> ProcessSpec {
    let mut s = ProcessSpec::new(n(name), vec!["arg1".into(), "arg2".into()]);
    s.backoff = Backoff {
        mode: BackoffMode::Doubling {
            initial: Duration::from_secs(2),
            max: Duration::from_secs(10),
        },
        min_uptime: Duration::from_secs(10),
        give_up_after: None,
        reset_on_ready: false,
    };
    s.stop.timeout = Duration::from_secs(5);
    s
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

impl Sim {
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
        }
    }

    pub fn add(&mut self, spec: ProcessSpec) -> Result<(), crate::Error> {
        let fx = self.registry.add(self.now, spec)?;
        self.run(fx);
        Ok(())
    }

    pub fn start_service(&mut self) -> BatchId {
        let b = self.batch();
        let fx = self.registry.start_service(self.now, b);
        self.run(fx);
        b
    }

    pub fn shutdown(&mut self) -> BatchId {
        let b = self.batch();
        let fx = self.registry.shutdown(self.now, b);
        self.run(fx);
        b
    }

    pub fn request(&mut self, op: Op, names: &[&str]) -> BatchId {
        let b = self.batch();
        let fx = self
            .registry
            .request(self.now, b, op, names.iter().map(|s| n(s)).collect());
        self.run(fx);
        b
    }

    /// The results of a finished batch, as (name, Ok(outcome) or Err(text)).
    pub fn results(&self, b: BatchId) -> Option<Vec<(String, Result<crate::Outcome, String>)>> {
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

    pub fn pid(&self, name: &str) -> Option<u32> {
        self.registry.get(name).and_then(|p| p.state().pid())
    }

    pub fn state(&self, name: &str) -> StateName {
        self.registry
            .get(name)
            .map(|p| p.state().name())
            .unwrap_or(StateName::Stopped)
    }

    /// The error `name` last reported; panics if there is no such process.
    pub fn error(&self, name: &str) -> Option<&str> {
        self.registry
            .get(name)
            .expect("error: unknown process")
            .error()
    }

    pub fn spawn_count(&self, name: &str) -> usize {
        self.spawns
            .iter()
            .filter(|s| s.spec.name.as_str() == name)
            .count()
    }

    pub fn last_spawn_at(&self, name: &str) -> Option<Mono> {
        self.spawns
            .iter()
            .rev()
            .find(|s| s.spec.name.as_str() == name)
            .map(|s| s.at)
    }

    pub fn live_pids_of(&self, name: &str) -> usize {
        self.procs
            .values()
            .filter(|p| p.name.as_str() == name && p.alive)
            .count()
    }

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

    /// The process exits by itself now (Twisted's `processEnded`).
    pub fn crash(&mut self, name: &str, exit: ExitInfo) {
        let pid = self.pid(name).expect("crash: process has no pid");
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

    /// Answers every pending check of `name` of this kind.
    pub fn answer(&mut self, name: &str, kind: crate::model::status::ProbeKind, ok: bool) -> usize {
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
            &n(name),
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

    pub fn armed(&self, name: &str, kind: crate::machine::TimerKind) -> bool {
        self.timer_index
            .keys()
            .any(|(nm, id)| nm.as_str() == name && id.kind == kind)
    }

    fn run(&mut self, fx: Vec<registry::Effect>) {
        let mut queue: std::collections::VecDeque<registry::Effect> = fx.into();
        while let Some(effect) = queue.pop_front() {
            match effect {
                registry::Effect::Spawn(name) => {
                    let spec = self
                        .registry
                        .get(name.as_str())
                        .expect("spawn of unknown")
                        .spec()
                        .clone();
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
            }
        }
    }
}
