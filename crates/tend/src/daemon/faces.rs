//! The faces of the daemon over its one handle: the JSON API, Supervisor's
//! XML-RPC face and its event listeners, and the routers each listener
//! serves.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use tend_config::supervisord::{Auth, Overrides};
use tend_config::{Config, DaemonConfig};
use tend_core::spec::LogTarget;
use tend_core::{ProcessSpec, Supervisor};
use tend_server::state::Loader;
use tend_server::{BasicAuth, Daemon, Listener, Router, Shutdown};
use tend_supervisor::eventlistener::{Context as ListenerContext, EventListeners};
use tend_supervisor::{Face, FaceOptions, RemoteCommEvent};
use tokio::sync::broadcast;
use tracing::{debug, warn};

use super::foreground::Inherited;
use super::lock;

/// The daemon's handle and the faces built on it.
pub(super) struct Faces {
    /// The one handle every face takes.
    pub(super) daemon: Daemon,
    /// Supervisor's face (XML-RPC, `/logtail`).
    pub(super) supervisor: Arc<Face>,
    /// Supervisor's event listeners, when the config asks for them.
    pub(super) listeners: Option<Arc<EventListeners>>,
}

impl Faces {
    /// Builds the handle over `sup` for `config` (whose processes are not
    /// added yet: see `ConfigState::add_declared`).
    pub(super) fn build(
        config: &mut Config,
        sup: &Supervisor,
        shutdown: &Shutdown,
        inherited: &Inherited,
        main_log: &MainLogContext,
    ) -> Faces {
        let declared = std::mem::take(&mut config.declared);
        // Event listeners hear everything from the first spawn on. The hub
        // runs even without pools where the config says so: an `update`
        // may add one.
        let listeners = config.daemon.event_listeners.then(|| {
            Arc::new(EventListeners::start_with(
                sup.clone(),
                std::mem::take(&mut config.eventlisteners),
                ListenerContext::from_declared(&config.daemon.identifier, &declared),
            ))
        });
        let loader = loader(
            config.path.clone(),
            config.overrides.clone(),
            inherited.clone(),
            listeners.clone(),
            main_log.clone(),
        );
        let prepare = prepare_spec(
            config.daemon.log_dir.clone(),
            inherited.clone(),
            Some(main_log.clone()),
        );
        let daemon = Daemon::new(sup.clone(), shutdown.clone(), declared, Some(loader))
            .with_prepare_spec(Arc::new(prepare));
        let mut opts = FaceOptions::new(config.daemon.identifier.clone());
        opts.main_log = config.daemon.log_file.clone();
        let supervisor = Face::new(daemon.clone(), opts);
        if let Some(l) = &listeners {
            tokio::spawn(forward_remote(supervisor.subscribe_remote(), l.clone()));
        }
        Faces {
            daemon,
            supervisor,
            listeners,
        }
    }

    /// What the Unix socket serves: the JSON API (the socket's owner needs
    /// no credentials) and Supervisor's face, behind the socket's
    /// credentials when it has some.
    pub(super) fn unix_router(&self, daemon: &DaemonConfig) -> Router {
        let auth = daemon.unix_auth.as_ref().map(basic);
        self.router(Listener::new(true, auth, true))
    }

    /// What a TCP listener serves: Supervisor's face, and the JSON API only
    /// behind credentials (it can start and stop anything).
    pub(super) fn tcp_router(&self, auth: Option<&Auth>) -> Router {
        let auth = auth.map(basic);
        self.router(Listener::new(auth.is_some(), auth, false))
    }

    fn router(&self, listener: Listener) -> Router {
        let mut rpc = tend_supervisor::routes(self.supervisor.clone());
        if let Some(auth) = &listener.auth {
            rpc = tend_supervisor::require_auth(rpc, auth.clone(), false);
        }
        tend_server::app(self.daemon.clone(), &listener, [rpc])
    }
}

fn basic(a: &Auth) -> BasicAuth {
    let a = a.clone();
    BasicAuth::new(move |user, password| a.matches(user, password))
}

