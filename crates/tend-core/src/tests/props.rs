//! Random input sequences against the registry, checking the invariants that
//! must hold whatever users and children do.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::model::spec::{BackoffMode, ProcessSpec};
use crate::model::status::{Event, ExitInfo};
use crate::registry::Op;

const NAMES: [&str; 3] = ["a", "b", "c"];

#[derive(Debug, Clone)]
enum Step {
    Start(usize),
    Stop(usize),
    Restart(usize),
    Crash(usize, i32),
    Advance(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..3usize).prop_map(Step::Start),
        (0..3usize).prop_map(Step::Stop),
        (0..3usize).prop_map(Step::Restart),
        (0..3usize, 0..3i32).prop_map(|(i, c)| Step::Crash(i, c)),
        (0..8_000u64).prop_map(Step::Advance),
        (0..200u64).prop_map(Step::Advance),
    ]
}

fn behaviour() -> impl Strategy<Value = Behaviour> {
    (prop::option::of(0..7_000u64), any::<bool>()).prop_map(|(d, lingering_group)| Behaviour {
        term_delay: d.map(Duration::from_millis),
        lingering_group,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn invariants_hold(
        steps in prop::collection::vec(step(), 1..60),
        behaviours in prop::collection::vec(behaviour(), 3),
        schedule in any::<bool>(),
    ) {
        let mut sim = Sim::new();
        for (i, name) in NAMES.iter().enumerate() {
            let mut s = ProcessSpec::new(n(name), vec!["x".into()]);
            s.priority = i32::try_from(i % 2).unwrap();
            if schedule {
                s.backoff.mode = BackoffMode::Schedule { steps: vec![ms(100), ms(500), secs(1), secs(30)], reset_after: secs(20) };
            }
            sim.behaviour.insert(n(name), behaviours[i]);
            sim.add(s).unwrap();
        }
        let mut batches = vec![sim.start_service()];
        // Names a user stopped and has not started since.
        let mut held: HashSet<&str> = HashSet::new();
        let mut spawns_when_held: HashMap<&str, usize> = HashMap::new();
        // Per name, the last automatic delay inside the current crash loop.
        let mut last_delay: HashMap<String, u64> = HashMap::new();
        let mut seen_events = 0;

        for st in steps {
            match st {
                Step::Start(i) | Step::Restart(i) => {
                    let op = if matches!(st, Step::Start(_)) { Op::Start } else { Op::Restart };
                    held.remove(NAMES[i]);
                    last_delay.remove(NAMES[i]);
                    batches.push(sim.request(op, &[NAMES[i]]));
                }
                Step::Stop(i) => {
                    batches.push(sim.request(Op::Stop, &[NAMES[i]]));
                    held.insert(NAMES[i]);
                    spawns_when_held.insert(NAMES[i], sim.spawn_count(NAMES[i]));
                }
                Step::Crash(i, code) => {
                    if let Some(p) = sim.registry.get(NAMES[i])
                        && let (Some(_), Some(start)) = (p.state().pid(), p.last_start())
                    {
                        if sim.now.since(start) >= p.spec().backoff.min_uptime {
                            last_delay.remove(NAMES[i]);
                        }
                        sim.crash(NAMES[i], ExitInfo::Code(code));
                    }
                }
                Step::Advance(d) => sim.advance(Duration::from_millis(d)),
            }
            for name in NAMES {
                prop_assert!(sim.live_pids_of(name) <= 1, "two live pids for {}", name);
                if held.contains(name) {
                    prop_assert_eq!(sim.spawn_count(name), spawns_when_held[name], "{} restarted after a user stop", name);
                }
            }
            for (_, ev) in &sim.events[seen_events..] {
                if let Event::RestartScheduled { name, delay_ms } = ev
                    && (!schedule || *delay_ms < 30_000)
                {
                    let prev = last_delay.insert(name.to_string(), *delay_ms).unwrap_or(0);
                    prop_assert!(*delay_ms >= prev, "{} back-off shrank from {} to {}", name, prev, delay_ms);
                }
            }
            seen_events = sim.events.len();
        }

        let shutdown = sim.shutdown();
        sim.advance(secs(3600));
        prop_assert!(sim.done.contains_key(&shutdown));
        prop_assert!(!sim.registry.any_up());
        prop_assert_eq!(sim.procs.values().filter(|p| p.alive).count(), 0, "every spawn ended");
        for b in batches {
            prop_assert!(sim.done.contains_key(&b), "batch {} never finished", b);
        }
    }
}
