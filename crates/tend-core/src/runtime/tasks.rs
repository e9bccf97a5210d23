//! Tasks at run time: the signals and timers that run them, and the
//! stop-everything-around-it of `shutdown = true`.
//!
//! A task is a process like the others for the engine (`restart =
//! "never"`), so running one is starting it through the [`Supervisor`] and
//! waiting for its exit; the engine starts what it depends on first. What is
//! added here, from each task's [`TaskConf`]:
//!
//! - `on_signal`: a signal listener per task ([`listen`]). Which of the
//!   program's own signals a task may take over is the program's policy:
//!   [`Tasks::signals`] says which ones trigger a task, and the program
//!   leaves those their task meaning.
//! - `every`: a timer per task that has one (nothing wakes up otherwise).
//!   The first run is one period after [`Tasks::start`], as a cron job would.
//! - `cron`: the next instant of its [`CronSchedule`] after the
//!   [`WallClock`]'s now, slept towards in naps of at most [`CRON_NAP`] (so
//!   that a wall clock set forward or back, or a suspend, is seen within a
//!   minute); `@reboot` runs once when the triggers start. The clock is a
//!   seam: [`SystemClock`] in the program, [`TokioClock`] (tokio's clock,
//!   paused in tests, from a given instant) under virtual time.
//! - A task that is still running when it is triggered again is not started
//!   a second time: the trigger is skipped and logged. A stop signal (INT,
//!   TERM or QUIT, [`STOP_SIGNALS`]) that a running task took over, sent
//!   again, begins the program's shutdown instead.
//! - `shutdown = true`: everything else (but other tasks, and what this one
//!   depends on) is stopped first, dependents first; what was running is
//!   started again once the task has ended, whatever its exit.
//! - `terminate = true`: the program's shutdown begins once the task has
//!   ended.
//!
//! Triggers are read once, by [`Tasks::start`]: a reload that changes a
//! task's command applies (it is a process spec), a changed `on_signal` or
//! `every` does not (`tend reload` behaves so).
//!
//! The program's shutdown is a [`ShutdownLatch`] it passes in: triggers end
//! when it is pulled, and a run waiting for its task gives up. [`Latch`] is
//! one, for programs that have none of their own.
//!
//! Unlike the rest of the engine, which logs at debug level only, tasks log
//! their runs at info (and failures at warn and error): a run is something a
//! user asked for and wants to see in the program's log.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{error, info, warn};

use super::Supervisor;
use crate::model::error::Error;
use crate::model::name::Name;
use crate::model::outcome::ActionResult;
use crate::model::signal::Signal;
use crate::model::spec::ProcessSpec;
use crate::model::status::{Event, ExitInfo, ProcessStatus, StateName};
pub use crate::model::task::{CronSchedule, TaskConf};

/// The longest sleep towards a cron run before the wall clock is read again.
pub const CRON_NAP: Duration = Duration::from_secs(60);

/// The wall clock that cron schedules are read against.
pub trait WallClock: std::fmt::Debug + Send + Sync + 'static {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl WallClock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A wall clock that reads `at` when made and moves with tokio's clock: under
/// a paused clock (tests), virtual wall time.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    base: Timestamp,
    origin: Instant,
}

impl TokioClock {
    /// A clock that reads `at` now.
    pub fn starting_at(at: Timestamp) -> TokioClock {
        TokioClock {
            base: at,
            origin: Instant::now(),
        }
    }
}

impl WallClock for TokioClock {
    fn now(&self) -> Timestamp {
        let elapsed = jiff::SignedDuration::try_from(self.origin.elapsed()).unwrap_or_default();
        self.base.saturating_add(elapsed).unwrap_or(self.base)
    }
}

/// Resolves when the next run of `schedule` is due (never for `@reboot` or a
/// schedule with no run left).
async fn cron_due(schedule: &CronSchedule, clock: &dyn WallClock) {
    let Some(next) = schedule.next_after(clock.now()) else {
        return std::future::pending().await;
    };
    loop {
        let now = clock.now();
        if now >= next {
            return;
        }
        let left = Duration::try_from(now.duration_until(next)).unwrap_or(Duration::ZERO);
        tokio::time::sleep(left.min(CRON_NAP)).await;
    }
}

