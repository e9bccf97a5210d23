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
//! [`Translator`] turns tend's [`Event`]s into Supervisor's (state names,
//! payloads with `tries`, `pid`, `expected`), [`PoolCore`] is one pool's
//! buffer and its listeners' protocol states, and [`EventListeners`] runs
//! them: one hub task that follows the supervisor's events (and ticks the
//! `TICK_*` timers, armed only when some pool subscribes to them), and one
//! task per pool that follows its listeners' stdout and writes to their stdin.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tend_core::logs::Stream;
use tend_core::{Event, ExitInfo, Name, StateName, Supervisor};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use tend_config::supervisord::EventListenerConf;

/// Event types that stand for their subtypes (`supervisor/events.py`).
const ABSTRACT: &[&str] = &[
    "PROCESS_STATE",
    "PROCESS_COMMUNICATION",
    "PROCESS_LOG",
    "SUPERVISOR_STATE_CHANGE",
    "TICK",
    "PROCESS_GROUP",
];

/// The tick periods, in Supervisor's order (`events.TICK_EVENTS`).
const TICK_PERIODS: [u64; 3] = [5, 60, 3600];

/// Whether a pool subscribed to `subscription` gets events named `event`:
/// the type itself, its subtypes for an abstract type, everything for `EVENT`.
pub fn subscribed(subscription: &str, event: &str) -> bool {
    subscription == "EVENT"
        || subscription == event
        || (ABSTRACT.contains(&subscription)
            && event
                .strip_prefix(subscription)
                .is_some_and(|rest| rest.starts_with('_')))
}

/// What the events need to know beyond the listeners themselves.
#[derive(Debug, Clone)]
pub struct Context {
    /// `[supervisord] identifier`: the `server:` field of every envelope.
    pub identifier: String,
    /// Per process: its group, `exitcodes` and whether its output makes
    /// `PROCESS_LOG_*` events. Processes not listed are their own group,
    /// expect exit code 0 and make no log events.
    pub processes: HashMap<Name, ProcessInfo>,
    /// The declared groups in the order supervisord adds them at start: by
    /// priority, equal priorities in the order the file reader makes them
    /// (for a supervisord.conf: `[group:x]` sections, then programs, then
    /// pools, each in file order). Their `PROCESS_GROUP_ADDED` come first.
    pub groups: Vec<Name>,
}

impl Context {
    /// Supervisor's group of `name`.
    fn group_of(&self, name: &Name) -> Name {
        self.processes
            .get(name)
            .map_or_else(|| name.clone(), |p| p.group.clone())
    }
}

/// What [`Context`] knows of one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Supervisor's group name (the `groupname:` of payloads).
    pub group: Name,
    /// `exitcodes`: an exit with one of these is `expected:1`.
    pub exit_codes: Vec<i32>,
    /// `stdout_events_enabled`.
    pub stdout_events: bool,
    /// `stderr_events_enabled`.
    pub stderr_events: bool,
}

impl Default for Context {
    fn default() -> Self {
        Context {
            identifier: "supervisor".to_string(),
            processes: HashMap::new(),
            groups: Vec::new(),
        }
    }
}

impl Context {
    /// What the daemon keeps of a config file: Supervisor's view of every
    /// declared process, and `[supervisord] identifier`.
    pub fn from_declared(identifier: &str, declared: &tend_config::Declared) -> Context {
        let events = |p: &tend_config::ProcessConfig| {
            p.program.as_ref().map_or((false, false), |d| {
                (d.stdout.events_enabled, d.stderr.events_enabled)
            })
        };
        let processes = declared
            .processes()
            // What an unlisted process is assumed to be need not be listed:
            // most of a thousand processes are like that.
            .filter(|p| {
                p.spec.group != p.spec.name
                    || p.spec.success_exit_codes != [0]
                    || events(p) != (false, false)
            })
            .map(|p| {
                let (stdout_events, stderr_events) = events(p);
                let info = ProcessInfo {
                    group: p.spec.group.clone(),
                    exit_codes: p.spec.success_exit_codes.clone(),
                    stdout_events,
                    stderr_events,
                };
                (p.spec.name.clone(), info)
            })
            .collect();
        let mut groups: Vec<(i32, Name)> = declared
            .groups
            .iter()
            .map(|g| (g.priority, g.name.clone()))
            .collect();
        // Stable: equal priorities keep the file's order.
        groups.sort_by_key(|(priority, _)| *priority);
        Context {
            identifier: identifier.to_string(),
            processes,
            groups: groups.into_iter().map(|(_, name)| name).collect(),
        }
    }
}

/// One event as Supervisor names and renders it, with its global serial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupEvent {
    /// Global serial: counts the events some pool accepted, from 0.
    pub serial: u64,
    /// `PROCESS_STATE_RUNNING`, `TICK_5`, ...
    pub name: String,
    /// The payload, without a trailing newline (Supervisor adds none).
    pub payload: String,
    /// The `server:` field.
    pub server: Arc<str>,
}

