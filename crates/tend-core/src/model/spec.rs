//! The validated description of a process: what to run and how to keep it alive.
//!
//! Every config format (native TOML, supervisord.conf) and the library API end
//! in a [`ProcessSpec`]; nothing downstream knows where a spec came from.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::name::Name;
use super::signal::Signal;

/// Everything tend needs to run and supervise one process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ProcessSpec {
    /// Unique name.
    pub name: Name,
    /// Logical group (`GROUP:*` patterns, status column). Defaults to the name.
    pub group: Name,
    /// argv; `command[0]` is looked up on `PATH`. Never run through a shell.
    pub command: Vec<String>,
    /// Working directory; the daemon's when `None`.
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// Variables added to the environment (or the whole environment with `clear_env`).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Start from an empty environment instead of the daemon's.
    #[serde(default)]
    pub clear_env: bool,
    /// Run as this user (name or numeric uid); their supplementary groups are kept.
    #[serde(default)]
    pub user: Option<String>,
    /// Run with this primary group (name or gid); the user's primary group otherwise.
    #[serde(default)]
    pub unix_group: Option<String>,
    /// File mode creation mask, e.g. `0o022`.
    #[serde(default)]
    pub umask: Option<u32>,
    /// Start when the supervisor starts (or when added while it runs).
    #[serde(default = "yes")]
    pub autostart: bool,
    /// Lower starts first and stops last.
    #[serde(default = "default_priority")]
    pub priority: i32,
    /// When an exit leads to a restart.
    #[serde(default)]
    pub restart: RestartPolicy,
    /// Exit codes that count as success (for `on-failure`).
    #[serde(default = "default_success_codes")]
    pub success_exit_codes: Vec<i32>,
    /// Restart delays.
    #[serde(default)]
    pub backoff: Backoff,
    /// How to stop it.
    #[serde(default)]
    pub stop: StopSpec,
    /// Where its output goes and how it is written.
    #[serde(default)]
    pub logs: LogSpec,
    /// Other processes this one needs, and what it needs of them.
    #[serde(default)]
    pub depends_on: Vec<Dependency>,
    /// Readiness check: the process is `starting` until it passes (then
    /// `running`, which is what `ready` dependencies wait for).
    #[serde(default)]
    pub ready: Option<super::probe::ProbeSpec>,
    /// Liveness check: `failure_threshold` failures in a row kill the process
    /// and restart it through the back-off.
    #[serde(default)]
    pub health: Option<super::probe::ProbeSpec>,
    /// systemd's readiness protocol: the process gets `NOTIFY_SOCKET` and is
    /// ready when it sends `READY=1`.
    #[serde(default)]
    pub notify: bool,
    /// With `notify`: `WATCHDOG=1` must arrive at least this often, or the
    /// process is restarted (`WATCHDOG_USEC` is set for it).
    #[serde(default, with = "crate::model::duration::serde_opt")]
    pub watchdog: Option<Duration>,
    /// A process not ready (or not past `start_secs`) this long after it was
    /// spawned is killed and restarted through the back-off (Procmon's maxstartup).
    #[serde(default, with = "crate::model::duration::serde_opt")]
    pub start_timeout: Option<Duration>,
    /// Give it a pipe as stdin, written through [`crate::Supervisor::send_stdin`]
    /// (Supervisor's `sendProcessStdin`); `/dev/null` otherwise, as systemd does.
    #[serde(default)]
    pub stdin_pipe: bool,
    /// How long a fresh process stays `starting` before it counts as `running`
    /// (Supervisor's `startsecs`). Zero: running as soon as it has been spawned.
    #[serde(default, with = "crate::model::duration::serde_str")]
    pub start_secs: Duration,
    /// What its cgroup allows it (memory, CPU, tasks, I/O weight); applied
    /// where the Unix layer runs processes in cgroups of their own.
    #[serde(default)]
    pub limits: super::resources::ResourceLimits,
    /// When it ends for good (exited and not restarted, or fatal), the
    /// daemon stops everything and exits with its exit status, as `docker
    /// run` does with its one process. Read by the daemon, not the engine.
    #[serde(default)]
    pub exit_with: bool,
    /// The daemon's readiness (`GET /readyz`) waits for it to be ready.
    /// Read by the daemon, not the engine.
    #[serde(default)]
    pub ready_gate: bool,
    /// Why this process cannot be spawned, known when its config was read
    /// (Supervisor's `can't parse command ...`): every start of it fails at
    /// once with this error, as a start of a missing program does, and the
    /// other processes of the file run. `command` may then be anything.
    #[serde(default)]
    pub spawn_error: Option<String>,
}

