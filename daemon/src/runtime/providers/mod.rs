//! Model providers: the built-in echo, any OpenAI-compatible API, and Anthropic's Messages API.
//! A provider turns one model call (the conversation so far and the tools on offer) into the
//! assistant's reply, passing text on as it streams. Timeouts, retries and cancellation live here:
//! dropping the call's future closes the upstream connection.

pub mod answer;
pub mod anthropic;
pub mod echo;
pub mod openai;
pub mod sse_parser;
pub mod upstream;

use gateway_config::{Provider, ProviderKind};
use tokio::sync::mpsc;

use crate::runtime::agent::{FinishReason, Message, ToolSpec, Usage};

/// One model call.
#[derive(Debug, Clone)]
pub struct ModelCall {
    /// The upstream's own model name (without the provider prefix).
    pub model: String,
    /// System messages first, then the conversation.
    pub messages: Vec<Message>,
    pub tools: Vec<ToolSpec>,
    pub max_output_tokens: Option<u32>,
    pub temperature: Option<f32>,
    /// W3C trace-context headers (`traceparent`) for the upstream request: the model-call
    /// span continues there. Empty when traces are not exported.
    pub trace_headers: Vec<(String, String)>,
}

/// The assistant's reply to one call.
#[derive(Debug, Clone)]
pub struct Reply {
    pub message: Message,
    pub usage: Usage,
    pub finish_reason: FinishReason,
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The upstream could not be reached (refused, DNS, TLS), after the retries.
    #[error("{0}")]
    Unavailable(String),
    /// The upstream answered with an error status or something that is not its API.
    #[error("{0}")]
    Upstream(String),
    #[error("{0}")]
    Timeout(String),
    /// The provider's configuration cannot work (e.g. its API key cannot be read).
    #[error("{0}")]
    Config(String),
}

impl ProviderError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "upstream_unavailable",
            Self::Upstream(_) => "upstream_error",
            Self::Timeout(_) => "timeout",
            Self::Config(_) => "provider_config",
        }
    }
}

/// Where a call sends text as it streams. Counts what it passed on: once anything reached the
/// caller, a failed call is not retried.
pub struct Deltas<'a> {
    tx: &'a mpsc::Sender<String>,
    sent: bool,
}

impl<'a> Deltas<'a> {
    pub fn new(tx: &'a mpsc::Sender<String>) -> Self {
        Self { tx, sent: false }
    }

    pub async fn send(&mut self, text: &str) {
        if !text.is_empty() {
            self.sent = true;
            let _ = self.tx.send(text.to_owned()).await;
        }
    }

    pub fn any_sent(&self) -> bool {
        self.sent
    }
}

/// Makes one call to the provider `name`, configured as `config`.
pub async fn call(
    clients: &upstream::Clients,
    name: &str,
    config: &Provider,
    mut request: ModelCall,
    deltas: &mut Deltas<'_>,
) -> Result<Reply, ProviderError> {
    match config.kind {
        ProviderKind::Echo => Ok(echo::call(request, deltas).await),
        ProviderKind::Openai => {
            let mut upstream = upstream::Upstream::new(clients, name, config).await?;
            upstream.trace_headers = std::mem::take(&mut request.trace_headers);
            openai::call(&upstream, request, deltas).await.map_err(|e| upstream.redact(e))
        }
        ProviderKind::Anthropic => {
            let mut upstream = upstream::Upstream::new(clients, name, config).await?;
            upstream.trace_headers = std::mem::take(&mut request.trace_headers);
            anthropic::call(&upstream, request, deltas).await.map_err(|e| upstream.redact(e))
        }
    }
}
