//! The tasks: one hub that follows the supervisor's events and the `TICK_*`
//! timers, and one task per pool that writes to its listeners' stdin and
//! reads their stdout.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tend_config::supervisord::EventListenerConf;
use tend_core::logs::Stream;
use tend_core::{Event, Name, StateName, Supervisor, TapChunk};
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use super::{
    pool::{PoolAction, PoolCore},
    translate::{Context, SupEvent, TICK_PERIODS, Translator, subscribed, timeslice},
};

/// Messages from the hub to a pool task.
#[derive(Debug, Clone)]
pub(super) enum PoolMsg {
    Event(Arc<SupEvent>),
    Spawned(Name),
    State(Name, StateName),
    Exited(Name),
}

/// Messages from the daemon to the hub.
#[derive(Debug)]
pub(super) enum Control {
    Stopping,
    Remote { kind: String, data: String },
    Context(Box<Context>),
    Pools(Vec<PoolConf>),
}

/// One `[eventlistener:x]` pool as a config file declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PoolConf {
    pub(super) name: Name,
    pub(super) buffer_size: usize,
    pub(super) events: Vec<String>,
    pub(super) members: Vec<Name>,
}

/// The pools of `listeners`, in file order, each process of a section a member.
pub(super) fn pool_confs(listeners: Vec<EventListenerConf>) -> Vec<PoolConf> {
    let mut pools: Vec<PoolConf> = Vec::new();
    for l in listeners {
        match pools.iter_mut().find(|p| p.name == l.pool_name) {
            Some(p) => p.members.push(l.spec.name.clone()),
            None => pools.push(PoolConf {
                name: l.pool_name,
                buffer_size: l.buffer_size,
                events: l.events,
                members: vec![l.spec.name],
            }),
        }
    }
    pools
}

/// A pool as the hub sees it. Dropping it ends the pool's task.
pub(super) struct PoolLink {
    pub(super) conf: PoolConf,
    pub(super) tx: mpsc::UnboundedSender<PoolMsg>,
}

impl PoolLink {
    /// Starts the pool's task.
    pub(super) fn start(sup: &Supervisor, conf: PoolConf) -> PoolLink {
        let (tx, rx) = mpsc::unbounded_channel();
        let core = PoolCore::new(conf.name.clone(), conf.buffer_size, conf.members.clone());
        // The listeners' stdout reaches the pool whole: a lost `READY` or
        // `RESULT` would be a stuck listener, not a lost log line.
        let (tap, stdout) = mpsc::unbounded_channel();
        for member in &conf.members {
            sup.tap_stdout(member, tap.clone());
        }
        tokio::spawn(run_pool(sup.clone(), core, rx, stdout));
        PoolLink { conf, tx }
    }

    pub(super) fn wants(&self, event: &str) -> bool {
        self.conf.events.iter().any(|s| subscribed(s, event))
    }

    pub(super) fn has_member(&self, name: &Name) -> bool {
        self.conf.members.contains(name)
    }
}

/// The hub: follows the supervisor's events, makes Supervisor's, and hands
/// each to the pools subscribed to it.
pub(super) struct Hub {
    pub(super) ctx: Context,
    pub(super) server: Arc<str>,
    pub(super) pools: Vec<PoolLink>,
    pub(super) next_serial: u64,
    pub(super) translator: Translator,
    /// `(period, slice of the last tick)` of each armed tick.
    pub(super) ticks: Vec<(u64, u64)>,
    /// The groups told as added, with their registered processes: a group
    /// is removed when its last process is.
    pub(super) groups: HashMap<Name, HashSet<Name>>,
    /// Starts the tasks of pools added at run time.
    pub(super) sup: Supervisor,
    /// The pools of the config file as last read: a pool (re)starts when its
    /// first process is added, as supervisord makes a pool when it adds its
    /// group, and stops when its last process is removed.
    pub(super) declared_pools: Vec<PoolConf>,
}

impl Hub {
    /// `name` was added: if it belongs to a pool of the file as last read
    /// that is not running with that very configuration, the pool starts
    /// (replacing one with an older configuration), before its group is
    /// told as added (supervisord makes the pool, then tells).
    pub(super) fn activate_pool_of(&mut self, name: &Name) {
        let Some(conf) = self
            .declared_pools
            .iter()
            .find(|p| p.members.contains(name))
            .cloned()
        else {
            return;
        };
        if self.pools.iter().any(|p| p.conf == conf) {
            return;
        }
        self.pools.retain(|p| p.conf.name != conf.name);
        tracing::debug!(pool = %conf.name, "event listener pool started");
        self.pools.push(PoolLink::start(&self.sup, conf));
        self.rearm_ticks();
    }