fn yes() -> bool {
    true
}
fn default_priority() -> i32 {
    999
}
fn default_success_codes() -> Vec<i32> {
    vec![0]
}

impl ProcessSpec {
    /// A spec with every default: autostart, `restart = "always"`, doubling
    /// back-off (1 s .. 1 h, `min_uptime` 1 s), stop with TERM then KILL after 5 s.
    pub fn new(name: Name, command: Vec<String>) -> Self {
        ProcessSpec {
            group: name.clone(),
            name,
            command,
            cwd: None,
            env: BTreeMap::new(),
            clear_env: false,
            user: None,
            unix_group: None,
            umask: None,
            autostart: true,
            priority: default_priority(),
            restart: RestartPolicy::default(),
            success_exit_codes: default_success_codes(),
            backoff: Backoff::default(),
            stop: StopSpec::default(),
            logs: LogSpec::default(),
            stdin_pipe: false,
            depends_on: Vec::new(),
            ready: None,
            health: None,
            notify: false,
            watchdog: None,
            start_timeout: None,
            start_secs: Duration::ZERO,
            limits: super::resources::ResourceLimits::default(),
            exit_with: false,
            ready_gate: false,
            spawn_error: None,
        }
    }

    /// Splits `command` shell-style (quotes and backslashes, no shell) into argv.
    pub fn split_command(command: &str) -> Result<Vec<String>, SpecError> {
        match shlex::split(command) {
            Some(v) if !v.is_empty() => Ok(v),
            Some(_) => Err(SpecError::EmptyCommand),
            None => Err(SpecError::BadQuoting(command.to_string())),
        }
    }

    /// Checks the invariants a hand-built spec could break.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.spawn_error.is_none() && (self.command.is_empty() || self.command[0].is_empty()) {
            return Err(SpecError::EmptyCommand);
        }
        if let Some(bad) = self.command.iter().find(|a| a.contains('\0')) {
            return Err(SpecError::Nul(bad.clone()));
        }
        for (k, v) in &self.env {
            if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
                return Err(SpecError::BadEnv(k.clone()));
            }
        }
        if let Some(m) = self.umask
            && m > 0o777
        {
            return Err(SpecError::BadUmask(m));
        }
        if let BackoffMode::Doubling { initial, max } = self.backoff.mode
            && initial > max
        {
            return Err(SpecError::Backoff("initial is larger than max".into()));
        }
        self.limits.validate().map_err(SpecError::Limits)?;
        self.validate_stop().map_err(SpecError::Stop)?;
        if self.backoff.floor < Backoff::MIN_FLOOR {
            return Err(SpecError::Backoff(format!(
                "floor must be at least {}",
                crate::model::duration::format(Backoff::MIN_FLOOR)
            )));
        }
        if self.backoff.give_up_after == Some(0) {
            return Err(SpecError::Backoff(
                "give_up_after must be at least 1".into(),
            ));
        }
        Ok(())
    }

    fn validate_stop(&self) -> Result<(), String> {
        match (&self.stop.command, &self.stop.stdin) {
            (Some(_), Some(_)) => Err("set command or stdin, not both".into()),
            (Some(c), None) if c.first().is_none_or(String::is_empty) => {
                Err("command is empty".into())
            }
            (Some(c), None) if c.iter().any(|a| a.contains('\0')) => {
                Err("command contains a NUL byte".into())
            }
            (None, Some(s)) if s.is_empty() => Err("stdin is empty".into()),
            (None, Some(_)) if !self.stdin_pipe => {
                Err("stdin needs the process's stdin to be a pipe (stdin = \"pipe\")".into())
            }
            _ => Ok(()),
        }
    }

    /// Whether an exit code counts as success.
    pub fn is_success(&self, code: i32) -> bool {
        self.success_exit_codes.contains(&code)
    }
}

/// A spec that breaks an invariant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// No program to run.
    #[error("command is empty")]
    EmptyCommand,
    /// Unbalanced quotes in a string command.
    #[error("command {0:?} has unbalanced quotes or a trailing backslash")]
    BadQuoting(String),
    /// An argument with a NUL byte.
    #[error("command argument {0:?} contains a NUL byte")]
    Nul(String),
    /// An environment variable name that cannot be set.
    #[error("environment variable name {0:?} is empty or contains '=' or NUL")]
    BadEnv(String),
    /// A umask above 0o777.
    #[error("umask {0:o} is larger than 777")]
    BadUmask(u32),
    /// Inconsistent back-off settings.
    #[error("backoff: {0}")]
    Backoff(String),
    /// A resource limit out of range.
    #[error("limits: {0}")]
    Limits(String),
    /// `stop.command` or `stop.stdin` does not fit.
    #[error("stop: {0}")]
    Stop(String),
}

