//! `[telemetry]`: where the daemon sends its own logs, metrics and spans
//! over OTLP (see `docs/observability.md`). The daemon merges the standard
//! `OTEL_*` environment variables over these settings; this crate only
//! reads the file.

use std::time::Duration;

/// The signals the daemon can export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// Its log events (spawned, exited, gave up, ..., access decisions).
    Logs,
    /// The families of `/metrics`, pushed every `metrics_interval`.
    Metrics,
    /// A span per start or restart cycle of a process.
    Traces,
}

impl Signal {
    /// Every signal.
    pub const ALL: [Signal; 3] = [Signal::Logs, Signal::Metrics, Signal::Traces];

    /// `logs`, `metrics`, `traces`: its name in the config and in the OTLP
    /// path (`/v1/logs`).
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Logs => "logs",
            Signal::Metrics => "metrics",
            Signal::Traces => "traces",
        }
    }
}

/// The `[telemetry]` table. Without one, nothing is exported unless the
/// environment names an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// Whether the file has a `[telemetry]` table.
    pub configured: bool,
    /// The collector's base URL (`http://localhost:4318`); each signal goes
    /// to its path under it (`/v1/logs`, `/v1/metrics`, `/v1/traces`).
    pub otlp_endpoint: Option<String>,
    /// HTTP headers sent with every export (`x-honeycomb-team`, say).
    pub headers: Vec<(String, String)>,
    /// `service.name` of the daemon's resource (default `tend`).
    pub service_name: Option<String>,
    /// More resource attributes.
    pub resource: Vec<(String, String)>,
    /// What is exported (default: every signal).
    pub signals: Vec<Signal>,
    /// How often metrics are pushed (default 60 s, OpenTelemetry's).
    pub metrics_interval: Option<Duration>,
    /// How long one export may take (default 10 s).
    pub timeout: Option<Duration>,
    /// Log records and spans waiting at most (default 2048); past it new
    /// ones are dropped and counted.
    pub queue_size: Option<usize>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            configured: false,
            otlp_endpoint: None,
            headers: Vec::new(),
            service_name: None,
            resource: Vec::new(),
            signals: Signal::ALL.to_vec(),
            metrics_interval: None,
            timeout: None,
            queue_size: None,
        }
    }
}

/// Why an endpoint is not usable, if it is not: tend speaks OTLP over
/// HTTP, to an `http://` or `https://` URL.
pub fn check_endpoint(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("{url:?} is not an http:// or https:// URL"))?;
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    if url.contains(char::is_whitespace) {
        return Err(format!("{url:?} holds white space"));
    }
    Ok(())
}

/// Why a header cannot be sent, if it cannot.
pub fn check_header(name: &str, value: &str) -> Result<(), String> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err(format!("{name:?} is not an HTTP header name"));
    }
    if value.contains(['\r', '\n', '\0']) {
        return Err(format!("the value of header {name:?} holds a line break"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_headers_are_checked() {
        assert!(check_endpoint("http://localhost:4318").is_ok());
        assert!(check_endpoint("https://api.honeycomb.io").is_ok());
        assert!(check_endpoint("grpc://x").is_err());
        assert!(check_endpoint("http://").is_err());
        assert!(check_header("x-honeycomb-team", "abc").is_ok());
        assert!(check_header("bad header", "abc").is_err());
        assert!(check_header("a", "x\ny").is_err());
    }
}
