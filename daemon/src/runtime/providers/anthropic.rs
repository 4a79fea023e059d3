//! Anthropic's Messages API (`POST {base_url}/v1/messages`), streamed or not, with tool use.

use serde_json::{json, Value};

use super::answer;
use super::upstream::{quote, Upstream};
use super::{Deltas, ModelCall, ProviderError, Reply};
use crate::runtime::agent::{FinishReason, Message, Role, ToolCall, Usage};

const API_VERSION: &str = "2023-06-01";
/// The API requires max_tokens; this is used when the caller gives none.
const DEFAULT_MAX_TOKENS: u32 = 4096;

pub async fn call(
    upstream: &Upstream<'_>,
    call: ModelCall,
    deltas: &mut Deltas<'_>,
) -> Result<Reply, ProviderError> {
    let stream = upstream.config.stream;
    let body = request_body(&call, stream);
    let mut headers = vec![("anthropic-version", API_VERSION.to_owned())];
    if let Some(key) = &upstream.api_key {
        headers.push(("x-api-key", key.clone()));
    }
    // The base URL is the API's root (https://api.anthropic.com); tolerate one ending in /v1.
    let path = if upstream.base_url.ends_with("/v1") { "/messages" } else { "/v1/messages" };
    let reader = upstream.post(path, &headers, &body).await?;
    answer::read::<Accumulator>(reader, stream, parse_response, deltas).await
}

pub fn request_body(call: &ModelCall, stream: bool) -> Value {
    let system: Vec<&str> =
        call.messages.iter().filter(|m| m.role == Role::System).map(|m| m.content.as_str()).collect();
    let mut messages: Vec<Value> = Vec::new();
    for m in call.messages.iter().filter(|m| m.role != Role::System) {
        let (role, blocks) = blocks(m);
        if blocks.is_empty() {
            continue; // an empty assistant reply: the API refuses empty content
        }
        // The API wants user and assistant turns to alternate: merge neighbours of one role
        // (several tool results answer one assistant turn).
        match messages.last_mut() {
            Some(last) if last["role"] == role => {
                last["content"].as_array_mut().expect("content is a list").extend(blocks)
            }
            _ => messages.push(json!({ "role": role, "content": blocks })),
        }
    }
    let mut body = json!({
        "model": call.model,
        "max_tokens": call.max_output_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        "messages": messages,
        "stream": stream,
    });
    if !system.is_empty() {
        body["system"] = system.join("\n\n").into();
    }
    if !call.tools.is_empty() {
        body["tools"] = call
            .tools
            .iter()
            .map(|t| json!({ "name": t.name, "description": t.description, "input_schema": t.parameters }))
            .collect();
    }
    if let Some(t) = call.temperature {
        body["temperature"] = json!(t);
    }
    body
}

