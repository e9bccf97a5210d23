//! The OTLP messages tend sends, written as protobuf by hand: a writer of
//! the four wire types and the few messages of `opentelemetry-proto`
//! (logs, metrics, traces) with their field numbers. Writing is all we
//! need (the collector's answer is not read), which is about a page; the
//! telemetry test decodes what this writes with the official classes.

/// An attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum AnyValue {
    /// `string_value = 1`.
    Str(String),
    /// `bool_value = 2`.
    Bool(bool),
    /// `int_value = 3`.
    Int(i64),
}

/// `KeyValue { key = 1, value = 2 }`.
pub type Attr = (String, AnyValue);

/// A string attribute.
pub fn s(k: &str, v: impl Into<String>) -> Attr {
    (k.to_string(), AnyValue::Str(v.into()))
}

/// A boolean attribute.
pub fn b(k: &str, v: bool) -> Attr {
    (k.to_string(), AnyValue::Bool(v))
}

/// An integer attribute.
pub fn i(k: &str, v: i64) -> Attr {
    (k.to_string(), AnyValue::Int(v))
}

/// A protobuf writer.
#[derive(Default)]
pub struct Writer {
    buf: Vec<u8>,
}

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

impl Writer {
    /// The bytes written.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u8) {
        self.varint((u64::from(field) << 3) | u64::from(wire));
    }

    /// A varint field (enums, bools, uint32, int64), left out when 0.
    pub fn uint(&mut self, field: u32, v: u64) {
        if v != 0 {
            self.key(field, VARINT);
            self.varint(v);
        }
    }

    /// A `fixed64` field, left out when 0.
    pub fn fixed64(&mut self, field: u32, v: u64) {
        if v != 0 {
            self.key(field, FIXED64);
            self.buf.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// A `fixed32` field, left out when 0.
    pub fn fixed32(&mut self, field: u32, v: u32) {
        if v != 0 {
            self.key(field, FIXED32);
            self.buf.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// A `double` or `sfixed64` member of a oneof: always written.
    fn fixed64_always(&mut self, field: u32, bits: u64) {
        self.key(field, FIXED64);
        self.buf.extend_from_slice(&bits.to_le_bytes());
    }

    /// A `bytes` or `string` field, left out when empty.
    pub fn bytes(&mut self, field: u32, v: &[u8]) {
        if !v.is_empty() {
            self.bytes_always(field, v);
        }
    }

    fn bytes_always(&mut self, field: u32, v: &[u8]) {
        self.key(field, LEN);
        self.varint(v.len() as u64);
        self.buf.extend_from_slice(v);
    }

    /// A nested message, written by `f` (always present, even when empty).
    pub fn message(&mut self, field: u32, f: impl FnOnce(&mut Writer)) {
        let mut inner = Writer::default();
        f(&mut inner);
        self.bytes_always(field, &inner.buf);
    }

    /// `AnyValue` (its oneof member is written even when zero).
    fn any(&mut self, v: &AnyValue) {
        match v {
            AnyValue::Str(s) => self.bytes_always(1, s.as_bytes()),
            AnyValue::Bool(b) => {
                self.key(2, VARINT);
                self.varint(u64::from(*b));
            }
            AnyValue::Int(n) => {
                self.key(3, VARINT);
                self.varint(*n as u64);
            }
        }
    }

    /// Repeated `KeyValue`s as `field`.
    pub fn attrs(&mut self, field: u32, attrs: &[Attr]) {
        for (k, v) in attrs {
            self.message(field, |w| {
                w.bytes(1, k.as_bytes());
                w.message(2, |w| w.any(v));
            });
        }
    }
}

/// What every export request starts with: the resource and the scope.
#[derive(Debug, Clone)]
pub struct Origin {
    /// `Resource.attributes`: `service.name` and the rest.
    pub resource: Vec<Attr>,
    /// `InstrumentationScope.name`.
    pub scope: &'static str,
    /// `InstrumentationScope.version`.
    pub version: &'static str,
}

impl Origin {
    /// `Resource` as field 1, `Scope{Logs,Metrics,Spans}` as field 2 whose
    /// scope is its field 1 and whose items (`f`) follow as field 2.
    fn request(&self, f: impl FnOnce(&mut Writer)) -> Vec<u8> {
        let mut w = Writer::default();
        w.message(1, |w| {
            w.message(1, |w| w.attrs(1, &self.resource));
            w.message(2, |w| {
                w.message(1, |w| {
                    w.bytes(1, self.scope.as_bytes());
                    w.bytes(2, self.version.as_bytes());
                });
                f(w);
            });
        });
        w.finish()
    }
}

/// Severity of a log record (`SeverityNumber`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// 5.
    Debug,
    /// 9.
    Info,
    /// 13.
    Warn,
    /// 17.
    Error,
}

impl Severity {
    fn number(self) -> u64 {
        match self {
            Severity::Debug => 5,
            Severity::Info => 9,
            Severity::Warn => 13,
            Severity::Error => 17,
        }
    }

    fn text(self) -> &'static str {
        match self {
            Severity::Debug => "DEBUG",
            Severity::Info => "INFO",
            Severity::Warn => "WARN",
            Severity::Error => "ERROR",
        }
    }
}

/// One log record.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    /// When it happened, in nanoseconds since the Unix epoch.
    pub time_ns: u64,
    /// How serious.
    pub severity: Severity,
    /// `event_name` (`tend.process.exited`).
    pub event: &'static str,
    /// The sentence tend's own log prints.
    pub body: String,
    /// The process, pid, reason, ...
    pub attrs: Vec<Attr>,
}