/// Supervisor's upper-case name of a state. tend's `waiting` (for a
/// dependency) has none; it is Supervisor's `STOPPED`, which it resembles.
fn sup_state(s: StateName) -> &'static str {
    match s {
        StateName::Stopped | StateName::Waiting => "STOPPED",
        StateName::Starting => "STARTING",
        StateName::Running => "RUNNING",
        StateName::Backoff => "BACKOFF",
        StateName::Stopping => "STOPPING",
        StateName::Exited => "EXITED",
        StateName::Fatal => "FATAL",
    }
}

/// One change of tend's as the steps Supervisor makes for it.
fn supervisor_steps((from, to): (StateName, StateName)) -> Vec<(StateName, StateName)> {
    use StateName::*;
    match (from, to) {
        (_, Waiting) | (Waiting, Stopped) => Vec::new(),
        (Running, Starting | Backoff | Fatal) => vec![(Running, Exited), (Exited, to)],
        (Starting, Fatal) => vec![(Starting, Backoff), (Backoff, Fatal)],
        (Starting, Exited) => vec![(Starting, Running), (Running, Exited)],
        (f, t) if f == t => Vec::new(),
        (f, t) => vec![(f, t)],
    }
}

/// What the translator remembers of one process.
#[derive(Debug, Clone, Default)]
struct Track {
    /// The pid of the current (or last) run.
    pid: u32,
    /// Supervisor's `backoff` counter: failed starts in a row.
    tries: u32,
    /// The last exit and its pid.
    exit: Option<(u32, ExitInfo)>,
    /// The state of the last change told (`None` before the first).
    state: Option<StateName>,
    /// Changes told before tend published them (see [`Translator`]); their
    /// own events, when they come, are dropped.
    told_early: Vec<(StateName, StateName)>,
}

/// Turns tend's events into Supervisor's `PROCESS_STATE_*` events (name and
/// payload). Pure: it keeps what the payloads need (the pid of each run,
/// the back-off counter, the last exit).
///
/// tend's machine sometimes makes in one step what Supervisor makes in two:
/// a process that dies and is restarted at once goes `running -> starting`
/// (Supervisor: `RUNNING -> EXITED -> STARTING`), and the last failed start
/// goes `starting -> fatal` (Supervisor: `STARTING -> BACKOFF -> FATAL`).
/// The translator tells the intermediate state too, so listeners see
/// Supervisor's sequence. It also follows each process's state from its
/// `Added` event on, so that a change published out of order is told in order.
#[derive(Debug, Default)]
pub struct Translator {
    procs: HashMap<Name, Track>,
}

impl Translator {
    /// A translator that has seen nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Supervisor's events (name, payload) for one of tend's, in order;
    /// none for most events, which only update what is remembered.
    pub fn translate(&mut self, ev: &Event, ctx: &Context) -> Vec<(String, String)> {
        match ev {
            Event::Spawned { name, pid } => {
                self.procs.entry(name.clone()).or_default().pid = *pid;
                Vec::new()
            }
            Event::Exited {
                name, pid, exit, ..
            } => {
                self.procs.entry(name.clone()).or_default().exit = Some((*pid, *exit));
                Vec::new()
            }
            Event::Added { name } => {
                self.procs.insert(
                    name.clone(),
                    Track {
                        state: Some(StateName::Stopped),
                        ..Track::default()
                    },
                );
                Vec::new()
            }
            Event::Removed { name } => {
                self.procs.remove(name);
                Vec::new()
            }
            Event::StateChanged { name, from, to } => {
                let t = self.procs.entry(name.clone()).or_default();
                if let Some(i) = t.told_early.iter().position(|c| *c == (*from, *to)) {
                    t.told_early.remove(i);
                    return Vec::new();
                }
                let mut changes = Vec::new();
                // The driver publishes in order, but a subscriber that lagged
                // on the broadcast channel, or a change published out of
                // order, would leave a gap: tell the missing change first,
                // and drop it should it still come.
                if let Some(known) = t.state
                    && known != *from
                {
                    changes.push((known, *from));
                    t.told_early.push((known, *from));
                    // A change that never comes must not hide a later one.
                    if t.told_early.len() > 4 {
                        t.told_early.remove(0);
                    }
                }
                changes.push((*from, *to));
                t.state = Some(*to);
                changes
                    .into_iter()
                    .flat_map(supervisor_steps)
                    .map(|(f, t)| self.state_event(name, f, t, ctx))
                    .collect()
            }
            _ => Vec::new(),
        }
    }