    /// Arms the ticks the pools subscribe to now (keeping the slices of
    /// those still armed), and disarms the others.
    pub(super) fn rearm_ticks(&mut self) {
        let now = wall_now() as u64;
        let old = std::mem::take(&mut self.ticks);
        self.ticks = TICK_PERIODS
            .iter()
            .filter(|p| self.pools.iter().any(|l| l.wants(&format!("TICK_{p}"))))
            .map(|&p| {
                let last = old
                    .iter()
                    .find(|(period, _)| *period == p)
                    .map_or_else(|| timeslice(p, now), |&(_, last)| last);
                (p, last)
            })
            .collect();
    }

    /// `PROCESS_GROUP_ADDED` / `_REMOVED`, from processes added and removed.
    pub(super) fn on_membership(&mut self, ev: &Event) {
        match ev {
            Event::Added { name } => {
                self.activate_pool_of(name);
                let group = self.ctx.group_of(name);
                let fresh = !self.groups.contains_key(&group);
                self.groups
                    .entry(group.clone())
                    .or_default()
                    .insert(name.clone());
                if fresh {
                    self.emit("PROCESS_GROUP_ADDED".into(), format!("groupname:{group}\n"));
                }
            }
            Event::Removed { name } => {
                let group = self.ctx.group_of(name);
                let Some(members) = self.groups.get_mut(&group) else {
                    return;
                };
                members.remove(name);
                if members.is_empty() {
                    self.groups.remove(&group);
                    // supervisord unsubscribes a pool before it tells of its
                    // group's removal.
                    self.pools.retain(|p| p.conf.name != group);
                    self.rearm_ticks();
                    self.emit(
                        "PROCESS_GROUP_REMOVED".into(),
                        format!("groupname:{group}\n"),
                    );
                }
            }
            _ => {}
        }
    }

    /// Numbers the event if a pool takes it and hands it to them.
    pub(super) fn emit(&mut self, name: String, payload: String) {
        if !self.pools.iter().any(|p| p.wants(&name)) {
            return;
        }
        let event = Arc::new(SupEvent {
            serial: self.next_serial,
            name,
            payload,
            server: self.server.clone(),
        });
        self.next_serial += 1;
        for pool in self.pools.iter().filter(|p| p.wants(&event.name)) {
            let _ = pool.tx.send(PoolMsg::Event(event.clone()));
        }
    }

    pub(super) fn on_event(&mut self, ev: &Event) {
        self.on_membership(ev);
        // Listener processes' own lifecycle, for their pools.
        let lifecycle = match ev {
            Event::Spawned { name, .. } => Some((name, PoolMsg::Spawned(name.clone()))),
            Event::Exited { name, .. } => Some((name, PoolMsg::Exited(name.clone()))),
            Event::StateChanged { name, to, .. } => Some((name, PoolMsg::State(name.clone(), *to))),
            _ => None,
        };
        if let Some((name, msg)) = lifecycle {
            for p in self.pools.iter().filter(|p| p.has_member(name)) {
                let _ = p.tx.send(msg.clone());
            }
        }
        for (name, payload) in self.translator.translate(ev, &self.ctx) {
            self.emit(name, payload);
        }
    }

    pub(super) fn on_log(&mut self, chunk: &tend_core::runtime::LogChunk) {
        let Some(info) = self.ctx.processes.get(&chunk.name) else {
            return;
        };
        let (enabled, event, channel) = match chunk.stream {
            Stream::Stdout => (info.stdout_events, "PROCESS_LOG_STDOUT", "stdout"),
            Stream::Stderr => (info.stderr_events, "PROCESS_LOG_STDERR", "stderr"),
        };
        // A listener's stdout is the protocol, never a log event.
        let listener = self.pools.iter().any(|p| p.has_member(&chunk.name));
        // A bare newline that only ends a line sent in part is no output.
        let ends_only = chunk.continues && &*chunk.data == b"\n";
        if !enabled || ends_only || (listener && chunk.stream == Stream::Stdout) {
            return;
        }
        let payload = format!(
            "processname:{} groupname:{} pid:{} channel:{channel}\n{}",
            chunk.name,
            info.group,
            self.translator.pid(&chunk.name),
            String::from_utf8_lossy(&chunk.data)
        );
        self.emit(event.to_string(), payload);
    }

    pub(super) fn wants_logs(&self) -> bool {
        let any = |e: &str| self.pools.iter().any(|p| p.wants(e));
        any("PROCESS_LOG_STDOUT") || any("PROCESS_LOG_STDERR")
    }

