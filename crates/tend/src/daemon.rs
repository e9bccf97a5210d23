//! `tend up`: the daemon's main, in the foreground or detached.

use std::collections::HashMap;
use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context;
use tend_core::logs::Stream;
use tend_core::runtime::LogChunk;
use tend_core::spec::LogTarget;
use tend_core::{Event, Name, Options, ProcessSpec, Supervisor};
use tend_server::{ApiOptions, Shutdown, UnixServer};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::broadcast;
use tracing::{debug, error, info, warn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

use crate::config::{Config, DaemonConfig, LogFormat};
use crate::output::Prefixer;

/// Runs the daemon in the foreground until it is told to stop.
pub fn foreground(config: Config) -> ExitCode {
    let own_log = match init_logging(&config.daemon) {
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
            let own_log = match init_logging(&config.daemon) {
                Ok(l) => l,
                Err(e) => {
                    report(&write_end, &format!("error {e}"));
                    std::process::exit(1);
                }
            };
            match run(config, Some(write_end), own_log, false) {
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

/// tend's own log: text or JSON lines, to stderr or appended to `log_file`.
/// Returns the file, to reopen it on SIGUSR2.
fn init_logging(cfg: &DaemonConfig) -> Result<Option<OwnLog>, String> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, ansi, file) = match &cfg.log_file {
        Some(path) => {
            let file = OwnLog::open(path)
                .map_err(|e| format!("cannot open the log file {}: {e}", path.display()))?;
            (BoxMakeWriter::new(file.clone()), false, Some(file))
        }
        None => (
            BoxMakeWriter::new(std::io::stderr),
            std::io::stderr().is_terminal(),
            None,
        ),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi)
        .with_target(false);
    let _ = match cfg.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    Ok(file)
}

/// tend's own log file. Every event is one `write(2)` in append mode, made
/// while the event is logged, so nothing waits in a buffer when the daemon exits.
#[derive(Clone)]
struct OwnLog(Arc<OwnLogInner>);

struct OwnLogInner {
    path: PathBuf,
    file: Mutex<File>,
}

impl OwnLog {
    fn open(path: &Path) -> std::io::Result<OwnLog> {
        Ok(OwnLog(Arc::new(OwnLogInner {
            path: path.to_path_buf(),
            file: Mutex::new(open_append(path)?),
        })))
    }

    /// Opens the file again at its path (after logrotate moved it).
    fn reopen(&self) -> std::io::Result<()> {
        let fresh = open_append(&self.0.path)?;
        *lock(&self.0.file) = fresh;
        Ok(())
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data behind these locks stays consistent even if a holder panicked.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A locked handle on tend's own log file for one event.
struct OwnLogWriter<'a>(MutexGuard<'a, File>);

impl Write for OwnLogWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl<'a> MakeWriter<'a> for OwnLog {
    type Writer = OwnLogWriter<'a>;
    fn make_writer(&'a self) -> Self::Writer {
        OwnLogWriter(lock(&self.0.file))
    }
}

/// Each process costs two pipe ends and its log files; the default soft limit
/// (often 1024) is too low for a few hundred processes, the hard one is not.
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    if soft >= hard {
        return;
    }
    match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => debug!("raised the open files limit from {soft} to {hard}"),
        Err(e) => debug!("cannot raise the open files limit from {soft} to {hard}: {e}"),
    }
}

/// Which streams of which processes go to the daemon's own stdout/stderr
/// (`"inherit"`): the foreground view does not print them a second time.
#[derive(Clone, Default)]
struct Inherited(Arc<Mutex<HashMap<Name, [bool; 2]>>>);

impl Inherited {
    fn record(&self, spec: &ProcessSpec) {
        let l = &spec.logs;
        let flags = [
            l.stdout == LogTarget::Inherit,
            !l.merge_stderr && l.stderr == LogTarget::Inherit,
        ];
        lock(&self.0).insert(spec.name.clone(), flags);
    }

    fn contains(&self, name: &Name, stream: Stream) -> bool {
        let i = match stream {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        };
        lock(&self.0).get(name).is_some_and(|f| f[i])
    }
}

/// The foreground view: every process's output as `name | line` on stdout,
/// like `docker compose up`.
///
/// It runs on a thread of its own, so a stdout that is slow to drain (a
/// pager, a terminal scrolled back) never stalls the daemon: the view falls
/// behind, says how much it skipped, and catches up.
struct Printer {
    done: std::sync::mpsc::Receiver<()>,
}

impl Printer {
    fn spawn(
        mut rx: broadcast::Receiver<LogChunk>,
        inherited: Inherited,
        names: &[Name],
    ) -> std::io::Result<Printer> {
        let mut prefixer = Prefixer::new(
            names.iter().map(Name::as_str),
            std::io::stdout().is_terminal(),
        );
        let (tx, done) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("tend-output".into())
            .spawn(move || {
                let mut buf = Vec::with_capacity(64 * 1024);
                loop {
                    buf.clear();
                    match rx.blocking_recv() {
                        Ok(c) => {
                            if inherited.contains(&c.name, c.stream) {
                                continue;
                            }
                            prefixer.width = prefixer.width.max(c.name.as_str().len());
                            for line in c.lines() {
                                prefixer.line(&mut buf, c.name.as_str(), line);
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            let note = format!(
                                "(tend: {n} batches of output not shown here; see the log files)\n"
                            );
                            buf.extend_from_slice(note.as_bytes());
                        }
                        Err(broadcast::error::RecvError::Closed) => break,
                    }
                    if std::io::stdout().lock().write_all(&buf).is_err() {
                        // Nobody reads stdout any more; the log files still get everything.
                        break;
                    }
                }
                let _ = tx.send(());
            })?;
        Ok(Printer { done })
    }

    /// Waits (a little) until everything published has been printed.
    fn finish(self, timeout: Duration) {
        let _ = self.done.recv_timeout(timeout);
    }
}

/// Completes a spec added through the API like the config's processes:
/// output in files under the log directory unless the request said otherwise.
fn prepare_spec(
    log_dir: PathBuf,
    inherited: Inherited,
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
                crate::config::check_log_file(p).map_err(|e| format!("invalid log file: {e}"))?;
            }
        }
        if logs.merge_stderr {
            logs.stderr = logs.stdout.clone();
        }
        inherited.record(spec);
        Ok(())
    }
}

