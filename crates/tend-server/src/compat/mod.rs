//! Supervisor's face: the XML-RPC interface of `supervisord` (`POST /RPC2`),
//! its streaming log tails (`GET /logtail/...`, `GET /mainlogtail`) and HTTP
//! Basic auth, so that `supervisorctl` and tools built on Supervisor's API
//! work against tend unchanged.
//!
//! [`Compat`] is the daemon-side state this needs beyond a
//! [`Supervisor`]: the configuration as Supervisor sees it (groups, group
//! priorities, log files, the settings `getAllConfigInfo` reports), which
//! groups are active, and a way to read the config file again
//! ([`Loader`]) for `reloadConfig`, `addProcessGroup`, `removeProcessGroup`,
//! `restart` and tend's own `reload`. [`rpc::Rpc`] publishes every
//! `supervisor.*` method through the codec of [`crate::xmlrpc`].
//!
//! Supervisor names processes `group:name`; tend's process names are unique
//! on their own, so a namespec is resolved against the name and checked
//! against the group, exactly as Supervisor's `split_namespec` rules say.

mod files;
mod http;
mod info;
mod methods;
pub mod rpc;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tend_core::spec::LogTarget;
use tend_core::{Name, ProcessSpec, ProcessStatus, RestartPolicy, StateName, Supervisor};
use tokio::sync::broadcast;

use crate::Shutdown;

pub use http::{BasicAuth, Peer, require_auth, routes};

/// The version `getSupervisorVersion` reports: the Supervisor release whose
/// behaviour tend follows (`supervisorctl version` prints it).
pub const SUPERVISOR_VERSION: &str = "4.3.0";
/// The XML-RPC API version (`getAPIVersion`, `getVersion`); supervisorctl
/// refuses to talk to a server that answers anything else.
pub const API_VERSION: &str = "3.0";

/// The `stdout_*` or `stderr_*` settings of a process, as
/// `getAllConfigInfo` reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelInfo {
    /// The log file; `None` when output is not written to a file.
    pub logfile: Option<PathBuf>,
    /// Rotate at this size (0: never).
    pub maxbytes: u64,
    /// Rotated files kept.
    pub backups: u32,
    /// `*_capture_maxbytes`.
    pub capture_maxbytes: u64,
    /// `*_events_enabled`.
    pub events_enabled: bool,
    /// `*_syslog`.
    pub syslog: bool,
}

/// One process as a config file declares it: the spec tend runs, and
/// Supervisor's view of it.
///
/// The spec is shared (`Arc`) with the supervisor that runs it, and whole
/// `ProcessConfig`s are shared between the groups and the registry of
/// [`Compat`]: a daemon with a thousand processes keeps one copy of each.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ProcessConfig {
    /// What tend runs.
    pub spec: Arc<ProcessSpec>,
    /// `command` as written (after expansion).
    pub command: String,
    /// The process's own priority (`process_prio`).
    pub process_priority: i32,
    /// `startretries`.
    pub startretries: u32,
    /// `killasgroup`.
    pub killasgroup: bool,
    /// `serverurl`, when not automatic.
    pub serverurl: Option<String>,
    /// The uid of `user`.
    pub uid: Option<u32>,
    /// `stdout_*`.
    pub stdout: ChannelInfo,
    /// `stderr_*` (no log file with `redirect_stderr`).
    pub stderr: ChannelInfo,
}

impl ProcessConfig {
    /// Supervisor's view of a spec that came from elsewhere (a native config,
    /// the JSON API): every setting derived from the spec itself.
    pub fn from_spec(spec: impl Into<Arc<ProcessSpec>>) -> ProcessConfig {
        let spec = spec.into();
        let file = |t: &LogTarget| match t {
            LogTarget::File(p) => Some(p.clone()),
            LogTarget::Inherit | LogTarget::Null => None,
        };
        let channel = |logfile| ChannelInfo {
            logfile,
            maxbytes: spec.logs.max_size,
            backups: spec.logs.backups,
            ..ChannelInfo::default()
        };
        let stdout = channel(file(&spec.logs.stdout));
        let stderr = channel(if spec.logs.merge_stderr {
            None
        } else {
            file(&spec.logs.stderr)
        });
        ProcessConfig {
            command: join_command(&spec.command),
            process_priority: spec.priority,
            startretries: spec
                .backoff
                .give_up_after
                .map_or(0, |n| n.saturating_sub(1)),
            killasgroup: true,
            serverurl: None,
            uid: None,
            stdout,
            stderr,
            spec,
        }
    }

