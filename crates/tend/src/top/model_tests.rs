//! Keys and events → state, without a terminal or a daemon.

use std::time::{Duration, Instant};

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde_json::json;
use tend_core::{Signal, StateName};

use super::*;

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn ch(c: char) -> KeyEvent {
    key(KeyCode::Char(c))
}

fn typed(m: &mut Model, text: &str) {
    for c in text.chars() {
        assert_eq!(m.key(ch(c)), None);
    }
}

fn status(name: &str, state: &str, priority: i32, restarts: u64) -> serde_json::Value {
    let up = matches!(state, "running" | "starting" | "stopping");
    json!({
        "name": name, "group": name, "state": state,
        "pid": if up { json!(100 + restarts) } else { json!(null) },
        "uptime_ms": if up { json!(1000 * restarts) } else { json!(null) },
        "restarts": restarts, "last_exit": null, "ready": up, "health": "unknown",
        "priority": priority, "some_later_field": [1, 2],
    })
}

/// A model with `web` (restarts 2), `db` (0) and `api` (5), as a snapshot sends them.
fn model() -> Model {
    let mut m = Model::new("unix:///x/tend.sock");
    let now = Instant::now();
    let graph = m.apply_event(
        &json!({"kind": "snapshot", "processes": [
            status("db", "running", 10, 0),
            status("api", "running", 20, 5),
            status("web", "backoff", 30, 2),
        ]}),
        now,
    );
    assert!(graph, "a snapshot asks for the graph again");
    m
}

fn names(m: &Model) -> Vec<String> {
    m.rows().into_iter().map(|r| r.name).collect()
}

fn line(name: &str, text: &str, secs: i64) -> serde_json::Value {
    json!({"kind": "log", "name": name, "stream": "stdout",
           "time": jiff::Timestamp::from_second(1_800_000_000 + secs).expect("time"),
           "line": text})
}

#[test]
fn a_snapshot_fills_the_table_in_the_daemons_order_and_selects_the_first() {
    let m = model();
    assert_eq!(names(&m), ["db", "api", "web"]);
    assert_eq!(m.selected_name(), Some("db"));
    assert_eq!(m.get("web").map(|e| e.proc.state), Some(StateName::Backoff));
}

#[test]
fn an_event_updates_its_process_and_removed_drops_it() {
    let mut m = model();
    let now = Instant::now();
    m.apply_event(
        &json!({"kind": "state", "name": "web", "from": "backoff", "to": "running",
                "status": status("web", "running", 30, 3)}),
        now,
    );
    let web = m.get("web").expect("web");
    assert_eq!((web.proc.state, web.proc.restarts), (StateName::Running, 3));
    assert_eq!(web.uptime_ms(now + Duration::from_secs(2)), Some(5000));
    assert!(m.apply_event(&json!({"kind": "removed", "name": "db"}), now));
    assert_eq!(names(&m), ["api", "web"]);
    // The selection moves to a process that is still there.
    assert_eq!(m.selected_name(), Some("api"));
    // An event of a process not seen yet adds it, in priority order.
    m.apply_event(
        &json!({"kind": "added", "name": "zz", "status": status("zz", "stopped", 1, 0)}),
        now,
    );
    assert_eq!(names(&m), ["zz", "api", "web"]);
}

#[test]
fn the_arrows_select_and_the_selection_follows_its_process_through_a_sort() {
    let mut m = model();
    m.key(key(KeyCode::Down));
    m.key(key(KeyCode::Down));
    m.key(key(KeyCode::Down));
    assert_eq!((m.selected, m.selected_name()), (2, Some("web")));
    m.key(ch('o')); // by name
    assert_eq!(m.sort, SortKey::Name);
    assert_eq!(names(&m), ["api", "db", "web"]);
    assert_eq!((m.selected, m.selected_name()), (2, Some("web")));
    m.key(ch('O'));
    assert_eq!(names(&m), ["web", "db", "api"]);
    assert_eq!((m.selected, m.selected_name()), (0, Some("web")));
    m.key(key(KeyCode::Up));
    assert_eq!(m.selected_name(), Some("web"), "the top stays the top");
}

