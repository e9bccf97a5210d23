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
use tend_server::access::{Access, Door, Policy};
use tend_server::metrics::Metrics;
use tend_server::state::Loader;
use tend_server::{Daemon, Listener, Router, Shutdown};
use tend_supervisor::eventlistener::{Context as ListenerContext, EventListeners};
use tend_supervisor::web::{RootPage, WebOptions};
use tend_supervisor::{Face, FaceOptions, RemoteCommEvent};
use tokio::sync::broadcast;
use tracing::{debug, error, info, warn};

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
    /// What `/` shows: Supervisor's status page for a supervisord.conf,
    /// a redirect to the dashboard for a tend.toml.
    root: RootPage,
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
        tls: Vec<Arc<tend_server::ServerTls>>,
        peers: tend_server::peers::Peers,
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
        let access = Access::new(policy(config));
        warn_about_access(config);
        let loader = loader(
            config.path.clone(),
            config.overrides.clone(),
            inherited.clone(),
            listeners.clone(),
            main_log.clone(),
            Reread {
                access: access.clone(),
                tls,
                peers: peers.clone(),
            },
        );
        let prepare = prepare_spec(
            config.daemon.log_dir.clone(),
            inherited.clone(),
            Some(main_log.clone()),
        );
        // Counting from before the config's processes are added, so their
        // first events count.
        let metrics = Metrics::new();
        metrics.spawn_counter(sup);
        let daemon = Daemon::new(sup.clone(), shutdown.clone(), declared, Some(loader))
            .with_prepare_spec(Arc::new(prepare))
            .with_save_spec(save_spec(config.path.clone(), config.format))
            .with_access(access)
            .with_metrics(metrics)
            .with_peers(peers)
            .with_tasks(task_schedules(&config.tasks));
        let mut opts = FaceOptions::new(config.daemon.identifier.clone());
        opts.main_log = config.daemon.log_file.clone();
        let l = &config.daemon.http.limits;
        opts.limits = tend_supervisor::xmlrpc::CallLimits::new(
            l.max_multicall,
            usize::try_from(l.max_response).unwrap_or(usize::MAX),
        );
        let supervisor = Face::new(daemon.clone(), opts);
        if let Some(l) = &listeners {
            tokio::spawn(forward_remote(supervisor.subscribe_remote(), l.clone()));
        }
        let root = match config.daemon.web_root {
            tend_config::WebRoot::SupervisorStatus => RootPage::Status,
            tend_config::WebRoot::Dashboard => RootPage::Dashboard,
        };
        Faces {
            daemon,
            supervisor,
            listeners,
            root,
        }
    }

    /// What the Unix socket serves: the JSON API and Supervisor's face,
    /// behind the access guard as the door `unix` (whose own credentials are
    /// `[unix_http_server]`'s; root and the daemon's user need none for the
    /// JSON API).
    pub(super) fn unix_router(&self) -> Router {
        self.router(Door::new(UNIX_DOOR, tend_supervisor::medusa_error))
    }

    /// What a TCP listener serves: the same, as the door `inet`
    /// (`[inet_http_server]`'s credentials). Without credentials, a client
    /// gets what the policy gives an anonymous one: supervisord's rights, or
    /// none where `[access]` is configured; never adding a command.
    pub(super) fn tcp_router(&self) -> Router {
        self.router(Door::new(INET_DOOR, tend_supervisor::medusa_error))
    }

    fn router(&self, door: Door) -> Router {
        let rpc = tend_supervisor::routes(self.supervisor.clone());
        // Supervisor's pages, behind the same guard as its XML-RPC.
        let web = WebOptions {
            root: self.root,
            dashboard: true,
        };
        let pages = tend_supervisor::web::routes(self.supervisor.clone(), web);
        tend_server::app(
            self.daemon.clone(),
            &Listener::guarded(true, door),
            [rpc.merge(pages)],
        )
    }
}

/// How each task is triggered, for `GET /v1/tasks` (the timers start with
/// the tasks, a moment after this).
fn task_schedules(tasks: &[tend_config::TaskConf]) -> Vec<tend_server::more::TaskSchedule> {
    let now = jiff::Timestamp::now();
    tasks
        .iter()
        .map(|t| {
            let first = t.every.and_then(|d| {
                let d = jiff::SignedDuration::try_from(d).ok()?;
                now.checked_add(d).ok()
            });
            tend_server::more::TaskSchedule::new(
                t.name.clone(),
                t.every,
                first,
                t.on_signal.map(|s| s.to_string()),
            )
        })
        .collect()
}

/// The door names of the policy.
const UNIX_DOOR: &str = "unix";
const INET_DOOR: &str = "inet";

/// The listeners' own credentials, by door.
fn listener_credentials(d: &DaemonConfig) -> Vec<(String, Auth)> {
    let mut out = Vec::new();
    if let Some(a) = &d.unix_auth {
        out.push((UNIX_DOOR.to_string(), a.clone()));
    }
    if let Some(a) = d.inet.as_ref().and_then(|i| i.auth.as_ref()) {
        out.push((INET_DOOR.to_string(), a.clone()));
    }
    out
}

