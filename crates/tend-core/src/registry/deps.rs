//! Dependencies: whether a process's conditions hold, what a waiting process
//! waits for, the `restart = true` cascade, and the order stops go in.

use std::collections::{HashMap, HashSet};

use super::{Effect, Registry};
use crate::machine::{Input, State};
use crate::model::name::Name;
use crate::model::spec::Condition;
use crate::model::status::Health;
use crate::model::time::Mono;

/// Whether a process's dependencies hold, and if not, what it waits for.
pub(super) enum DepState {
    Satisfied,
    Waiting { on: String, blocked: Option<String> },
}

impl Registry {
    /// `name` went down (died, or was stopped or restarted): processes bound
    /// to it (`restart = true`) stop and wait for it to be back. Their own
    /// dependents follow when they go down in turn.
    pub(super) fn cascade(&mut self, now: Mono, name: &Name, out: &mut Vec<Effect>) {
        let bound: Vec<Name> = match self.bound.get(name) {
            Some(set) => set.iter().cloned().collect(),
            None => return,
        };
        for dependent in bound {
            self.feed(
                now,
                &dependent,
                Input::DependencyDown {
                    dependency: name.clone(),
                },
                out,
            );
        }
    }

    /// Starts every waiting process whose dependencies now hold, and updates
    /// what the others wait for. Each input fed here goes through
    /// [`Registry::feed`], which reconciles again, nested.
    pub(super) fn reconcile(&mut self, now: Mono, out: &mut Vec<Effect>) {
        if self.shutting_down {
            return;
        }
        loop {
            let waiting: Vec<(Name, String, Option<String>)> = self
                .waiting
                .iter()
                .filter_map(|n| match self.procs.get(n)?.state() {
                    State::Waiting { on, blocked } => {
                        Some((n.clone(), on.clone(), blocked.clone()))
                    }
                    _ => None,
                })
                .collect();
            let mut changed = false;
            for (name, on, blocked) in waiting {
                match self.dependency_state(&name) {
                    DepState::Satisfied => {
                        self.feed(now, &name, Input::Start, out);
                        changed = true;
                    }
                    DepState::Waiting {
                        on: now_on,
                        blocked: now_blocked,
                    } => {
                        if now_on != on || now_blocked != blocked {
                            self.feed(
                                now,
                                &name,
                                Input::Wait {
                                    on: now_on,
                                    blocked: now_blocked,
                                },
                                out,
                            );
                        }
                    }
                }
            }
            if !changed {
                break;
            }
        }
    }

    /// Whether `name`'s dependencies hold, and if not, what it waits for.
    pub(super) fn dependency_state(&self, name: &Name) -> DepState {
        let Some(p) = self.procs.get(name) else {
            return DepState::Satisfied;
        };
        let mut on = Vec::new();
        let mut blocked = Vec::new();
        for d in &p.spec().depends_on {
            let Some(dp) = self.procs.get(&d.name) else {
                on.push(format!("{} ({})", d.name, d.condition.as_str()));
                blocked.push(format!("{} is not defined", d.name));
                continue;
            };
            let st = dp.state();
            let up = matches!(st, State::Starting { .. } | State::Running { .. });
            let holds = match d.condition {
                Condition::Started => up,
                Condition::Ready => dp.is_ready(),
                Condition::Healthy => match dp.spec().health {
                    Some(_) => up && dp.health() == Health::Healthy,
                    None => dp.is_ready(),
                },
                Condition::Completed => dp.completed() && !up,
            };
            if holds {
                continue;
            }
            on.push(format!("{} ({})", d.name, d.condition.as_str()));
            let why = match st {
                State::Fatal { .. } => Some(format!("{} is fatal", d.name)),
                State::Stopped => Some(format!("{} is stopped", d.name)),
                State::Exited if d.condition == Condition::Completed => {
                    Some(format!("{} exited without success", d.name))
                }
                State::Exited if d.condition != Condition::Completed => {
                    Some(format!("{} exited", d.name))
                }
                _ => None,
            };
            blocked.extend(why);
        }
        if on.is_empty() {
            DepState::Satisfied
        } else {
            DepState::Waiting {
                on: on.join(", "),
                blocked: (!blocked.is_empty()).then(|| blocked.join("; ")),
            }
        }
    }

    /// The dependencies (transitively) of `names` that are down and would
    /// have to be started for them: not running, not already completed.
    pub(super) fn down_dependencies(&self, names: &[Name]) -> Vec<Name> {
        let mut out: Vec<Name> = Vec::new();
        let mut todo: Vec<Name> = names.to_vec();
        while let Some(n) = todo.pop() {
            let Some(p) = self.procs.get(&n) else {
                continue;
            };
            for d in &p.spec().depends_on {
                let Some(dp) = self.procs.get(&d.name) else {
                    continue;
                };
                if out.contains(&d.name) {
                    continue;
                }
                let down = matches!(
                    dp.state(),
                    State::Stopped | State::Exited | State::Fatal { .. }
                );
                let done = d.condition == Condition::Completed && dp.completed();
                if down && !done {
                    out.push(d.name.clone());
                }
                todo.push(d.name.clone());
            }
        }
        out
    }

    /// Stop levels: dependents before what they depend on, then higher
    /// priority numbers first; each level is stopped before the next starts.
    pub(super) fn stop_levels(&self, names: &[Name]) -> Vec<Vec<Name>> {
        // depth 0: nothing in the set depends on it; otherwise one more than
        // its deepest dependent in the set. Linear in processes + edges.
        let in_set: HashSet<&Name> = names.iter().collect();
        let mut dependents: HashMap<&Name, Vec<&Name>> = HashMap::new();
        for m in names {
            if let Some(p) = self.procs.get(m) {
                for d in &p.spec().depends_on {
                    if let Some(dep) = in_set.get(&d.name) {
                        dependents.entry(*dep).or_default().push(m);
                    }
                }
            }
        }
        let mut depth: HashMap<Name, usize> = HashMap::new();
        for n in names {
            depth_of(n, &dependents, &mut depth, &mut HashSet::new());
        }
        let mut ordered: Vec<Name> = names.to_vec();
        let prio = |n: &Name| self.procs.get(n).map_or(0, |p| p.spec().priority);
        ordered.sort_by(|a, b| {
            (
                depth.get(a),
                std::cmp::Reverse(prio(a)),
                std::cmp::Reverse(a),
            )
                .cmp(&(
                    depth.get(b),
                    std::cmp::Reverse(prio(b)),
                    std::cmp::Reverse(b),
                ))
        });
        let mut levels: Vec<Vec<Name>> = Vec::new();
        let mut last = None;
        for n in ordered {
            let key = (depth.get(&n).copied(), prio(&n));
            if last != Some(key) {
                levels.push(Vec::new());
                last = Some(key);
            }
            if let Some(l) = levels.last_mut() {
                l.push(n);
            }
        }
        levels
    }
}

/// How many dependents deep `n` is (memoized; a cycle, which config
/// validation rejects, is cut where it closes).
fn depth_of<'a>(
    n: &'a Name,
    dependents: &HashMap<&'a Name, Vec<&'a Name>>,
    memo: &mut HashMap<Name, usize>,
    visiting: &mut HashSet<&'a Name>,
) -> usize {
    if let Some(d) = memo.get(n) {
        return *d;
    }
    if !visiting.insert(n) {
        return 0;
    }
    let d = dependents.get(n).map_or(0, |ds| {
        ds.iter()
            .map(|m| depth_of(m, dependents, memo, visiting) + 1)
            .max()
            .unwrap_or(0)
    });
    visiting.remove(n);
    memo.insert(n.clone(), d);
    d
}
