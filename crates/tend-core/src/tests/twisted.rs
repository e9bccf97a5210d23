//! Twisted's ProcessMonitor acceptance scenarios (peers.md §10, items 1 to 31),
//! as tests of tend's sans-IO layer under virtual time. Each test names its item. Where
//! tend's semantics differ on purpose (a user's stop is final; `restart` is an
//! explicit stop-then-start), the test says so and checks tend's behaviour.
//! Items 18 to 21 (output lines) run real processes: see `runtime/output_tests.rs`.

use super::*;
use crate::Error;
use crate::machine::TimerKind;
use crate::model::outcome::Outcome;
use crate::model::spec::ProcessSpec;
use crate::model::status::{ExitInfo, StateName};
use crate::model::time::Mono;
use crate::registry::Op;

fn running_sim(names: &[&str]) -> Sim {
    let mut sim = Sim::new();
    sim.start_service();
    for name in names {
        sim.add(twisted_spec(name)).unwrap();
    }
    sim
}

/// Items 1 and 2 (`repr`): the Rust equivalent is `Debug`, which must show the
/// name, the command and the user/group when set.
#[test]
fn t01_t02_debug_shows_identity() {
    let mut s = twisted_spec("foo");
    s.user = Some("1".into());
    s.unix_group = Some("2".into());
    let d = format!("{s:?}");
    assert!(
        d.contains("\"foo\"")
            && d.contains("arg1")
            && d.contains("Some(\"1\")")
            && d.contains("Some(\"2\")")
    );
    let d = format!("{:?}", twisted_spec("foo"));
    assert!(d.contains("user: None"));
}

/// Items 3 and 4 (`__getstate__`): the registered processes are plain data
/// that round-trips through serialization (the basis of a re-exec upgrade).
#[test]
fn t03_t04_spec_is_serializable_state() {
    let mut s = twisted_spec("foo");
    s.env.insert("KEY".into(), "value".into());
    s.user = Some("1".into());
    let json = serde_json::to_string(&s).unwrap();
    let back: ProcessSpec = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s);
}

/// Item 5: adding before the service starts registers but spawns nothing;
/// starting the service spawns it.
#[test]
fn t05_add_before_start_service() {
    let mut sim = Sim::new();
    sim.add(twisted_spec("foo")).unwrap();
    assert_eq!(sim.spawns.len(), 0);
    assert!(sim.registry.get("foo").is_some());
    sim.start_service();
    sim.advance(secs(0));
    assert_eq!(sim.spawn_count("foo"), 1);
    assert_eq!(sim.state("foo"), StateName::Running);
}

/// Item 6: a duplicate name is an error that names it.
#[test]
fn t06_duplicate_add_is_an_error() {
    let mut sim = Sim::new();
    sim.add(twisted_spec("foo")).unwrap();
    let err = sim.add(twisted_spec("foo")).unwrap_err();
    assert_eq!(err, Error::Duplicate(n("foo")));
    assert!(err.to_string().contains("foo"));
}

/// Item 7: the env given at add time is what the process is spawned with.
#[test]
fn t07_env_reaches_the_spawn() {
    let mut sim = running_sim(&[]);
    let mut s = twisted_spec("foo");
    s.env.insert("KEY".into(), "value".into());
    sim.add(s).unwrap();
    assert_eq!(
        sim.spawns[0].spec.env.get("KEY").map(String::as_str),
        Some("value")
    );
    assert_eq!(sim.spawns[0].spec.env.len(), 1);
}

/// Item 8: the cwd given at add time is used for the spawn.
#[test]
fn t08_cwd_reaches_the_spawn() {
    let mut sim = running_sim(&[]);
    let mut s = twisted_spec("foo");
    s.cwd = Some("/mnt/lala".into());
    sim.add(s).unwrap();
    assert_eq!(
        sim.spawns[0].spec.cwd.as_deref(),
        Some(std::path::Path::new("/mnt/lala"))
    );
}

