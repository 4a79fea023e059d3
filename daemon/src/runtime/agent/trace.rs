//! The spans of a run (`invoke_agent`), its model calls (`chat`) and tool calls
//! (`execute_tool`), named and attributed as the OpenTelemetry GenAI conventions say. Prompts
//! and answers are added only when `observability.capture_content` is on.
//!
//! Each attribute costs about 2,000 instructions per span between recording and export
//! (measured), so a fact is said once, on the span it belongs to: the model and usage on the
//! model call, not again on the run.

use opentelemetry::Context;
use serde_json::json;

use super::{Resolved, Run};
use crate::core::telemetry::capture_content;
use crate::core::telemetry::spans::{Attr, Kind, Traced};
use crate::runtime::agent::types::*;
use crate::runtime::providers::{ModelCall, ProviderError, Reply};

pub fn run(parent: &Context, run: &Run, r: &Resolved) -> Traced {
    Traced::start_under(
        parent,
        || format!("invoke_agent {}", r.agent_id).into(),
        Kind::Internal,
        || {
            vec![
                Attr::new("gen_ai.operation.name", "invoke_agent"),
                Attr::new("gen_ai.agent.id", r.agent_id.clone()),
                Attr::new("gateway.run.id", run.id.clone()),
            ]
        },
    )
}

/// The run's outcome; its usage and finish reasons are on its model-call spans (each call's
/// own), not repeated here: every attribute is paid for at each export.
pub fn end_run(span: &Traced, outcome: &RunOutcome) {
    span.set(|| vec![Attr::new("gateway.run.status", outcome.status.as_str())]);
    if let Some(e) = &outcome.error {
        span.fail(&e.code, || e.message.clone());
    }
    span.end();
}

pub fn model_call(run: &Traced, r: &Resolved, call: &ModelCall) -> Traced {
    let span = run.child(
        || format!("chat {}", call.model).into(),
        Kind::Client,
        || {
            let mut attributes = vec![
                Attr::new("gen_ai.operation.name", "chat"),
                Attr::new("gen_ai.provider.name", r.provider_config.kind.as_str()),
                Attr::new("gen_ai.request.model", call.model.clone()),
            ];
            if let Some(max) = call.max_output_tokens {
                attributes.push(Attr::new("gen_ai.request.max_tokens", max as i64));
            }
            if let Some(t) = call.temperature {
                attributes.push(Attr::new("gen_ai.request.temperature", t as f64));
            }
            if let Some(url) = &r.provider_config.base_url {
                if let Some(host) = host(url) {
                    attributes.push(Attr::new("server.address", host));
                }
            }
            attributes
        },
    );
    if capture_content() {
        span.set(|| vec![Attr::new("gen_ai.input.messages", messages_json(&call.messages))]);
    }
    span
}

pub fn end_model_call(span: &Traced, reply: &Result<Reply, ProviderError>) {
    match reply {
        Ok(reply) => {
            span.set(|| {
                let mut attributes = vec![
                    Attr::new("gen_ai.usage.input_tokens", reply.usage.input_tokens as i64),
                    Attr::new("gen_ai.usage.output_tokens", reply.usage.output_tokens as i64),
                    Attr::new("gen_ai.response.finish_reasons", finish_reasons(reply.finish_reason)),
                ];
                if capture_content() {
                    let answer = messages_json(std::slice::from_ref(&reply.message));
                    attributes.push(Attr::new("gen_ai.output.messages", answer));
                }
                attributes
            });
        }
        Err(e) => span.fail(e.code(), || e.to_string()),
    }
    span.end();
}

pub fn tool(run: &Traced, call: &ToolCall) -> Traced {
    run.child(
        || format!("execute_tool {}", call.name).into(),
        Kind::Internal,
        || {
            vec![
                Attr::new("gen_ai.operation.name", "execute_tool"),
                Attr::new("gen_ai.tool.name", call.name.clone()),
                Attr::new("gen_ai.tool.call.id", call.id.clone()),
                Attr::new("gen_ai.tool.type", "function"),
            ]
        },
    )
}

fn finish_reasons(finish: FinishReason) -> opentelemetry::Value {
    opentelemetry::Value::Array(vec![opentelemetry::StringValue::from(finish.as_str())].into())
}

/// Messages in the conventions' shape: `[{"role":…,"parts":[{"type":"text","content":…}]}]`.
fn messages_json(messages: &[Message]) -> String {
    let list: Vec<serde_json::Value> = messages
        .iter()
        .map(|m| {
            let mut parts = Vec::new();
            if !m.content.is_empty() {
                parts.push(json!({ "type": "text", "content": m.content }));
            }
            for c in &m.tool_calls {
                parts.push(
                    json!({ "type": "tool_call", "id": c.id, "name": c.name, "arguments": c.arguments }),
                );
            }
            json!({ "role": m.role.as_str(), "parts": parts })
        })
        .collect();
    serde_json::Value::Array(list).to_string()
}

/// The host of an http(s) URL, without credentials, port or IPv6 brackets.
fn host(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?.rsplit('@').next()?;
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => authority.split(':').next()?,
    };
    Some(host.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_addresses_are_split_without_credentials() {
        assert_eq!(host("http://127.0.0.1:8080/v1").as_deref(), Some("127.0.0.1"));
        assert_eq!(host("https://u:p@api.example.com/v1").as_deref(), Some("api.example.com"));
        assert_eq!(host("http://[::1]:11434").as_deref(), Some("::1"));
    }
}
