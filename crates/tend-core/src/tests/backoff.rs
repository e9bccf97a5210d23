//! tend's own semantics: both back-off modes to the millisecond, giving up,
//! restart policies, start_secs, stop ordering and process groups.

use std::time::Duration;

use super::*;
use crate::Signal;
use crate::launcher::{KillTarget, SpawnError};
use crate::machine::TimerKind;
use crate::model::outcome::Outcome;
use crate::model::spec::{BackoffMode, ProcessSpec, RestartPolicy};
use crate::model::status::{Event, ExitInfo, StateName};
use crate::model::time::Mono;
use crate::registry::Op;

fn spec(name: &str) -> ProcessSpec {
    ProcessSpec::new(n(name), vec!["x".into()])
}

/// Crashes `name` right after each spawn, `count` times, advancing through
/// every back-off; returns the delays observed between exit and respawn.
fn crash_loop(sim: &mut Sim, name: &str, count: usize, run: Duration) -> Vec<u64> {
    let mut gaps = Vec::new();
    for _ in 0..count {
        sim.advance(run);
        let died = sim.now;
        let spawned_before = sim.spawn_count(name);
        sim.crash(name, ExitInfo::Code(1));
        let mut waited = Duration::ZERO;
        while sim.spawn_count(name) == spawned_before {
            let next = sim
                .registry
                .get(name)
                .and_then(|p| p.retry_at())
                .expect("a restart is pending");
            waited = next.since(died);
            sim.advance(next.since(sim.now));
        }
        gaps.push(u64::try_from(waited.as_millis()).unwrap());
    }
    gaps
}

#[test]
fn doubling_defaults_to_the_millisecond() {
    let mut sim = Sim::new();
    sim.start_service();
    sim.add(spec("a")).unwrap();
    let gaps = crash_loop(&mut sim, "a", 14, ms(10));
    assert_eq!(
        gaps,
        vec![
            1000, 2000, 4000, 8000, 16_000, 32_000, 64_000, 128_000, 256_000, 512_000, 1_024_000,
            2_048_000, 3_600_000, 3_600_000
        ]
    );
    assert_eq!(sim.registry.get("a").unwrap().restarts(), 14);
    // One run of at least min_uptime (1 s): restarted at once, delay reset.
    sim.advance(secs(1));
    sim.crash("a", ExitInfo::Code(1));
    assert_eq!(sim.state("a"), StateName::Running);
    assert_eq!(sim.last_spawn_at("a"), Some(sim.now));
    assert_eq!(crash_loop(&mut sim, "a", 2, ms(999)), vec![1000, 2000]);
}

#[test]
fn doubling_custom_initial_and_max() {
    let mut sim = Sim::new();
    sim.start_service();
    let mut s = spec("a");
    s.backoff.mode = BackoffMode::Doubling {
        initial: ms(250),
        max: ms(1500),
    };
    s.backoff.min_uptime = ms(500);
    sim.add(s).unwrap();
    assert_eq!(
        crash_loop(&mut sim, "a", 5, ms(100)),
        vec![250, 500, 1000, 1500, 1500]
    );
}

#[test]
fn schedule_mode_steps_then_repeats_the_last() {
    let mut sim = Sim::new();
    sim.start_service();
    let mut s = spec("a");
    s.backoff.mode = BackoffMode::default_schedule();
    sim.add(s).unwrap();
    let gaps = crash_loop(&mut sim, "a", 9, ms(10));
    assert_eq!(
        gaps,
        vec![
            100, 500, 1000, 30_000, 60_000, 300_000, 900_000, 900_000, 900_000
        ]
    );
}

#[test]
fn schedule_resets_after_a_long_run() {
    let mut sim = Sim::new();
    sim.start_service();
    let mut s = spec("a");
    s.backoff.mode = BackoffMode::Schedule {
        steps: vec![ms(100), ms(500), secs(1)],
        reset_after: secs(60),
    };
    sim.add(s).unwrap();
    assert_eq!(crash_loop(&mut sim, "a", 3, secs(10)), vec![100, 500, 1000]);
    // 59.999 s is not long enough...
    assert_eq!(crash_loop(&mut sim, "a", 1, ms(59_999)), vec![1000]);
    // ...60 s is: back to the first step, then onwards.
    assert_eq!(crash_loop(&mut sim, "a", 1, secs(60)), vec![100]);
    assert_eq!(crash_loop(&mut sim, "a", 1, secs(1)), vec![500]);
}

