//! From the OpenAI wire shapes to the engine's messages and tools, and back.

use serde_json::{json, Value};

use super::wire::{ChatMessage, ChatTool, InputItem, ResponsesTool};
use crate::api::error::GatewayError;
use crate::runtime::agent::{Message, Role, ToolCall, ToolSpec};

/// An empty object schema, for tools declared without parameters.
fn no_parameters() -> Value {
    json!({ "type": "object", "properties": {} })
}

fn role(name: &str, field: &str) -> Result<Role, GatewayError> {
    match name {
        "system" | "developer" => Ok(Role::System),
        "user" => Ok(Role::User),
        "assistant" => Ok(Role::Assistant),
        "tool" => Ok(Role::Tool),
        other => Err(GatewayError::bad_request(format!(
            "{field}: unknown role {}; use system, developer, user, assistant or tool",
            gateway_proto::quote::short(other)
        ))
        .with_param(field)),
    }
}

/// Chat messages as the engine's, in order. `role: "tool"` needs `tool_call_id`.
pub fn chat_messages(messages: &[ChatMessage]) -> Result<Vec<Message>, GatewayError> {
    if messages.is_empty() {
        return Err(GatewayError::bad_request("messages: send at least one message").with_param("messages"));
    }
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let field = format!("messages[{i}]");
            let role = role(&m.role, &format!("{field}.role"))?;
            let content = match &m.content {
                Some(c) => c.text(&format!("{field}.content"))?,
                None => String::new(),
            };
            let tool_call_id = match (role, &m.tool_call_id) {
                (Role::Tool, None) => {
                    return Err(GatewayError::bad_request(format!(
                        "{field}: a tool message needs tool_call_id (the id of the call it answers)"
                    ))
                    .with_param(&field))
                }
                (Role::Tool, Some(id)) => Some(id.clone()),
                _ => None,
            };
            let tool_calls = m
                .tool_calls
                .iter()
                .map(|c| ToolCall {
                    id: c.id.clone(),
                    name: c.function.name.clone(),
                    arguments: c.function.arguments.clone(),
                })
                .collect();
            Ok(Message { role, content, tool_calls, tool_call_id })
        })
        .collect()
}

/// For a stored session: the system text becomes instructions, and only what follows the
/// last assistant message is new (clients resend the whole conversation each time).
pub fn new_turn(messages: Vec<Message>) -> (Option<String>, Vec<Message>) {
    let system: Vec<String> =
        messages.iter().filter(|m| m.role == Role::System).map(|m| m.content.clone()).collect();
    let rest: Vec<Message> = messages.into_iter().filter(|m| m.role != Role::System).collect();
    let start = rest.iter().rposition(|m| m.role == Role::Assistant).map_or(0, |i| i + 1);
    let instructions = (!system.is_empty()).then(|| system.join("\n\n"));
    (instructions, rest[start..].to_vec())
}

pub fn chat_tools(tools: &[ChatTool]) -> Result<Vec<ToolSpec>, GatewayError> {
    tools
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if t.kind != "function" {
                return Err(GatewayError::bad_request(format!(
                    "tools[{i}]: tools of type {:?} are not supported; declare functions",
                    t.kind
                ))
                .with_param("tools"));
            }
            Ok(ToolSpec {
                name: t.function.name.clone(),
                description: t.function.description.clone().unwrap_or_default(),
                parameters: t.function.parameters.clone().unwrap_or_else(no_parameters),
            })
        })
        .collect()
}

pub fn responses_tools(tools: &[ResponsesTool]) -> Result<Vec<ToolSpec>, GatewayError> {
    tools
        .iter()
        .enumerate()
        .map(|(i, t)| match (t.kind.as_str(), &t.name) {
            ("function", Some(name)) => Ok(ToolSpec {
                name: name.clone(),
                description: t.description.clone().unwrap_or_default(),
                parameters: t.parameters.clone().unwrap_or_else(no_parameters),
            }),
            ("function", None) => {
                Err(GatewayError::bad_request(format!("tools[{i}]: a function tool needs a name"))
                    .with_param("tools"))
            }
            (kind, _) => Err(GatewayError::bad_request(format!(
                "tools[{i}]: tools of type {kind:?} are not supported; declare functions"
            ))
            .with_param("tools")),
        })
        .collect()
}

