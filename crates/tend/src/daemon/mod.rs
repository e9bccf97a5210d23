//! `tend up`: the daemon's main, in the foreground or detached.
//!
//! In stages: install the signal handlers, bind the listeners (before
//! anything is spawned, so a second `tend up` fails without side effects),
//! start the supervisor, build the faces over its one handle, add the
//! config's processes, serve, report ready, autostart, then wait in the
//! signal loop; at the end stop everything while still serving, so `tend
//! status` shows the progress.

mod detach;
mod faces;
mod foreground;
mod health;
mod limits;
mod listeners;
mod own_log;
mod peers;
mod pid1;
mod pidfile;
pub(crate) mod sd_notify;
mod signals;
mod suplog;
#[cfg(feature = "otel")]
mod telemetry;
mod user;

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context;
use tend_config::{Config, LogFormat, LogLevel};
use tend_core::runtime::tasks::{self, Tasks};
use tend_core::unix::{CgroupStatus, LaunchOptions, UnixLauncher};
use tend_core::{Name, Options, ProcessSpec, Signal, Supervisor};
use tend_server::{Connections, ServeError, Shutdown, TcpServer, UnixServer};
use tokio::signal::unix::SignalKind;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

pub(crate) use detach::detach;
use faces::Faces;
pub(crate) use faces::policy;
use foreground::{Inherited, Printer};
use own_log::OwnLog;
use signals::Signals;

/// How `tend up` was asked to run, beside its config.
#[derive(Debug, Clone, Default)]
pub(crate) struct Up {
    /// `--init`: behave as PID 1 even when not (see `pid1.rs`).
    pub(crate) init: bool,
    /// systemd's notify socket, taken from the environment.
    pub(crate) notify: Option<sd_notify::Notifier>,
    /// `-d`: the daemon is a grandchild of the process that was started.
    pub(crate) detached: bool,
    /// What daemonizing left to log once the log is open (supervisord's
    /// lines; see [`Notes`]).
    daemonized: Vec<(LogLevel, String)>,
}

impl Up {
    /// Takes systemd's settings out of the environment: call it first,
    /// while the process has one thread.
    pub(crate) fn new(init: bool) -> Up {
        Up {
            init,
            notify: sd_notify::take_from_env(),
            detached: false,
            daemonized: Vec::new(),
        }
    }
}

/// Which command started the daemon: `tend up`, or `supervisord` (then
/// failures before it runs are reported as supervisord reports them).
#[derive(Debug, Clone)]
pub(crate) enum Entry {
    /// `tend up`.
    Tend,
    /// `supervisord` / `tend supervisord`, invoked as `progname`.
    Supervisord {
        /// `argv[0]`, for `For help, use PROG -h`.
        progname: String,
    },
}

impl Entry {
    /// Reports a failure before the daemon runs: `error: ...` (exit 1), or
    /// supervisord's usage error (`Error: ...`, exit 2).
    pub(crate) fn fail(&self, msg: &str) -> ExitCode {
        match self {
            Entry::Tend => {
                eprintln!("error: {msg}");
                ExitCode::FAILURE
            }
            Entry::Supervisord { progname } => {
                eprintln!("Error: {msg}");
                eprintln!("For help, use {progname} -h");
                ExitCode::from(2)
            }
        }
    }
}

/// What the daemon logs as it starts, gathered before its log opens.
#[derive(Debug, Default)]
struct Notes {
    /// `Set uid to user N succeeded`.
    uid: Option<String>,
    /// Lines the daemonizing left: `daemonizing the supervisord process`,
    /// `set current directory: '...'` (or why not).
    daemonized: Vec<(LogLevel, String)>,
}

/// Switches to the config's user, if it names one (before anything opens).
fn become_user(config: &Config) -> Result<Notes, String> {
    let mut notes = Notes::default();
    if let Some(user) = &config.daemon.user {
        notes.uid = Some(user::drop_privileges(user)?);
    }
    Ok(notes)
}

