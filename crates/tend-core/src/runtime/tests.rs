//! The driver with a fake launcher, under tokio's paused clock: real timers,
//! real channels, virtual time.

use std::time::Duration;

use tokio::time::Instant;

use crate::launcher::KillTarget;
use crate::model::spec::ProcessSpec;
use crate::model::status::{Event, ExitInfo, StateName};
use crate::testing::{FakeLauncher, FakeWorld};
use crate::{Error, Name, Options, Outcome, Signal, Supervisor};

/// A supervisor whose processes take `term_delay` to exit after a signal
/// (at once on KILL).
fn setup(term_delay: Duration) -> (Supervisor, FakeWorld) {
    let (fake, world, exits) = FakeLauncher::new();
    (fake.term_delay(term_delay).supervisor(exits), world)
}

fn spec(name: &str, argv0: &str) -> ProcessSpec {
    ProcessSpec::new(Name::new(name).unwrap(), vec![argv0.into()])
}

/// The youngest process exits with `code`.
fn die(world: &FakeWorld, code: i32) {
    world
        .exit_youngest(ExitInfo::Code(code))
        .expect("something is alive");
}

#[tokio::test(start_paused = true)]
async fn crash_loop_waits_the_doubling_delays_on_the_tokio_clock() {
    let (sup, world) = setup(Duration::from_secs(1));
    sup.start_autostart().await.unwrap();
    let t0 = Instant::now();
    sup.add(spec("a", "x")).await.unwrap();
    for expected in [1000u64, 2000, 4000, 8000] {
        let spawned = world.spawns().len();
        tokio::time::sleep(Duration::from_millis(10)).await;
        die(&world, 1);
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
        let spawns = world.spawns();
        assert_eq!(spawns.len(), spawned + 1);
        assert_eq!(
            spawns.last().unwrap().at - died,
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
    let (sup, world) = setup(Duration::from_secs(1));
    sup.start_autostart().await.unwrap();
    sup.add(spec("a", "x")).await.unwrap();
    die(&world, 3);
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
    let (sup, world) = setup(Duration::from_secs(60)); // ignores TERM in practice
    let mut s = spec("a", "x");
    s.stop.timeout = Duration::from_secs(2);
    sup.add(s).await.unwrap();
    assert_eq!(sup.start("a").await, Ok(Outcome::Done));
    let t = Instant::now();
    assert_eq!(sup.stop("a").await, Ok(Outcome::Done));
    assert_eq!(t.elapsed(), Duration::from_secs(2));
    let kills = world.kills();
    let sigs: Vec<Signal> = kills.iter().map(|k| k.sig).collect();
    assert_eq!(sigs, [Signal::TERM, Signal::KILL]);
    assert!(matches!(kills[0].target, KillTarget::Group(_)));
    assert_eq!(sup.stop("a").await, Ok(Outcome::AlreadyStopped));
}

#[tokio::test(start_paused = true)]
async fn errors_name_what_went_wrong() {
    let (sup, _world) = setup(Duration::from_secs(1));
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
    let (fake, world, exits) = FakeLauncher::new();
    let fake = fake.term_delay(Duration::from_millis(300));
    let (sup, task) = Supervisor::with_launcher(Options::default(), fake, exits);
    for n in ["a", "b", "c"] {
        sup.add(spec(n, "x")).await.unwrap();
    }
    sup.start_autostart().await.unwrap();
    assert_eq!(world.alive().len(), 3);
    sup.shutdown().await.unwrap();
    assert!(world.alive().is_empty());
    task.await.unwrap();
    assert_eq!(sup.status().await, Err(Error::ShuttingDown));
}

#[tokio::test(start_paused = true)]
async fn dropping_every_handle_stops_every_child() {
    let (fake, world, exits) = FakeLauncher::new();
    let fake = fake.term_delay(Duration::from_millis(300));
    let (sup, task) = Supervisor::with_launcher(Options::default(), fake, exits);
    sup.add(spec("a", "x")).await.unwrap();
    sup.start("a").await.unwrap();
    drop(sup);
    task.await.unwrap();
    assert!(world.alive().is_empty());
}

#[tokio::test(start_paused = true)]
async fn remove_cancels_a_pending_restart() {
    let (sup, world) = setup(Duration::from_secs(1));
    sup.start_autostart().await.unwrap();
    sup.add(spec("a", "x")).await.unwrap();
    die(&world, 1);
    sup.wait_for(Duration::from_secs(5), |e| {
        matches!(e, Event::RestartScheduled { .. })
    })
    .await
    .unwrap();
    sup.remove("a").await.unwrap();
    tokio::time::sleep(Duration::from_secs(7200)).await;
    assert_eq!(world.spawns().len(), 1);
    assert!(sup.status().await.unwrap().is_empty());
}

/// Issue 16: a burst of events larger than the channel reaches every
/// subscriber that reads, in order and without a gap, while one that never
/// reads is left behind (it lags) instead of holding the burst back for good.
#[tokio::test(start_paused = true)]
async fn a_burst_reaches_readers_whole_past_a_subscriber_that_never_reads() {
    let (fake, world, exits) = FakeLauncher::new();
    let opts = Options {
        event_capacity: 8,
        ..Options::default()
    };
    let (sup, _task) = Supervisor::with_launcher(opts, fake.term_delay(Duration::ZERO), exits);
    sup.start_autostart().await.unwrap();
    let mut stuck = sup.subscribe();
    let mut reader = sup.subscribe();
    let n = 60;
    let collect = tokio::spawn(async move {
        let mut spawned = Vec::new();
        while spawned.len() < n {
            match reader.recv().await {
                Ok(Event::Spawned { name, .. }) => spawned.push(name),
                Ok(_) => {}
                Err(e) => panic!("the reader missed events: {e}"),
            }
        }
        spawned
    });
    // All at once: one burst of far more events than the channel holds.
    let adds: Vec<_> = (0..n)
        .map(|i| {
            let sup = sup.clone();
            tokio::spawn(async move { sup.add(spec(&format!("p{i:02}"), "x")).await })
        })
        .collect();
    for a in adds {
        a.await.unwrap().unwrap();
    }
    let spawned = tokio::time::timeout(Duration::from_secs(60), collect)
        .await
        .expect("the burst reached the reader")
        .unwrap();
    let mut names: Vec<String> = spawned.iter().map(|n| n.to_string()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), n, "every spawn once: {names:?}");
    assert_eq!(world.spawns().len(), n);
    assert!(
        matches!(
            stuck.recv().await,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_))
        ),
        "the subscriber that never read is left behind"
    );
}

#[tokio::test(start_paused = true)]
async fn a_status_is_answered_between_reaps_of_a_crash_storm() {
    let (sup, world) = setup(Duration::from_secs(1));
    sup.start_autostart().await.unwrap();
    let n = super::driver::TURN_BATCH * 5;
    for i in 0..n {
        sup.add(spec(&format!("p{i:04}"), "x")).await.unwrap();
    }
    for _ in 0..100 {
        if world.alive().len() == n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(world.alive().len(), n);
    // Every process dies at once; the status is asked for right after, with
    // all the reaps still queued before it.
    for _ in 0..n {
        die(&world, 1);
    }
    let st = sup.status().await.unwrap();
    let still_running = st
        .iter()
        .filter(|s| s.state == StateName::Running || s.state == StateName::Starting)
        .count();
    assert!(
        still_running > 0,
        "the status waited for all {n} reaps before it was answered"
    );
    // And the storm is then dealt with in full.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let st = sup.status().await.unwrap();
        if st.iter().all(|s| s.restarts == 1 || s.last_exit.is_some()) {
            break;
        }
        assert!(Instant::now() < deadline, "the reaps were not all handled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
