//! The values the agent runtime takes and gives: messages, tool calls, run requests, the events
//! a run streams and how it ended. The WebSocket methods and the HTTP APIs share them.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::User => "user",
            Self::Assistant => "assistant",
            Self::Tool => "tool",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "system" => Self::System,
            "user" => Self::User,
            "assistant" => Self::Assistant,
            "tool" => Self::Tool,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub role: Role,
    pub content: String,
    /// An assistant asking for tools.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// Role `Tool`: the call this answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self { role, content: content.into(), tool_calls: Vec::new(), tool_call_id: None }
    }

    pub fn user(content: impl Into<String>) -> Self {
        Self::new(Role::User, content)
    }

    /// An assistant reply; tool calls without arguments get an empty object.
    pub fn assistant(content: impl Into<String>, mut tool_calls: Vec<ToolCall>) -> Self {
        for call in &mut tool_calls {
            if call.arguments.trim().is_empty() {
                call.arguments = "{}".into();
            }
        }
        Self { tool_calls, ..Self::new(Role::Assistant, content) }
    }

    pub fn tool_result(call_id: &str, output: impl Into<String>) -> Self {
        Self { tool_call_id: Some(call_id.to_owned()), ..Self::new(Role::Tool, output) }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments as JSON text, as the model wrote them.
    pub arguments: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: serde_json::Value,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl Usage {
    pub fn add(&mut self, other: Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
            Self::ToolCalls => "tool_calls",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunOrigin {
    Ws,
    #[default]
    Http,
    Hook,
    Heartbeat,
    /// A message from a chat channel (IRC, ...).
    Channel,
    /// A scheduled job.
    Cron,
}

impl RunOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ws => "ws",
            Self::Http => "http",
            Self::Hook => "hook",
            Self::Heartbeat => "heartbeat",
            Self::Channel => "channel",
            Self::Cron => "cron",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    /// Some: stateful, `input` is appended to the stored history and the turn is stored.
    /// None: ephemeral, `input` is the whole conversation and nothing is stored.
    pub session_key: Option<String>,
    /// Agent id; None: the default agent (`main`).
    pub agent: Option<String>,
    /// A model id as listed by `models()`; None: the agent's model.
    pub model: Option<String>,
    pub input: Vec<Message>,
    /// Extra system text for this run.
    pub instructions: Option<String>,
    /// Tools the caller runs itself: if the model calls one, the run ends with
    /// `FinishReason::ToolCalls` and the calls in the final message.
    pub client_tools: Vec<ToolSpec>,
    pub max_output_tokens: Option<u32>,
    pub temperature: Option<f32>,
    /// The same key again (within `runs.idempotency_ttl_ms`) joins the run it started.
    pub idempotency_key: Option<String>,
    pub origin: RunOrigin,
    /// The run is aborted (and its upstream request closed) when the handle's receiver is
    /// dropped before the run ended: for HTTP callers, whose client may go away.
    pub cancel_on_drop: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RunEvent {
    Started {
        run_id: String,
        session_key: Option<String>,
        model: String,
    },
    /// Assistant text as it streams.
    Delta {
        text: String,
    },
    /// A gateway-side tool begins.
    ToolStart {
        call: ToolCall,
    },
    ToolResult {
        call_id: String,
        name: String,
        output: String,
        is_error: bool,
    },
    Final {
        message: Message,
        usage: Usage,
        finish_reason: FinishReason,
    },
    /// `code`: "upstream_unavailable", "upstream_error", "timeout", "store", "internal".
    Error {
        code: &'static str,
        message: String,
    },
    Aborted,
}

impl RunEvent {
    /// Whether the run ends with this event.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Final { .. } | Self::Error { .. } | Self::Aborted)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Queued,
    Running,
    Ok,
    Error,
    Aborted,
    /// The daemon stopped (or died) while the run was queued or running.
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Ok => "ok",
            Self::Error => "error",
            Self::Aborted => "aborted",
            Self::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> RunStatus {
        match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "ok" => Self::Ok,
            "error" => Self::Error,
            "aborted" => Self::Aborted,
            _ => Self::Interrupted,
        }
    }
}

/// How a run ended, for `agent.wait` and late joiners.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunOutcome {
    pub run_id: String,
    pub session_key: Option<String>,
    pub status: RunStatus,
    pub model: String,
    pub message: Option<Message>,
    pub usage: Usage,
    pub finish_reason: Option<FinishReason>,
    /// With status `error`: (code, message).
    pub error: Option<RunError>,
    pub started_at_ms: u64,
    pub ended_at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunError {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelInfo {
    /// "provider/model".
    pub id: String,
    pub name: String,
    pub provider: String,
    /// "openai", "anthropic" or "echo".
    pub kind: &'static str,
    /// Human description (the echo provider says it is the built-in echo).
    pub description: String,
    pub builtin: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentInfo {
    pub id: String,
    pub model: String,
    pub default: bool,
    pub tools: Vec<String>,
    pub has_system_prompt: bool,
}

/// Why a run could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// HTTP 404 `model_not_found`.
    #[error("{0}")]
    UnknownModel(String),
    /// HTTP 404.
    #[error("{0}")]
    UnknownAgent(String),
    /// HTTP 400.
    #[error("{0}")]
    BadRequest(String),
    /// HTTP 429: the session's queue is full.
    #[error("{0}")]
    Busy(String),
    /// HTTP 503: the gateway is shutting down.
    #[error("{0}")]
    Unavailable(String),
    /// HTTP 500.
    #[error(transparent)]
    Store(#[from] crate::core::store::StoreError),
}

impl StartError {
    /// A stable code for API errors.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownModel(_) => "model_not_found",
            Self::UnknownAgent(_) => "agent_not_found",
            Self::BadRequest(_) => "invalid_request",
            Self::Busy(_) => "busy",
            Self::Unavailable(_) => "unavailable",
            Self::Store(_) => "store",
        }
    }
}
