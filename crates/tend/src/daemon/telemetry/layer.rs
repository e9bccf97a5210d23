//! A tracing layer that offers tend's own log lines worth exporting to the
//! OTLP queue: the access decisions (`tend::audit`) and every warning and
//! error of tend's crates. The lines that tell the supervisor's events are
//! left out (the events are exported as structured records already), and so
//! are the exporter's own complaints. It also makes an OTLP span of each
//! `reload` tracing span (target `tend::reload`, see
//! `tend_server::ConfigState::reload`): each value recorded in its `step`
//! field is a span event, and its `outcome` the status (the same for the
//! `reread`, `add_group` and `remove_group` spans of supervisorctl's
//! `update`, whose `group` is an attribute). Until telemetry
//! starts it does nothing but look at one `OnceLock`.

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use super::proto::{self, Attr, LogRecord, Severity, Span, SpanEvent, Status, s};
use super::{Item, SINK, records};

/// The target of the spans that become OTLP spans.
const SPAN_TARGET: &str = "tend::reload";
/// Steps kept per span; past it they are counted in `tend.steps_dropped`.
const MAX_STEPS: usize = 256;

/// The layer `own_log` installs beside the formatter.
pub(in crate::daemon) fn layer() -> Layer {
    Layer
}

/// See the module documentation.
pub(in crate::daemon) struct Layer;

/// A `reload` span while it runs.
struct Pending {
    span: Span,
    dropped: u64,
}

impl Pending {
    /// Takes the `step` and `outcome` fields of `values`.
    fn take(&mut self, values: &Record<'_>) {
        let mut v = Fields::default();
        values.record(&mut v);
        for (k, value) in v.attrs {
            let proto::AnyValue::Str(text) = value else {
                continue;
            };
            match k.as_str() {
                "step" => self.step(&text),
                "group" => self.span.attrs.push(s("tend.group", text)),
                "outcome" => {
                    self.span.status = match text.strip_prefix("error: ") {
                        Some(why) => Status::Error(why.to_string()),
                        None => Status::Ok,
                    };
                    self.span.attrs.push(s("tend.outcome", text));
                }
                _ => {}
            }
        }
    }

    /// `removed web` is the event `removed` with `tend.process = web`.
    fn step(&mut self, text: &str) {
        if self.span.events.len() >= MAX_STEPS {
            self.dropped += 1;
            return;
        }
        let (verb, rest) = text.split_once(' ').unwrap_or((text, ""));
        let (name, attrs) = match verb {
            "removed" => ("removed", vec![s("tend.process", rest)]),
            "replaced" => ("replaced", vec![s("tend.process", rest)]),
            "added" => ("added", vec![s("tend.process", rest)]),
            "starting" => ("starting", vec![s("tend.processes", rest)]),
            "read" => ("read", Vec::new()),
            _ => ("step", vec![s("tend.step", text)]),
        };
        self.span.events.push(SpanEvent {
            time_ns: records::now_ns(),
            name,
            attrs,
        });
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for Layer {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(sink) = SINK.get() else { return };
        if !sink.traces || attrs.metadata().target() != SPAN_TARGET {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let t = records::now_ns();
        let (trace_id, span_id) = records::ids(t);
        let mut pending = Pending {
            span: Span {
                trace_id,
                span_id,
                name: attrs.metadata().name().to_string(),
                start_ns: t,
                end_ns: t,
                attrs: Vec::new(),
                events: Vec::new(),
                status: Status::Unset,
            },
            dropped: 0,
        };
        pending.take(&Record::new(attrs.values()));
        span.extensions_mut().insert(pending);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if let Some(p) = span.extensions_mut().get_mut::<Pending>() {
            p.take(values);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(sink) = SINK.get() else { return };
        let Some(span) = ctx.span(&id) else { return };
        let Some(mut p) = span.extensions_mut().remove::<Pending>() else {
            return;
        };
        p.span.end_ns = records::now_ns();
        if p.dropped > 0 {
            p.span
                .attrs
                .push(proto::i("tend.steps_dropped", p.dropped as i64));
        }
        sink.offer(Item::Span(p.span));
    }

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