/// The access policy of `config` for this daemon.
pub(crate) fn policy(config: &Config) -> Policy {
    Policy::new(
        &config.access,
        listener_credentials(&config.daemon),
        nix::unistd::geteuid().as_raw(),
    )
}

/// What an operator must hear at start: a socket other users can reach
/// with supervisord's rights, a TCP listener anyone can reach, passwords
/// stored weakly.
fn warn_about_access(config: &Config) {
    let d = &config.daemon;
    let open_to = d.socket_mode & 0o077;
    if open_to != 0 && d.unix_auth.is_none() && !config.access.configured {
        let who = if d.socket_mode & 0o007 != 0 {
            "every local user"
        } else {
            "the members of the socket's group"
        };
        warn!(
            "the socket {} has mode {:04o}: {who} can view, read the logs of, control and reload              every process (supervisord's rights; adding commands stays root's); give them              roles in [access] to limit this (docs/security.md)",
            d.socket.display(),
            d.socket_mode
        );
    }
    if let Some(inet) = &d.inet
        && inet.auth.is_none()
        && !is_loopback(&inet.host)
    {
        if config.access.configured {
            warn!(
                "the TCP listener {}:{} has no username and password: clients without                  credentials get no rights ([access] is configured)",
                inet.host, inet.port
            );
        } else {
            error!(
                "the TCP listener {}:{} is running without any HTTP authentication checking:                  anyone who can reach it can control every process",
                inet.host, inet.port
            );
        }
    }
    for u in &config.access.users {
        if let Some(password) = &u.password
            && password.is_weak()
        {
            warn!(
                "the password of user {:?} is stored as {} (a stolen config gives it away):                  use `tend passwd` for an argon2 hash",
                u.name,
                password.kind()
            );
        }
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// What a supervisord-style log knows of the processes.
pub(super) type MainLogContext = Arc<Mutex<tend_supervisor::mainlog::Context>>;

/// What else a read of the config file puts in force: the access rules,
/// the TCP listeners' certificates, the peers.
struct Reread {
    access: Access,
    tls: Vec<Arc<tend_server::ServerTls>>,
    peers: tend_server::peers::Peers,
}

/// How the daemon reads its config file again (a reload, a reread, a
/// restart; with the command line's overrides, as supervisord does): the
/// processes' groups, and, on the way, what the foreground view, the event
/// listeners and the log must know of the new read. The TCP listeners' TLS
/// files are read again too (the listeners themselves stay as they
/// started): a file that does not load fails the whole read.
fn loader(
    path: PathBuf,
    overrides: Overrides,
    inherited: Inherited,
    listeners: Option<Arc<EventListeners>>,
    main_log: MainLogContext,
    again: Reread,
) -> Loader {
    let Reread { access, tls, peers } = again;
    Arc::new(move || {
        let loaded = tend_config::load_any_with(&path, &overrides).map_err(|e| e.to_string())?;
        // Certificates first: a reload whose files do not load changes nothing.
        super::listeners::reload_tls(&tls)?;
        let peer_specs = super::peers::specs(&loaded.config.daemon.peers)
            .map_err(|e| format!("cannot use a [[peer]] of the config file: {e:#}"))?;
        // The peers are part of the file: added, removed, changed here.
        peers.replace(peer_specs);
        // The access rules are part of the file: every read that succeeds
        // (tend reload, SIGHUP, supervisorctl reread/update/reload) puts them
        // in force, and revokes what they no longer grant.
        access.replace(policy(&loaded.config));
        info!("access rules read again from {}", path.display());
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

/// `tend add --save`: into a tend.toml; a supervisord.conf is refused (its
/// `[program:x]` sections have settings a `tend add` cannot give, and
/// supervisord users edit it by hand and run `update`).
fn save_spec(path: PathBuf, format: tend_config::Format) -> tend_server::SaveSpec {
    Arc::new(move |spec, logs_given| match format {
        tend_config::Format::Native => {
            let file = tend_config::native::save::append_process(&path, spec, logs_given)?;
            tracing::info!(process = %spec.name, file = %file.display(), "saved an added process in the config file");
            Ok(())
        }
        tend_config::Format::Supervisord => Err(format!(
            "{} is a supervisord.conf, and --save writes tend.toml only: add a [program:{}] section to it by hand and run `tend reload`",
            path.display(),
            spec.name
        )),
    })
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

/// `[daemon] socket_group`: gives the socket to `group`, then sets its
/// full `mode` (group bits included).
pub(super) fn chgrp_socket(path: &Path, group: &str, mode: u32) -> anyhow::Result<()> {
    use nix::unistd::{Gid, Group, chown};
    use std::os::unix::fs::PermissionsExt;
    let gid = match group.parse::<u32>() {
        Ok(n) => Gid::from_raw(n),
        Err(_) => {
            Group::from_name(group)
                .ok()
                .flatten()
                .with_context(|| format!("socket_group: no such group {group:?}"))?
                .gid
        }
    };
    chown(path, None, Some(gid)).with_context(|| {
        format!(
            "cannot give the socket {} to group {group} (the daemon must be root or a member)",
            path.display()
        )
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o777))
        .with_context(|| format!("cannot set the mode of {}", path.display()))
}