/// When an exit is followed by a restart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// After every exit (that a user did not ask for).
    #[default]
    Always,
    /// After an exit whose code is not in `success_exit_codes`, or a death by signal.
    OnFailure,
    /// Never.
    Never,
}

/// Restart delays and when to give up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backoff {
    /// How the delay grows.
    pub mode: BackoffMode,
    /// A run shorter than this is a *quick death*: it counts towards
    /// `give_up_after` and, in doubling mode, grows the delay.
    #[serde(with = "crate::model::duration::serde_str")]
    pub min_uptime: Duration,
    /// Go to `fatal` after this many quick deaths in a row (Supervisor's
    /// `startretries`). `None`: never give up.
    #[serde(default)]
    pub give_up_after: Option<u32>,
    /// Becoming ready resets the back-off, instead of waiting for a run of `min_uptime`.
    #[serde(default)]
    pub reset_on_ready: bool,
    /// The least time between two automatic spawns: a run shorter than this
    /// waits out the rest before it is restarted, whatever the mode says, so
    /// no configuration can respawn a process that exits at once in a hot
    /// loop. At least [`Backoff::MIN_FLOOR`]; 100 ms by default (systemd's
    /// `RestartSec`).
    #[serde(default = "default_floor", with = "crate::model::duration::serde_str")]
    pub floor: Duration,
}

fn default_floor() -> Duration {
    Backoff::DEFAULT_FLOOR
}

impl Backoff {
    /// The default [`Backoff::floor`].
    pub const DEFAULT_FLOOR: Duration = Duration::from_millis(100);
    /// The smallest [`Backoff::floor`] a spec may have.
    pub const MIN_FLOOR: Duration = Duration::from_millis(10);
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            mode: BackoffMode::default(),
            min_uptime: Duration::from_secs(1),
            give_up_after: None,
            reset_on_ready: false,
            floor: Backoff::DEFAULT_FLOOR,
        }
    }
}

/// The two back-off shapes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum BackoffMode {
    /// Twisted's ProcessMonitor: a quick death waits the current delay, then the
    /// delay doubles up to `max`; a longer run restarts at once and resets the
    /// delay to `initial`.
    Doubling {
        /// First delay after a quick death.
        #[serde(with = "crate::model::duration::serde_str")]
        initial: Duration,
        /// Upper bound.
        #[serde(with = "crate::model::duration::serde_str")]
        max: Duration,
    },
    /// The Electron manager's table: each restart waits the next step, the last
    /// step repeats; a run of at least `reset_after` starts again at step one.
    /// An empty table, or `[0]`, never restarts.
    Schedule {
        /// The delays, in order.
        #[serde(with = "crate::model::duration::serde_str_vec")]
        steps: Vec<Duration>,
        /// A run at least this long resets the table.
        #[serde(with = "crate::model::duration::serde_str")]
        reset_after: Duration,
    },
    /// Supervisor's `startsecs`/`startretries` model: the n-th failed start in
    /// a row waits n seconds (`step` × n); an exit after a successful start
    /// restarts at once.
    Linear {
        /// Added per failed attempt.
        #[serde(with = "crate::model::duration::serde_str")]
        step: Duration,
    },
}

impl Default for BackoffMode {
    fn default() -> Self {
        BackoffMode::Doubling {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(3600),
        }
    }
}

impl BackoffMode {
    /// The Electron manager's default table: 100 ms, 500 ms, 1 s, 30 s, 1 min,
    /// 5 min, 15 min, reset after 30 min.
    pub fn default_schedule() -> Self {
        BackoffMode::Schedule {
            steps: [100, 500, 1000, 30_000, 60_000, 300_000, 900_000]
                .into_iter()
                .map(Duration::from_millis)
                .collect(),
            reset_after: Duration::from_secs(30 * 60),
        }
    }
}

