//! The translator, the protocol and the pools as tables, and the hub with
//! real listener processes.

use tend_core::{Event, ExitInfo, Name, StateName};

use super::pool::*;
use super::protocol::*;
use super::translate::*;
use super::*;

fn n(s: &str) -> Name {
    Name::new(s).expect("valid name")
}

fn ev(serial: u64, name: &str, payload: &str) -> Arc<SupEvent> {
    Arc::new(SupEvent {
        serial,
        name: name.to_string(),
        payload: payload.to_string(),
        server: Arc::from("supervisor"),
    })
}

fn writes(actions: &[PoolAction]) -> Vec<(String, String)> {
    actions
        .iter()
        .filter_map(|a| match a {
            PoolAction::Write(n, b) => {
                Some((n.to_string(), String::from_utf8_lossy(b).into_owned()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn subscriptions_cover_subtypes() {
    let table = [
        ("EVENT", "TICK_5", true),
        ("EVENT", "PROCESS_STATE_RUNNING", true),
        ("PROCESS_STATE", "PROCESS_STATE_RUNNING", true),
        ("PROCESS_STATE", "PROCESS_STATE", true),
        ("PROCESS_STATE", "PROCESS_LOG_STDOUT", false),
        ("PROCESS_STATE_RUNNING", "PROCESS_STATE_RUNNING", true),
        ("PROCESS_STATE_RUNNING", "PROCESS_STATE_EXITED", false),
        ("TICK", "TICK_60", true),
        ("TICK_5", "TICK_60", false),
        ("TICK_60", "TICK_5", false),
        ("PROCESS_LOG", "PROCESS_LOG_STDERR", true),
        (
            "SUPERVISOR_STATE_CHANGE",
            "SUPERVISOR_STATE_CHANGE_RUNNING",
            true,
        ),
        ("PROCESS_COMMUNICATION", "PROCESS_STATE_RUNNING", false),
        // Not abstract: no prefix matching.
        ("REMOTE_COMMUNICATION", "REMOTE_COMMUNICATION_X", false),
    ];
    for (sub, event, want) in table {
        assert_eq!(subscribed(sub, event), want, "{sub} / {event}");
    }
}

#[test]
fn protocol_ready_result_ready_in_any_pieces() {
    let ready = b"READY\n";
    for cut in 0..=ready.len() {
        let mut p = Protocol::default();
        let mut said = p.feed(&ready[..cut]);
        said.extend(p.feed(&ready[cut..]));
        assert_eq!(said, vec![Said::Ready], "cut {cut}");
    }
    // childutils writes `RESULT 2\nOK` and then `READY\n`: often one read.
    let answer = b"RESULT 2\nOKREADY\n";
    for cut in 0..=answer.len() {
        let mut p = Protocol::default();
        p.feed(ready);
        p.sent();
        let mut said = p.feed(&answer[..cut]);
        said.extend(p.feed(&answer[cut..]));
        assert_eq!(said, vec![Said::Result(true), Said::Ready], "cut {cut}");
        assert_eq!(p.state(), ListenerState::Ready);
    }
    // Output while READY (no event pending) breaks the protocol.
    let mut p = Protocol::default();
    p.feed(ready);
    assert!(matches!(p.feed(b"x").as_slice(), [Said::Broken(_)]));
    assert_eq!(p.state(), ListenerState::Unknown);
}

#[test]
fn protocol_result_body_may_span_lines_and_chunks() {
    let mut p = Protocol::default();
    assert_eq!(p.feed(b"READY\n"), vec![Said::Ready]);
    p.sent();
    assert_eq!(p.feed(b"RESULT 5\nA\nB"), vec![]);
    assert_eq!(p.state(), ListenerState::Busy);
    assert_eq!(p.feed(b"\nC"), vec![Said::Result(false)]);
    assert_eq!(p.state(), ListenerState::Acknowledged);
    assert_eq!(p.feed(b"READY\n"), vec![Said::Ready]);
    p.sent();
    assert_eq!(p.feed(b"RESULT 0\n"), vec![Said::Result(false)]);
}

#[test]
fn protocol_violations_are_unknown_for_good() {
    let mut p = Protocol::default();
    assert!(matches!(p.feed(b"HELLO!\n").as_slice(), [Said::Broken(_)]));
    assert_eq!(p.state(), ListenerState::Unknown);
    assert_eq!(p.feed(b"READY\n"), vec![]);
    assert_eq!(p.state(), ListenerState::Unknown);

    let mut p = Protocol::default();
    assert_eq!(p.feed(b"READ"), vec![]);
    assert_eq!(p.feed(b"Y\n"), vec![Said::Ready]);
    p.sent();
    let said = p.feed(b"RESULT x\n");
    assert!(
        matches!(said.as_slice(), [Said::Broken(w)] if w.contains("bad result line: 'RESULT x'")),
        "{said:?}"
    );
}

#[test]
fn envelope_is_supervisors_and_len_counts_characters() {
    let q = Queued {
        event: ev(
            7,
            "PROCESS_STATE_RUNNING",
            "processname:x groupname:x from_state:STARTING pid:42",
        ),
        pool_serial: 3,
    };
    assert_eq!(
        envelope(&q, &n("listener")),
        "ver:3.0 server:supervisor serial:7 pool:listener poolserial:3 \
         eventname:PROCESS_STATE_RUNNING len:52\n\
         processname:x groupname:x from_state:STARTING pid:42"
    );
    let q = Queued {
        event: ev(0, "REMOTE_COMMUNICATION", "type:t\né"),
        pool_serial: 0,
    };
    assert!(envelope(&q, &n("p")).contains(" len:8\n"));
}

#[test]
fn pool_buffers_until_a_listener_is_running_and_ready() {
    let l = n("listener");
    let mut pool = PoolCore::new(n("pool"), 10, vec![l.clone()]);
    assert!(
        pool.accept(ev(0, "SUPERVISOR_STATE_CHANGE_RUNNING", ""))
            .is_empty()
    );
    pool.spawned(&l);
    assert!(pool.accept(ev(1, "PROCESS_STATE_STARTING", "p")).is_empty());
    // READY while still starting: nothing is sent before it is running.
    assert!(writes(&pool.output(&l, b"READY\n")).is_empty());
    let w = writes(&pool.state_changed(&l, StateName::Running));
    assert_eq!(
        w,
        vec![(
            "listener".to_string(),
            "ver:3.0 server:supervisor serial:0 pool:pool poolserial:0 \
             eventname:SUPERVISOR_STATE_CHANGE_RUNNING len:0\n"
                .to_string()
        )]
    );
    assert_eq!(pool.listener_state(&l), Some(ListenerState::Busy));
    // One at a time: the second waits for the result and READY.
    let w = writes(&pool.output(&l, b"RESULT 2\nOK"));
    assert!(w.is_empty());
    let w = writes(&pool.output(&l, b"READY\n"));
    assert_eq!(w.len(), 1);
    assert!(
        w[0].1
            .contains("serial:1 pool:pool poolserial:1 eventname:PROCESS_STATE_STARTING len:1\np")
    );
}

#[test]
fn rejected_and_orphaned_events_are_sent_again_first() {
    let l = n("listener");
    let mut pool = PoolCore::new(n("pool"), 10, vec![l.clone()]);
    pool.spawned(&l);
    pool.state_changed(&l, StateName::Running);
    pool.output(&l, b"READY\n");
    let first = writes(&pool.accept(ev(0, "TICK_5", "when:5")));
    assert_eq!(first.len(), 1);
    assert!(pool.accept(ev(1, "TICK_5", "when:10")).is_empty());
    // FAIL: event 0 goes back to the head, ahead of event 1.
    let actions = pool.output(&l, b"RESULT 4\nFAIL");
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, PoolAction::Warn(w) if w == "listener: event was rejected"))
    );
    assert_eq!(writes(&pool.output(&l, b"READY\n")), first);
    // The listener dies while busy: the event comes again to the next run.
    assert!(pool.exited(&l).is_empty());
    let serials: Vec<u64> = pool.buffered().map(|q| q.event.serial).collect();
    assert_eq!(serials, vec![0, 1]);
    pool.spawned(&l);
    pool.state_changed(&l, StateName::Starting);
    pool.output(&l, b"READY\n");
    assert_eq!(writes(&pool.state_changed(&l, StateName::Running)), first);
}

#[test]
fn a_full_buffer_drops_its_oldest_event_with_supervisors_message() {
    let mut pool = PoolCore::new(n("pool"), 2, vec![n("l")]);
    assert!(pool.accept(ev(0, "TICK_5", "a")).is_empty());
    assert!(pool.accept(ev(1, "TICK_5", "b")).is_empty());
    let actions = pool.accept(ev(2, "TICK_5", "c"));
    assert_eq!(
        actions,
        vec![PoolAction::Error(
            "pool pool event buffer overflowed, discarding event 0".to_string()
        )]
    );
    let serials: Vec<u64> = pool.buffered().map(|q| q.event.serial).collect();
    assert_eq!(serials, vec![1, 2]);
}

#[test]
fn events_go_to_the_first_ready_listener_of_the_pool() {
    let (a, b) = (n("l_00"), n("l_01"));
    let mut pool = PoolCore::new(n("l"), 10, vec![a.clone(), b.clone()]);
    for m in [&a, &b] {
        pool.spawned(m);
        pool.state_changed(m, StateName::Running);
        pool.output(m, b"READY\n");
    }
    let w0 = writes(&pool.accept(ev(0, "TICK_5", "x")));
    let w1 = writes(&pool.accept(ev(1, "TICK_5", "y")));
    assert_eq!(w0[0].0, "l_00");
    assert_eq!(w1[0].0, "l_01");
    assert!(pool.accept(ev(2, "TICK_5", "z")).is_empty());
    pool.output(&b, b"RESULT 2\nOK");
    let w2 = writes(&pool.output(&b, b"READY\n"));
    assert_eq!(w2[0].0, "l_01");
}

fn ctx() -> Context {
    let mut ctx = Context::default();
    for (name, group, codes) in [("web", "svc", vec![0, 2]), ("job", "job", vec![0])] {
        ctx.processes.insert(
            n(name),
            ProcessInfo {
                group: n(group),
                exit_codes: codes,
                stdout_events: false,
                stderr_events: false,
            },
        );
    }
    ctx
}

fn run(events: &[Event]) -> Vec<String> {
    let mut t = Translator::new();
    let ctx = ctx();
    events
        .iter()
        .flat_map(|e| t.translate(e, &ctx))
        .map(|(name, payload)| format!("{name} {payload}"))
        .collect()
}

fn changed(name: &str, from: StateName, to: StateName) -> Event {
    Event::StateChanged {
        name: n(name),
        from,
        to,
    }
}

fn spawned(name: &str, pid: u32) -> Event {
    Event::Spawned { name: n(name), pid }
}

fn exited(name: &str, pid: u32, exit: ExitInfo) -> Event {
    Event::Exited {
        name: n(name),
        pid,
        exit,
        expected: false,
    }
}

#[test]
fn a_start_run_and_stop_as_supervisor_tells_them() {
    use StateName::*;
    let got = run(&[
        changed("web", Stopped, Starting),
        spawned("web", 41),
        changed("web", Starting, Running),
        changed("web", Running, Stopping),
        exited("web", 41, ExitInfo::Signal(tend_core::Signal::TERM)),
        changed("web", Stopping, Stopped),
    ]);
    assert_eq!(
        got,
        vec![
            "PROCESS_STATE_STARTING processname:web groupname:svc from_state:STOPPED tries:0",
            "PROCESS_STATE_RUNNING processname:web groupname:svc from_state:STARTING pid:41",
            "PROCESS_STATE_STOPPING processname:web groupname:svc from_state:RUNNING pid:41",
            "PROCESS_STATE_STOPPED processname:web groupname:svc from_state:STOPPING pid:41",
        ]
    );
}

#[test]
fn failed_starts_count_tries_and_end_fatal_through_backoff() {
    use StateName::*;
    let got = run(&[
        changed("job", Stopped, Starting),
        spawned("job", 10),
        exited("job", 10, ExitInfo::Code(1)),
        changed("job", Starting, Backoff),
        changed("job", Backoff, Starting),
        spawned("job", 11),
        exited("job", 11, ExitInfo::Code(1)),
        // tend gives up in one step; Supervisor goes through BACKOFF.
        changed("job", Starting, Fatal),
        // A user start afterwards counts from 0 again.
        changed("job", Fatal, Starting),
    ]);
    assert_eq!(
        got,
        vec![
            "PROCESS_STATE_STARTING processname:job groupname:job from_state:STOPPED tries:0",
            "PROCESS_STATE_BACKOFF processname:job groupname:job from_state:STARTING tries:1",
            "PROCESS_STATE_STARTING processname:job groupname:job from_state:BACKOFF tries:1",
            "PROCESS_STATE_BACKOFF processname:job groupname:job from_state:STARTING tries:2",
            "PROCESS_STATE_FATAL processname:job groupname:job from_state:BACKOFF",
            "PROCESS_STATE_STARTING processname:job groupname:job from_state:FATAL tries:0",
        ]
    );
}

#[test]
fn exits_are_expected_per_exitcodes_and_a_restart_goes_through_exited() {
    use StateName::*;
    let got = run(&[
        spawned("web", 5),
        changed("web", Starting, Running),
        exited("web", 5, ExitInfo::Code(2)),
        changed("web", Running, Exited),
        spawned("web", 6),
        changed("web", Exited, Starting),
        changed("web", Starting, Running),
        exited("web", 6, ExitInfo::Code(3)),
        // Restarted at once: tend says running -> starting.
        changed("web", Running, Starting),
        spawned("web", 7),
        changed("web", Starting, Running),
        exited("web", 7, ExitInfo::Signal(tend_core::Signal::KILL)),
        changed("web", Running, Exited),
        // Not in the context: exit code 0 is the expected one.
        spawned("other", 9),
        changed("other", Starting, Running),
        exited("other", 9, ExitInfo::Code(0)),
        changed("other", Running, Exited),
    ]);
    assert_eq!(
        got,
        vec![
            "PROCESS_STATE_RUNNING processname:web groupname:svc from_state:STARTING pid:5",
            "PROCESS_STATE_EXITED processname:web groupname:svc from_state:RUNNING expected:1 pid:5",
            "PROCESS_STATE_STARTING processname:web groupname:svc from_state:EXITED tries:0",
            "PROCESS_STATE_RUNNING processname:web groupname:svc from_state:STARTING pid:6",
            "PROCESS_STATE_EXITED processname:web groupname:svc from_state:RUNNING expected:0 pid:6",
            "PROCESS_STATE_STARTING processname:web groupname:svc from_state:EXITED tries:0",
            "PROCESS_STATE_RUNNING processname:web groupname:svc from_state:STARTING pid:7",
            "PROCESS_STATE_EXITED processname:web groupname:svc from_state:RUNNING expected:0 pid:7",
            "PROCESS_STATE_RUNNING processname:other groupname:other from_state:STARTING pid:9",
            "PROCESS_STATE_EXITED processname:other groupname:other from_state:RUNNING expected:1 pid:9",
        ]
    );
}

#[test]
fn changes_published_out_of_order_are_told_in_order() {
    use StateName::*;
    // Changes arriving out of order (what tend's driver once published
    // for a `startsecs=0` process) are still told in order.
    let got = run(&[
        Event::Added { name: n("web") },
        spawned("web", 41),
        changed("web", Starting, Running),
        changed("web", Stopped, Starting),
        exited("web", 41, ExitInfo::Code(1)),
        spawned("web", 42),
        changed("web", Starting, Running),
        changed("web", Running, Starting),
        changed("web", Running, Stopping),
    ]);
    assert_eq!(
        got,
        vec![
            "PROCESS_STATE_STARTING processname:web groupname:svc from_state:STOPPED tries:0",
            "PROCESS_STATE_RUNNING processname:web groupname:svc from_state:STARTING pid:41",
            "PROCESS_STATE_EXITED processname:web groupname:svc from_state:RUNNING expected:0 pid:41",
            "PROCESS_STATE_STARTING processname:web groupname:svc from_state:EXITED tries:0",
            "PROCESS_STATE_RUNNING processname:web groupname:svc from_state:STARTING pid:42",
            "PROCESS_STATE_STOPPING processname:web groupname:svc from_state:RUNNING pid:42",
        ]
    );
}

#[test]
fn stopping_a_process_in_backoff_stops_it_with_no_pid() {
    use StateName::*;
    let got = run(&[
        spawned("job", 10),
        exited("job", 10, ExitInfo::Code(1)),
        changed("job", Starting, Backoff),
        changed("job", Backoff, Stopped),
        changed("job", Stopped, Waiting),
    ]);
    assert_eq!(
        got,
        vec![
            "PROCESS_STATE_BACKOFF processname:job groupname:job from_state:STARTING tries:1",
            "PROCESS_STATE_STOPPED processname:job groupname:job from_state:BACKOFF pid:0",
        ]
    );
}

#[test]
fn ticks_fall_on_period_boundaries() {
    assert_eq!(timeslice(5, 1_795_210_953), 1_795_210_950);
    assert_eq!(timeslice(60, 1_795_210_953), 1_795_210_920);
    assert_eq!(timeslice(3600, 1_795_210_953), 1_795_208_400);
    assert_eq!(timeslice(5, 10), 10);
}

#[test]
fn the_exchange_is_told_at_debug_as_supervisord_tells_it() {
    let l = n("listener");
    let mut pool = PoolCore::new(n("listener"), 10, vec![l.clone()]);
    pool.spawned(&l);
    pool.state_changed(&l, StateName::Running);
    let debug = |a: &[PoolAction]| {
        a.iter()
            .filter_map(|a| match a {
                PoolAction::Debug(m) => Some(m.clone()),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        debug(&pool.output(&l, b"READY\n")),
        [
            "'listener' stdout output:\nb'READY\\n'",
            "listener: ACKNOWLEDGED -> READY"
        ]
    );
    assert_eq!(
        debug(&pool.accept(ev(3, "TICK_5", "when:5"))),
        ["event 3 sent to listener listener"]
    );
    assert_eq!(
        debug(&pool.output(&l, b"RESULT 2\nOK")),
        [
            "'listener' stdout output:\nb'RESULT 2\\nOK'",
            "listener: event was processed",
            "listener: BUSY -> ACKNOWLEDGED"
        ]
    );
    assert_eq!(
        debug(&pool.output(&l, b"bogus\n")),
        [
            "'listener' stdout output:\nb'bogus\\n'",
            "listener: ACKNOWLEDGED -> UNKNOWN"
        ]
    );
}
