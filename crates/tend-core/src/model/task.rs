//! What triggers a task: a process that runs to completion on a signal or a
//! timer (`[task.NAME]` in tend.toml). The command itself is an ordinary
//! [`ProcessSpec`](super::spec::ProcessSpec) with `restart = "never"`; this is
//! what only tasks have.

use std::time::Duration;

use super::name::Name;
use super::signal::Signal;

/// The triggers of one task, and what its run does around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskConf {
    /// The task's name (and its process's).
    pub name: Name,
    /// Run it when the program gets this signal.
    pub on_signal: Option<Signal>,
    /// Run it this often (the first run one period after the triggers start).
    pub every: Option<Duration>,
    /// Stop everything else first (dependents first), and start again what
    /// was running once it is done.
    pub shutdown: bool,
    /// Shut the program down once it is done.
    pub terminate: bool,
}