/// Runs the daemon in the foreground until it is told to stop.
pub(crate) fn foreground(config: Config, entry: &Entry, up: Up) -> ExitCode {
    let notes = match become_user(&config) {
        Ok(n) => n,
        Err(e) => return entry.fail(&e),
    };
    let own_log = match own_log::init_logging(&config.daemon, true) {
        Ok(l) => l,
        Err(e) => return entry.fail(&e),
    };
    match run(config, None, own_log, true, notes, up) {
        Ok(code) => ExitCode::from(code),
        // supervisord reports what stops it from starting (a socket in
        // use, ...) as a usage error, with exit status 2.
        Err(e) if matches!(entry, Entry::Supervisord { .. }) => entry.fail(&format!("{e:#}")),
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes, `a: b: c`, each said once: an error whose
/// message already quotes its source (most of `std::io`'s wrappers) does
/// not print it twice.
pub(crate) fn describe(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data behind these locks stays consistent even if a holder panicked.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Builds the runtime on this thread and runs the daemon to the end.
///
/// The runtime is current-thread on purpose: children get `PR_SET_PDEATHSIG`,
/// which fires when the *thread* that forked them exits, so every fork must
/// happen on the main thread, which lives as long as the daemon.
fn run(
    config: Config,
    ready: Option<OwnedFd>,
    own_log: Option<OwnLog>,
    foreground: bool,
    notes: Notes,
    up: Up,
) -> anyhow::Result<u8> {
    tend_core::unix::memory::tune_allocator();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut ready = ready;
    let mut printer = None;
    let caps = limits::raise_fd_limit(config.daemon.minfds, &config.processes).and_then(|fds| {
        let procs = limits::raise_proc_limit(config.daemon.minprocs)?;
        let tcp = !listeners::tcp_listeners(&config.daemon).is_empty();
        let max = config.daemon.http.limits.max_connections;
        let caps = limits::connection_caps(&config.processes, max, tcp)?;
        Ok((caps, [fds, procs]))
    });
    let (caps, raised) = match caps {
        Ok(c) => c,
        Err(e) => {
            if let Some(pipe) = ready.take() {
                detach::report(&pipe, &format!("error {}", describe(&e)));
            }
            return Err(e);
        }
    };
    let start = start_lines(&config, &notes, raised.into_iter().flatten());
    // The merged `name | line` view, unless the config sends the output
    // where it wants it (a supervisord.conf) or nobody can see it: a stdout
    // that is /dev/null would cost a copy and a prefix of every line for
    // nothing (as much CPU again as the capture itself).
    let view = foreground && config.daemon.echo_output && !foreground::stdout_is_dev_null();
    let result = rt.block_on(daemon(
        config,
        caps,
        &mut ready,
        own_log,
        view.then_some(&mut printer),
        start,
        Up {
            daemonized: notes.daemonized,
            ..up
        },
    ));
    if let (Err(e), Some(pipe)) = (&result, ready.take()) {
        detach::report(&pipe, &format!("error {}", describe(e)));
    }
    // Dropping the runtime drops the last handle on the output channel, so
    // the foreground view sees its end once it has printed what is left.
    drop(rt);
    if let Some(p) = printer {
        p.finish(Duration::from_secs(2));
    }
    result
}

/// What a supervisord-style log says as it opens and as the servers open:
/// root's warning, the file's notes, the uid and the limits it raised.
fn start_lines(
    config: &Config,
    notes: &Notes,
    limits: impl Iterator<Item = String>,
) -> suplog::StartLines {
    use tend_supervisor::mainlog::Line;
    let line = |level, text: &str| Line {
        level,
        text: text.to_string(),
    };
    let mut opening = Vec::new();
    if config.daemon.user.is_none() && nix::unistd::Uid::effective().is_root() {
        opening.push(line(LogLevel::Critical, suplog::ROOT_WARNING));
    }
    let parse = &config.daemon.start_notes.parse;
    let (warnings, infos): (Vec<_>, Vec<_>) = parse.iter().partition(|(l, _)| *l >= LogLevel::Warn);
    opening.extend(warnings.into_iter().map(|(l, t)| line(*l, t)));
    opening.extend(infos.into_iter().map(|(l, t)| line(*l, t)));
    opening.extend(notes.uid.iter().map(|t| line(LogLevel::Info, t)));
    opening.extend(limits.map(|t| line(LogLevel::Info, &t)));
    let servers = config
        .daemon
        .start_notes
        .servers
        .iter()
        .map(|(l, t)| line(*l, t))
        .collect();
    suplog::StartLines { opening, servers }
}

/// The listeners, bound and not yet serving.
struct Bound {
    unix: UnixServer,
    tcp: Vec<listeners::TcpListener>,
    /// The TLS of the TCP listeners that have some, for reloads.
    tls: Vec<Arc<tend_server::ServerTls>>,
    /// The limits of the Unix socket and of the TCP listeners.
    limits: (tend_server::Limits, tend_server::Limits),
    /// The health listener (`[http] health`), when there is one.
    health: Option<TcpServer>,
}

/// Binds every listener of the config (the TCP ones checked for what they
/// expose first, their TLS files read).
async fn bind(config: &Config, caps: limits::ConnectionCaps) -> anyhow::Result<Bound> {
    // Refusals first: nothing is bound for a config that cannot start.
    let n_inet = usize::from(config.daemon.inet.is_some());
    for (i, l) in listeners::tcp_listeners(&config.daemon).iter().enumerate() {
        listeners::check_exposure(l, i < n_inet, config.access.configured)?;
    }
    if config.daemon.socket == tend_config::fallback_socket(&config.path) {
        runtime_dir(&config.daemon.socket)?;
        info!(
            "{} is in a read-only folder: its socket is {}",
            config.path.display(),
            config.daemon.socket.display()
        );
    }
    let mode = config.daemon.socket_mode;
    let unix = match &config.daemon.socket_group {
        // Bound for the owner alone until the group is right, so that no
        // member of the daemon's own group can connect in between.
        Some(group) => {
            let unix = UnixServer::bind(&config.daemon.socket, mode & 0o700)?;
            faces::chgrp_socket(unix.path(), group, mode)?;
            unix
        }
        None => UnixServer::bind(&config.daemon.socket, mode)?,
    };
    if let Some(owner) = &config.daemon.socket_owner {
        faces::chown_socket(unix.path(), owner)?;
    }
    let (tcp, tls) = listeners::bind_tcp(&config.daemon, &Connections::new()).await?;
    let health = health::bind(config).await?;
    Ok(Bound {
        unix,
        tcp,
        tls,
        limits: listeners::limits(&config.daemon, caps),
        health,
    })
}

/// Makes the runtime directory of a fallback socket (mode 0700), and checks
/// that it is this user's alone: a directory in /tmp that someone else made
/// could hand the socket to them.
fn runtime_dir(socket: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let Some(dir) = socket.parent() else {
        return Ok(());
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let meta =
        std::fs::symlink_metadata(dir).with_context(|| format!("cannot stat {}", dir.display()))?;
    let me = nix::unistd::Uid::effective().as_raw();
    if !meta.is_dir() || meta.uid() != me || meta.mode() & 0o022 != 0 {
        anyhow::bail!(
            "{} is not a directory of this user's alone (mode 0700): it cannot hold the socket",
            dir.display()
        );
    }
    Ok(())
}

type ServerTask = JoinHandle<Result<(), ServeError>>;

/// The listeners, serving.
struct Serving {
    /// `true` once the servers should stop accepting and finish.
    stop: watch::Sender<bool>,
    unix: ServerTask,
    tcp: Option<ServerTask>,
    health: Option<ServerTask>,
    socket: PathBuf,
}

/// Serves every listener with its faces.
fn serve(config: &Config, bound: Bound, faces: &Faces) -> Serving {
    let (stop, stopped) = watch::channel(false);
    let until = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let socket = bound.unix.path().to_path_buf();
    let unix_router = faces.unix_router();
    let (unix_limits, tcp_limits) = bound.limits;
    let unix = tokio::spawn(bound.unix.serve_with(
        unix_router,
        unix_limits,
        until(stopped.clone()),
    ));
    let mut tcp_servers = tokio::task::JoinSet::new();
    for l in bound.tcp {
        // Every TCP listener is the door `inet` of the access rules.
        let router = faces.tcp_router();
        let authenticated = l.conf.auth.is_some()
            || listeners::requires_client_cert(&l.conf)
            || config.access.configured;
        let msg = format!(
            "serving Supervisor's XML-RPC on {}{}",
            l.url(),
            if authenticated {
                ""
            } else {
                " without HTTP authentication"
            }
        );
        // supervisord's own line about it is among its start-up lines.
        if config.daemon.log_format == LogFormat::Supervisord {
            debug!("{msg}");
        } else {
            info!("{msg}");
        }
        tcp_servers.spawn(
            l.server
                .serve_with(router, tcp_limits.clone(), until(stopped.clone())),
        );
    }
    // One task for all of them: it ends early only if one of them fails.
    let tcp = (!tcp_servers.is_empty()).then(|| {
        tokio::spawn(async move {
            while let Some(done) = tcp_servers.join_next().await {
                match done {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(e),
                    Err(e) => warn!("a TCP server task ended: {e}"),
                }
            }
            Ok(())
        })
    });
    let health = bound
        .health
        .map(|h| health::serve(h, &faces.daemon, until(stopped.clone())));
    if config.daemon.unix_auth.is_none() {
        debug!(
            "the socket {} requires no HTTP authentication (its file mode is the access control)",
            socket.display()
        );
    }
    Serving {
        stop,
        unix,
        tcp,
        health,
        socket,
    }
}

impl Serving {
    /// Stops accepting and waits for the servers to finish.
    async fn finish(self) {
        let _ = self.stop.send(true);
        // (A JoinHandle that already completed in the signal loop must not
        // be awaited again.)
        if !self.unix.is_finished()
            && let Ok(Err(e)) = self.unix.await
        {
            warn!("{e}");
        }
        for t in [self.tcp, self.health].into_iter().flatten() {
            if !t.is_finished()
                && let Ok(Err(e)) = t.await
            {
                warn!("{e}");
            }
        }
    }
}

/// Why the signal loop ended.
enum Exit {
    /// Asked to stop (a signal, `tend shutdown`, a server that failed).
    Stop,
    /// The supervisor's driver is gone: nothing is left to stop.
    DriverGone,
}

async fn daemon(
    mut config: Config,
    caps: limits::ConnectionCaps,
    ready: &mut Option<OwnedFd>,
    own_log: Option<OwnLog>,
    printer: Option<&mut Option<Printer>>,
    start: suplog::StartLines,
    mut up: Up,
) -> anyhow::Result<u8> {
    let daemonized = std::mem::take(&mut up.daemonized);
    let supervisord = config.daemon.log_format == LogFormat::Supervisord;
    if supervisord {
        start.emit_opening();
    }
    let init = pid1::init_mode(up.init);
    let forwarded = config.daemon.platform.forward_signals.clone();
    pid1::ignore_unasked(init, &forwarded);
    let mut signals = Signals::install()?;
    let forwarding = pid1::Forwarding::install(&forwarded);
    // The same for tasks' signals, before the socket exists: once a client
    // can reach the daemon, a signal for a task must not be lost.
    let task_signals = tasks::listen(&config.tasks);
    let bound = bind(&config, caps).await?;
    let (launcher, exits) = UnixLauncher::with_options(launch_options(&config, init))
        .context("cannot start the supervisor")?;
    report_cgroups(launcher.cgroup_status(), &config.processes);
    let (sup, mut driver) = Supervisor::with_launcher(Options::default(), launcher, exits);
    // Subscribed before any process is added, so no event is missed.
    let events = sup.subscribe();
    let main_log = Arc::new(Mutex::new(
        tend_supervisor::mainlog::Context::from_declared(&config.declared),
    ));
    if supervisord && config.daemon.log_level.unwrap_or(LogLevel::Info) <= LogLevel::Debug {
        tokio::spawn(suplog::log_output(sup.subscribe_logs()));
    }

    // The supervisor and the config state keep the processes from here on
    // (sharing each spec); the config keeps only the daemon's own settings.
    let processes = std::mem::take(&mut config.processes);
    let inherited = Inherited::default();
    for spec in &processes {
        inherited.record(spec);
    }
    if let Some(slot) = printer {
        // Subscribed before any process starts, so the first lines show too.
        let names: Vec<Name> = processes.iter().map(|p| p.name.clone()).collect();
        *slot = Some(
            Printer::spawn(sup.subscribe_logs(), inherited.clone(), &names)
                .context("cannot start the output thread")?,
        );
    }
    let shutdown = Shutdown::new();
    let peers = tend_server::peers::Peers::new(
        peers::specs(&config.daemon.peers).context("cannot use a [[peer]] of the config file")?,
    );
    let faces = Faces::build(
        &mut config,
        &sup,
        &shutdown,
        &inherited,
        &main_log,
        bound.tls.clone(),
        peers,
    );
    // Subscribed before the config's processes are added.
    let telemetry = start_telemetry(&config, &sup, faces.daemon.metrics());
    if supervisord {
        tokio::spawn(suplog::log_events(
            events,
            main_log,
            faces.daemon.clone(),
            start.clone(),
        ));
    } else {
        tokio::spawn(own_log::log_events(events));
    }
    if let Err(e) = faces.daemon.config().add_declared().await {
        let _ = sup.shutdown().await;
        return Err(e).context("cannot add the processes of the config file");
    }

    let outcome = Arc::new(pid1::Outcome::default());
    let watcher = pid1::watch(&faces.daemon, outcome.clone());
    let forwarders = forwarding.start(&sup, &shutdown);
    let mut serving = serve(&config, bound, &faces);
    if supervisord {
        start.emit_servers();
        for (level, text) in &daemonized {
            suplog::emit(*level, text);
        }
    }
    let pidfile = config
        .daemon
        .pidfile
        .as_deref()
        .and_then(|p| pidfile::write_pidfile(p, supervisord));
    let started = format!(
        "tend {} (pid {}) serving {} on {}",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        crate::plural(processes.len(), "process"),
        serving.socket.display()
    );
    if supervisord {
        if pidfile.is_some() || config.daemon.pidfile.is_none() {
            info!("supervisord started with pid {}", std::process::id());
        }
        debug!("{started}");
    } else {
        info!("{started}");
    }
    if let Some(pipe) = ready.take() {
        detach::report(&pipe, &format!("ready {}\n", std::process::id()));
    }

    let tasks = Tasks::start(&sup, &shutdown, &config.tasks, &processes, task_signals);
    drop(processes);
    let autostart = autostart(&sup, up.notify.clone(), up.detached);
    let exit = signal_loop(
        &mut signals,
        &config,
        &faces,
        &tasks,
        own_log.as_ref(),
        &mut driver,
        &mut serving,
    )
    .await;
    shutdown.trigger();
    if let Some(n) = &up.notify {
        n.send("STOPPING=1\nSTATUS=stopping every process");
    }
    autostart.abort();
    for f in forwarders {
        f.abort();
    }
    if let Some(l) = &faces.listeners {
        l.stopping();
    }
    if let Exit::DriverGone = exit {
        shutdown.end_streams();
        finish_telemetry(telemetry).await;
        serving.finish().await;
        pidfile::remove_pidfile(pidfile.as_deref());
        anyhow::bail!("the supervisor's driver stopped unexpectedly");
    }
    stop_everything(&sup, &mut signals, own_log.as_ref(), supervisord).await;
    // The last exits and stops go to the collector too (briefly: a dead
    // collector must not hold the shutdown up).
    finish_telemetry(telemetry).await;
    // Followers of the logs have seen the processes' last words; let them go.
    shutdown.end_streams();
    serving.finish().await;
    let _ = driver.await;
    // The driver has published its last event: the outcome is complete.
    watcher.finish(Duration::from_secs(1)).await;
    pidfile::remove_pidfile(pidfile.as_deref());
    if supervisord {
        debug!("all processes stopped; bye");
    } else {
        info!("all processes stopped; bye");
    }
    outcome.log();
    Ok(outcome.code())
}

/// How the launcher runs processes for `config`: every child reaped (tend is
/// a subreaper, or PID 1), each process in a cgroup of its own as
/// `[daemon] cgroup` says, under a subtree named after the socket (so the
/// next run with the same socket finds what a killed one left), and a guard
/// unless tend is PID 1 (whose end the kernel makes the end of everything).
fn launch_options(config: &Config, init: bool) -> LaunchOptions {
    let mut o = LaunchOptions::new(true);
    o.cgroup = config.daemon.platform.cgroup.clone();
    o.cgroup_name = Some(cgroup_name(&config.daemon.socket));
    o.guard = !(init && tend_core::unix::init::is_pid1());
    o
}

/// `tend-HASH`, HASH the FNV-1a hash of the socket path: one per daemon
/// (two cannot share a socket), the same from one run to the next.
fn cgroup_name(socket: &std::path::Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut h: u32 = 0x811c_9dc5;
    for b in socket.as_os_str().as_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("tend-{h:08x}")
}

/// Says where processes run, once: their cgroups (and leftovers killed),
/// or, in one warning, why they have none and what that costs.
fn report_cgroups(st: &CgroupStatus, processes: &[Arc<ProcessSpec>]) {
    if let Some(dir) = &st.dir {
        let controllers = if st.controllers.is_empty() {
            "none delegated".to_string()
        } else {
            st.controllers.join(", ")
        };
        info!(
            "processes run in cgroups under {} (controllers: {controllers})",
            dir.display()
        );
        if let Some(leaf) = &st.moved_to {
            info!(
                "tend moved itself to {} to enable controllers",
                leaf.display()
            );
        }
        if st.leftovers_killed > 0 {
            warn!(
                "killed {} an earlier tend left in {}",
                crate::plural(st.leftovers_killed, "process"),
                dir.display()
            );
        }
        return;
    }
    let Some(problem) = &st.problem else {
        debug!("cgroups are off ([daemon] cgroup = \"off\")");
        return;
    };
    let limited: Vec<&str> = processes
        .iter()
        .filter(|p| !p.limits.is_empty())
        .map(|p| p.name.as_str())
        .collect();
    let limits = if limited.is_empty() {
        String::new()
    } else {
        format!("; the limits of {} are not applied", limited.join(", "))
    };
    warn!(
        "no cgroups for the processes: {problem}. Stops go to process groups only, so a daemon that leaves its group survives a stop{limits} (see docs/running.md; [daemon] cgroup = \"off\" says this is intended)"
    );
}

#[cfg(feature = "otel")]
type Telemetry = Option<telemetry::Telemetry>;
/// Without the `otel` feature there is nothing to run.
#[cfg(not(feature = "otel"))]
struct Telemetry;

/// Starts the OTLP exporter when `[telemetry]` or the `OTEL_*` variables
/// ask for it. A setting it cannot use is an error in the log, and the
/// daemon runs without it: supervision never depends on the collector.
fn start_telemetry(
    config: &Config,
    sup: &Supervisor,
    metrics: &tend_server::metrics::Metrics,
) -> Telemetry {
    #[cfg(feature = "otel")]
    {
        match telemetry::Settings::new(&config.telemetry, |k| std::env::var(k).ok()) {
            Ok(Some(settings)) => Some(telemetry::Telemetry::start(settings, sup, metrics)),
            Ok(None) => None,
            Err(e) => {
                tracing::error!("telemetry: {e}; nothing is exported");
                None
            }
        }
    }
    #[cfg(not(feature = "otel"))]
    {
        let _ = (sup, metrics);
        if config.telemetry.configured {
            warn!("[telemetry] is ignored: this tend was built without the otel feature");
        }
        Telemetry
    }
}

async fn finish_telemetry(t: Telemetry) {
    #[cfg(feature = "otel")]
    if let Some(t) = t {
        t.finish(Duration::from_secs(3)).await;
    }
    #[cfg(not(feature = "otel"))]
    let Telemetry = t;
}

/// Starts the service beside the signal loop, so that a signal during a slow
/// start is honoured. Once every autostarted process has got where it was
/// going, systemd hears `READY=1` (when it listens).
fn autostart(
    sup: &Supervisor,
    notify: Option<sd_notify::Notifier>,
    detached: bool,
) -> JoinHandle<()> {
    let sup = sup.clone();
    tokio::spawn(async move {
        let started = sup.start_autostart().await;
        // The start-up's allocations (the config's tables, the spawns) are
        // done with: their pages go back.
        tend_core::unix::memory::trim_heap();
        if let Some(n) = notify {
            sd_notify::ready(&n, &sup, detached).await;
            // Ends with the supervisor's event channel.
            drop(sd_notify::spawn_updates(n, sup.clone()));
        }
        match started {
            Ok(results) => {
                // Failures were logged as they happened (spawn failed, gave up).
                for r in results {
                    if let Err(e) = r.result {
                        tracing::trace!("{}: not started: {e}", r.name);
                    }
                }
            }
            Err(e) => debug!("autostart interrupted: {e}"),
        }
    })
}

/// Waits until the daemon is asked to stop, handling the signals that do
/// not stop it on the way.
async fn signal_loop(
    signals: &mut Signals,
    config: &Config,
    faces: &Faces,
    tasks: &Tasks,
    own_log: Option<&OwnLog>,
    driver: &mut JoinHandle<()>,
    serving: &mut Serving,
) -> Exit {
    let shutdown = faces.daemon.shutdown().clone();
    let sup = faces.daemon.supervisor();
    let supervisord = config.daemon.log_format == LogFormat::Supervisord;
    let exit_request = |name: &str| {
        if supervisord {
            warn!("received {name} indicating exit request");
        } else {
            info!("{name} received; stopping every process");
        }
    };
    loop {
        tokio::select! {
            _ = signals.usr2.recv() => {
                // Forwarded instead, when the config says so.
                if !config.daemon.platform.forward_signals.contains(&Signal::USR2) {
                    own_log::reopen_logs(sup, own_log, supervisord);
                }
                continue;
            }
            _ = signals.hup.recv() => {
                // A task on SIGHUP replaces the reload (`tend reload` still
                // reloads), and so does forwarding it.
                if !signals::claims(tasks, SignalKind::hangup())
                    && !config.daemon.platform.forward_signals.contains(&Signal::HUP)
                {
                    signals::on_hangup(config.daemon.on_hup, &faces.daemon, supervisord);
                }
                continue;
            }
            // A task on one of these runs first and shuts tend down itself.
            _ = signals.term.recv(), if !signals::claims(tasks, SignalKind::terminate()) => exit_request("SIGTERM"),
            _ = signals.int.recv(), if !signals::claims(tasks, SignalKind::interrupt()) => exit_request("SIGINT"),
            _ = signals.quit.recv(), if !signals::claims(tasks, SignalKind::quit()) => exit_request("SIGQUIT"),
            _ = shutdown.triggered() => {
                if supervisord {
                    debug!("shutdown requested; stopping every process");
                } else {
                    info!("shutdown requested; stopping every process");
                }
            }
            _ = &mut *driver => return Exit::DriverGone,
            _ = &mut serving.unix => warn!("the API server stopped unexpectedly; shutting down"),
            r = maybe(&mut serving.tcp) => warn!("the TCP server stopped unexpectedly ({r}); shutting down"),
        }
        return Exit::Stop;
    }
}

/// Stops every process (in order), still handling the signals meanwhile. A
/// second TERM, INT or QUIT (a second Ctrl-C) stops waiting: what is left
/// is sent SIGKILL now, as `docker compose` does.
async fn stop_everything(
    sup: &Supervisor,
    signals: &mut Signals,
    own_log: Option<&OwnLog>,
    supervisord: bool,
) {
    // A signal that arrived before the shutdown (one a task claimed, which
    // the signal loop left pending) is not a second one.
    for s in [&mut signals.term, &mut signals.int, &mut signals.quit] {
        drain(s);
    }
    let stopping = sup.shutdown();
    tokio::pin!(stopping);
    loop {
        let again = tokio::select! {
            r = &mut stopping => {
                if let Err(e) = r {
                    warn!("shutdown: {e}");
                }
                return;
            }
            _ = signals.usr2.recv() => {
                own_log::reopen_logs(sup, own_log, supervisord);
                continue;
            }
            _ = signals.hup.recv() => {
                if supervisord {
                    warn!("ignored SIGHUP indicating restart request (shutdown in progress)");
                } else {
                    info!("SIGHUP ignored: shutting down");
                }
                continue;
            }
            _ = signals.term.recv() => "SIGTERM",
            _ = signals.int.recv() => "SIGINT",
            _ = signals.quit.recv() => "SIGQUIT",
        };
        if supervisord {
            warn!("received {again} indicating exit request");
        }
        warn!("{again} again while shutting down: killing every process that is left");
        if let Err(e) = sup.kill_remaining().await {
            debug!("kill_remaining: {e}");
        }
    }
}

/// Consumes the notifications `s` has pending, without waiting.
fn drain(s: &mut tokio::signal::unix::Signal) {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    while let std::task::Poll::Ready(Some(())) = s.poll_recv(&mut cx) {}
}

/// Waits for an optional server task; never resolves without one.
async fn maybe(task: &mut Option<ServerTask>) -> String {
    match task {
        Some(t) if !t.is_finished() => match t.await {
            Ok(Ok(())) => "it ended".to_string(),
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        },
        _ => std::future::pending().await,
    }
}
