//! One pool: its buffer of events and its listeners' protocol states, as a
//! table of actions (pure: no I/O).

use std::collections::VecDeque;
use std::sync::Arc;

use tend_core::{Name, StateName};

use super::{
    protocol::{ListenerState, Protocol, Said},
    translate::SupEvent,
};

/// An event in a pool's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// The event.
    pub event: Arc<SupEvent>,
    /// Its serial in this pool.
    pub pool_serial: u64,
}

/// One listener process of a pool.
#[derive(Debug)]
pub(super) struct Member {
    pub(super) name: Name,
    pub(super) running: bool,
    pub(super) protocol: Protocol,
    /// The event it is working on.
    pub(super) event: Option<Queued>,
}

/// What a pool wants done or said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolAction {
    /// Write these bytes to this listener's stdin.
    Write(Name, Vec<u8>),
    /// Log at error level (Supervisor's wording).
    Error(String),
    /// Log at warning level.
    Warn(String),
    /// Log at debug level: supervisord's account of the exchange (what a
    /// listener wrote, its state changes, each event sent).
    Debug(String),
}

/// One pool: its buffer and its listeners' protocol states. Pure: it says
/// what to write and what to log.
#[derive(Debug)]
pub struct PoolCore {
    pub(super) name: Name,
    pub(super) buffer_size: usize,
    pub(super) buffer: VecDeque<Queued>,
    pub(super) serial: u64,
    pub(super) members: Vec<Member>,
}

impl PoolCore {
    /// A pool with these listener processes, none running yet.
    pub fn new(name: Name, buffer_size: usize, members: Vec<Name>) -> Self {
        PoolCore {
            name,
            buffer_size: buffer_size.max(1),
            buffer: VecDeque::new(),
            serial: 0,
            members: members
                .into_iter()
                .map(|name| Member {
                    name,
                    running: false,
                    protocol: Protocol::default(),
                    event: None,
                })
                .collect(),
        }
    }

    /// Whether `name` is one of this pool's listeners.
    pub fn has_member(&self, name: &Name) -> bool {
        self.members.iter().any(|m| &m.name == name)
    }

    /// The events waiting, oldest first.
    #[cfg(test)]
    pub fn buffered(&self) -> impl Iterator<Item = &Queued> {
        self.buffer.iter()
    }

    /// A listener's protocol state.
    #[cfg(test)]
    pub fn listener_state(&self, name: &Name) -> Option<ListenerState> {
        self.members
            .iter()
            .find(|m| &m.name == name)
            .map(|m| m.protocol.state())
    }

    /// Takes an event into the buffer (dropping the oldest when it is full)
    /// and sends what can be sent.
    pub fn accept(&mut self, event: Arc<SupEvent>) -> Vec<PoolAction> {
        let q = Queued {
            event,
            pool_serial: self.serial,
        };
        self.serial += 1;
        let mut out = self.enqueue(q, false);
        out.extend(self.dispatch());
        out
    }

    pub(super) fn enqueue(&mut self, q: Queued, head: bool) -> Vec<PoolAction> {
        let mut out = Vec::new();
        if self.buffer.len() >= self.buffer_size
            && let Some(dropped) = self.buffer.pop_front()
        {
            out.push(PoolAction::Error(format!(
                "pool {} event buffer overflowed, discarding event {}",
                self.name, dropped.event.serial
            )));
        }
        if head {
            self.buffer.push_front(q);
        } else {
            self.buffer.push_back(q);
        }
        out
    }

    /// A listener was spawned: a fresh protocol, waiting for `READY`.
    pub fn spawned(&mut self, name: &Name) {
        if let Some(m) = self.members.iter_mut().find(|m| &m.name == name) {
            m.protocol = Protocol::default();
        }
    }

    /// A listener changed state; only `running` ones get events.
    pub fn state_changed(&mut self, name: &Name, to: StateName) -> Vec<PoolAction> {
        let Some(m) = self.members.iter_mut().find(|m| &m.name == name) else {
            return Vec::new();
        };
        m.running = to == StateName::Running;
        if m.running {
            self.dispatch()
        } else {
            Vec::new()
        }
    }

