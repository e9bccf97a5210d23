use std::time::Duration;

use serde_json::json;

use super::client::event_json;
use super::*;

#[test]
fn the_pause_between_attempts_doubles_up_to_its_bound() {
    assert_eq!(backoff(0), Duration::ZERO);
    assert_eq!(backoff(1), Duration::from_millis(500));
    assert_eq!(backoff(2), Duration::from_secs(1));
    assert_eq!(backoff(3), Duration::from_secs(2));
    assert_eq!(backoff(5), Duration::from_secs(8));
    assert_eq!(backoff(6), MAX_BACKOFF);
    assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
}

#[test]
fn an_sse_event_is_the_json_of_its_data_lines() {
    let v = event_json(b"id: 1-2\ndata: {\"kind\":\"state\",\"name\":\"web\"}\n\n").expect("json");
    assert_eq!(v["kind"], "state");
    assert_eq!(event_json(b": keep-alive\n\n"), None);
    assert_eq!(event_json(b"retry: 1000\n\n"), None);
    assert_eq!(event_json(b"data: not json\n\n"), None);
}

fn spec(name: &str) -> PeerSpec {
    PeerSpec {
        name: name.to_string(),
        url: format!("unix:///nowhere/{name}.sock"),
        endpoint: PeerEndpoint::Unix(format!("/nowhere/{name}.sock").into()),
        authorization: Some("Bearer secret".into()),
        timeout: Duration::from_secs(1),
    }
}

#[test]
fn counts_are_by_state_and_secrets_stay_out_of_debug() {
    let s = spec("a");
    assert!(!format!("{s:?}").contains("secret"));
    let mut v = PeerView::new(&s);
    v.processes = vec![
        json!({"name": "x", "state": "running"}),
        json!({"name": "y", "state": "running"}),
        json!({"name": "z", "state": "fatal"}),
    ];
    v.recount();
    assert_eq!(v.counts.get("running"), Some(&2));
    assert_eq!(v.counts.get("fatal"), Some(&1));
    let shown = serde_json::to_value(&v).expect("json");
    assert_eq!(shown["state"], "idle");
    assert!(shown.get("processes").is_none());
}

#[test]
fn a_reload_keeps_the_views_of_the_peers_that_stay_in_order() {
    let peers = Peers::new(vec![spec("a"), spec("b")]);
    assert!(!peers.watched());
    assert_eq!(
        peers
            .views()
            .iter()
            .map(|v| v.name.as_str())
            .collect::<Vec<_>>(),
        ["a", "b"]
    );
    peers.replace(vec![spec("c"), spec("a")]);
    assert_eq!(
        peers
            .views()
            .iter()
            .map(|v| v.name.as_str())
            .collect::<Vec<_>>(),
        ["c", "a"]
    );
    assert!(peers.view("b").is_none());
    assert!(peers.spec("a").is_some());
}
