//! The text exposition: Prometheus' format 0.0.4 (the default) and
//! OpenMetrics 1.0 (when the scraper's `Accept` asks for it).
//!
//! Written by hand rather than through `prometheus-client`: the same
//! [`Family`] list also feeds the OTLP exporter, the values are read at
//! scrape time rather than kept in a registry, and the format is a page of
//! rules (see `docs/ARCHITECTURE.md`).

use std::fmt::Write;

use super::model::{Family, Kind, Value};

/// Which text format to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`.
    Prometheus,
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics,
}

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics when it names
    /// `application/openmetrics-text` (as Prometheus does by default),
    /// otherwise 0.0.4.
    pub fn negotiate(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }

    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// Writes `families` in `format`. Families without samples are left out.
pub fn encode(families: &[Family], format: Format) -> String {
    let samples: usize = families.iter().map(|f| f.samples.len()).sum();
    let mut out = String::with_capacity(256 + families.len() * 128 + samples * 72);
    for f in families.iter().filter(|f| !f.samples.is_empty()) {
        let sample = f.sample_name();
        let (meta, kind) = match (format, f.kind) {
            (Format::Prometheus, Kind::Counter) => (sample.as_str(), "counter"),
            (Format::Prometheus, Kind::Gauge | Kind::Info) => (sample.as_str(), "gauge"),
            (Format::OpenMetrics, Kind::Counter) => (f.name, "counter"),
            (Format::OpenMetrics, Kind::Gauge) => (f.name, "gauge"),
            (Format::OpenMetrics, Kind::Info) => (f.name, "info"),
        };
        out.push_str("# HELP ");
        out.push_str(meta);
        out.push(' ');
        escape(&mut out, f.help, format == Format::OpenMetrics);
        out.push_str("\n# TYPE ");
        out.push_str(meta);
        out.push(' ');
        out.push_str(kind);
        out.push('\n');
        if format == Format::OpenMetrics
            && let Some(unit) = f.unit
        {
            let _ = writeln!(out, "# UNIT {meta} {unit}");
        }
        for s in &f.samples {
            out.push_str(&sample);
            if !s.labels.is_empty() {
                out.push('{');
                for (i, (k, v)) in s.labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(k);
                    out.push_str("=\"");
                    escape(&mut out, v, true);
                    out.push('"');
                }
                out.push('}');
            }
            out.push(' ');
            value(&mut out, s.value);
            out.push('\n');
        }
    }
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
    out
}

/// Backslash and newline always; the double quote in label values (and in
/// OpenMetrics' help).
fn escape(out: &mut String, s: &str, quote: bool) {
    if !s.contains(['\\', '\n', '"']) {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

fn value(out: &mut String, v: Value) {
    match v {
        Value::Int(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Float(f) if f.is_nan() => out.push_str("NaN"),
        Value::Float(f) if f.is_infinite() => out.push_str(if f > 0.0 { "+Inf" } else { "-Inf" }),
        Value::Float(f) => {
            let _ = write!(out, "{f}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::model::Family;

    fn sample_families() -> Vec<Family> {
        let mut restarts = Family::new(
            "tend_process_restarts",
            Kind::Counter,
            "Automatic restarts.",
        );
        restarts.push(
            vec![("process", "web".into()), ("group", "a\"b\\c\nd".into())],
            Value::Int(3),
        );
        let mut cpu =
            Family::new("tend_process_cpu_seconds", Kind::Counter, "CPU time.").unit("seconds");
        cpu.push(vec![("process", "web".into())], Value::Float(0.25));
        let mut build = Family::new("tend_build", Kind::Info, "The build.");
        build.push(vec![("version", "0.1.0".into())], Value::Int(1));
        let mut up = Family::new("tend_up", Kind::Gauge, "Up.");
        up.push(Vec::new(), Value::Float(f64::INFINITY));
        let empty = Family::new("tend_nothing", Kind::Gauge, "Nothing.");
        vec![restarts, cpu, build, up, empty]
    }

    #[test]
    fn prometheus_0_0_4() {
        let text = encode(&sample_families(), Format::Prometheus);
        assert_eq!(
            text,
            "# HELP tend_process_restarts_total Automatic restarts.\n\
             # TYPE tend_process_restarts_total counter\n\
             tend_process_restarts_total{process=\"web\",group=\"a\\\"b\\\\c\\nd\"} 3\n\
             # HELP tend_process_cpu_seconds_total CPU time.\n\
             # TYPE tend_process_cpu_seconds_total counter\n\
             tend_process_cpu_seconds_total{process=\"web\"} 0.25\n\
             # HELP tend_build_info The build.\n\
             # TYPE tend_build_info gauge\n\
             tend_build_info{version=\"0.1.0\"} 1\n\
             # HELP tend_up Up.\n\
             # TYPE tend_up gauge\n\
             tend_up +Inf\n"
        );
    }

    #[test]
    fn openmetrics_1_0() {
        let text = encode(&sample_families(), Format::OpenMetrics);
        assert_eq!(
            text,
            "# HELP tend_process_restarts Automatic restarts.\n\
             # TYPE tend_process_restarts counter\n\
             tend_process_restarts_total{process=\"web\",group=\"a\\\"b\\\\c\\nd\"} 3\n\
             # HELP tend_process_cpu_seconds CPU time.\n\
             # TYPE tend_process_cpu_seconds counter\n\
             # UNIT tend_process_cpu_seconds seconds\n\
             tend_process_cpu_seconds_total{process=\"web\"} 0.25\n\
             # HELP tend_build The build.\n\
             # TYPE tend_build info\n\
             tend_build_info{version=\"0.1.0\"} 1\n\
             # HELP tend_up Up.\n\
             # TYPE tend_up gauge\n\
             tend_up +Inf\n\
             # EOF\n"
        );
    }

    #[test]
    fn negotiation_follows_accept() {
        let prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prom)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(Some("text/plain")), Format::Prometheus);
        assert_eq!(Format::negotiate(None), Format::Prometheus);
    }
}
