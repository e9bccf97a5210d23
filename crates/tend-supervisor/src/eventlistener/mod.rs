//! Supervisor's event listeners (`[eventlistener:x]`): tend's events, told
//! the way supervisord tells them, over each listener's stdin and stdout.
//!
//! A listener is an ordinary supervised process (the daemon adds it like any
//! other, with a stdin pipe). This module speaks Supervisor's protocol with
//! it (`supervisor/dispatchers.py: PEventListenerDispatcher`,
//! `supervisor/process.py: EventListenerPool`):
//!
//! 1. the listener writes `READY\n` on its stdout;
//! 2. tend writes one event to its stdin: a header line
//!    `ver:3.0 server:ID serial:N pool:P poolserial:N eventname:E len:N\n`
//!    and `len` characters of payload;
//! 3. the listener answers `RESULT <n>\n` and `n` bytes: `OK` accepts the
//!    event; anything else rejects it, and the event goes back to the head
//!    of its pool's buffer to be sent again;
//! 4. and writes `READY\n` again when it wants the next one.
//!
//! Anything else on its stdout puts the listener in the UNKNOWN state: it gets
//! no more events (until it is restarted), as in supervisord.
//!
//! Three layers, the first two free of I/O so they are tested as tables:
//! [`Translator`] turns tend's [`tend_core::Event`]s into Supervisor's (state names,
//! payloads with `tries`, `pid`, `expected`), [`PoolCore`] is one pool's
//! buffer and its listeners' protocol states, and [`EventListeners`] runs
//! them: one hub task that follows the supervisor's events (and ticks the
//! `TICK_*` timers, armed only when some pool subscribes to them), and one
//! task per pool that follows its listeners' stdout and writes to their stdin.

mod hub;
mod pool;
mod protocol;
mod translate;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tend_config::supervisord::EventListenerConf;
use tend_core::Supervisor;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use hub::{Control, Hub, PoolLink, pool_confs};
pub use pool::{PoolAction, PoolCore, Queued, envelope};
pub use protocol::{ListenerState, Protocol, Said};
pub use translate::{Context, ProcessInfo, SupEvent, Translator, subscribed, timeslice};

/// The running event listener pools of a daemon. Dropping it stops telling
/// events (the listener processes themselves are the supervisor's).
#[derive(Debug)]
pub struct EventListeners {
    control: mpsc::UnboundedSender<Control>,
    /// The hub's task; it owns the pools, whose tasks end with it.
    hub: JoinHandle<()>,
}

impl EventListeners {
    /// Starts one task per listener pool, and one that follows
    /// `sup.subscribe()` (and `sup.subscribe_logs()` when a pool subscribes
    /// to `PROCESS_LOG`) and makes Supervisor's events; `ctx` gives the
    /// identifier, groups, exit codes and log events of the processes
    /// ([`Context::from_declared`]). Call it in the runtime, before the
    /// processes are added and started, so that no event is missed:
    /// `SUPERVISOR_STATE_CHANGE_RUNNING` is the first event, and a listener
    /// gets the `PROCESS_STATE_STARTING` of its own start once it is `READY`.
    pub fn start_with(sup: Supervisor, listeners: Vec<EventListenerConf>, ctx: Context) -> Self {
        let declared_pools = pool_confs(listeners);
        let (control, control_rx) = mpsc::unbounded_channel();
        let pools = declared_pools
            .iter()
            .map(|conf| PoolLink::start(&sup, conf.clone()))
            .collect();
        let mut hub = Hub {
            server: Arc::from(ctx.identifier.as_str()),
            ctx,
            pools,
            next_serial: 0,
            translator: Translator::new(),
            ticks: Vec::new(),
            groups: HashMap::new(),
            sup: sup.clone(),
            declared_pools,
        };
        hub.rearm_ticks();
        let events = sup.subscribe();
        let logs = hub.wants_logs().then(|| sup.subscribe_logs());
        // supervisord adds every group (in priority order) before its main
        // loop starts and says it is running.
        for group in hub.ctx.groups.clone() {
            hub.groups.insert(group.clone(), HashSet::new());
            hub.emit("PROCESS_GROUP_ADDED".into(), format!("groupname:{group}\n"));
        }
        hub.emit("SUPERVISOR_STATE_CHANGE_RUNNING".into(), String::new());
        let hub = tokio::spawn(hub.run(events, logs, control_rx));
        EventListeners { control, hub }
    }

    /// The daemon is shutting down: `SUPERVISOR_STATE_CHANGE_STOPPING`.
    pub fn stopping(&self) {
        let _ = self.control.send(Control::Stopping);
    }

    /// `supervisor.sendRemoteCommEvent(type, data)`: a `REMOTE_COMMUNICATION` event.
    pub fn remote_communication(&self, kind: &str, data: &str) {
        let _ = self.control.send(Control::Remote {
            kind: kind.to_string(),
            data: data.to_string(),
        });
    }

    /// The config was reloaded: the identifier, groups and exit codes of
    /// processes added or changed.
    pub fn set_context(&self, ctx: Context) {
        let _ = self.control.send(Control::Context(Box::new(ctx)));
    }

    /// The config was read again: its `[eventlistener:x]` pools. A new or
    /// changed pool starts when its processes are added (`update`, `add`),
    /// and a pool stops when its processes are removed.
    pub fn set_pools(&self, listeners: Vec<EventListenerConf>) {
        let _ = self.control.send(Control::Pools(pool_confs(listeners)));
    }
}

impl Drop for EventListeners {
    fn drop(&mut self) {
        self.hub.abort();
    }
}

#[cfg(test)]
mod tests;
