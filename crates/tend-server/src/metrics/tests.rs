//! `/metrics` over a real supervisor: a crash loop moves the counters,
//! every request counts by door and face, and the caller's rights decide
//! what it sees.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tend_core::spec::{BackoffMode, LogTarget, RestartPolicy};
use tend_core::{Name, Options, ProcessSpec, Supervisor};
use tower::ServiceExt;

use super::*;
use crate::access::{Door, Grants, Identity};
use crate::{Listener, Shutdown};

fn spec(name: &str, script: &str) -> ProcessSpec {
    let mut spec = ProcessSpec::new(
        Name::new(name).expect("name"),
        vec!["sh".into(), "-c".into(), script.into()],
    );
    // Read but kept in memory only: "null" is not read at all, and the
    // log-bytes counter must move.
    spec.logs.stdout = LogTarget::Memory;
    spec.logs.stderr = LogTarget::Memory;
    spec.restart = RestartPolicy::Always;
    spec.start_secs = Duration::ZERO;
    spec.backoff.mode = BackoffMode::Doubling {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(10),
    };
    spec.backoff.give_up_after = None;
    spec.stop.timeout = Duration::from_secs(2);
    spec
}

async fn scrape(app: &Router, accept: Option<&str>) -> (StatusCode, String, String) {
    let mut req = Request::builder().uri("/metrics");
    if let Some(a) = accept {
        req = req.header(header::ACCEPT, a);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let status = resp.status();
    let ct = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    (status, ct, String::from_utf8_lossy(&body).into_owned())
}

/// The value of the sample `series` (name and labels, exactly as written).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loop_moves_the_counters_and_requests_count_by_door() {
    let (sup, _driver) = Supervisor::spawn(Options::default(), false).expect("supervisor");
    let metrics = Metrics::new();
    metrics.spawn_counter(&sup);
    let daemon = Daemon::without_config(sup.clone(), Shutdown::new()).with_metrics(metrics);
    sup.add(spec("crash", "echo out; exit 3"))
        .await
        .expect("add");
    sup.add(spec("idle", "exec sleep 1000")).await.expect("add");
    sup.start_autostart().await.expect("start");
    let app = crate::app(
        daemon.clone(),
        &Listener::guarded(true, Door::new("unix", crate::auth::plain_page)),
        [],
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let text = loop {
        let (status, ct, text) = scrape(&app, None).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        assert_eq!(ct, "text/plain; version=0.0.4; charset=utf-8");
        let exits = value(
            &text,
            "tend_process_exits_total{process=\"crash\",group=\"crash\",reason=\"code\"}",
        );
        if exits.is_some_and(|n| n >= 3.0) {
            break text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no crash loop:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let restarts = value(
        &text,
        "tend_process_restarts_total{process=\"crash\",group=\"crash\"}",
    );
    assert!(restarts.is_some_and(|n| n >= 2.0), "{text}");
    let logged = value(
        &text,
        "tend_process_log_bytes_total{process=\"crash\",group=\"crash\"}",
    );
    assert!(logged.is_some_and(|n| n >= 8.0), "{text}");
    assert_eq!(
        value(
            &text,
            "tend_process_state{process=\"idle\",group=\"idle\",state=\"running\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "tend_process_up{process=\"idle\",group=\"idle\"}"),
        Some(1.0)
    );
    assert!(
        value(
            &text,
            "tend_process_resident_memory_bytes{process=\"idle\",group=\"idle\"}"
        )
        .is_some_and(|n| n > 0.0),
        "{text}"
    );
    assert!(value(&text, "tend_events_total{event=\"spawned\"}").is_some_and(|n| n >= 4.0));
    assert!(
        value(
            &text,
            "tend_http_requests_total{door=\"unix\",face=\"metrics\",code=\"200\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(text.contains("tend_build_info{version=\""));

    let (_, ct, om) = scrape(&app, Some("application/openmetrics-text; version=1.0.0")).await;
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    assert!(om.ends_with("# EOF\n"));
    assert!(om.contains("# TYPE tend_process_restarts counter\n"));
    sup.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn callers_see_what_their_metrics_right_covers() {
    let (sup, _driver) = Supervisor::spawn(Options::default(), false).expect("supervisor");
    let metrics = Metrics::new();
    let mut web = spec("web", "exec sleep 1000");
    web.autostart = false;
    sup.add(web).await.expect("add");
    let nobody = Caller::new(Identity::Anonymous, None, Grants::none());
    let e = metrics
        .gather(&sup, ProcFs::shared(), &nobody)
        .await
        .expect_err("refused");
    assert_eq!(e.status, StatusCode::FORBIDDEN);
    assert!(e.message.contains("needs \"metrics\""), "{}", e.message);
    let all = metrics
        .gather(&sup, ProcFs::shared(), &Caller::internal())
        .await
        .expect("everything");
    assert!(all.iter().any(|f| f.name == "tend_processes"));
    let up = all
        .iter()
        .find(|f| f.name == "tend_process_up")
        .expect("up");
    assert_eq!(up.samples.len(), 1);
    sup.shutdown().await.expect("shutdown");
}

/// A process's labels are escaped once and shared by its samples and by
/// the next scrape; they go with the process.
#[tokio::test]
async fn process_labels_are_kept_while_the_process_is_there() {
    let (sup, _driver) = Supervisor::spawn(Options::default(), false).expect("supervisor");
    let metrics = Metrics::new();
    for name in ["web", "db"] {
        let mut s = spec(name, "exec sleep 1000");
        s.autostart = false;
        sup.add(s).await.expect("add");
    }
    let labels_of = |families: &[Family], family: &str| -> Vec<Arc<ProcessLabels>> {
        let f = families.iter().find(|f| f.name == family).expect("family");
        f.samples
            .iter()
            .map(|s| match &s.labels {
                Labels::Process(p, _) => p.clone(),
                Labels::List(l) => panic!("a process's sample with a list: {l:?}"),
            })
            .collect()
    };
    let status = sup.status().await.expect("status");
    let first = metrics.families(&status, |_| None, false);
    let up = labels_of(&first, "tend_process_up");
    let states = labels_of(&first, "tend_process_state");
    assert_eq!((up.len(), states.len()), (2, 2 * STATES.len()));
    assert!(Arc::ptr_eq(&up[0], &states[0]), "one copy per process");
    let second = metrics.families(&status, |_| None, false);
    assert!(Arc::ptr_eq(
        &up[0],
        &labels_of(&second, "tend_process_up")[0]
    ));
    assert_eq!(
        up[0].written(),
        format!("process=\"{0}\",group=\"{0}\"", up[0].process())
    );

    sup.remove("web").await.expect("remove");
    let status = sup.status().await.expect("status");
    metrics.families(&status, |_| None, false);
    let kept: Vec<String> = metrics
        .inner
        .labels
        .lock()
        .expect("labels")
        .keys()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(kept, ["db"]);
    sup.shutdown().await.expect("shutdown");
}

#[test]
fn faces_by_path() {
    assert_eq!(face_of("/v1/status"), "json");
    assert_eq!(face_of("/RPC2"), "xmlrpc");
    assert_eq!(face_of("/logtail/web/stderr"), "logtail");
    assert_eq!(face_of("/metrics"), "metrics");
    assert_eq!(face_of("/"), "web");
    assert_eq!(face_of("/nope"), "other");
}
