//! `/healthz` and `/readyz` through the router with a real supervisor.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tend_config::Declared;
use tend_core::{Check, Name, Options, ProbeSpec, ProcessSpec, Supervisor};
use tower::ServiceExt;

use crate::{Daemon, Shutdown, health_only_router};

async fn get(daemon: &Daemon, uri: &str) -> (StatusCode, String) {
    let req = Request::builder()
        .uri(uri)
        .body(Body::empty())
        .expect("request");
    let resp = health_only_router(daemon.clone())
        .oneshot(req)
        .await
        .expect("infallible");
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn sleeper(name: &str) -> ProcessSpec {
    let mut s = ProcessSpec::new(
        Name::new(name).expect("name"),
        vec!["sleep".into(), "1000".into()],
    );
    s.stop.timeout = Duration::from_secs(2);
    s
}

#[tokio::test]
async fn readyz_waits_for_the_gated_processes_and_lists_the_others() {
    let (sup, driver) = Supervisor::spawn(Options::default(), false).expect("supervisor");
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("ready");
    let mut web = sleeper("web");
    web.ready_gate = true;
    let mut check = ProbeSpec::new(Check::Exec(vec![
        "test".into(),
        "-e".into(),
        marker.display().to_string(),
    ]));
    check.period = Duration::from_millis(50);
    web.ready = Some(check);
    // Not gated: its state does not matter to /readyz.
    let mut broken = sleeper("broken");
    broken.command = vec!["/nonexistent/program".into()];
    let shutdown = Shutdown::new();
    let daemon = Daemon::new(
        sup.clone(),
        shutdown.clone(),
        Declared::from_specs([web, broken]),
        None,
    );
    daemon.config().add_declared().await.expect("add");
    // Returns once each is running or failed: web only once it is ready.
    let starting = tokio::spawn({
        let sup = sup.clone();
        async move { sup.start_autostart().await }
    });
    let until = Instant::now() + Duration::from_secs(10);
    while get(&daemon, "/readyz").await.1 != "not ready: web (starting)\n" {
        assert!(Instant::now() < until, "web never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    assert_eq!(
        get(&daemon, "/healthz").await,
        (StatusCode::OK, "ok\n".into())
    );
    let (code, body) = get(&daemon, "/readyz").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, "not ready: web (starting)\n");
    assert_eq!(get(&daemon, "/v1/status").await.0, StatusCode::NOT_FOUND);

    std::fs::write(&marker, "").expect("marker");
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let got = get(&daemon, "/readyz").await;
        if got == (StatusCode::OK, "ready\n".into()) {
            break;
        }
        assert!(Instant::now() < until, "never ready: {got:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    starting.await.expect("task").expect("started");

    // A daemon on its way out is not ready any more (traffic stops first).
    shutdown.trigger();
    assert_eq!(
        get(&daemon, "/readyz").await,
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n".into())
    );
    sup.shutdown().await.expect("shutdown");
    driver.await.expect("driver");
    // The driver is gone: not alive.
    assert_eq!(
        get(&daemon, "/healthz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
}
