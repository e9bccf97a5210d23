//! The text exposition: Prometheus' format 0.0.4 (the default) and
//! OpenMetrics 1.0 (when the scraper's `Accept` asks for it).
//!
//! Written by hand rather than through `prometheus-client`: the same
//! [`Family`] list also feeds the OTLP exporter, the values are read at
//! scrape time rather than kept in a registry, and the format is a page of
//! rules (see `docs/ARCHITECTURE.md`).

use std::fmt::Write;

use super::model::{Family, Kind, Labels, Value, escape};

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
    encode_into(&mut out, families, format);
    out
}

/// [`encode`] at the end of `out` (a buffer sized from the last scrape).
/// Nothing is allocated per sample: a process's labels are written
/// already escaped ([`ProcessLabels::written`](super::model::ProcessLabels::written)),
/// numbers straight into `out`.
pub fn encode_into(out: &mut String, families: &[Family], format: Format) {
    for f in families.iter().filter(|f| !f.samples.is_empty()) {
        let (meta, kind) = match (format, f.kind) {
            (Format::Prometheus, Kind::Counter) => (Meta::Sample(f), "counter"),
            (Format::Prometheus, Kind::Gauge | Kind::Info) => (Meta::Sample(f), "gauge"),
            (Format::OpenMetrics, Kind::Counter) => (Meta::Family(f), "counter"),
            (Format::OpenMetrics, Kind::Gauge) => (Meta::Family(f), "gauge"),
            (Format::OpenMetrics, Kind::Info) => (Meta::Family(f), "info"),
        };
        out.push_str("# HELP ");
        meta.write(out);
        out.push(' ');
        escape(out, f.help, format == Format::OpenMetrics);
        out.push_str("\n# TYPE ");
        meta.write(out);
        out.push(' ');
        out.push_str(kind);
        out.push('\n');
        if format == Format::OpenMetrics
            && let Some(unit) = f.unit
        {
            out.push_str("# UNIT ");
            meta.write(out);
            out.push(' ');
            out.push_str(unit);
            out.push('\n');
        }
        for s in &f.samples {
            sample_name(out, f);
            match &s.labels {
                Labels::Process(p, extra) => {
                    out.push('{');
                    out.push_str(p.written());
                    if let Some((k, v)) = extra {
                        out.push(',');
                        label(out, k, v);
                    }
                    out.push('}');
                }
                Labels::List(l) if l.is_empty() => {}
                Labels::List(l) => {
                    out.push('{');
                    for (i, (k, v)) in l.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        label(out, k, v);
                    }
                    out.push('}');
                }
            }
            out.push(' ');
            value(out, s.value);
            out.push('\n');
        }
    }
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
}

/// The name in a family's `# HELP` and `# TYPE` lines: its samples' in
/// 0.0.4, its own in OpenMetrics.
#[derive(Clone, Copy)]
enum Meta<'a> {
    Sample(&'a Family),
    Family(&'a Family),
}

impl Meta<'_> {
    fn write(self, out: &mut String) {
        match self {
            Meta::Sample(f) => sample_name(out, f),
            Meta::Family(f) => out.push_str(f.name),
        }
    }
}

/// [`Family::sample_name`], written into `out`.
fn sample_name(out: &mut String, f: &Family) {
    out.push_str(f.name);
    match f.kind {
        Kind::Counter => out.push_str("_total"),
        Kind::Info => out.push_str("_info"),
        Kind::Gauge => {}
    }
}

fn label(out: &mut String, k: &str, v: &str) {
    out.push_str(k);
    out.push_str("=\"");
    escape(out, v, true);
    out.push('"');
}

fn value(out: &mut String, v: Value) {
    match v {
        Value::Int(n) => out.push_str(itoa::Buffer::new().format(n)),
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

    /// The same samples with their labels as a list each (as every sample
    /// had before) and as a process's shared, pre-escaped labels: the same
    /// bytes in both formats.
    #[test]
    fn shared_process_labels_write_what_a_list_writes() {
        use crate::metrics::model::ProcessLabels;
        use std::sync::Arc;
        let names = [("web", "web"), ("a\"b\\c\nd", "g\\"), ("x", "")];
        let mut listed = Family::new("tend_process_state", Kind::Gauge, "State.");
        let mut shared = listed.clone();
        let mut listed_exits =
            Family::new("tend_process_exits", Kind::Counter, "Exits \"so far\".");
        let mut shared_exits = listed_exits.clone();
        for (i, (p, g)) in names.iter().enumerate() {
            let labels = Arc::new(ProcessLabels::new(p, g));
            assert_eq!((labels.process(), labels.group()), (*p, *g));
            listed.push(
                vec![("process", (*p).into()), ("group", (*g).into())],
                Value::Float(i as f64 / 3.0),
            );
            shared.push_process(&labels, None, Value::Float(i as f64 / 3.0));
            listed_exits.push(
                vec![
                    ("process", (*p).into()),
                    ("group", (*g).into()),
                    ("reason", "code".into()),
                ],
                Value::Int(u64::MAX - i as u64),
            );
            shared_exits.push_process(
                &labels,
                Some(("reason", "code")),
                Value::Int(u64::MAX - i as u64),
            );
        }
        for format in [Format::Prometheus, Format::OpenMetrics] {
            let old = encode(&[listed.clone(), listed_exits.clone()], format);
            let new = encode(&[shared.clone(), shared_exits.clone()], format);
            assert_eq!(old, new);
            assert!(
                old.contains("process=\"a\\\"b\\\\c\\nd\",group=\"g\\\\\""),
                "{old}"
            );
            assert!(
                old.contains(",reason=\"code\"} 18446744073709551615\n"),
                "{old}"
            );
        }
        let s = &shared_exits.samples[1];
        let pairs: Vec<_> = s.labels.iter().collect();
        assert_eq!(
            pairs,
            [
                ("process", "a\"b\\c\nd"),
                ("group", "g\\"),
                ("reason", "code")
            ]
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
