//! The OpenResponses objects and streaming events, built by the gateway itself: the Response
//! object with every field the specification requires, output items (`message`,
//! `function_call`), and the event sequence with `sequence_number`:
//!
//! `response.created`, `response.in_progress`, then per text message `output_item.added`,
//! `content_part.added`, `output_text.delta`..., `output_text.done`, `content_part.done`,
//! `output_item.done`; per function call `output_item.added`, `function_call_arguments.delta`,
//! `function_call_arguments.done`, `output_item.done`; then `response.completed` (or
//! `response.incomplete` when the token budget ran out, `response.failed` on an error).
//!
//! One builder serves both modes: a non-streamed request runs the same steps and keeps only
//! the final object.

use serde_json::{json, Map, Value};

use super::event_stream::Frames;

/// What the request fixed about the response.
#[derive(Debug, Clone, Default)]
pub struct ResponseInit {
    pub id: String,
    pub created_at: u64,
    pub model: String,
    pub previous_response_id: Option<String>,
    pub instructions: Option<String>,
    /// Function tools as given (flat Responses shape).
    pub tools: Vec<Value>,
    pub tool_choice: Option<Value>,
    pub parallel_tool_calls: Option<bool>,
    pub temperature: Option<f32>,
    pub max_output_tokens: Option<u32>,
    pub store: bool,
    pub metadata: Map<String, Value>,
    pub user: Option<String>,
}

pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// A function call the model made, to return to the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub call_id: String,
    pub name: String,
    pub arguments: String,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Ending {
    Completed,
    /// The output token budget ran out.
    Incomplete,
    Failed {
        code: String,
        message: String,
    },
}

pub struct ResponseBuilder {
    init: ResponseInit,
    status: &'static str,
    completed_at: Option<u64>,
    output: Vec<Value>,
    error: Value,
    incomplete_details: Value,
    usage: Value,
    sequence: u64,
    /// The text message being streamed: its output index and the text so far.
    open_text: Option<(usize, String)>,
}

impl ResponseBuilder {
    pub fn new(init: ResponseInit) -> Self {
        Self {
            init,
            status: "in_progress",
            completed_at: None,
            output: Vec::new(),
            error: Value::Null,
            incomplete_details: Value::Null,
            usage: Value::Null,
            sequence: 0,
            open_text: None,
        }
    }

    pub fn id(&self) -> &str {
        &self.init.id
    }

