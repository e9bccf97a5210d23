//! The driver with a fake launcher, under tokio's paused clock: real timers,
//! real channels, virtual time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::launcher::{KillTarget, Launcher, Reaped, SpawnError, Spawned};
use crate::model::spec::ProcessSpec;
use crate::model::status::{Event, ExitInfo, StateName};
use crate::{Error, Name, Options, Outcome, Signal, Supervisor};

#[derive(Default)]
struct World {
    next_pid: u32,
    spawns: Vec<(Instant, String, u32)>,
    kills: Vec<(Instant, KillTarget, Signal)>,
    alive: Vec<u32>,
}

/// Processes that exit `term_delay` after any signal (at once on KILL).
struct Fake {
    world: Arc<Mutex<World>>,
    exits: mpsc::UnboundedSender<Reaped>,
    term_delay: Duration,
}

impl Launcher for Fake {
    fn spawn(&mut self, spec: &ProcessSpec) -> Result<Spawned, SpawnError> {
        if spec.command[0] == "missing" {
            return Err(SpawnError {
                message: "command \"missing\" not found on PATH".into(),
                permanent: true,
            });
        }
        let mut w = self.world.lock().unwrap();
        w.next_pid += 1;
        let pid = 1000 + w.next_pid;
        w.spawns.push((Instant::now(), spec.name.to_string(), pid));
        w.alive.push(pid);
        Ok(Spawned::without_output(pid))
    }

    fn kill(&mut self, target: KillTarget, sig: Signal) -> std::io::Result<()> {
        let pid = match target {
            KillTarget::Process(p) | KillTarget::Group(p) => p,
        };
        self.world
            .lock()
            .unwrap()
            .kills
            .push((Instant::now(), target, sig));
        let delay = if sig == Signal::KILL {
            Duration::ZERO
        } else {
            self.term_delay
        };
        let (tx, world) = (self.exits.clone(), self.world.clone());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let mut w = world.lock().unwrap();
            if let Some(i) = w.alive.iter().position(|p| *p == pid) {
                w.alive.remove(i);
                let exit = if sig == Signal::KILL {
                    ExitInfo::Signal(Signal::KILL)
                } else {
                    ExitInfo::Code(0)
                };
                let _ = tx.send(Reaped { pid, exit });
            }
        });
        Ok(())
    }

    fn group_alive(&mut self, pgid: u32) -> bool {
        self.world.lock().unwrap().alive.contains(&pgid)
    }
}

fn setup(term_delay: Duration) -> (Supervisor, Arc<Mutex<World>>, mpsc::UnboundedSender<Reaped>) {
    let world = Arc::new(Mutex::new(World::default()));
    let (tx, rx) = mpsc::unbounded_channel();
    let fake = Fake {
        world: world.clone(),
        exits: tx.clone(),
        term_delay,
    };
    let (sup, _task) = Supervisor::with_launcher(Options::default(), fake, rx);
    (sup, world, tx)
}

fn spec(name: &str, argv0: &str) -> ProcessSpec {
    ProcessSpec::new(Name::new(name).unwrap(), vec![argv0.into()])
}

