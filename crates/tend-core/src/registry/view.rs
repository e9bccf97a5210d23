//! The status snapshot: what `status` shows of every process.

use jiff::Timestamp;

use super::Registry;
use crate::machine::{Process, State};
use crate::model::status::{CheckStatus, ProcessStatus, StateName};
use crate::model::time::Mono;

impl Registry {
    /// A status snapshot. `wall` maps a monotonic instant to wall-clock time.
    pub fn status(&self, now: Mono, wall: impl Fn(Mono) -> Timestamp) -> Vec<ProcessStatus> {
        // The map is in name order already: a stable sort by priority alone
        // gives (priority, name) without a comparison of names, a lookup or a
        // clone (for 10,000 processes of one priority, one pass).
        let mut procs: Vec<&Process> = self.procs.values().map(|p| &**p).collect();
        procs.sort_by_key(|p| p.spec().priority);
        procs
            .into_iter()
            .map(|p| {
                let st = p.state();
                let up_since = match st {
                    State::Starting { since, .. }
                    | State::Running { since, .. }
                    | State::Stopping { since, .. } => Some(*since),
                    _ => None,
                };
                ProcessStatus {
                    name: p.name().clone(),
                    group: p.spec().group.clone(),
                    // A process that sent STOPPING=1 is on its way out: say so.
                    state: match st {
                        State::Running { .. } | State::Starting { .. }
                            if p.announced_stopping() =>
                        {
                            StateName::Stopping
                        }
                        _ => st.name(),
                    },
                    pid: st.pid(),
                    started_at: p.last_start().map(&wall),
                    stopped_at: p.last_stop().map(&wall),
                    uptime_ms: up_since.map(|s| millis(now.since(s))),
                    restarts: p.restarts(),
                    last_exit: p.last_exit(),
                    next_restart_in_ms: p.retry_at().map(|at| millis(at.since(now))),
                    error: p.error().map(str::to_string),
                    quick_deaths: p.quick_deaths(),
                    priority: p.spec().priority,
                    log_dropped_bytes: 0,
                    log_bytes: 0,
                    exit_reason: None,
                    next_run: None,
                    stats: None,
                    origin: Default::default(),
                    ready: p.is_ready(),
                    health: p.health(),
                    last_check: p.last_check().map(|c| CheckStatus {
                        kind: c.kind,
                        ok: c.ok,
                        detail: c.detail.clone(),
                        at: wall(c.at),
                    }),
                    status_text: p.status_text().map(str::to_string),
                    waiting_for: match st {
                        State::Waiting { on, blocked: None } => Some(on.clone()),
                        State::Waiting {
                            on,
                            blocked: Some(b),
                        } => Some(format!("{on}; {b}")),
                        _ => None,
                    },
                }
            })
            .collect()
    }
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use crate::model::name::Name;
    use crate::model::spec::ProcessSpec;
    use crate::model::status::StateName;
    use crate::testing::Sim;

    fn spec(name: &str, priority: i32) -> ProcessSpec {
        let mut s = ProcessSpec::new(Name::new(name).expect("valid name"), vec!["x".into()]);
        s.priority = priority;
        s
    }

    #[test]
    fn status_is_in_priority_then_name_order_and_shows_each_change() {
        let mut sim = Sim::new();
        for (name, prio) in [("b", 5), ("a", 5), ("z", 1), ("m", 9), ("c", 1)] {
            sim.add(spec(name, prio)).expect("added");
        }
        let names = |sim: &Sim| -> Vec<(String, StateName)> {
            sim.registry
                .status(sim.now, |_| jiff::Timestamp::UNIX_EPOCH)
                .into_iter()
                .map(|s| (s.name.to_string(), s.state))
                .collect()
        };
        let order: Vec<String> = names(&sim).into_iter().map(|(n, _)| n).collect();
        assert_eq!(order, ["c", "z", "a", "b", "m"]);
        // The snapshot is made anew each time: a start shows at once.
        sim.start_service();
        assert!(
            names(&sim)
                .iter()
                .all(|(_, s)| *s == StateName::Starting || *s == StateName::Running)
        );
        sim.request(crate::registry::Op::Stop, &["a"]);
        let a = names(&sim).into_iter().find(|(n, _)| n == "a").expect("a");
        assert_ne!(a.1, StateName::Running);
        assert_ne!(a.1, StateName::Starting);
    }
}
