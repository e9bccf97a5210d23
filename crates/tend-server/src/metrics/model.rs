//! The metrics as data: families of samples, which the text exposition
//! (`/metrics`) and the OTLP exporter (in the `tend` binary) both encode, so
//! the two cannot disagree.

use std::sync::Arc;

/// What a family measures, in Prometheus' and OpenMetrics' words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (resets when its process is added again); sampled as
    /// `NAME_total`.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Constant labels with the value 1 (OpenMetrics' `info`); sampled as
    /// `NAME_info`, a gauge in the 0.0.4 format.
    Info,
}

/// One sample's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// A whole number (counts, bytes, 0/1).
    Int(u64),
    /// A measurement (seconds).
    Float(f64),
}

impl Value {
    /// The value as a float.
    pub fn as_f64(self) -> f64 {
        match self {
            Value::Int(n) => n as f64,
            Value::Float(f) => f,
        }
    }
}

/// A label value shared by many samples (a process's name and group).
pub type LabelValue = Arc<str>;

/// A process's `process` and `group` labels, shared by all of its samples,
/// with the text exposition's `process="…",group="…"` written (and
/// escaped) once: a sample of a process carries one reference to them, not
/// a list of its own.
#[derive(Debug, PartialEq, Eq)]
pub struct ProcessLabels {
    process: LabelValue,
    group: LabelValue,
    written: Box<str>,
}

impl ProcessLabels {
    /// The labels of the process `process` in `group`.
    pub fn new(process: &str, group: &str) -> ProcessLabels {
        let mut written = String::with_capacity(20 + process.len() + group.len());
        written.push_str("process=\"");
        escape_label(&mut written, process);
        written.push_str("\",group=\"");
        escape_label(&mut written, group);
        written.push('"');
        ProcessLabels {
            process: process.into(),
            group: group.into(),
            written: written.into(),
        }
    }

    /// The process's name.
    pub fn process(&self) -> &str {
        &self.process
    }

    /// Its group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// `process="…",group="…"`, escaped for the text exposition.
    pub fn written(&self) -> &str {
        &self.written
    }
}

/// Backslash, newline and double quote of a label value, as the text
/// formats (0.0.4 and OpenMetrics alike) escape them.
pub(crate) fn escape_label(out: &mut String, s: &str) {
    escape(out, s, true);
}

/// Backslash and newline always; the double quote when `quote` (label
/// values, and OpenMetrics' help).
pub(crate) fn escape(out: &mut String, s: &str, quote: bool) {
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

/// The labels of one sample.
#[derive(Debug, Clone, PartialEq)]
pub enum Labels {
    /// A process's `process` and `group`, then, when there is one, a label
    /// of a fixed set of values (`state`, `reason`, `health`).
    Process(Arc<ProcessLabels>, Option<(&'static str, &'static str)>),
    /// Names and values, in the order they are written (none: empty).
    List(Vec<(&'static str, LabelValue)>),
}

impl Labels {
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        match self {
            Labels::Process(..) => false,
            Labels::List(l) => l.is_empty(),
        }
    }

    /// Every name and value, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        let (process, list) = match self {
            Labels::Process(p, extra) => (
                Some(
                    [("process", p.process()), ("group", p.group())]
                        .into_iter()
                        .chain(*extra),
                ),
                None,
            ),
            Labels::List(l) => (None, Some(l.iter().map(|(k, v)| (*k, &**v)))),
        };
        process
            .into_iter()
            .flatten()
            .chain(list.into_iter().flatten())
    }
}

impl From<Vec<(&'static str, LabelValue)>> for Labels {
    fn from(list: Vec<(&'static str, LabelValue)>) -> Labels {
        Labels::List(list)
    }
}

/// One sample: its labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Its labels.
    pub labels: Labels,
    /// The value.
    pub value: Value,
}

/// One metric family: a name, its help, its kind and unit, and its samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// The name without a kind suffix (`tend_process_restarts`, whose
    /// samples are `tend_process_restarts_total`). It ends with the unit
    /// when there is one (`tend_process_cpu_seconds`).
    pub name: &'static str,
    /// One sentence.
    pub help: &'static str,
    /// Counter, gauge or info.
    pub kind: Kind,
    /// The base unit (`seconds`, `bytes`), if any.
    pub unit: Option<&'static str>,
    /// The samples.
    pub samples: Vec<Sample>,
}

impl Family {
    /// An empty family.
    pub fn new(name: &'static str, kind: Kind, help: &'static str) -> Family {
        Family {
            name,
            help,
            kind,
            unit: None,
            samples: Vec::new(),
        }
    }

    /// The same family with a unit.
    pub fn unit(mut self, unit: &'static str) -> Family {
        self.unit = Some(unit);
        self
    }

    /// Adds a sample.
    pub fn push(&mut self, labels: impl Into<Labels>, value: Value) {
        self.samples.push(Sample {
            labels: labels.into(),
            value,
        });
    }

    /// Adds a sample of the process `p` (with `extra`, a label of a fixed
    /// value). Nothing is allocated but, now and then, the samples' room.
    pub fn push_process(
        &mut self,
        p: &Arc<ProcessLabels>,
        extra: Option<(&'static str, &'static str)>,
        value: Value,
    ) {
        self.samples.push(Sample {
            labels: Labels::Process(p.clone(), extra),
            value,
        });
    }

    /// The same family with room for `n` samples.
    pub fn with_capacity(mut self, n: usize) -> Family {
        self.samples.reserve_exact(n);
        self
    }

    /// The name of its samples: `NAME_total` for a counter, `NAME_info` for
    /// an info, `NAME` for a gauge.
    pub fn sample_name(&self) -> String {
        match self.kind {
            Kind::Counter => format!("{}_total", self.name),
            Kind::Info => format!("{}_info", self.name),
            Kind::Gauge => self.name.to_string(),
        }
    }
}
