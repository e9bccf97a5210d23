//! `tend up`: the daemon's main, in the foreground or detached.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::process::ExitCode;

use anyhow::Context;
use tend_core::{Event, Options, Supervisor};
use tend_server::{Shutdown, UnixServer};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::broadcast;
use tracing::{debug, error, info, warn};

use crate::config::Config;

/// Runs the daemon in the foreground until it is told to stop.
pub fn foreground(config: Config) -> ExitCode {
    init_logging();
    match run(config, None) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Detaches and returns once the daemon accepts connections (or failed).
///
/// Forks before any runtime or thread exists: the daemon is a grandchild in a
/// new session with stdio on /dev/null; it reports `ready PID` or `error MSG`
/// through a pipe and closes it, and the original process relays that.
pub fn detach(config: Config) -> ExitCode {
    let socket = config.daemon.socket.clone();
    let (read_end, write_end) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: cannot create a pipe: {e}");
            return ExitCode::FAILURE;
        }
    };
    // SAFETY: the process is single-threaded here (no runtime has been built,
    // nothing has spawned a thread), so the child may run arbitrary code.
    match unsafe { nix::unistd::fork() } {
        Err(e) => {
            eprintln!("error: cannot fork: {e}");
            ExitCode::FAILURE
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            drop(write_end);
            // The intermediate child exits at once; reap it so it is no zombie.
            let _ = nix::sys::wait::waitpid(child, None);
            let mut msg = String::new();
            let _ = std::fs::File::from(read_end).read_to_string(&mut msg);
            match msg.strip_prefix("ready ") {
                Some(pid) => {
                    println!(
                        "tend started (pid {}), socket {}",
                        pid.trim(),
                        socket.display()
                    );
                    ExitCode::SUCCESS
                }
                None => {
                    let msg = msg.strip_prefix("error ").unwrap_or(&msg).trim();
                    if msg.is_empty() {
                        eprintln!("error: the daemon exited before it was ready");
                    } else {
                        eprintln!("error: {msg}");
                    }
                    ExitCode::FAILURE
                }
            }
        }
        Ok(nix::unistd::ForkResult::Child) => {
            drop(read_end);
            let _ = nix::unistd::setsid();
            // SAFETY: still single-threaded, as above.
            match unsafe { nix::unistd::fork() } {
                Ok(nix::unistd::ForkResult::Child) => {}
                Ok(nix::unistd::ForkResult::Parent { .. }) => std::process::exit(0),
                Err(e) => {
                    report(&write_end, &format!("error cannot fork: {e}"));
                    std::process::exit(1);
                }
            }
            if let Err(e) = null_stdio() {
                report(
                    &write_end,
                    &format!("error cannot redirect stdio to /dev/null: {e}"),
                );
                std::process::exit(1);
            }
            init_logging();
            match run(config, Some(write_end)) {
                Ok(()) => std::process::exit(0),
                // `run` reported the error through the pipe if it was not ready yet.
                Err(e) => {
                    error!("{e:#}");
                    std::process::exit(1)
                }
            }
        }
    }
}

fn report(pipe: &OwnedFd, msg: &str) {
    let mut f = match pipe.try_clone() {
        Ok(fd) => std::fs::File::from(fd),
        Err(_) => return,
    };
    let _ = f.write_all(msg.as_bytes());
}

fn null_stdio() -> std::io::Result<()> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    nix::unistd::dup2_stdin(&null)?;
    nix::unistd::dup2_stdout(&null)?;
    nix::unistd::dup2_stderr(&null)?;
    Ok(())
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

/// Builds the runtime on this thread and runs the daemon to the end.
///
/// The runtime is current-thread on purpose: children get `PR_SET_PDEATHSIG`,
/// which fires when the *thread* that forked them exits, so every fork must
/// happen on the main thread, which lives as long as the daemon.
fn run(config: Config, ready: Option<OwnedFd>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut ready = ready;
    let result = rt.block_on(daemon(config, &mut ready));
    if let (Err(e), Some(pipe)) = (&result, ready.take()) {
        report(&pipe, &format!("error {e:#}"));
    }
    result
}

