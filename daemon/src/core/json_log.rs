//! The JSON log line, one object per event, flat:
//! `{"time":"2026-12-04T21:15:52.355Z","level":"info","subsystem":"gatewayd::startup","message":"gatewayd ready","addr":"127.0.0.1:18789",…}`.
//! `time`, `level`, `subsystem` and `message` are the names the OpenClaw CLI's `logs` reads
//! (`logs.tail` hands it these lines); the event's own fields follow under their names (a field
//! named like one of those four gets a `field.` prefix).

use std::fmt;

use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

const RESERVED: [&str; 4] = ["time", "level", "subsystem", "message"];

pub struct JsonLine;

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let time = gateway_proto::time::rfc3339_millis(gateway_proto::time::now_ms());
        let mut line = String::with_capacity(160);
        line.push_str("{\"time\":");
        push_json(&mut line, &Value::String(time));
        line.push_str(",\"level\":");
        push_json(&mut line, &Value::String(meta.level().as_str().to_ascii_lowercase()));
        line.push_str(",\"subsystem\":");
        push_json(&mut line, &Value::String(meta.target().to_owned()));
        line.push_str(",\"message\":");
        push_json(&mut line, &Value::String(fields.message.unwrap_or_default()));
        for (name, value) in &fields.rest {
            line.push(',');
            if RESERVED.contains(name) {
                push_json(&mut line, &Value::String(format!("field.{name}")));
            } else {
                push_json(&mut line, &Value::String((*name).to_owned()));
            }
            line.push(':');
            push_json(&mut line, value);
        }
        line.push('}');
        writeln!(writer, "{line}")
    }
}

fn push_json(out: &mut String, value: &Value) {
    out.push_str(&value.to_string());
}

/// An event's fields: the message apart, the others in the order they were given.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    rest: Vec<(&'static str, Value)>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = Some(match value {
                Value::String(s) => s,
                other => other.to_string(),
            });
        } else {
            self.rest.push((field.name(), value));
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_owned()));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::String(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[test]
    fn lines_are_flat_with_the_reference_names() {
        let buffer = Buffer::default();
        let layer = tracing_subscriber::fmt::layer().event_format(JsonLine).with_writer(buffer.clone());
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(addr = "127.0.0.1:1", pid = 7u64, ok = true, level = 3, "gatewayd \"ready\"");
            tracing::warn!(error = %io::Error::other("boom"), "cannot read");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2, "{text}");
        let ready = &lines[0];
        assert!(ready["time"].as_str().unwrap().ends_with('Z'), "{ready}");
        assert_eq!(ready["level"], "info");
        assert_eq!(ready["subsystem"], module_path!());
        assert_eq!(ready["message"], "gatewayd \"ready\"");
        assert_eq!(ready["addr"], "127.0.0.1:1");
        assert_eq!(ready["pid"], 7);
        assert_eq!(ready["ok"], true);
        assert_eq!(ready["field.level"], 3);
        assert!(text.starts_with("{\"time\":"), "time comes first for people reading the file: {text}");
        assert_eq!(lines[1]["level"], "warn");
        assert_eq!(lines[1]["error"], "boom");
    }
}