/// What a supervisord-style log knows of the processes.
pub(super) type MainLogContext = Arc<Mutex<tend_supervisor::mainlog::Context>>;

/// How the daemon reads its config file again (a reload, a reread, a
/// restart; with the command line's overrides, as supervisord does): the
/// processes' groups, and, on the way, what the foreground view, the event
/// listeners and the log must know of the new read.
fn loader(
    path: PathBuf,
    overrides: Overrides,
    inherited: Inherited,
    listeners: Option<Arc<EventListeners>>,
    main_log: MainLogContext,
) -> Loader {
    Arc::new(move || {
        let loaded = tend_config::load_any_with(&path, &overrides).map_err(|e| e.to_string())?;
        for w in &loaded.warnings {
            debug!("{}", tend_config::render_warning(w));
        }
        for spec in &loaded.config.processes {
            inherited.record(spec);
        }
        // Events about processes the file adds or changes carry their new
        // groups and exit codes (a harmless superset until they are applied).
        if let Some(l) = &listeners {
            l.set_context(ListenerContext::from_declared(
                &loaded.config.daemon.identifier,
                &loaded.config.declared,
            ));
            l.set_pools(loaded.config.eventlisteners.clone());
        }
        // A superset too: what is not applied is never told.
        let mut ctx = tend_supervisor::mainlog::Context::from_declared(&loaded.config.declared);
        for p in lock(&main_log).processes() {
            ctx.add(p);
        }
        *lock(&main_log) = ctx;
        Ok(loaded.config.declared)
    })
}

/// Completes a spec added through the API like the config's processes:
/// output in files under the log directory unless the request said otherwise.
pub(super) fn prepare_spec(
    log_dir: PathBuf,
    inherited: Inherited,
    main_log: Option<MainLogContext>,
) -> impl Fn(&mut ProcessSpec, bool) -> Result<(), String> + Send + Sync + 'static {
    move |spec, logs_given| {
        let name = spec.name.clone();
        let logs = &mut spec.logs;
        if !logs_given {
            logs.stdout = LogTarget::File(log_dir.join(format!("{name}.out.log")));
            logs.stderr = LogTarget::File(log_dir.join(format!("{name}.err.log")));
        }
        for target in [&mut logs.stdout, &mut logs.stderr] {
            if let LogTarget::File(p) = target {
                if p.is_relative() {
                    *p = log_dir.join(&*p);
                }
                tend_config::check_log_file(p).map_err(|e| format!("invalid log file: {e}"))?;
            }
        }
        if logs.merge_stderr {
            logs.stderr = logs.stdout.clone();
        }
        inherited.record(spec);
        if let Some(m) = &main_log {
            lock(m).add(Arc::new(spec.clone()));
        }
        Ok(())
    }
}

/// `sendRemoteCommEvent` calls, for the event listeners.
async fn forward_remote(
    mut rx: broadcast::Receiver<RemoteCommEvent>,
    listeners: Arc<EventListeners>,
) {
    loop {
        match rx.recv().await {
            Ok(ev) => listeners.remote_communication(&ev.kind, &ev.data),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                warn!("{n} remote communication events were dropped")
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// `[unix_http_server] chown = user[:group]`: only root can give a file away;
/// anyone else gets a warning, as the socket is theirs already.
pub(super) fn chown_socket(path: &Path, owner: &str) -> anyhow::Result<()> {
    use nix::unistd::{Gid, Group, Uid, User, chown};
    if !Uid::effective().is_root() {
        warn!(
            "not root: cannot give the socket {} to {owner}",
            path.display()
        );
        return Ok(());
    }
    let (user, group) = owner.split_once(':').unwrap_or((owner, ""));
    let u = User::from_name(user)
        .ok()
        .flatten()
        .with_context(|| format!("chown: no such user {user:?}"))?;
    let gid: Gid = if group.is_empty() {
        u.gid
    } else {
        Group::from_name(group)
            .ok()
            .flatten()
            .with_context(|| format!("chown: no such group {group:?}"))?
            .gid
    };
    chown(path, Some(u.uid), Some(gid))
        .with_context(|| format!("cannot chown {} to {owner}", path.display()))
}
