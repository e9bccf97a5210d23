//! Watch and restart: a process with `watch` is restarted when a file that
//! matches its patterns changes.
//!
//! The file system is a seam: a [`FileWatcher`] watches directories and
//! sends the paths that changed; [`InotifyWatcher`] (the `notify` crate, on
//! inotify) is the real one. The service is made on the first
//! [`Supervisor::add`] of a process with a watch and lives as long as the
//! supervisor: a program none of whose processes watches anything has no
//! watcher, no inotify descriptor and no task.
//!
//! Each process's changes are debounced on the trailing edge: the restart
//! comes once its files have been quiet for `debounce` after the last
//! change (a burst of writes, an editor's save, a `git checkout`, restarts
//! once), through tokio's timer, so the debounce runs under virtual time in
//! tests. The restart is logged with the first file that changed. A process
//! that is down because it was stopped, or exited for good, is not started by
//! a change: only one that is up, starting, waiting, in back-off or fatal is
//! restarted (a fix to a crash-looping program brings it back).
//!
//! [`Supervisor::add`] and [`Supervisor::remove`] keep the service's table:
//! a reload, which removes and adds what changed, updates the watches.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use globset::GlobSet;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

use super::{Request, Supervisor};
use crate::model::name::Name;
use crate::model::status::StateName;
use crate::model::watch::WatchSpec;

/// Watches directories for changes: the file system seam.
pub trait FileWatcher: Send + 'static {
    /// Watches `dir` and everything beneath it (directories made later too).
    fn watch(&mut self, dir: &Path) -> std::io::Result<()>;
    /// Stops watching `dir`.
    fn unwatch(&mut self, dir: &Path);
}

/// The real [`FileWatcher`]: inotify, through the `notify` crate. Creations,
/// writes, attribute changes (`touch`), renames and removals count.
pub struct InotifyWatcher(notify::RecommendedWatcher);

impl std::fmt::Debug for InotifyWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InotifyWatcher")
    }
}

impl InotifyWatcher {
    /// A watcher that sends every changed path to `changes`.
    pub fn new(changes: mpsc::UnboundedSender<PathBuf>) -> std::io::Result<InotifyWatcher> {
        use notify::EventKind;
        let handler = move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            if matches!(
                event.kind,
                EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
            ) {
                for p in event.paths {
                    let _ = changes.send(p);
                }
            }
        };
        notify::recommended_watcher(handler)
            .map(InotifyWatcher)
            .map_err(io_error)
    }
}

fn io_error(e: notify::Error) -> std::io::Error {
    match e.kind {
        notify::ErrorKind::Io(io) => io,
        other => std::io::Error::other(format!("{other:?}")),
    }
}

impl FileWatcher for InotifyWatcher {
    fn watch(&mut self, dir: &Path) -> std::io::Result<()> {
        use notify::Watcher;
        self.0
            .watch(dir, notify::RecursiveMode::Recursive)
            .map_err(io_error)
    }

    fn unwatch(&mut self, dir: &Path) {
        use notify::Watcher;
        let _ = self.0.unwatch(dir);
    }
}

/// What the service is told.
#[derive(Debug)]
enum Cmd {
    Set(Name, WatchSpec),
    Unset(Name),
}

/// The handle of the watch service.
#[derive(Debug, Clone)]
pub(crate) struct Watches {
    tx: mpsc::UnboundedSender<Cmd>,
}

impl Watches {
    /// Starts the service with the real watcher.
    pub(crate) fn start(sup: &Supervisor) -> std::io::Result<Watches> {
        let (changes_tx, changes) = mpsc::unbounded_channel();
        let watcher = InotifyWatcher::new(changes_tx)?;
        Ok(Watches::start_with(sup, Box::new(watcher), changes))
    }

    /// Starts the service with `watcher`, whose changes arrive on `changes`.
    pub(crate) fn start_with(
        sup: &Supervisor,
        watcher: Box<dyn FileWatcher>,
        changes: mpsc::UnboundedReceiver<PathBuf>,
    ) -> Watches {
        let (tx, cmds) = mpsc::unbounded_channel();
        let weak = Weak {
            tx: sup.tx.downgrade(),
            events: sup.events.clone(),
            logs: sup.logs.clone(),
        };
        tokio::spawn(run(weak, cmds, watcher, changes));
        Watches { tx }
    }

    /// Watches `spec` for `name` (in place of what it watched).
    pub(crate) fn set(&self, name: Name, spec: WatchSpec) {
        let _ = self.tx.send(Cmd::Set(name, spec));
    }

    /// Watches nothing for `name`.
    pub(crate) fn unset(&self, name: Name) {
        let _ = self.tx.send(Cmd::Unset(name));
    }
}

