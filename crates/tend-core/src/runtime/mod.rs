//! The driver: one task that owns every state machine and executes their
//! effects, and what it runs beside them. The only layer that awaits.
//!
//! [`Supervisor`] is the handle: cheap to clone, typed requests in, events out.
//! Everything that controls tend (the CLI's JSON API, XML-RPC, an embedding
//! program) goes through it.
//!
//! - `driver.rs`: the task itself (requests, reaped children, timers);
//! - `logs.rs`: the log hub (every output pipe, log file and tail);
//! - `probe/`: running one check once; `notify.rs`: the notify sockets;
//! - [`tasks`]: tasks' triggers (timers and signals), on the handle alone.
//! - [`watch`]: restarts on file changes (`watch = [...]`), made on the
//!   first process that has one.

mod driver;
mod logs;
pub(crate) mod notify;
pub(crate) mod probe;
pub mod tasks;
pub mod watch;

pub(crate) use logs::LogHub;
pub use logs::{LogChunk, LogLine, LogQuery, PARTIAL_AFTER, Tap, TapChunk};

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};

use crate::launcher::{Launcher, Reaped};
use crate::model::error::Error;
use crate::model::name::Name;
use crate::model::outcome::{ActionResult, Outcome};
use crate::model::signal::Signal;
use crate::model::spec::ProcessSpec;
use crate::model::status::{Event, ProcessStatus};

use driver::Driver;

/// Requests the driver understands; one variant per verb.
#[derive(Debug)]
pub(crate) enum Request {
    Add(Arc<ProcessSpec>, oneshot::Sender<Result<(), Error>>),
    Remove(Name, oneshot::Sender<Result<(), Error>>),
    Start(Vec<Name>, oneshot::Sender<Vec<ActionResult>>),
    StartNoDeps(Vec<Name>, oneshot::Sender<Vec<ActionResult>>),
    Stop(Vec<Name>, oneshot::Sender<Vec<ActionResult>>),
    Restart(Vec<Name>, oneshot::Sender<Vec<ActionResult>>),
    Signal(Vec<Name>, Signal, oneshot::Sender<Vec<ActionResult>>),
    Resolve(Vec<String>, oneshot::Sender<Result<Vec<Name>, Error>>),
    Status(oneshot::Sender<Vec<ProcessStatus>>),
    StatusStats(oneshot::Sender<Vec<ProcessStatus>>),
    Stats(
        Vec<Name>,
        oneshot::Sender<Vec<(Name, crate::model::resources::ProcessStats)>>,
    ),
    Hurry,
    StartAll(oneshot::Sender<Vec<ActionResult>>),
    Shutdown(oneshot::Sender<()>),
}

/// Options for a [`Supervisor`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// Capacity of the event broadcast channel. Events beyond it wait in the
    /// driver until the slowest subscriber has room (so a burst larger than
    /// this reaches every subscriber that keeps reading); one that takes
    /// nothing for 100 ms while events wait lags instead.
    pub event_capacity: usize,
    /// Capacity of the request channel.
    pub request_capacity: usize,
    /// Bytes of recent output kept in memory per process (for `tend logs`
    /// without reading files, and for `memory` targets).
    pub tail_bytes: usize,
    /// Capacity of the log broadcast channel, in chunks; slow subscribers lag past it.
    pub log_capacity: usize,
    /// Where notify sockets are created (`<dir>/notify/NAME.sock`). Default:
    /// a `tend-PID` directory in the system's temporary directory.
    pub runtime_dir: Option<std::path::PathBuf>,
    /// Whether each process gets a cgroup v2 of its own (for
    /// [`Supervisor::spawn`]; see [`crate::unix::LaunchOptions`]). Off by
    /// default: an embedder's processes stay in its own cgroup.
    pub cgroup: crate::unix::CgroupMode,
    /// Fork a guard that kills every process left behind should this
    /// program die without stopping them (for [`Supervisor::spawn`]).
    pub guard: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            event_capacity: 1024,
            request_capacity: 256,
            tail_bytes: 64 * 1024,
            log_capacity: 1024,
            runtime_dir: None,
            cgroup: crate::unix::CgroupMode::Off,
            guard: false,
        }
    }
}