/// Item 9: removing a started process unregisters it (once it has stopped).
#[test]
fn t09_remove_unregisters() {
    let mut sim = running_sim(&["foo"]);
    assert_eq!(sim.registry.processes().count(), 1);
    let b = sim.request(Op::Remove, &["foo"]);
    sim.advance(secs(1)); // DummyProcess exits 1 s after TERM
    assert_eq!(sim.registry.processes().count(), 0);
    assert_eq!(
        sim.results(b).unwrap(),
        vec![("foo".into(), Ok(Outcome::Done))]
    );
    sim.advance(secs(100));
    assert_eq!(sim.spawn_count("foo"), 1, "never restarted after removal");
}

/// Item 10: removing an unknown name is an error.
#[test]
fn t10_remove_unknown() {
    let mut sim = running_sim(&[]);
    let b = sim.request(Op::Remove, &["foo"]);
    assert_eq!(
        sim.results(b).unwrap(),
        vec![("foo".into(), Err("no such process: foo".into()))]
    );
}

/// Item 11: starting a process works even when the service is not started.
#[test]
fn t11_start_without_service() {
    let mut sim = Sim::new();
    sim.add(twisted_spec("foo")).unwrap();
    let b = sim.request(Op::Start, &["foo"]);
    assert_eq!(sim.spawn_count("foo"), 1);
    assert_eq!(
        sim.registry.get("foo").unwrap().last_start(),
        Some(Mono::ZERO)
    );
    assert_eq!(
        sim.results(b).unwrap(),
        vec![("foo".into(), Ok(Outcome::Done))]
    );
}

/// Item 12: starting a running process does nothing and is not an error.
#[test]
fn t12_start_running_is_a_noop() {
    let mut sim = running_sim(&["foo"]);
    let b = sim.request(Op::Start, &["foo"]);
    assert_eq!(
        sim.results(b).unwrap(),
        vec![("foo".into(), Ok(Outcome::AlreadyRunning))]
    );
    assert_eq!(sim.spawn_count("foo"), 1);
}

/// Item 13: starting an unknown name is an error.
#[test]
fn t13_start_unknown() {
    let mut sim = running_sim(&[]);
    let b = sim.request(Op::Start, &["foo"]);
    assert!(sim.results(b).unwrap()[0].1.is_err());
}

/// Item 14: a graceful restart. Twisted's `stopProcess` lets the monitor
/// restart the process; in tend that is `restart` (a user's `stop` is final).
/// Spawned at 0, TERM at 10, exits at 11, started again at 11 with no delay.
#[test]
fn t14_restart_after_term() {
    let mut sim = running_sim(&["foo"]);
    assert_eq!(sim.last_spawn_at("foo"), Some(Mono::ZERO));
    sim.advance(secs(10));
    sim.request(Op::Restart, &["foo"]);
    assert_eq!(
        sim.kills.last().map(|k| (k.0, k.2)),
        Some((Mono::from_secs(10), crate::Signal::TERM))
    );
    sim.advance(secs(1));
    assert_eq!(sim.spawn_count("foo"), 2);
    assert_eq!(sim.last_spawn_at("foo"), Some(Mono::from_secs(11)));
}

/// Item 15: a child that ignores TERM is KILLed after the stop timeout (5 s)
/// and only then started again.
#[test]
fn t15_forced_kill_then_restart() {
    let mut sim = running_sim(&["foo"]);
    sim.advance(secs(10));
    sim.behaviour.insert(
        n("foo"),
        Behaviour {
            term_delay: Some(secs(6)),
            ..Default::default()
        },
    );
    sim.procs
        .values_mut()
        .for_each(|p| p.behaviour.term_delay = Some(secs(6)));
    sim.request(Op::Restart, &["foo"]);
    sim.advance(secs(4));
    assert_eq!(sim.spawn_count("foo"), 1, "t=14: not yet restarted");
    sim.advance(secs(1));
    sim.advance(secs(0));
    assert_eq!(sim.spawn_count("foo"), 2);
    assert_eq!(sim.last_spawn_at("foo"), Some(Mono::from_secs(15)));
    assert!(
        sim.kills
            .iter()
            .any(|k| k.0 == Mono::from_secs(15) && k.2 == crate::Signal::KILL)
    );
}

