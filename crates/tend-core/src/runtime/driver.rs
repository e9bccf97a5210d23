//! The one task that awaits: requests, reaped children and the next timer.
//!
//! It owns the [`Core`] and a [`Launcher`], executes effects in order, and keeps
//! a timer wheel as a sorted map. When no timer is armed and nothing arrives,
//! it does not wake up: there is no tick.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;

use crate::core::{BatchId, Core, CoreEffect, Op};
use crate::error::Error;
use crate::launcher::{Launcher, Reaped};
use crate::machine::TimerId;
use crate::name::Name;
use crate::runtime::{ActionResult, LogHub, Request};
use crate::status::Event;
use crate::time::Mono;

enum Reply {
    Results(oneshot::Sender<Vec<ActionResult>>),
    Unit(oneshot::Sender<Result<(), Error>>),
    Shutdown(Option<oneshot::Sender<()>>),
}

/// Owns every process and executes what the state machines decide.
pub(crate) struct Driver<L: Launcher> {
    core: Core,
    launcher: L,
    logs: Arc<LogHub>,
    events: broadcast::Sender<Event>,
    origin: Instant,
    wall_origin: Timestamp,
    timers: BTreeMap<(Mono, Name, TimerId), ()>,
    timer_at: HashMap<(Name, TimerId), Mono>,
    replies: HashMap<BatchId, Reply>,
    next_batch: BatchId,
    exiting: bool,
    /// Answered once everything is stopped and every output pipe is drained.
    shutdown_waiters: Vec<oneshot::Sender<()>>,
}

impl<L: Launcher> Driver<L> {
    /// A driver with no processes.
    pub(crate) fn new(launcher: L, events: broadcast::Sender<Event>, logs: Arc<LogHub>) -> Self {
        Driver {
            core: Core::new(),
            launcher,
            logs,
            events,
            origin: Instant::now(),
            wall_origin: Timestamp::now(),
            timers: BTreeMap::new(),
            timer_at: HashMap::new(),
            replies: HashMap::new(),
            next_batch: 0,
            exiting: false,
            shutdown_waiters: Vec::new(),
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
        loop {
            if self.exiting && !self.core.any_up() && self.replies.is_empty() {
                break;
            }
            let deadline = self
                .timers
                .keys()
                .next()
                .map(|(at, _, _)| self.origin + at.0);
            tokio::select! {
                biased;
                Some(r) = exits.recv() => self.on_reaped(r),
                req = requests.recv(), if requests_open => match req {
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
                },
                () = sleep_until(deadline), if deadline.is_some() => self.fire_timers(),
                else => break,
            }
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
        let fx = self.core.shutdown(self.now(), batch);
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
            let fx = this.core.request(now, id, op, names);
            this.execute(fx);
        };
        match req {
            Request::Add(spec, reply) => {
                let name = spec.name.clone();
                match self.core.add(now, *spec) {
                    Ok(fx) => {
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
            Request::Stop(names, reply) => batch(self, Op::Stop, names, Reply::Results(reply)),
            Request::Restart(names, reply) => {
                batch(self, Op::Restart, names, Reply::Results(reply))
            }
            Request::Signal(names, sig, reply) => {
                batch(self, Op::Signal(sig), names, Reply::Results(reply))
            }
            Request::Resolve(patterns, reply) => {
                let _ = reply.send(self.core.resolve(&patterns));
            }
            Request::Status(reply) => {
                let mut st = self.core.status(now, |m| self.wall(m));
                for s in &mut st {
                    s.log_dropped_bytes = self.logs.dropped(&s.name);
                }
                let _ = reply.send(st);
            }
            Request::StartAll(reply) => {
                if self.core.is_shutting_down() {
                    let _ = reply.send(Vec::new());
                    return;
                }
                let id = self.batch_id();
                self.replies.insert(id, Reply::Results(reply));
                let fx = self.core.start_service(now, id);
                self.execute(fx);
            }
            Request::Shutdown(reply) => {
                if self.exiting {
                    // Already under way: answer when it ends.
                    let id = self.batch_id();
                    self.replies.insert(id, Reply::Shutdown(Some(reply)));
                    let fx = self.core.request(now, id, Op::Stop, Vec::new());
                    self.execute(fx);
                } else {
                    self.exiting = true;
                    self.begin_shutdown(Some(reply));
                }
            }
        }
    }

    fn on_reaped(&mut self, r: Reaped) {
        let now = self.now();
        let mut fx = Vec::new();
        if let Some(name) = self.core.owner_of(r.pid) {
            self.logs.close_stdin(name);
            let alive = self.launcher.group_alive(r.pid);
            fx.extend(self.core.exited(now, r.pid, r.exit, alive));
        } else {
            tracing::trace!(pid = r.pid, exit = %r.exit, "reaped an orphan");
        }
        self.launcher.forget(r.pid);
        // Any reap may have emptied a group we are waiting on.
        for (name, pgid) in self.core.draining() {
            if !self.launcher.group_alive(pgid) {
                fx.extend(self.core.group_empty(now, &name));
            }
        }
        self.execute(fx);
    }

    fn fire_timers(&mut self) {
        let now = self.now();
        let mut fx = Vec::new();
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (_, name, id) = entry.remove_entry().0;
            self.timer_at.remove(&(name.clone(), id));
            fx.extend(self.core.timer(now, &name, id));
        }
        self.execute(fx);
    }

    /// Executes effects in order; a spawn's outcome is fed back at once and its
    /// follow-up effects run before the rest.
    fn execute(&mut self, fx: Vec<CoreEffect>) {
        let mut queue: VecDeque<CoreEffect> = fx.into();
        while let Some(effect) = queue.pop_front() {
            match effect {
                CoreEffect::Spawn(name) => {
                    let Some(spec) = self.core.get(name.as_str()).map(|p| p.spec()) else {
                        continue;
                    };
                    let result = self.launcher.spawn(spec).map(|s| {
                        self.logs.attach(&name, &spec.logs, s.stdout, s.stderr);
                        self.logs.attach_stdin(&name, s.stdin);
                        s.pid
                    });
                    let more = self.core.spawned(self.now(), &name, result);
                    for (i, m) in more.into_iter().enumerate() {
                        queue.insert(i, m);
                    }
                }
                CoreEffect::Kill { name, target, sig } => {
                    if let Err(e) = self.launcher.kill(target, sig) {
                        tracing::warn!(process = %name, ?target, signal = %sig, error = %e, "could not send signal");
                    }
                }
                CoreEffect::ArmTimer { name, id, at } => {
                    self.timers.insert((at, name.clone(), id), ());
                    self.timer_at.insert((name, id), at);
                }
                CoreEffect::CancelTimer { name, id } => {
                    if let Some(at) = self.timer_at.remove(&(name.clone(), id)) {
                        self.timers.remove(&(at, name, id));
                    }
                }
                CoreEffect::Publish(ev) => {
                    log_event(&ev);
                    if let Event::Removed { name } = &ev {
                        self.logs.forget(name);
                    }
                    let _ = self.events.send(ev);
                }
                CoreEffect::BatchDone { batch, results } => match self.replies.remove(&batch) {
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