    /// Builds one from every part (the supervisord.conf reader has them all).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        spec: impl Into<Arc<ProcessSpec>>,
        command: String,
        process_priority: i32,
        startretries: u32,
        killasgroup: bool,
        serverurl: Option<String>,
        uid: Option<u32>,
        stdout: ChannelInfo,
        stderr: ChannelInfo,
    ) -> ProcessConfig {
        ProcessConfig {
            spec: spec.into(),
            command,
            process_priority,
            startretries,
            killasgroup,
            serverurl,
            uid,
            stdout,
            stderr,
        }
    }

    /// The log file of one stream, as `getProcessInfo` reports it.
    fn logfile(&self, stderr: bool) -> Option<&PathBuf> {
        if stderr {
            self.stderr.logfile.as_ref()
        } else {
            self.stdout.logfile.as_ref()
        }
    }
}

/// The argv as one string, quoted where a shell would need it.
fn join_command(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            let plain = !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
            if plain {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A process group as a config file declares it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupConfig {
    /// Its name.
    pub name: Name,
    /// Supervisor's group priority.
    pub priority: i32,
    /// Its processes, in order (shared with [`Compat`]'s registry).
    pub processes: Vec<Arc<ProcessConfig>>,
}

/// Everything a config file declares, in the terms of this module.
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

/// Reads the config file again: what `reloadConfig`, `restart` and `tend
/// reload` apply. An error is the reason, as the config loader words it.
pub type Loader = Arc<dyn Fn() -> Result<Declared, String> + Send + Sync>;

/// Daemon-side settings of Supervisor's face.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct CompatOptions {
    /// What `getIdentification` answers (`[supervisord] identifier`).
    pub identification: String,
    /// tend's own log file (`readLog`, `clearLog`, `/mainlogtail`).
    pub main_log: Option<PathBuf>,
    /// Reads the config file again; without one, `reloadConfig` and
    /// `reload` answer that there is no config file to read.
    pub loader: Option<Loader>,
}

impl CompatOptions {
    /// Options with this identification and nothing else.
    pub fn new(identification: impl Into<String>) -> Self {
        CompatOptions {
            identification: identification.into(),
            ..CompatOptions::default()
        }
    }
}

impl std::fmt::Debug for CompatOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompatOptions")
            .field("identification", &self.identification)
            .field("main_log", &self.main_log)
            .field("loader", &self.loader.as_ref().map(|_| "<fn>"))
            .finish()
    }
}

/// What `reloadConfig` found: group names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupChanges {
    /// Groups in the file that are not active.
    pub added: Vec<String>,
    /// Active groups whose settings differ from the file's.
    pub changed: Vec<String>,
    /// Active groups the file no longer has.
    pub removed: Vec<String>,
}

/// What `tend reload` did: process names.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReloadReport {
    /// Processes added (and started if they autostart).
    pub added: Vec<String>,
    /// Processes replaced by their new settings (started again if they were up).
    pub changed: Vec<String>,
    /// Processes stopped and removed.
    pub removed: Vec<String>,
}

/// Why a group could not be added or removed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GroupError {
    /// No such group (in the config file, or active).
    #[error("no such group: {0}")]
    BadName(String),
    /// The group is active already.
    #[error("group {0} is already active")]
    AlreadyAdded(String),
    /// Some of its processes are not stopped.
    #[error("group {0} still has processes that are not stopped")]
    StillRunning(String),
    /// The supervisor refused.
    #[error("{0}")]
    Failed(String),
    /// The supervisor is shutting down or restarting.
    #[error("the supervisor is shutting down")]
    ShuttingDown,
}