fn blocks(m: &Message) -> (&'static str, Vec<Value>) {
    match m.role {
        Role::Tool => (
            "user",
            vec![json!({ "type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content })],
        ),
        Role::Assistant => {
            let mut blocks = Vec::new();
            if !m.content.is_empty() {
                blocks.push(json!({ "type": "text", "text": m.content }));
            }
            for c in &m.tool_calls {
                let input: Value = serde_json::from_str(&c.arguments).unwrap_or_else(|_| json!({}));
                blocks.push(json!({ "type": "tool_use", "id": c.id, "name": c.name, "input": input }));
            }
            ("assistant", blocks)
        }
        _ if m.content.is_empty() => ("user", vec![]),
        _ => ("user", vec![json!({ "type": "text", "text": m.content })]),
    }
}

fn finish_reason(stop: Option<&str>) -> FinishReason {
    match stop {
        Some("max_tokens") => FinishReason::Length,
        Some("tool_use") => FinishReason::ToolCalls,
        _ => FinishReason::Stop,
    }
}

pub fn parse_response(v: &Value) -> Result<Reply, String> {
    let content = v["content"]
        .as_array()
        .ok_or_else(|| format!("the answer has no content: {}", quote(&v.to_string())))?;
    let mut text = String::new();
    let mut calls = Vec::new();
    for block in content {
        match block["type"].as_str() {
            Some("text") => text.push_str(block["text"].as_str().unwrap_or_default()),
            Some("tool_use") => calls.push(ToolCall {
                id: block["id"].as_str().unwrap_or_default().to_owned(),
                name: block["name"].as_str().unwrap_or_default().to_owned(),
                arguments: block["input"].to_string(),
            }),
            _ => {}
        }
    }
    Ok(Reply {
        message: Message::assistant(text, calls),
        usage: Usage {
            input_tokens: v["usage"]["input_tokens"].as_u64().unwrap_or(0),
            output_tokens: v["usage"]["output_tokens"].as_u64().unwrap_or(0),
        },
        finish_reason: finish_reason(v["stop_reason"].as_str()),
    })
}

#[derive(Default)]
struct Accumulator {
    text: String,
    /// Tool calls by content block index, their input JSON as it streams.
    calls: Vec<(u64, ToolCall)>,
    stop_reason: Option<String>,
    usage: Usage,
    stopped: bool,
}

impl answer::Accumulator for Accumulator {
    const END: &'static str = "message_stop";

    fn error_in<'v>(&self, v: &'v Value) -> Option<&'v Value> {
        (v["type"] == "error").then_some(&v["error"])
    }

    fn stopped(&self) -> bool {
        self.stopped
    }

    fn finished(&self) -> bool {
        self.stopped
    }

    fn add(&mut self, v: &Value) -> Option<String> {
        match v["type"].as_str()? {
            "message_start" => {
                self.usage.input_tokens = v["message"]["usage"]["input_tokens"].as_u64().unwrap_or(0);
            }
            "content_block_start" if v["content_block"]["type"] == "tool_use" => {
                let b = &v["content_block"];
                self.calls.push((
                    v["index"].as_u64().unwrap_or(0),
                    ToolCall {
                        id: b["id"].as_str().unwrap_or_default().to_owned(),
                        name: b["name"].as_str().unwrap_or_default().to_owned(),
                        arguments: String::new(),
                    },
                ));
            }
            "content_block_delta" => {
                let d = &v["delta"];
                match d["type"].as_str() {
                    Some("text_delta") => {
                        let text = d["text"].as_str().filter(|t| !t.is_empty())?;
                        self.text.push_str(text);
                        return Some(text.to_owned());
                    }
                    Some("input_json_delta") => {
                        let index = v["index"].as_u64().unwrap_or(0);
                        if let Some((_, call)) = self.calls.iter_mut().find(|(i, _)| *i == index) {
                            call.arguments.push_str(d["partial_json"].as_str().unwrap_or_default());
                        }
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(s) = v["delta"]["stop_reason"].as_str() {
                    self.stop_reason = Some(s.to_owned());
                }
                if let Some(n) = v["usage"]["output_tokens"].as_u64() {
                    self.usage.output_tokens = n;
                }
            }
            "message_stop" => self.stopped = true,
            _ => {}
        }
        None
    }

    fn into_reply(self) -> Reply {
        Reply {
            message: Message::assistant(self.text, self.calls.into_iter().map(|(_, c)| c).collect()),
            usage: self.usage,
            finish_reason: finish_reason(self.stop_reason.as_deref()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_results_merge_into_one_user_turn_and_system_moves_out() {
        let call = ModelCall {
            model: "m".into(),
            messages: vec![
                Message::new(Role::System, "be brief"),
                Message::user("hi"),
                Message {
                    tool_calls: vec![
                        ToolCall { id: "a".into(), name: "time".into(), arguments: "{}".into() },
                        ToolCall { id: "b".into(), name: "time".into(), arguments: "{}".into() },
                    ],
                    ..Message::new(Role::Assistant, "")
                },
                Message::tool_result("a", "1"),
                Message::tool_result("b", "2"),
            ],
            tools: vec![],
            max_output_tokens: None,
            temperature: None,
            trace_headers: Vec::new(),
        };
        let body = request_body(&call, false);
        assert_eq!(body["system"], "be brief");
        let roles: Vec<&str> =
            body["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
        assert_eq!(roles, ["user", "assistant", "user"]);
        assert_eq!(body["messages"][2]["content"].as_array().unwrap().len(), 2);
    }
}
