//! The driver's part of the platform work, with the fake launcher under
//! tokio's paused clock: a second stop request that stops waiting for stop
//! timeouts, and an OOM kill published before the exit it causes.

use std::time::Duration;

use tokio::time::Instant;

use crate::model::resources::ExitReason;
use crate::model::spec::ProcessSpec;
use crate::model::status::{Event, ExitInfo, StateName};
use crate::testing::FakeLauncher;
use crate::{Name, Signal};

fn spec(name: &str, argv0: &str) -> ProcessSpec {
    ProcessSpec::new(Name::new(name).expect("name"), vec![argv0.into()])
}

#[tokio::test(start_paused = true)]
async fn kill_remaining_kills_what_is_stopping_now_and_what_stops_later() {
    // Processes that shrug off the stop signal for an hour.
    let (fake, world, exits) = FakeLauncher::new();
    let sup = fake.term_delay(Duration::from_secs(3600)).supervisor(exits);
    sup.start_autostart().await.expect("start");
    let mut first = spec("first", "x");
    first.priority = 1;
    first.stop.timeout = Duration::from_secs(60);
    let mut second = spec("second", "x");
    second.priority = 2;
    second.stop.timeout = Duration::from_secs(60);
    sup.add(first).await.expect("add");
    sup.add(second).await.expect("add");

    let t0 = Instant::now();
    let stopping = tokio::spawn({
        let sup = sup.clone();
        async move { sup.shutdown().await }
    });
    // `second` stops first (reverse priority) and waits out its timeout...
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(world.kills().iter().all(|k| k.sig != Signal::KILL));
    // ...until a second Ctrl-C: it is killed now, and `first`, whose stop
    // has not begun, is killed as soon as it does.
    sup.kill_remaining().await.expect("hurry");
    stopping.await.expect("task").expect("shutdown");
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(2), "{took:?}");
    let killed: Vec<String> = world
        .kills()
        .iter()
        .filter(|k| k.sig == Signal::KILL)
        .filter_map(|k| k.name.as_ref().map(ToString::to_string))
        .collect();
    assert_eq!(killed, ["second", "first"]);
}

#[tokio::test(start_paused = true)]
async fn an_oom_kill_is_published_before_the_exit_and_shown_in_status() {
    let (fake, _world, exits) = FakeLauncher::new();
    let sup = fake.supervisor(exits);
    sup.start_autostart().await.expect("start");
    let mut events = sup.subscribe();
    let mut hog = spec("hog", "oom:100");
    hog.backoff.min_uptime = Duration::from_secs(1);
    sup.add(hog).await.expect("add");
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let ev = events.recv().await.expect("event");
        if matches!(ev, Event::OomKilled { .. } | Event::Exited { .. }) {
            seen.push(ev);
        }
    }
    assert!(matches!(&seen[0], Event::OomKilled { name, .. } if name.as_str() == "hog"));
    assert!(matches!(
        &seen[1],
        Event::Exited {
            exit: ExitInfo::Signal(Signal::KILL),
            expected: false,
            ..
        }
    ));
    let st = sup.status().await.expect("status");
    assert_eq!(st[0].exit_reason, Some(ExitReason::OomKill));
    // A failure: it backs off.
    assert_eq!(st[0].state, StateName::Backoff);
}