/// An event sent with `sendRemoteCommEvent`, for event listeners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteCommEvent {
    /// The `type` argument.
    pub kind: String,
    /// The `data` argument.
    pub data: String,
}

/// Supervisor's "mood" (`getState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mood {
    /// Running normally (`statecode` 1).
    Running,
    /// Stopping everything to read the config again (0).
    Restarting,
    /// Shutting down (-1).
    Shutdown,
}

impl Mood {
    /// `(statecode, statename)`.
    pub fn code(self) -> (i32, &'static str) {
        match self {
            Mood::Running => (1, "RUNNING"),
            Mood::Restarting => (0, "RESTARTING"),
            Mood::Shutdown => (-1, "SHUTDOWN"),
        }
    }
}

/// Groups and processes are `Arc`s, shared between these three views (and
/// the specs with the supervisor), so none of them copies a configuration.
#[derive(Debug, Default)]
struct Registry {
    /// The groups of the last read of the config file.
    available: Vec<Arc<GroupConfig>>,
    /// Groups of the config file that are in the supervisor, with the
    /// settings they were added with.
    active: BTreeMap<Name, Arc<GroupConfig>>,
    /// Every process in the supervisor, whatever added it.
    procs: BTreeMap<Name, Arc<ProcessConfig>>,
}

impl Registry {
    /// The groups of a new read of the config file, where every group and
    /// process that did not change is the one already held: a reread of an
    /// unchanged file keeps one copy of everything, not two.
    fn share(&self, groups: Vec<GroupConfig>) -> Vec<Arc<GroupConfig>> {
        groups
            .into_iter()
            .map(|mut g| {
                if let Some(cur) = self.active.get(&g.name)
                    && **cur == g
                {
                    return cur.clone();
                }
                for p in &mut g.processes {
                    if let Some(known) = self.procs.get(&p.spec.name)
                        && **known == **p
                    {
                        *p = known.clone();
                    }
                }
                Arc::new(g)
            })
            .collect()
    }
}

/// The state behind Supervisor's face (see the module documentation).
pub struct Compat {
    sup: Supervisor,
    shutdown: Shutdown,
    opts: CompatOptions,
    reg: Mutex<Registry>,
    restarting: AtomicBool,
    /// One change of the configuration at a time.
    changes: tokio::sync::Mutex<()>,
    remote: broadcast::Sender<RemoteCommEvent>,
}

impl std::fmt::Debug for Compat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compat")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The registry stays consistent even if a holder panicked.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Supervisor's STOPPED_STATES.
pub(crate) fn is_stopped(s: StateName) -> bool {
    matches!(s, StateName::Stopped | StateName::Exited | StateName::Fatal)
}

/// Supervisor's RUNNING_STATES.
pub(crate) fn is_running(s: StateName) -> bool {
    matches!(
        s,
        StateName::Starting | StateName::Running | StateName::Backoff | StateName::Waiting
    )
}

impl Compat {
    /// The state for `declared`, the config the daemon starts with. Nothing
    /// is added to `sup` until [`Compat::add_declared`].
    pub fn new(
        sup: Supervisor,
        shutdown: Shutdown,
        opts: CompatOptions,
        declared: Declared,
    ) -> Arc<Compat> {
        let (remote, _) = broadcast::channel(64);
        Arc::new(Compat {
            sup,
            shutdown,
            opts,
            reg: Mutex::new(Registry {
                available: shared(declared.groups),
                ..Registry::default()
            }),
            restarting: AtomicBool::new(false),
            changes: tokio::sync::Mutex::new(()),
            remote,
        })
    }

    /// The supervisor.
    pub fn supervisor(&self) -> &Supervisor {
        &self.sup
    }

    /// What `getIdentification` answers.
    pub fn identification(&self) -> &str {
        &self.opts.identification
    }

    /// tend's own log file.
    pub fn main_log(&self) -> Option<&PathBuf> {
        self.opts.main_log.as_ref()
    }

