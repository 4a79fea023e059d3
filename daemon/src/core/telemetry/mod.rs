//! OpenTelemetry export: traces and metrics as OTLP over HTTP (protobuf) to a collector, and/or
//! as JSON lines to a file (`observability.otel_jsonl_path`). Off unless an endpoint or the
//! file is configured, and then nothing on the hot paths builds a span or an attribute: the
//! doors and the runtime ask [`spans::Traced`] and [`instruments`], which answer `None`.
//!
//! The standard variables take precedence over the config keys (the gateway's own rule:
//! environment over file): `OTEL_EXPORTER_OTLP_ENDPOINT` and its per-signal forms, `_HEADERS`,
//! `_TIMEOUT`, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER(_ARG)`,
//! `OTEL_METRIC_EXPORT_INTERVAL`, `OTEL_{TRACES,METRICS}_EXPORTER=none`, `OTEL_SDK_DISABLED`.
//! The SDK reads most of them itself; this module decides what is on.

pub mod instruments;
mod jsonl;
pub mod spans;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use gateway_config::Observability;
use opentelemetry::KeyValue;
use opentelemetry_otlp::{MetricExporter, SpanExporter, WithExportConfig};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;

use super::rotating_file::RotatingFile;

static TRACER: OnceLock<SdkTracer> = OnceLock::new();
static CAPTURE_CONTENT: AtomicBool = AtomicBool::new(false);

/// The tracer, when traces are exported.
pub fn tracer() -> Option<&'static SdkTracer> {
    TRACER.get()
}

/// Whether prompts and answers go into the model-call spans.
pub fn capture_content() -> bool {
    CAPTURE_CONTENT.load(Ordering::Relaxed)
}

/// The providers, flushed and shut down when the daemon stops.
#[derive(Default)]
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
    metrics: Option<SdkMeterProvider>,
    /// Where each signal goes, for the startup log line.
    pub destinations: Vec<String>,
}

impl Telemetry {
    /// Exports what is still buffered (bounded by the SDK's own timeouts).
    pub fn shutdown(self) {
        if let Some(t) = self.traces {
            let _ = t.shutdown();
        }
        if let Some(m) = self.metrics {
            let _ = m.shutdown();
        }
    }
}

/// Where one signal goes over OTLP: `None` when not exported that way.
#[derive(Debug, PartialEq)]
enum Otlp {
    /// The SDK resolves the URL from the variables.
    FromEnv(String),
    /// The config's base URL with the signal's path.
    Url(String),
}

impl Otlp {
    fn shown(&self) -> &str {
        match self {
            Self::FromEnv(url) | Self::Url(url) => url,
        }
    }
}

/// What the environment and the config turn on. `env` reads one variable.
#[derive(Debug, PartialEq)]
struct Plan {
    traces: Option<Otlp>,
    metrics: Option<Otlp>,
    jsonl: bool,
    capture_content: bool,
    service_name: Option<String>,
}

fn plan(o: &Observability, env: impl Fn(&str) -> Option<String>) -> Result<Plan, String> {
    let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let yes = |name: &str| set(name).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    if yes("OTEL_SDK_DISABLED") {
        return Ok(Plan {
            traces: None,
            metrics: None,
            jsonl: false,
            capture_content: false,
            service_name: None,
        });
    }
    for var in [
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    ] {
        if let Some(p) = set(var).filter(|p| p.trim() != "http/protobuf") {
            let shown: String = p.chars().take(20).collect();
            return Err(format!(
                "{var}={shown:?}: gatewayd exports OTLP over HTTP with protobuf only; unset it (or set \
                 http/protobuf) and point OTEL_EXPORTER_OTLP_ENDPOINT at the collector's HTTP port (usually 4318)"
            ));
        }
    }
    let signal = |kind: &str, path: &str| -> Option<Otlp> {
        let exporter = set(&format!("OTEL_{kind}_EXPORTER")).unwrap_or_else(|| "otlp".into());
        if exporter.split(',').all(|e| e.trim() == "none") {
            return None;
        }
        let specific = format!("OTEL_EXPORTER_OTLP_{kind}_ENDPOINT");
        if let Some(url) = set(&specific) {
            return Some(Otlp::FromEnv(url));
        }
        if let Some(base) = set("OTEL_EXPORTER_OTLP_ENDPOINT") {
            return Some(Otlp::FromEnv(format!("{}{path}", base.trim_end_matches('/'))));
        }
        o.otlp_endpoint.as_ref().map(|base| Otlp::Url(format!("{}{path}", base.trim_end_matches('/'))))
    };
    Ok(Plan {
        traces: signal("TRACES", "/v1/traces"),
        metrics: signal("METRICS", "/v1/metrics"),
        jsonl: o.otel_jsonl_path.is_some(),
        capture_content: o.capture_content || yes("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"),
        service_name: set("OTEL_SERVICE_NAME").is_none().then(|| o.service_name.clone()),
    })
}