/// An `ExportLogsServiceRequest`.
pub fn logs_request(origin: &Origin, records: &[LogRecord]) -> Vec<u8> {
    origin.request(|w| {
        for r in records {
            w.message(2, |w| {
                w.fixed64(1, r.time_ns);
                w.uint(2, r.severity.number());
                w.bytes(3, r.severity.text().as_bytes());
                w.message(5, |w| w.any(&AnyValue::Str(r.body.clone())));
                w.attrs(6, &r.attrs);
                w.fixed64(11, r.time_ns);
                w.bytes(12, r.event.as_bytes());
            });
        }
    })
}

/// A metric's data.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    /// `Gauge = 5`.
    Gauge,
    /// `Sum = 7`, cumulative and monotonic, since `start_ns`.
    Counter {
        /// When counting started.
        start_ns: u64,
    },
}

/// A number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// `as_int = 6` (sfixed64).
    Int(i64),
    /// `as_double = 4`.
    Double(f64),
}

/// One metric with its points (all at one time).
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// Its unit (UCUM: `s`, `By`).
    pub unit: &'static str,
    /// Gauge or counter.
    pub data: Data,
    /// Attributes and value of each point.
    pub points: Vec<(Vec<Attr>, Number)>,
}

/// An `ExportMetricsServiceRequest` of points taken at `time_ns`.
pub fn metrics_request(origin: &Origin, metrics: &[Metric], time_ns: u64) -> Vec<u8> {
    origin.request(|w| {
        for m in metrics {
            w.message(2, |w| {
                w.bytes(1, m.name.as_bytes());
                w.bytes(2, m.description.as_bytes());
                w.bytes(3, m.unit.as_bytes());
                let (field, start) = match m.data {
                    Data::Gauge => (5, 0),
                    Data::Counter { start_ns } => (7, start_ns),
                };
                w.message(field, |w| {
                    for (attrs, value) in &m.points {
                        w.message(1, |w| {
                            w.attrs(7, attrs);
                            w.fixed64(2, start);
                            w.fixed64(3, time_ns);
                            match value {
                                Number::Int(n) => w.fixed64_always(6, *n as u64),
                                Number::Double(d) => w.fixed64_always(4, d.to_bits()),
                            }
                        });
                    }
                    if field == 7 {
                        // Cumulative (2), monotonic.
                        w.uint(2, 2);
                        w.uint(3, 1);
                    }
                });
            });
        }
    })
}

/// How a span ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// It reached its goal (`STATUS_CODE_OK`).
    Ok,
    /// It failed, and why (`STATUS_CODE_ERROR`).
    Error(String),
    /// Neither (`STATUS_CODE_UNSET`): interrupted.
    Unset,
}

/// A step inside a span.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanEvent {
    /// When.
    pub time_ns: u64,
    /// What (`spawned`, `exited`, ...).
    pub name: &'static str,
    /// Its details.
    pub attrs: Vec<Attr>,
}

/// One finished span.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// 16 random bytes.
    pub trace_id: [u8; 16],
    /// 8 random bytes.
    pub span_id: [u8; 8],
    /// `start web`, `restart web`.
    pub name: String,
    /// When it began.
    pub start_ns: u64,
    /// When it ended.
    pub end_ns: u64,
    /// The process.
    pub attrs: Vec<Attr>,
    /// Its steps.
    pub events: Vec<SpanEvent>,
    /// How it ended.
    pub status: Status,
}

/// An `ExportTraceServiceRequest`.
pub fn traces_request(origin: &Origin, spans: &[Span]) -> Vec<u8> {
    origin.request(|w| {
        for sp in spans {
            w.message(2, |w| {
                w.bytes(1, &sp.trace_id);
                w.bytes(2, &sp.span_id);
                w.bytes(5, sp.name.as_bytes());
                // SPAN_KIND_INTERNAL.
                w.uint(6, 1);
                w.fixed64(7, sp.start_ns);
                w.fixed64(8, sp.end_ns);
                w.attrs(9, &sp.attrs);
                for e in &sp.events {
                    w.message(11, |w| {
                        w.fixed64(1, e.time_ns);
                        w.bytes(2, e.name.as_bytes());
                        w.attrs(3, &e.attrs);
                    });
                }
                w.message(15, |w| match &sp.status {
                    Status::Ok => w.uint(3, 1),
                    Status::Error(m) => {
                        w.bytes(2, m.as_bytes());
                        w.uint(3, 2);
                    }
                    Status::Unset => {}
                });
                // W3C trace flags: sampled.
                w.fixed32(16, 1);
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_types_are_protobuf_s() {
        let mut w = Writer::default();
        w.uint(1, 150);
        w.bytes(2, b"testing");
        w.fixed64(3, 1);
        w.uint(4, 0);
        w.bytes(5, b"");
        w.message(6, |w| w.uint(1, 1));
        assert_eq!(
            w.finish(),
            [
                0x08, 0x96, 0x01, // 1: varint 150
                0x12, 7, b't', b'e', b's', b't', b'i', b'n', b'g', // 2: "testing"
                0x19, 1, 0, 0, 0, 0, 0, 0, 0, // 3: fixed64 1
                0x32, 2, 0x08, 1, // 6: { 1: 1 }
            ]
        );
        let mut w = Writer::default();
        w.any(&AnyValue::Int(0));
        w.any(&AnyValue::Int(-1));
        assert_eq!(
            w.finish(),
            [
                0x18, 0, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
            ]
        );
    }
}