/// SIGUSR2: reopen every log file, tend's own included.
fn reopen_logs(sup: &Supervisor, own_log: Option<&OwnLog>) {
    if let Some(l) = own_log
        && let Err(e) = l.reopen()
    {
        warn!("cannot reopen tend's log file {}: {e}", l.0.path.display());
    }
    let errors = sup.reopen_logs();
    for (path, e) in &errors {
        warn!("cannot reopen log file {}: {e}", path.display());
    }
    info!(
        "SIGUSR2 received; log files reopened{}",
        if errors.is_empty() {
            ""
        } else {
            " (with errors)"
        }
    );
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
    raise_fd_limit();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut ready = ready;
    let mut printer = None;
    let result = rt.block_on(daemon(
        config,
        &mut ready,
        own_log,
        foreground.then_some(&mut printer),
    ));
    if let (Err(e), Some(pipe)) = (&result, ready.take()) {
        report(&pipe, &format!("error {e:#}"));
    }
    // Dropping the runtime drops the last handle on the output channel, so
    // the foreground view sees its end once it has printed what is left.
    drop(rt);
    if let Some(p) = printer {
        p.finish(Duration::from_secs(2));
    }
    result
}

async fn daemon(
    config: Config,
    ready: &mut Option<OwnedFd>,
    own_log: Option<OwnLog>,
    printer: Option<&mut Option<Printer>>,
) -> anyhow::Result<()> {
    // Handlers first, so a signal that arrives while starting up is not lost.
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut quit = signal(SignalKind::quit()).context("cannot handle SIGQUIT")?;
    let mut usr2 = signal(SignalKind::user_defined2()).context("cannot handle SIGUSR2")?;

    // Bind before spawning anything: a second `tend up` must fail without side effects.
    let server = UnixServer::bind(&config.daemon.socket, config.daemon.socket_mode)?;
    let (sup, mut driver) =
        Supervisor::spawn(Options::default(), true).context("cannot start the supervisor")?;
    tokio::spawn(log_events(sup.subscribe()));

    let inherited = Inherited::default();
    for spec in &config.processes {
        inherited.record(spec);
    }
    if let Some(slot) = printer {
        // Subscribed before any process starts, so the first lines show too.
        let names: Vec<Name> = config.processes.iter().map(|p| p.name.clone()).collect();
        *slot = Some(
            Printer::spawn(sup.subscribe_logs(), inherited.clone(), &names)
                .context("cannot start the output thread")?,
        );
    }

    let count = config.processes.len();
    for spec in config.processes {
        let name = spec.name.clone();
        if let Err(e) = sup.add(spec).await {
            let _ = sup.shutdown().await;
            return Err(e).with_context(|| format!("cannot add process {name}"));
        }
    }

    let shutdown = Shutdown::new();
    let mut api = ApiOptions::default();
    api.prepare_spec = Some(Arc::new(prepare_spec(
        config.daemon.log_dir.clone(),
        inherited,
    )));
    let router = tend_server::router_with(sup.clone(), shutdown.clone(), api);
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
    loop {
        tokio::select! {
            _ = usr2.recv() => {
                reopen_logs(&sup, own_log.as_ref());
                continue;
            }
            _ = term.recv() => info!("SIGTERM received; stopping every process"),
            _ = int.recv() => info!("SIGINT received; stopping every process"),
            _ = quit.recv() => info!("SIGQUIT received; stopping every process"),
            _ = shutdown.triggered() => info!("shutdown requested; stopping every process"),
            _ = &mut driver => driver_gone = true,
            _ = &mut server_task => warn!("the API server stopped unexpectedly; shutting down"),
        }
        break;
    }
    shutdown.trigger();
    autostart.abort();
    if driver_gone {
        shutdown.end_streams();
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
            _ = usr2.recv() => reopen_logs(&sup, own_log.as_ref()),
            _ = term.recv() => info!("already shutting down"),
            _ = int.recv() => info!("already shutting down"),
            _ = quit.recv() => info!("already shutting down"),
        }
    }
    // Followers of the logs have seen the processes' last words; let them go.
    shutdown.end_streams();
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