#[test]
fn empty_schedule_or_zero_never_restarts() {
    for steps in [vec![], vec![Duration::ZERO]] {
        let mut sim = Sim::new();
        sim.start_service();
        let mut s = spec("a");
        s.backoff.mode = BackoffMode::Schedule {
            steps,
            reset_after: secs(1800),
        };
        sim.add(s).unwrap();
        sim.advance(secs(5));
        sim.crash("a", ExitInfo::Code(1));
        assert_eq!(sim.state("a"), StateName::Exited);
        sim.advance(secs(3600));
        assert_eq!(sim.spawn_count("a"), 1);
    }
}

#[test]
fn schedule_zero_step_then_more_restarts_at_once() {
    let mut sim = Sim::new();
    sim.start_service();
    let mut s = spec("a");
    s.backoff.mode = BackoffMode::Schedule {
        steps: vec![Duration::ZERO, secs(2)],
        reset_after: secs(1800),
    };
    sim.add(s).unwrap();
    sim.advance(ms(10));
    sim.crash("a", ExitInfo::Code(1));
    assert_eq!(sim.spawn_count("a"), 1);
    // The 0 step restarts as soon as the floor allows: 100 ms after the spawn.
    sim.advance(ms(90));
    assert_eq!(sim.spawn_count("a"), 2, "the 0 step restarts at once");
    assert_eq!(crash_loop(&mut sim, "a", 2, ms(10)), vec![2000, 2000]);
    // After a run of the floor or more, it is at once.
    let mut sim = Sim::new();
    sim.start_service();
    let mut s = spec("a");
    s.backoff.mode = BackoffMode::Schedule {
        steps: vec![Duration::ZERO, secs(2)],
        reset_after: secs(1800),
    };
    sim.add(s).unwrap();
    sim.advance(ms(100));
    sim.crash("a", ExitInfo::Code(1));
    assert_eq!(sim.spawn_count("a"), 2);
}

#[test]
fn give_up_after_quick_deaths_then_manual_start_clears() {
    for mode in [BackoffMode::default(), BackoffMode::default_schedule()] {
        let mut sim = Sim::new();
        sim.start_service();
        let mut s = spec("a");
        s.backoff.mode = mode;
        s.backoff.give_up_after = Some(3);
        sim.add(s).unwrap();
        crash_loop(&mut sim, "a", 2, ms(10));
        sim.advance(ms(10));
        sim.crash("a", ExitInfo::Code(7));
        assert_eq!(sim.state("a"), StateName::Fatal);
        assert_eq!(sim.spawn_count("a"), 3);
        let err = sim.error("a").unwrap().to_string();
        assert!(
            err.contains("3 quick deaths") && err.contains("exit code 7"),
            "{err}"
        );
        assert!(
            sim.events
                .iter()
                .any(|(_, e)| matches!(e, Event::GaveUp { .. }))
        );
        sim.advance(secs(7200));
        assert_eq!(
            sim.spawn_count("a"),
            3,
            "fatal is final until a user starts it"
        );
        let b = sim.request(Op::Start, &["a"]);
        assert_eq!(
            sim.results(b).unwrap(),
            vec![("a".into(), Ok(Outcome::Done))]
        );
        assert_eq!(sim.registry.get("a").unwrap().quick_deaths(), 0);
        assert_eq!(sim.error("a"), None);
        // The count starts over: two more quick deaths are not enough.
        crash_loop(&mut sim, "a", 2, ms(10));
        assert_eq!(sim.state("a"), StateName::Running);
    }
}

#[test]
fn a_long_run_resets_the_quick_death_count() {
    let mut sim = Sim::new();
    sim.start_service();
    let mut s = spec("a");
    s.backoff.give_up_after = Some(2);
    sim.add(s).unwrap();
    crash_loop(&mut sim, "a", 1, ms(10));
    crash_loop(&mut sim, "a", 1, secs(2)); // not quick
    crash_loop(&mut sim, "a", 1, ms(10));
    assert_eq!(sim.state("a"), StateName::Running);
}

