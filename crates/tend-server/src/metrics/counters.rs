//! The counters that must outlive a scrape, counted as things happen: the
//! events the supervisor publishes (and the exits among them, by reason)
//! and the requests each door served.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tend_core::{Event, ExitInfo, Name};

/// Why a run ended, as `tend_process_exits_total{reason}` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitReason {
    /// It exited by itself with a code (0 included).
    Code,
    /// A signal ended it, not one tend sent to stop it.
    Signal,
    /// tend killed it: its health check failed.
    Health,
    /// tend killed it: its watchdog went silent.
    Watchdog,
    /// tend killed it: it was not ready within `start_timeout`.
    StartTimeout,
    /// tend stopped it at a user's request (or at shutdown, or a reload).
    Stop,
}

impl ExitReason {
    /// Every reason, in the order of the samples.
    pub const ALL: [ExitReason; 6] = [
        ExitReason::Code,
        ExitReason::Signal,
        ExitReason::Health,
        ExitReason::Watchdog,
        ExitReason::StartTimeout,
        ExitReason::Stop,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ExitReason::Code => "code",
            ExitReason::Signal => "signal",
            ExitReason::Health => "health",
            ExitReason::Watchdog => "watchdog",
            ExitReason::StartTimeout => "start_timeout",
            ExitReason::Stop => "stop",
        }
    }

    /// The reason a `check_failed` event gives, by the words the engine
    /// uses (`health check failed ...`, `watchdog: ...`, `not ready within
    /// start_timeout ...`; the daemon's integration tests pin them).
    pub fn of_check(reason: &str) -> ExitReason {
        if reason.starts_with("watchdog") {
            ExitReason::Watchdog
        } else if reason.contains("start_timeout") {
            ExitReason::StartTimeout
        } else {
            ExitReason::Health
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The kinds of events, as `tend_events_total{event}` names them (the
/// `event` field of their JSON form).
pub const EVENT_KINDS: [&str; 12] = [
    "added",
    "removed",
    "state_changed",
    "spawned",
    "spawn_failed",
    "exited",
    "restart_scheduled",
    "gave_up",
    "killed",
    "check_failed",
    "stopped",
    "other",
];

/// The index of an event's kind in [`EVENT_KINDS`].
pub fn event_kind(ev: &Event) -> usize {
    match ev {
        Event::Added { .. } => 0,
        Event::Removed { .. } => 1,
        Event::StateChanged { .. } => 2,
        Event::Spawned { .. } => 3,
        Event::SpawnFailed { .. } => 4,
        Event::Exited { .. } => 5,
        Event::RestartScheduled { .. } => 6,
        Event::GaveUp { .. } => 7,
        Event::Killed { .. } => 8,
        Event::CheckFailed { .. } => 9,
        Event::Stopped { .. } => 10,
        _ => 11,
    }
}

/// The exits of one process so far, and why the next one will happen when
/// tend already knows (a failed check kills it).
#[derive(Debug, Default, Clone, Copy)]
struct Exits {
    by_reason: [u64; ExitReason::ALL.len()],
    pending: Option<ExitReason>,
}

/// The counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    exits: Mutex<HashMap<Name, Exits>>,
    events: [AtomicU64; EVENT_KINDS.len()],
    /// Events the counting task missed because it lagged behind.
    pub(crate) missed: AtomicU64,
    requests: Mutex<HashMap<RequestKey, u64>>,
}

/// One series of `tend_http_requests_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct RequestKey {
    pub(crate) door: std::sync::Arc<str>,
    pub(crate) face: &'static str,
    pub(crate) code: u16,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Counters stay consistent whatever a panicking holder was doing.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Counters {
    /// Counts one event.
    pub(crate) fn observe(&self, ev: &Event) {
        self.events[event_kind(ev)].fetch_add(1, Ordering::Relaxed);
        match ev {
            Event::Added { name } => {
                locked(&self.exits).insert(name.clone(), Exits::default());
            }
            Event::Removed { name } => {
                locked(&self.exits).remove(name);
            }
            Event::CheckFailed { name, reason } => {
                let mut exits = locked(&self.exits);
                exits.entry(name.clone()).or_default().pending = Some(ExitReason::of_check(reason));
            }
            Event::Spawned { name, .. } => {
                if let Some(e) = locked(&self.exits).get_mut(name) {
                    e.pending = None;
                }
            }
            Event::Exited {
                name,
                exit,
                expected,
                ..
            } => {
                let mut exits = locked(&self.exits);
                let e = exits.entry(name.clone()).or_default();
                let reason = e.pending.take().unwrap_or(match (exit, expected) {
                    (_, true) => ExitReason::Stop,
                    (ExitInfo::Code(_), false) => ExitReason::Code,
                    (ExitInfo::Signal(_), false) => ExitReason::Signal,
                });
                e.by_reason[reason.index()] += 1;
            }
            _ => {}
        }
    }

    /// Exits of `name` by reason, in the order of [`ExitReason::ALL`]: one
    /// short lock per process of a scrape (the event counter is never kept
    /// waiting for a whole scrape), and no copy of every name.
    pub(crate) fn exits(&self, name: &Name) -> [u64; ExitReason::ALL.len()] {
        locked(&self.exits)
            .get(name)
            .map_or([0; ExitReason::ALL.len()], |e| e.by_reason)
    }

    /// Events by kind, in the order of [`EVENT_KINDS`].
    pub(crate) fn events(&self) -> [u64; EVENT_KINDS.len()] {
        std::array::from_fn(|i| self.events[i].load(Ordering::Relaxed))
    }

    /// Counts one answered request.
    pub(crate) fn request(&self, key: RequestKey) {
        *locked(&self.requests).entry(key).or_default() += 1;
    }

    /// Requests so far, sorted.
    pub(crate) fn requests(&self) -> Vec<(RequestKey, u64)> {
        let mut v: Vec<_> = locked(&self.requests)
            .iter()
            .map(|(k, n)| (k.clone(), *n))
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tend_core::Signal;

    fn name(s: &str) -> Name {
        Name::new(s).expect("name")
    }

    #[test]
    fn exits_are_counted_by_why_they_happened() {
        let c = Counters::default();
        let web = name("web");
        let exited = |exit, expected| Event::Exited {
            name: web.clone(),
            pid: 1,
            exit,
            expected,
        };
        c.observe(&Event::Added { name: web.clone() });
        c.observe(&exited(ExitInfo::Code(1), false));
        c.observe(&exited(ExitInfo::Signal(Signal::INT), false));
        c.observe(&Event::CheckFailed {
            name: web.clone(),
            reason: "health check failed 3 times in a row: HTTP 500".into(),
        });
        c.observe(&exited(ExitInfo::Signal(Signal::TERM), true));
        c.observe(&Event::CheckFailed {
            name: web.clone(),
            reason: "not ready within start_timeout (2s)".into(),
        });
        c.observe(&exited(ExitInfo::Signal(Signal::KILL), true));
        c.observe(&Event::CheckFailed {
            name: web.clone(),
            reason: "watchdog: no WATCHDOG=1 within 1s".into(),
        });
        c.observe(&exited(ExitInfo::Code(0), true));
        c.observe(&exited(ExitInfo::Code(0), true));
        assert_eq!(c.exits(&web), [1, 1, 1, 1, 1, 1]);
        assert_eq!(c.events()[5], 6);
        c.observe(&Event::Removed { name: web.clone() });
        assert_eq!(c.exits(&web), [0; 6]);
    }
}