    /// The current mood.
    pub fn mood(&self) -> Mood {
        if self.shutdown.is_triggered() {
            Mood::Shutdown
        } else if self.restarting.load(Ordering::SeqCst) {
            Mood::Restarting
        } else {
            Mood::Running
        }
    }

    /// Pulls the shutdown latch (`shutdown()`).
    pub fn request_shutdown(&self) {
        self.shutdown.trigger();
    }

    /// Events sent with `sendRemoteCommEvent` from now on.
    pub fn subscribe_remote(&self) -> broadcast::Receiver<RemoteCommEvent> {
        self.remote.subscribe()
    }

    pub(crate) fn send_remote(&self, ev: RemoteCommEvent) {
        // Nobody listening is fine: Supervisor drops the event then too.
        let _ = self.remote.send(ev);
    }

    /// Adds every process of the declared config to the supervisor (with
    /// their own `autostart`: the daemon then starts the service). Stops at
    /// the first error.
    pub async fn add_declared(&self) -> Result<(), tend_core::Error> {
        let groups = lock(&self.reg).available.clone();
        for g in groups {
            for p in &g.processes {
                self.sup.add(p.spec.clone()).await?;
                lock(&self.reg).procs.insert(p.spec.name.clone(), p.clone());
            }
            lock(&self.reg).active.insert(g.name.clone(), g);
        }
        Ok(())
    }

    /// Records a process added by other means (the JSON API). Pass the
    /// `Arc` given to the supervisor to keep one copy of the spec.
    pub fn register(&self, spec: impl Into<Arc<ProcessSpec>>) {
        let pc = ProcessConfig::from_spec(spec);
        lock(&self.reg)
            .procs
            .insert(pc.spec.name.clone(), Arc::new(pc));
    }

    /// Forgets a process removed by other means.
    pub fn unregister(&self, name: &str) {
        lock(&self.reg).procs.remove(name);
    }

    /// Supervisor's view of the process `name`, if known.
    pub fn process_config(&self, name: &str) -> Option<Arc<ProcessConfig>> {
        lock(&self.reg).procs.get(name).cloned()
    }

    /// Runs `f` on every registered process's config, under one lock (a
    /// status of a thousand processes clones nothing).
    pub(crate) fn with_procs<R>(
        &self,
        f: impl FnOnce(&BTreeMap<Name, Arc<ProcessConfig>>) -> R,
    ) -> R {
        f(&lock(&self.reg).procs)
    }

    /// The priority of every group: from the config, else its lowest member's.
    pub(crate) fn group_priorities(&self, all: &[ProcessStatus]) -> BTreeMap<Name, i32> {
        let mut out: BTreeMap<Name, i32> = BTreeMap::new();
        for s in all {
            let p = out.entry(s.group.clone()).or_insert(s.priority);
            *p = (*p).min(s.priority);
        }
        let reg = lock(&self.reg);
        for (name, p) in out.iter_mut() {
            if let Some(g) = reg.active.get(name) {
                *p = g.priority;
            }
        }
        out
    }

    /// The log file of a stream of `name` (`None` when it has none).
    pub(crate) fn logfile(&self, name: &str, stderr: bool) -> Option<PathBuf> {
        lock(&self.reg)
            .procs
            .get(name)
            .and_then(|p| p.logfile(stderr).cloned())
    }

    /// The available groups (last read) and which are active, for `getAllConfigInfo`.
    pub(crate) fn available(&self, all: &[ProcessStatus]) -> Vec<(Arc<GroupConfig>, bool)> {
        let reg = lock(&self.reg);
        let running_groups: BTreeSet<&Name> = all.iter().map(|s| &s.group).collect();
        let mut out: Vec<(Arc<GroupConfig>, bool)> = reg
            .available
            .iter()
            .map(|g| {
                let inuse = reg.active.contains_key(&g.name) || running_groups.contains(&g.name);
                (g.clone(), inuse)
            })
            .collect();
        // Processes that never were in the config file (added through the
        // JSON API) are in use; Supervisor would know them from its config.
        // Those of a group the file dropped are left out, as in Supervisor.
        let known: BTreeSet<&Name> = reg
            .available
            .iter()
            .chain(reg.active.values())
            .flat_map(|g| g.processes.iter().map(|p| &p.spec.name))
            .collect();
        for s in all {
            if known.contains(&s.name) {
                continue;
            }
            if let Some(pc) = reg.procs.get(&s.name) {
                out.push((
                    Arc::new(GroupConfig {
                        name: s.group.clone(),
                        priority: s.priority,
                        processes: vec![pc.clone()],
                    }),
                    true,
                ));
            }
        }
        out
    }

