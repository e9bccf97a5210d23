//! The one task that awaits: requests, reaped children and the next timer.
//!
//! It owns the [`Registry`] and a [`Launcher`], executes effects in order, and keeps
//! a timer wheel as a sorted map. When no timer is armed and nothing arrives,
//! it does not wake up: there is no tick.
//!
//! # Events are paced, not dropped
//!
//! One request can make tens of thousands of events at once (restarting ten
//! thousand processes), far more than the broadcast channel holds; sent
//! straight away, every subscriber would miss most of them. So an event goes
//! out only while the slowest subscriber has room for it; the rest wait in
//! an outbox, in order, and the driver goes on with its work, looking again
//! every millisecond (a timer that exists only while events wait) and between
//! inputs, so subscribers that keep reading get every event and none of them
//! holds up a restart. A subscriber that takes nothing for [`EVENT_STALL`]
//! and [`STALL_TURNS`] turns holds nobody up any longer: half a channel of
//! waiting events goes out past it at a time, and it lags.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;

use std::path::PathBuf;

use crate::launcher::KillTarget;
use crate::launcher::{Launcher, Reaped};
use crate::machine::{TimerId, TimerKind};
use crate::model::error::Error;
use crate::model::name::Name;
use crate::model::notify_msg::NotifyMsg;
use crate::model::outcome::ActionResult;
use crate::model::probe::{Check, ProbeOutcome, ProbeSpec};
use crate::model::resources::ExitReason;
use crate::model::signal::Signal;
use crate::model::spec::{LogTarget, ProcessSpec};
use crate::model::status::Event;
use crate::model::status::ProbeKind;
use crate::model::time::Mono;
use crate::registry::{self, BatchId, Op, Registry};
use crate::runtime::notify::NotifySocket;
use crate::runtime::probe::run_check;
use crate::runtime::{LogHub, Request};

/// A subscriber that takes no event for this long while the outbox waits for
/// it is left behind (it lags), so it cannot hold the others' events back.
pub(crate) const EVENT_STALL: std::time::Duration = std::time::Duration::from_millis(100);
/// ...and has had at least this many turns (yields of the driver) meanwhile.
pub(crate) const STALL_TURNS: u32 = 10;

/// At most this many timers fire in one turn of the driver, and after this
/// many reaps in a row the requests waiting are answered: in a crash storm of
/// 1,000 processes the reaps and the restarts they schedule never run out,
/// and a `status` queued behind them waited for all of them (600 ms).
pub(crate) const TURN_BATCH: usize = 64;

/// What the driver's own helper tasks report back.
enum Aux {
    /// A network check finished.
    Probe {
        name: Name,
        kind: ProbeKind,
        run: u64,
        outcome: ProbeOutcome,
    },
    /// An exec check ran past its timeout.
    ExecTimeout { pid: u32 },
    /// A datagram on a notify socket.
    Notify { name: Name, msg: NotifyMsg },
}

/// An exec check in flight: its pid is routed here by the reaper.
struct ExecProbe {
    name: Name,
    kind: ProbeKind,
    run: u64,
}

enum Reply {
    Results(oneshot::Sender<Vec<ActionResult>>),
    Unit(oneshot::Sender<Result<(), Error>>),
    Shutdown(Option<oneshot::Sender<()>>),
}

