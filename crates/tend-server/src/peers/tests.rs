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

mod live {
    //! A real peer (a daemon serving its JSON API on a Unix socket) watched
    //! by another daemon's [`Peers`], and one that is not there.

    use std::time::{Duration, Instant};

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tend_core::{Name, Options, ProcessSpec, Supervisor};
    use tower::ServiceExt;

    use super::super::*;
    use crate::{Daemon, Shutdown, json_router, serve_unix};

    const WAIT: Duration = Duration::from_secs(20);

    fn daemon() -> Daemon {
        let (sup, _driver) = Supervisor::spawn(Options::default(), false).expect("supervisor");
        Daemon::without_config(sup, Shutdown::new())
    }

    fn unix(name: &str, path: &std::path::Path) -> PeerSpec {
        PeerSpec {
            name: name.to_string(),
            url: format!("unix://{}", path.display()),
            endpoint: PeerEndpoint::Unix(path.to_path_buf()),
            authorization: None,
            timeout: Duration::from_secs(2),
        }
    }

    async fn until(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + WAIT;
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn post(d: &Daemon, uri: &str) -> (StatusCode, String) {
        let resp = json_router(d.clone())
            .oneshot(
                Request::post(uri)
                    .header("content-type", "application/json")
                    .body(Body::from("{}"))
                    .expect("request"),
            )
            .await
            .expect("answer");
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_watched_peer_is_live_an_absent_one_unreachable_and_unwatched_costs_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("peer.sock");
        let peer = daemon();
        let mut spec = ProcessSpec::new(
            Name::new("idle").expect("name"),
            vec!["sleep".into(), "1000".into()],
        );
        spec.autostart = false;
        spec.stop.timeout = Duration::from_secs(2);
        peer.supervisor().add(spec).await.expect("add");
        let stop = Shutdown::new();
        let server = {
            let (sock, app, stop) = (sock.clone(), json_router(peer.clone()), stop.clone());
            tokio::spawn(async move {
                let until = async move {
                    stop.triggered().await;
                    stop.end_streams();
                };
                serve_unix(&sock, 0o600, app, until).await
            })
        };
        until("the peer's socket", || sock.exists()).await;

        let home = daemon().with_peers(Peers::new(vec![
            unix("p", &sock),
            unix("gone", &dir.path().join("missing.sock")),
        ]));
        assert!(!home.peers().watched());
        assert_eq!(home.peers().view("p").expect("p").state, PeerState::Idle);

        let hub = home.events().await.expect("hub");
        let watching = home.peers().watch(&hub);
        assert!(home.peers().watched());
        until("p reachable with its process", || {
            home.peers().view("p").is_some_and(|v| {
                v.state == PeerState::Reachable
                    && v.version.is_some()
                    && v.counts.get("stopped") == Some(&1)
            })
        })
        .await;
        until("gone unreachable", || {
            home.peers().view("gone").is_some_and(|v| {
                v.state == PeerState::Unreachable
                    && v.error
                        .as_deref()
                        .is_some_and(|e| e.contains("cannot connect"))
            })
        })
        .await;

        // A change on the peer shows in the view.
        peer.supervisor().start("idle").await.expect("start");
        until("idle running in p's view", || {
            home.peers()
                .view("p")
                .is_some_and(|v| v.counts.get("running") == Some(&1))
        })
        .await;

        // Acting through the home daemon: the peer's answer, as it is.
        let (code, body) = post(&home, "/v1/peers/p/processes/idle/stop").await;
        assert_eq!(code, StatusCode::OK, "{body}");
        assert!(body.contains("\"name\":\"idle\""), "{body}");
        let (code, body) = post(&home, "/v1/peers/p/processes/nope/stop").await;
        assert_eq!(code, StatusCode::NOT_FOUND, "the peer's 404: {body}");
        assert!(body.contains("nope"), "{body}");
        let (code, _) = post(&home, "/v1/peers/zz/processes/idle/stop").await;
        assert_eq!(code, StatusCode::NOT_FOUND);
        let (code, _) = post(&home, "/v1/peers/p/processes/idle/explode").await;
        assert_eq!(code, StatusCode::NOT_FOUND);
        let (code, body) = post(&home, "/v1/peers/gone/processes/idle/stop").await;
        assert_eq!(code, StatusCode::BAD_GATEWAY, "{body}");
        assert!(body.contains("unreachable"), "{body}");

        // The last watcher gone: no task, and every view idle.
        drop(watching);
        assert!(!home.peers().watched());
        assert!(
            home.peers()
                .views()
                .iter()
                .all(|v| v.state == PeerState::Idle)
        );

        stop.trigger();
        let _ = server.await;
        let _ = peer.supervisor().shutdown().await;
        let _ = home.supervisor().shutdown().await;
    }
}