    /// When the next armed tick is due, as a tokio instant.
    pub(super) fn next_tick(&self) -> Option<Instant> {
        let now = wall_now();
        self.ticks
            .iter()
            .map(|&(period, last)| last + period)
            .min()
            .map(|due| {
                let wait = due as f64 - now;
                Instant::now() + Duration::from_secs_f64(wait.max(0.0) + 0.001)
            })
    }

    /// Supervisor's `tick()`: a `TICK_N` for each period whose slice changed.
    pub(super) fn tick(&mut self) {
        let now = wall_now() as u64;
        let mut due = Vec::new();
        for (period, last) in &mut self.ticks {
            let slice = timeslice(*period, now);
            if slice != *last {
                *last = slice;
                due.push((*period, slice));
            }
        }
        for (period, slice) in due {
            self.emit(format!("TICK_{period}"), format!("when:{slice}"));
        }
    }

    pub(super) async fn run(
        mut self,
        mut events: broadcast::Receiver<Event>,
        mut logs: Option<broadcast::Receiver<tend_core::runtime::LogChunk>>,
        mut control: mpsc::UnboundedReceiver<Control>,
    ) {
        loop {
            let next_tick = self.next_tick();
            tokio::select! {
                ev = events.recv() => match ev {
                    Ok(ev) => {
                        self.on_event(&ev);
                        if logs.is_none() && self.wants_logs() {
                            logs = Some(self.sup.subscribe_logs());
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "event listeners fell behind: {n} events were not told");
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                chunk = recv_log(&mut logs) => match chunk {
                    Ok(chunk) => self.on_log(&chunk),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "event listeners fell behind on output: {n} log chunks were not told");
                    }
                    Err(broadcast::error::RecvError::Closed) => logs = None,
                },
                msg = control.recv() => match msg {
                    Some(Control::Stopping) => {
                        self.emit("SUPERVISOR_STATE_CHANGE_STOPPING".into(), String::new());
                    }
                    Some(Control::Remote { kind, data }) => {
                        self.emit("REMOTE_COMMUNICATION".into(), format!("type:{kind}\n{data}"));
                    }
                    Some(Control::Context(ctx)) => {
                        self.server = Arc::from(ctx.identifier.as_str());
                        self.ctx = *ctx;
                    }
                    Some(Control::Pools(pools)) => self.declared_pools = pools,
                    None => return,
                },
                () = sleep_until(next_tick) => self.tick(),
            }
        }
    }
}

pub(super) async fn recv_log(
    logs: &mut Option<broadcast::Receiver<tend_core::runtime::LogChunk>>,
) -> Result<tend_core::runtime::LogChunk, broadcast::error::RecvError> {
    match logs {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

pub(super) async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Seconds since the epoch, with fractions.
pub(super) fn wall_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// One pool's task: the hub's messages in, its listeners' stdout in, their
/// stdin out.
pub(super) async fn run_pool(
    sup: Supervisor,
    mut core: PoolCore,
    mut rx: mpsc::UnboundedReceiver<PoolMsg>,
    mut stdout: mpsc::UnboundedReceiver<TapChunk>,
) {
    loop {
        let actions = tokio::select! {
            msg = rx.recv() => match msg {
                Some(PoolMsg::Event(e)) => core.accept(e),
                Some(PoolMsg::Spawned(name)) => {
                    core.spawned(&name);
                    Vec::new()
                }
                Some(PoolMsg::State(name, to)) => core.state_changed(&name, to),
                Some(PoolMsg::Exited(name)) => core.exited(&name),
                None => return,
            },
            chunk = stdout.recv() => match chunk {
                Some(c) if core.has_member(&c.name) => core.output(&c.name, &c.data),
                Some(_) => Vec::new(),
                // Every tap's sender is gone: the supervisor is.
                None => return,
            },
        };
        perform(&sup, &mut core, actions);
    }
}

pub(super) fn perform(sup: &Supervisor, core: &mut PoolCore, mut actions: Vec<PoolAction>) {
    while !actions.is_empty() {
        let mut more = Vec::new();
        for a in actions {
            match a {
                PoolAction::Write(name, bytes) => {
                    if let Err(e) = sup.send_stdin(name.as_str(), bytes) {
                        tracing::debug!(listener = %name, error = %e, "cannot send an event; it is kept");
                        more.extend(core.write_failed(&name));
                    }
                }
                PoolAction::Error(msg) => tracing::error!("{msg}"),
                PoolAction::Warn(msg) => tracing::warn!("{msg}"),
                PoolAction::Debug(msg) => tracing::debug!("{msg}"),
            }
        }
        actions = more;
    }
}
