//! Dependencies, readiness and health under virtual time: ordering, waiting,
//! cascades (Procmon's tree), thresholds, start timeouts and the watchdog.

use super::*;
use crate::model::probe::{Check, ProbeSpec};
use crate::model::spec::{Condition, Dependency, ProcessSpec, RestartPolicy};
use crate::model::status::{ExitInfo, StateName};
use crate::model::status::{Health, ProbeKind};
use crate::model::time::Mono;
use crate::registry::Op;

fn spec(name: &str) -> ProcessSpec {
    ProcessSpec::new(n(name), vec!["x".into()])
}

fn probe(period_s: u64) -> ProbeSpec {
    let mut p = ProbeSpec::new(Check::Tcp("127.0.0.1:1".into()));
    p.period = secs(period_s);
    p
}

fn dep(name: &str, condition: Condition, restart: bool) -> Dependency {
    Dependency {
        name: n(name),
        condition,
        restart,
    }
}

fn with_deps(name: &str, deps: Vec<Dependency>) -> ProcessSpec {
    let mut s = spec(name);
    s.depends_on = deps;
    s
}

fn waiting_for(sim: &Sim, name: &str) -> Option<String> {
    sim.registry
        .status(sim.now, |_| jiff::Timestamp::UNIX_EPOCH)
        .into_iter()
        .find(|s| s.name.as_str() == name)
        .and_then(|s| s.waiting_for)
}

#[test]
fn a_dependent_waits_until_its_dependency_is_ready() {
    let mut sim = Sim::new();
    let mut db = spec("db");
    db.ready = Some(probe(1));
    sim.add(db).unwrap();
    sim.add(with_deps("web", vec![dep("db", Condition::Ready, false)]))
        .unwrap();
    sim.add(spec("other")).unwrap();
    sim.start_service();
    // Independent processes start at once, in parallel.
    assert_eq!(sim.state("db"), StateName::Starting);
    assert_eq!(sim.state("other"), StateName::Running);
    assert_eq!(sim.state("web"), StateName::Waiting);
    assert_eq!(waiting_for(&sim, "web").as_deref(), Some("db (ready)"));
    // Readiness fails once: still starting, probed again a period later.
    assert_eq!(sim.answer("db", ProbeKind::Ready, false), 1);
    assert_eq!(sim.state("web"), StateName::Waiting);
    sim.advance(secs(1));
    assert_eq!(sim.answer("db", ProbeKind::Ready, true), 1);
    assert_eq!(sim.state("db"), StateName::Running);
    assert_eq!(
        sim.state("web"),
        StateName::Running,
        "started as soon as db was ready"
    );
    assert_eq!(sim.spawn_count("web"), 1);
}

#[test]
fn conditions_started_completed_and_healthy() {
    let mut sim = Sim::new();
    let mut migrate = spec("migrate");
    migrate.restart = RestartPolicy::Never;
    sim.add(migrate).unwrap();
    let mut db = spec("db");
    db.health = Some(probe(5));
    sim.add(db).unwrap();
    sim.add(with_deps(
        "early",
        vec![dep("db", Condition::Started, false)],
    ))
    .unwrap();
    sim.add(with_deps(
        "web",
        vec![
            dep("migrate", Condition::Completed, false),
            dep("db", Condition::Healthy, false),
        ],
    ))
    .unwrap();
    sim.start_service();
    assert_eq!(
        sim.state("early"),
        StateName::Running,
        "started: db was spawned"
    );
    assert_eq!(
        waiting_for(&sim, "web").as_deref(),
        Some("migrate (completed), db (healthy)")
    );
    sim.advance(secs(1));
    sim.crash("migrate", ExitInfo::Code(0));
    assert_eq!(sim.state("migrate"), StateName::Exited);
    assert_eq!(waiting_for(&sim, "web").as_deref(), Some("db (healthy)"));
    sim.answer("db", ProbeKind::Health, true);
    assert_eq!(sim.state("web"), StateName::Running);
}