/// The signals that conventionally stop a program. One that a running task
/// took over, sent again while it runs, begins the shutdown.
pub const STOP_SIGNALS: [&str; 3] = ["INT", "TERM", "QUIT"];

/// The program's shutdown, as tasks see it: triggers end once it has begun
/// (and a run waiting for its task gives up), and `terminate = true` begins
/// it. Cheap to clone.
pub trait ShutdownLatch: Clone + Send + Sync + 'static {
    /// Begins the shutdown. Idempotent.
    fn trigger(&self);
    /// Whether it has begun.
    fn is_triggered(&self) -> bool;
    /// Resolves once it has begun (at once if it has).
    fn triggered(&self) -> impl Future<Output = ()> + Send;
}

/// A [`ShutdownLatch`] of its own, for a program that has none.
#[derive(Debug, Clone)]
pub struct Latch(Arc<watch::Sender<bool>>);

impl Latch {
    /// A latch that has not been pulled.
    pub fn new() -> Self {
        Latch(Arc::new(watch::Sender::new(false)))
    }
}

impl Default for Latch {
    fn default() -> Self {
        Self::new()
    }
}

impl ShutdownLatch for Latch {
    fn trigger(&self) {
        self.0.send_replace(true);
    }

    fn is_triggered(&self) -> bool {
        *watch::Sender::borrow(&self.0)
    }

    async fn triggered(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = rx.wait_for(|pulled| *pulled).await;
    }
}

/// The signal listeners of the tasks that have an `on_signal`, by task.
#[derive(Debug)]
pub struct TaskSignals(BTreeMap<Name, tokio::signal::unix::Signal>);

/// Installs a listener for the `on_signal` of each task; one that cannot be
/// installed is logged, and that task gets no signal trigger.
///
/// # Panics
///
/// Outside a tokio runtime with I/O enabled, as tokio's signal listeners do.
pub fn listen(tasks: &[TaskConf]) -> TaskSignals {
    let mut out = BTreeMap::new();
    for task in tasks {
        let Some(s) = task.on_signal else { continue };
        match signal(SignalKind::from_raw(s.number())) {
            Ok(stream) => {
                out.insert(task.name.clone(), stream);
            }
            Err(e) => error!("task {}: cannot handle SIG{s}: {e}", task.name),
        }
    }
    TaskSignals(out)
}

/// The triggers of every task, running. Dropping it removes them.
#[derive(Debug)]
pub struct Tasks {
    signals: Vec<Signal>,
    loops: Vec<JoinHandle<()>>,
}

impl Tasks {
    /// Starts the triggers of `tasks` (their specs are among `processes`):
    /// the timers, and the signal listeners that [`listen`] installed. Call
    /// it once the processes are registered. Listen early (a listener only
    /// sees signals that arrive after it exists): the daemon does before it
    /// opens its socket, so a signal sent as soon as `tend up` answers is
    /// not lost. A task whose signal could not be listened for is left out.
    pub fn start<S: Borrow<ProcessSpec>, L: ShutdownLatch>(
        sup: &Supervisor,
        shutdown: &L,
        tasks: &[TaskConf],
        processes: &[S],
        signals: TaskSignals,
    ) -> Tasks {
        Tasks::start_with_clock(
            sup,
            shutdown,
            tasks,
            processes,
            signals,
            Arc::new(SystemClock),
        )
    }

