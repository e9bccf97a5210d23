//! The status snapshot: what `status` shows of every process.

use jiff::Timestamp;

use super::Registry;
use crate::machine::State;
use crate::model::status::{CheckStatus, ProcessStatus, StateName};
use crate::model::time::Mono;

impl Registry {
    /// A status snapshot. `wall` maps a monotonic instant to wall-clock time.
    pub fn status(&self, now: Mono, wall: impl Fn(Mono) -> Timestamp) -> Vec<ProcessStatus> {
        let names = self.sorted(self.procs.keys().cloned().collect());
        names
            .iter()
            .filter_map(|n| self.procs.get(n))
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
