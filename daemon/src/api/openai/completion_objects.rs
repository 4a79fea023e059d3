//! The JSON objects of `/v1/chat/completions` and `/v1/completions`: whole responses and
//! streamed chunks, in the shapes the OpenAI SDKs parse.

use serde_json::{json, Value};

/// Who and when, shared by every object of one completion.
#[derive(Debug, Clone)]
pub struct Header {
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    pub model: String,
}

pub fn usage(prompt_tokens: u64, completion_tokens: u64) -> Value {
    json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    })
}

/// One tool call in an assistant message; `index` is only for streamed deltas.
pub fn tool_call(index: Option<usize>, id: &str, name: &str, arguments: &str) -> Value {
    let mut call = json!({
        "id": id,
        "type": "function",
        "function": { "name": name, "arguments": arguments },
    });
    if let Some(i) = index {
        call["index"] = json!(i);
    }
    call
}

/// A whole `chat.completion`. `content` is null when the model only called tools.
pub fn chat_completion(
    h: &Header,
    content: Option<&str>,
    tool_calls: Vec<Value>,
    finish_reason: &str,
    usage: Value,
) -> Value {
    let mut message = json!({ "role": "assistant", "content": content, "refusal": null });
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    json!({
        "id": h.id,
        "object": "chat.completion",
        "created": h.created,
        "model": h.model,
        "choices": [{ "index": 0, "message": message, "logprobs": null, "finish_reason": finish_reason }],
        "usage": usage,
    })
}

/// A `chat.completion.chunk` with one choice. With `include_usage`, every chunk but the last
/// carries `"usage": null`, as OpenAI sends it.
pub fn chat_chunk(h: &Header, delta: Value, finish_reason: Option<&str>, include_usage: bool) -> Value {
    let mut chunk = json!({
        "id": h.id,
        "object": "chat.completion.chunk",
        "created": h.created,
        "model": h.model,
        "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason }],
    });
    if include_usage {
        chunk["usage"] = Value::Null;
    }
    chunk
}

/// The last chunk of a stream asked for with `stream_options.include_usage`: no choices.
pub fn chat_usage_chunk(h: &Header, usage: Value) -> Value {
    json!({
        "id": h.id,
        "object": "chat.completion.chunk",
        "created": h.created,
        "model": h.model,
        "choices": [],
        "usage": usage,
    })
}

/// A whole `text_completion`, or one streamed piece of it (same object type either way).
pub fn text_completion(h: &Header, text: &str, finish_reason: Option<&str>, usage: Option<Value>) -> Value {
    let mut object = json!({
        "id": h.id,
        "object": "text_completion",
        "created": h.created,
        "model": h.model,
        "choices": [{ "text": text, "index": 0, "logprobs": null, "finish_reason": finish_reason }],
    });
    if let Some(u) = usage {
        object["usage"] = u;
    }
    object
}

/// The usage-only piece at the end of a streamed completion with `include_usage`.
pub fn text_usage_chunk(h: &Header, usage: Value) -> Value {
    json!({
        "id": h.id,
        "object": "text_completion",
        "created": h.created,
        "model": h.model,
        "choices": [],
        "usage": usage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header { id: "chatcmpl-1".into(), created: 1_700_000_000, model: "echo/echo".into() }
    }

    #[test]
    fn completion_with_text() {
        let c = chat_completion(&header(), Some("hi"), vec![], "stop", usage(3, 1));
        assert_eq!(c["object"], "chat.completion");
        assert_eq!(
            c["choices"][0]["message"],
            json!({"role": "assistant", "content": "hi", "refusal": null})
        );
        assert_eq!(c["choices"][0]["finish_reason"], "stop");
        assert_eq!(c["usage"]["total_tokens"], 4);
    }

    #[test]
    fn completion_with_tool_calls() {
        let calls = vec![tool_call(None, "call_1", "lookup", "{\"q\":1}")];
        let c = chat_completion(&header(), None, calls, "tool_calls", usage(1, 1));
        let m = &c["choices"][0]["message"];
        assert_eq!(m["content"], Value::Null);
        assert_eq!(m["tool_calls"][0]["function"]["name"], "lookup");
        assert_eq!(m["tool_calls"][0]["type"], "function");
        assert!(m["tool_calls"][0].get("index").is_none());
    }

    #[test]
    fn chunks() {
        let c = chat_chunk(&header(), json!({"content": "a"}), None, false);
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["choices"][0]["delta"]["content"], "a");
        assert_eq!(c["choices"][0]["finish_reason"], Value::Null);
        assert!(c.get("usage").is_none());
        assert_eq!(chat_chunk(&header(), json!({}), Some("stop"), true)["usage"], Value::Null);
        let u = chat_usage_chunk(&header(), usage(2, 5));
        assert_eq!(u["choices"], json!([]));
        assert_eq!(u["usage"]["completion_tokens"], 5);
        let t = text_completion(&header(), "x", Some("length"), Some(usage(1, 1)));
        assert_eq!(t["choices"][0]["text"], "x");
        assert_eq!(t["choices"][0]["finish_reason"], "length");
    }
}