    /// [`Tasks::start`], with cron schedules read against `clock`.
    pub fn start_with_clock<S: Borrow<ProcessSpec>, L: ShutdownLatch>(
        sup: &Supervisor,
        shutdown: &L,
        tasks: &[TaskConf],
        processes: &[S],
        mut signals: TaskSignals,
        clock: Arc<dyn WallClock>,
    ) -> Tasks {
        let runner = Arc::new(Runner {
            sup: sup.clone(),
            shutdown: shutdown.clone(),
            info: tasks
                .iter()
                .map(|t| (t.name.clone(), TaskInfo::of(&t.name, processes)))
                .collect(),
            exclusive: tokio::sync::Mutex::new(()),
        });
        let mut listened = Vec::new();
        let mut loops = Vec::new();
        for task in tasks {
            let sig = match task.on_signal {
                Some(s) => match signals.0.remove(&task.name) {
                    Some(stream) => {
                        listened.push(s);
                        Some(stream)
                    }
                    // `listen` could not install it, and said so.
                    None => continue,
                },
                None => None,
            };
            let every = task.every.map(|period| {
                let mut i = tokio::time::interval_at(Instant::now() + period, period);
                i.set_missed_tick_behavior(MissedTickBehavior::Skip);
                i
            });
            let cron = task.cron.clone().map(|c| (c, clock.clone()));
            if sig.is_none() && every.is_none() && cron.is_none() {
                continue;
            }
            loops.push(tokio::spawn(triggers(
                runner.clone(),
                task.clone(),
                sig,
                every,
                cron,
            )));
        }
        Tasks {
            signals: listened,
            loops,
        }
    }

    /// The signals that trigger a task (each listened for).
    pub fn signals(&self) -> &[Signal] {
        &self.signals
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        for l in &self.loops {
            l.abort();
        }
    }
}

/// What a run needs to know of a task besides its triggers.
struct TaskInfo {
    /// What it depends on, transitively: `shutdown = true` leaves them up.
    needs: BTreeSet<Name>,
    /// Exit codes that count as success.
    success: Vec<i32>,
}

impl TaskInfo {
    fn of<S: Borrow<ProcessSpec>>(name: &Name, processes: &[S]) -> TaskInfo {
        let spec_of = |n: &Name| {
            processes
                .iter()
                .map(Borrow::borrow)
                .find(|p: &&ProcessSpec| &p.name == n)
        };
        let mut needs = BTreeSet::new();
        let mut todo = vec![name.clone()];
        while let Some(n) = todo.pop() {
            for d in spec_of(&n).map(|s| s.depends_on.as_slice()).unwrap_or(&[]) {
                if needs.insert(d.name.clone()) {
                    todo.push(d.name.clone());
                }
            }
        }
        TaskInfo {
            needs,
            success: spec_of(name).map_or_else(|| vec![0], |s| s.success_exit_codes.clone()),
        }
    }
}

struct Runner<L> {
    sup: Supervisor,
    shutdown: L,
    /// Every task (a `shutdown = true` task does not stop the others).
    info: BTreeMap<Name, TaskInfo>,
    /// Held through a `shutdown = true` run, so that two of them do not
    /// start each other's processes in the middle.
    exclusive: tokio::sync::Mutex<()>,
}