#[test]
fn user_stop_is_final_and_cancels_backoff() {
    let mut sim = Sim::new();
    sim.start_service();
    sim.add(spec("a")).unwrap();
    sim.advance(ms(10));
    sim.crash("a", ExitInfo::Code(1));
    assert_eq!(sim.state("a"), StateName::Backoff);
    let b = sim.request(Op::Stop, &["a"]);
    assert_eq!(
        sim.results(b).unwrap(),
        vec![("a".into(), Ok(Outcome::Done))]
    );
    assert_eq!(sim.state("a"), StateName::Stopped);
    assert!(!sim.armed("a", TimerKind::Restart));
    sim.advance(secs(7200));
    assert_eq!(sim.spawn_count("a"), 1);

    // Stopping a running process: it exits on TERM and is never restarted.
    sim.request(Op::Start, &["a"]);
    sim.advance(secs(30));
    sim.request(Op::Stop, &["a"]);
    sim.advance(secs(7200));
    assert_eq!(sim.spawn_count("a"), 2);
    assert_eq!(sim.state("a"), StateName::Stopped);
}

#[test]
fn restart_policies() {
    let cases = [
        (RestartPolicy::Always, ExitInfo::Code(0), true),
        (RestartPolicy::Always, ExitInfo::Code(1), true),
        (RestartPolicy::OnFailure, ExitInfo::Code(0), false),
        (RestartPolicy::OnFailure, ExitInfo::Code(3), false), // 3 is declared a success below
        (RestartPolicy::OnFailure, ExitInfo::Code(1), true),
        (
            RestartPolicy::OnFailure,
            ExitInfo::Signal(Signal::KILL),
            true,
        ),
        (RestartPolicy::Never, ExitInfo::Code(1), false),
    ];
    for (policy, exit, restarts) in cases {
        let mut sim = Sim::new();
        sim.start_service();
        let mut s = spec("a");
        s.restart = policy;
        s.success_exit_codes = vec![0, 3];
        sim.add(s).unwrap();
        sim.advance(secs(5));
        sim.crash("a", exit);
        let want = if restarts {
            StateName::Running
        } else {
            StateName::Exited
        };
        assert_eq!(sim.state("a"), want, "{policy:?} {exit:?}");
        assert_eq!(sim.registry.get("a").unwrap().last_exit(), Some(exit));
    }
}

#[test]
fn start_secs_and_linear_backoff_like_supervisor() {
    let mut sim = Sim::new();
    sim.start_service();
    let mut s = spec("a");
    s.start_secs = secs(1);
    s.backoff.mode = BackoffMode::Linear { step: secs(1) };
    s.backoff.min_uptime = Duration::ZERO;
    s.backoff.give_up_after = Some(4); // startretries = 3
    s.restart = RestartPolicy::Never; // a failed start is retried anyway
    sim.add(s).unwrap();
    assert_eq!(sim.state("a"), StateName::Starting);
    // Fails during starting: back-off 1 s, 2 s, 3 s, then fatal.
    assert_eq!(
        crash_loop(&mut sim, "a", 3, ms(500)),
        vec![1000, 2000, 3000]
    );
    sim.advance(ms(500));
    sim.crash("a", ExitInfo::Code(1));
    assert_eq!(sim.state("a"), StateName::Fatal);
    assert_eq!(sim.spawn_count("a"), 4);

    // A start that gets past start_secs becomes running and forgets the failures.
    sim.request(Op::Start, &["a"]);
    sim.advance(ms(999));
    assert_eq!(sim.state("a"), StateName::Starting);
    sim.advance(ms(1));
    assert_eq!(sim.state("a"), StateName::Running);
    sim.advance(secs(5));
    sim.crash("a", ExitInfo::Code(1));
    assert_eq!(
        sim.state("a"),
        StateName::Exited,
        "restart = never after a good start"
    );
}

#[test]
fn start_waits_for_start_secs_and_reports_failure() {
    let mut sim = Sim::new();
    let mut s = spec("a");
    s.start_secs = secs(2);
    sim.add(s).unwrap();
    let b = sim.request(Op::Start, &["a"]);
    assert!(sim.results(b).is_none(), "still starting");
    sim.advance(secs(2));
    assert_eq!(
        sim.results(b).unwrap(),
        vec![("a".into(), Ok(Outcome::Done))]
    );

    sim.request(Op::Stop, &["a"]);
    sim.advance(secs(1));
    let b = sim.request(Op::Start, &["a"]);
    sim.advance(secs(1));
    sim.crash("a", ExitInfo::Code(2));
    let r = sim.results(b).unwrap();
    assert!(
        r[0].1.as_ref().unwrap_err().contains("exit code 2"),
        "{r:?}"
    );
}