/// Owns every process and executes what the state machines decide.
pub(crate) struct Driver<L: Launcher> {
    registry: Registry,
    launcher: L,
    logs: Arc<LogHub>,
    events: broadcast::Sender<Event>,
    /// What the broadcast channel holds.
    event_capacity: usize,
    /// Events waiting for room in the channel, oldest first.
    outbox: VecDeque<Event>,
    /// Since when the outbox has waited without the slowest subscriber
    /// taking anything.
    blocked_since: Option<Instant>,
    /// Yields of the driver since `blocked_since`.
    blocked_turns: u32,
    origin: Instant,
    wall_origin: Timestamp,
    timers: BTreeSet<(Mono, Name, TimerId)>,
    timer_at: HashMap<(Name, TimerId), Mono>,
    replies: HashMap<BatchId, Reply>,
    next_batch: BatchId,
    exiting: bool,
    /// Answered once everything is stopped and every output pipe is drained.
    shutdown_waiters: Vec<oneshot::Sender<()>>,
    aux_tx: mpsc::UnboundedSender<Aux>,
    aux_rx: Option<mpsc::UnboundedReceiver<Aux>>,
    exec_probes: HashMap<u32, ExecProbe>,
    /// Running `stop.command`s: by pid, whose; by process, which pid.
    stop_commands: HashMap<u32, Name>,
    stop_command_of: HashMap<Name, u32>,
    /// Notify sockets by process, bound at its first spawn.
    notify: HashMap<Name, (PathBuf, tokio::task::JoinHandle<()>)>,
    runtime_dir: PathBuf,
    /// Processes whose last run the OOM killer ended.
    oom: std::collections::HashSet<Name>,
    /// Stop timeouts are over: every stop kills at once.
    hurry: bool,
}

impl<L: Launcher> Driver<L> {
    /// A driver with no processes.
    pub(crate) fn new(
        launcher: L,
        events: broadcast::Sender<Event>,
        event_capacity: usize,
        logs: Arc<LogHub>,
        runtime_dir: PathBuf,
    ) -> Self {
        let (aux_tx, aux_rx) = mpsc::unbounded_channel();
        Driver {
            registry: Registry::new(),
            launcher,
            logs,
            events,
            event_capacity: event_capacity.max(1),
            outbox: VecDeque::new(),
            blocked_since: None,
            blocked_turns: 0,
            origin: Instant::now(),
            wall_origin: Timestamp::now(),
            timers: BTreeSet::new(),
            timer_at: HashMap::new(),
            replies: HashMap::new(),
            next_batch: 0,
            exiting: false,
            shutdown_waiters: Vec::new(),
            aux_tx,
            aux_rx: Some(aux_rx),
            exec_probes: HashMap::new(),
            stop_commands: HashMap::new(),
            stop_command_of: HashMap::new(),
            notify: HashMap::new(),
            runtime_dir,
            oom: std::collections::HashSet::new(),
            hurry: false,
        }
    }

    fn now(&self) -> Mono {
        Mono(self.origin.elapsed())
    }

    fn wall(&self, m: Mono) -> Timestamp {
        let d = SignedDuration::try_from(m.0).unwrap_or(SignedDuration::MAX);
        self.wall_origin.checked_add(d).unwrap_or(self.wall_origin)
    }

