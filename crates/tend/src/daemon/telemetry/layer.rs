//! A tracing layer that offers tend's own log lines worth exporting to the
//! OTLP queue: the access decisions (`tend::audit`) and every warning and
//! error of tend's crates. The lines that tell the supervisor's events are
//! left out (the events are exported as structured records already), and so
//! are the exporter's own complaints. Until telemetry starts it does
//! nothing but look at one `OnceLock`.

use tracing::field::{Field, Visit};
use tracing::{Level, Subscriber};
use tracing_subscriber::layer::Context;

use super::proto::{Attr, LogRecord, Severity, s};
use super::{Item, SINK, records};

/// The layer `own_log` installs beside the formatter.
pub(in crate::daemon) fn layer() -> Layer {
    Layer
}

/// See the module documentation.
pub(in crate::daemon) struct Layer;

impl<S: Subscriber> tracing_subscriber::Layer<S> for Layer {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let Some(sink) = SINK.get() else { return };
        if !sink.logs {
            return;
        }
        let meta = event.metadata();
        let target = meta.target();
        let audit = target == "tend::audit";
        let ours = target.starts_with("tend");
        let skipped = target.starts_with("tend::daemon::telemetry")
            || target.starts_with("tend::daemon::own_log");
        if !audit && (!ours || skipped || *meta.level() > Level::WARN) {
            return;
        }
        let mut v = Fields::default();
        event.record(&mut v);
        v.attrs.push(s("tend.log.target", target));
        let severity = match *meta.level() {
            Level::ERROR => Severity::Error,
            Level::WARN => Severity::Warn,
            Level::INFO => Severity::Info,
            _ => Severity::Debug,
        };
        sink.offer(Item::Log(LogRecord {
            time_ns: records::now_ns(),
            severity,
            event: if audit { "tend.audit" } else { "tend.log" },
            body: v.message,
            attrs: v.attrs,
        }));
    }
}

/// The message and the other fields of an event.
#[derive(Default)]
struct Fields {
    message: String,
    attrs: Vec<Attr>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.attrs.push(s(field.name(), value));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.attrs.push(s(field.name(), format!("{value:?}")));
        }
    }
}
