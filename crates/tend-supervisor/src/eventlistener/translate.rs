//! tend's events as Supervisor tells them: event names, payloads, and the
//! states a process passes through on the way (pure: no I/O).

use std::collections::HashMap;
use std::sync::Arc;

use tend_core::{Event, ExitInfo, Name, StateName};

/// Event types that stand for their subtypes (`supervisor/events.py`).
pub(super) const ABSTRACT: &[&str] = &[
    "PROCESS_STATE",
    "PROCESS_COMMUNICATION",
    "PROCESS_LOG",
    "SUPERVISOR_STATE_CHANGE",
    "TICK",
    "PROCESS_GROUP",
];

/// The tick periods, in Supervisor's order (`events.TICK_EVENTS`).
pub(super) const TICK_PERIODS: [u64; 3] = [5, 60, 3600];

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
    pub(super) fn group_of(&self, name: &Name) -> Name {
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
pub(super) fn sup_state(s: StateName) -> &'static str {
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
pub(super) fn supervisor_steps((from, to): (StateName, StateName)) -> Vec<(StateName, StateName)> {
    use StateName::{Backoff, Exited, Fatal, Running, Starting, Stopped, Waiting};
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
pub(super) struct Track {
    /// The pid of the current (or last) run.
    pub(super) pid: u32,
    /// Supervisor's `backoff` counter: failed starts in a row.
    pub(super) tries: u32,
    /// The last exit and its pid.
    pub(super) exit: Option<(u32, ExitInfo)>,
    /// The state of the last change told (`None` before the first).
    pub(super) state: Option<StateName>,
    /// Changes told before tend published them (see [`Translator`]); their
    /// own events, when they come, are dropped.
    pub(super) told_early: Vec<(StateName, StateName)>,
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
    pub(super) procs: HashMap<Name, Track>,
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

    pub(super) fn state_event(
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