    /// Runs until a shutdown completes or every handle is dropped (which also
    /// stops every child).
    pub(crate) async fn run(
        mut self,
        mut requests: mpsc::Receiver<Request>,
        mut exits: mpsc::UnboundedReceiver<Reaped>,
    ) {
        let mut requests_open = true;
        let mut work_in_a_row = 0;
        let Some(mut aux) = self.aux_rx.take() else {
            return;
        };
        loop {
            let mut waiting = self.flush_events(false);
            if waiting {
                // Let the subscribers run (on a current-thread runtime they
                // cannot while the driver works), and count it: only a
                // subscriber that had turns and took nothing is stalled.
                tokio::task::yield_now().await;
                self.blocked_turns = self.blocked_turns.saturating_add(1);
                waiting = self.flush_events(false);
            }
            if self.exiting && !self.registry.any_up() && self.replies.is_empty() {
                break;
            }
            let deadline = self.timers.first().map(|(at, _, _)| self.origin + at.0);
            // How much of a run of work that could go on and on this turn
            // was: a reap is one, a batch of timers that left more due is a
            // whole batch; anything else ends the run.
            let work = tokio::select! {
                biased;
                Some(r) = exits.recv() => {
                    self.on_reaped(r);
                    1
                }
                Some(a) = aux.recv() => {
                    self.on_aux(a);
                    0
                }
                req = requests.recv(), if requests_open => {
                    match req {
                        Some(req) => self.on_request(req),
                        None => {
                            // Every handle is gone: nobody can stop the children
                            // any more, so stop them now and end.
                            requests_open = false;
                            if !self.exiting {
                                self.exiting = true;
                                self.begin_shutdown(None);
                            }
                        }
                    }
                    0
                }
                () = sleep_until(deadline), if deadline.is_some() => {
                    if self.fire_timers() { TURN_BATCH } else { 0 }
                }
                // Subscribers run meanwhile; then the outbox is looked at again.
                () = tokio::time::sleep(std::time::Duration::from_millis(1)), if waiting => 0,
                else => break,
            };
            if work == 0 {
                work_in_a_row = 0;
                continue;
            }
            work_in_a_row += work;
            if work_in_a_row >= TURN_BATCH {
                // Reaps and due timers come first, but must not starve
                // requests: the other tasks (the listeners, on this same
                // thread) get a turn to pass theirs on, and what waits then
                // is answered before the next reap or timer.
                work_in_a_row = 0;
                tokio::task::yield_now().await;
                for _ in 0..TURN_BATCH {
                    match requests.try_recv() {
                        Ok(req) => self.on_request(req),
                        Err(_) => break,
                    }
                }
            }
        }
        self.flush_events(true);
        for (_, (path, task)) in self.notify.drain() {
            task.abort();
            let _ = std::fs::remove_file(path);
        }
        // The children are gone; read what they wrote to the end before
        // saying so, or their last lines would be lost when the program exits.
        self.logs.drained(std::time::Duration::from_secs(5)).await;
        for tx in self.shutdown_waiters.drain(..) {
            let _ = tx.send(());
        }
        tracing::debug!("supervisor driver finished");
    }

    fn begin_shutdown(&mut self, reply: Option<oneshot::Sender<()>>) {
        let batch = self.batch_id();
        self.replies.insert(batch, Reply::Shutdown(reply));
        let fx = self.registry.shutdown(self.now(), batch);
        self.execute(fx);
    }

    fn batch_id(&mut self) -> BatchId {
        self.next_batch += 1;
        self.next_batch
    }