/// A handle to a running supervisor. Clone it freely.
#[derive(Clone, Debug)]
pub struct Supervisor {
    tx: mpsc::Sender<Request>,
    events: broadcast::Sender<Event>,
    logs: Arc<LogHub>,
    /// The watch service, once a process with a watch was added.
    watches: Arc<std::sync::OnceLock<watch::Watches>>,
}

impl Supervisor {
    /// Starts a driver with the real Unix launcher and reaper on the current
    /// tokio runtime and returns its handle and the driver's task.
    ///
    /// `reap_all`: reap every child of this process (`waitpid(-1)`) and become a
    /// child subreaper, as the daemon does; otherwise reap only the children
    /// this supervisor spawned, so an embedding program keeps its own.
    pub fn spawn(
        opts: Options,
        reap_all: bool,
    ) -> std::io::Result<(Supervisor, tokio::task::JoinHandle<()>)> {
        let mut lo = crate::unix::LaunchOptions::new(reap_all);
        lo.cgroup = opts.cgroup.clone();
        lo.guard = opts.guard;
        let (launcher, exits) = crate::unix::UnixLauncher::with_options(lo)?;
        Ok(Self::with_launcher(opts, launcher, exits))
    }

    /// Starts a driver with any [`Launcher`] whose reaped children arrive on `exits`.
    pub fn with_launcher<L: Launcher>(
        opts: Options,
        launcher: L,
        exits: mpsc::UnboundedReceiver<Reaped>,
    ) -> (Supervisor, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(opts.request_capacity);
        let (events, _) = broadcast::channel(opts.event_capacity);
        let logs = Arc::new(LogHub::new(opts.tail_bytes, opts.log_capacity));
        let runtime_dir = opts
            .runtime_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join(format!("tend-{}", std::process::id())));
        let driver = Driver::new(
            launcher,
            events.clone(),
            opts.event_capacity,
            logs.clone(),
            runtime_dir,
        );
        let task = tokio::spawn(driver.run(rx, exits));
        (
            Supervisor {
                tx,
                events,
                logs,
                watches: Arc::default(),
            },
            task,
        )
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Request) -> Result<T, Error> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| Error::ShuttingDown)?;
        rx.await.map_err(|_| Error::ShuttingDown)
    }

    /// Subscribes to events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Subscribes to every process's output from now on, as batches of whole lines.
    pub fn subscribe_logs(&self) -> broadcast::Receiver<LogChunk> {
        self.logs.subscribe()
    }

    /// Sends every batch of whole lines of `name`'s stdout, from its next
    /// spawn on, to `tap`, none lost and in order, for a protocol spoken on
    /// stdout (Supervisor's event listeners). Set `logs.protocol_stdout` in
    /// the spec to keep that stdout out of [`Supervisor::subscribe_logs`].
    /// The tap outlives runs of the process; [`Supervisor::untap_stdout`] or
    /// dropping the receiver ends it.
    pub fn tap_stdout(&self, name: &Name, tap: Tap) {
        self.logs.tap(name, Some(tap));
    }

    /// Ends the stdout tap of `name`.
    pub fn untap_stdout(&self, name: &Name) {
        self.logs.tap(name, None);
    }

    /// The last lines of output of some processes from their in-memory tails,
    /// merged in time order (no file is read).
    pub fn log_lines(&self, query: &LogQuery) -> Vec<LogLine> {
        self.logs.lines(query)
    }

    /// Closes and reopens every log file (for logrotate: SIGUSR2, `tend logs --reopen`).
    /// Returns the files that could not be reopened.
    pub fn reopen_logs(&self) -> Vec<(std::path::PathBuf, std::io::Error)> {
        self.logs.reopen()
    }

    /// Writes `data` to the stdin of a running process started with
    /// `stdin_pipe` (Supervisor's `sendProcessStdin`). Never blocks: input is
    /// queued and written as the process reads it.
    pub fn send_stdin(&self, name: &str, data: Vec<u8>) -> Result<(), Error> {
        let name = known(name)?;
        self.logs.send_stdin(&name, data)
    }

    /// Registers a process; starts it when `autostart` is set. A duplicate name
    /// is [`Error::Duplicate`]. Returns once it is registered and, if started,
    /// spawned (not once it is running). An `Arc` is kept as it is, so a
    /// caller that keeps the spec too shares one copy with the supervisor.
    pub async fn add(&self, spec: impl Into<Arc<ProcessSpec>>) -> Result<(), Error> {
        let spec = spec.into();
        spec.validate()?;
        let watch = spec.watch.clone().map(|w| (spec.name.clone(), w));
        self.ask(|r| Request::Add(spec, r)).await??;
        if let Some((name, w)) = watch {
            match self.watches() {
                Ok(watches) => watches.set(name, w),
                Err(e) => tracing::error!("{name}: cannot watch its files: {e}"),
            }
        }
        Ok(())
    }

    /// The watch service, started on first use.
    fn watches(&self) -> std::io::Result<&watch::Watches> {
        if let Some(w) = self.watches.get() {
            return Ok(w);
        }
        let w = watch::Watches::start(self)?;
        Ok(self.watches.get_or_init(|| w))
    }

    /// Stops a process (if needed), cancels any pending restart and unregisters
    /// it. Returns once it is gone.
    pub async fn remove(&self, name: &str) -> Result<(), Error> {
        let name = Name::new(name).map_err(|_| Error::UnknownProcess(name.to_string()))?;
        if let Some(w) = self.watches.get() {
            w.unset(name.clone());
        }
        self.ask(|r| Request::Remove(name, r)).await?
    }

    /// Expands target patterns (`web`, `web-*`, `GROUP:*`, `all`) into names,
    /// in priority order. A pattern that matches nothing is an error.
    pub async fn resolve(&self, patterns: &[String]) -> Result<Vec<Name>, Error> {
        self.ask(|r| Request::Resolve(patterns.to_vec(), r)).await?
    }

    /// Starts processes, in priority order, and their stopped dependencies
    /// first; each result says whether it got past `starting` (a process
    /// waiting for a dependency that cannot come up fails with the reason).
    /// Clears `fatal` and the back-off of each.
    pub async fn start_many(&self, names: Vec<Name>) -> Result<Vec<ActionResult>, Error> {
        self.ask(|r| Request::Start(names, r)).await
    }

    /// Starts processes without starting their stopped dependencies: those
    /// whose dependencies do not hold wait (state `waiting`).
    pub async fn start_many_no_deps(&self, names: Vec<Name>) -> Result<Vec<ActionResult>, Error> {
        self.ask(|r| Request::StartNoDeps(names, r)).await
    }

    /// Stops processes, in reverse priority order, waiting for each priority
    /// level to be stopped before the next. A stopped process stays stopped
    /// until a user starts it.
    pub async fn stop_many(&self, names: Vec<Name>) -> Result<Vec<ActionResult>, Error> {
        self.ask(|r| Request::Stop(names, r)).await
    }

    /// Stops, then starts processes.
    pub async fn restart_many(&self, names: Vec<Name>) -> Result<Vec<ActionResult>, Error> {
        self.ask(|r| Request::Restart(names, r)).await
    }

    /// Sends a signal to the main process of each.
    pub async fn signal_many(
        &self,
        names: Vec<Name>,
        sig: Signal,
    ) -> Result<Vec<ActionResult>, Error> {
        self.ask(|r| Request::Signal(names, sig, r)).await
    }

    /// Starts one process by name.
    pub async fn start(&self, name: &str) -> Result<Outcome, Error> {
        one(name, self.start_many(vec![known(name)?]).await?)
    }

    /// Stops one process by name.
    pub async fn stop(&self, name: &str) -> Result<Outcome, Error> {
        one(name, self.stop_many(vec![known(name)?]).await?)
    }

    /// Restarts one process by name.
    pub async fn restart(&self, name: &str) -> Result<Outcome, Error> {
        one(name, self.restart_many(vec![known(name)?]).await?)
    }

    /// Sends `sig` to one process.
    pub async fn signal(&self, name: &str, sig: Signal) -> Result<Outcome, Error> {
        one(name, self.signal_many(vec![known(name)?], sig).await?)
    }

    /// Starts every process whose `autostart` is set (what `tend up` does).
    pub async fn start_autostart(&self) -> Result<Vec<ActionResult>, Error> {
        self.ask(Request::StartAll).await
    }

    /// Stops everything (reverse priority order).
    pub async fn stop_all(&self) -> Result<Vec<ActionResult>, Error> {
        let names = self.resolve(&["all".to_string()]).await.unwrap_or_default();
        self.stop_many(names).await
    }

    /// Restarts everything.
    pub async fn restart_all(&self) -> Result<Vec<ActionResult>, Error> {
        let names = self.resolve(&["all".to_string()]).await.unwrap_or_default();
        self.restart_many(names).await
    }

    /// A snapshot of every process, in priority order then by name.
    pub async fn status(&self) -> Result<Vec<ProcessStatus>, Error> {
        self.ask(Request::Status).await
    }

    /// A snapshot like [`Supervisor::status`], with what each process that
    /// is up uses now ([`ProcessStatus::stats`]: from its cgroup, or from
    /// `/proc` of its main process). Read now, for this call alone.
    pub async fn status_with_stats(&self) -> Result<Vec<ProcessStatus>, Error> {
        self.ask(Request::StatusStats).await
    }

    /// What each of `names` that is up uses now (as in
    /// [`Supervisor::status_with_stats`]), read for these processes alone:
    /// a status of a few among thousands reads only theirs. Names that are
    /// not up (or unknown) are left out.
    pub async fn stats_of(
        &self,
        names: Vec<Name>,
    ) -> Result<Vec<(Name, crate::model::resources::ProcessStats)>, Error> {
        self.ask(|reply| Request::Stats(names, reply)).await
    }

    /// Stops everything and ends the driver. Returns once every child is gone.
    pub async fn shutdown(&self) -> Result<(), Error> {
        self.ask(Request::Shutdown).await
    }

    /// Stops waiting for stop timeouts: every process being stopped is sent
    /// SIGKILL now, and so is every one stopped from now on (a second
    /// Ctrl-C during a shutdown). Returns once the driver has it.
    pub async fn kill_remaining(&self) -> Result<(), Error> {
        self.tx
            .send(Request::Hurry)
            .await
            .map_err(|_| Error::ShuttingDown)
    }

    /// Waits at most `timeout` for the first event that satisfies `pred`.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&Event) -> bool,
    ) -> Option<Event> {
        let mut rx = self.subscribe();
        tokio::time::timeout(timeout, async move {
            loop {
                match rx.recv().await {
                    Ok(ev) if pred(&ev) => return Some(ev),
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .await
        .ok()
        .flatten()
    }
}

fn known(name: &str) -> Result<Name, Error> {
    Name::new(name).map_err(|_| Error::UnknownProcess(name.to_string()))
}

/// The result of `name` in a batch's results (which list its dependencies
/// too, when a start started them).
fn one(name: &str, mut v: Vec<ActionResult>) -> Result<Outcome, Error> {
    let at = v.iter().position(|r| r.name.as_str() == name);
    match at.map(|i| v.swap_remove(i)).or_else(|| v.pop()) {
        Some(r) => r.result,
        None => Err(Error::ShuttingDown),
    }
}

#[cfg(test)]
mod output_tests;
#[cfg(test)]
mod platform_tests;
#[cfg(test)]
mod tests;
