//! [`Daemon`]: the one handle every face of the daemon takes.

use std::sync::Arc;

use tend_config::Declared;
use tend_core::{Name, ProcessSpec, Supervisor};

use crate::Shutdown;
use crate::access::Access;
use crate::events::EventHub;
use crate::json::TaskSchedule;
use crate::metrics::Metrics;
use crate::peers::Peers;
use crate::state::{ConfigState, Loader, ReloadReport};

/// Completes a spec that arrives through the API before it is added; the
/// second argument says whether the request gave its log settings. An error
/// is the reason, answered as a bad request.
pub type PrepareSpec = Arc<dyn Fn(&mut ProcessSpec, bool) -> Result<(), String> + Send + Sync>;

/// Writes a process added through the API into the config file (`tend add
/// --save`): the spec as it was asked for (before [`PrepareSpec`]) and
/// whether the request gave its log settings. An error is the reason.
pub type SaveSpec = Arc<dyn Fn(&ProcessSpec, bool) -> Result<(), String> + Send + Sync>;

/// Why a process could not be added.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AddError {
    /// The spec is not acceptable (see [`PrepareSpec`]).
    #[error("{0}")]
    Invalid(String),
    /// The supervisor refused it.
    #[error(transparent)]
    Refused(#[from] tend_core::Error),
}

/// The daemon as every face sees it: the supervisor (requests in, events
/// out), the config state (groups, reloads), and the shutdown latch.
///
/// The JSON API, Supervisor's XML-RPC face and the web UI all take one of
/// these, so a process added through one face is known to the others, and a
/// reload asked for on any face is the same reload. Cloning is cheap.
#[derive(Clone)]
pub struct Daemon {
    inner: Arc<Inner>,
}

struct Inner {
    sup: Supervisor,
    config: Arc<ConfigState>,
    shutdown: Shutdown,
    prepare_spec: Option<PrepareSpec>,
    save_spec: Option<SaveSpec>,
    /// The event stream, started by its first client.
    events: Arc<tokio::sync::OnceCell<EventHub>>,
    /// How the tasks are triggered (`GET /v1/tasks`).
    tasks: Arc<Vec<TaskSchedule>>,
    access: Access,
    metrics: Metrics,
    /// The other daemons the dashboard shows.
    peers: Peers,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("config", &self.inner.config)
            .field("shutdown", &self.inner.shutdown)
            .finish_non_exhaustive()
    }
}

impl Daemon {
    /// The handle over `sup`, with the config state for `declared` (not yet
    /// added: see [`ConfigState::add_declared`]) read again by `loader`.
    pub fn new(
        sup: Supervisor,
        shutdown: Shutdown,
        declared: Declared,
        loader: Option<Loader>,
    ) -> Daemon {
        let config = Arc::new(ConfigState::new(
            sup.clone(),
            shutdown.clone(),
            declared,
            loader,
        ));
        Daemon {
            inner: Arc::new(Inner {
                sup,
                config,
                shutdown,
                prepare_spec: None,
                save_spec: None,
                events: Arc::default(),
                tasks: Arc::default(),
                access: Access::unconfigured(),
                metrics: Metrics::new(),
                peers: Peers::default(),
            }),
        }
    }

    /// A handle for a supervisor without a config file (an embedder's).
    pub fn without_config(sup: Supervisor, shutdown: Shutdown) -> Daemon {
        Daemon::new(sup, shutdown, Declared::default(), None)
    }

    /// The same handle, completing specs added through the API with
    /// `prepare` (e.g. to put their output under the daemon's log directory).
    pub fn with_prepare_spec(self, prepare: PrepareSpec) -> Daemon {
        let inner = Inner {
            prepare_spec: Some(prepare),
            ..self.inner_copy()
        };
        Daemon {
            inner: Arc::new(inner),
        }
    }

    /// The same handle, writing processes added with `save` into the config
    /// file with `save` (without one, such an add is refused).
    pub fn with_save_spec(self, save: SaveSpec) -> Daemon {
        let inner = Inner {
            save_spec: Some(save),
            ..self.inner_copy()
        };
        Daemon {
            inner: Arc::new(inner),
        }
    }

    /// The same handle, telling `GET /v1/tasks` how the tasks are triggered.
    pub fn with_tasks(self, tasks: Vec<TaskSchedule>) -> Daemon {
        let inner = Inner {
            tasks: Arc::new(tasks),
            ..self.inner_copy()
        };
        Daemon {
            inner: Arc::new(inner),
        }
    }

    /// The same handle, with `access` as its access rules (by default
    /// supervisord's, for a daemon without a config: see `docs/security.md`).
    pub fn with_access(self, access: Access) -> Daemon {
        let inner = Inner {
            access,
            ..self.inner_copy()
        };
        Daemon {
            inner: Arc::new(inner),
        }
    }

    /// The same handle, counting into `metrics` (by default fresh ones that
    /// count no events until [`Metrics::spawn_counter`] runs).
    pub fn with_metrics(self, metrics: Metrics) -> Daemon {
        let inner = Inner {
            metrics,
            ..self.inner_copy()
        };
        Daemon {
            inner: Arc::new(inner),
        }
    }