#[test]
fn permanent_spawn_error_is_fatal_transient_backs_off() {
    let mut sim = Sim::new();
    sim.start_service();
    sim.spawn_errors.insert(
        n("a"),
        SpawnError {
            message: "command \"nope\" not found on PATH".into(),
            permanent: true,
        },
    );
    sim.add(spec("a")).unwrap();
    assert_eq!(sim.state("a"), StateName::Fatal);
    assert!(sim.error("a").unwrap().contains("not found"));
    sim.advance(secs(3600));
    assert_eq!(sim.state("a"), StateName::Fatal);

    sim.spawn_errors.insert(
        n("b"),
        SpawnError {
            message: "EAGAIN".into(),
            permanent: false,
        },
    );
    sim.add(spec("b")).unwrap();
    assert_eq!(sim.state("b"), StateName::Backoff);
    let st = sim
        .registry
        .status(sim.now, |_| jiff::Timestamp::UNIX_EPOCH);
    let b = st.iter().find(|s| s.name.as_str() == "b").unwrap();
    assert_eq!(b.next_restart_in_ms, Some(1000));
    assert!(b.error.as_deref().unwrap().contains("EAGAIN"));
    sim.spawn_errors.remove(&n("b"));
    sim.advance(secs(1));
    assert_eq!(sim.state("b"), StateName::Running);
    assert_eq!(sim.error("b"), None);
}

#[test]
fn stop_all_goes_in_reverse_priority_one_level_at_a_time() {
    let mut sim = Sim::new();
    for (name, prio) in [("db", 1), ("app", 5), ("web", 10), ("web2", 10)] {
        let mut s = spec(name);
        s.priority = prio;
        sim.add(s).unwrap();
    }
    sim.start_service();
    let order: Vec<String> = sim.spawns.iter().map(|s| s.spec.name.to_string()).collect();
    assert_eq!(
        order,
        ["db", "app", "web", "web2"],
        "lower priority starts first"
    );
    sim.advance(secs(10));
    let b = sim.shutdown();
    let termed = |sim: &Sim| -> Vec<u32> {
        sim.kills
            .iter()
            .filter(|k| k.2 == Signal::TERM)
            .map(|k| match k.1 {
                KillTarget::Group(p) | KillTarget::Process(p) => p,
            })
            .collect()
    };
    let pid_of = |sim: &Sim, name: &str| {
        sim.spawns
            .iter()
            .find(|s| s.spec.name.as_str() == name)
            .unwrap()
            .pid
    };
    assert_eq!(
        termed(&sim),
        vec![pid_of(&sim, "web2"), pid_of(&sim, "web")],
        "reverse of start order"
    );
    sim.advance(secs(1)); // web and web2 exit
    assert_eq!(termed(&sim).len(), 3);
    assert_eq!(termed(&sim)[2], pid_of(&sim, "app"));
    sim.advance(secs(1));
    assert_eq!(termed(&sim)[3], pid_of(&sim, "db"));
    assert!(sim.results(b).is_none());
    sim.advance(secs(1));
    assert_eq!(sim.results(b).unwrap().len(), 4);
    assert!(!sim.registry.any_up());
}

#[test]
fn stopping_waits_until_the_group_is_empty() {
    let mut sim = Sim::new();
    sim.behaviour.insert(
        n("a"),
        Behaviour {
            term_delay: Some(secs(1)),
            lingering_group: true,
        },
    );
    sim.start_service();
    sim.add(spec("a")).unwrap();
    sim.advance(secs(3));
    let b = sim.request(Op::Stop, &["a"]);
    sim.advance(secs(1)); // the leader exits, a member lingers
    assert_eq!(sim.state("a"), StateName::Stopping);
    assert_eq!(sim.pid("a"), None);
    assert!(sim.results(b).is_none());
    sim.advance(secs(4)); // stop timeout: KILL the group
    assert!(
        sim.kills
            .iter()
            .any(|k| k.1 == KillTarget::Group(101) && k.2 == Signal::KILL)
    );
    assert_eq!(sim.state("a"), StateName::Stopped);
    assert_eq!(
        sim.results(b).unwrap(),
        vec![("a".into(), Ok(Outcome::Done))]
    );
}

