//! `tend up`: the daemon's main, in the foreground or detached.

use std::collections::HashMap;
use std::io::{IsTerminal, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context;
use tend_core::logs::{LogFile, Stream};
use tend_core::runtime::LogChunk;
use tend_core::runtime::tasks::{ShutdownLatch, Tasks};
use tend_core::spec::LogTarget;
use tend_core::{Event, Name, Options, ProcessSpec, Supervisor};
use tend_server::compat::{CompatOptions, Loader};
use tend_server::{ApiOptions, BasicAuth, Compat, Listener, Shutdown, TcpServer, UnixServer};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::broadcast;
use tracing::{debug, error, info, warn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

use crate::config::supervisord::Auth;
use crate::config::{Config, DaemonConfig, Format, LogFormat};
use crate::eventlistener::{Context as ListenerContext, EventListeners};
use crate::output::Prefixer;

/// Runs the daemon in the foreground until it is told to stop.
pub fn foreground(config: Config) -> ExitCode {
    let own_log = match init_logging(&config.daemon, true) {
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
            // supervisord sets its umask when it daemonizes (not with
            // `nodaemon`): so does `tend up -d`.
            if let Some(mask) = config.daemon.umask {
                nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask & 0o777));
            }
            if let Err(e) = null_stdio() {
                report(
                    &write_end,
                    &format!("error cannot redirect stdio to /dev/null: {e}"),
                );
                std::process::exit(1);
            }
            let own_log = match init_logging(&config.daemon, false) {
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

/// tend's own log: text or JSON lines, to stderr or appended to `log_file`
/// (and to stderr too with `echo_log` in the foreground, as supervisord
/// `nodaemon` does). Returns the file, to reopen it on SIGUSR2.
fn init_logging(cfg: &DaemonConfig, foreground: bool) -> Result<Option<OwnLog>, String> {
    use tracing_subscriber::fmt::writer::MakeWriterExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(cfg.log_level.unwrap_or("info")));
    let (writer, ansi, file) = match &cfg.log_file {
        Some(path) => {
            let file = OwnLog::open(path, cfg.log_max_size, cfg.log_backups)
                .map_err(|e| format!("cannot open the log file {}: {e}", path.display()))?;
            let writer = if cfg.echo_log && foreground {
                BoxMakeWriter::new(file.clone().and(std::io::stderr))
            } else {
                BoxMakeWriter::new(file.clone())
            };
            (writer, false, Some(file))
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
/// while the event is logged, so nothing waits in a buffer when the daemon
/// exits. It rotates like the processes' files (`log_max_size`,
/// `log_backups`), and like them it never makes the daemon fail: what cannot
/// be written is dropped and counted.
#[derive(Clone)]
struct OwnLog(Arc<OwnLogInner>);

struct OwnLogInner {
    file: Mutex<LogFile>,
    origin: Instant,
}

impl OwnLog {
    fn open(path: &Path, max_size: u64, backups: u32) -> std::io::Result<OwnLog> {
        // Opened (and its directory made) here, so a bad path stops `tend up`
        // with the reason instead of a silent log.
        drop(open_append(path)?);
        Ok(OwnLog(Arc::new(OwnLogInner {
            file: Mutex::new(LogFile::open(path.to_path_buf(), max_size, backups)),
            origin: Instant::now(),
        })))
    }

    /// Opens the file again at its path (after logrotate moved it).
    fn reopen(&self) -> std::io::Result<()> {
        lock(&self.0.file).reopen()
    }
}

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
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
struct OwnLogWriter<'a> {
    file: MutexGuard<'a, LogFile>,
    origin: Instant,
}

impl Write for OwnLogWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // Dropped and counted when it cannot be written (see `LogFile`).
        self.file.write(buf, self.origin.elapsed());
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for OwnLog {
    type Writer = OwnLogWriter<'a>;
    fn make_writer(&'a self) -> Self::Writer {
        OwnLogWriter {
            file: lock(&self.0.file),
            origin: self.0.origin,
        }
    }
}

/// Each process costs two pipe ends and its log files; the default soft limit
/// (often 1024) is too low for a few hundred processes, the hard one is not.
///
/// `minfds` (`[supervisord] minfds`) must be reached, raising the hard limit
/// too if need be (as root), or the daemon does not start, as supervisord.
/// Without it the soft limit is raised to the hard one: each running process
/// holds its pipes and a pidfd.
fn raise_fd_limit(minfds: Option<u64>) -> anyhow::Result<()> {
    raise_limit(
        nix::sys::resource::Resource::RLIMIT_NOFILE,
        minfds,
        true,
        "minfds",
        "file descriptors",
    )
}

/// `minprocs` (`[supervisord] minprocs`): the processes limit must reach it,
/// as supervisord requires.
fn raise_proc_limit(minprocs: Option<u64>) -> anyhow::Result<()> {
    if minprocs.is_none() {
        return Ok(());
    }
    raise_limit(
        nix::sys::resource::Resource::RLIMIT_NPROC,
        minprocs,
        false,
        "minprocs",
        "available processes",
    )
}

/// Raises the soft limit of `resource` to at least `want` (the hard limit
/// too, as root), and to the hard limit with `to_hard`. Failing to reach
/// `want` is an error worded as supervisord words it.
fn raise_limit(
    resource: nix::sys::resource::Resource,
    want: Option<u64>,
    to_hard: bool,
    setting: &str,
    what: &str,
) -> anyhow::Result<()> {
    use nix::sys::resource::{getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(resource) else {
        return Ok(());
    };
    let want = want.unwrap_or(0);
    let new_hard = hard.max(want);
    let new_soft = if to_hard { new_hard } else { soft.max(want) };
    if soft >= new_soft {
        return Ok(());
    }
    match setrlimit(resource, new_soft, new_hard) {
        Ok(()) => debug!("raised the {what} limit from {soft} to {new_soft}"),
        Err(e) if soft >= want => {
            debug!("cannot raise the {what} limit from {soft} to {new_soft}: {e}")
        }
        Err(e) => anyhow::bail!(
            "the minimum number of {what} required to run this process is {want} as per the \"{setting}\" setting; the current environment will only allow {hard} ({e})"
        ),
    }
    Ok(())
}

/// Which streams of which processes go to the daemon's own stdout/stderr
/// (`"inherit"`): the foreground view does not print them a second time.
/// Only processes with such a stream are listed (usually none of a thousand).
#[derive(Clone, Default)]
struct Inherited(Arc<Mutex<HashMap<Name, [bool; 2]>>>);

impl Inherited {
    fn record(&self, spec: &ProcessSpec) {
        let l = &spec.logs;
        let flags = [
            l.stdout == LogTarget::Inherit,
            !l.merge_stderr && l.stderr == LogTarget::Inherit,
        ];
        let mut map = lock(&self.0);
        if flags == [false, false] {
            map.remove(&spec.name);
        } else {
            map.insert(spec.name.clone(), flags);
        }
    }

    /// An event listener's stdout is Supervisor's protocol channel, not
    /// output: the foreground view does not show it.
    fn hide_stdout(&self, name: &Name) {
        lock(&self.0).entry(name.clone()).or_default()[0] = true;
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
        warn!(
            "cannot reopen tend's log file {}: {e}",
            lock(&l.0.file).path().display()
        );
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
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut ready = ready;
    let mut printer = None;
    if let Err(e) =
        raise_fd_limit(config.daemon.minfds).and_then(|()| raise_proc_limit(config.daemon.minprocs))
    {
        if let Some(pipe) = ready.take() {
            report(&pipe, &format!("error {e:#}"));
        }
        return Err(e);
    }
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
    mut config: Config,
    ready: &mut Option<OwnedFd>,
    own_log: Option<OwnLog>,
    printer: Option<&mut Option<Printer>>,
) -> anyhow::Result<()> {
    // Handlers first, so a signal that arrives while starting up is not lost.
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut quit = signal(SignalKind::quit()).context("cannot handle SIGQUIT")?;
    let mut usr2 = signal(SignalKind::user_defined2()).context("cannot handle SIGUSR2")?;
    let mut hup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;

    // The same for tasks' signals, before the socket exists: once a client
    // can reach the daemon, a signal for a task must not be lost.
    let task_signals = tend_core::runtime::tasks::listen(&config.tasks);
    // Bind before spawning anything: a second `tend up` must fail without side effects.
    let server = UnixServer::bind(&config.daemon.socket, config.daemon.socket_mode)?;
    if let Some(owner) = &config.daemon.socket_owner {
        chown_socket(server.path(), owner)?;
    }
    let tcp = match &config.daemon.inet {
        Some(i) => Some(TcpServer::bind(&i.host, i.port).await?),
        None => None,
    };
    let (sup, mut driver) =
        Supervisor::spawn(Options::default(), true).context("cannot start the supervisor")?;
    tokio::spawn(log_events(sup.subscribe()));

    // The supervisor and Supervisor's face keep the processes from here on
    // (sharing each spec); the config keeps only the daemon's own settings.
    let processes = std::mem::take(&mut config.processes);
    let declared = std::mem::take(&mut config.declared);
    let inherited = Inherited::default();
    for spec in &processes {
        inherited.record(spec);
    }
    for listener in &config.eventlisteners {
        inherited.hide_stdout(&listener.spec.name);
    }
    if let Some(slot) = printer {
        // Subscribed before any process starts, so the first lines show too.
        let names: Vec<Name> = processes.iter().map(|p| p.name.clone()).collect();
        *slot = Some(
            Printer::spawn(sup.subscribe_logs(), inherited.clone(), &names)
                .context("cannot start the output thread")?,
        );
    }

    // Event listeners hear everything from the first spawn on. With a
    // supervisord.conf the hub runs even without pools: an `update` may add
    // one.
    let listeners = (config.format == Format::Supervisord).then(|| {
        Arc::new(EventListeners::start_with(
            sup.clone(),
            std::mem::take(&mut config.eventlisteners),
            ListenerContext::from_declared(&config.daemon.identifier, &declared),
        ))
    });
    let shutdown = Shutdown::new();
    let compat = Compat::new(
        sup.clone(),
        shutdown.clone(),
        compat_options(&config, inherited.clone(), listeners.clone()),
        declared,
    );
    if let Some(l) = &listeners {
        tokio::spawn(forward_remote(compat.subscribe_remote(), l.clone()));
    }
    let count = processes.len();
    if let Err(e) = compat.add_declared().await {
        let _ = sup.shutdown().await;
        return Err(e).context("cannot add the processes of the config file");
    }

    let mut api = ApiOptions::default();
    api.prepare_spec = Some(Arc::new(prepare_spec(
        config.daemon.log_dir.clone(),
        inherited,
    )));
    api.compat = Some(compat.clone());
    let basic = |a: &Auth| {
        let a = a.clone();
        BasicAuth::new(move |user, password| a.matches(user, password))
    };
    let unix_auth = config.daemon.unix_auth.as_ref().map(basic);
    let unix_router = tend_server::app(
        sup.clone(),
        shutdown.clone(),
        api.clone(),
        &Listener::new(true, unix_auth.clone(), true),
    );
    // `true` once the servers should stop accepting and finish.
    let (stop_serving, serving_stopped) = tokio::sync::watch::channel(false);
    let until = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let socket = server.path().to_path_buf();
    let mut server_task = tokio::spawn(server.serve(unix_router, until(serving_stopped.clone())));
    let mut tcp_task = match (tcp, &config.daemon.inet) {
        (Some(tcp), Some(inet)) => {
            let auth = inet.auth.as_ref().map(basic);
            // The JSON API can start and stop anything: on TCP only behind credentials.
            let listener = Listener::new(auth.is_some(), auth.clone(), false);
            let router = tend_server::app(sup.clone(), shutdown.clone(), api, &listener);
            info!(
                "serving Supervisor's XML-RPC on http://{}{}",
                tcp.local_addr(),
                if auth.is_some() {
                    ""
                } else {
                    " without HTTP authentication"
                }
            );
            Some(tokio::spawn(
                tcp.serve(router, until(serving_stopped.clone())),
            ))
        }
        _ => None,
    };
    if config.format == Format::Supervisord && unix_auth.is_none() {
        debug!(
            "the socket {} requires no HTTP authentication (its file mode is the access control)",
            socket.display()
        );
    }
    let pidfile = config.daemon.pidfile.as_deref().and_then(write_pidfile);
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

    let task_latch = TaskShutdown(shutdown.clone());
    let tasks = Tasks::start(&sup, &task_latch, &config.tasks, &processes, task_signals);
    drop(processes);
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
            _ = hup.recv() => {
                // A task on SIGHUP replaces the reload (`tend reload` still reloads).
                if !claims(&tasks, SignalKind::hangup()) {
                    on_hangup(&compat, config.format);
                }
                continue;
            }
            // A task on one of these runs first and shuts tend down itself.
            _ = term.recv(), if !claims(&tasks, SignalKind::terminate()) => info!("SIGTERM received; stopping every process"),
            _ = int.recv(), if !claims(&tasks, SignalKind::interrupt()) => info!("SIGINT received; stopping every process"),
            _ = quit.recv(), if !claims(&tasks, SignalKind::quit()) => info!("SIGQUIT received; stopping every process"),
            _ = shutdown.triggered() => info!("shutdown requested; stopping every process"),
            _ = &mut driver => driver_gone = true,
            _ = &mut server_task => warn!("the API server stopped unexpectedly; shutting down"),
            r = maybe(&mut tcp_task) => warn!("the TCP server stopped unexpectedly ({r}); shutting down"),
        }
        break;
    }
    shutdown.trigger();
    autostart.abort();
    if let Some(l) = &listeners {
        l.stopping();
    }
    if driver_gone {
        shutdown.end_streams();
        let _ = stop_serving.send(true);
        remove_pidfile(pidfile.as_deref());
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
            _ = hup.recv() => info!("SIGHUP ignored: shutting down"),
            _ = term.recv() => info!("already shutting down"),
            _ = int.recv() => info!("already shutting down"),
            _ = quit.recv() => info!("already shutting down"),
        }
    }
    // Followers of the logs have seen the processes' last words; let them go.
    shutdown.end_streams();
    let _ = stop_serving.send(true);
    // (A JoinHandle that already completed in the select above must not be awaited again.)
    if !server_task.is_finished()
        && let Ok(Err(e)) = server_task.await
    {
        warn!("{e}");
    }
    if let Some(t) = tcp_task
        && !t.is_finished()
        && let Ok(Err(e)) = t.await
    {
        warn!("{e}");
    }
    let _ = driver.await;
    remove_pidfile(pidfile.as_deref());
    info!("all processes stopped; bye");
    Ok(())
}

/// Waits for an optional server task; never resolves without one.
async fn maybe(
    task: &mut Option<tokio::task::JoinHandle<Result<(), tend_server::ServeError>>>,
) -> String {
    match task {
        Some(t) if !t.is_finished() => match t.await {
            Ok(Ok(())) => "it ended".to_string(),
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        },
        _ => std::future::pending().await,
    }
}

/// Whether a task runs on `sig`, which then has no other meaning for the
/// daemon (HUP reloads, INT, TERM and QUIT stop tend otherwise).
fn claims(tasks: &Tasks, sig: SignalKind) -> bool {
    tasks
        .signals()
        .iter()
        .any(|s| SignalKind::from_raw(s.number()) == sig)
}

/// The daemon's shutdown latch, as the engine's tasks see it.
#[derive(Clone)]
struct TaskShutdown(Shutdown);

impl ShutdownLatch for TaskShutdown {
    fn trigger(&self) {
        self.0.trigger();
    }

    fn is_triggered(&self) -> bool {
        self.0.is_triggered()
    }

    async fn triggered(&self) {
        self.0.triggered().await;
    }
}

/// SIGHUP: for a supervisord.conf, Supervisor's in-process restart (stop
/// everything, read the file again, start again); for a tend.toml, `tend
/// reload` (apply the changes, leave the rest running).
fn on_hangup(compat: &Arc<Compat>, format: Format) {
    match format {
        Format::Supervisord => {
            info!("SIGHUP received; restarting every process with the config file read again");
            Compat::begin_restart(compat);
        }
        Format::Native => {
            info!("SIGHUP received; reloading the config file");
            let compat = compat.clone();
            tokio::spawn(async move {
                match compat.reload().await {
                    Ok(r) => info!(
                        "reloaded: added {:?}, changed {:?}, removed {:?}",
                        r.added, r.changed, r.removed
                    ),
                    Err(e) => error!("reload failed: {e}"),
                }
            });
        }
    }
}

/// `sendRemoteCommEvent` calls, for the event listeners.
async fn forward_remote(
    mut rx: broadcast::Receiver<tend_server::compat::RemoteCommEvent>,
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

/// The settings of Supervisor's face, and how it reads the config file again.
fn compat_options(
    config: &Config,
    inherited: Inherited,
    listeners: Option<Arc<EventListeners>>,
) -> CompatOptions {
    let mut opts = CompatOptions::new(config.daemon.identifier.clone());
    opts.main_log = config.daemon.log_file.clone();
    let path = config.path.clone();
    let loader: Loader = Arc::new(move || {
        let loaded = crate::config::load_any(&path).map_err(|e| e.to_string())?;
        for w in &loaded.warnings {
            debug!("{}", crate::config::render_warning(w));
        }
        for spec in &loaded.config.processes {
            inherited.record(spec);
        }
        for listener in &loaded.config.eventlisteners {
            inherited.hide_stdout(&listener.spec.name);
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
        Ok(loaded.config.declared)
    });
    opts.loader = Some(loader);
    opts
}

/// `[unix_http_server] chown = user[:group]`: only root can give a file away;
/// anyone else gets a warning, as the socket is theirs already.
fn chown_socket(path: &Path, owner: &str) -> anyhow::Result<()> {
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

/// Writes the pid file; returns its path to remove at exit.
fn write_pidfile(path: &Path) -> Option<PathBuf> {
    match std::fs::write(path, format!("{}\n", std::process::id())) {
        Ok(()) => Some(path.to_path_buf()),
        Err(e) => {
            warn!("cannot write the pid file {}: {e}", path.display());
            None
        }
    }
}

/// Removes the pid file if it still holds this daemon's pid.
fn remove_pidfile(path: Option<&Path>) {
    let Some(path) = path else { return };
    let ours =
        std::fs::read_to_string(path).is_ok_and(|s| s.trim() == std::process::id().to_string());
    if ours {
        let _ = std::fs::remove_file(path);
    }
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
        // An exit with code 0 that tend did not ask for (a task, a one-shot)
        // is news, not a warning.
        Event::Exited {
            name,
            pid,
            exit: exit @ tend_core::ExitInfo::Code(0),
            expected: false,
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
        Event::CheckFailed { name, reason } => warn!("{name}: {reason}; restarting it"),
        Event::Added { name } => debug!("{name}: added"),
        Event::Removed { name } => info!("{name}: removed"),
        Event::StateChanged { name, from, to } => debug!("{name}: {from} -> {to}"),
        _ => debug!("{ev:?}"),
    }
}
