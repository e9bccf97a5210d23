//! What the supervisor's events become: one log record each (with the
//! process, pid and reason as attributes) and, per process, a span for each
//! start or restart cycle with its steps as span events.

use std::collections::HashMap;

use tend_core::{Event, ExitInfo, Name, StateName};
use tend_server::metrics::ExitReason;

use super::proto::{Attr, LogRecord, Severity, Span, SpanEvent, Status, b, i, s};

/// Nanoseconds since the Unix epoch, now.
pub fn now_ns() -> u64 {
    u64::try_from(jiff::Timestamp::now().as_nanosecond()).unwrap_or(0)
}

/// A new trace id and span id: random, or from the time `t` (in ns) when
/// there is no randomness (ids of different times still differ).
pub fn ids(t: u64) -> ([u8; 16], [u8; 8]) {
    let mut trace_id = [0u8; 16];
    let mut span_id = [0u8; 8];
    if getrandom::fill(&mut trace_id).is_err() || getrandom::fill(&mut span_id).is_err() {
        trace_id[..8].copy_from_slice(&t.to_le_bytes());
        span_id.copy_from_slice(&t.rotate_left(17).to_le_bytes());
    }
    (trace_id, span_id)
}

/// The log record of one event (state changes have none: the events
/// around them tell the story).
pub fn log_of(ev: &Event, reason: Option<ExitReason>, time_ns: u64) -> Option<LogRecord> {
    let proc = |n: &Name| s("tend.process", n.as_str());
    let (severity, event, body, attrs): (Severity, &'static str, String, Vec<Attr>) = match ev {
        Event::Added { name } => (
            Severity::Info,
            "tend.process.added",
            format!("{name}: added"),
            vec![proc(name)],
        ),
        Event::Removed { name } => (
            Severity::Info,
            "tend.process.removed",
            format!("{name}: removed"),
            vec![proc(name)],
        ),
        Event::Spawned { name, pid } => (
            Severity::Info,
            "tend.process.spawned",
            format!("{name}: spawned with pid {pid}"),
            vec![proc(name), i("process.pid", i64::from(*pid))],
        ),
        Event::SpawnFailed { name, error } => (
            Severity::Error,
            "tend.process.spawn_failed",
            format!("{name}: spawn failed: {error}"),
            vec![proc(name), s("tend.reason", error.clone())],
        ),
        Event::Exited {
            name,
            pid,
            exit,
            expected,
        } => {
            let mut attrs = vec![proc(name), i("process.pid", i64::from(*pid))];
            match exit {
                ExitInfo::Code(c) => attrs.push(i("process.exit.code", i64::from(*c))),
                ExitInfo::Signal(sig) => attrs.push(s("tend.exit.signal", sig.name())),
            }
            attrs.push(b("tend.expected", *expected));
            if let Some(r) = reason {
                attrs.push(s("tend.reason", r.as_str()));
            }
            let severity = if *expected {
                Severity::Info
            } else {
                Severity::Warn
            };
            (
                severity,
                "tend.process.exited",
                format!("{name}: pid {pid} exited ({exit})"),
                attrs,
            )
        }
        Event::RestartScheduled { name, delay_ms } => (
            Severity::Info,
            "tend.process.backoff",
            format!("{name}: restarting in {delay_ms} ms"),
            vec![proc(name), i("tend.restart.delay_ms", *delay_ms as i64)],
        ),
        Event::GaveUp { name, reason } => (
            Severity::Error,
            "tend.process.gave_up",
            crate::daemon::own_log::gave_up_line(name.as_str(), reason),
            vec![proc(name), s("tend.reason", reason.clone())],
        ),
        Event::Killed { name, pid } => (
            Severity::Warn,
            "tend.process.killed",
            format!("{name}: pid {pid} did not stop in time; killed"),
            vec![proc(name), i("process.pid", i64::from(*pid))],
        ),
        Event::CheckFailed { name, reason } => (
            Severity::Warn,
            "tend.process.check_failed",
            format!("{name}: {reason}; restarting it"),
            vec![
                proc(name),
                s("tend.reason", reason.clone()),
                s("tend.check", ExitReason::of_check(reason).as_str()),
            ],
        ),
        Event::Stopped { name } => (
            Severity::Info,
            "tend.process.stopped",
            format!("{name}: stopped"),
            vec![proc(name)],
        ),
        _ => return None,
    };
    Some(LogRecord {
        time_ns,
        severity,
        event,
        body,
        attrs,
    })
}