/// The supervisor without keeping its driver alive.
struct Weak {
    tx: mpsc::WeakSender<Request>,
    events: tokio::sync::broadcast::Sender<crate::model::status::Event>,
    logs: std::sync::Arc<super::LogHub>,
}

impl Weak {
    fn upgrade(&self) -> Option<Supervisor> {
        Some(Supervisor {
            tx: self.tx.upgrade()?,
            events: self.events.clone(),
            logs: self.logs.clone(),
            watches: Default::default(),
        })
    }
}

struct Watched {
    spec: WatchSpec,
    sets: (GlobSet, GlobSet),
    dirs: Vec<PathBuf>,
    /// When the restart is due, and the first file that changed.
    due: Option<(Instant, PathBuf)>,
}

async fn run(
    sup: Weak,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
    mut watcher: Box<dyn FileWatcher>,
    mut changes: mpsc::UnboundedReceiver<PathBuf>,
) {
    let mut procs: BTreeMap<Name, Watched> = BTreeMap::new();
    // How many processes watch each directory.
    let mut dirs: BTreeMap<PathBuf, usize> = BTreeMap::new();
    loop {
        let next = procs
            .values()
            .filter_map(|w| w.due.as_ref().map(|(at, _)| *at))
            .min();
        tokio::select! {
            cmd = cmds.recv() => match cmd {
                None => return,
                Some(Cmd::Unset(name)) => {
                    if let Some(w) = procs.remove(&name) {
                        release(&mut *watcher, &mut dirs, &w.dirs);
                    }
                }
                Some(Cmd::Set(name, spec)) => {
                    if let Some(w) = procs.remove(&name) {
                        release(&mut *watcher, &mut dirs, &w.dirs);
                    }
                    let sets = match spec.compile() {
                        Ok(s) => s,
                        Err(e) => {
                            warn!("{name}: cannot watch: {e}");
                            continue;
                        }
                    };
                    let mut watched = Vec::new();
                    for d in spec.dirs() {
                        let n = dirs.entry(d.clone()).or_insert(0);
                        if *n == 0
                            && let Err(e) = watcher.watch(&d)
                        {
                            warn!("{name}: cannot watch {}: {e}", d.display());
                            dirs.remove(&d);
                            continue;
                        }
                        *n += 1;
                        watched.push(d);
                    }
                    procs.insert(name, Watched { spec, sets, dirs: watched, due: None });
                }
            },
            Some(path) = changes.recv() => {
                let now = Instant::now();
                for w in procs.values_mut() {
                    if w.spec.matches(&w.sets, &path) {
                        let first = w.due.take().map_or_else(|| path.clone(), |(_, p)| p);
                        w.due = Some((now + w.spec.debounce, first));
                    }
                }
            }
            () = sleep_until(next), if next.is_some() => {
                let now = Instant::now();
                let mut due = Vec::new();
                for (name, w) in &mut procs {
                    if w.due.as_ref().is_some_and(|(at, _)| *at <= now)
                        && let Some((_, path)) = w.due.take()
                    {
                        let rel = path.strip_prefix(&w.spec.root).unwrap_or(&path).to_path_buf();
                        due.push((name.clone(), rel));
                    }
                }
                let Some(sup) = sup.upgrade() else { return };
                tokio::spawn(restart(sup, due));
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn release(watcher: &mut dyn FileWatcher, dirs: &mut BTreeMap<PathBuf, usize>, mine: &[PathBuf]) {
    for d in mine {
        if let Some(n) = dirs.get_mut(d) {
            *n -= 1;
            if *n == 0 {
                dirs.remove(d);
                watcher.unwatch(d);
            }
        }
    }
}

/// Restarts those of `due` that are up (or trying to be).
async fn restart(sup: Supervisor, due: Vec<(Name, PathBuf)>) {
    let Ok(all) = sup.status().await else { return };
    let mut names = Vec::new();
    for (name, path) in due {
        let state = all.iter().find(|p| p.name == name).map(|p| p.state);
        match state {
            Some(
                StateName::Running
                | StateName::Starting
                | StateName::Waiting
                | StateName::Backoff
                | StateName::Fatal,
            ) => {
                info!("{name}: restarting: {} changed (watch)", path.display());
                names.push(name);
            }
            Some(s) => info!(
                "{name}: {} changed (watch); not restarted: it is {s}",
                path.display()
            ),
            None => {}
        }
    }
    if names.is_empty() {
        return;
    }
    if let Err(e) = sup.restart_many(names).await {
        warn!("watch: cannot restart: {e}");
    }
}

#[cfg(test)]
mod tests {
    //! The service under tokio's paused clock, with the fake launcher and a
    //! fake file system: changes are sent by hand.

    use std::path::{Path, PathBuf};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use tokio::sync::mpsc;

    use super::{FileWatcher, Watches};
    use crate::model::watch::WatchSpec;
    use crate::testing::FakeLauncher;
    use crate::{Name, ProcessSpec};

    /// Records what is watched.
    #[derive(Clone, Default)]
    struct Fake(Arc<Mutex<Vec<String>>>);

    impl FileWatcher for Fake {
        fn watch(&mut self, dir: &Path) -> std::io::Result<()> {
            self.log(format!("watch {}", dir.display()));
            Ok(())
        }
        fn unwatch(&mut self, dir: &Path) {
            self.log(format!("unwatch {}", dir.display()));
        }
    }

    impl Fake {
        fn log(&self, s: String) {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).push(s);
        }
        fn calls(&self) -> Vec<String> {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
        }
    }

    fn watched(name: &str) -> ProcessSpec {
        let mut s = ProcessSpec::new(
            Name::new(name).unwrap_or_else(|e| panic!("{e}")),
            vec!["forever".into()],
        );
        s.watch = Some(WatchSpec {
            root: PathBuf::from("/app"),
            patterns: vec!["src/**/*.py".into()],
            ignore: vec!["src/gen/**".into()],
            debounce: Duration::from_millis(500),
        });
        s
    }

    async fn sleep_ms(ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_restarts_once_after_the_quiet_ignored_and_outside_files_do_not() {
        let (fake, world, exits) = FakeLauncher::new();
        let sup = fake.supervisor(exits);
        let fs = Fake::default();
        let (changes, rx) = mpsc::unbounded_channel();
        let w = Watches::start_with(&sup, Box::new(fs.clone()), rx);
        assert!(sup.watches.set(w).is_ok());

        sup.add(watched("web"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        sup.start_autostart()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        sleep_ms(100).await;
        assert_eq!(fs.calls(), ["watch /app/src"]);
        assert_eq!(world.spawns_of("web"), [0]);

        // 20 writes 10 ms apart, from 100 to 290: one restart, 500 ms after the last.
        for _ in 0..20 {
            let _ = changes.send(PathBuf::from("/app/src/pkg/a.py"));
            sleep_ms(10).await;
        }
        sleep_ms(1000).await;
        let spawns = world.spawns_of("web");
        assert_eq!(spawns.len(), 2, "{spawns:?}");
        assert!((790..800).contains(&spawns[1]), "{spawns:?}");

        // Ignored, not matching, outside the root: nothing.
        for p in ["/app/src/gen/b.py", "/app/src/a.txt", "/elsewhere/src/a.py"] {
            let _ = changes.send(PathBuf::from(p));
        }
        sleep_ms(2000).await;
        assert_eq!(world.spawns_of("web").len(), 2);

        // A stopped process is not started by a change.
        sup.stop("web").await.unwrap_or_else(|e| panic!("{e}"));
        let _ = changes.send(PathBuf::from("/app/src/a.py"));
        sleep_ms(1000).await;
        assert_eq!(world.spawns_of("web").len(), 2);

        // Removed: its directory is no longer watched.
        sup.remove("web").await.unwrap_or_else(|e| panic!("{e}"));
        sleep_ms(10).await;
        assert_eq!(fs.calls(), ["watch /app/src", "unwatch /app/src"]);
    }

    #[tokio::test(start_paused = true)]
    async fn two_processes_share_a_directory_and_each_debounces_alone() {
        let (fake, world, exits) = FakeLauncher::new();
        let sup = fake.supervisor(exits);
        let fs = Fake::default();
        let (changes, rx) = mpsc::unbounded_channel();
        let w = Watches::start_with(&sup, Box::new(fs.clone()), rx);
        assert!(sup.watches.set(w).is_ok());
        let mut b = watched("b");
        if let Some(w) = &mut b.watch {
            w.patterns = vec!["src/*.rs".into()];
            w.debounce = Duration::from_millis(100);
        }
        sup.add(watched("a"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        sup.add(b).await.unwrap_or_else(|e| panic!("{e}"));
        sup.start_autostart()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        sleep_ms(10).await;
        assert_eq!(fs.calls(), ["watch /app/src"], "once for both");
        let _ = changes.send(PathBuf::from("/app/src/x.rs"));
        sleep_ms(1000).await;
        assert_eq!(world.spawns_of("a").len(), 1);
        assert_eq!(world.spawns_of("b").len(), 2);
        sup.remove("a").await.unwrap_or_else(|e| panic!("{e}"));
        sleep_ms(10).await;
        assert_eq!(fs.calls(), ["watch /app/src"], "b still watches it");
    }

    #[tokio::test(start_paused = true)]
    async fn no_watch_no_service() {
        let (fake, _world, exits) = FakeLauncher::new();
        let sup = fake.supervisor(exits);
        let mut plain = watched("plain");
        plain.watch = None;
        sup.add(plain).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(sup.watches.get().is_none());
    }
}
