//! Request bodies of the OpenAI-compatible endpoints, as sent by the official SDKs. Parsing is
//! lenient about what the gateway does not use: top-level fields it does not honour are
//! ignored and listed (the `x-gateway-ignored-fields` header, and `ignored_fields` in JSON
//! bodies), never an error. Fields it honours must have the right type.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::api::error::GatewayError;

/// A parsed request and the top-level fields it carried that the gateway does not honour.
#[derive(Debug)]
pub struct Parsed<T> {
    pub request: T,
    pub ignored: Vec<String>,
}

/// Parses `body` as a JSON object into `T`, listing the top-level keys not in `honoured`.
/// Type errors name the field (`messages[1].content: invalid type ...`).
pub fn parse<T: DeserializeOwned>(body: &[u8], honoured: &[&str]) -> Result<Parsed<T>, GatewayError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| GatewayError::bad_request(format!("the request body is not valid JSON: {e}")))?;
    let Value::Object(object) = value else {
        return Err(GatewayError::bad_request("the request body must be a JSON object"));
    };
    let ignored = ignored_fields(&object, honoured);
    let request = serde_path_to_error::deserialize(Value::Object(object)).map_err(|e| {
        let path = gateway_proto::quote::shorten_quoted(&e.path().to_string());
        // serde quotes the value it rejects: a huge string must not make a huge message.
        let message = gateway_proto::quote::shorten_quoted(&e.inner().to_string());
        if path != "." {
            return GatewayError::bad_request(format!("{path}: {message}")).with_param(&path);
        }
        // At the top level the path says nothing: name the missing field itself.
        let missing = message.strip_prefix("missing field `").and_then(|rest| rest.strip_suffix('`'));
        match missing {
            Some(field) => GatewayError::bad_request(format!("{field}: required")).with_param(field),
            None => GatewayError::bad_request(message),
        }
    })?;
    Ok(Parsed { request, ignored })
}

fn ignored_fields(object: &Map<String, Value>, honoured: &[&str]) -> Vec<String> {
    object.keys().filter(|k| !honoured.contains(&k.as_str())).cloned().collect()
}

/// Message content: a string, or parts of which the text ones are used.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Clone, Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
    /// A `refusal` part's text.
    #[serde(default)]
    pub refusal: Option<String>,
}

impl Content {
    /// The text of the content. A `refusal` part (an assistant's earlier refusal, replayed)
    /// counts as its text. Images, files and audio are an error: no provider here takes them.
    pub fn text(&self, field: &str) -> Result<String, GatewayError> {
        match self {
            Self::Text(t) => Ok(t.clone()),
            Self::Parts(parts) => {
                let mut out = String::new();
                for (i, p) in parts.iter().enumerate() {
                    match (p.kind.as_str(), &p.text, &p.refusal) {
                        ("text" | "input_text" | "output_text", Some(t), _) | ("refusal", _, Some(t)) => {
                            out.push_str(t)
                        }
                        (kind @ ("input_image" | "image_url" | "image" | "input_file" | "file" | "input_audio"), ..) => {
                            return Err(GatewayError::bad_request(format!(
                                "{field}[{i}]: a content part of type {kind:?} cannot be sent: the models here take text only; send text"
                            ))
                            .with_param(field))
                        }
                        (kind, ..) => {
                            return Err(GatewayError::bad_request(format!(
                                "{field}[{i}]: content parts of type {} are not supported; send text (input_text, output_text, refusal)",
                                gateway_proto::quote::short(kind)
                            ))
                            .with_param(field))
                        }
                    }
                }
                Ok(out)
            }
        }
    }
}

// ---- /v1/chat/completions ----

pub const CHAT_HONOURED: &[&str] = &[
    "model",
    "messages",
    "stream",
    "stream_options",
    "tools",
    "tool_choice",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
];

