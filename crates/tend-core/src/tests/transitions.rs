//! The machine's transition table ([`crate::machine::TRANSITIONS`]) against
//! what the machine does: every entry is reached by a scenario here (a dead
//! entry would hide a missing assertion), and `handle` asserts in debug
//! builds that every change it makes is one of them.

use std::collections::HashSet;
use std::time::Duration;

use super::*;
use crate::machine::TRANSITIONS;
use crate::model::launch::SpawnError;
use crate::model::probe::{Check, ProbeSpec};
use crate::model::spec::{BackoffMode, Condition, Dependency, ProcessSpec, RestartPolicy};
use crate::model::status::{Event, ExitInfo, ProbeKind, StateName};
use crate::registry::Op;

fn spec(name: &str) -> ProcessSpec {
    ProcessSpec::new(n(name), vec!["x".into()])
}

fn needs(name: &str, on: &str, restart: bool) -> ProcessSpec {
    let mut s = spec(name);
    s.depends_on = vec![Dependency {
        name: n(on),
        condition: Condition::Started,
        restart,
    }];
    s
}

fn health_check() -> ProbeSpec {
    let mut p = ProbeSpec::new(Check::Tcp("127.0.0.1:1".into()));
    p.failure_threshold = 1;
    p
}

fn seen(sim: &Sim) -> Vec<(StateName, StateName)> {
    sim.events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::StateChanged { from, to, .. } => Some((*from, *to)),
            _ => None,
        })
        .collect()
}

/// Stopped, starting, running, stopping, back-off and the restart decision.
fn lifecycle() -> Vec<(StateName, StateName)> {
    let mut sim = Sim::new();
    let mut slow = spec("slow");
    slow.start_secs = secs(1);
    let mut once = spec("once");
    once.restart = RestartPolicy::Never;
    let mut giver = spec("giver");
    giver.backoff.give_up_after = Some(1);
    giver.backoff.min_uptime = secs(3600); // every death is quick
    for s in [spec("a"), slow, once, giver] {
        sim.add(s).unwrap();
    }
    sim.start_service(); // stopped -> starting (slow), -> running (the rest)
    sim.advance(secs(1)); // starting -> running (start_secs)
    sim.request(Op::Stop, &["slow"]); // running -> stopping
    sim.advance(secs(2)); // stopping -> stopped
    sim.request(Op::Start, &["slow"]);
    sim.request(Op::Stop, &["slow"]); // starting -> stopping
    sim.advance(secs(2));

    sim.crash("a", ExitInfo::Code(1)); // running -> starting (a long run: at once)
    sim.crash("a", ExitInfo::Code(1)); // running -> backoff (a quick death)
    sim.advance(secs(1)); // backoff -> starting (and on to running)
    sim.crash("a", ExitInfo::Code(1));
    sim.request(Op::Stop, &["a"]); // backoff -> stopped
    sim.request(Op::Restart, &["a"]);
    sim.advance(secs(5));
    sim.request(Op::Stop, &["a"]); // running -> stopping
    sim.request(Op::Start, &["a"]); // ... then start again:
    sim.advance(secs(2)); // stopping -> starting

    sim.crash("once", ExitInfo::Code(0)); // running -> exited
    sim.request(Op::Start, &["once"]); // exited -> starting
    sim.crash("once", ExitInfo::Code(0));
    sim.request(Op::Remove, &["once"]); // exited -> stopped (removed)

    sim.crash("giver", ExitInfo::Code(1)); // running -> fatal
    sim.request(Op::Start, &["giver"]); // fatal -> starting
    sim.crash("giver", ExitInfo::Code(1));
    sim.request(Op::Remove, &["giver"]); // fatal -> stopped (removed)
    seen(&sim)
}

