//! The spans of a run (`invoke_agent`), its model calls (`chat`) and tool calls
//! (`execute_tool`), named and attributed as the OpenTelemetry GenAI conventions say. Prompts
//! and answers are added only when `observability.capture_content` is on.

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
                Attr::new("gen_ai.provider.name", r.provider_config.kind.as_str()),
                Attr::new("gen_ai.request.model", r.model_id.clone()),
                Attr::new("gateway.run.id", run.id.clone()),
                Attr::new("gateway.run.origin", run.origin.as_str()),
            ]
        },
    )
}

pub fn end_run(span: &Traced, outcome: &RunOutcome) {
    span.set(|| {
        let mut attributes = vec![
            Attr::new("gen_ai.usage.input_tokens", outcome.usage.input_tokens as i64),
            Attr::new("gen_ai.usage.output_tokens", outcome.usage.output_tokens as i64),
            Attr::new("gateway.run.status", format!("{:?}", outcome.status).to_lowercase()),
        ];
        if let Some(finish) = outcome.finish_reason {
            attributes.push(Attr::new("gen_ai.response.finish_reasons", finish_reasons(finish)));
        }
        attributes
    });
    if let Some(e) = &outcome.error {
        span.fail(&e.code, || e.message.clone());
    }
    span.end();
}

pub fn model_call(r: &Resolved, call: &ModelCall) -> Traced {
    let span = Traced::start(
        || format!("chat {}", call.model).into(),
        Kind::Client,
        || {
            let mut attributes = vec![
                Attr::new("gen_ai.operation.name", "chat"),
                Attr::new("gen_ai.provider.name", r.provider_config.kind.as_str()),
                Attr::new("gen_ai.request.model", call.model.clone()),
                Attr::new("gateway.provider", r.provider.clone()),
            ];
            if let Some(max) = call.max_output_tokens {
                attributes.push(Attr::new("gen_ai.request.max_tokens", max as i64));
            }
            if let Some(t) = call.temperature {
                attributes.push(Attr::new("gen_ai.request.temperature", t as f64));
            }
            if let Some(url) = &r.provider_config.base_url {
                if let Some((host, port)) = host_port(url) {
                    attributes.push(Attr::new("server.address", host));
                    attributes.push(Attr::new("server.port", port));
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

pub fn tool(call: &ToolCall) -> Traced {
    Traced::start(
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

/// Host and port of an http(s) URL, the default port when none is written.
fn host_port(url: &str) -> Option<(String, i64)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    let default = if scheme == "https" { 443 } else { 80 };
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => match port.parse() {
            Ok(p) => Some((host.trim_matches(['[', ']']).to_owned(), p)),
            Err(_) => Some((authority.trim_matches(['[', ']']).to_owned(), default)),
        },
        _ => Some((authority.trim_matches(['[', ']']).to_owned(), default)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_addresses_are_split_without_credentials() {
        assert_eq!(host_port("http://127.0.0.1:8080/v1"), Some(("127.0.0.1".into(), 8080)));
        assert_eq!(host_port("https://u:p@api.example.com/v1"), Some(("api.example.com".into(), 443)));
        assert_eq!(host_port("http://[::1]:11434"), Some(("::1".into(), 11434)));
    }
}