    pub fn status(&self) -> &'static str {
        self.status
    }

    /// The Response object as it stands, every required field present.
    pub fn object(&self) -> Value {
        let i = &self.init;
        json!({
            "id": i.id,
            "object": "response",
            "created_at": i.created_at,
            "completed_at": self.completed_at,
            "status": self.status,
            "incomplete_details": self.incomplete_details,
            "model": i.model,
            "previous_response_id": i.previous_response_id,
            "instructions": i.instructions,
            "output": self.output,
            "error": self.error,
            "tools": i.tools,
            "tool_choice": i.tool_choice.clone().unwrap_or_else(|| json!("auto")),
            "truncation": "disabled",
            "parallel_tool_calls": i.parallel_tool_calls.unwrap_or(true),
            "text": { "format": { "type": "text" } },
            "top_p": 1.0,
            "presence_penalty": 0.0,
            "frequency_penalty": 0.0,
            "top_logprobs": 0,
            "temperature": i.temperature.map_or(1.0, f64::from),
            "reasoning": null,
            "user": i.user,
            "usage": self.usage,
            "max_output_tokens": i.max_output_tokens,
            "max_tool_calls": null,
            "store": i.store,
            "background": false,
            "service_tier": "default",
            "metadata": i.metadata,
            "safety_identifier": null,
            "prompt_cache_key": null,
        })
    }

    fn emit(&mut self, out: &mut Frames, kind: &str, fields: Value) {
        let mut event = json!({ "type": kind, "sequence_number": self.sequence });
        if let (Value::Object(e), Value::Object(f)) = (&mut event, fields) {
            e.extend(f);
        }
        self.sequence += 1;
        out.named(kind, &event);
    }

    /// `response.created` and `response.in_progress`.
    pub fn start(&mut self, out: &mut Frames) {
        let response = self.object();
        self.emit(out, "response.created", json!({ "response": response }));
        let response = self.object();
        self.emit(out, "response.in_progress", json!({ "response": response }));
    }

    fn text_item(id: &str, status: &str, text: Option<&str>) -> Value {
        let content = text.map_or_else(Vec::new, |t| vec![text_part(t)]);
        json!({ "type": "message", "id": id, "status": status, "role": "assistant", "content": content })
    }

    /// A piece of assistant text; opens the message item on the first one.
    pub fn text_delta(&mut self, delta: &str, out: &mut Frames) {
        if self.open_text.is_none() {
            let index = self.output.len();
            let item = Self::text_item(&new_id("msg"), "in_progress", None);
            let item_id = item["id"].clone();
            self.output.push(item.clone());
            self.emit(out, "response.output_item.added", json!({ "output_index": index, "item": item }));
            self.emit(
                out,
                "response.content_part.added",
                json!({ "item_id": item_id, "output_index": index, "content_index": 0, "part": text_part("") }),
            );
            self.open_text = Some((index, String::new()));
        }
        let Some((index, text)) = self.open_text.as_mut() else { return };
        text.push_str(delta);
        let index = *index;
        let item_id = self.output[index]["id"].clone();
        self.emit(
            out,
            "response.output_text.delta",
            json!({ "item_id": item_id, "output_index": index, "content_index": 0, "delta": delta, "logprobs": [] }),
        );
    }

    /// Ends the text message being streamed, if any: the model turned to the gateway's own
    /// tools, and what it writes after them is a message of its own.
    pub fn end_message(&mut self, out: &mut Frames) {
        if self.open_text.is_some() {
            self.close_text(None, "completed", out);
        }
    }

    /// Closes the open text message with `text` (the run's final text, which wins over the
    /// streamed pieces) and `status`.
    fn close_text(&mut self, final_text: Option<&str>, status: &str, out: &mut Frames) {
        if self.open_text.is_none() {
            match final_text {
                Some(t) if !t.is_empty() => self.text_delta(t, out),
                _ => return,
            }
        }
        let Some((index, streamed)) = self.open_text.take() else { return };
        let text = final_text.map_or(streamed, str::to_owned);
        let item_id = self.output[index]["id"].as_str().unwrap_or_default().to_owned();
        self.emit(
            out,
            "response.output_text.done",
            json!({ "item_id": item_id, "output_index": index, "content_index": 0, "text": text, "logprobs": [] }),
        );
        self.emit(
            out,
            "response.content_part.done",
            json!({ "item_id": item_id, "output_index": index, "content_index": 0, "part": text_part(&text) }),
        );
        let item = Self::text_item(&item_id, status, Some(&text));
        self.output[index] = item.clone();
        self.emit(out, "response.output_item.done", json!({ "output_index": index, "item": item }));
    }

    fn function_call(&mut self, call: &Call, out: &mut Frames) {
        let index = self.output.len();
        let id = new_id("fc");
        let item = |status: &str, arguments: &str| {
            json!({ "type": "function_call", "id": id, "call_id": call.call_id, "name": call.name,
                    "arguments": arguments, "status": status })
        };
        self.output.push(item("in_progress", ""));
        self.emit(
            out,
            "response.output_item.added",
            json!({ "output_index": index, "item": item("in_progress", "") }),
        );
        self.emit(
            out,
            "response.function_call_arguments.delta",
            json!({ "item_id": id, "output_index": index, "delta": call.arguments }),
        );
        self.emit(
            out,
            "response.function_call_arguments.done",
            json!({ "item_id": id, "output_index": index, "arguments": call.arguments }),
        );
        let done = item("completed", &call.arguments);
        self.output[index] = done.clone();
        self.emit(out, "response.output_item.done", json!({ "output_index": index, "item": done }));
    }

    /// Ends the response: closes the text, adds the function calls, sets usage and status,
    /// and emits the terminal event.
    pub fn finish(
        &mut self,
        text: Option<&str>,
        calls: &[Call],
        usage: Option<(u64, u64)>,
        ending: Ending,
        now: u64,
        out: &mut Frames,
    ) {
        let item_status = if ending == Ending::Completed { "completed" } else { "incomplete" };
        self.close_text(text, item_status, out);
        if matches!(ending, Ending::Completed | Ending::Incomplete) {
            for call in calls {
                self.function_call(call, out);
            }
        }
        if let Some((input, output)) = usage {
            self.usage = json!({
                "input_tokens": input,
                "input_tokens_details": { "cached_tokens": 0 },
                "output_tokens": output,
                "output_tokens_details": { "reasoning_tokens": 0 },
                "total_tokens": input + output,
            });
        }
        let kind = match ending {
            Ending::Completed => {
                self.status = "completed";
                self.completed_at = Some(now);
                "response.completed"
            }
            Ending::Incomplete => {
                self.status = "incomplete";
                self.incomplete_details = json!({ "reason": "max_output_tokens" });
                "response.incomplete"
            }
            Ending::Failed { code, message } => {
                self.status = "failed";
                self.error = json!({ "code": code, "message": message });
                "response.failed"
            }
        };
        let response = self.object();
        self.emit(out, kind, json!({ "response": response }));
    }
}