/// Item 16: stopping an unknown name is an error.
#[test]
fn t16_stop_unknown() {
    let mut sim = running_sim(&[]);
    let b = sim.request(Op::Stop, &["foo"]);
    assert_eq!(
        sim.results(b).unwrap()[0].1,
        Err("no such process: foo".into())
    );
}

/// Item 17: stopping a registered process that is not running is not an error.
#[test]
fn t17_stop_not_running() {
    let mut sim = Sim::new();
    sim.add(twisted_spec("foo")).unwrap();
    let b = sim.request(Op::Stop, &["foo"]);
    assert_eq!(
        sim.results(b).unwrap(),
        vec![("foo".into(), Ok(Outcome::AlreadyStopped))]
    );
}

/// Item 22: a death after exactly `min_uptime` (10 s) is not quick: the
/// process is restarted at once and the delay is not used.
#[test]
fn t22_long_lived_death_restarts_at_once() {
    let mut sim = running_sim(&["foo"]);
    sim.advance(secs(10));
    sim.crash("foo", ExitInfo::Code(0));
    assert_eq!(sim.spawn_count("foo"), 2);
    assert_eq!(sim.last_spawn_at("foo"), Some(Mono::from_secs(10)));
    assert!(sim.restart_delays("foo").is_empty());
}

/// Item 23: the pending SIGKILL is cancelled when the process exits on TERM.
#[test]
fn t23_kill_timer_cancelled_on_exit() {
    let mut sim = running_sim(&["foo"]);
    sim.advance(secs(1));
    sim.request(Op::Stop, &["foo"]);
    assert!(sim.armed("foo", TimerKind::Kill));
    sim.advance(secs(1));
    assert!(!sim.armed("foo", TimerKind::Kill));
    assert_eq!(sim.state("foo"), StateName::Stopped);
    assert!(!sim.kills.iter().any(|k| k.2 == crate::Signal::KILL));
}

/// Item 24: a process killed from outside at t=1 (< min_uptime) is gone and
/// its restart waits the 2 s delay.
#[test]
fn t24_killed_from_outside_backs_off() {
    let mut sim = running_sim(&["foo"]);
    sim.advance(secs(1));
    sim.crash("foo", ExitInfo::Signal(crate::Signal::KILL));
    assert_eq!(sim.pid("foo"), None);
    assert_eq!(sim.state("foo"), StateName::Backoff);
    assert_eq!(sim.spawn_count("foo"), 1);
    sim.advance(ms(1999));
    assert_eq!(sim.spawn_count("foo"), 1);
    sim.advance(ms(1));
    assert_eq!(sim.spawn_count("foo"), 2);
    assert_eq!(sim.last_spawn_at("foo"), Some(Mono::from_secs(3)));
}

/// Item 25: the delay starts at `initial` and doubles but never past `max`.
#[test]
fn t25_delay_clamped_to_max() {
    let mut sim = running_sim(&[]);
    let mut s = twisted_spec("foo");
    s.backoff.mode = crate::BackoffMode::Doubling {
        initial: secs(2),
        max: secs(3),
    };
    sim.add(s).unwrap();
    assert_eq!(
        sim.registry.get("foo").unwrap().current_delay(),
        Some(secs(2))
    );
    sim.advance(secs(9));
    sim.crash("foo", ExitInfo::Code(0));
    assert_eq!(
        sim.registry.get("foo").unwrap().current_delay(),
        Some(secs(3))
    );
}

/// Item 26: a quick death doubles the delay.
#[test]
fn t26_quick_death_doubles() {
    let mut sim = running_sim(&["foo"]);
    sim.advance(secs(9));
    assert_eq!(
        sim.registry.get("foo").unwrap().current_delay(),
        Some(secs(2))
    );
    sim.crash("foo", ExitInfo::Code(0));
    assert_eq!(
        sim.registry.get("foo").unwrap().current_delay(),
        Some(secs(4))
    );
    assert_eq!(sim.restart_delays("foo"), vec![2000]);
}

/// Item 27: starting the service starts every registered process.
#[test]
fn t27_start_service_starts_all() {
    let mut sim = Sim::new();
    sim.add(twisted_spec("foo")).unwrap();
    sim.add(twisted_spec("bar")).unwrap();
    sim.start_service();
    assert_eq!(sim.spawn_count("foo"), 1);
    assert_eq!(sim.spawn_count("bar"), 1);
}

