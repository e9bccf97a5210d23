//! Resources of a process: the limits its cgroup enforces, what it uses, and
//! why a run ended when the kernel ended it.
//!
//! Limits are applied by the Unix layer through the process's own cgroup v2
//! (see `unix/cgroup.rs`); the state machine never reads them. Usage is read
//! on request only (`status` with stats, the exit of a run): nothing samples
//! in the background.

use serde::{Deserialize, Serialize};

/// What a process's cgroup allows it. Every field is optional; a limit whose
/// controller the cgroup tree does not delegate is not applied (the daemon
/// says so once).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResourceLimits {
    /// `memory.max`: bytes the process (with its children) may use; over it
    /// the kernel's OOM killer ends the whole process (`memory.oom.group`).
    pub memory_max: Option<u64>,
    /// `memory.high`: bytes above which the kernel throttles and reclaims.
    pub memory_high: Option<u64>,
    /// `cpu.max`: percent of one CPU (`50` is half a CPU, `200` two CPUs).
    pub cpu_max: Option<u32>,
    /// `pids.max`: tasks (processes and threads) at most.
    pub pids_max: Option<u64>,
    /// `io.weight`: 1 to 10000 (100 is the kernel's default).
    pub io_weight: Option<u16>,
}

/// The scheduling period `cpu_max` is applied over, in microseconds (the
/// kernel's default).
pub const CPU_PERIOD_USEC: u64 = 100_000;

impl ResourceLimits {
    /// Whether no limit is set.
    pub fn is_empty(&self) -> bool {
        self == &ResourceLimits::default()
    }

    /// The cgroup controllers these limits need, by name.
    pub fn controllers(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.memory_max.is_some() || self.memory_high.is_some() {
            out.push("memory");
        }
        if self.cpu_max.is_some() {
            out.push("cpu");
        }
        if self.pids_max.is_some() {
            out.push("pids");
        }
        if self.io_weight.is_some() {
            out.push("io");
        }
        out
    }

    /// Checks the ranges a hand-built value could break.
    pub fn validate(&self) -> Result<(), String> {
        if self.cpu_max == Some(0) {
            return Err("cpu_max must be above 0%".into());
        }
        if let Some(w) = self.io_weight
            && !(1..=10_000).contains(&w)
        {
            return Err(format!("io_weight {w} is not between 1 and 10000"));
        }
        if self.pids_max == Some(0) {
            return Err("pids_max must be at least 1".into());
        }
        Ok(())
    }
}

/// Where a process's usage was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatsSource {
    /// Its cgroup: every process it started, counted together.
    Cgroup,
    /// `/proc` of its main process alone (it has no cgroup).
    Proc,
}

/// What a process uses (or its run used), as `status --json` and the
/// `usage` event show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProcessStats {
    /// Where the numbers come from.
    pub source: StatsSource,
    /// CPU time of the current run (user + system), in microseconds.
    pub cpu_usec: u64,
    /// CPU use in percent of one CPU: since the previous read of this
    /// process's stats, or since it started on the first read.
    pub cpu_percent: f64,
    /// Memory in use now, in bytes (`memory.current`; without the memory
    /// controller, the resident memory of its processes).
    pub memory_bytes: Option<u64>,
    /// The most memory used at once, in bytes (`memory.peak`, since its
    /// cgroup was made; `VmHWM` of the main process otherwise).
    pub memory_peak_bytes: Option<u64>,
    /// Processes in its cgroup; `None` without one.
    pub processes: Option<u64>,
    /// Threads of its main process, when `/proc` could tell.
    #[serde(default)]
    pub threads: Option<u64>,
}

// `cpu_percent` is computed from integers and a positive interval: never NaN.
impl Eq for ProcessStats {}

impl ProcessStats {
    /// Stats with these numbers (the Unix layer and tests build them).
    pub fn new(source: StatsSource, cpu_usec: u64, cpu_percent: f64) -> ProcessStats {
        ProcessStats {
            source,
            cpu_usec,
            cpu_percent: if cpu_percent.is_finite() {
                cpu_percent
            } else {
                0.0
            },
            memory_bytes: None,
            memory_peak_bytes: None,
            processes: None,
            threads: None,
        }
    }
}

/// Why a run ended, when something other than the process decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitReason {
    /// The kernel's OOM killer ended it (its cgroup's `memory.events`
    /// counted an `oom_kill`): it went over `memory_max`.
    OomKill,
}

impl ExitReason {
    /// The snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ExitReason::OomKill => "oom_kill",
        }
    }
}

impl std::fmt::Display for ExitReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_name_their_controllers_and_check_their_ranges() {
        let mut l = ResourceLimits::default();
        assert!(l.is_empty() && l.controllers().is_empty());
        l.memory_high = Some(1 << 20);
        l.cpu_max = Some(50);
        l.io_weight = Some(200);
        assert_eq!(l.controllers(), ["memory", "cpu", "io"]);
        assert!(l.validate().is_ok());
        l.io_weight = Some(0);
        assert!(l.validate().is_err());
        l.io_weight = None;
        l.cpu_max = Some(0);
        assert!(l.validate().is_err());
    }

    #[test]
    fn stats_never_carry_nan() {
        assert_eq!(
            ProcessStats::new(StatsSource::Proc, 1, f64::NAN).cpu_percent,
            0.0
        );
    }
}