#[test]
fn o_cycles_through_every_column_and_back() {
    let mut m = model();
    let mut seen = vec![m.sort];
    for _ in 0..8 {
        m.key(ch('o'));
        seen.push(m.sort);
    }
    assert_eq!(seen.first(), seen.last());
    assert_eq!(seen.len(), 9);
    // By restarts: db 0, web 2, api 5.
    m.sort = SortKey::Restarts;
    assert_eq!(names(&m), ["db", "web", "api"]);
}

#[test]
fn slash_filters_as_you_type_enter_keeps_it_esc_clears_it() {
    let mut m = model();
    m.key(ch('/'));
    assert_eq!(m.mode, Mode::Filter);
    typed(&mut m, "A");
    assert_eq!(names(&m), ["api"], "case does not matter");
    assert_eq!(m.selected_name(), Some("api"));
    typed(&mut m, "x");
    assert!(names(&m).is_empty());
    m.key(key(KeyCode::Backspace));
    m.key(key(KeyCode::Enter));
    assert_eq!(
        (m.mode.clone(), names(&m)),
        (Mode::Normal, vec!["api".to_string()])
    );
    // In normal mode the letters are keys again: `s` starts the selected one.
    assert_eq!(
        m.key(ch('s')),
        Some(Command::Act(Verb::Start, "api".into()))
    );
    m.key(ch('/'));
    m.key(key(KeyCode::Esc));
    assert_eq!(names(&m).len(), 3);
    // A filter that hides every row leaves nothing for the keys to act on.
    m.key(ch('/'));
    typed(&mut m, "zzz");
    m.key(key(KeyCode::Enter));
    assert_eq!(m.key(ch('x')), None, "no hidden process is stopped");
    assert!(
        m.message
            .as_ref()
            .is_some_and(|(t, _)| t == "no process selected")
    );
}

#[test]
fn action_keys_name_the_selected_process_and_k_asks_for_a_signal() {
    let mut m = model();
    m.key(key(KeyCode::Down));
    assert_eq!(m.key(ch('x')), Some(Command::Act(Verb::Stop, "api".into())));
    assert_eq!(
        m.key(ch('r')),
        Some(Command::Act(Verb::Restart, "api".into()))
    );
    assert_eq!(m.key(ch('k')), None);
    assert_eq!(m.mode, Mode::Signal("api".into()));
    typed(&mut m, "usr1");
    assert_eq!(
        m.key(key(KeyCode::Enter)),
        Some(Command::Act(
            Verb::Signal("USR1".parse::<Signal>().expect("USR1")),
            "api".into()
        ))
    );
    m.key(ch('k'));
    typed(&mut m, "NOPE");
    assert_eq!(m.key(key(KeyCode::Enter)), None);
    let (text, error) = m.message.clone().expect("a message");
    assert!(error && text.contains("NOPE"), "{text}");
    assert_eq!(m.mode, Mode::Normal);
}

#[test]
fn q_and_ctrl_c_quit_and_ctrl_c_even_from_a_prompt() {
    let mut m = model();
    assert_eq!(m.key(ch('q')), Some(Command::Quit));
    m.key(ch('/'));
    assert_eq!(m.key(ch('q')), None, "q is typed into the filter");
    assert_eq!(
        m.key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
        Some(Command::Quit)
    );
}

#[test]
fn help_opens_on_h_and_any_key_closes_it() {
    let mut m = model();
    m.key(ch('h'));
    assert_eq!(m.mode, Mode::Help);
    assert_eq!(m.key(ch('x')), None, "x closes the help, stops nothing");
    assert_eq!(m.mode, Mode::Normal);
    m.key(key(KeyCode::F(1)));
    assert_eq!(m.mode, Mode::Help);
}