    /// The same handle, showing `peers` beside its own processes (`[[peer]]`).
    pub fn with_peers(self, peers: Peers) -> Daemon {
        let inner = Inner {
            peers,
            ..self.inner_copy()
        };
        Daemon {
            inner: Arc::new(inner),
        }
    }

    /// The other daemons the dashboard shows.
    pub fn peers(&self) -> &Peers {
        &self.inner.peers
    }

    /// The daemon's metrics (`GET /metrics`).
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The daemon's one reader of `/proc` (the engine reads through the
    /// same one): what `GET /metrics` shows each process using.
    pub fn procfs(&self) -> &'static tend_core::unix::procfs::ProcFs {
        tend_core::unix::procfs::ProcFs::shared()
    }

    /// Who may do what (the guard of every listener reads it).
    pub fn access(&self) -> &Access {
        &self.inner.access
    }

    fn inner_copy(&self) -> Inner {
        let i = &self.inner;
        Inner {
            sup: i.sup.clone(),
            config: i.config.clone(),
            shutdown: i.shutdown.clone(),
            prepare_spec: i.prepare_spec.clone(),
            save_spec: i.save_spec.clone(),
            events: i.events.clone(),
            tasks: i.tasks.clone(),
            access: i.access.clone(),
            metrics: i.metrics.clone(),
            peers: i.peers.clone(),
        }
    }

    /// How the tasks are triggered.
    pub fn tasks(&self) -> &[TaskSchedule] {
        &self.inner.tasks
    }

    /// The supervisor.
    pub fn supervisor(&self) -> &Supervisor {
        &self.inner.sup
    }

    /// The config state.
    pub fn config(&self) -> &Arc<ConfigState> {
        &self.inner.config
    }

    /// The shutdown latch.
    pub fn shutdown(&self) -> &Shutdown {
        &self.inner.shutdown
    }

    /// The event stream (`GET /v1/events`): one per daemon, started by the
    /// first caller.
    pub async fn events(&self) -> Result<EventHub, tend_core::Error> {
        self.inner
            .events
            .get_or_try_init(|| EventHub::start(self.inner.sup.clone(), self.inner.config.clone()))
            .await
            .cloned()
    }

    /// Adds a process (not started): completed by the [`PrepareSpec`], added
    /// to the supervisor and recorded in the config state. `logs_given` says
    /// whether the request set the process's log settings.
    pub async fn add_process(&self, spec: ProcessSpec, logs_given: bool) -> Result<Name, AddError> {
        self.add_process_saved(spec, logs_given, false).await
    }

    /// [`Daemon::add_process`], and with `save` also written into the
    /// config file (see [`SaveSpec`]): if that fails, the process is removed
    /// again and the reason is the error. A saved process counts as the
    /// file's; an unsaved one is shown as added (`origin`) and a restart of
    /// the daemon forgets it.
    pub async fn add_process_saved(
        &self,
        mut spec: ProcessSpec,
        logs_given: bool,
        save: bool,
    ) -> Result<Name, AddError> {
        // The config file's rules, whichever face the spec came through.
        tend_config::check_spec(&spec).map_err(|problems| {
            AddError::Invalid(format!("invalid process spec: {}", problems.join("; ")))
        })?;
        let saver = match (save, &self.inner.save_spec) {
            (false, _) => None,
            (true, Some(s)) => Some((s.clone(), spec.clone())),
            (true, None) => {
                return Err(AddError::Invalid(
                    "this daemon has no config file to save the process in".into(),
                ));
            }
        };
        if let Some(prepare) = &self.inner.prepare_spec {
            prepare(&mut spec, logs_given).map_err(AddError::Invalid)?;
        }
        let name = spec.name.clone();
        // One copy, shared by the supervisor and the config state.
        let spec = Arc::new(spec);
        // Marked added before the supervisor has it, so that the first
        // status of it on the event stream (the `added` event's) says so.
        let marked = saver.is_none() && self.inner.config.expect_added(&name);
        if let Err(e) = self.inner.sup.add(spec.clone()).await {
            if marked {
                self.inner.config.forget_added(&name);
            }
            return Err(e.into());
        }
        self.inner.config.register(spec, saver.is_none());
        if let Some((saver, asked)) = saver
            && let Err(why) = saver(&asked, logs_given)
        {
            let _ = self.remove_process(name.as_str()).await;
            return Err(AddError::Invalid(format!("not saved, so not added: {why}")));
        }
        Ok(name)
    }

    /// Stops and removes a process, and forgets it.
    pub async fn remove_process(&self, name: &str) -> Result<(), tend_core::Error> {
        self.inner.sup.remove(name).await?;
        self.inner.config.unregister(name);
        Ok(())
    }

    /// Applies the config file again, process by process (see
    /// [`ConfigState::reload`]), and logs what changed.
    pub async fn reload(&self) -> Result<ReloadReport, String> {
        let r = self.inner.config.reload().await?;
        // The old and new tables were both held for the comparison.
        tend_core::unix::memory::trim_heap();
        if let Some(hub) = self.inner.events.get() {
            hub.reloaded(&r.added, &r.changed, &r.removed);
        }
        tracing::info!(
            "reloaded the config file: {} added, {} changed, {} removed",
            r.added.len(),
            r.changed.len(),
            r.removed.len()
        );
        Ok(r)
    }
}