    /// A listener exited: an event it had not answered goes back to the head
    /// of the buffer (Supervisor's `EventRejectedEvent`).
    pub fn exited(&mut self, name: &Name) -> Vec<PoolAction> {
        let Some(m) = self.members.iter_mut().find(|m| &m.name == name) else {
            return Vec::new();
        };
        m.running = false;
        m.protocol = Protocol::default();
        match m.event.take() {
            Some(q) => {
                let mut out = self.enqueue(q, true);
                out.extend(self.dispatch());
                out
            }
            None => Vec::new(),
        }
    }

    /// Writing to a listener's stdin failed (it is gone): the event goes
    /// back to the head of the buffer, the listener keeps its state.
    pub fn write_failed(&mut self, name: &Name) -> Vec<PoolAction> {
        let Some(m) = self.members.iter_mut().find(|m| &m.name == name) else {
            return Vec::new();
        };
        m.running = false;
        match m.event.take() {
            Some(q) => {
                m.protocol = Protocol::default();
                let mut out = self.enqueue(q, true);
                out.extend(self.dispatch());
                out
            }
            None => Vec::new(),
        }
    }

    /// What a listener wrote on its stdout.
    pub fn output(&mut self, name: &Name, data: &[u8]) -> Vec<PoolAction> {
        let Some(i) = self.members.iter().position(|m| &m.name == name) else {
            return Vec::new();
        };
        let mut out = vec![PoolAction::Debug(
            crate::mainlog::listener_output_line(name, data).text,
        )];
        let mut cur = self.members[i].protocol.state();
        let change = |out: &mut Vec<PoolAction>, from: ListenerState, to: ListenerState| {
            out.push(PoolAction::Debug(format!(
                "{name}: {} -> {}",
                from.sup_name(),
                to.sup_name()
            )));
        };
        let said = self.members[i].protocol.feed(data);
        for s in said {
            match s {
                Said::Ready => {
                    change(&mut out, cur, ListenerState::Ready);
                    cur = ListenerState::Ready;
                }
                Said::Result(true) => {
                    out.push(PoolAction::Debug(format!("{name}: event was processed")));
                    change(&mut out, cur, ListenerState::Acknowledged);
                    cur = ListenerState::Acknowledged;
                    self.members[i].event = None;
                }
                Said::Result(false) => {
                    out.push(PoolAction::Warn(format!("{name}: event was rejected")));
                    change(&mut out, cur, ListenerState::Acknowledged);
                    cur = ListenerState::Acknowledged;
                    if let Some(q) = self.members[i].event.take() {
                        out.extend(self.enqueue(q, true));
                    }
                }
                Said::Broken(why) => {
                    change(&mut out, cur, ListenerState::Unknown);
                    cur = ListenerState::Unknown;
                    out.push(PoolAction::Warn(format!(
                        "{name}: has entered the UNKNOWN state and will no longer receive \
                         events, this usually indicates the process violated the eventlistener \
                         protocol ({why})"
                    )));
                    if let Some(q) = self.members[i].event.take() {
                        out.extend(self.enqueue(q, true));
                    }
                }
            }
        }
        out.extend(self.dispatch());
        out
    }

    /// Sends the oldest events to running, ready listeners, in pool order.
    pub(super) fn dispatch(&mut self) -> Vec<PoolAction> {
        let mut out = Vec::new();
        while !self.buffer.is_empty() {
            let Some(m) = self
                .members
                .iter_mut()
                .find(|m| m.running && m.protocol.state() == ListenerState::Ready)
            else {
                break;
            };
            let Some(q) = self.buffer.pop_front() else {
                break;
            };
            let bytes = envelope(&q, &self.name).into_bytes();
            m.protocol.sent();
            out.push(PoolAction::Write(m.name.clone(), bytes));
            out.push(PoolAction::Debug(format!(
                "event {} sent to listener {}",
                q.event.serial, m.name
            )));
            m.event = Some(q);
        }
        out
    }
}

/// The header line and payload, as `EventListenerPool._eventEnvelope` writes
/// them. `len` counts characters, not bytes, as Supervisor on Python 3 does
/// (Supervisor issue #1243): Python listeners read that many characters.
pub fn envelope(q: &Queued, pool: &Name) -> String {
    let e = &q.event;
    format!(
        "ver:3.0 server:{} serial:{} pool:{pool} poolserial:{} eventname:{} len:{}\n{}",
        e.server,
        e.serial,
        q.pool_serial,
        e.name,
        e.payload.chars().count(),
        e.payload
    )
}