#[test]
fn a_failed_dependency_blocks_and_a_start_request_says_why() {
    let mut sim = Sim::new();
    let mut migrate = spec("migrate");
    migrate.restart = RestartPolicy::Never;
    sim.add(migrate).unwrap();
    sim.add(with_deps(
        "web",
        vec![dep("migrate", Condition::Completed, false)],
    ))
    .unwrap();
    let b = sim.request(Op::Start, &["web"]);
    assert_eq!(
        sim.state("migrate"),
        StateName::Running,
        "starting web started its dependency first"
    );
    assert!(sim.results(b).is_none());
    sim.advance(secs(1));
    sim.crash("migrate", ExitInfo::Code(3));
    let r = sim.results(b).unwrap();
    // The dependency started on web's behalf is reported too.
    assert!(r.iter().any(|(n, _)| n == "migrate"), "{r:?}");
    let web = r.iter().find(|(n, _)| n == "web").expect("web is reported");
    assert!(
        web.1
            .as_ref()
            .unwrap_err()
            .contains("migrate exited without success"),
        "{r:?}"
    );
    assert_eq!(sim.state("web"), StateName::Waiting);
    // Fixing it and running the migration again lets web start.
    sim.request(Op::Start, &["migrate"]);
    sim.advance(secs(1));
    sim.crash("migrate", ExitInfo::Code(0));
    assert_eq!(sim.state("web"), StateName::Running);
}

/// One rule for start and restart: the stopped dependencies of the targets
/// are started first, and every process acted on is in the results.
#[test]
fn start_and_restart_both_start_stopped_dependencies_and_report_them() {
    for op in [Op::Start, Op::Restart] {
        let mut sim = Sim::new();
        sim.add(spec("db")).unwrap();
        sim.add(with_deps(
            "worker",
            vec![dep("db", Condition::Started, false)],
        ))
        .unwrap();
        sim.start_service();
        assert_eq!(sim.state("worker"), StateName::Running);
        sim.request(Op::Stop, &["db"]);
        sim.advance(secs(1));
        assert_eq!(sim.state("db"), StateName::Stopped);
        assert_eq!(
            sim.state("worker"),
            StateName::Running,
            "a plain edge: worker stays"
        );
        let b = sim.request(op, &["worker"]);
        sim.advance(secs(2));
        let r = sim.results(b).expect("the batch is done");
        assert_eq!(sim.state("db"), StateName::Running, "{op:?}");
        assert_eq!(sim.state("worker"), StateName::Running, "{op:?}");
        let mut names: Vec<&str> = r.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["db", "worker"], "{op:?}: {r:?}");
        assert!(r.iter().all(|(_, res)| res.is_ok()), "{op:?}: {r:?}");
    }
}

#[test]
fn no_deps_start_waits_without_starting_dependencies() {
    let mut sim = Sim::new();
    sim.add(spec("db")).unwrap();
    sim.add(with_deps("web", vec![dep("db", Condition::Ready, false)]))
        .unwrap();
    sim.request(Op::StartNoDeps, &["web"]);
    assert_eq!(sim.state("db"), StateName::Stopped);
    assert_eq!(sim.state("web"), StateName::Waiting);
    assert!(waiting_for(&sim, "web").unwrap().contains("db is stopped"));
    sim.request(Op::Start, &["db"]);
    assert_eq!(sim.state("web"), StateName::Running);
}

/// A -> B -> C with restart edges: killing A stops B and C, and they come
/// back in order once A is ready again; each is stopped and started once.
#[test]
fn cascade_down_the_tree_and_back_up_in_order() {
    let mut sim = Sim::new();
    for (name, parent) in [("a", None), ("b", Some("a")), ("c", Some("b"))] {
        let mut s = spec(name);
        s.ready = Some(probe(1));
        if let Some(p) = parent {
            s.depends_on = vec![dep(p, Condition::Ready, true)];
        }
        sim.add(s).unwrap();
    }
    sim.start_service();
    sim.answer("a", ProbeKind::Ready, true);
    sim.answer("b", ProbeKind::Ready, true);
    sim.answer("c", ProbeKind::Ready, true);
    for p in ["a", "b", "c"] {
        assert_eq!(sim.state(p), StateName::Running, "{p}");
    }
    sim.advance(secs(30));
    sim.crash("a", ExitInfo::Signal(crate::Signal::KILL));
    // a restarts at once (it ran long enough); b and c are stopped.
    assert_eq!(sim.state("a"), StateName::Starting);
    assert_eq!(sim.state("b"), StateName::Stopping);
    sim.advance(secs(1)); // b and c exit on TERM (1 s)
    assert_eq!(sim.state("b"), StateName::Waiting);
    assert_eq!(sim.state("c"), StateName::Waiting);
    sim.answer("a", ProbeKind::Ready, true);
    assert_eq!(
        sim.state("b"),
        StateName::Starting,
        "b starts once a is ready"
    );
    assert_eq!(sim.state("c"), StateName::Waiting, "c waits for b");
    sim.answer("b", ProbeKind::Ready, true);
    assert_eq!(sim.state("c"), StateName::Starting);
    sim.answer("c", ProbeKind::Ready, true);
    assert_eq!(
        (
            sim.spawn_count("a"),
            sim.spawn_count("b"),
            sim.spawn_count("c")
        ),
        (2, 2, 2)
    );
    let b_start = sim.last_spawn_at("b").unwrap();
    let c_start = sim.last_spawn_at("c").unwrap();
    assert!(b_start <= c_start);
}

