//! The JSONL export (`observability.otel_jsonl_path`): one line per finished span and per
//! metric data point, `{"record_type":"otel_export_v1","schema_version":1,"signal":"trace"|"metric",
//! "resource":{"service.name":"gatewayd",…},…}`, in the rotated file shared by both signals.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::{Array, KeyValue, Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use opentelemetry_sdk::Resource;
use serde_json::{json, Map, Value as Json};

use crate::core::rotating_file::RotatingFile;

fn header(signal: &str, resource: &Json) -> Map<String, Json> {
    let mut line = Map::new();
    line.insert("record_type".into(), "otel_export_v1".into());
    line.insert("schema_version".into(), 1.into());
    line.insert("signal".into(), signal.into());
    line.insert("resource".into(), resource.clone());
    line
}

fn write(file: &RotatingFile, line: Map<String, Json>) {
    let mut text = Json::Object(line).to_string();
    text.push('\n');
    // The file is best effort, like the log: a full disk must not stop the export threads.
    let _ = file.write_line(text.as_bytes());
}

fn resource_json(resource: &Resource) -> Json {
    Json::Object(resource.iter().map(|(k, v)| (k.as_str().to_owned(), value(v))).collect())
}

fn attributes<'a>(kvs: impl Iterator<Item = &'a KeyValue>) -> Json {
    Json::Object(kvs.map(|kv| (kv.key.as_str().to_owned(), value(&kv.value))).collect())
}

fn value(v: &Value) -> Json {
    match v {
        Value::Bool(b) => (*b).into(),
        Value::I64(i) => (*i).into(),
        Value::F64(f) => json!(f),
        Value::String(s) => s.as_str().into(),
        Value::Array(Array::Bool(a)) => json!(a),
        Value::Array(Array::I64(a)) => json!(a),
        Value::Array(Array::F64(a)) => json!(a),
        Value::Array(Array::String(a)) => json!(a.iter().map(|s| s.as_str()).collect::<Vec<_>>()),
        _ => Json::String(v.to_string()),
    }
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as u64
}

#[derive(Debug)]
pub struct Spans {
    file: Arc<RotatingFile>,
    resource: Json,
}

impl Spans {
    pub fn new(file: Arc<RotatingFile>) -> Self {
        Self { file, resource: Json::Object(Map::new()) }
    }
}

impl SpanExporter for Spans {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        for span in batch {
            let mut line = header("trace", &self.resource);
            let cx = &span.span_context;
            line.insert("trace_id".into(), cx.trace_id().to_string().into());
            line.insert("span_id".into(), cx.span_id().to_string().into());
            let parent = span.parent_span_id;
            let parent = (parent != opentelemetry::trace::SpanId::INVALID).then(|| parent.to_string());
            line.insert("parent_span_id".into(), json!(parent));
            line.insert("name".into(), span.name.as_ref().into());
            let kind = match span.span_kind {
                SpanKind::Server => "server",
                SpanKind::Client => "client",
                SpanKind::Producer => "producer",
                SpanKind::Consumer => "consumer",
                SpanKind::Internal => "internal",
            };
            line.insert("kind".into(), kind.into());
            line.insert("start_time_unix_nano".into(), nanos(span.start_time).into());
            line.insert("end_time_unix_nano".into(), nanos(span.end_time).into());
            let status = match &span.status {
                Status::Unset => json!({ "code": "unset" }),
                Status::Ok => json!({ "code": "ok" }),
                Status::Error { description } => json!({ "code": "error", "message": description }),
            };
            line.insert("status".into(), status);
            line.insert("attributes".into(), attributes(span.attributes.iter()));
            write(&self.file, line);
        }
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = resource_json(resource);
    }
}

#[derive(Debug)]
pub struct Metrics {
    file: Arc<RotatingFile>,
}

impl Metrics {
    pub fn new(file: Arc<RotatingFile>) -> Self {
        Self { file }
    }
}

impl PushMetricExporter for Metrics {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let resource = resource_json(metrics.resource());
        for scope in metrics.scope_metrics() {
            for metric in scope.metrics() {
                let base = |kind: &str, time: SystemTime, attrs: Json| {
                    let mut line = header("metric", &resource);
                    line.insert("name".into(), metric.name().into());
                    line.insert("unit".into(), metric.unit().into());
                    line.insert("kind".into(), kind.into());
                    line.insert("time_unix_nano".into(), nanos(time).into());
                    line.insert("attributes".into(), attrs);
                    line
                };
                match metric.data() {
                    AggregatedMetrics::F64(data) => points(&self.file, data, &base, |v| json!(v)),
                    AggregatedMetrics::U64(data) => points(&self.file, data, &base, |v| json!(v)),
                    AggregatedMetrics::I64(data) => points(&self.file, data, &base, |v| json!(v)),
                }
            }
        }
        Ok(())
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
        Ok(())
    }

    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}

fn points<T: Copy>(
    file: &RotatingFile,
    data: &MetricData<T>,
    base: &dyn Fn(&str, SystemTime, Json) -> Map<String, Json>,
    num: impl Fn(T) -> Json,
) {
    match data {
        MetricData::Gauge(g) => {
            for p in g.data_points() {
                let mut line = base("gauge", g.time(), attributes(p.attributes()));
                line.insert("value".into(), num(p.value()));
                write(file, line);
            }
        }
        MetricData::Sum(s) => {
            for p in s.data_points() {
                let mut line = base("sum", s.time(), attributes(p.attributes()));
                line.insert("monotonic".into(), s.is_monotonic().into());
                line.insert("value".into(), num(p.value()));
                write(file, line);
            }
        }
        MetricData::Histogram(h) => {
            for p in h.data_points() {
                let mut line = base("histogram", h.time(), attributes(p.attributes()));
                line.insert("count".into(), p.count().into());
                line.insert("sum".into(), num(p.sum()));
                line.insert("bounds".into(), p.bounds().collect::<Vec<f64>>().into());
                line.insert("bucket_counts".into(), p.bucket_counts().collect::<Vec<u64>>().into());
                write(file, line);
            }
        }
        // Not produced: no instrument of ours asks for exponential buckets.
        MetricData::ExponentialHistogram(_) => {}
    }
}
