//! `[telemetry]` (see `docs/config.md`). `otlp_endpoint` and the values of
//! `headers` expand `${VAR}` (an API key from the environment); the resource's
//! names and values are taken as written (`OTEL_SERVICE_NAME` and
//! `OTEL_RESOURCE_ATTRIBUTES` set them from the environment).

use toml::de::DeTable;

use super::value::{Field, Item, walk};
use crate::diag::{Cx, did_you_mean};
use crate::telemetry::{Signal, TelemetryConfig, check_endpoint, check_header};

/// Reads the `[telemetry]` table.
pub(super) fn read(cx: &mut Cx<'_>, item: &Item<'_>) -> TelemetryConfig {
    let mut t = TelemetryConfig {
        configured: true,
        ..TelemetryConfig::default()
    };
    if let Some(table) = cx.table(item) {
        walk(cx, "[telemetry]", table, FIELDS, &[], &mut t);
    }
    t
}

/// A table of string values, as `(key, value)` pairs in file order; with
/// `expand` (the name of the table), each value `${VAR}` expanded.
fn pairs(cx: &mut Cx<'_>, v: &Item<'_>, expand: Option<&str>) -> Option<Vec<(String, String)>> {
    let table: &DeTable<'_> = cx.table(v)?;
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    let mut out = Vec::new();
    for (k, v) in entries {
        let name: &str = k.get_ref();
        let value = match expand {
            Some(key) => cx.expanded(v, &format!("{key}.{name}")),
            None => cx.string(v).map(str::to_string),
        };
        if let Some(s) = value {
            out.push((name.to_string(), s));
        }
    }
    Some(out)
}

const FIELDS: &[Field<TelemetryConfig>] = &[
    Field {
        key: "otlp_endpoint",
        read: |cx, t, _, v| {
            let Some(s) = cx.expanded(v, "otlp_endpoint") else {
                return;
            };
            match check_endpoint(&s) {
                Ok(()) => t.otlp_endpoint = Some(s.trim_end_matches('/').to_string()),
                Err(e) => cx.error(v.span(), format!("invalid otlp_endpoint: {e}")),
            }
        },
    },
    Field {
        key: "headers",
        read: |cx, t, _, v| {
            let Some(h) = pairs(cx, v, Some("headers")) else {
                return;
            };
            for (name, value) in &h {
                if let Err(e) = check_header(name, value) {
                    cx.error(
                        v.span(),
                        format!("invalid header in [telemetry] headers: {e}"),
                    );
                }
            }
            t.headers = h;
        },
    },
    Field {
        key: "service_name",
        read: |cx, t, _, v| {
            if let Some(s) = cx.string(v) {
                t.service_name = Some(s.to_string());
            }
        },
    },
    Field {
        key: "resource",
        read: |cx, t, _, v| {
            if let Some(r) = pairs(cx, v, None) {
                t.resource = r;
            }
        },
    },
    Field {
        key: "signals",
        read: |cx, t, _, v| {
            let Some(list) = cx.string_list(v) else {
                return;
            };
            let mut signals = Vec::new();
            for s in list {
                match Signal::ALL.iter().find(|k| k.as_str() == s) {
                    Some(k) => signals.push(*k),
                    None => {
                        let hint = did_you_mean(&s, Signal::ALL.iter().map(|k| k.as_str()));
                        cx.error(
                            v.span(),
                            format!(
                                "unknown signal {s:?} in [telemetry] signals (signals are logs, metrics and traces){hint}"
                            ),
                        );
                    }
                }
            }
            t.signals = signals;
        },
    },
    Field {
        key: "metrics_interval",
        read: |cx, t, _, v| {
            if let Some(d) = cx.duration(v) {
                if d.is_zero() {
                    cx.error(v.span(), "metrics_interval must be above 0");
                } else {
                    t.metrics_interval = Some(d);
                }
            }
        },
    },
    Field {
        key: "timeout",
        read: |cx, t, _, v| {
            if let Some(d) = cx.duration(v) {
                if d.is_zero() {
                    cx.error(v.span(), "timeout must be above 0");
                } else {
                    t.timeout = Some(d);
                }
            }
        },
    },
    Field {
        key: "queue_size",
        read: |cx, t, _, v| {
            if let Some(n) = cx.int::<usize>(v, "a number of records from 1") {
                if n == 0 {
                    cx.error(v.span(), "queue_size must be at least 1");
                } else {
                    t.queue_size = Some(n);
                }
            }
        },
    },
];

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::telemetry::Signal;

    #[test]
    fn the_table_is_read_and_checked() {
        let text = r#"
[telemetry]
otlp_endpoint = "https://api.honeycomb.io/"
headers = { "x-honeycomb-team" = "KEY" }
service_name = "edge-1"
resource = { "deployment.environment" = "prod" }
signals = ["logs", "metrics"]
metrics_interval = "15s"
timeout = 5
queue_size = 100
"#;
        let c = super::super::parse(Path::new("/etc/tend/tend.toml"), text).expect("valid");
        let t = &c.telemetry;
        assert!(t.configured);
        assert_eq!(t.otlp_endpoint.as_deref(), Some("https://api.honeycomb.io"));
        assert_eq!(t.headers, [("x-honeycomb-team".into(), "KEY".into())]);
        assert_eq!(t.service_name.as_deref(), Some("edge-1"));
        assert_eq!(
            t.resource,
            [("deployment.environment".into(), "prod".into())]
        );
        assert_eq!(t.signals, [Signal::Logs, Signal::Metrics]);
        assert_eq!(t.metrics_interval, Some(Duration::from_secs(15)));
        assert_eq!(t.timeout, Some(Duration::from_secs(5)));
        assert_eq!(t.queue_size, Some(100));

        let bad = "[telemetry]\notlp_endpoint = \"localhost:4318\"\nsignals = [\"log\"]\nqueue_size = 0\nendpoint = 1\n";
        let e = super::super::parse(Path::new("tend.toml"), bad).expect_err("invalid");
        let all: Vec<String> = e.errors.iter().map(ToString::to_string).collect();
        assert_eq!(all.len(), 4, "{all:#?}");
        assert!(
            all[0].contains("is not an http:// or https:// URL"),
            "{all:#?}"
        );
        assert!(
            all[1].contains("unknown signal \"log\"") && all[1].contains("did you mean"),
            "{all:#?}"
        );
        assert!(all[2].contains("queue_size must be at least 1"), "{all:#?}");
        assert!(
            all[3].contains("unknown key \"endpoint\" in [telemetry]"),
            "{all:#?}"
        );

        let none = super::super::parse(Path::new("tend.toml"), "").expect("empty");
        assert!(!none.telemetry.configured);
    }
}
