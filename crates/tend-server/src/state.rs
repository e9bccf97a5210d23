//! The daemon's config state: which groups the config file declares
//! (*available*, as of its last read), which of them are in the supervisor
//! (*active*), every process in the supervisor with the config it was added
//! with, and the ways to change that: read the file again and compare
//! ([`ConfigState::reread`]), add or remove one group, apply a new read
//! process by process ([`ConfigState::reload`]), or stop everything and start
//! over ([`ConfigState::restart`]).
//!
//! Every face acts through this one type (behind [`crate::Daemon`]): the
//! JSON API's `POST /v1/reload`, `tend reload` and SIGHUP, Supervisor's
//! `reloadConfig`/`addProcessGroup`/`removeProcessGroup`/`restart`, and the
//! processes the API adds or removes. Changes are serialized: one at a time.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tend_config::{Declared, GroupConfig, ProcessConfig, ReloadPlan};
use tend_core::{Name, ProcessSpec, ProcessStatus, StateName, Supervisor};

use crate::Shutdown;

/// Reads the config file again: what a reload, a reread and a restart
/// apply. An error is the reason, as the config reader words it.
pub type Loader = Arc<dyn Fn() -> Result<Declared, String> + Send + Sync>;

/// What a reread found, by group name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupChanges {
    /// Groups in the file that are not active.
    pub added: Vec<String>,
    /// Active groups whose settings differ from the file's.
    pub changed: Vec<String>,
    /// Active groups the file no longer has.
    pub removed: Vec<String>,
}

/// What a reload did, by process name.
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
    /// Those of `procs` added through the API and not in the config file.
    added: std::collections::BTreeSet<Name>,
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

/// The daemon's config state (see the module documentation).
pub struct ConfigState {
    sup: Supervisor,
    shutdown: Shutdown,
    loader: Option<Loader>,
    reg: Mutex<Registry>,
    restarting: AtomicBool,
    /// One change of the configuration at a time.
    changes: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for ConfigState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigState")
            .field("loader", &self.loader.as_ref().map(|_| "<fn>"))
            .field("restarting", &self.restarting)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The registry stays consistent even if a holder panicked.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Down: stopped, exited or fatal (what may be removed from a group).
fn is_down(s: StateName) -> bool {
    matches!(s, StateName::Stopped | StateName::Exited | StateName::Fatal)
}

/// Up or on its way (what a replaced process comes back as).
fn is_up_or_coming(s: StateName) -> bool {
    matches!(
        s,
        StateName::Starting | StateName::Running | StateName::Backoff | StateName::Waiting
    )
}

impl ConfigState {
    /// The state for `declared`, the config the daemon starts with; `loader`
    /// reads the file again (without one, reloads answer that there is no
    /// config file to read). Nothing is added to `sup` until
    /// [`ConfigState::add_declared`].
    pub fn new(
        sup: Supervisor,
        shutdown: Shutdown,
        declared: Declared,
        loader: Option<Loader>,
    ) -> ConfigState {
        ConfigState {
            sup,
            shutdown,
            loader,
            reg: Mutex::new(Registry {
                available: shared(declared.groups),
                ..Registry::default()
            }),
            restarting: AtomicBool::new(false),
            changes: tokio::sync::Mutex::new(()),
        }
    }

    /// The supervisor the state applies to.
    pub fn supervisor(&self) -> &Supervisor {
        &self.sup
    }

