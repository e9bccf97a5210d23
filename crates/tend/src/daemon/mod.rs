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
mod limits;
mod listeners;
mod own_log;
mod pidfile;
mod signals;

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context;
use tend_config::Config;
use tend_core::runtime::tasks::{self, Tasks};
use tend_core::{Name, Options, Supervisor};
use tend_server::{Connections, ServeError, Shutdown, UnixServer};
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

/// Runs the daemon in the foreground until it is told to stop.
pub fn foreground(config: Config) -> ExitCode {
    let own_log = match own_log::init_logging(&config.daemon, true) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match run(config, None, own_log, true) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
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
) -> anyhow::Result<()> {
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
                detach::report(&pipe, &format!("error {e:#}"));
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
    ));
    if let (Err(e), Some(pipe)) = (&result, ready.take()) {
        detach::report(&pipe, &format!("error {e:#}"));
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
    Ok(Bound {
        unix,
        tcp,
        tls,
        limits: listeners::limits(&config.daemon, caps),
    })
}

type ServerTask = JoinHandle<Result<(), ServeError>>;

/// The listeners, serving.
struct Serving {
    /// `true` once the servers should stop accepting and finish.
    stop: watch::Sender<bool>,
    unix: ServerTask,
    tcp: Option<ServerTask>,
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
        if let Some(t) = self.tcp
            && !t.is_finished()
            && let Ok(Err(e)) = t.await
        {
            warn!("{e}");
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
) -> anyhow::Result<()> {
    let mut signals = Signals::install()?;
    // The same for tasks' signals, before the socket exists: once a client
    // can reach the daemon, a signal for a task must not be lost.
    let task_signals = tasks::listen(&config.tasks);
    let bound = bind(&config, caps).await?;
    let (sup, mut driver) =
        Supervisor::spawn(Options::default(), true).context("cannot start the supervisor")?;
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

    let mut serving = serve(&config, bound, &faces);
    let pidfile = config
        .daemon
        .pidfile
        .as_deref()
        .and_then(pidfile::write_pidfile);
    info!(
        "tend {} (pid {}) serving {} on {}",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        crate::plural(processes.len(), "process"),
        serving.socket.display()
    );
    if let Some(pipe) = ready.take() {
        detach::report(&pipe, &format!("ready {}\n", std::process::id()));
    }

    let tasks = Tasks::start(&sup, &shutdown, &config.tasks, &processes, task_signals);
    drop(processes);
    let autostart = autostart(&sup);
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
    autostart.abort();
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
    pidfile::remove_pidfile(pidfile.as_deref());
    info!("all processes stopped; bye");
    Ok(())
}

/// Starts the service beside the signal loop, so that a signal during a slow
/// start is honoured.
fn autostart(sup: &Supervisor) -> JoinHandle<()> {
    let sup = sup.clone();
    tokio::spawn(async move {
        match sup.start_autostart().await {
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
                own_log::reopen_logs(sup, own_log);
                continue;
            }
            _ = signals.hup.recv() => {
                // A task on SIGHUP replaces the reload (`tend reload` still reloads).
                if !signals::claims(tasks, SignalKind::hangup()) {
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

/// Stops every process (in order), still handling the signals meanwhile.
async fn stop_everything(sup: &Supervisor, signals: &mut Signals, own_log: Option<&OwnLog>) {
    let stopping = sup.shutdown();
    tokio::pin!(stopping);
    loop {
        tokio::select! {
            r = &mut stopping => {
                if let Err(e) = r {
                    warn!("shutdown: {e}");
                }
                return;
            }
            _ = signals.usr2.recv() => own_log::reopen_logs(sup, own_log),
            _ = signals.hup.recv() => info!("SIGHUP ignored: shutting down"),
            _ = signals.term.recv() => info!("already shutting down"),
            _ = signals.int.recv() => info!("already shutting down"),
            _ = signals.quit.recv() => info!("already shutting down"),
        }
    }
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