#[test]
fn the_tree_puts_what_a_process_depends_on_under_it() {
    let mut m = model();
    m.set_edges(vec![
        Edge {
            from: "web".into(),
            to: "api".into(),
            condition: "ready".into(),
            restart: false,
        },
        Edge {
            from: "api".into(),
            to: "db".into(),
            condition: "healthy".into(),
            restart: false,
        },
    ]);
    m.key(ch('t'));
    let rows = m.rows();
    let shown: Vec<(&str, usize, Option<&str>)> = rows
        .iter()
        .map(|r| (r.name.as_str(), r.depth, r.condition.as_deref()))
        .collect();
    assert_eq!(
        shown,
        [
            ("web", 0, None),
            ("api", 1, Some("ready")),
            ("db", 2, Some("healthy"))
        ]
    );
    m.key(ch('t'));
    assert_eq!(names(&m), ["db", "api", "web"]);
}

#[test]
fn cpu_percent_comes_from_two_samples_of_the_same_run() {
    let mut m = model();
    let sample = |secs: i64, cpu: f64, pid: u32| -> Resources {
        serde_json::from_value(json!({
            "time": jiff::Timestamp::from_second(1_800_000_000 + secs).expect("time"),
            "processes": [{"name": "db", "pid": pid, "cpu_seconds": cpu,
                "cpu_percent_since_start": 1.0, "rss_bytes": 4096, "threads": 1}]
        }))
        .expect("resources")
    };
    m.set_resources(&sample(0, 1.0, 100));
    let db = m.get("db").expect("db");
    assert_eq!(
        (db.cpu, db.memory),
        (None, Some(4096)),
        "one sample: no rate yet"
    );
    m.set_resources(&sample(2, 2.0, 100));
    assert_eq!(m.get("db").and_then(|e| e.cpu), Some(50.0));
    // Another run (another pid) starts over.
    m.set_resources(&sample(3, 0.1, 200));
    assert_eq!(m.get("db").and_then(|e| e.cpu), None);
    // A process missing from the sample is not up: nothing shown.
    assert_eq!(m.get("api").and_then(|e| e.memory), None);
    m.key(ch('o'));
    m.sort = SortKey::Memory;
    m.reverse = true;
    assert_eq!(names(&m)[0], "db");
}

#[test]
fn the_log_pane_shows_the_selected_process_or_all_and_follows() {
    let mut m = model();
    let now = Instant::now();
    m.apply_event(&line("db", "db one", 1), now);
    m.apply_event(&line("api", "api one", 2), now);
    m.apply_event(&line("db", "db two", 3), now);
    let texts =
        |m: &Model| -> Vec<String> { m.visible_logs().iter().map(|l| l.text.clone()).collect() };
    assert_eq!(texts(&m), ["db one", "db two"]);
    m.key(ch('a'));
    assert_eq!(texts(&m), ["db one", "api one", "db two"]);
    assert_eq!(m.log_target(), None);
    m.key(ch('a'));
    m.key(key(KeyCode::Down));
    assert_eq!(texts(&m), ["api one"]);
}

#[test]
fn scrolling_back_holds_the_view_while_lines_come_and_end_follows_again() {
    let mut m = model();
    let now = Instant::now();
    for i in 0..50 {
        m.apply_event(&line("db", &format!("line {i}"), i), now);
    }
    m.log_height = 10;
    m.key(key(KeyCode::PageUp));
    assert_eq!(m.log_scroll, 9);
    m.key(key(KeyCode::Tab));
    m.key(key(KeyCode::Up));
    assert_eq!(m.log_scroll, 10, "with the log pane focused, up scrolls it");
    m.apply_event(&line("db", "new", 60), now);
    assert_eq!(m.log_scroll, 11, "the same lines stay shown");
    m.key(key(KeyCode::Home));
    assert_eq!(m.log_scroll, 50);
    m.key(key(KeyCode::End));
    assert_eq!(m.log_scroll, 0);
    m.key(key(KeyCode::PageDown));
    assert_eq!(m.log_scroll, 0);
}

