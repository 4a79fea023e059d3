//! OpenAI-compatible chat completions (`POST {base_url}/chat/completions`), streamed (SSE) or
//! not, with function calling. Works with OpenAI, OpenRouter, Ollama, vLLM, llama-server and
//! LM Studio.

use serde_json::{json, Value};

use super::answer;
use super::upstream::{quote, Upstream};
use super::{Deltas, ModelCall, ProviderError, Reply};
use crate::runtime::agent::{FinishReason, Message, ToolCall, Usage};

pub async fn call(
    upstream: &Upstream<'_>,
    call: ModelCall,
    deltas: &mut Deltas<'_>,
) -> Result<Reply, ProviderError> {
    let stream = upstream.config.stream;
    let body = request_body(&call, stream);
    let headers: Vec<(&str, String)> =
        upstream.api_key.iter().map(|k| ("authorization", format!("Bearer {k}"))).collect();
    let reader = upstream.post("/chat/completions", &headers, &body).await?;
    answer::read::<Accumulator>(reader, stream, parse_response, deltas).await
}

pub fn request_body(call: &ModelCall, stream: bool) -> Value {
    let messages: Vec<Value> = call.messages.iter().map(message_json).collect();
    let mut body = json!({ "model": call.model, "messages": messages, "stream": stream });
    if stream {
        body["stream_options"] = json!({ "include_usage": true });
    }
    if !call.tools.is_empty() {
        body["tools"] = call
            .tools
            .iter()
            .map(|t| {
                json!({ "type": "function", "function": {
                    "name": t.name, "description": t.description, "parameters": t.parameters } })
            })
            .collect();
    }
    if let Some(n) = call.max_output_tokens {
        body["max_tokens"] = n.into();
    }
    if let Some(t) = call.temperature {
        body["temperature"] = json!(t);
    }
    body
}

fn message_json(m: &Message) -> Value {
    let mut v = json!({ "role": m.role.as_str(), "content": m.content });
    if !m.tool_calls.is_empty() {
        if m.content.is_empty() {
            v["content"] = Value::Null;
        }
        v["tool_calls"] = m
            .tool_calls
            .iter()
            .map(|c| json!({ "id": c.id, "type": "function", "function": { "name": c.name, "arguments": c.arguments } }))
            .collect();
    }
    if let Some(id) = &m.tool_call_id {
        v["tool_call_id"] = id.as_str().into();
    }
    v
}

fn finish_reason(s: Option<&str>, has_tool_calls: bool) -> FinishReason {
    match s {
        Some("length") => FinishReason::Length,
        Some("tool_calls" | "function_call") => FinishReason::ToolCalls,
        _ if has_tool_calls => FinishReason::ToolCalls,
        _ => FinishReason::Stop,
    }
}

fn usage(v: &Value) -> Usage {
    Usage {
        input_tokens: v["prompt_tokens"].as_u64().unwrap_or(0),
        output_tokens: v["completion_tokens"].as_u64().unwrap_or(0),
    }
}

pub fn parse_response(v: &Value) -> Result<Reply, String> {
    let choice =
        v["choices"].get(0).ok_or_else(|| format!("the answer has no choices: {}", quote(&v.to_string())))?;
    let msg = &choice["message"];
    let tool_calls: Vec<ToolCall> = msg["tool_calls"]
        .as_array()
        .map(|calls| {
            calls
                .iter()
                .map(|c| ToolCall {
                    id: c["id"].as_str().unwrap_or_default().to_owned(),
                    name: c["function"]["name"].as_str().unwrap_or_default().to_owned(),
                    arguments: c["function"]["arguments"].as_str().unwrap_or_default().to_owned(),
                })
                .collect()
        })
        .unwrap_or_default();
    let finish = finish_reason(choice["finish_reason"].as_str(), !tool_calls.is_empty());
    Ok(Reply {
        message: Message::assistant(msg["content"].as_str().unwrap_or_default(), tool_calls),
        usage: usage(&v["usage"]),
        finish_reason: finish,
    })
}

/// Builds the reply from streamed chunks.
#[derive(Default)]
struct Accumulator {
    text: String,
    /// Tool calls by their index in the stream.
    calls: Vec<ToolCall>,
    finish: Option<String>,
    usage: Usage,
    done: bool,
}

impl answer::Accumulator for Accumulator {
    const END: &'static str = "it finished";

    fn end_marker(&mut self, data: &str) -> bool {
        let done = data.trim() == "[DONE]";
        self.done |= done;
        done
    }

    fn error_in<'v>(&self, v: &'v Value) -> Option<&'v Value> {
        v.get("error")
    }

    /// Read on after the last choice: the usage chunk follows it.
    fn stopped(&self) -> bool {
        false
    }

    fn finished(&self) -> bool {
        self.done || self.finish.is_some()
    }

    fn add(&mut self, v: &Value) -> Option<String> {
        if v["usage"].is_object() {
            self.usage = usage(&v["usage"]);
        }
        let choice = v["choices"].get(0)?;
        if let Some(f) = choice["finish_reason"].as_str() {
            self.finish = Some(f.to_owned());
        }
        let delta = &choice["delta"];
        for c in delta["tool_calls"].as_array().into_iter().flatten() {
            let index = c["index"].as_u64().unwrap_or(self.calls.len() as u64) as usize;
            while self.calls.len() <= index {
                self.calls.push(ToolCall {
                    id: String::new(),
                    name: String::new(),
                    arguments: String::new(),
                });
            }
            let call = &mut self.calls[index];
            if let Some(id) = c["id"].as_str() {
                call.id = id.to_owned();
            }
            if let Some(name) = c["function"]["name"].as_str() {
                call.name.push_str(name);
            }
            if let Some(args) = c["function"]["arguments"].as_str() {
                call.arguments.push_str(args);
            }
        }
        let text = delta["content"].as_str().filter(|t| !t.is_empty())?;
        self.text.push_str(text);
        Some(text.to_owned())
    }

    fn into_reply(self) -> Reply {
        let mut calls = self.calls;
        for (i, c) in calls.iter_mut().enumerate() {
            if c.id.is_empty() {
                c.id = format!("call_{i}");
            }
        }
        let finish = finish_reason(self.finish.as_deref(), !calls.is_empty());
        Reply { message: Message::assistant(self.text, calls), usage: self.usage, finish_reason: finish }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::runtime::providers::answer::Accumulator as _;

    #[test]
    fn streamed_tool_calls_are_assembled() {
        let mut acc = Accumulator::default();
        let chunks = [
            json!({"choices":[{"delta":{"role":"assistant","content":"Hi"}}]}),
            json!({"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c1","function":{"name":"time","arguments":"{\"a\""}}]}}]}),
            json!({"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]},"finish_reason":"tool_calls"}]}),
            json!({"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}),
        ];
        let texts: Vec<Option<String>> = chunks.iter().map(|c| acc.add(c)).collect();
        assert_eq!(texts[0].as_deref(), Some("Hi"));
        let reply = acc.into_reply();
        assert_eq!(reply.finish_reason, FinishReason::ToolCalls);
        assert_eq!(
            reply.message.tool_calls[0],
            ToolCall { id: "c1".into(), name: "time".into(), arguments: "{\"a\":1}".into() }
        );
        assert_eq!(reply.usage, Usage { input_tokens: 3, output_tokens: 4 });
    }
}