/// Sets up the export `o` and the environment ask for. Call once, before the async runtime
/// starts (the OTLP client is a blocking one, on the SDK's export threads).
pub fn start(o: &Observability) -> Result<Telemetry, String> {
    let plan = plan(o, |name| std::env::var(name).ok())?;
    CAPTURE_CONTENT.store(plan.capture_content, Ordering::Relaxed);
    if plan.traces.is_none() && plan.metrics.is_none() && !plan.jsonl {
        return Ok(Telemetry::default());
    }
    let mut resource =
        Resource::builder().with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    if let Some(name) = &plan.service_name {
        resource = resource.with_service_name(name.clone());
    }
    let resource = resource.build();
    let jsonl = match &o.otel_jsonl_path {
        Some(path) => Some(Arc::new(
            RotatingFile::open(path.clone(), o.jsonl_max_bytes.get())
                .map_err(|e| format!("cannot open observability.otel_jsonl_path {}: {e}", path.display()))?,
        )),
        None => None,
    };
    let mut telemetry = Telemetry::default();

    let mut traces = SdkTracerProvider::builder().with_resource(resource.clone());
    let mut any_traces = false;
    if let Some(target) = &plan.traces {
        let mut exporter = SpanExporter::builder().with_http();
        if let Otlp::Url(url) = target {
            exporter = exporter.with_endpoint(url.clone());
        }
        let exporter = exporter
            .build()
            .map_err(|e| format!("cannot set up the OTLP trace export to {}: {e}", target.shown()))?;
        traces = traces.with_batch_exporter(exporter);
        telemetry.destinations.push(format!("traces to {}", target.shown()));
        any_traces = true;
    }
    if let Some(file) = &jsonl {
        traces = traces.with_batch_exporter(jsonl::Spans::new(file.clone()));
        any_traces = true;
    }
    if any_traces {
        let provider = traces.build();
        let _ = TRACER.set(opentelemetry::trace::TracerProvider::tracer(&provider, "gatewayd"));
        telemetry.traces = Some(provider);
    }

    let mut metrics = SdkMeterProvider::builder().with_resource(resource);
    let mut any_metrics = false;
    if let Some(target) = &plan.metrics {
        let mut exporter = MetricExporter::builder().with_http();
        if let Otlp::Url(url) = target {
            exporter = exporter.with_endpoint(url.clone());
        }
        let exporter = exporter
            .build()
            .map_err(|e| format!("cannot set up the OTLP metric export to {}: {e}", target.shown()))?;
        metrics = metrics.with_periodic_exporter(exporter);
        telemetry.destinations.push(format!("metrics to {}", target.shown()));
        any_metrics = true;
    }
    if let Some(file) = &jsonl {
        metrics = metrics.with_periodic_exporter(jsonl::Metrics::new(file.clone()));
        telemetry.destinations.push(format!("traces and metrics to {}", file.path().display()));
        any_metrics = true;
    }
    if any_metrics {
        let provider = metrics.build();
        instruments::install(&opentelemetry::metrics::MeterProvider::meter(&provider, "gatewayd"));
        telemetry.metrics = Some(provider);
    }
    Ok(telemetry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_with(o: &Observability, vars: &[(&str, &str)]) -> Result<Plan, String> {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        plan(o, |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn nothing_configured_exports_nothing() {
        let p = plan_with(&Observability::default(), &[]).unwrap();
        assert_eq!((p.traces, p.metrics, p.jsonl), (None, None, false));
    }

    #[test]
    fn the_variables_win_over_the_config_and_none_or_disabled_turn_export_off() {
        let o = Observability { otlp_endpoint: Some("http://cfg:4318/".into()), ..Observability::default() };
        let p = plan_with(&o, &[]).unwrap();
        assert_eq!(p.traces, Some(Otlp::Url("http://cfg:4318/v1/traces".into())));
        assert_eq!(p.metrics, Some(Otlp::Url("http://cfg:4318/v1/metrics".into())));
        let p = plan_with(&o, &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4318")]).unwrap();
        assert_eq!(p.traces, Some(Otlp::FromEnv("http://env:4318/v1/traces".into())));
        let p = plan_with(
            &o,
            &[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t/x"), ("OTEL_METRICS_EXPORTER", "none")],
        )
        .unwrap();
        assert_eq!((p.traces, p.metrics), (Some(Otlp::FromEnv("http://t/x".into())), None));
        let p = plan_with(&o, &[("OTEL_SDK_DISABLED", "TRUE")]).unwrap();
        assert_eq!((p.traces, p.metrics), (None, None));
        assert_eq!(plan_with(&o, &[("OTEL_SERVICE_NAME", "mine")]).unwrap().service_name, None);
        assert!(!p.capture_content);
        let p = plan_with(&o, &[("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")]).unwrap();
        assert!(p.capture_content);
    }

    #[test]
    fn another_protocol_is_refused_with_what_to_do() {
        let e = plan_with(&Observability::default(), &[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]).unwrap_err();
        assert!(e.contains("OTEL_EXPORTER_OTLP_PROTOCOL=\"grpc\"") && e.contains("4318"), "{e}");
        assert!(
            plan_with(&Observability::default(), &[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")]).is_ok()
        );
    }
}