/// Waits for the triggers of one task and runs it, one run at a time.
async fn triggers<L: ShutdownLatch>(
    runner: Arc<Runner<L>>,
    task: TaskConf,
    mut sig: Option<tokio::signal::unix::Signal>,
    mut every: Option<tokio::time::Interval>,
    cron: Option<(CronSchedule, Arc<dyn WallClock>)>,
) {
    let mut current: Option<JoinHandle<()>> = None;
    let mut at_start = cron.as_ref().is_some_and(|(c, _)| c.at_start());
    loop {
        let why = tokio::select! {
            Some(()) = async {
                match sig.as_mut() {
                    Some(s) => s.recv().await,
                    None => std::future::pending().await,
                }
            } => Trigger::Signal,
            _ = async {
                match every.as_mut() {
                    Some(i) => i.tick().await,
                    None => std::future::pending().await,
                }
            } => Trigger::Timer,
            () = async {
                match cron.as_ref() {
                    Some((c, clock)) => cron_due(c, clock.as_ref()).await,
                    None => std::future::pending().await,
                }
            } => Trigger::Cron,
            () = std::future::ready(()), if at_start => {
                at_start = false;
                Trigger::Cron
            }
            _ = runner.shutdown.triggered() => return,
        };
        if current.as_ref().is_some_and(|h| !h.is_finished()) {
            // The signal would have stopped tend but for the task: asked
            // twice, it does.
            let stops_tend = task
                .on_signal
                .is_some_and(|s| STOP_SIGNALS.contains(&s.name().as_str()));
            if why == Trigger::Signal && stops_tend {
                info!(
                    "task {}: {} again while it runs; shutting down now",
                    task.name,
                    why.describe(&task)
                );
                runner.shutdown.trigger();
                return;
            }
            info!(
                "task {}: still running; {} skipped",
                task.name,
                why.describe(&task)
            );
            continue;
        }
        current = Some(tokio::spawn(runner.clone().run(task.clone(), why)));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    Signal,
    Timer,
    Cron,
}

impl Trigger {
    fn describe(self, task: &TaskConf) -> String {
        match (self, task.on_signal) {
            (Trigger::Signal, Some(s)) => format!("SIG{s}"),
            (Trigger::Signal, None) => "signal".into(),
            (Trigger::Timer, _) => format!(
                "its run every {}",
                task.every
                    .map_or_else(String::new, crate::model::duration::format)
            ),
            (Trigger::Cron, _) => format!(
                "its schedule {:?}",
                task.cron.as_ref().map_or("", CronSchedule::expr)
            ),
        }
    }
}

/// Whether a process in this state is (or is about to be) running.
fn busy(state: StateName) -> bool {
    !matches!(
        state,
        StateName::Stopped | StateName::Exited | StateName::Fatal
    )
}

impl<L: ShutdownLatch> Runner<L> {
    async fn run(self: Arc<Self>, task: TaskConf, why: Trigger) {
        let name = &task.name;
        let _exclusive = if task.shutdown {
            Some(self.exclusive.lock().await)
        } else {
            None
        };
        if self.shutdown.is_triggered() {
            return;
        }
        let Ok(all) = self.sup.status().await else {
            return;
        };
        match all.iter().find(|p| &p.name == name) {
            None => {
                warn!("task {name}: it is no longer defined (removed by a reload?)");
                return;
            }
            Some(p) if busy(p.state) => {
                info!(
                    "task {name}: already {}; {} skipped",
                    p.state,
                    why.describe(&task)
                );
                return;
            }
            Some(_) => {}
        }
        info!("task {name}: running on {}", why.describe(&task));

        let mut stopped = Vec::new();
        if task.shutdown {
            let empty = BTreeSet::new();
            let needs = self.info.get(name).map_or(&empty, |i| &i.needs);
            stopped = all
                .iter()
                .filter(|p| busy(p.state) && !self.info.contains_key(&p.name))
                .filter(|p| !needs.contains(&p.name))
                .map(|p| p.name.clone())
                .collect();
            if !stopped.is_empty() {
                info!(
                    "task {name}: stopping {} first (shutdown = true)",
                    list(&stopped)
                );
                report(name, "stop", self.sup.stop_many(stopped.clone()).await);
            }
        }

        match self.run_once(name).await {
            Ok(Some(exit)) => {
                let ok = matches!(exit, ExitInfo::Code(c)
                    if self.info.get(name).is_none_or(|i| i.success.contains(&c)));
                if ok {
                    info!("task {name}: done ({exit})");
                } else {
                    error!("task {name}: failed ({exit})");
                }
            }
            Ok(None) => {}
            Err(e) => error!("task {name}: {e}"),
        }

        if task.terminate {
            info!("task {name}: ended; shutting tend down (terminate = true)");
            self.shutdown.trigger();
            return;
        }
        if !stopped.is_empty() && !self.shutdown.is_triggered() {
            info!("task {name}: starting {} again", list(&stopped));
            report(name, "start", self.sup.start_many(stopped).await);
        }
    }

    /// Starts the task and waits until it has ended; its exit, if it ran.
    /// `None` when tend shuts down meanwhile.
    async fn run_once(&self, name: &Name) -> Result<Option<ExitInfo>, String> {
        // Subscribed before the start, so that a quick exit is not missed.
        let mut events = self.sup.subscribe();
        let started = self
            .sup
            .start_many(vec![name.clone()])
            .await
            .map_err(|e| e.to_string())?;
        let failed = started
            .into_iter()
            .find(|r| &r.name == name)
            .and_then(|r| r.result.err());
        if let Some(e) = failed {
            return match self.state(name).await {
                // It ran and exited before counting as started.
                Some(p) if p.state == StateName::Exited => Ok(p.last_exit),
                // Its dependencies cannot come up: it must not run later,
                // out of the blue, when they do.
                Some(p) if p.state == StateName::Waiting => {
                    report(name, "stop", self.sup.stop_many(vec![name.clone()]).await);
                    Err(format!("did not run: {}", strip_name(name, &e)))
                }
                _ => Err(format!("did not run: {}", strip_name(name, &e))),
            };
        }
        tokio::select! {
            () = self.ended(name, &mut events) => {}
            () = self.shutdown.triggered() => return Ok(None),
        }
        Ok(self.state(name).await.and_then(|p| p.last_exit))
    }

    /// Resolves once `name` is down (exited, stopped, fatal).
    async fn ended(&self, name: &Name, events: &mut broadcast::Receiver<Event>) {
        // The start may have been answered after a quick run had ended.
        if self.state(name).await.is_none_or(|p| !busy(p.state)) {
            return;
        }
        loop {
            match events.recv().await {
                Ok(Event::StateChanged { name: n, to, .. }) if &n == name && !busy(to) => return,
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    if self.state(name).await.is_none_or(|p| !busy(p.state)) {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    async fn state(&self, name: &Name) -> Option<ProcessStatus> {
        let all = self.sup.status().await.ok()?;
        all.into_iter().find(|p| &p.name == name)
    }
}

fn list(names: &[Name]) -> String {
    let v: Vec<&str> = names.iter().map(Name::as_str).collect();
    v.join(", ")
}

fn strip_name(name: &Name, e: &Error) -> String {
    let s = e.to_string();
    s.strip_prefix(&format!("{name}: "))
        .map_or_else(|| s.clone(), str::to_string)
}

/// Logs what a batch of the task's could not do.
fn report(task: &Name, verb: &str, results: Result<Vec<ActionResult>, Error>) {
    match results {
        Ok(results) => {
            for r in results {
                if let Err(e) = r.result {
                    warn!("task {task}: cannot {verb} {}: {e}", r.name);
                }
            }
        }
        Err(e) => warn!("task {task}: cannot {verb} the processes: {e}"),
    }
}

#[cfg(test)]
mod tests {
    //! The triggers under tokio's paused clock, with the fake launcher: a
    //! program named `run:MS` exits with code 0 after MS milliseconds,
    //! `missing` cannot be spawned, any other runs until it gets a signal.

    use std::time::Duration;

    use super::{Latch, ShutdownLatch, TaskConf, Tasks};
    use crate::model::spec::{Condition, Dependency};
    use crate::testing::{FakeLauncher, FakeWorld};
    use crate::{ExitInfo, Name, ProcessSpec, RestartPolicy, Supervisor};

    fn setup() -> (Supervisor, FakeWorld) {
        let (fake, world, exits) = FakeLauncher::new();
        (fake.supervisor(exits), world)
    }

    /// Starts the triggers of `tasks`, with their signal listeners.
    fn start(
        sup: &Supervisor,
        shutdown: &Latch,
        tasks: &[TaskConf],
        processes: &[ProcessSpec],
    ) -> Tasks {
        Tasks::start(sup, shutdown, tasks, processes, super::listen(tasks))
    }

    fn name(s: &str) -> Name {
        Name::new(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn process(n: &str, deps: &[&str]) -> ProcessSpec {
        let mut s = ProcessSpec::new(name(n), vec!["forever".into()]);
        s.depends_on = deps
            .iter()
            .map(|d| Dependency {
                name: name(d),
                condition: Condition::Started,
                restart: false,
            })
            .collect();
        s
    }

    fn task(n: &str, run_ms: u64, deps: &[&str]) -> ProcessSpec {
        let mut s = process(n, deps);
        s.command = vec![format!("run:{run_ms}")];
        s.restart = RestartPolicy::Never;
        s.autostart = false;
        s
    }

    fn every(n: &str, ms: u64) -> TaskConf {
        TaskConf {
            name: name(n),
            on_signal: None,
            every: Some(Duration::from_millis(ms)),
            cron: None,
            shutdown: false,
            terminate: false,
        }
    }

    async fn add_all(sup: &Supervisor, specs: &[ProcessSpec]) {
        for s in specs {
            sup.add(s.clone()).await.unwrap_or_else(|e| panic!("{e}"));
        }
        sup.start_autostart()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    #[tokio::test(start_paused = true)]
    async fn every_runs_on_time_and_skips_while_the_task_runs() {
        let (sup, world) = setup();
        let specs = [task("tick", 500, &[])];
        add_all(&sup, &specs).await;
        let shutdown = Latch::new();
        let _tasks = start(&sup, &shutdown, &[every("tick", 300)], &specs);
        tokio::time::sleep(Duration::from_millis(2200)).await;
        // Due at 300, 600, 900, ...: the run from 300 lasts until 800, so 600
        // is skipped; the same for 1200 and 1800.
        assert_eq!(world.spawns_of("tick"), [300, 900, 1500, 2100]);
    }

    fn cron(n: &str, expr: &str, tz: &str) -> TaskConf {
        let tz = jiff::tz::TimeZone::get(tz).unwrap_or_else(|e| panic!("{e}"));
        TaskConf {
            every: None,
            cron: Some(super::CronSchedule::parse(expr, tz).unwrap_or_else(|e| panic!("{e}"))),
            ..every(n, 1)
        }
    }

    /// Starts the triggers with the wall clock reading `at` now.
    fn start_at(
        sup: &Supervisor,
        shutdown: &Latch,
        tasks: &[TaskConf],
        processes: &[ProcessSpec],
        at: &str,
    ) -> Tasks {
        let at: jiff::Timestamp = at.parse().unwrap_or_else(|e| panic!("{e}"));
        let clock = std::sync::Arc::new(super::TokioClock::starting_at(at));
        Tasks::start_with_clock(sup, shutdown, tasks, processes, super::listen(tasks), clock)
    }

    const MIN: u64 = 60_000;

    #[tokio::test(start_paused = true)]
    async fn cron_runs_on_the_wall_clocks_minutes() {
        let (sup, world) = setup();
        let specs = [task("tick", 500, &[])];
        add_all(&sup, &specs).await;
        let shutdown = Latch::new();
        let tasks = [cron("tick", "*/5 * * * *", "UTC")];
        // 10:03:00: due at 10:05, 10:10, 10:15.
        let _tasks = start_at(&sup, &shutdown, &tasks, &specs, "2026-01-01T10:03:00Z");
        tokio::time::sleep(Duration::from_millis(13 * MIN)).await;
        assert_eq!(world.spawns_of("tick"), [2 * MIN, 7 * MIN, 12 * MIN]);
    }

    #[tokio::test(start_paused = true)]
    async fn cron_across_spring_forward_skips_the_hour_that_does_not_exist() {
        let (sup, world) = setup();
        let specs = [task("tick", 500, &[])];
        add_all(&sup, &specs).await;
        let shutdown = Latch::new();
        let tasks = [cron("tick", "*/30 * * * *", "Europe/Berlin")];
        // 01:15 CET on 2026-03-29; at 02:00 the clocks go to 03:00 CEST.
        let _tasks = start_at(&sup, &shutdown, &tasks, &specs, "2026-03-29T00:15:00Z");
        tokio::time::sleep(Duration::from_millis(80 * MIN)).await;
        // 01:30 CET, then 03:00 and 03:30 CEST: 30 minutes of real time
        // apart, with no run at 02:00 or 02:30 (they do not exist).
        assert_eq!(world.spawns_of("tick"), [15 * MIN, 45 * MIN, 75 * MIN]);
    }

    #[tokio::test(start_paused = true)]
    async fn cron_at_reboot_runs_once_at_start() {
        let (sup, world) = setup();
        let specs = [task("once", 10, &[])];
        add_all(&sup, &specs).await;
        let shutdown = Latch::new();
        let tasks = [cron("once", "@reboot", "UTC")];
        let _tasks = start_at(&sup, &shutdown, &tasks, &specs, "2026-01-01T10:03:00Z");
        tokio::time::sleep(Duration::from_secs(7200)).await;
        assert_eq!(world.spawns_of("once"), [0]);
    }

    #[tokio::test(start_paused = true)]
    async fn no_timer_no_wake_up() {
        let (sup, world) = setup();
        let specs = [task("manual", 10, &[])];
        add_all(&sup, &specs).await;
        let shutdown = Latch::new();
        let manual = TaskConf {
            every: None,
            ..every("manual", 1)
        };
        let tasks = start(&sup, &shutdown, &[manual], &specs);
        assert!(tasks.loops.is_empty(), "nothing to wait for");
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert!(world.spawns_of("manual").is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_stops_the_others_dependents_first_and_starts_them_again() {
        let (sup, world) = setup();
        let specs = [
            process("db", &[]),
            process("web", &["db"]),
            process("api", &[]),
            task("other", 10, &[]),
            task("backup", 100, &["api"]),
        ];
        add_all(&sup, &specs).await;
        let shutdown = Latch::new();
        let conf = TaskConf {
            shutdown: true,
            ..every("backup", 1000)
        };
        let _tasks = start(&sup, &shutdown, &[conf], &specs);
        tokio::time::sleep(Duration::from_millis(1500)).await;

        let kills: Vec<(u64, String)> = world
            .kills()
            .into_iter()
            .filter_map(|k| Some((world.ms(k.at), k.name?.to_string())))
            .collect();
        // web before db; api (which backup needs) left alone.
        assert_eq!(kills, [(1000, "web".into()), (1000, "db".into())]);
        let spawns: Vec<(u64, String)> = world
            .spawns()
            .into_iter()
            .map(|s| (world.ms(s.at), s.name.to_string()))
            .collect();
        assert_eq!(
            spawns[3..],
            [
                (1000, "backup".into()),
                (1100, "db".into()),
                (1100, "web".into())
            ],
            "{spawns:?}"
        );
        let status = sup.status().await.unwrap_or_else(|e| panic!("{e}"));
        for p in status {
            let want = match p.name.as_str() {
                "backup" => "exited",
                "other" => "stopped",
                _ => "running",
            };
            assert_eq!(p.state.as_str(), want, "{}", p.name);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn terminate_pulls_the_shutdown_latch_once_the_task_has_ended() {
        let (sup, world) = setup();
        let specs = [process("svc", &[]), task("bye", 50, &[])];
        add_all(&sup, &specs).await;
        let shutdown = Latch::new();
        let conf = TaskConf {
            terminate: true,
            ..every("bye", 200)
        };
        let _tasks = start(&sup, &shutdown, &[conf], &specs);
        tokio::time::timeout(Duration::from_secs(10), shutdown.triggered())
            .await
            .unwrap_or_else(|_| panic!("no shutdown"));
        assert_eq!(world.spawns_of("bye"), [200]);
        let bye = sup.status().await.unwrap_or_default();
        let bye = bye.iter().find(|p| p.name.as_str() == "bye");
        assert_eq!(bye.and_then(|p| p.last_exit), Some(ExitInfo::Code(0)));
        assert!(world.kills().is_empty(), "the program stops the rest");
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_whose_dependency_cannot_start_does_not_run_later() {
        let (sup, world) = setup();
        let mut dep = process("dep", &[]);
        dep.command = vec!["missing".into()];
        dep.autostart = false;
        let specs = [dep, task("t", 10, &["dep"])];
        add_all(&sup, &specs).await;
        let shutdown = Latch::new();
        let _tasks = start(&sup, &shutdown, &[every("t", 100)], &specs);
        tokio::time::sleep(Duration::from_millis(150)).await;
        let status = sup.status().await.unwrap_or_default();
        let state = |n: &str| {
            status
                .iter()
                .find(|p| p.name.as_str() == n)
                .map(|p| p.state.as_str())
        };
        assert_eq!(state("dep"), Some("fatal"));
        assert_eq!(state("t"), Some("stopped"), "not left waiting");
        assert!(world.spawns_of("t").is_empty());
    }
}