    fn state_event(
        &mut self,
        name: &Name,
        from: StateName,
        to: StateName,
        ctx: &Context,
    ) -> (String, String) {
        let info = ctx.processes.get(name);
        let group = info.map_or(name.as_str(), |i| i.group.as_str());
        let t = self.procs.entry(name.clone()).or_default();
        let extra = match to {
            StateName::Starting => format!(" tries:{}", t.tries),
            StateName::Backoff => {
                t.tries += 1;
                format!(" tries:{}", t.tries)
            }
            StateName::Running => {
                t.tries = 0;
                format!(" pid:{}", t.pid)
            }
            StateName::Stopping => format!(" pid:{}", t.pid),
            // Stopping a process in back-off stops it at once, with no pid.
            StateName::Stopped if from == StateName::Backoff => " pid:0".to_string(),
            StateName::Stopped => format!(" pid:{}", t.pid),
            StateName::Exited => {
                if from == StateName::Running {
                    t.tries = 0;
                }
                let (pid, exit) = t.exit.unwrap_or((t.pid, ExitInfo::Code(0)));
                let expected = match exit {
                    ExitInfo::Code(c) => info.map_or(c == 0, |i| i.exit_codes.contains(&c)),
                    ExitInfo::Signal(_) => false,
                };
                format!(" expected:{} pid:{pid}", u8::from(expected))
            }
            StateName::Fatal => {
                t.tries = 0;
                String::new()
            }
            StateName::Waiting => String::new(),
        };
        (
            format!("PROCESS_STATE_{}", sup_state(to)),
            format!(
                "processname:{name} groupname:{group} from_state:{}{extra}",
                sup_state(from)
            ),
        )
    }

    /// The pid of the current (or last) run of `name`, 0 if none yet.
    pub fn pid(&self, name: &Name) -> u32 {
        self.procs.get(name).map_or(0, |t| t.pid)
    }
}

/// The start of the `period`-second slice `now` (epoch seconds) falls in:
/// Supervisor's `timeslice`, the `when:` of its `TICK_*` events.
pub fn timeslice(period: u64, now: u64) -> u64 {
    now - now % period
}

/// A listener's protocol state (`supervisor/states.py: EventListenerStates`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerState {
    /// Waiting for `READY\n` (a fresh listener starts here).
    Acknowledged,
    /// May be sent an event.
    Ready,
    /// Has an event; waiting for its `RESULT`.
    Busy,
    /// Broke the protocol; gets nothing more until it is restarted.
    Unknown,
}

/// What a listener's output meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Said {
    /// `READY\n`.
    Ready,
    /// A result: `true` for `OK`.
    Result(bool),
    /// It broke the protocol; why.
    Broken(String),
}

/// The reading side of the protocol for one listener: bytes in, meanings out.
#[derive(Debug, Clone)]
pub struct Protocol {
    state: ListenerState,
    buf: Vec<u8>,
    result_len: Option<usize>,
    result: Vec<u8>,
}

impl Default for Protocol {
    fn default() -> Self {
        Protocol {
            state: ListenerState::Acknowledged,
            buf: Vec::new(),
            result_len: None,
            result: Vec::new(),
        }
    }
}

impl Protocol {
    /// The state.
    pub fn state(&self) -> ListenerState {
        self.state
    }

    /// An event was written: waiting for its result.
    pub fn sent(&mut self) {
        self.state = ListenerState::Busy;
        self.result_len = None;
        self.result.clear();
    }

    /// Feeds what the listener wrote; returns what it said, in order.
    /// Follows `handle_listener_state_change`, byte for byte.
    pub fn feed(&mut self, data: &[u8]) -> Vec<Said> {
        self.buf.extend_from_slice(data);
        let mut said = Vec::new();
        loop {
            match self.state {
                ListenerState::Unknown => {
                    self.buf.clear();
                    return said;
                }
                ListenerState::Acknowledged => {
                    const READY: &[u8] = b"READY\n";
                    if self.buf.len() < READY.len() {
                        return said;
                    }
                    if self.buf.starts_with(READY) {
                        self.buf.drain(..READY.len());
                        self.state = ListenerState::Ready;
                        said.push(Said::Ready);
                    } else {
                        let got = String::from_utf8_lossy(&self.buf).into_owned();
                        self.break_with(format!("expected READY, got {got:?}"), &mut said);
                        return said;
                    }
                }
                ListenerState::Ready => {
                    if self.buf.is_empty() {
                        return said;
                    }
                    let got = String::from_utf8_lossy(&self.buf).into_owned();
                    self.break_with(format!("wrote {got:?} while it had no event"), &mut said);
                    return said;
                }
                ListenerState::Busy => {
                    let Some(len) = self.result_len else {
                        let Some(pos) = self.buf.iter().position(|&b| b == b'\n') else {
                            return said;
                        };
                        let line: Vec<u8> = self.buf.drain(..=pos).collect();
                        let line = &line[..line.len() - 1];
                        // Supervisor takes what follows the first 7 bytes
                        // ("RESULT ") as Python's int() would.
                        let n = line
                            .get(7..)
                            .and_then(|s| std::str::from_utf8(s).ok())
                            .map(str::trim)
                            .map(|s| s.strip_prefix('+').unwrap_or(s))
                            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                            .and_then(|s| s.parse::<usize>().ok());
                        match n {
                            Some(n) => self.result_len = Some(n),
                            None => {
                                let line = String::from_utf8_lossy(line).into_owned();
                                self.break_with(format!("bad result line: '{line}'"), &mut said);
                                return said;
                            }
                        }
                        continue;
                    };
                    let take = (len - self.result.len()).min(self.buf.len());
                    self.result.extend(self.buf.drain(..take));
                    if self.result.len() < len {
                        return said;
                    }
                    said.push(Said::Result(self.result == b"OK"));
                    self.result.clear();
                    self.result_len = None;
                    self.state = ListenerState::Acknowledged;
                }
            }
        }
    }