#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    #[serde(default)]
    pub model: Option<String>,
    pub messages: Vec<ChatMessage>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub tools: Vec<ChatTool>,
    #[serde(default)]
    pub tool_choice: Option<ToolChoice>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
    #[serde(default)]
    pub temperature: Option<f32>,
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    #[serde(default)]
    pub content: Option<Content>,
    #[serde(default)]
    pub tool_calls: Vec<WireToolCall>,
    #[serde(default)]
    pub tool_call_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WireToolCall {
    pub id: String,
    pub function: WireFunctionCall,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WireFunctionCall {
    pub name: String,
    #[serde(default)]
    pub arguments: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChatTool {
    #[serde(rename = "type")]
    pub kind: String,
    pub function: FunctionDef,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FunctionDef {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub parameters: Option<Value>,
}

/// `"none"` hides the tools from the model; `"auto"`, `"required"` and a named function
/// offer them (the gateway cannot force a call).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ToolChoice {
    Mode(String),
    Named(Value),
}

impl ToolChoice {
    pub fn is_none(&self) -> bool {
        matches!(self, Self::Mode(m) if m == "none")
    }
}

// ---- /v1/completions ----

pub const COMPLETION_HONOURED: &[&str] =
    &["model", "prompt", "stream", "stream_options", "max_tokens", "temperature"];

#[derive(Debug, Deserialize)]
pub struct CompletionRequest {
    #[serde(default)]
    pub model: Option<String>,
    pub prompt: Prompt,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub temperature: Option<f32>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    One(String),
    Many(Vec<String>),
}

impl Prompt {
    /// One prompt; several (batch completions) are refused since one run answers one prompt.
    pub fn single(&self) -> Result<&str, GatewayError> {
        match self {
            Self::One(p) => Ok(p),
            Self::Many(v) if v.len() == 1 => Ok(&v[0]),
            Self::Many(v) => Err(GatewayError::bad_request(format!(
                "prompt: {} prompts given; send one prompt per request",
                v.len()
            ))
            .with_param("prompt")),
        }
    }
}

// ---- /v1/responses ----

pub const RESPONSES_HONOURED: &[&str] = &[
    "model",
    "input",
    "instructions",
    "previous_response_id",
    "store",
    "stream",
    "tools",
    "tool_choice",
    "max_output_tokens",
    "temperature",
    "metadata",
    "conversation",
    "parallel_tool_calls",
    "user",
];

#[derive(Debug, Deserialize)]
pub struct ResponsesRequest {
    #[serde(default)]
    pub model: Option<String>,
    pub input: Value,
    #[serde(default)]
    pub instructions: Option<String>,
    #[serde(default)]
    pub previous_response_id: Option<String>,
    #[serde(default = "yes")]
    pub store: bool,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub tools: Vec<ResponsesTool>,
    #[serde(default)]
    pub tool_choice: Option<ToolChoice>,
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
    #[serde(default)]
    pub temperature: Option<f32>,
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
    /// `"conv_…"` or `{"id": "conv_…"}`: the session to run on.
    #[serde(default)]
    pub conversation: Option<Conversation>,
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default)]
    pub user: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Conversation {
    Id(String),
    Object { id: String },
}

impl ResponsesRequest {
    /// The session a request names for itself, in the runbook's order: `metadata.session_id`,
    /// then `conversation`; `previous_response_id` (the chain's session) comes after these.
    pub fn named_session(&self) -> Option<(&'static str, &str)> {
        let from_metadata = self
            .metadata
            .as_ref()
            .and_then(|m| m.get("session_id"))
            .and_then(Value::as_str)
            .map(|key| ("metadata.session_id", key));
        let from_conversation = self.conversation.as_ref().map(|c| match c {
            Conversation::Id(id) | Conversation::Object { id } => ("conversation", id.as_str()),
        });
        from_metadata.or(from_conversation)
    }
}

fn yes() -> bool {
    true
}

/// The input item types of the OpenResponses spec accepted here.
pub const INPUT_ITEM_TYPES: &str = "message, function_call, function_call_output, reasoning, item_reference";

/// An input item. A message may omit `type` (the SDKs' shorthand).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InputItem {
    Message(InputMessage),
    FunctionCall {
        call_id: String,
        name: String,
        arguments: String,
    },
    FunctionCallOutput {
        call_id: String,
        output: Content,
    },
    /// A model's reasoning from an earlier turn: accepted and dropped (no provider here takes
    /// reasoning back; docs/api.md).
    Reasoning {},
    /// An item of a stored response, by its id: replaced by that item before the run.
    ItemReference {
        id: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
pub struct InputMessage {
    pub role: String,
    pub content: Content,
}

/// An input item as parsed, and as it is kept (`GET /v1/responses/{id}/input_items`): the
/// item's JSON with its `type` made explicit and a string `content` as one text part.
#[derive(Debug, Clone)]
pub struct Item {
    pub item: InputItem,
    pub json: Value,
}

impl Item {
    /// Parses `input[index]`; errors name the item and list the accepted types.
    pub fn parse(index: usize, mut json: Value) -> Result<Self, GatewayError> {
        if let Value::Object(o) = &mut json {
            if !o.contains_key("type") && o.contains_key("role") {
                o.insert("type".into(), Value::String("message".into()));
            }
            if o.get("type").and_then(Value::as_str) == Some("message") {
                if let Some(Value::String(text)) = o.get("content") {
                    let part = if o.get("role").and_then(Value::as_str) == Some("assistant") {
                        "output_text"
                    } else {
                        "input_text"
                    };
                    let parts = serde_json::json!([{ "type": part, "text": text }]);
                    o.insert("content".into(), parts);
                }
            }
        }
        let kind = json.get("type").and_then(Value::as_str);
        if let Some(kind) = kind.filter(|k| !INPUT_ITEM_TYPES.split(", ").any(|t| t == *k)) {
            return Err(GatewayError::bad_request(format!(
                "input[{index}]: items of type {} are not accepted here; the accepted types: {INPUT_ITEM_TYPES}",
                gateway_proto::quote::short(kind)
            ))
            .with_param("input"));
        }
        let item = InputItem::deserialize(&json)
            .map_err(|e| GatewayError::bad_request(format!("input[{index}]: {e}")).with_param("input"))?;
        Ok(Self { item, json })
    }

    /// The item's id, as sent or kept.
    pub fn id(&self) -> Option<&str> {
        self.json.get("id").and_then(Value::as_str)
    }

    /// Gives the item an id if it has none, with the prefix of its type.
    pub fn with_id(mut self, new_id: impl FnOnce(&str) -> String) -> Self {
        if self.id().is_none() {
            let prefix = match self.item {
                InputItem::Message(_) => "msg",
                InputItem::FunctionCall { .. } => "fc",
                InputItem::FunctionCallOutput { .. } => "fco",
                InputItem::Reasoning {} => "rs",
                InputItem::ItemReference { .. } => "ref",
            };
            if let Value::Object(o) = &mut self.json {
                o.insert("id".into(), Value::String(new_id(prefix)));
            }
        }
        self
    }
}

/// `input`: a string (one user message) or a list of items; errors name the item.
pub fn input_items(input: &Value) -> Result<Vec<Item>, GatewayError> {
    match input {
        Value::String(text) => Ok(vec![Item::parse(
            0,
            serde_json::json!({ "type": "message", "role": "user", "content": text }),
        )?]),
        Value::Array(items) => {
            items.iter().enumerate().map(|(i, item)| Item::parse(i, item.clone())).collect()
        }
        _ => Err(GatewayError::bad_request("input: send a string or a list of items").with_param("input")),
    }
}

/// A function tool in the Responses shape (flat, not nested under `function`).
#[derive(Debug, Clone, Deserialize)]
pub struct ResponsesTool {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub parameters: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_listed_not_refused() {
        let body =
            br#"{"model":"echo/echo","messages":[{"role":"user","content":"hi"}],"top_p":0.5,"seed":1}"#;
        let p: Parsed<ChatRequest> = parse(body, CHAT_HONOURED).unwrap();
        assert_eq!(p.ignored, vec!["seed".to_string(), "top_p".to_string()]);
        assert_eq!(p.request.messages.len(), 1);
    }

    #[test]
    fn type_errors_name_the_field() {
        let body = br#"{"messages":[{"role":"user","content":5}]}"#;
        let e = parse::<ChatRequest>(body, CHAT_HONOURED).unwrap_err();
        assert!(e.message.starts_with("messages[0].content"), "{}", e.message);
        let e = parse::<ChatRequest>(br#"{"model":"m"}"#, CHAT_HONOURED).unwrap_err();
        assert_eq!((e.message.as_str(), e.param.as_deref()), ("messages: required", Some("messages")));
        let e = parse::<ChatRequest>(b"[1]", CHAT_HONOURED).unwrap_err();
        assert!(e.message.contains("JSON object"), "{}", e.message);
        let e = parse::<ChatRequest>(b"{", CHAT_HONOURED).unwrap_err();
        assert!(e.message.contains("not valid JSON"), "{}", e.message);
    }

    #[test]
    fn content_parts() {
        let c: Content =
            serde_json::from_str(r#"[{"type":"text","text":"a"},{"type":"input_text","text":"b"}]"#).unwrap();
        assert_eq!(c.text("content").unwrap(), "ab");
        let c: Content = serde_json::from_str(r#"[{"type":"image_url","image_url":{}}]"#).unwrap();
        assert!(c.text("content").unwrap_err().message.contains("image_url"));
        let c: Content = serde_json::from_str(r#"[{"type":"input_file","file_id":"f"}]"#).unwrap();
        assert!(c.text("content").unwrap_err().message.contains("text only"));
    }

    #[test]
    fn responses_input_shapes() {
        let p: Parsed<ResponsesRequest> =
            parse(br#"{"model":"m","input":"hello"}"#, RESPONSES_HONOURED).unwrap();
        let items = input_items(&p.request.input).unwrap();
        assert!(matches!(&items[0].item, InputItem::Message(m) if m.role == "user"));
        assert_eq!(items[0].json["content"], serde_json::json!([{"type": "input_text", "text": "hello"}]));
        assert!(p.request.store);
        let body = br#"{"input":[{"role":"user","content":"q"},
            {"type":"function_call","call_id":"c1","name":"f","arguments":"{}"},
            {"type":"function_call_output","call_id":"c1","output":"42"}]}"#;
        let p: Parsed<ResponsesRequest> = parse(body, RESPONSES_HONOURED).unwrap();
        let items = input_items(&p.request.input).unwrap();
        assert!(matches!(&items[0].item, InputItem::Message(m) if m.role == "user"));
        assert!(matches!(&items[2].item, InputItem::FunctionCallOutput { call_id, .. } if call_id == "c1"));
        let items = input_items(&serde_json::json!([
            {"type": "item_reference", "id": "msg_1"},
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "hm"}]},
            {"type": "message", "role": "assistant", "id": "msg_2", "status": "completed",
             "content": [{"type": "refusal", "refusal": "no"}]},
        ]))
        .unwrap();
        assert!(matches!(&items[0].item, InputItem::ItemReference { id } if id == "msg_1"));
        assert!(matches!(items[1].item, InputItem::Reasoning {}));
        let InputItem::Message(m) = &items[2].item else { panic!("a message") };
        assert_eq!(m.content.text("c").unwrap(), "no");
        let given = items[2].clone().with_id(|_| unreachable!("it has an id"));
        assert_eq!(given.id(), Some("msg_2"));
        let e = input_items(&serde_json::json!(["x", {"type": "web_search_call", "id": "x"}])).unwrap_err();
        assert!(e.message.starts_with("input[0]"), "{}", e.message);
        let e = input_items(&serde_json::json!([{"type": "web_search_call", "id": "x"}])).unwrap_err();
        assert!(
            e.message.contains("web_search_call") && e.message.contains(INPUT_ITEM_TYPES),
            "{}",
            e.message
        );
    }

    #[test]
    fn prompts() {
        let p: Parsed<CompletionRequest> = parse(br#"{"prompt":["one"]}"#, COMPLETION_HONOURED).unwrap();
        assert_eq!(p.request.prompt.single().unwrap(), "one");
        let p: Parsed<CompletionRequest> = parse(br#"{"prompt":["a","b"]}"#, COMPLETION_HONOURED).unwrap();
        assert!(p.request.prompt.single().is_err());
    }
}