/// Item 28: stopping the service stops everything and nothing restarts.
#[test]
fn t28_stop_service_stops_all() {
    let mut sim = running_sim(&["foo", "bar"]);
    sim.advance(secs(10));
    sim.advance(secs(1));
    let b = sim.shutdown();
    sim.advance(secs(6));
    assert!(sim.done.contains_key(&b));
    assert_eq!(sim.live_pids_of("foo") + sim.live_pids_of("bar"), 0);
    assert_eq!(sim.spawns.len(), 2);
    sim.advance(secs(100));
    assert_eq!(sim.spawns.len(), 2);
}

/// Item 29: restarting everything with one process. Twisted's `restartAll` is a
/// stop that the monitor follows with a back-off restart; tend's `restart` is
/// an explicit stop-then-start, so the process is started again as soon as the
/// old one has exited, exactly once, and two pids are never alive together.
#[test]
fn t29_restart_all_one_process() {
    let mut sim = running_sim(&["foo"]);
    sim.advance(secs(1));
    let b = sim.request(Op::Restart, &["foo"]);
    assert_eq!(sim.live_pids_of("foo"), 1);
    sim.advance(secs(1));
    assert_eq!(sim.spawn_count("foo"), 2);
    assert_eq!(sim.live_pids_of("foo"), 1);
    assert_eq!(
        sim.results(b).unwrap(),
        vec![("foo".into(), Ok(Outcome::Done))]
    );
    assert_eq!(
        sim.registry.get("foo").unwrap().restarts(),
        0,
        "a user's restart is not an automatic restart"
    );
}

/// Item 30: stopping the service cancels a pending restart.
#[test]
fn t30_stop_service_cancels_pending_restart() {
    let mut sim = running_sim(&["foo"]);
    sim.advance(secs(1));
    sim.crash("foo", ExitInfo::Code(1));
    assert!(sim.armed("foo", TimerKind::Restart));
    sim.shutdown();
    assert!(!sim.armed("foo", TimerKind::Restart));
    assert_eq!(sim.state("foo"), StateName::Stopped);
}

/// Item 31: with min_uptime 5 and initial delay 5, a quick death at t=2
/// schedules a restart for t=7; stopping the service at t=2 means nothing is
/// running at t=8.
#[test]
fn t31_stop_service_cleans_up_scheduled_restart() {
    let mut sim = Sim::new();
    sim.start_service();
    let mut s = twisted_spec("foo");
    s.backoff.min_uptime = secs(5);
    s.backoff.mode = crate::BackoffMode::Doubling {
        initial: secs(5),
        max: secs(10),
    };
    sim.add(s).unwrap();
    sim.advance(secs(1));
    sim.advance(secs(1));
    sim.crash("foo", ExitInfo::Code(0));
    assert_eq!(
        sim.registry.get("foo").unwrap().retry_at(),
        Some(Mono::from_secs(7))
    );
    sim.shutdown();
    sim.advance(secs(6));
    assert_eq!(sim.spawn_count("foo"), 1);
    assert_eq!(sim.live_pids_of("foo"), 0);
}

/// Twisted #6611 must not exist: a restart pending when the process is removed
/// never fires.
#[test]
fn twisted_6611_remove_cancels_pending_restart() {
    let mut sim = running_sim(&["foo"]);
    sim.advance(secs(1));
    sim.crash("foo", ExitInfo::Code(1));
    assert_eq!(sim.state("foo"), StateName::Backoff);
    let b = sim.request(Op::Remove, &["foo"]);
    assert_eq!(
        sim.results(b).unwrap(),
        vec![("foo".into(), Ok(Outcome::Done))]
    );
    assert!(sim.registry.get("foo").is_none());
    sim.advance(secs(3600));
    assert_eq!(sim.spawn_count("foo"), 1);
    // A new process with the same name is not hit by the old timer either.
    sim.add(twisted_spec("foo")).unwrap();
    sim.advance(secs(3600));
    assert_eq!(sim.spawn_count("foo"), 2);
}
