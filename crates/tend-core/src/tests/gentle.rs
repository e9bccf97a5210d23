//! `stop.command` and `stop.stdin`: the gentle way first, then the signal,
//! all within the stop timeout (virtual time).

use super::*;
use crate::model::launch::KillTarget;
use crate::model::signal::Signal;
use crate::model::status::StateName;
use crate::registry::Op;

fn sim_with(stop: impl FnOnce(&mut ProcessSpec)) -> (Sim, u32) {
    let mut sim = Sim::new();
    sim.start_service();
    let mut spec = twisted_spec("app");
    stop(&mut spec);
    sim.add(spec).expect("add");
    let pid = sim.pid("app").expect("running");
    (sim, pid)
}

fn terms(sim: &Sim, pid: u32) -> Vec<(u64, Signal)> {
    sim.kills
        .iter()
        .filter(|(_, t, _)| *t == KillTarget::Group(pid))
        .map(|(at, _, s)| (at.0.as_millis() as u64, *s))
        .collect()
}

#[test]
fn the_signal_follows_the_command_within_the_timeout() {
    let (mut sim, pid) = sim_with(|s| s.stop.command = Some(vec!["notify-stop".into()]));
    sim.request(Op::Stop, &["app"]);
    assert_eq!(sim.gentle.len(), 1);
    assert_eq!(sim.gentle[0].2, pid);
    assert!(
        terms(&sim, pid).is_empty(),
        "no signal while the command runs"
    );
    sim.advance(secs(2));
    sim.stop_command_done("app");
    assert_eq!(terms(&sim, pid), [(2000, Signal::TERM)]);
    // TERM exits it after 1 s: stopped, and the command was not killed (it ended).
    sim.advance(secs(1));
    assert_eq!(sim.state("app"), StateName::Stopped);
    assert!(sim.ended_stop_commands.is_empty());
}

#[test]
fn a_command_that_outlives_the_timeout_is_killed_and_the_signal_gets_its_own() {
    // It ignores its stop signal.
    let mut sim = Sim::new();
    sim.behaviour.insert(
        n("app"),
        Behaviour {
            term_delay: None,
            lingering_group: false,
        },
    );
    sim.start_service();
    let mut spec = twisted_spec("app");
    spec.stop.command = Some(vec!["hang".into()]);
    sim.add(spec).expect("add");
    let pid = sim.pid("app").expect("running");
    sim.request(Op::Stop, &["app"]);
    sim.advance(secs(5));
    assert_eq!(sim.ended_stop_commands.len(), 1, "the command is killed");
    assert_eq!(terms(&sim, pid), [(5000, Signal::TERM)]);
    sim.advance(secs(5));
    assert_eq!(
        terms(&sim, pid),
        [(5000, Signal::TERM), (10000, Signal::KILL)]
    );
    assert_eq!(sim.state("app"), StateName::Stopped);
}

#[test]
fn an_exit_during_the_command_is_a_stop() {
    let (mut sim, pid) = sim_with(|s| s.stop.command = Some(vec!["ask".into()]));
    sim.request(Op::Stop, &["app"]);
    sim.advance(secs(1));
    sim.crash("app", crate::model::status::ExitInfo::Code(0));
    assert_eq!(sim.state("app"), StateName::Stopped);
    assert!(terms(&sim, pid).is_empty(), "no signal was needed");
    assert_eq!(
        sim.ended_stop_commands.len(),
        1,
        "the command has nothing left to do"
    );
    // A late end of the command changes nothing.
    sim.stop_command_done("app");
    assert_eq!(sim.state("app"), StateName::Stopped);
    assert!(terms(&sim, pid).is_empty());
}

#[test]
fn stdin_waits_the_timeout_before_the_signal() {
    let (mut sim, pid) = sim_with(|s| {
        s.stop.stdin = Some("quit\n".into());
        s.stdin_pipe = true;
    });
    sim.request(Op::Stop, &["app"]);
    assert_eq!(sim.gentle.len(), 1);
    sim.advance(ms(4999));
    assert!(terms(&sim, pid).is_empty());
    sim.advance(ms(1));
    assert_eq!(terms(&sim, pid), [(5000, Signal::TERM)]);
    assert!(sim.ended_stop_commands.is_empty(), "there is no command");
    sim.advance(secs(1));
    assert_eq!(sim.state("app"), StateName::Stopped);
}
