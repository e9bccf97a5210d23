//! The settings: the file, then the `OTEL_*` variables over it.

use std::collections::HashMap;
use std::time::Duration;

use tend_config::TelemetryConfig;
use tend_config::telemetry::Signal;

use super::{ATTEMPTS, Backoff, MAX_BACKOFF, Settings};

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let m: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| m.get(k).cloned()
}

#[test]
fn nothing_is_exported_without_a_table_or_an_endpoint() {
    let none = TelemetryConfig::default();
    assert_eq!(Settings::new(&none, env(&[])), Ok(None));
    let on = Settings::new(
        &none,
        env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/")]),
    )
    .expect("valid")
    .expect("on");
    assert_eq!(on.urls[0].as_deref(), Some("http://c:4318/v1/logs"));
    assert_eq!(on.urls[1].as_deref(), Some("http://c:4318/v1/metrics"));
    let off = TelemetryConfig {
        configured: true,
        ..TelemetryConfig::default()
    };
    assert_eq!(
        Settings::new(&off, env(&[("OTEL_SDK_DISABLED", "true")])),
        Ok(None)
    );
    let dflt = Settings::new(&off, env(&[])).expect("valid").expect("on");
    assert_eq!(
        dflt.urls[2].as_deref(),
        Some("http://localhost:4318/v1/traces")
    );
    assert_eq!(dflt.interval, Duration::from_secs(60));
    assert!(
        dflt.resource
            .contains(&("service.name".into(), "tend".into()))
    );
}

#[test]
fn the_environment_beats_the_file() {
    let file = TelemetryConfig {
        configured: true,
        otlp_endpoint: Some("https://api.honeycomb.io".into()),
        headers: vec![("x-honeycomb-team".into(), "FILE".into())],
        service_name: Some("edge".into()),
        signals: vec![Signal::Logs, Signal::Metrics],
        metrics_interval: Some(Duration::from_secs(15)),
        ..TelemetryConfig::default()
    };
    let s = Settings::new(&file, env(&[])).expect("valid").expect("on");
    assert_eq!(
        s.urls[0].as_deref(),
        Some("https://api.honeycomb.io/v1/logs")
    );
    assert_eq!(s.urls[2], None, "traces are not in signals");
    assert_eq!(s.headers[0], [("x-honeycomb-team".into(), "FILE".into())]);
    assert_eq!(s.interval, Duration::from_secs(15));
    assert!(s.resource.contains(&("service.name".into(), "edge".into())));

    let s = Settings::new(
        &file,
        env(&[
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "X-Honeycomb-Team=ENV,x-honeycomb-dataset=a%20b",
            ),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://m:9/custom"),
            ("OTEL_LOGS_EXPORTER", "none"),
            ("OTEL_SERVICE_NAME", "svc"),
            ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "500"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2000"),
            ("OTEL_BLRP_MAX_QUEUE_SIZE", "8"),
        ]),
    )
    .expect("valid")
    .expect("on");
    assert_eq!(s.urls[0], None);
    assert_eq!(s.urls[1].as_deref(), Some("http://m:9/custom"));
    assert_eq!(
        s.headers[1],
        [
            ("x-honeycomb-team".into(), "ENV".into()),
            ("x-honeycomb-dataset".into(), "a b".into())
        ]
    );
    assert_eq!(s.interval, Duration::from_millis(500));
    assert_eq!(s.timeout, Duration::from_secs(2));
    assert_eq!(s.queue, 8);
    assert!(s.resource.contains(&("service.name".into(), "svc".into())));
    assert!(
        s.resource
            .contains(&("deployment.environment".into(), "prod".into()))
    );

    let bad = Settings::new(
        &file,
        env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318")]),
    );
    assert!(bad.is_err(), "{bad:?}");
    let bad = Settings::new(&file, env(&[("OTEL_METRIC_EXPORT_INTERVAL", "soon")]));
    assert!(bad.is_err(), "{bad:?}");
}

#[test]
fn a_failing_batch_is_tried_again_later_and_later() {
    let secs = Duration::from_secs;
    let mut b = Backoff::default();
    // Five tries: four waits between them, doubling.
    let waits: Vec<Duration> = (1..ATTEMPTS).map(|_| b.next(None)).collect();
    assert_eq!(waits, [secs(1), secs(2), secs(4), secs(8)]);
    // The doubling stops at the ceiling.
    for _ in 0..10 {
        b.next(None);
    }
    assert_eq!(b.next(None), MAX_BACKOFF);
    // The collector's Retry-After wins, within the ceiling.
    let mut b = Backoff::default();
    assert_eq!(b.next(Some(secs(5))), secs(5));
    assert_eq!(b.next(None), secs(2), "the doubling went on meanwhile");
    assert_eq!(b.next(Some(secs(3600))), MAX_BACKOFF);
}