#[test]
fn without_restart_edges_dependents_keep_running() {
    let mut sim = Sim::new();
    sim.add(spec("a")).unwrap();
    sim.add(with_deps("b", vec![dep("a", Condition::Ready, false)]))
        .unwrap();
    sim.start_service();
    sim.advance(secs(30));
    sim.crash("a", ExitInfo::Code(1));
    assert_eq!(sim.state("b"), StateName::Running);
    assert_eq!(sim.spawn_count("b"), 1);
}

#[test]
fn a_user_restart_of_a_dependency_cascades_once() {
    let mut sim = Sim::new();
    sim.add(spec("a")).unwrap();
    sim.add(with_deps("b", vec![dep("a", Condition::Ready, true)]))
        .unwrap();
    sim.add(with_deps(
        "c",
        vec![
            dep("a", Condition::Ready, true),
            dep("b", Condition::Ready, true),
        ],
    ))
    .unwrap();
    sim.start_service();
    sim.advance(secs(5));
    sim.request(Op::Restart, &["a"]);
    sim.advance(secs(5));
    for p in ["a", "b", "c"] {
        assert_eq!(sim.state(p), StateName::Running, "{p}");
        assert_eq!(sim.spawn_count(p), 2, "{p} stopped and started once");
    }
}

#[test]
fn stop_all_goes_in_reverse_dependency_order() {
    let mut sim = Sim::new();
    // Priorities alone would stop db last anyway; make them disagree.
    let mut db = spec("db");
    db.priority = 50;
    sim.add(db).unwrap();
    let mut web = with_deps("web", vec![dep("db", Condition::Started, false)]);
    web.priority = 1;
    sim.add(web).unwrap();
    sim.start_service();
    sim.advance(secs(5));
    let b = sim.shutdown();
    let web_pid = sim.pid("web").unwrap();
    let db_pid = sim.pid("db").unwrap();
    let firsts: Vec<u32> = sim
        .kills
        .iter()
        .map(|k| match k.1 {
            crate::launcher::KillTarget::Group(p) | crate::launcher::KillTarget::Process(p) => p,
        })
        .collect();
    assert_eq!(firsts, vec![web_pid], "the dependent first, alone");
    sim.advance(secs(1));
    assert_eq!(sim.kills.len(), 2);
    sim.advance(secs(1));
    assert!(sim.done.contains_key(&b));
    let _ = db_pid;
}

#[test]
fn health_failures_kill_and_restart_through_the_backoff() {
    let mut sim = Sim::new();
    let mut s = spec("a");
    let mut h = probe(10);
    h.failure_threshold = 3;
    h.initial_delay = secs(5);
    s.health = Some(h);
    sim.add(s).unwrap();
    sim.start_service();
    assert_eq!(
        sim.answer("a", ProbeKind::Health, true),
        0,
        "not before initial_delay"
    );
    sim.advance(secs(5));
    sim.answer("a", ProbeKind::Health, true);
    let st = |sim: &Sim| sim.registry.get("a").unwrap().health();
    assert_eq!(st(&sim), Health::Healthy);
    for i in 0..3 {
        sim.advance(secs(10));
        assert_eq!(sim.answer("a", ProbeKind::Health, false), 1, "run {i}");
    }
    assert_eq!(st(&sim), Health::Unhealthy);
    assert_eq!(
        sim.state("a"),
        StateName::Stopping,
        "killed although it still runs"
    );
    sim.advance(secs(1));
    // It ran 35 s (more than min_uptime): restarted at once.
    assert_eq!(sim.spawn_count("a"), 2);
    assert!(sim.error("a").is_none() || sim.state("a") == StateName::Running);
    assert_eq!(sim.registry.get("a").unwrap().restarts(), 1);
}