/// How a process is stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopSpec {
    /// First signal, sent to the whole process group.
    pub signal: Signal,
    /// Wait this long for the group to exit, then SIGKILL it (Twisted's killTime).
    #[serde(with = "crate::model::duration::serde_str")]
    pub timeout: Duration,
    /// Run before `signal` (systemd's `ExecStop`), with `MAINPID` set to the
    /// process's pid, in its cwd and environment. `signal` follows when it
    /// ends; one still running when `timeout` is over is killed, and the
    /// signal then gets a `timeout` of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Written to the process's stdin instead of sending `signal`; `signal`
    /// is sent only if the process is still running after `timeout`, and gets
    /// a `timeout` of its own. Needs [`ProcessSpec::stdin_pipe`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
}

impl StopSpec {
    /// Whether a stop begins with `command` or `stdin` rather than the signal.
    pub fn is_gentle(&self) -> bool {
        self.command.is_some() || self.stdin.is_some()
    }
}

impl Default for StopSpec {
    fn default() -> Self {
        StopSpec {
            signal: Signal::TERM,
            timeout: Duration::from_secs(5),
            command: None,
            stdin: None,
        }
    }
}

/// Where one output stream of a process goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogTarget {
    /// Appended to this file (absolute once validated), rotated by size.
    File(PathBuf),
    /// Written, line by line, to the supervisor's own stdout or stderr.
    Inherit,
    /// Nowhere: the stream is `/dev/null`, so it costs no pipe and no
    /// reading (and `tend logs` has nothing of it).
    Null,
    /// Written nowhere, but read: kept in the in-memory tail and published
    /// to subscribers (`tend logs`, Supervisor's `PROCESS_LOG` events).
    Memory,
}

/// How a process's output is captured. A stream whose target is not
/// [`LogTarget::Null`] is read through a pipe, split into whole lines, kept in
/// a bounded in-memory tail and published to subscribers; the targets say
/// where it is written besides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSpec {
    /// Where stdout goes.
    pub stdout: LogTarget,
    /// Where stderr goes (ignored with `merge_stderr`).
    pub stderr: LogTarget,
    /// Send stderr into stdout's pipe (Supervisor's `redirect_stderr`): one
    /// stream, in the order the child wrote it.
    pub merge_stderr: bool,
    /// Remove terminal escape sequences (colours, cursor movement, titles).
    pub strip_ansi: bool,
    /// Prefix each line written to a file with an RFC 3339 time.
    pub timestamps: bool,
    /// Rotate a file once it reaches this many bytes; 0 never rotates.
    pub max_size: u64,
    /// Rotated files kept (`NAME.out.log.1` ... `.N`).
    pub backups: u32,
    /// stdout is a protocol channel, not output (Supervisor's event
    /// listeners speak `READY`/`RESULT` on it): it still goes to its target
    /// and the tail, and whole to a stdout tap
    /// ([`crate::Supervisor::tap_stdout`]), but not to live log subscribers
    /// (the foreground view, `tend logs -f`), which may drop what they cannot
    /// keep up with.
    pub protocol_stdout: bool,
}

impl LogSpec {
    /// Whether stdout and stderr each get a pipe: a `null` stream goes to
    /// `/dev/null` unread, except a protocol stdout (it is read whatever its
    /// target). A merged stderr shares stdout's pipe (or `/dev/null`), so it
    /// has none of its own.
    pub fn captured(&self) -> (bool, bool) {
        let stdout = self.stdout != LogTarget::Null || self.protocol_stdout;
        let stderr = !self.merge_stderr && self.stderr != LogTarget::Null;
        (stdout, stderr)
    }
}

impl Default for LogSpec {
    fn default() -> Self {
        LogSpec {
            stdout: LogTarget::Inherit,
            stderr: LogTarget::Inherit,
            merge_stderr: false,
            strip_ansi: false,
            timestamps: false,
            max_size: 50 * 1024 * 1024,
            backups: 10,
            protocol_stdout: false,
        }
    }
}

/// What a dependent waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Condition {
    /// The dependency has been spawned.
    Started,
    /// Its readiness check passed (just started, when it has none).
    Ready,
    /// Its health check passed (ready, when it has none).
    Healthy,
    /// It exited with a success code (a migration, a one-shot setup).
    Completed,
}

impl Condition {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Started => "started",
            Condition::Ready => "ready",
            Condition::Healthy => "healthy",
            Condition::Completed => "completed",
        }
    }
}

/// One edge of the dependency graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dependency {
    /// The process depended on.
    pub name: Name,
    /// What must hold before this one starts.
    pub condition: Condition,
    /// Procmon's tree semantics: when the dependency dies or is restarted,
    /// stop this process, and start it again once the condition holds again.
    #[serde(default)]
    pub restart: bool,
}