    /// Whether a [`ConfigState::restart`] is under way.
    pub fn is_restarting(&self) -> bool {
        self.restarting.load(Ordering::SeqCst)
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

    /// Records a process added by other means (the JSON API), as added (not
    /// in the config file) unless it was saved there. Pass the `Arc` given
    /// to the supervisor to keep one copy of the spec.
    pub fn register(&self, spec: impl Into<Arc<ProcessSpec>>, added: bool) {
        let pc = ProcessConfig::from_spec(spec);
        let mut reg = lock(&self.reg);
        if added {
            reg.added.insert(pc.spec.name.clone());
        } else {
            reg.added.remove(&pc.spec.name);
        }
        reg.procs.insert(pc.spec.name.clone(), Arc::new(pc));
    }

    /// Marks `name` as added before the supervisor has it (see
    /// [`ConfigState::mark_origin`]); false if it was marked already (then
    /// [`ConfigState::forget_added`] must not undo it).
    pub fn expect_added(&self, name: &Name) -> bool {
        lock(&self.reg).added.insert(name.clone())
    }

    /// Undoes [`ConfigState::expect_added`] when the add failed.
    pub fn forget_added(&self, name: &Name) {
        lock(&self.reg).added.remove(name);
    }

    /// A process added as a copy of a replicated process (`tend scale`):
    /// it has the copies' template, as the file's copies do.
    pub fn set_template(&self, name: &Name, template: Arc<ProcessSpec>) {
        let mut reg = lock(&self.reg);
        if let Some(pc) = reg.procs.get_mut(name) {
            Arc::make_mut(pc).template = Some(template);
        }
    }

    /// Forgets a process removed by other means.
    pub fn unregister(&self, name: &str) {
        let mut reg = lock(&self.reg);
        reg.procs.remove(name);
        reg.added.remove(name);
    }

    /// The processes added through the API that the config file does not have
    /// (`origin: "added"` in the status).
    pub fn added(&self) -> std::collections::BTreeSet<Name> {
        lock(&self.reg).added.clone()
    }

    /// Sets `origin: "added"` on those of `statuses` that were added through
    /// the API and are not in the config file (the supervisor knows no file:
    /// its statuses all say `config`). Every face's status passes through
    /// here: `GET /v1/status`, the event stream's snapshot and each event's
    /// status, and so the web page.
    pub fn mark_origin(&self, statuses: &mut [ProcessStatus]) {
        let reg = lock(&self.reg);
        if reg.added.is_empty() {
            return;
        }
        for s in statuses {
            if reg.added.contains(&s.name) {
                s.origin = tend_core::Origin::Added;
            }
        }
    }

    /// The config the process `name` was added with, if known.
    pub fn process_config(&self, name: &str) -> Option<Arc<ProcessConfig>> {
        lock(&self.reg).procs.get(name).cloned()
    }

    /// Runs `f` on every registered process's config, under one lock (a
    /// status of a thousand processes clones nothing).
    pub fn with_procs<R>(&self, f: impl FnOnce(&BTreeMap<Name, Arc<ProcessConfig>>) -> R) -> R {
        f(&lock(&self.reg).procs)
    }

    /// The priority of every group of `all`: from the config, else its
    /// lowest member's.
    pub fn group_priorities(&self, all: &[ProcessStatus]) -> BTreeMap<Name, i32> {
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

    /// The available groups (last read) and whether each is in use, plus a
    /// group for each process in `all` that never was in the config file
    /// (added through the API). Processes of a group the file dropped are
    /// left out.
    pub fn available(&self, all: &[ProcessStatus]) -> Vec<(Arc<GroupConfig>, bool)> {
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
        self.loader
            .as_ref()
            .ok_or_else(|| "this supervisor has no config file to read".to_string())
    }

    /// Whether the state has a way to read the config file again.
    pub fn has_loader(&self) -> bool {
        self.loader.is_some()
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

    /// Reads the config file again and compares its groups with the active
    /// ones. Nothing is applied; [`ConfigState::add_group`] and
    /// [`ConfigState::remove_group`] do that.
    ///
    /// Like [`ConfigState::reload`] it runs in a span of target `tend::reload`
    /// (`reread`, then `add_group` and `remove_group` for what supervisorctl's
    /// `update` applies), so a reload through Supervisor's face is exported
    /// as spans too.
    pub async fn reread(&self) -> Result<GroupChanges, String> {
        use tracing::Instrument;
        let span = config_span(tracing::info_span!(
            target: "tend::reload",
            "reread",
            step = tracing::field::Empty,
            outcome = tracing::field::Empty,
        ));
        let result = self.reread_groups().instrument(span.0.clone()).await;
        span.finish(result.as_ref().map(|c| {
            format!(
                "ok: {} added, {} changed, {} removed",
                c.added.len(),
                c.changed.len(),
                c.removed.len()
            )
        }));
        result
    }

    async fn reread_groups(&self) -> Result<GroupChanges, String> {
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

    /// Adds a group of the last read of the config file and starts its
    /// processes that autostart.
    pub async fn add_group(&self, name: &str) -> Result<(), GroupError> {
        use tracing::Instrument;
        let span = config_span(tracing::info_span!(
            target: "tend::reload",
            "add_group",
            group = name,
            step = tracing::field::Empty,
            outcome = tracing::field::Empty,
        ));
        let result = self
            .add_group_steps(name, &span)
            .instrument(span.0.clone())
            .await;
        span.finish(result.as_ref().map(|()| "ok".to_string()));
        result
    }

    async fn add_group_steps(&self, name: &str, span: &ConfigSpan) -> Result<(), GroupError> {
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
            span.step("added", p.spec.name.as_str());
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

    /// Removes an active group whose processes are all down.
    pub async fn remove_group(&self, name: &str) -> Result<(), GroupError> {
        use tracing::Instrument;
        let span = config_span(tracing::info_span!(
            target: "tend::reload",
            "remove_group",
            group = name,
            step = tracing::field::Empty,
            outcome = tracing::field::Empty,
        ));
        let result = self
            .remove_group_steps(name, &span)
            .instrument(span.0.clone())
            .await;
        span.finish(result.as_ref().map(|()| "ok".to_string()));
        result
    }

    async fn remove_group_steps(&self, name: &str, span: &ConfigSpan) -> Result<(), GroupError> {
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
        if members.iter().any(|s| !is_down(s.state)) {
            return Err(GroupError::StillRunning(name.to_string()));
        }
        for s in &members {
            self.remove_process(s.name.as_str())
                .await
                .map_err(group_error)?;
            {
                let mut reg = lock(&self.reg);
                reg.procs.remove(&s.name);
                reg.added.remove(&s.name);
            }
            span.step("removed", s.name.as_str());
        }
        lock(&self.reg).active.retain(|g, _| g.as_str() != name);
        Ok(())
    }

    /// Reads the config file again and applies it process by process (a
    /// [`ReloadPlan`]): new processes are added (and started if they
    /// autostart), processes the file dropped are stopped and removed,
    /// changed ones are stopped, replaced and started again if they were up,
    /// and unchanged ones are not touched. Processes added through the API
    /// are left alone.
    ///
    /// It runs in a tracing span `reload` (target `tend::reload`) whose
    /// `step` field is recorded at each step (`read tend.toml`, `removed
    /// web`, `replaced web`, `added web`, `starting web, db`) and whose
    /// `outcome` is recorded at the end (`ok: 1 added, ...` or `error:
    /// why`): the OTLP exporter makes a span of it, with the steps as events.
    pub async fn reload(&self) -> Result<ReloadReport, String> {
        use tracing::Instrument;
        let span = config_span(tracing::info_span!(
            target: "tend::reload",
            "reload",
            step = tracing::field::Empty,
            outcome = tracing::field::Empty,
        ));
        let result = self.reload_steps(&span).instrument(span.0.clone()).await;
        span.finish(result.as_ref().map(|r| {
            format!(
                "ok: {} added, {} changed, {} removed",
                r.added.len(),
                r.changed.len(),
                r.removed.len()
            )
        }));
        result
    }

    async fn reload_steps(&self, span: &ConfigSpan) -> Result<ReloadReport, String> {
        let step = |what: &str, name: &str| span.step(what, name);
        let _one = self.changes.lock().await;
        if self.shutdown.is_triggered() || self.is_restarting() {
            return Err("the supervisor is shutting down".into());
        }
        let declared = self.load().await?;
        step("read", "the config file");
        let all = self.sup.status().await.map_err(|e| e.to_string())?;
        let states: HashMap<&Name, StateName> = all.iter().map(|s| (&s.name, s.state)).collect();
        let plan = {
            let reg = lock(&self.reg);
            let from_file = reg
                .active
                .values()
                .flat_map(|g| g.processes.iter())
                .map(|p| &p.spec.name);
            // Only what the supervisor still has counts as known.
            let known: BTreeMap<Name, Arc<ProcessConfig>> = reg
                .procs
                .iter()
                .filter(|(n, _)| states.contains_key(n))
                .map(|(n, p)| (n.clone(), p.clone()))
                .collect();
            ReloadPlan::new(from_file, &known, &declared)
        };
        let mut report = ReloadReport::default();
        let fail = |e: tend_core::Error| e.to_string();

        for name in &plan.remove {
            self.remove_process(name.as_str()).await.map_err(fail)?;
            lock(&self.reg).procs.remove(name);
            step("removed", name.as_str());
            report.removed.push(name.to_string());
        }
        let mut to_start = Vec::new();
        for new in &plan.replace {
            let name = &new.spec.name;
            let was_up = states.get(name).copied().is_some_and(is_up_or_coming);
            self.remove_process(name.as_str()).await.map_err(fail)?;
            self.sup.add(quiet(&new.spec)).await.map_err(fail)?;
            if was_up {
                to_start.push(name.clone());
            }
            step("replaced", name.as_str());
            report.changed.push(name.to_string());
            lock(&self.reg).procs.insert(name.clone(), new.clone());
        }
        for new in &plan.add {
            let name = &new.spec.name;
            self.sup.add(quiet(&new.spec)).await.map_err(fail)?;
            if new.spec.autostart {
                to_start.push(name.clone());
            }
            step("added", name.as_str());
            report.added.push(name.to_string());
            lock(&self.reg).procs.insert(name.clone(), new.clone());
        }
        {
            let mut reg = lock(&self.reg);
            let groups = reg.share(declared.groups);
            // What the file now has is the file's, however it came.
            let in_file: std::collections::HashSet<&Name> = groups
                .iter()
                .flat_map(|g| g.processes.iter().map(|p| &p.spec.name))
                .collect();
            let added = std::mem::take(&mut reg.added);
            reg.added = added.into_iter().filter(|n| !in_file.contains(n)).collect();
            reg.active = groups.iter().map(|g| (g.name.clone(), g.clone())).collect();
            reg.available = groups;
        }
        if !to_start.is_empty() {
            let names: Vec<&str> = to_start.iter().map(Name::as_str).collect();
            step("starting", &names.join(", "));
        }
        self.start_later(to_start);
        Ok(report)
    }

    /// Stops and removes every process, reads the config file again and
    /// starts over, in this same process (supervisord's SIGHUP and
    /// `restart()`). If the file cannot be read any more, the previous config
    /// is started again and the reason is returned.
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

    /// [`ConfigState::restart`] in the background: [`ConfigState::is_restarting`]
    /// is true as soon as this returns.
    pub fn begin_restart(this: &Arc<ConfigState>) {
        this.restarting.store(true, Ordering::SeqCst);
        let state = this.clone();
        tokio::spawn(async move {
            match state.restart().await {
                // The processes starting again say it; debug, so that a
                // supervisord-style log has supervisord's lines only.
                Ok(()) => tracing::debug!("restarted: the config file was read again"),
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
            reg.added.clear();
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

/// A refusal of the supervisor as a group change reports it.
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

/// A span of target `tend::reload` with `step` and `outcome` fields (see
/// [`ConfigState::reload`]): the OTLP exporter makes a span of each.
struct ConfigSpan(tracing::Span);

fn config_span(span: tracing::Span) -> ConfigSpan {
    ConfigSpan(span)
}

impl ConfigSpan {
    /// Records one step (`added web`), an event of the exported span.
    fn step(&self, what: &str, name: &str) {
        self.0.record("step", format!("{what} {name}").as_str());
    }

    /// Records the outcome: `ok...` or `error: why`.
    fn finish<E: std::fmt::Display>(&self, result: Result<String, &E>) {
        let outcome = match result {
            Ok(ok) => ok,
            Err(why) => format!("error: {why}"),
        };
        self.0.record("outcome", outcome.as_str());
    }
}