    fn break_with(&mut self, why: String, said: &mut Vec<Said>) {
        self.state = ListenerState::Unknown;
        self.buf.clear();
        self.result.clear();
        self.result_len = None;
        said.push(Said::Broken(why));
    }
}

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
struct Member {
    name: Name,
    running: bool,
    protocol: Protocol,
    /// The event it is working on.
    event: Option<Queued>,
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
}

/// One pool: its buffer and its listeners' protocol states. Pure: it says
/// what to write and what to log.
#[derive(Debug)]
pub struct PoolCore {
    name: Name,
    buffer_size: usize,
    buffer: VecDeque<Queued>,
    serial: u64,
    members: Vec<Member>,
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

    fn enqueue(&mut self, q: Queued, head: bool) -> Vec<PoolAction> {
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
        let mut out = Vec::new();
        let said = self.members[i].protocol.feed(data);
        for s in said {
            match s {
                Said::Ready => {}
                Said::Result(true) => {
                    self.members[i].event = None;
                }
                Said::Result(false) => {
                    out.push(PoolAction::Warn(format!("{name}: event was rejected")));
                    if let Some(q) = self.members[i].event.take() {
                        out.extend(self.enqueue(q, true));
                    }
                }
                Said::Broken(why) => {
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
    fn dispatch(&mut self) -> Vec<PoolAction> {
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

/// Messages from the hub to a pool task.
#[derive(Debug, Clone)]
enum PoolMsg {
    Event(Arc<SupEvent>),
    Spawned(Name),
    State(Name, StateName),
    Exited(Name),
}

/// Messages from the daemon to the hub.
#[derive(Debug)]
enum Control {
    Stopping,
    Remote { kind: String, data: String },
    Context(Box<Context>),
    Pools(Vec<PoolConf>),
}

/// One `[eventlistener:x]` pool as a config file declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PoolConf {
    name: Name,
    buffer_size: usize,
    events: Vec<String>,
    members: Vec<Name>,
}

/// The pools of `listeners`, in file order, each process of a section a member.
fn pool_confs(listeners: Vec<EventListenerConf>) -> Vec<PoolConf> {
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
struct PoolLink {
    conf: PoolConf,
    tx: mpsc::UnboundedSender<PoolMsg>,
}

impl PoolLink {
    /// Starts the pool's task.
    fn start(sup: &Supervisor, conf: PoolConf) -> PoolLink {
        let (tx, rx) = mpsc::unbounded_channel();
        let core = PoolCore::new(conf.name.clone(), conf.buffer_size, conf.members.clone());
        tokio::spawn(run_pool(sup.clone(), core, rx, sup.subscribe_logs()));
        PoolLink { conf, tx }
    }

    fn wants(&self, event: &str) -> bool {
        self.conf.events.iter().any(|s| subscribed(s, event))
    }

    fn has_member(&self, name: &Name) -> bool {
        self.conf.members.contains(name)
    }
}

/// The hub: follows the supervisor's events, makes Supervisor's, and hands
/// each to the pools subscribed to it.
struct Hub {
    ctx: Context,
    server: Arc<str>,
    pools: Vec<PoolLink>,
    next_serial: u64,
    translator: Translator,
    /// `(period, slice of the last tick)` of each armed tick.
    ticks: Vec<(u64, u64)>,
    /// The groups told as added, with their registered processes: a group
    /// is removed when its last process is.
    groups: HashMap<Name, HashSet<Name>>,
    /// Starts the tasks of pools added at run time.
    sup: Supervisor,
    /// The pools of the config file as last read: a pool (re)starts when its
    /// first process is added, as supervisord makes a pool when it adds its
    /// group, and stops when its last process is removed.
    declared_pools: Vec<PoolConf>,
}

impl Hub {
    /// `name` was added: if it belongs to a pool of the file as last read
    /// that is not running with that very configuration, the pool starts
    /// (replacing one with an older configuration), before its group is
    /// told as added (supervisord makes the pool, then tells).
    fn activate_pool_of(&mut self, name: &Name) {
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
    fn rearm_ticks(&mut self) {
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
    fn on_membership(&mut self, ev: &Event) {
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
    fn emit(&mut self, name: String, payload: String) {
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

    fn on_event(&mut self, ev: &Event) {
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

    fn on_log(&mut self, chunk: &tend_core::runtime::LogChunk) {
        let Some(info) = self.ctx.processes.get(&chunk.name) else {
            return;
        };
        let (enabled, event, channel) = match chunk.stream {
            Stream::Stdout => (info.stdout_events, "PROCESS_LOG_STDOUT", "stdout"),
            Stream::Stderr => (info.stderr_events, "PROCESS_LOG_STDERR", "stderr"),
        };
        // A listener's stdout is the protocol, never a log event.
        let listener = self.pools.iter().any(|p| p.has_member(&chunk.name));
        if !enabled || (listener && chunk.stream == Stream::Stdout) {
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

    fn wants_logs(&self) -> bool {
        let any = |e: &str| self.pools.iter().any(|p| p.wants(e));
        any("PROCESS_LOG_STDOUT") || any("PROCESS_LOG_STDERR")
    }

    /// When the next armed tick is due, as a tokio instant.
    fn next_tick(&self) -> Option<Instant> {
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
    fn tick(&mut self) {
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

    async fn run(
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

async fn recv_log(
    logs: &mut Option<broadcast::Receiver<tend_core::runtime::LogChunk>>,
) -> Result<tend_core::runtime::LogChunk, broadcast::error::RecvError> {
    match logs {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Seconds since the epoch, with fractions.
fn wall_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// One pool's task: the hub's messages in, its listeners' stdout in, their
/// stdin out.
async fn run_pool(
    sup: Supervisor,
    mut core: PoolCore,
    mut rx: mpsc::UnboundedReceiver<PoolMsg>,
    mut logs: broadcast::Receiver<tend_core::runtime::LogChunk>,
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
            chunk = logs.recv() => match chunk {
                Ok(c) if c.stream == Stream::Stdout && core.has_member(&c.name) => {
                    core.output(&c.name, &c.data)
                }
                Ok(_) => Vec::new(),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(pool = %core.name, missed = n, "an event listener pool fell behind on its listeners' output; a listener may stall");
                    Vec::new()
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        perform(&sup, &mut core, actions);
    }
}

fn perform(sup: &Supervisor, core: &mut PoolCore, mut actions: Vec<PoolAction>) {
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
            }
        }
        actions = more;
    }
}

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
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        Name::new(s).expect("valid name")
    }

    fn ev(serial: u64, name: &str, payload: &str) -> Arc<SupEvent> {
        Arc::new(SupEvent {
            serial,
            name: name.to_string(),
            payload: payload.to_string(),
            server: Arc::from("supervisor"),
        })
    }

    fn writes(actions: &[PoolAction]) -> Vec<(String, String)> {
        actions
            .iter()
            .filter_map(|a| match a {
                PoolAction::Write(n, b) => {
                    Some((n.to_string(), String::from_utf8_lossy(b).into_owned()))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn subscriptions_cover_subtypes() {
        let table = [
            ("EVENT", "TICK_5", true),
            ("EVENT", "PROCESS_STATE_RUNNING", true),
            ("PROCESS_STATE", "PROCESS_STATE_RUNNING", true),
            ("PROCESS_STATE", "PROCESS_STATE", true),
            ("PROCESS_STATE", "PROCESS_LOG_STDOUT", false),
            ("PROCESS_STATE_RUNNING", "PROCESS_STATE_RUNNING", true),
            ("PROCESS_STATE_RUNNING", "PROCESS_STATE_EXITED", false),
            ("TICK", "TICK_60", true),
            ("TICK_5", "TICK_60", false),
            ("TICK_60", "TICK_5", false),
            ("PROCESS_LOG", "PROCESS_LOG_STDERR", true),
            (
                "SUPERVISOR_STATE_CHANGE",
                "SUPERVISOR_STATE_CHANGE_RUNNING",
                true,
            ),
            ("PROCESS_COMMUNICATION", "PROCESS_STATE_RUNNING", false),
            // Not abstract: no prefix matching.
            ("REMOTE_COMMUNICATION", "REMOTE_COMMUNICATION_X", false),
        ];
        for (sub, event, want) in table {
            assert_eq!(subscribed(sub, event), want, "{sub} / {event}");
        }
    }

    #[test]
    fn protocol_ready_result_ready_in_any_pieces() {
        let ready = b"READY\n";
        for cut in 0..=ready.len() {
            let mut p = Protocol::default();
            let mut said = p.feed(&ready[..cut]);
            said.extend(p.feed(&ready[cut..]));
            assert_eq!(said, vec![Said::Ready], "cut {cut}");
        }
        // childutils writes `RESULT 2\nOK` and then `READY\n`: often one read.
        let answer = b"RESULT 2\nOKREADY\n";
        for cut in 0..=answer.len() {
            let mut p = Protocol::default();
            p.feed(ready);
            p.sent();
            let mut said = p.feed(&answer[..cut]);
            said.extend(p.feed(&answer[cut..]));
            assert_eq!(said, vec![Said::Result(true), Said::Ready], "cut {cut}");
            assert_eq!(p.state(), ListenerState::Ready);
        }
        // Output while READY (no event pending) breaks the protocol.
        let mut p = Protocol::default();
        p.feed(ready);
        assert!(matches!(p.feed(b"x").as_slice(), [Said::Broken(_)]));
        assert_eq!(p.state(), ListenerState::Unknown);
    }

    #[test]
    fn protocol_result_body_may_span_lines_and_chunks() {
        let mut p = Protocol::default();
        assert_eq!(p.feed(b"READY\n"), vec![Said::Ready]);
        p.sent();
        assert_eq!(p.feed(b"RESULT 5\nA\nB"), vec![]);
        assert_eq!(p.state(), ListenerState::Busy);
        assert_eq!(p.feed(b"\nC"), vec![Said::Result(false)]);
        assert_eq!(p.state(), ListenerState::Acknowledged);
        assert_eq!(p.feed(b"READY\n"), vec![Said::Ready]);
        p.sent();
        assert_eq!(p.feed(b"RESULT 0\n"), vec![Said::Result(false)]);
    }

    #[test]
    fn protocol_violations_are_unknown_for_good() {
        let mut p = Protocol::default();
        assert!(matches!(p.feed(b"HELLO!\n").as_slice(), [Said::Broken(_)]));
        assert_eq!(p.state(), ListenerState::Unknown);
        assert_eq!(p.feed(b"READY\n"), vec![]);
        assert_eq!(p.state(), ListenerState::Unknown);

        let mut p = Protocol::default();
        assert_eq!(p.feed(b"READ"), vec![]);
        assert_eq!(p.feed(b"Y\n"), vec![Said::Ready]);
        p.sent();
        let said = p.feed(b"RESULT x\n");
        assert!(
            matches!(said.as_slice(), [Said::Broken(w)] if w.contains("bad result line: 'RESULT x'")),
            "{said:?}"
        );
    }

    #[test]
    fn envelope_is_supervisors_and_len_counts_characters() {
        let q = Queued {
            event: ev(
                7,
                "PROCESS_STATE_RUNNING",
                "processname:x groupname:x from_state:STARTING pid:42",
            ),
            pool_serial: 3,
        };
        assert_eq!(
            envelope(&q, &n("listener")),
            "ver:3.0 server:supervisor serial:7 pool:listener poolserial:3 \
             eventname:PROCESS_STATE_RUNNING len:52\n\
             processname:x groupname:x from_state:STARTING pid:42"
        );
        let q = Queued {
            event: ev(0, "REMOTE_COMMUNICATION", "type:t\né"),
            pool_serial: 0,
        };
        assert!(envelope(&q, &n("p")).contains(" len:8\n"));
    }

    #[test]
    fn pool_buffers_until_a_listener_is_running_and_ready() {
        let l = n("listener");
        let mut pool = PoolCore::new(n("pool"), 10, vec![l.clone()]);
        assert!(
            pool.accept(ev(0, "SUPERVISOR_STATE_CHANGE_RUNNING", ""))
                .is_empty()
        );
        pool.spawned(&l);
        assert!(pool.accept(ev(1, "PROCESS_STATE_STARTING", "p")).is_empty());
        // READY while still starting: nothing is sent before it is running.
        assert!(writes(&pool.output(&l, b"READY\n")).is_empty());
        let w = writes(&pool.state_changed(&l, StateName::Running));
        assert_eq!(
            w,
            vec![(
                "listener".to_string(),
                "ver:3.0 server:supervisor serial:0 pool:pool poolserial:0 \
                 eventname:SUPERVISOR_STATE_CHANGE_RUNNING len:0\n"
                    .to_string()
            )]
        );
        assert_eq!(pool.listener_state(&l), Some(ListenerState::Busy));
        // One at a time: the second waits for the result and READY.
        let w = writes(&pool.output(&l, b"RESULT 2\nOK"));
        assert!(w.is_empty());
        let w = writes(&pool.output(&l, b"READY\n"));
        assert_eq!(w.len(), 1);
        assert!(
            w[0].1.contains(
                "serial:1 pool:pool poolserial:1 eventname:PROCESS_STATE_STARTING len:1\np"
            )
        );
    }

    #[test]
    fn rejected_and_orphaned_events_are_sent_again_first() {
        let l = n("listener");
        let mut pool = PoolCore::new(n("pool"), 10, vec![l.clone()]);
        pool.spawned(&l);
        pool.state_changed(&l, StateName::Running);
        pool.output(&l, b"READY\n");
        let first = writes(&pool.accept(ev(0, "TICK_5", "when:5")));
        assert_eq!(first.len(), 1);
        assert!(pool.accept(ev(1, "TICK_5", "when:10")).is_empty());
        // FAIL: event 0 goes back to the head, ahead of event 1.
        let actions = pool.output(&l, b"RESULT 4\nFAIL");
        assert!(
            actions
                .iter()
                .any(|a| matches!(a, PoolAction::Warn(w) if w == "listener: event was rejected"))
        );
        assert_eq!(writes(&pool.output(&l, b"READY\n")), first);
        // The listener dies while busy: the event comes again to the next run.
        assert!(pool.exited(&l).is_empty());
        let serials: Vec<u64> = pool.buffered().map(|q| q.event.serial).collect();
        assert_eq!(serials, vec![0, 1]);
        pool.spawned(&l);
        pool.state_changed(&l, StateName::Starting);
        pool.output(&l, b"READY\n");
        assert_eq!(writes(&pool.state_changed(&l, StateName::Running)), first);
    }

    #[test]
    fn a_full_buffer_drops_its_oldest_event_with_supervisors_message() {
        let mut pool = PoolCore::new(n("pool"), 2, vec![n("l")]);
        assert!(pool.accept(ev(0, "TICK_5", "a")).is_empty());
        assert!(pool.accept(ev(1, "TICK_5", "b")).is_empty());
        let actions = pool.accept(ev(2, "TICK_5", "c"));
        assert_eq!(
            actions,
            vec![PoolAction::Error(
                "pool pool event buffer overflowed, discarding event 0".to_string()
            )]
        );
        let serials: Vec<u64> = pool.buffered().map(|q| q.event.serial).collect();
        assert_eq!(serials, vec![1, 2]);
    }

    #[test]
    fn events_go_to_the_first_ready_listener_of_the_pool() {
        let (a, b) = (n("l_00"), n("l_01"));
        let mut pool = PoolCore::new(n("l"), 10, vec![a.clone(), b.clone()]);
        for m in [&a, &b] {
            pool.spawned(m);
            pool.state_changed(m, StateName::Running);
            pool.output(m, b"READY\n");
        }
        let w0 = writes(&pool.accept(ev(0, "TICK_5", "x")));
        let w1 = writes(&pool.accept(ev(1, "TICK_5", "y")));
        assert_eq!(w0[0].0, "l_00");
        assert_eq!(w1[0].0, "l_01");
        assert!(pool.accept(ev(2, "TICK_5", "z")).is_empty());
        pool.output(&b, b"RESULT 2\nOK");
        let w2 = writes(&pool.output(&b, b"READY\n"));
        assert_eq!(w2[0].0, "l_01");
    }

    fn ctx() -> Context {
        let mut ctx = Context::default();
        for (name, group, codes) in [("web", "svc", vec![0, 2]), ("job", "job", vec![0])] {
            ctx.processes.insert(
                n(name),
                ProcessInfo {
                    group: n(group),
                    exit_codes: codes,
                    stdout_events: false,
                    stderr_events: false,
                },
            );
        }
        ctx
    }

    fn run(events: &[Event]) -> Vec<String> {
        let mut t = Translator::new();
        let ctx = ctx();
        events
            .iter()
            .flat_map(|e| t.translate(e, &ctx))
            .map(|(name, payload)| format!("{name} {payload}"))
            .collect()
    }

    fn changed(name: &str, from: StateName, to: StateName) -> Event {
        Event::StateChanged {
            name: n(name),
            from,
            to,
        }
    }

    fn spawned(name: &str, pid: u32) -> Event {
        Event::Spawned { name: n(name), pid }
    }

    fn exited(name: &str, pid: u32, exit: ExitInfo) -> Event {
        Event::Exited {
            name: n(name),
            pid,
            exit,
            expected: false,
        }
    }

    #[test]
    fn a_start_run_and_stop_as_supervisor_tells_them() {
        use StateName::*;
        let got = run(&[
            changed("web", Stopped, Starting),
            spawned("web", 41),
            changed("web", Starting, Running),
            changed("web", Running, Stopping),
            exited("web", 41, ExitInfo::Signal(tend_core::Signal::TERM)),
            changed("web", Stopping, Stopped),
        ]);
        assert_eq!(
            got,
            vec![
                "PROCESS_STATE_STARTING processname:web groupname:svc from_state:STOPPED tries:0",
                "PROCESS_STATE_RUNNING processname:web groupname:svc from_state:STARTING pid:41",
                "PROCESS_STATE_STOPPING processname:web groupname:svc from_state:RUNNING pid:41",
                "PROCESS_STATE_STOPPED processname:web groupname:svc from_state:STOPPING pid:41",
            ]
        );
    }

    #[test]
    fn failed_starts_count_tries_and_end_fatal_through_backoff() {
        use StateName::*;
        let got = run(&[
            changed("job", Stopped, Starting),
            spawned("job", 10),
            exited("job", 10, ExitInfo::Code(1)),
            changed("job", Starting, Backoff),
            changed("job", Backoff, Starting),
            spawned("job", 11),
            exited("job", 11, ExitInfo::Code(1)),
            // tend gives up in one step; Supervisor goes through BACKOFF.
            changed("job", Starting, Fatal),
            // A user start afterwards counts from 0 again.
            changed("job", Fatal, Starting),
        ]);
        assert_eq!(
            got,
            vec![
                "PROCESS_STATE_STARTING processname:job groupname:job from_state:STOPPED tries:0",
                "PROCESS_STATE_BACKOFF processname:job groupname:job from_state:STARTING tries:1",
                "PROCESS_STATE_STARTING processname:job groupname:job from_state:BACKOFF tries:1",
                "PROCESS_STATE_BACKOFF processname:job groupname:job from_state:STARTING tries:2",
                "PROCESS_STATE_FATAL processname:job groupname:job from_state:BACKOFF",
                "PROCESS_STATE_STARTING processname:job groupname:job from_state:FATAL tries:0",
            ]
        );
    }

    #[test]
    fn exits_are_expected_per_exitcodes_and_a_restart_goes_through_exited() {
        use StateName::*;
        let got = run(&[
            spawned("web", 5),
            changed("web", Starting, Running),
            exited("web", 5, ExitInfo::Code(2)),
            changed("web", Running, Exited),
            spawned("web", 6),
            changed("web", Exited, Starting),
            changed("web", Starting, Running),
            exited("web", 6, ExitInfo::Code(3)),
            // Restarted at once: tend says running -> starting.
            changed("web", Running, Starting),
            spawned("web", 7),
            changed("web", Starting, Running),
            exited("web", 7, ExitInfo::Signal(tend_core::Signal::KILL)),
            changed("web", Running, Exited),
            // Not in the context: exit code 0 is the expected one.
            spawned("other", 9),
            changed("other", Starting, Running),
            exited("other", 9, ExitInfo::Code(0)),
            changed("other", Running, Exited),
        ]);
        assert_eq!(
            got,
            vec![
                "PROCESS_STATE_RUNNING processname:web groupname:svc from_state:STARTING pid:5",
                "PROCESS_STATE_EXITED processname:web groupname:svc from_state:RUNNING expected:1 pid:5",
                "PROCESS_STATE_STARTING processname:web groupname:svc from_state:EXITED tries:0",
                "PROCESS_STATE_RUNNING processname:web groupname:svc from_state:STARTING pid:6",
                "PROCESS_STATE_EXITED processname:web groupname:svc from_state:RUNNING expected:0 pid:6",
                "PROCESS_STATE_STARTING processname:web groupname:svc from_state:EXITED tries:0",
                "PROCESS_STATE_RUNNING processname:web groupname:svc from_state:STARTING pid:7",
                "PROCESS_STATE_EXITED processname:web groupname:svc from_state:RUNNING expected:0 pid:7",
                "PROCESS_STATE_RUNNING processname:other groupname:other from_state:STARTING pid:9",
                "PROCESS_STATE_EXITED processname:other groupname:other from_state:RUNNING expected:1 pid:9",
            ]
        );
    }

    #[test]
    fn changes_published_out_of_order_are_told_in_order() {
        use StateName::*;
        // Changes arriving out of order (what tend's driver once published
        // for a `startsecs=0` process) are still told in order.
        let got = run(&[
            Event::Added { name: n("web") },
            spawned("web", 41),
            changed("web", Starting, Running),
            changed("web", Stopped, Starting),
            exited("web", 41, ExitInfo::Code(1)),
            spawned("web", 42),
            changed("web", Starting, Running),
            changed("web", Running, Starting),
            changed("web", Running, Stopping),
        ]);
        assert_eq!(
            got,
            vec![
                "PROCESS_STATE_STARTING processname:web groupname:svc from_state:STOPPED tries:0",
                "PROCESS_STATE_RUNNING processname:web groupname:svc from_state:STARTING pid:41",
                "PROCESS_STATE_EXITED processname:web groupname:svc from_state:RUNNING expected:0 pid:41",
                "PROCESS_STATE_STARTING processname:web groupname:svc from_state:EXITED tries:0",
                "PROCESS_STATE_RUNNING processname:web groupname:svc from_state:STARTING pid:42",
                "PROCESS_STATE_STOPPING processname:web groupname:svc from_state:RUNNING pid:42",
            ]
        );
    }

    #[test]
    fn stopping_a_process_in_backoff_stops_it_with_no_pid() {
        use StateName::*;
        let got = run(&[
            spawned("job", 10),
            exited("job", 10, ExitInfo::Code(1)),
            changed("job", Starting, Backoff),
            changed("job", Backoff, Stopped),
            changed("job", Stopped, Waiting),
        ]);
        assert_eq!(
            got,
            vec![
                "PROCESS_STATE_BACKOFF processname:job groupname:job from_state:STARTING tries:1",
                "PROCESS_STATE_STOPPED processname:job groupname:job from_state:BACKOFF pid:0",
            ]
        );
    }

    #[test]
    fn ticks_fall_on_period_boundaries() {
        assert_eq!(timeslice(5, 1_795_210_953), 1_795_210_950);
        assert_eq!(timeslice(60, 1_795_210_953), 1_795_210_920);
        assert_eq!(timeslice(3600, 1_795_210_953), 1_795_208_400);
        assert_eq!(timeslice(5, 10), 10);
    }
}