#[test]
fn leftovers_of_a_crashed_leader_are_killed() {
    let mut sim = Sim::new();
    sim.behaviour.insert(
        n("a"),
        Behaviour {
            term_delay: Some(secs(1)),
            lingering_group: true,
        },
    );
    sim.start_service();
    sim.add(spec("a")).unwrap();
    sim.advance(secs(3));
    sim.crash("a", ExitInfo::Code(1));
    assert!(sim.kills.iter().any(|k| k.0 == Mono::from_secs(3)
        && k.1 == KillTarget::Group(101)
        && k.2 == Signal::KILL));
}

#[test]
fn restart_while_stopping_and_stop_while_restarting() {
    let mut sim = Sim::new();
    sim.start_service();
    sim.add(spec("a")).unwrap();
    sim.advance(secs(3));
    let stop = sim.request(Op::Stop, &["a"]);
    let start = sim.request(Op::Start, &["a"]);
    sim.advance(secs(1));
    assert_eq!(sim.state("a"), StateName::Running);
    assert_eq!(sim.spawn_count("a"), 2);
    assert!(
        sim.results(stop).unwrap()[0].1.is_err(),
        "the stop was superseded"
    );
    assert_eq!(sim.results(start).unwrap()[0].1, Ok(Outcome::Done));
    // A stop during a restart wins: no new spawn.
    sim.request(Op::Restart, &["a"]);
    sim.request(Op::Stop, &["a"]);
    sim.advance(secs(10));
    assert_eq!(sim.spawn_count("a"), 2);
    assert_eq!(sim.state("a"), StateName::Stopped);
}

#[test]
fn signal_goes_to_the_main_pid_only_when_up() {
    let mut sim = Sim::new();
    sim.start_service();
    sim.add(spec("a")).unwrap();
    let b = sim.request(Op::Signal(Signal::HUP), &["a"]);
    assert_eq!(sim.results(b).unwrap()[0].1, Ok(Outcome::Done));
    assert_eq!(sim.kills.last().unwrap().1, KillTarget::Process(101));
    sim.request(Op::Stop, &["a"]);
    sim.advance(secs(2));
    let b = sim.request(Op::Signal(Signal::HUP), &["a"]);
    assert_eq!(sim.results(b).unwrap()[0].1, Err("a: not running".into()));
}

