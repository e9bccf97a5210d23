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

/// One sample: its labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Label names and values, in the order they are written.
    pub labels: Vec<(&'static str, LabelValue)>,
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
    pub fn push(&mut self, labels: Vec<(&'static str, LabelValue)>, value: Value) {
        self.samples.push(Sample { labels, value });
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
