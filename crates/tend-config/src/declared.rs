//! What a config file declares, grouped: the processes in their groups with
//! the groups' priorities, and what a reload must do to go from one read of
//! the file to the next ([`ReloadPlan`], a pure diff).
//!
//! Specs and whole process configs are shared (`Arc`), so the daemon that
//! runs them, the groups and every face's view hold one copy of each.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tend_core::{Name, ProcessSpec};

use crate::supervisord::ProcessDetails;

/// One process as a config file declares it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ProcessConfig {
    /// What tend runs (shared with the supervisor that runs it).
    pub spec: Arc<ProcessSpec>,
    /// From a supervisord.conf: Supervisor's settings that a spec does not
    /// hold (what `getAllConfigInfo` reports). `None` for a native config or
    /// a process added through the API: Supervisor's face derives them from
    /// the spec.
    pub program: Option<Arc<ProcessDetails>>,
    /// For a copy of a process with `replicas` (`web-2` of `[process.web]`):
    /// the spec all its copies are made from, named after the table, with
    /// `${TEND_REPLICA}` kept in its command, env, cwd, log paths and checks
    /// (see [`crate::replica_from_template`]). `tend scale` makes new copies
    /// from it; a changed template is a changed copy to a reload.
    pub template: Option<Arc<ProcessSpec>>,
}

impl ProcessConfig {
    /// A process known only by its spec.
    pub fn from_spec(spec: impl Into<Arc<ProcessSpec>>) -> ProcessConfig {
        ProcessConfig {
            spec: spec.into(),
            program: None,
            template: None,
        }
    }

    /// A process of a supervisord.conf, with Supervisor's settings.
    pub fn with_program(
        spec: impl Into<Arc<ProcessSpec>>,
        program: Arc<ProcessDetails>,
    ) -> ProcessConfig {
        ProcessConfig {
            spec: spec.into(),
            program: Some(program),
            template: None,
        }
    }
}

/// A process group as a config file declares it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupConfig {
    /// Its name.
    pub name: Name,
    /// The group's priority (Supervisor's; for a native file the lowest of
    /// its members').
    pub priority: i32,
    /// Its processes, in order.
    pub processes: Vec<Arc<ProcessConfig>>,
}

/// Everything a config file declares, in groups.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Declared {
    /// Every group, in file order.
    pub groups: Vec<GroupConfig>,
}

impl Declared {
    /// Groups made from the `group` of each spec (a native config): in
    /// order of first appearance, each with the lowest priority of its members.
    pub fn from_specs<S: Into<Arc<ProcessSpec>>>(specs: impl IntoIterator<Item = S>) -> Declared {
        let mut groups: Vec<GroupConfig> = Vec::new();
        // group name -> its index in `groups` (a thousand one-process groups
        // are common: each process is its own group by default)
        let mut index: HashMap<Name, usize> = HashMap::new();
        for spec in specs {
            let pc = ProcessConfig::from_spec(spec);
            match index.get(&pc.spec.group).and_then(|&i| groups.get_mut(i)) {
                Some(g) => {
                    g.priority = g.priority.min(pc.spec.priority);
                    g.processes.push(Arc::new(pc));
                }
                None => {
                    index.insert(pc.spec.group.clone(), groups.len());
                    groups.push(GroupConfig {
                        name: pc.spec.group.clone(),
                        priority: pc.spec.priority,
                        processes: vec![Arc::new(pc)],
                    });
                }
            }
        }
        Declared { groups }
    }

    /// Every process of every group.
    pub fn processes(&self) -> impl Iterator<Item = &Arc<ProcessConfig>> {
        self.groups.iter().flat_map(|g| g.processes.iter())
    }
}

/// What `tend reload` does to go from the processes running to a new read of
/// the config file, process by process (see [`ReloadPlan::new`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReloadPlan {
    /// Processes of the file that it no longer has: stop and remove them.
    pub remove: Vec<Name>,
    /// Processes whose settings changed: stop, replace, and start again if
    /// they were up.
    pub replace: Vec<Arc<ProcessConfig>>,
    /// Processes new to the supervisor: add, and start if they autostart.
    pub add: Vec<Arc<ProcessConfig>>,
}