    fn loader(&self) -> Result<&Loader, String> {
        self.opts
            .loader
            .as_ref()
            .ok_or_else(|| "this supervisor has no config file to read".to_string())
    }

    async fn load(&self) -> Result<Declared, String> {
        let loader = self.loader()?.clone();
        // Reading and validating a big file should not stall the daemon's
        // only thread.
        match tokio::task::spawn_blocking(move || loader()).await {
            Ok(r) => r,
            Err(e) => Err(format!("the config reader failed: {e}")),
        }
    }

    /// `reloadConfig`: reads the config file again and compares its groups
    /// with the active ones. Nothing is applied; `addProcessGroup` and
    /// `removeProcessGroup` (what `supervisorctl update` calls) do that.
    pub async fn reread(&self) -> Result<GroupChanges, String> {
        let _one = self.changes.lock().await;
        let declared = self.load().await?;
        let mut reg = lock(&self.reg);
        let mut changes = GroupChanges::default();
        for g in &declared.groups {
            match reg.active.get(&g.name) {
                None => changes.added.push(g.name.to_string()),
                Some(cur) if **cur != *g => changes.changed.push(g.name.to_string()),
                Some(_) => {}
            }
        }
        let in_file: BTreeSet<&Name> = declared.groups.iter().map(|g| &g.name).collect();
        for name in reg.active.keys() {
            if !in_file.contains(name) {
                changes.removed.push(name.to_string());
            }
        }
        reg.available = reg.share(declared.groups);
        Ok(changes)
    }

    /// `addProcessGroup`: adds a group of the last read of the config file
    /// and starts its processes that autostart.
    pub async fn add_group(&self, name: &str) -> Result<(), GroupError> {
        let _one = self.changes.lock().await;
        let group = lock(&self.reg)
            .available
            .iter()
            .find(|g| g.name.as_str() == name)
            .cloned()
            .ok_or_else(|| GroupError::BadName(name.to_string()))?;
        let all = self
            .sup
            .status()
            .await
            .map_err(|_| GroupError::ShuttingDown)?;
        if lock(&self.reg).active.contains_key(&group.name)
            || all.iter().any(|s| s.group == group.name)
        {
            return Err(GroupError::AlreadyAdded(name.to_string()));
        }
        let mut added: Vec<String> = Vec::new();
        for p in &group.processes {
            if let Err(e) = self.sup.add(quiet(&p.spec)).await {
                // All or nothing, so a retry after fixing the file starts clean.
                for n in &added {
                    let _ = self.sup.remove(n).await;
                }
                return Err(group_error(e));
            }
            added.push(p.spec.name.to_string());
        }
        {
            let mut reg = lock(&self.reg);
            for p in &group.processes {
                reg.procs.insert(p.spec.name.clone(), p.clone());
            }
            reg.active.insert(group.name.clone(), group.clone());
        }
        self.start_later(autostarting(group.processes.iter().map(|p| &*p.spec)));
        Ok(())
    }

