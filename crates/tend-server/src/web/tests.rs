//! The dashboard's page through the router, with a real supervisor.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tend_core::{Name, Options, ProcessSpec, Supervisor};
use tower::ServiceExt;

use crate::{Daemon, Shutdown};

async fn get(d: &Daemon, uri: &str) -> (StatusCode, String, String) {
    let resp = super::router(d.clone())
        .oneshot(
            Request::builder()
                .uri(uri)
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible");
    let status = resp.status();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    (status, ct, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn the_page_shows_every_process_and_escapes_what_processes_say() {
    let (sup, _driver) = Supervisor::spawn(Options::default(), false).expect("supervisor");
    let d = Daemon::without_config(sup.clone(), Shutdown::new());
    let mut web = ProcessSpec::new(
        Name::new("web").expect("name"),
        vec!["sleep".into(), "100".into()],
    );
    web.autostart = false;
    web.stop.timeout = Duration::from_secs(2);
    sup.add(web).await.expect("add");
    // A command that does not exist: its spawn error names it, markup and all.
    let mut bad = ProcessSpec::new(
        Name::new("bad").expect("name"),
        vec!["no-such-<script>alert(1)</script>".into()],
    );
    bad.autostart = false;
    sup.add(bad).await.expect("add");
    let _ = sup.start("bad").await;
    let (status, ct, html) = get(&d, "/ui/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(ct.starts_with("text/html"), "{ct}");
    assert!(html.contains("data-name=\"web\""), "{html}");
    assert!(html.contains("data-name=\"bad\""));
    assert!(!html.contains("<script>alert"), "unescaped: {html}");
    assert!(html.contains("data-last-event-id=\""));
    // The embedded data cannot end its script element.
    let data = html.split("id=\"data\">").nth(1).expect("data");
    let data = data.split("</script>").next().expect("end");
    assert!(!data.contains('<'), "{data}");
    let v: serde_json::Value = serde_json::from_str(data).expect("JSON");
    assert_eq!(v["processes"].as_array().map(Vec::len), Some(2));
    for (uri, want) in [
        ("/ui/app.js", "javascript"),
        ("/ui/app.css", "text/css"),
        ("/ui/icon.svg", "svg"),
    ] {
        let (status, ct, _) = get(&d, uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        assert!(ct.contains(want), "{uri}: {ct}");
    }
    let (status, _, _) = get(&d, "/ui").await;
    assert_eq!(status, StatusCode::FOUND);
    sup.shutdown().await.expect("shutdown");
}

/// A process added at run time is tagged `added` on the page; the file's
/// are not.
#[tokio::test]
async fn the_page_tags_a_process_added_at_run_time() {
    let (sup, _driver) = Supervisor::spawn(Options::default(), false).expect("supervisor");
    let d = Daemon::without_config(sup.clone(), Shutdown::new());
    let spec = |name: &str| {
        let mut s = ProcessSpec::new(
            Name::new(name).expect("name"),
            vec!["sleep".into(), "100".into()],
        );
        s.autostart = false;
        s
    };
    sup.add(spec("filed")).await.expect("add");
    d.add_process(spec("extra"), false).await.expect("add");
    let (status, _, html) = get(&d, "/ui/").await;
    assert_eq!(status, StatusCode::OK);
    let row = |name: &str| {
        html.split(&format!("data-name=\"{name}\""))
            .nth(1)
            .and_then(|r| r.split("</tr>").next())
            .unwrap_or_default()
            .to_string()
    };
    let (extra, filed) = (row("extra"), row("filed"));
    assert!(extra.contains("data-k=\"origin\""), "{extra}");
    assert!(extra.contains(">added</span>"), "{extra}");
    assert!(filed.contains("data-k=\"origin\""), "{filed}");
    assert!(!filed.contains(">added</span>"), "{filed}");
    sup.shutdown().await.expect("shutdown");
}