async fn daemon(config: Config, ready: &mut Option<OwnedFd>) -> anyhow::Result<()> {
    // Handlers first, so a signal that arrives while starting up is not lost.
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut quit = signal(SignalKind::quit()).context("cannot handle SIGQUIT")?;

    // Bind before spawning anything: a second `tend up` must fail without side effects.
    let server = UnixServer::bind(&config.daemon.socket, config.daemon.socket_mode)?;
    let (sup, mut driver) =
        Supervisor::spawn(Options::default(), true).context("cannot start the supervisor")?;
    tokio::spawn(log_events(sup.subscribe()));

    let count = config.processes.len();
    for spec in config.processes {
        let name = spec.name.clone();
        if let Err(e) = sup.add(spec).await {
            let _ = sup.shutdown().await;
            return Err(e).with_context(|| format!("cannot add process {name}"));
        }
    }

    let shutdown = Shutdown::new();
    let router = tend_server::router(sup.clone(), shutdown.clone());
    let (stop_serving, serving_stopped) = tokio::sync::oneshot::channel::<()>();
    let socket = server.path().to_path_buf();
    let mut server_task = tokio::spawn(server.serve(router, async {
        let _ = serving_stopped.await;
    }));
    info!(
        "tend {} (pid {}) serving {} processes on {}",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        count,
        socket.display()
    );
    if let Some(pipe) = ready.take() {
        report(&pipe, &format!("ready {}\n", std::process::id()));
    }

    // Autostart runs beside the wait below, so a signal during a slow start is honoured.
    let autostart = {
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
    };

    let mut driver_gone = false;
    tokio::select! {
        _ = term.recv() => info!("SIGTERM received; stopping every process"),
        _ = int.recv() => info!("SIGINT received; stopping every process"),
        _ = quit.recv() => info!("SIGQUIT received; stopping every process"),
        _ = shutdown.triggered() => info!("shutdown requested; stopping every process"),
        _ = &mut driver => driver_gone = true,
        _ = &mut server_task => warn!("the API server stopped unexpectedly; shutting down"),
    }
    shutdown.trigger();
    autostart.abort();
    if driver_gone {
        let _ = stop_serving.send(());
        anyhow::bail!("the supervisor's driver stopped unexpectedly");
    }
    // Keep serving while processes stop, so `tend status` shows the progress.
    let stopping = sup.shutdown();
    tokio::pin!(stopping);
    loop {
        tokio::select! {
            r = &mut stopping => {
                if let Err(e) = r {
                    warn!("shutdown: {e}");
                }
                break;
            }
            _ = term.recv() => info!("already shutting down"),
            _ = int.recv() => info!("already shutting down"),
            _ = quit.recv() => info!("already shutting down"),
        }
    }
    let _ = stop_serving.send(());
    // (A JoinHandle that already completed in the select above must not be awaited again.)
    if !server_task.is_finished()
        && let Ok(Err(e)) = server_task.await
    {
        warn!("{e}");
    }
    let _ = driver.await;
    info!("all processes stopped; bye");
    Ok(())
}

/// One log line per event worth a human's attention.
async fn log_events(mut rx: broadcast::Receiver<Event>) {
    loop {
        match rx.recv().await {
            Ok(ev) => log_event(&ev),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                warn!("event log lagged; {n} events not shown")
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

fn log_event(ev: &Event) {
    match ev {
        Event::Spawned { name, pid } => info!("{name}: spawned (pid {pid})"),
        Event::SpawnFailed { name, error } => error!("{name}: cannot spawn: {error}"),
        Event::Exited {
            name,
            pid,
            exit,
            expected: true,
        } => info!("{name}: exited (pid {pid}, {exit})"),
        Event::Exited {
            name,
            pid,
            exit,
            expected: false,
        } => warn!("{name}: exited unexpectedly (pid {pid}, {exit})"),
        Event::RestartScheduled { name, delay_ms } => {
            info!(
                "{name}: restart in {}",
                tend_core::duration::format(std::time::Duration::from_millis(*delay_ms))
            )
        }
        Event::GaveUp { name, reason } => error!("{name}: gave up: {reason}"),
        Event::Killed { name, pid } => {
            warn!("{name}: did not stop in time; sent SIGKILL (pid {pid})")
        }
        Event::Stopped { name } => info!("{name}: stopped"),
        Event::Added { name } => debug!("{name}: added"),
        Event::Removed { name } => info!("{name}: removed"),
        Event::StateChanged { name, from, to } => debug!("{name}: {from} -> {to}"),
        _ => debug!("{ev:?}"),
    }
}
