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
mod pid1;
mod pidfile;
pub(crate) mod sd_notify;
mod signals;

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context;
use tend_config::Config;
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
}

impl Up {
    /// Takes systemd's settings out of the environment: call it first,
    /// while the process has one thread.
    pub(crate) fn new(init: bool) -> Up {
        Up {
            init,
            notify: sd_notify::take_from_env(),
            detached: false,
        }
    }
}

/// Runs the daemon in the foreground until it is told to stop.
pub fn foreground(config: Config, up: Up) -> ExitCode {
    let own_log = match own_log::init_logging(&config.daemon, true) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match run(config, None, own_log, true, up) {
        Ok(code) => ExitCode::from(code),
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
    up: Up,
) -> anyhow::Result<u8> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut ready = ready;
    let mut printer = None;
    let caps = limits::raise_fd_limit(config.daemon.minfds)
        .and_then(|()| limits::raise_proc_limit(config.daemon.minprocs))
        .and_then(|()| {
            let tcp = !listeners::tcp_listeners(&config.daemon).is_empty();
            let max = config.daemon.http.limits.max_connections;
            limits::connection_caps(&config.processes, max, tcp)
        });
    let caps = match caps {
        Ok(c) => c,
        Err(e) => {
            if let Some(pipe) = ready.take() {
                detach::report(&pipe, &format!("error {}", describe(&e)));
            }
            return Err(e);
        }
    };
    let result = rt.block_on(daemon(
        config,
        caps,
        &mut ready,
        own_log,
        foreground.then_some(&mut printer),
        up,
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
        info!(
            "serving Supervisor's XML-RPC on {}{}",
            l.url(),
            if authenticated {
                ""
            } else {
                " without HTTP authentication"
            }
        );
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
    up: Up,
) -> anyhow::Result<u8> {
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
    tokio::spawn(own_log::log_events(sup.subscribe()));

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
    let faces = Faces::build(&mut config, &sup, &shutdown, &inherited, bound.tls.clone());
    if let Err(e) = faces.daemon.config().add_declared().await {
        let _ = sup.shutdown().await;
        return Err(e).context("cannot add the processes of the config file");
    }

    let outcome = Arc::new(pid1::Outcome::default());
    let watcher = pid1::watch(&faces.daemon, outcome.clone());
    let forwarders = forwarding.start(&sup, &shutdown);
    let mut serving = serve(&config, bound, &faces);
    let pidfile = config
        .daemon
        .pidfile
        .as_deref()
        .and_then(pidfile::write_pidfile);
    info!(
        "tend {} (pid {}) serving {} processes on {}",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        processes.len(),
        serving.socket.display()
    );
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
        serving.finish().await;
        pidfile::remove_pidfile(pidfile.as_deref());
        anyhow::bail!("the supervisor's driver stopped unexpectedly");
    }
    stop_everything(&sup, &mut signals, own_log.as_ref()).await;
    // Followers of the logs have seen the processes' last words; let them go.
    shutdown.end_streams();
    serving.finish().await;
    let _ = driver.await;
    // The driver has published its last event: the outcome is complete.
    let _ = tokio::time::timeout(Duration::from_secs(1), watcher).await;
    pidfile::remove_pidfile(pidfile.as_deref());
    info!("all processes stopped; bye");
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
                "killed {} processes an earlier tend left in {}",
                st.leftovers_killed,
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
                        debug!("{}: not started: {e}", r.name);
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
    loop {
        tokio::select! {
            _ = signals.usr2.recv() => {
                // Forwarded instead, when the config says so.
                if !config.daemon.platform.forward_signals.contains(&Signal::USR2) {
                    own_log::reopen_logs(sup, own_log);
                }
                continue;
            }
            _ = signals.hup.recv() => {
                // A task on SIGHUP replaces the reload (`tend reload` still
                // reloads), and so does forwarding it.
                if !signals::claims(tasks, SignalKind::hangup())
                    && !config.daemon.platform.forward_signals.contains(&Signal::HUP)
                {
                    signals::on_hangup(config.daemon.on_hup, &faces.daemon);
                }
                continue;
            }
            // A task on one of these runs first and shuts tend down itself.
            _ = signals.term.recv(), if !signals::claims(tasks, SignalKind::terminate()) => info!("SIGTERM received; stopping every process"),
            _ = signals.int.recv(), if !signals::claims(tasks, SignalKind::interrupt()) => info!("SIGINT received; stopping every process"),
            _ = signals.quit.recv(), if !signals::claims(tasks, SignalKind::quit()) => info!("SIGQUIT received; stopping every process"),
            _ = shutdown.triggered() => info!("shutdown requested; stopping every process"),
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
async fn stop_everything(sup: &Supervisor, signals: &mut Signals, own_log: Option<&OwnLog>) {
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
                own_log::reopen_logs(sup, own_log);
                continue;
            }
            _ = signals.hup.recv() => {
                info!("SIGHUP ignored: shutting down");
                continue;
            }
            _ = signals.term.recv() => "SIGTERM",
            _ = signals.int.recv() => "SIGINT",
            _ = signals.quit.recv() => "SIGQUIT",
        };
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