impl ReloadPlan {
    /// The plan from `from_file` (the processes the last applied read of the
    /// file put in the supervisor), `known` (every process in the supervisor
    /// with the config it was added with, whatever added it) to `wanted`.
    /// Unchanged processes are not touched; processes added by other means
    /// (the API) and not in the file are left alone.
    pub fn new<'a>(
        from_file: impl IntoIterator<Item = &'a Name>,
        known: &BTreeMap<Name, Arc<ProcessConfig>>,
        wanted: &Declared,
    ) -> ReloadPlan {
        let wanted: BTreeMap<&Name, &Arc<ProcessConfig>> =
            wanted.processes().map(|p| (&p.spec.name, p)).collect();
        let mut plan = ReloadPlan::default();
        for name in from_file {
            if !wanted.contains_key(name) {
                plan.remove.push(name.clone());
            }
        }
        plan.remove.sort();
        for (name, new) in wanted {
            match known.get(name) {
                Some(old) if old == new => {}
                Some(_) => plan.replace.push(Arc::clone(new)),
                None => plan.add.push(Arc::clone(new)),
            }
        }
        plan
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.replace.is_empty() && self.add.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, cmd: &str) -> ProcessSpec {
        ProcessSpec::new(
            Name::new(name).expect("a valid name"),
            vec![cmd.to_string()],
        )
    }

    fn known(specs: &[ProcessSpec]) -> BTreeMap<Name, Arc<ProcessConfig>> {
        specs
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    Arc::new(ProcessConfig::from_spec(s.clone())),
                )
            })
            .collect()
    }

    fn names(v: &[Arc<ProcessConfig>]) -> Vec<&str> {
        v.iter().map(|p| p.spec.name.as_str()).collect()
    }

    #[test]
    fn a_reload_adds_replaces_and_removes_only_what_changed() {
        let (a, b, c) = (spec("a", "x"), spec("b", "y"), spec("c", "z"));
        let api = spec("api", "w");
        let known = known(&[a.clone(), b.clone(), c.clone(), api]);
        let from_file: Vec<Name> = [&a, &b, &c].iter().map(|s| s.name.clone()).collect();
        let d = spec("d", "new");
        let wanted = Declared::from_specs([a, spec("b", "changed"), d]);
        let plan = ReloadPlan::new(&from_file, &known, &wanted);
        assert_eq!(plan.remove, vec![Name::new("c").expect("valid")]);
        assert_eq!(names(&plan.replace), ["b"]);
        assert_eq!(names(&plan.add), ["d"]);
    }

    #[test]
    fn an_unchanged_file_plans_nothing_and_leaves_api_processes_alone() {
        let a = spec("a", "x");
        let known = known(&[a.clone(), spec("api", "w")]);
        let plan = ReloadPlan::new([&a.name], &known, &Declared::from_specs([a.clone()]));
        assert!(plan.is_empty(), "{plan:?}");
    }

    #[test]
    fn a_process_the_api_added_that_the_file_now_declares_is_replaced() {
        let known = known(&[spec("web", "old")]);
        let plan = ReloadPlan::new([], &known, &Declared::from_specs([spec("web", "new")]));
        assert_eq!(names(&plan.replace), ["web"]);
        assert!(plan.add.is_empty() && plan.remove.is_empty());
    }

    #[test]
    fn groups_come_in_order_of_first_appearance_with_their_lowest_priority() {
        let mut a = spec("a", "x");
        a.group = Name::new("g").expect("valid");
        a.priority = 5;
        let mut b = spec("b", "x");
        b.group = Name::new("g").expect("valid");
        b.priority = 3;
        let d = Declared::from_specs([a, b, spec("c", "x")]);
        let groups: Vec<(&str, i32, usize)> = d
            .groups
            .iter()
            .map(|g| (g.name.as_str(), g.priority, g.processes.len()))
            .collect();
        assert_eq!(groups, [("g", 3, 2), ("c", 999, 1)]);
    }
}
