//! Run events as the streams of `/v1/chat/completions` (`chat.completion.chunk`s) and
//! `/v1/completions` (`text_completion` pieces): text as it comes, the tool calls, a last
//! piece with `finish_reason`, the usage piece when asked for, then `data: [DONE]`. A failure
//! ends the stream with an `{"error"}` line and no `[DONE]`.

use serde_json::{json, Value};

use super::completion_objects::{self, Header};
use super::event_stream::{Encoder, Frames};
use super::run_outcome;
use crate::runtime::agent::{RunEvent, ToolCall};

/// Which of the two streams, that is, the shape of its pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Chat,
    Text,
}

pub struct CompletionStream {
    flavour: Flavour,
    header: Header,
    include_usage: bool,
    streamed_text: bool,
}

impl CompletionStream {
    pub fn new(flavour: Flavour, header: Header, include_usage: bool) -> Self {
        Self { flavour, header, include_usage, streamed_text: false }
    }

    /// What goes out before any event: the chat stream opens with the assistant's role.
    pub fn opening(&self) -> Frames {
        let mut first = Frames::default();
        if self.flavour == Flavour::Chat {
            first.data(&self.chat_chunk(json!({ "role": "assistant", "content": "" }), None));
        }
        first
    }

    fn chat_chunk(&self, delta: Value, finish_reason: Option<&str>) -> Value {
        completion_objects::chat_chunk(&self.header, delta, finish_reason, self.include_usage)
    }

    fn text(&self, text: &str) -> Value {
        match self.flavour {
            Flavour::Chat => self.chat_chunk(json!({ "content": text }), None),
            Flavour::Text => completion_objects::text_completion(&self.header, text, None, None),
        }
    }

    /// The piece announcing the tool calls; the text stream has none.
    fn tool_calls(&self, calls: &[ToolCall]) -> Option<Value> {
        if self.flavour == Flavour::Text || calls.is_empty() {
            return None;
        }
        let calls: Vec<Value> = calls
            .iter()
            .enumerate()
            .map(|(i, c)| completion_objects::tool_call(Some(i), &c.id, &c.name, &c.arguments))
            .collect();
        Some(self.chat_chunk(json!({ "tool_calls": calls }), None))
    }

    fn finish(&self, reason: &str) -> Value {
        match self.flavour {
            Flavour::Chat => self.chat_chunk(json!({}), Some(reason)),
            Flavour::Text => completion_objects::text_completion(&self.header, "", Some(reason), None),
        }
    }

    fn usage(&self, usage: Value) -> Value {
        match self.flavour {
            Flavour::Chat => completion_objects::chat_usage_chunk(&self.header, usage),
            Flavour::Text => completion_objects::text_usage_chunk(&self.header, usage),
        }
    }
}

impl Encoder for CompletionStream {
    type Event = RunEvent;

    fn event(&mut self, event: RunEvent, out: &mut Frames) -> bool {
        match event {
            RunEvent::Delta { text } => {
                self.streamed_text = true;
                out.data(&self.text(&text));
                false
            }
            RunEvent::Final { message, usage, finish_reason } => {
                // A provider that did not stream: its whole text as one piece.
                if !self.streamed_text && !message.content.is_empty() {
                    out.data(&self.text(&message.content));
                }
                if let Some(calls) = self.tool_calls(&message.tool_calls) {
                    out.data(&calls);
                }
                out.data(&self.finish(finish_reason.as_str()));
                if self.include_usage {
                    out.data(&self.usage(completion_objects::usage(usage.input_tokens, usage.output_tokens)));
                }
                out.done();
                true
            }
            other => run_outcome::stream_failure(other).map(|body| out.data(&body)).is_some(),
        }
    }

    fn closed(&mut self, out: &mut Frames) {
        out.data(&run_outcome::ended_early().openai_body());
    }
}