/// The Responses tools as the Response object lists them.
pub fn responses_tools_json(tools: &[ToolSpec]) -> Vec<Value> {
    tools
        .iter()
        .map(|t| {
            json!({ "type": "function", "name": t.name, "description": t.description,
                    "parameters": t.parameters, "strict": null })
        })
        .collect()
}

/// Responses input items as messages: `function_call` items join the assistant message
/// before them (or start one), `function_call_output` items are tool messages, `reasoning`
/// items are dropped. `item_reference`s must have been resolved.
pub fn input_messages<'a>(
    items: impl IntoIterator<Item = &'a InputItem>,
) -> Result<Vec<Message>, GatewayError> {
    let mut out: Vec<Message> = Vec::new();
    for (i, item) in items.into_iter().cloned().enumerate() {
        match item {
            InputItem::Message(m) => {
                let field = format!("input[{i}]");
                let role = role(&m.role, &format!("{field}.role"))?;
                if role == Role::Tool {
                    return Err(GatewayError::bad_request(format!(
                        "{field}: send tool results as function_call_output items"
                    ))
                    .with_param("input"));
                }
                out.push(Message::new(role, m.content.text(&format!("{field}.content"))?));
            }
            InputItem::FunctionCall { call_id, name, arguments } => {
                let call = ToolCall { id: call_id, name, arguments };
                match out.last_mut() {
                    Some(m) if m.role == Role::Assistant => m.tool_calls.push(call),
                    _ => out.push(Message { tool_calls: vec![call], ..Message::new(Role::Assistant, "") }),
                }
            }
            InputItem::FunctionCallOutput { call_id, output } => {
                out.push(Message::tool_result(&call_id, output.text(&format!("input[{i}].output"))?));
            }
            InputItem::Reasoning {} => {}
            InputItem::ItemReference { id } => {
                return Err(GatewayError::bad_request(format!(
                    "input[{i}]: item_reference {} was not resolved",
                    gateway_proto::quote::short(&id)
                ))
                .with_param("input"))
            }
        }
    }
    if out.is_empty() {
        return Err(GatewayError::bad_request(
            "input: send at least one message or function call (reasoning items alone are dropped)",
        )
        .with_param("input"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::openai::wire::{self, ChatRequest, Parsed};

    fn chat(body: Value) -> Result<Vec<Message>, GatewayError> {
        let p: Parsed<ChatRequest> = wire::parse(body.to_string().as_bytes(), wire::CHAT_HONOURED).unwrap();
        chat_messages(&p.request.messages)
    }

    #[test]
    fn chat_roles_and_tool_calls() {
        let m = chat(json!({"messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "time?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "now", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "noon"},
        ]}))
        .unwrap();
        assert_eq!(m[0].role, Role::System);
        assert_eq!(m[2].tool_calls[0].name, "now");
        assert_eq!(m[3].tool_call_id.as_deref(), Some("c1"));
        let (instructions, turn) = new_turn(m);
        assert_eq!(instructions.as_deref(), Some("be brief"));
        assert_eq!(turn.len(), 1);
        assert_eq!(turn[0].role, Role::Tool);

        let e = chat(json!({"messages": [{"role": "tool", "content": "x"}]})).unwrap_err();
        assert!(e.message.contains("tool_call_id"), "{}", e.message);
        let e = chat(json!({"messages": [{"role": "robot", "content": "x"}]})).unwrap_err();
        assert!(e.message.contains("robot"), "{}", e.message);
        assert!(chat(json!({"messages": []})).is_err());
    }

    #[test]
    fn responses_items() {
        let items = wire::input_items(&json!([
            {"role": "user", "content": "q"},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call", "call_id": "c2", "name": "g", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "1"},
        ]))
        .unwrap();
        let m = input_messages(items.iter().map(|i| &i.item)).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[1].role, Role::Assistant);
        assert_eq!(m[1].tool_calls.len(), 2);
        assert_eq!(m[2], Message::tool_result("c1", "1"));
    }

    #[test]
    fn tools() {
        let t: Vec<ResponsesTool> =
            serde_json::from_value(json!([{"type": "function", "name": "f"}])).unwrap();
        let spec = responses_tools(&t).unwrap();
        assert_eq!(spec[0].parameters, no_parameters());
        let t: Vec<ResponsesTool> = serde_json::from_value(json!([{"type": "web_search"}])).unwrap();
        assert!(responses_tools(&t).unwrap_err().message.contains("web_search"));
    }
}