#[test]
fn search_goes_back_with_n_and_forward_with_capital_n() {
    let mut m = model();
    let now = Instant::now();
    for i in 0..30 {
        let text = if i % 10 == 5 {
            format!("ERROR {i}")
        } else {
            format!("fine {i}")
        };
        m.apply_event(&line("db", &text, i), now);
    }
    m.log_height = 9;
    m.key(ch('?'));
    assert_eq!(m.mode, Mode::Search);
    typed(&mut m, "error");
    m.key(key(KeyCode::Enter));
    assert_eq!(m.search.as_deref(), Some("error"));
    assert_eq!(m.search_at, Some(25), "the newest match first");
    let shown = |m: &Model| {
        let n = m.visible_logs().len();
        let bottom = n - 1 - m.log_scroll;
        (bottom + 1).saturating_sub(m.log_height)..=bottom
    };
    assert!(shown(&m).contains(&25), "{:?}", shown(&m));
    m.key(ch('n'));
    assert_eq!(m.search_at, Some(15));
    assert!(shown(&m).contains(&15));
    m.key(ch('n'));
    m.key(ch('n'));
    assert_eq!(m.search_at, Some(5), "no older match: it stays");
    assert!(
        m.message
            .as_ref()
            .is_some_and(|(t, e)| *e && t.contains("no match"))
    );
    m.key(ch('N'));
    assert_eq!(m.search_at, Some(15));
    let matched: Vec<bool> = m.visible_logs().iter().map(|l| m.matches(l)).collect();
    assert_eq!(matched.iter().filter(|b| **b).count(), 3);
}

#[test]
fn backfilled_lines_are_not_shown_twice_and_partial_lines_join() {
    let mut m = model();
    let now = Instant::now();
    let item = |v: serde_json::Value| -> LogLineItem { serde_json::from_value(v).expect("item") };
    m.set_backfill(&[item(line("db", "old", 1)), item(line("db", "last", 2))]);
    // The stream sends the last one again, then a new one.
    m.apply_event(&line("db", "last", 2), now);
    m.apply_event(&line("db", "new", 3), now);
    let mut partial = line("db", "Pass", 4);
    partial["partial"] = json!(true);
    m.apply_event(&partial, now);
    let mut rest = line("db", "word: ", 4);
    rest["continues"] = json!(true);
    m.apply_event(&rest, now);
    let texts: Vec<String> = m.visible_logs().iter().map(|l| l.text.clone()).collect();
    assert_eq!(texts, ["old", "last", "new", "Password: "]);
}

#[test]
fn the_log_buffer_is_bounded() {
    let mut m = model();
    let now = Instant::now();
    for i in 0..(MAX_LOG_LINES as i64 + 10) {
        m.apply_event(&line("db", "x", i), now);
    }
    assert_eq!(m.logs.len(), MAX_LOG_LINES);
}

#[test]
fn resources_are_read_after_events_at_most_once_a_second_and_never_while_nothing_runs() {
    let t0 = Instant::now();
    let s = |secs: f64| t0 + Duration::from_secs_f64(secs);
    // Only when asked (--interval 0).
    let mut p = Sampling::new(Duration::ZERO);
    assert!(!p.want(s(0.0), false), "nothing up: nothing to read");
    assert_eq!(p.due(), None);
    assert!(p.want(s(0.0), true), "an event: read now");
    assert!(!p.want(s(0.1), true), "one read at a time");
    assert!(!p.done(s(0.2), true), "the next waits out the gap");
    assert_eq!(p.due(), Some(s(1.0)));
    assert!(!p.tick(s(0.5), true), "woken early: not yet");
    assert!(p.tick(s(1.0), true));
    assert!(!p.done(s(1.1), true));
    assert_eq!(
        p.due(),
        None,
        "nothing asked since: nothing due, no wake-up"
    );
    // Every second while something runs.
    let mut p = Sampling::new(Duration::from_secs(1));
    assert!(p.want(s(0.0), true));
    assert!(!p.done(s(0.1), true));
    assert_eq!(p.due(), Some(s(1.1)));
    assert!(p.tick(s(1.1), true));
    // Everything stopped: the last read schedules nothing more.
    assert!(!p.done(s(1.2), false));
    assert_eq!(p.due(), None);
    // A shorter interval is held to the gap.
    let mut p = Sampling::new(Duration::from_millis(10));
    assert!(p.want(s(0.0), true));
    p.done(s(0.0), true);
    assert_eq!(p.due(), Some(s(1.0)));
}