/// A span still open.
struct Open {
    span: Span,
}

/// Spans are closed after this many steps (a crash loop that never gets
/// up would otherwise keep one open for ever); the next step opens another.
const MAX_EVENTS: usize = 64;

/// Follows the events of every process: why its next exit happens, and its
/// open span.
#[derive(Default)]
pub struct Tracker {
    pending: HashMap<Name, ExitReason>,
    open: HashMap<Name, Open>,
}

impl Tracker {
    /// Takes one event; returns the reason of an exit (for its log record)
    /// and the spans it finished.
    pub fn observe(
        &mut self,
        ev: &Event,
        time_ns: u64,
        spans: bool,
    ) -> (Option<ExitReason>, Vec<Span>) {
        let mut done = Vec::new();
        let mut reason = None;
        match ev {
            Event::CheckFailed { name, reason: why } => {
                self.pending.insert(name.clone(), ExitReason::of_check(why));
            }
            Event::Exited {
                name,
                exit,
                expected,
                ..
            } => {
                reason = Some(self.pending.remove(name).unwrap_or(match (exit, expected) {
                    (_, true) => ExitReason::Stop,
                    (ExitInfo::Code(_), false) => ExitReason::Code,
                    (ExitInfo::Signal(_), false) => ExitReason::Signal,
                }));
            }
            Event::Removed { name } => {
                self.pending.remove(name);
            }
            _ => {}
        }
        if spans {
            self.span_step(ev, reason, time_ns, &mut done);
        }
        (reason, done)
    }

    fn span_step(&mut self, ev: &Event, reason: Option<ExitReason>, t: u64, done: &mut Vec<Span>) {
        let (name, step, attrs): (&Name, &'static str, Vec<Attr>) = match ev {
            Event::StateChanged { name, from, to } => {
                match to {
                    StateName::Running => self.close(name, t, Status::Ok, done),
                    StateName::Fatal => self.close(name, t, Status::Error("gave up".into()), done),
                    StateName::Stopped | StateName::Exited => {
                        self.close(name, t, Status::Unset, done)
                    }
                    StateName::Starting | StateName::Waiting
                        if matches!(
                            from,
                            StateName::Stopped | StateName::Exited | StateName::Fatal
                        ) =>
                    {
                        self.open(name, "start", t);
                    }
                    _ => {}
                }
                return;
            }
            Event::Spawned { name, pid } => {
                (name, "spawned", vec![i("process.pid", i64::from(*pid))])
            }
            Event::SpawnFailed { name, error } => {
                (name, "spawn_failed", vec![s("tend.reason", error.clone())])
            }
            Event::Exited {
                name,
                pid,
                exit,
                expected,
            } => {
                if *expected && !self.open.contains_key(name) {
                    // A stop: no cycle.
                    return;
                }
                let mut a = vec![
                    i("process.pid", i64::from(*pid)),
                    s("tend.exit", exit.to_string()),
                ];
                if let Some(r) = reason {
                    a.push(s("tend.reason", r.as_str()));
                }
                (name, "exited", a)
            }
            Event::CheckFailed { name, reason } => {
                (name, "check_failed", vec![s("tend.reason", reason.clone())])
            }
            Event::RestartScheduled { name, delay_ms } => (
                name,
                "backoff",
                vec![i("tend.restart.delay_ms", *delay_ms as i64)],
            ),
            Event::Killed { name, pid } => {
                (name, "killed", vec![i("process.pid", i64::from(*pid))])
            }
            Event::GaveUp { name, reason } => {
                (name, "gave_up", vec![s("tend.reason", reason.clone())])
            }
            Event::Removed { name } => {
                self.close(name, t, Status::Unset, done);
                return;
            }
            _ => return,
        };
        if !self.open.contains_key(name) {
            // An exit or a failed check of a running process starts a restart cycle.
            self.open(name, "restart", t);
        }
        let full = self.open.get_mut(name).is_some_and(|o| {
            o.span.events.push(SpanEvent {
                time_ns: t,
                name: step,
                attrs,
            });
            o.span.events.len() >= MAX_EVENTS
        });
        if full {
            self.close(name, t, Status::Unset, done);
        }
    }