#[test]
fn start_timeout_kills_a_process_that_never_gets_ready() {
    let mut sim = Sim::new();
    let mut s = spec("a");
    s.ready = Some(probe(1));
    s.start_timeout = Some(secs(10));
    sim.add(s).unwrap();
    sim.start_service();
    for _ in 0..9 {
        sim.answer("a", ProbeKind::Ready, false);
        sim.advance(secs(1));
    }
    assert_eq!(sim.state("a"), StateName::Starting);
    sim.advance(secs(1));
    assert_eq!(sim.state("a"), StateName::Stopping);
    sim.advance(secs(1));
    // A failed start is a quick death: it backs off (1 s).
    assert_eq!(sim.state("a"), StateName::Backoff);
    assert_eq!(sim.registry.get("a").unwrap().quick_deaths(), 1);
    assert!(sim.error("a").unwrap().contains("start_timeout"));
    sim.advance(secs(1));
    assert_eq!(sim.spawn_count("a"), 2);
}

#[test]
fn notify_ready_status_and_watchdog() {
    let mut sim = Sim::new();
    let mut s = spec("a");
    s.notify = true;
    s.watchdog = Some(secs(3));
    s.backoff.reset_on_ready = true;
    sim.add(s).unwrap();
    sim.add(with_deps("b", vec![dep("a", Condition::Ready, false)]))
        .unwrap();
    sim.start_service();
    assert_eq!(sim.state("a"), StateName::Starting);
    sim.notify("a", b"STATUS=loading");
    assert_eq!(
        sim.registry.get("a").unwrap().status_text(),
        Some("loading")
    );
    sim.notify("a", b"READY=1");
    assert_eq!(sim.state("a"), StateName::Running);
    assert_eq!(sim.state("b"), StateName::Running);
    // Pings keep it alive...
    for _ in 0..5 {
        sim.advance(secs(2));
        sim.notify("a", b"WATCHDOG=1");
    }
    assert_eq!(sim.state("a"), StateName::Running);
    // ...silence does not.
    sim.advance(secs(3));
    assert_eq!(sim.state("a"), StateName::Stopping);
    assert!(sim.error("a").unwrap().contains("watchdog"));
    sim.advance(secs(1));
    assert_eq!(sim.spawn_count("a"), 2);
    assert_eq!(sim.last_spawn_at("a"), Some(Mono::from_secs(14)));
}

#[test]
fn reset_on_ready_resets_the_backoff() {
    let mut sim = Sim::new();
    let mut s = spec("a");
    s.ready = Some(probe(1));
    s.backoff.reset_on_ready = true;
    s.backoff.min_uptime = secs(60);
    sim.add(s).unwrap();
    sim.start_service();
    // Two quick deaths before ready: 1 s, 2 s.
    for wait in [1, 2] {
        sim.advance(ms(100));
        sim.crash("a", ExitInfo::Code(1));
        sim.advance(secs(wait));
    }
    assert_eq!(
        sim.registry.get("a").unwrap().current_delay(),
        Some(secs(4))
    );
    sim.answer("a", ProbeKind::Ready, true);
    assert_eq!(
        sim.registry.get("a").unwrap().current_delay(),
        Some(secs(1)),
        "ready reset it"
    );
    assert_eq!(sim.registry.get("a").unwrap().quick_deaths(), 0);
}

#[test]
fn stopping_announced_over_notify_shows_in_status() {
    let mut sim = Sim::new();
    let mut s = spec("a");
    s.notify = true;
    sim.add(s).unwrap();
    sim.start_service();
    sim.notify("a", b"READY=1");
    let state = |sim: &Sim| {
        sim.registry
            .status(sim.now, |_| jiff::Timestamp::UNIX_EPOCH)[0]
            .state
    };
    assert_eq!(state(&sim), StateName::Running);
    sim.notify("a", b"STOPPING=1");
    assert_eq!(state(&sim), StateName::Stopping);
}