fn text_part(text: &str) -> Value {
    json!({ "type": "output_text", "text": text, "annotations": [], "logprobs": [] })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builder() -> ResponseBuilder {
        ResponseBuilder::new(ResponseInit {
            id: "resp_1".into(),
            created_at: 100,
            model: "echo/echo".into(),
            store: true,
            ..Default::default()
        })
    }

    /// Parses frames back into (event name, data) pairs.
    fn events(out: &Frames) -> Vec<(String, Value)> {
        out.as_str()
            .split("\n\n")
            .filter(|b| !b.is_empty())
            .map(|block| {
                let (name, data) = block.split_once('\n').unwrap();
                let name = name.strip_prefix("event: ").unwrap().to_owned();
                (name, serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap())
            })
            .collect()
    }

    #[test]
    fn a_new_response_is_in_progress() {
        let object = builder().object();
        assert_eq!(object["object"], "response");
        assert_eq!(object["status"], "in_progress");
        assert_eq!(object["completed_at"], Value::Null);
        assert_eq!(object["output"], json!([]));
    }

    #[test]
    fn streamed_text_sequence() {
        let mut b = builder();
        let mut out = Frames::default();
        b.start(&mut out);
        b.text_delta("Hel", &mut out);
        b.text_delta("lo", &mut out);
        b.finish(Some("Hello"), &[], Some((3, 2)), Ending::Completed, 101, &mut out);
        let events = events(&out);
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        for (i, (name, data)) in events.iter().enumerate() {
            assert_eq!(data["sequence_number"], i as u64, "{name}");
            assert_eq!(data["type"], name.as_str());
        }
        let item_id = &events[2].1["item"]["id"];
        assert!(item_id.as_str().unwrap().starts_with("msg_"));
        for (_, data) in &events[3..9] {
            if data.get("item_id").is_some() {
                assert_eq!(&data["item_id"], item_id);
            }
        }
        assert_eq!(events[6].1["text"], "Hello");
        let done = &events[9].1["response"];
        assert_eq!(done["status"], "completed");
        assert_eq!(done["completed_at"], 101);
        assert_eq!(done["output"][0]["content"][0]["text"], "Hello");
        assert_eq!(done["output"][0]["status"], "completed");
        assert_eq!(done["usage"]["total_tokens"], 5);
        assert_eq!(b.object(), *done);
    }

    #[test]
    fn function_calls_and_unstreamed_text() {
        let mut b = builder();
        let mut out = Frames::default();
        b.start(&mut out);
        let call = Call { call_id: "call_1".into(), name: "lookup".into(), arguments: "{\"q\":1}".into() };
        b.finish(Some("checking"), &[call], None, Ending::Completed, 101, &mut out);
        let names: Vec<String> = events(&out).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            &names[2..],
            [
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        let object = b.object();
        assert_eq!(object["output"][1]["type"], "function_call");
        assert_eq!(object["output"][1]["call_id"], "call_1");
        assert_eq!(object["output"][1]["arguments"], "{\"q\":1}");
        assert_eq!(object["output"][1]["status"], "completed");
    }

    #[test]
    fn text_around_gateway_tools_is_two_messages() {
        let mut b = builder();
        let mut out = Frames::default();
        b.start(&mut out);
        b.text_delta("let me check", &mut out);
        b.end_message(&mut out);
        b.end_message(&mut out);
        b.text_delta("it is noon", &mut out);
        b.finish(Some("it is noon"), &[], None, Ending::Completed, 101, &mut out);
        let object = b.object();
        assert_eq!(object["output"].as_array().unwrap().len(), 2);
        assert_eq!(object["output"][0]["content"][0]["text"], "let me check");
        assert_eq!(object["output"][1]["content"][0]["text"], "it is noon");
        assert_ne!(object["output"][0]["id"], object["output"][1]["id"]);
        let done: Vec<Value> = events(&out)
            .into_iter()
            .filter(|(n, _)| n == "response.output_text.done")
            .map(|(_, d)| d["output_index"].clone())
            .collect();
        assert_eq!(done, [json!(0), json!(1)]);
    }

    #[test]
    fn failure_and_incomplete() {
        let mut b = builder();
        let mut out = Frames::default();
        b.start(&mut out);
        b.text_delta("par", &mut out);
        b.finish(
            None,
            &[],
            None,
            Ending::Failed { code: "upstream_error".into(), message: "boom".into() },
            101,
            &mut out,
        );
        let events = events(&out);
        let (name, last) = events.last().unwrap();
        assert_eq!(name, "response.failed");
        assert_eq!(last["response"]["status"], "failed");
        assert_eq!(last["response"]["error"]["code"], "upstream_error");
        assert_eq!(last["response"]["output"][0]["status"], "incomplete");
        assert_eq!(last["response"]["completed_at"], Value::Null);

        let mut b = builder();
        let mut out = Frames::default();
        b.finish(Some("cut"), &[], Some((1, 1)), Ending::Incomplete, 101, &mut out);
        let object = b.object();
        assert_eq!(object["status"], "incomplete");
        assert_eq!(object["incomplete_details"]["reason"], "max_output_tokens");
    }
}