    fn on_request(&mut self, req: Request) {
        let now = self.now();
        let batch = |this: &mut Self, op: Op, names: Vec<Name>, reply: Reply| {
            let id = this.batch_id();
            this.replies.insert(id, reply);
            let fx = this.registry.request(now, id, op, names);
            this.execute(fx);
        };
        match req {
            Request::Add(spec, reply) => {
                let name = spec.name.clone();
                let declared = spec.clone();
                match self.registry.add(now, spec) {
                    Ok(fx) => {
                        self.logs.declare(&declared);
                        tracing::debug!(process = %name, "added");
                        self.execute(fx);
                        let _ = reply.send(Ok(()));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Request::Remove(name, reply) => batch(self, Op::Remove, vec![name], Reply::Unit(reply)),
            Request::Start(names, reply) => batch(self, Op::Start, names, Reply::Results(reply)),
            Request::StartNoDeps(names, reply) => {
                batch(self, Op::StartNoDeps, names, Reply::Results(reply))
            }
            Request::Stop(names, reply) => batch(self, Op::Stop, names, Reply::Results(reply)),
            Request::Restart(names, reply) => {
                batch(self, Op::Restart, names, Reply::Results(reply))
            }
            Request::Signal(names, sig, reply) => {
                batch(self, Op::Signal(sig), names, Reply::Results(reply))
            }
            Request::Resolve(patterns, reply) => {
                let _ = reply.send(self.registry.resolve(&patterns));
            }
            Request::Status(reply) => {
                let _ = reply.send(self.status(now, false));
            }
            Request::StatusStats(reply) => {
                let _ = reply.send(self.status(now, true));
            }
            Request::Stats(names, reply) => {
                let _ = reply.send(self.stats_of(names));
            }
            Request::Hurry => self.hurry(),
            Request::StartAll(reply) => {
                if self.registry.is_shutting_down() {
                    let _ = reply.send(Vec::new());
                    return;
                }
                let id = self.batch_id();
                self.replies.insert(id, Reply::Results(reply));
                let fx = self.registry.start_service(now, id);
                self.execute(fx);
            }
            Request::Shutdown(reply) => {
                if self.exiting {
                    // Already under way: answer when it ends.
                    let id = self.batch_id();
                    self.replies.insert(id, Reply::Shutdown(Some(reply)));
                    let fx = self.registry.request(now, id, Op::Stop, Vec::new());
                    self.execute(fx);
                } else {
                    self.exiting = true;
                    self.begin_shutdown(Some(reply));
                }
            }
        }
    }

    fn status(&mut self, now: Mono, stats: bool) -> Vec<crate::model::status::ProcessStatus> {
        let mut st = self.registry.status(now, |m| self.wall(m));
        let counts = self.logs.counts(st.iter().map(|s| &s.name));
        for (s, (dropped, written)) in st.iter_mut().zip(counts) {
            s.log_dropped_bytes = dropped;
            s.log_bytes = written;
            if !self.oom.is_empty() && self.oom.contains(&s.name) {
                s.exit_reason = Some(ExitReason::OomKill);
            }
            if stats
                && s.state.is_up()
                && let Some(pid) = s.pid
            {
                s.stats = self.launcher.stats(pid);
            }
        }
        st
    }

    fn stats_of(&mut self, names: Vec<Name>) -> Vec<(Name, crate::model::resources::ProcessStats)> {
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let Some(pid) = self
                .registry
                .get(name.as_str())
                .and_then(|p| p.state().pid())
            else {
                continue;
            };
            if let Some(st) = self.launcher.stats(pid) {
                out.push((name, st));
            }
        }
        out
    }

    /// A second stop request during a shutdown: no more waiting for stop
    /// timeouts. Every armed kill timer fires now, and later ones at once.
    fn hurry(&mut self) {
        self.hurry = true;
        let due: Vec<(Mono, Name, TimerId)> = self
            .timers
            .iter()
            .filter(|(_, _, id)| id.kind == TimerKind::Kill)
            .cloned()
            .collect();
        let now = self.now();
        let mut fx = Vec::new();
        for (at, name, id) in due {
            self.timers.remove(&(at, name.clone(), id));
            self.timer_at.remove(&(name.clone(), id));
            fx.extend(self.registry.timer(now, &name, id));
        }
        self.execute(fx);
    }

    fn on_reaped(&mut self, r: Reaped) {
        let now = self.now();
        let mut fx = Vec::new();
        if let Some(p) = self.exec_probes.remove(&r.pid) {
            self.launcher.forget(r.pid);
            let outcome = ProbeOutcome::from_exit(&r.exit);
            fx.extend(self.registry.probe_result(
                now,
                &p.name,
                p.kind,
                p.run,
                outcome.ok,
                outcome.detail,
            ));
            self.execute(fx);
            return;
        }
        if let Some(name) = self.stop_commands.remove(&r.pid) {
            self.launcher.forget(r.pid);
            if self.stop_command_of.get(&name) == Some(&r.pid) {
                self.stop_command_of.remove(&name);
                tracing::debug!(process = %name, exit = %r.exit, "stop command ended");
                fx.extend(self.registry.stop_command_done(now, &name));
            }
            self.execute(fx);
            return;
        }
        if let Some(name) = self.registry.owner_of(r.pid) {
            self.logs.close_stdin(name);
            // Told before the exit itself, which the machine publishes.
            let name = name.clone();
            if self.launcher.oom_killed(r.pid) {
                self.oom.insert(name.clone());
                let _ = self.events.send(Event::OomKilled {
                    name: name.clone(),
                    pid: r.pid,
                });
            } else {
                self.oom.remove(&name);
            }
            // What the run used, read from its cgroup (a flush of the
            // kernel's per-CPU counters each): not while shutting down,
            // when these reads were most of the daemon's work of stopping
            // 10,000 processes and every subscriber is about to be let go.
            if !self.exiting
                && let Some(stats) = self.launcher.stats(r.pid)
            {
                let _ = self.events.send(Event::Usage {
                    name: name.clone(),
                    pid: r.pid,
                    stats,
                });
            }
            // Before anything restarts it: its pipes are read to the end and
            // closed now, so a crash loop cannot pile them up.
            self.logs.exited(&name);
            let alive = self.launcher.group_alive(r.pid);
            fx.extend(self.registry.exited(now, r.pid, r.exit, alive));
            if self.exiting && !alive {
                // It will not run again: its cgroup goes now, beside the
                // others' stopping, not one by one after the last.
                self.launcher.retire(&name);
            }
        } else {
            tracing::trace!(pid = r.pid, exit = %r.exit, "reaped an orphan");
        }
        self.launcher.forget(r.pid);
        // Any reap may have emptied a group we are waiting on.
        for (name, pgid) in self.registry.draining() {
            if !self.launcher.group_alive(pgid) {
                fx.extend(self.registry.group_empty(now, &name));
            }
        }
        self.execute(fx);
    }

    fn on_aux(&mut self, a: Aux) {
        let now = self.now();
        let fx = match a {
            Aux::Probe {
                name,
                kind,
                run,
                outcome,
            } => self
                .registry
                .probe_result(now, &name, kind, run, outcome.ok, outcome.detail),
            Aux::ExecTimeout { pid } => {
                let Some(p) = self.exec_probes.remove(&pid) else {
                    return;
                };
                // Still running past its timeout: kill it; its exit is then
                // reaped as an unknown pid and ignored.
                let _ = self.launcher.kill(KillTarget::Group(pid), Signal::KILL);
                let spec = self
                    .registry
                    .get(p.name.as_str())
                    .and_then(|x| probe_spec(x.spec(), p.kind));
                let timeout = spec.map(|s| s.timeout).unwrap_or_default();
                let outcome = ProbeOutcome::timed_out(timeout);
                self.registry
                    .probe_result(now, &p.name, p.kind, p.run, outcome.ok, outcome.detail)
            }
            Aux::Notify { name, msg } => self.registry.notify(now, &name, msg),
        };
        self.execute(fx);
    }

    /// Starts a check: network checks in a task, exec checks as a child of
    /// ours (the single reaper reports its exit).
    fn run_probe(&mut self, name: Name, kind: ProbeKind, run: u64) {
        let Some(spec) = self
            .registry
            .get(name.as_str())
            .and_then(|p| probe_spec(p.spec(), kind))
            .cloned()
        else {
            return;
        };
        match &spec.check {
            Check::Exec(argv) => {
                let mut ps = ProcessSpec::new(name.clone(), argv.clone());
                if let Some(owner) = self.registry.get(name.as_str()) {
                    let o = owner.spec();
                    ps.cwd = o.cwd.clone();
                    ps.env = o.env.clone();
                    ps.clear_env = o.clear_env;
                    ps.user = o.user.clone();
                    ps.unix_group = o.unix_group.clone();
                }
                ps.logs.stdout = LogTarget::Null;
                ps.logs.stderr = LogTarget::Null;
                match self.launcher.spawn_check(&ps) {
                    Ok(spawned) => {
                        // The check's output is not kept: its pipes close here.
                        drop((spawned.stdout, spawned.stderr, spawned.stdin));
                        self.exec_probes
                            .insert(spawned.pid, ExecProbe { name, kind, run });
                        let (tx, pid, t) = (self.aux_tx.clone(), spawned.pid, spec.timeout);
                        tokio::spawn(async move {
                            tokio::time::sleep(t).await;
                            let _ = tx.send(Aux::ExecTimeout { pid });
                        });
                    }
                    Err(e) => {
                        let fx = self.registry.probe_result(
                            self.now(),
                            &name,
                            kind,
                            run,
                            false,
                            e.message,
                        );
                        self.execute(fx);
                    }
                }
            }
            check => {
                let (tx, check, timeout) = (self.aux_tx.clone(), check.clone(), spec.timeout);
                tokio::spawn(async move {
                    let outcome = run_check(&check, timeout).await;
                    let _ = tx.send(Aux::Probe {
                        name,
                        kind,
                        run,
                        outcome,
                    });
                });
            }
        }
    }

    /// Begins a gentle stop: writes `stop.stdin`, or starts `stop.command`
    /// as a child of ours (the single reaper reports its end) with
    /// `MAINPID`, the process's cwd, environment and user.
    fn gentle_stop(&mut self, name: Name, pid: u32) -> Vec<registry::Effect> {
        let Some(owner) = self.registry.get(name.as_str()).map(|p| p.spec().clone()) else {
            return Vec::new();
        };
        if let Some(text) = &owner.stop.stdin {
            if let Err(e) = self.logs.send_stdin(&name, text.as_bytes().to_vec()) {
                tracing::warn!(process = %name, error = %e, "could not write the stop message to stdin");
            }
            return Vec::new();
        }
        let Some(argv) = owner.stop.command.clone() else {
            return Vec::new();
        };
        let pid_text = pid.to_string();
        let argv = argv.iter().map(|w| with_mainpid(w, &pid_text)).collect();
        let mut ps = ProcessSpec::new(name.clone(), argv);
        ps.cwd = owner.cwd.clone();
        ps.env = owner.env.clone();
        ps.env.insert("MAINPID".to_string(), pid.to_string());
        ps.clear_env = owner.clear_env;
        ps.user = owner.user.clone();
        ps.unix_group = owner.unix_group.clone();
        ps.logs.stdout = LogTarget::Null;
        ps.logs.stderr = LogTarget::Null;
        match self.launcher.spawn_check(&ps) {
            Ok(spawned) => {
                drop((spawned.stdout, spawned.stderr, spawned.stdin));
                tracing::debug!(process = %name, pid = spawned.pid, "stop command started");
                if let Some(old) = self.stop_command_of.insert(name.clone(), spawned.pid) {
                    let _ = self.launcher.kill(KillTarget::Group(old), Signal::KILL);
                }
                self.stop_commands.insert(spawned.pid, name);
                Vec::new()
            }
            Err(e) => {
                tracing::warn!(process = %name, error = %e.message, "could not start the stop command; sending the stop signal");
                self.registry.stop_command_done(self.now(), &name)
            }
        }
    }

    /// Fires the timers that are due, [`TURN_BATCH`] at most: the rest fire
    /// in the next turns, after the requests that came meanwhile (1,000
    /// restarts due at once are 1,000 spawns). Returns whether some were
    /// left due.
    fn fire_timers(&mut self) -> bool {
        let now = self.now();
        let mut fx = Vec::new();
        let mut fired = 0;
        while fired < TURN_BATCH && self.timers.first().is_some_and(|(at, _, _)| *at <= now) {
            fired += 1;
            let Some((_, name, id)) = self.timers.pop_first() else {
                break;
            };
            self.timer_at.remove(&(name.clone(), id));
            fx.extend(self.registry.timer(now, &name, id));
        }
        self.execute(fx);
        fired == TURN_BATCH
    }

    /// Executes effects in order; a spawn's outcome is fed back at once and its
    /// follow-up effects run before the rest.
    fn execute(&mut self, fx: Vec<registry::Effect>) {
        let mut queue: VecDeque<registry::Effect> = fx.into();
        while let Some(effect) = queue.pop_front() {
            match effect {
                registry::Effect::Spawn(name) => {
                    let Some(spec) = self.registry.get(name.as_str()).map(|p| p.spec()) else {
                        continue;
                    };
                    let result = if let Some(why) = &spec.spawn_error {
                        // Known to fail since the config was read.
                        Err(crate::model::launch::SpawnError {
                            message: why.clone(),
                            permanent: true,
                        })
                    } else {
                        let to_spawn = with_notify_env(
                            &mut self.notify,
                            &self.runtime_dir,
                            &self.aux_tx,
                            spec,
                        );
                        self.launcher.spawn(&to_spawn).map(|s| {
                            self.logs.attach(&name, &spec.logs, s.stdout, s.stderr);
                            self.logs.attach_stdin(&name, s.stdin);
                            s.pid
                        })
                    };
                    let now = self.now();
                    let more = self.registry.spawned(now, &name, result);
                    // After what is already queued: the state change that
                    // came with the spawn request is published before the
                    // ones that follow from the spawn.
                    queue.extend(more);
                }
                registry::Effect::Kill { name, target, sig } => {
                    if let Err(e) = self.launcher.kill(target, sig) {
                        tracing::warn!(process = %name, ?target, signal = %sig, error = %e, "could not send signal");
                    }
                }
                registry::Effect::RunProbe { name, kind, run } => self.run_probe(name, kind, run),
                registry::Effect::GentleStop { name, pid } => {
                    let more = self.gentle_stop(name, pid);
                    queue.extend(more);
                }
                registry::Effect::EndStopCommand(name) => {
                    // Its exit is still reaped, and then ignored.
                    if let Some(pid) = self.stop_command_of.remove(&name) {
                        tracing::debug!(process = %name, pid, "killing the stop command");
                        let _ = self.launcher.kill(KillTarget::Group(pid), Signal::KILL);
                    }
                }
                registry::Effect::CheckGroup { name, pgid } => {
                    if !self.launcher.group_alive(pgid) {
                        let more = self.registry.group_empty(self.now(), &name);
                        queue.extend(more);
                    }
                }
                registry::Effect::ArmTimer { name, id, at } => {
                    let at = if self.hurry && id.kind == TimerKind::Kill {
                        at.min(self.now())
                    } else {
                        at
                    };
                    self.timers.insert((at, name.clone(), id));
                    self.timer_at.insert((name, id), at);
                }
                registry::Effect::CancelTimer { name, id } => {
                    if let Some(at) = self.timer_at.remove(&(name.clone(), id)) {
                        self.timers.remove(&(at, name, id));
                    }
                }
                registry::Effect::Publish(ev) => {
                    log_event(&ev);
                    if let Event::Removed { name } = &ev {
                        self.logs.forget(name);
                        self.launcher.removed(name);
                        self.oom.remove(name);
                        if let Some((path, task)) = self.notify.remove(name) {
                            task.abort();
                            let _ = std::fs::remove_file(path);
                        }
                    }
                    self.outbox.push_back(ev);
                    self.flush_events(false);
                }
                registry::Effect::BatchDone { batch, results } => match self.replies.remove(&batch)
                {
                    Some(Reply::Results(tx)) => {
                        let _ = tx.send(results);
                    }
                    Some(Reply::Unit(tx)) => {
                        let r = results
                            .into_iter()
                            .next()
                            .map_or(Ok(()), |r| r.result.map(|_| ()));
                        let _ = tx.send(r);
                    }
                    Some(Reply::Shutdown(Some(tx))) => self.shutdown_waiters.push(tx),
                    Some(Reply::Shutdown(None)) | None => {}
                },
            }
        }
    }
}

impl<L: Launcher> Driver<L> {
    /// Sends waiting events while the slowest subscriber has room for them
    /// (all of them with `force`). Returns whether events still wait.
    ///
    /// A subscriber that has taken nothing for [`EVENT_STALL`] and
    /// [`STALL_TURNS`] yields of the driver is stalled: half a channel of
    /// events goes out past it (it lags; the others, reading near the head,
    /// do not), and the clock starts again. Time alone is not enough: while
    /// the driver works through a long request (a restart of 10,000) the
    /// subscribers of a current-thread runtime cannot run at all, and on a
    /// loaded machine the runtime's thread may wait 100 ms for a CPU; flushing
    /// the whole outbox then made every subscriber lag. Bounding what one stall
    /// lets through keeps subscribers that read from ever being overrun by
    /// one that does not.
    fn flush_events(&mut self, force: bool) -> bool {
        let mut forced = 0;
        while !self.outbox.is_empty() {
            if self.events.receiver_count() == 0 {
                // Nobody to wait for (a send would fail anyway).
                self.outbox.clear();
                break;
            }
            if self.events.len() >= self.event_capacity && !force {
                let now = Instant::now();
                let since = *self.blocked_since.get_or_insert(now);
                let stalled =
                    now.duration_since(since) >= EVENT_STALL && self.blocked_turns >= STALL_TURNS;
                if !stalled || forced >= (self.event_capacity / 2).max(1) {
                    if forced > 0 {
                        // What one stall lets through has gone: wait again.
                        self.blocked_since = Some(now);
                        self.blocked_turns = 0;
                    }
                    return true;
                }
                // Stalled: whoever does not read lags by this event.
                forced += 1;
            } else {
                self.blocked_since = None;
                self.blocked_turns = 0;
            }
            if let Some(ev) = self.outbox.pop_front() {
                let _ = self.events.send(ev);
            }
        }
        self.blocked_since = None;
        self.blocked_turns = 0;
        false
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The library logs at debug level only: the program embedding it decides
/// what its users see (the daemon logs every event itself, at info).
fn log_event(ev: &Event) {
    tracing::debug!(event = ?ev, "supervisor event");
}

fn probe_spec(spec: &ProcessSpec, kind: ProbeKind) -> Option<&ProbeSpec> {
    match kind {
        ProbeKind::Ready => spec.ready.as_ref(),
        ProbeKind::Health => spec.health.as_ref(),
    }
}

/// `word` with `$MAINPID` and `${MAINPID}` replaced by `pid`, as systemd's
/// `ExecStop=` does, so that a stop command needs no shell to name the pid.
fn with_mainpid(word: &str, pid: &str) -> String {
    let word = word.replace("${MAINPID}", pid);
    let mut out = String::with_capacity(word.len());
    let mut rest = word.as_str();
    while let Some(i) = rest.find("$MAINPID") {
        let after = &rest[i + "$MAINPID".len()..];
        out.push_str(&rest[..i]);
        if after
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            out.push_str("$MAINPID");
        } else {
            out.push_str(pid);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// The spec to spawn: with `notify`, the notify socket (bound at the
/// first spawn) and the watchdog interval go into its environment.
fn with_notify_env<'a>(
    notify: &mut HashMap<Name, (PathBuf, tokio::task::JoinHandle<()>)>,
    runtime_dir: &std::path::Path,
    aux_tx: &mpsc::UnboundedSender<Aux>,
    spec: &'a ProcessSpec,
) -> std::borrow::Cow<'a, ProcessSpec> {
    if !spec.notify {
        return std::borrow::Cow::Borrowed(spec);
    }
    if !notify.contains_key(&spec.name) {
        let dir = runtime_dir.join("notify");
        let path = dir.join(format!("{}.sock", spec.name));
        let bound = std::fs::create_dir_all(&dir).and_then(|()| NotifySocket::bind(&path));
        match bound {
            Ok(sock) => {
                let (tx, name) = (aux_tx.clone(), spec.name.clone());
                let task = tokio::spawn(async move {
                    while let Ok(msg) = sock.recv().await {
                        if tx
                            .send(Aux::Notify {
                                name: name.clone(),
                                msg,
                            })
                            .is_err()
                        {
                            return;
                        }
                    }
                });
                notify.insert(spec.name.clone(), (path, task));
            }
            Err(e) => {
                tracing::error!(process = %spec.name, path = %path.display(), error = %e, "cannot bind the notify socket");
                return std::borrow::Cow::Borrowed(spec);
            }
        }
    }
    let mut s = spec.clone();
    if let Some((path, _)) = notify.get(&spec.name) {
        s.env
            .insert("NOTIFY_SOCKET".into(), path.display().to_string());
    }
    if let Some(w) = spec.watchdog {
        s.env
            .insert("WATCHDOG_USEC".into(), w.as_micros().to_string());
    }
    std::borrow::Cow::Owned(s)
}

#[cfg(test)]
mod mainpid_tests {
    #[test]
    fn mainpid_is_replaced_in_both_spellings_only() {
        let f = super::with_mainpid;
        assert_eq!(f("kill -QUIT $MAINPID", "42"), "kill -QUIT 42");
        assert_eq!(f("${MAINPID}/x $MAINPID.", "7"), "7/x 7.");
        assert_eq!(f("$MAINPIDS $HOME", "7"), "$MAINPIDS $HOME");
    }
}