#[test]
fn resolve_patterns_in_priority_order() {
    let mut sim = Sim::new();
    for (name, prio, group) in [
        ("web-1", 5, "front"),
        ("web-2", 5, "front"),
        ("db", 1, "db"),
    ] {
        let mut s = spec(name);
        s.priority = prio;
        s.group = n(group);
        sim.add(s).unwrap();
    }
    let r = |p: &[&str]| {
        sim.registry
            .resolve(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    };
    let names = |v: Vec<crate::Name>| v.into_iter().map(|n| n.to_string()).collect::<Vec<_>>();
    assert_eq!(names(r(&["all"]).unwrap()), ["db", "web-1", "web-2"]);
    assert_eq!(names(r(&["front:*"]).unwrap()), ["web-1", "web-2"]);
    assert_eq!(
        names(r(&["web-*", "db", "web-1"]).unwrap()),
        ["db", "web-1", "web-2"]
    );
    assert_eq!(
        r(&["nope"]).unwrap_err().to_string(),
        "no such process: nope"
    );
    assert!(
        r(&["zz*"])
            .unwrap_err()
            .to_string()
            .contains("no process matches")
    );
}

/// A program that exits at once, restarted by a mode that would restart it
/// at once (here Supervisor's `startsecs=0`): `n` runs of `run` each, and
/// the spawn times.
fn hot_loop(floor: Duration, run: Duration, n: usize) -> (Sim, Vec<u64>) {
    let mut sim = Sim::new();
    sim.start_service();
    let mut s = spec("hot");
    s.backoff.mode = BackoffMode::Linear { step: secs(1) };
    s.backoff.min_uptime = Duration::ZERO;
    s.backoff.floor = floor;
    sim.add(s).unwrap();
    for _ in 0..n {
        sim.advance(run);
        sim.crash("hot", ExitInfo::Code(0));
        // Up to the next spawn, whenever it is due.
        if let Some(at) = sim.registry.get("hot").and_then(|p| p.retry_at()) {
            sim.advance(at.since(sim.now));
        }
    }
    let times = sim.spawns_at("hot");
    (sim, times)
}

#[test]
fn a_program_that_exits_at_once_is_respawned_no_faster_than_the_floor() {
    // 100 ms (the default): one spawn per 100 ms, not as fast as it exits.
    let (sim, times) = hot_loop(Duration::from_millis(100), ms(2), 50);
    assert_eq!(times.len(), 51);
    for w in times.windows(2) {
        assert_eq!(w[1] - w[0], 100, "{times:?}");
    }
    // 10 s of this is 100 spawns, where it used to be thousands.
    assert_eq!(sim.now, Mono::ZERO + ms(5000));

    // supervisord's pace for a supervisord.conf: one a second.
    let (_, times) = hot_loop(secs(1), ms(10), 10);
    assert!(times.windows(2).all(|w| w[1] - w[0] == 1000), "{times:?}");

    // A run that lasts the floor is restarted at once, as before.
    let (_, times) = hot_loop(ms(100), ms(150), 3);
    assert!(times.windows(2).all(|w| w[1] - w[0] == 150), "{times:?}");
}

#[test]
fn the_floor_shows_as_exited_and_a_stop_cancels_it() {
    let mut sim = Sim::new();
    sim.start_service();
    let mut s = spec("a");
    s.backoff.mode = BackoffMode::Linear { step: secs(1) };
    s.backoff.min_uptime = Duration::ZERO;
    sim.add(s).unwrap();
    sim.advance(ms(10));
    sim.crash("a", ExitInfo::Code(3));
    // Supervisor shows a process between its exit and its restart as EXITED.
    assert_eq!(sim.state("a"), StateName::Exited);
    assert!(sim.armed("a", TimerKind::Restart));
    sim.request(Op::Stop, &["a"]);
    assert_eq!(sim.state("a"), StateName::Stopped);
    sim.advance(secs(5));
    assert_eq!(sim.spawn_count("a"), 1, "a user's stop is final");

    // A failed start (start_secs) that the floor holds back is back-off.
    let mut s = spec("b");
    s.start_secs = secs(1);
    s.backoff.mode = BackoffMode::Doubling {
        initial: ms(1),
        max: ms(1),
    };
    sim.add(s).unwrap();
    sim.advance(ms(10));
    sim.crash("b", ExitInfo::Code(1));
    assert_eq!(sim.state("b"), StateName::Backoff);
}

#[test]
fn a_respawn_loop_is_told_once_when_it_begins_and_once_when_it_ends() {
    let (mut sim, _) = hot_loop(ms(100), ms(1), 40);
    let told = |sim: &Sim| {
        sim.events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::RespawnLoop { floor_ms, .. } => Some(format!("loop {floor_ms}")),
                Event::RespawnLoopEnded { spawns, .. } => Some(format!("ended {spawns}")),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(told(&sim), ["loop 100"]);
    // A run just over the floor (a slow `true` on a loaded machine) does
    // not end it: it is restarted at once, still in the loop.
    sim.advance(ms(150));
    sim.crash("hot", ExitInfo::Code(0));
    assert_eq!(told(&sim), ["loop 100"]);
    // A run of five floors ends it, with the count.
    sim.advance(ms(500));
    sim.crash("hot", ExitInfo::Code(0));
    assert_eq!(told(&sim), ["loop 100", "ended 40"]);
    // A new loop is told again; a user's stop ends it.
    for _ in 0..3 {
        sim.advance(ms(1));
        sim.crash("hot", ExitInfo::Code(0));
        let at = sim.registry.get("hot").and_then(|p| p.retry_at()).unwrap();
        sim.advance(at.since(sim.now));
    }
    sim.request(Op::Stop, &["hot"]);
    sim.advance(secs(2));
    assert_eq!(told(&sim), ["loop 100", "ended 40", "loop 100", "ended 3"]);
}

#[test]
fn a_name_with_glob_characters_is_itself_first() {
    let mut sim = Sim::new();
    for name in ["a*b", "axb", "web[1]", "web1", "test_öäü"] {
        let mut s = spec(name);
        s.group = n("g");
        sim.add(s).unwrap();
    }
    let r = |p: &[&str]| {
        sim.registry
            .resolve(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .map(|v| v.into_iter().map(|n| n.to_string()).collect::<Vec<_>>())
    };
    assert_eq!(r(&["a*b"]).unwrap(), ["a*b"]);
    assert_eq!(r(&["web[1]"]).unwrap(), ["web[1]"]);
    assert_eq!(r(&["g:web[1]"]).unwrap(), ["web[1]"]);
    assert_eq!(r(&["test_öäü"]).unwrap(), ["test_öäü"]);
    // A glob that names no process is still a glob.
    assert_eq!(r(&["a?b"]).unwrap(), ["a*b", "axb"]);
}