fn die(world: &Arc<Mutex<World>>, tx: &mpsc::UnboundedSender<Reaped>, code: i32) {
    let pid = {
        let mut w = world.lock().unwrap();
        w.alive.pop().expect("something is alive")
    };
    tx.send(Reaped {
        pid,
        exit: ExitInfo::Code(code),
    })
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn crash_loop_waits_the_doubling_delays_on_the_tokio_clock() {
    let (sup, world, tx) = setup(Duration::from_secs(1));
    sup.start_autostart().await.unwrap();
    let t0 = Instant::now();
    sup.add(spec("a", "x")).await.unwrap();
    for expected in [1000u64, 2000, 4000, 8000] {
        let spawned = world.lock().unwrap().spawns.len();
        tokio::time::sleep(Duration::from_millis(10)).await;
        die(&world, &tx, 1);
        let ev = sup
            .wait_for(Duration::from_secs(60), |e| {
                matches!(e, Event::RestartScheduled { .. })
            })
            .await
            .unwrap();
        assert_eq!(
            ev,
            Event::RestartScheduled {
                name: Name::new("a").unwrap(),
                delay_ms: expected
            }
        );
        let died = Instant::now();
        sup.wait_for(Duration::from_secs(3600), |e| {
            matches!(e, Event::Spawned { .. })
        })
        .await
        .unwrap();
        let w = world.lock().unwrap();
        assert_eq!(w.spawns.len(), spawned + 1);
        assert_eq!(
            w.spawns.last().unwrap().0 - died,
            Duration::from_millis(expected)
        );
    }
    let st = sup.status().await.unwrap();
    assert_eq!(st[0].restarts, 4);
    assert_eq!(st[0].last_exit, Some(ExitInfo::Code(1)));
    assert!(t0.elapsed() >= Duration::from_secs(15));
}

#[tokio::test(start_paused = true)]
async fn status_shows_when_the_next_restart_is_due() {
    let (sup, world, tx) = setup(Duration::from_secs(1));
    sup.start_autostart().await.unwrap();
    sup.add(spec("a", "x")).await.unwrap();
    die(&world, &tx, 3);
    sup.wait_for(Duration::from_secs(5), |e| {
        matches!(e, Event::RestartScheduled { .. })
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let st = sup.status().await.unwrap();
    assert_eq!(st[0].state, StateName::Backoff);
    assert_eq!(st[0].next_restart_in_ms, Some(600));
    assert_eq!(st[0].pid, None);
}

#[tokio::test(start_paused = true)]
async fn stop_waits_for_exit_and_kills_after_the_timeout() {
    let (sup, world, _tx) = setup(Duration::from_secs(60)); // ignores TERM in practice
    let mut s = spec("a", "x");
    s.stop.timeout = Duration::from_secs(2);
    sup.add(s).await.unwrap();
    assert_eq!(sup.start("a").await, Ok(Outcome::Done));
    let t = Instant::now();
    assert_eq!(sup.stop("a").await, Ok(Outcome::Done));
    assert_eq!(t.elapsed(), Duration::from_secs(2));
    let kills = world.lock().unwrap().kills.clone();
    let sigs: Vec<Signal> = kills.iter().map(|k| k.2).collect();
    assert_eq!(sigs, [Signal::TERM, Signal::KILL]);
    assert!(matches!(kills[0].1, KillTarget::Group(_)));
    assert_eq!(sup.stop("a").await, Ok(Outcome::AlreadyStopped));
}

#[tokio::test(start_paused = true)]
async fn errors_name_what_went_wrong() {
    let (sup, _world, _tx) = setup(Duration::from_secs(1));
    sup.add(spec("a", "x")).await.unwrap();
    assert_eq!(
        sup.add(spec("a", "x")).await,
        Err(Error::Duplicate(Name::new("a").unwrap()))
    );
    assert_eq!(
        sup.start("zz").await,
        Err(Error::UnknownProcess("zz".into()))
    );
    assert_eq!(
        sup.remove("zz").await,
        Err(Error::UnknownProcess("zz".into()))
    );
    sup.add(spec("m", "missing")).await.unwrap();
    let err = sup.start("m").await.unwrap_err();
    assert!(err.to_string().contains("not found on PATH"), "{err}");
    let st = sup.status().await.unwrap();
    let m = st.iter().find(|s| s.name.as_str() == "m").unwrap();
    assert_eq!(m.state, StateName::Fatal);
    assert!(m.error.as_deref().unwrap().contains("missing"));
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_everything_and_ends_the_driver() {
    let world = Arc::new(Mutex::new(World::default()));
    let (tx, rx) = mpsc::unbounded_channel();
    let fake = Fake {
        world: world.clone(),
        exits: tx.clone(),
        term_delay: Duration::from_millis(300),
    };
    let (sup, task) = Supervisor::with_launcher(Options::default(), fake, rx);
    for n in ["a", "b", "c"] {
        sup.add(spec(n, "x")).await.unwrap();
    }
    sup.start_autostart().await.unwrap();
    assert_eq!(world.lock().unwrap().alive.len(), 3);
    sup.shutdown().await.unwrap();
    assert!(world.lock().unwrap().alive.is_empty());
    task.await.unwrap();
    assert_eq!(sup.status().await, Err(Error::ShuttingDown));
}

#[tokio::test(start_paused = true)]
async fn dropping_every_handle_stops_every_child() {
    let world = Arc::new(Mutex::new(World::default()));
    let (tx, rx) = mpsc::unbounded_channel();
    let fake = Fake {
        world: world.clone(),
        exits: tx.clone(),
        term_delay: Duration::from_millis(300),
    };
    let (sup, task) = Supervisor::with_launcher(Options::default(), fake, rx);
    sup.add(spec("a", "x")).await.unwrap();
    sup.start("a").await.unwrap();
    drop(sup);
    task.await.unwrap();
    assert!(world.lock().unwrap().alive.is_empty());
}

#[tokio::test(start_paused = true)]
async fn remove_cancels_a_pending_restart() {
    let (sup, world, tx) = setup(Duration::from_secs(1));
    sup.start_autostart().await.unwrap();
    sup.add(spec("a", "x")).await.unwrap();
    die(&world, &tx, 1);
    sup.wait_for(Duration::from_secs(5), |e| {
        matches!(e, Event::RestartScheduled { .. })
    })
    .await
    .unwrap();
    sup.remove("a").await.unwrap();
    tokio::time::sleep(Duration::from_secs(7200)).await;
    assert_eq!(world.lock().unwrap().spawns.len(), 1);
    assert!(sup.status().await.unwrap().is_empty());
}