    /// `removeProcessGroup`: removes an active group whose processes are all stopped.
    pub async fn remove_group(&self, name: &str) -> Result<(), GroupError> {
        let _one = self.changes.lock().await;
        let all = self
            .sup
            .status()
            .await
            .map_err(|_| GroupError::ShuttingDown)?;
        let members: Vec<&ProcessStatus> =
            all.iter().filter(|s| s.group.as_str() == name).collect();
        let active = lock(&self.reg).active.keys().any(|g| g.as_str() == name);
        if members.is_empty() && !active {
            return Err(GroupError::BadName(name.to_string()));
        }
        if members.iter().any(|s| !is_stopped(s.state)) {
            return Err(GroupError::StillRunning(name.to_string()));
        }
        for s in &members {
            self.remove_process(s.name.as_str())
                .await
                .map_err(group_error)?;
            lock(&self.reg).procs.remove(&s.name);
        }
        lock(&self.reg).active.retain(|g, _| g.as_str() != name);
        Ok(())
    }

    /// `tend reload`: reads the config file again and applies it process by
    /// process: new processes are added (and started if they autostart),
    /// processes the file dropped are stopped and removed, changed ones are
    /// stopped, replaced and started again if they were up, and unchanged ones
    /// are not touched. Processes added through the API are left alone.
    pub async fn reload(&self) -> Result<ReloadReport, String> {
        let _one = self.changes.lock().await;
        if self.mood() != Mood::Running {
            return Err("the supervisor is shutting down".into());
        }
        let declared = self.load().await?;
        let all = self.sup.status().await.map_err(|e| e.to_string())?;
        let states: HashMap<&Name, StateName> = all.iter().map(|s| (&s.name, s.state)).collect();
        let state_of = |n: &Name| states.get(n).copied();
        type Procs = BTreeMap<Name, Arc<ProcessConfig>>;
        let (current, known): (Procs, Procs) = {
            let reg = lock(&self.reg);
            let from_file = reg
                .active
                .values()
                .flat_map(|g| g.processes.iter())
                .map(|p| (p.spec.name.clone(), p.clone()))
                .collect();
            (from_file, reg.procs.clone())
        };
        let wanted: Procs = declared
            .processes()
            .map(|p| (p.spec.name.clone(), p.clone()))
            .collect();
        let mut report = ReloadReport::default();
        let fail = |e: tend_core::Error| e.to_string();

        for name in current.keys().filter(|n| !wanted.contains_key(*n)) {
            self.remove_process(name.as_str()).await.map_err(fail)?;
            lock(&self.reg).procs.remove(name);
            report.removed.push(name.to_string());
        }
        let mut to_start = Vec::new();
        for (name, new) in &wanted {
            let old = known.get(name);
            let registered = state_of(name).is_some();
            if registered && old == Some(new) {
                continue;
            }
            if registered {
                let was_up = state_of(name).is_some_and(is_running);
                self.remove_process(name.as_str()).await.map_err(fail)?;
                self.sup.add(quiet(&new.spec)).await.map_err(fail)?;
                if was_up {
                    to_start.push(name.clone());
                }
                report.changed.push(name.to_string());
            } else {
                self.sup.add(quiet(&new.spec)).await.map_err(fail)?;
                if new.spec.autostart {
                    to_start.push(name.clone());
                }
                report.added.push(name.to_string());
            }
            lock(&self.reg).procs.insert(name.clone(), new.clone());
        }
        {
            let mut reg = lock(&self.reg);
            let groups = reg.share(declared.groups);
            reg.active = groups.iter().map(|g| (g.name.clone(), g.clone())).collect();
            reg.available = groups;
        }
        self.start_later(to_start);
        Ok(report)
    }

    /// `restart()` (and SIGHUP for a supervisord.conf): stops and removes
    /// every process, reads the config file again and starts over, in this
    /// same process. If the file cannot be read any more, the previous
    /// config is started again and the reason is returned.
    pub async fn restart(&self) -> Result<(), String> {
        self.restarting.store(true, Ordering::SeqCst);
        let _one = self.changes.lock().await;
        let result = if self.shutdown.is_triggered() {
            Err("the supervisor is shutting down".into())
        } else {
            self.restart_inner().await
        };
        self.restarting.store(false, Ordering::SeqCst);
        result
    }