/// Deaths while starting, and a spawn that can never work.
fn failed_starts() -> Vec<(StateName, StateName)> {
    let mut sim = Sim::new();
    let mut retry = spec("retry");
    retry.start_secs = secs(5);
    let mut never = spec("never");
    never.start_secs = secs(5);
    never.backoff.mode = BackoffMode::Schedule {
        steps: vec![Duration::ZERO],
        reset_after: secs(60),
    };
    let mut giver = spec("giver");
    giver.start_secs = secs(5);
    giver.backoff.give_up_after = Some(1);
    for s in [retry, never, giver, spec("missing")] {
        sim.add(s).unwrap();
    }
    sim.spawn_errors.insert(
        n("missing"),
        SpawnError {
            message: "not found".into(),
            permanent: true,
        },
    );
    sim.start_service(); // starting -> fatal (missing)
    sim.crash("retry", ExitInfo::Code(1)); // starting -> backoff
    sim.crash("never", ExitInfo::Code(1)); // starting -> exited
    sim.crash("giver", ExitInfo::Code(1)); // starting -> fatal
    seen(&sim)
}

/// Killed for failing its checks, then the restart decision.
fn recoveries() -> Vec<(StateName, StateName)> {
    let mut sim = Sim::new();
    let mut sick = spec("sick");
    sick.health = Some(health_check());
    sick.backoff.min_uptime = secs(60); // the death after the kill is quick
    let mut once = spec("once");
    once.health = Some(health_check());
    once.restart = RestartPolicy::Never;
    let mut slow = spec("slow");
    slow.ready = Some(health_check());
    slow.start_timeout = Some(secs(3));
    slow.backoff.give_up_after = Some(1);
    for s in [sick, once, slow] {
        sim.add(s).unwrap();
    }
    sim.start_service();
    sim.answer("sick", ProbeKind::Health, false); // running -> stopping
    sim.answer("once", ProbeKind::Health, false);
    sim.advance(secs(1)); // stopping -> backoff (sick), -> exited (once)
    sim.advance(secs(3)); // slow: start_timeout, starting -> stopping
    sim.advance(secs(2)); // stopping -> fatal
    seen(&sim)
}

/// Waiting for dependencies, and the `restart = true` cascade.
fn dependencies() -> Vec<(StateName, StateName)> {
    let mut sim = Sim::new();
    let mut db = spec("db");
    db.autostart = false;
    let mut once = needs("once", "ghost", false);
    once.restart = RestartPolicy::Never;
    once.autostart = false;
    let mut giver = needs("giver", "ghost", false);
    giver.backoff.give_up_after = Some(1);
    giver.autostart = false;
    let mut flaky = needs("flaky", "db", true);
    flaky.autostart = false;
    for s in [
        db,
        needs("web", "db", true),
        once,
        giver,
        flaky,
        spec("ghost"),
    ] {
        sim.add(s).unwrap();
    }
    sim.request(Op::StartNoDeps, &["web"]); // stopped -> waiting
    sim.request(Op::Stop, &["web"]); // waiting -> stopped
    sim.request(Op::StartNoDeps, &["web"]);
    sim.request(Op::Start, &["db"]); // waiting -> starting (and running)
    sim.request(Op::Restart, &["db"]); // web: running -> stopping -> waiting

    sim.advance(secs(5));
    sim.request(Op::Start, &["once", "giver"]);
    sim.crash("once", ExitInfo::Code(0));
    sim.crash("giver", ExitInfo::Code(1));
    sim.request(Op::Stop, &["ghost"]);
    sim.advance(secs(2));
    sim.request(Op::StartNoDeps, &["once", "giver"]); // exited, fatal -> waiting

    sim.request(Op::Start, &["flaky"]);
    sim.advance(secs(5));
    sim.crash("flaky", ExitInfo::Code(1)); // a long run: restarted at once
    sim.crash("flaky", ExitInfo::Code(1)); // running -> backoff
    sim.crash("db", ExitInfo::Code(1)); // flaky: backoff -> waiting
    seen(&sim)
}

#[test]
fn every_transition_in_the_table_is_reached() {
    let mut reached: HashSet<(StateName, StateName)> = HashSet::new();
    for scenario in [lifecycle, failed_starts, recoveries, dependencies] {
        reached.extend(scenario());
    }
    let table: HashSet<(StateName, StateName)> = TRANSITIONS.iter().copied().collect();
    let outside: Vec<_> = reached.difference(&table).collect();
    assert!(outside.is_empty(), "not in the table: {outside:?}");
    let dead: Vec<_> = table.difference(&reached).collect();
    assert!(dead.is_empty(), "never reached: {dead:?}");
}