    fn open(&mut self, name: &Name, what: &str, t: u64) {
        let (trace_id, span_id) = ids(t);
        self.open.insert(
            name.clone(),
            Open {
                span: Span {
                    trace_id,
                    span_id,
                    name: format!("{what} {name}"),
                    start_ns: t,
                    end_ns: t,
                    attrs: vec![s("tend.process", name.as_str())],
                    events: Vec::new(),
                    status: Status::Unset,
                },
            },
        );
    }

    fn close(&mut self, name: &Name, t: u64, status: Status, done: &mut Vec<Span>) {
        if let Some(mut o) = self.open.remove(name) {
            o.span.end_ns = t;
            o.span.status = status;
            done.push(o.span);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::new(s).expect("name")
    }

    #[test]
    fn a_crash_is_a_restart_span_and_a_start_is_a_start_span() {
        let web = name("web");
        let mut t = Tracker::default();
        let sc = |from, to| Event::StateChanged {
            name: web.clone(),
            from,
            to,
        };
        let mut spans = Vec::new();
        let mut feed = |t: &mut Tracker, ev: Event| {
            let (_, s) = t.observe(&ev, 1, true);
            spans.extend(s);
        };
        feed(&mut t, sc(StateName::Stopped, StateName::Starting));
        feed(
            &mut t,
            Event::Spawned {
                name: web.clone(),
                pid: 7,
            },
        );
        feed(&mut t, sc(StateName::Starting, StateName::Running));
        feed(
            &mut t,
            Event::Exited {
                name: web.clone(),
                pid: 7,
                exit: ExitInfo::Code(1),
                expected: false,
            },
        );
        feed(&mut t, sc(StateName::Running, StateName::Backoff));
        feed(
            &mut t,
            Event::RestartScheduled {
                name: web.clone(),
                delay_ms: 100,
            },
        );
        feed(
            &mut t,
            Event::Spawned {
                name: web.clone(),
                pid: 8,
            },
        );
        feed(&mut t, sc(StateName::Starting, StateName::Running));
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["start web", "restart web"]);
        let steps: Vec<&str> = spans[1].events.iter().map(|e| e.name).collect();
        assert_eq!(steps, ["exited", "backoff", "spawned"]);
        assert_eq!(spans[1].status, Status::Ok);
    }

    #[test]
    fn exits_carry_their_reason() {
        let web = name("web");
        let mut t = Tracker::default();
        t.observe(
            &Event::CheckFailed {
                name: web.clone(),
                reason: "health check failed 3 times in a row: HTTP 500".into(),
            },
            1,
            false,
        );
        let ev = Event::Exited {
            name: web.clone(),
            pid: 3,
            exit: ExitInfo::Code(0),
            expected: true,
        };
        let (reason, _) = t.observe(&ev, 2, false);
        assert_eq!(reason, Some(ExitReason::Health));
        let rec = log_of(&ev, reason, 2).expect("a record");
        assert!(rec.attrs.contains(&s("tend.reason", "health")));
        assert!(rec.attrs.contains(&i("process.pid", 3)));
        assert!(rec.attrs.contains(&s("tend.process", "web")));
    }
}