    /// [`Compat::restart`] in the background: the mood is `RESTARTING` as
    /// soon as this returns, as after Supervisor's `restart()`.
    pub fn begin_restart(this: &Arc<Compat>) {
        this.restarting.store(true, Ordering::SeqCst);
        let compat = this.clone();
        tokio::spawn(async move {
            match compat.restart().await {
                Ok(()) => tracing::info!("restarted: the config file was read again"),
                Err(e) => tracing::error!("restart: {e}"),
            }
        });
    }

    async fn restart_inner(&self) -> Result<(), String> {
        let _ = self.sup.stop_all().await;
        let all = self.sup.status().await.map_err(|e| e.to_string())?;
        for s in &all {
            let _ = self.sup.remove(s.name.as_str()).await;
        }
        let loaded = self.load().await;
        let (groups, result) = {
            let mut reg = lock(&self.reg);
            reg.procs.clear();
            let old: Vec<Arc<GroupConfig>> = if reg.active.is_empty() {
                reg.available.clone()
            } else {
                reg.active.values().cloned().collect()
            };
            reg.active.clear();
            match loaded {
                Ok(d) => {
                    let groups = shared(d.groups);
                    reg.available = groups.clone();
                    (groups, Ok(()))
                }
                Err(e) => (old, Err(e)),
            }
        };
        let mut to_start = Vec::new();
        for g in &groups {
            for p in &g.processes {
                if let Err(e) = self.sup.add(quiet(&p.spec)).await {
                    tracing::error!("restart: cannot add {}: {e}", p.spec.name);
                    continue;
                }
                lock(&self.reg).procs.insert(p.spec.name.clone(), p.clone());
            }
            lock(&self.reg).active.insert(g.name.clone(), g.clone());
            to_start.extend(autostarting(g.processes.iter().map(|p| &*p.spec)));
        }
        self.start_later(to_start);
        result
    }

    /// Removes `name` from the supervisor; one that is gone already is fine.
    async fn remove_process(&self, name: &str) -> Result<(), tend_core::Error> {
        match self.sup.remove(name).await {
            Ok(()) | Err(tend_core::Error::UnknownProcess(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Starts processes (in priority order) without waiting for them.
    fn start_later(&self, names: Vec<Name>) {
        if names.is_empty() {
            return;
        }
        let sup = self.sup.clone();
        tokio::spawn(async move {
            if let Ok(results) = sup.start_many(names).await {
                for r in results {
                    if let Err(e) = r.result {
                        tracing::debug!("{}: not started: {e}", r.name);
                    }
                }
            }
        });
    }
}

/// `spec` as the supervisor should get it when the caller starts it (so
/// that several start in priority order): without `autostart`. A spec that
/// does not autostart is shared as it is; only the others are copied.
fn quiet(spec: &Arc<ProcessSpec>) -> Arc<ProcessSpec> {
    if !spec.autostart {
        return spec.clone();
    }
    let mut s = ProcessSpec::clone(spec);
    s.autostart = false;
    Arc::new(s)
}

/// A refusal of the supervisor as `addProcessGroup` and `removeProcessGroup` report it.
fn group_error(e: tend_core::Error) -> GroupError {
    match e {
        tend_core::Error::ShuttingDown => GroupError::ShuttingDown,
        e => GroupError::Failed(e.to_string()),
    }
}

fn shared(groups: Vec<GroupConfig>) -> Vec<Arc<GroupConfig>> {
    groups.into_iter().map(Arc::new).collect()
}

fn autostarting<'a>(specs: impl Iterator<Item = &'a ProcessSpec>) -> Vec<Name> {
    specs
        .filter(|s| s.autostart)
        .map(|s| s.name.clone())
        .collect()
}

/// `autorestart` as Supervisor spells it in `getAllConfigInfo`.
pub(crate) fn autorestart_value(p: RestartPolicy) -> crate::xmlrpc::Value {
    use crate::xmlrpc::Value;
    match p {
        RestartPolicy::Always => Value::Bool(true),
        RestartPolicy::Never => Value::Bool(false),
        RestartPolicy::OnFailure => Value::from("unexpected"),
    }
}
