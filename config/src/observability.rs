//! `[observability]`: OpenTelemetry export (OTLP/HTTP and a JSONL file) and the heartbeat's
//! event log. The standard `OTEL_*` environment variables take precedence over these keys.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::schema::Bounded;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Observability {
    /// Base URL of an OTLP/HTTP receiver (`/v1/traces` and `/v1/metrics` are appended).
    /// Setting it, or `OTEL_EXPORTER_OTLP_ENDPOINT`, turns the export on.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of what is exported, unless `OTEL_SERVICE_NAME` is set.
    pub service_name: String,
    /// Prompts and answers in the model-call spans (`gen_ai.input.messages`,
    /// `gen_ai.output.messages`); also turned on by
    /// `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`.
    pub capture_content: bool,
    /// Spans and metrics also written as JSON lines (`record_type=otel_export_v1`) to this
    /// absolute path, whether or not an OTLP endpoint is set.
    pub otel_jsonl_path: Option<PathBuf>,
    /// The heartbeat's cycles and repairs as JSON lines (`runtime-events.jsonl`), at this
    /// absolute path.
    pub events_jsonl_path: Option<PathBuf>,
    /// Size at which either JSONL file is rotated to `<name>.1`.
    pub jsonl_max_bytes: Bounded<65_536, 1_073_741_824>,
}

impl Default for Observability {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: "gatewayd".into(),
            capture_content: false,
            otel_jsonl_path: None,
            events_jsonl_path: None,
            jsonl_max_bytes: Bounded(10 * 1024 * 1024),
        }
    }
}

/// What would make the export fail: (key, message) per problem.
pub fn check(o: &Observability) -> Vec<(String, String)> {
    let mut issues = Vec::new();
    if let Some(url) = &o.otlp_endpoint {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            let shown: String = url.chars().take(60).collect();
            issues.push((
                "observability.otlp_endpoint".to_owned(),
                format!("otlp_endpoint {shown:?} must start with http:// or https://, e.g. \"http://127.0.0.1:4318\""),
            ));
        }
    }
    if o.service_name.trim().is_empty() {
        issues.push(("observability.service_name".to_owned(), "service_name must not be empty".to_owned()));
    }
    for (key, path) in [("otel_jsonl_path", &o.otel_jsonl_path), ("events_jsonl_path", &o.events_jsonl_path)]
    {
        if let Some(p) = path.as_ref().filter(|p| !p.is_absolute()) {
            issues.push((
                format!("observability.{key}"),
                format!("{key} {:?}: give an absolute path", p.display().to_string()),
            ));
        }
    }
    issues
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_are_named_by_key() {
        let o = Observability {
            otlp_endpoint: Some("localhost:4318".into()),
            service_name: " ".into(),
            otel_jsonl_path: Some("otel.jsonl".into()),
            ..Observability::default()
        };
        let keys: Vec<String> = check(&o).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            ["observability.otlp_endpoint", "observability.service_name", "observability.otel_jsonl_path"]
        );
        assert!(check(&Observability::default()).is_empty());
    }
}
