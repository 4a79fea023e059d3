//! Starting a run for an HTTP caller and reading how it ends, with the engine's refusals and
//! failures as OpenAI-shaped errors.

use axum::http::StatusCode;

use crate::api::error::GatewayError;
use crate::core::gateway::Gateway;
use crate::runtime::agent::{FinishReason, Message, RunEvent, RunHandle, RunRequest, Usage};

pub struct Finished {
    pub message: Message,
    pub usage: Usage,
    pub finish_reason: FinishReason,
}

/// A run's `Error` event as an HTTP error: upstream trouble is a 502, a timeout (or a run the
/// heartbeat stopped as stuck) a 504.
pub fn run_error(code: &'static str, message: String) -> GatewayError {
    let status = match code {
        "timeout" | "stuck" => StatusCode::GATEWAY_TIMEOUT,
        c if c.starts_with("upstream") => StatusCode::BAD_GATEWAY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    GatewayError::server(status, code, message)
}

pub fn aborted() -> GatewayError {
    GatewayError::server(
        StatusCode::SERVICE_UNAVAILABLE,
        "run_aborted",
        "the run was aborted before it finished (chat.abort, or the gateway is stopping)",
    )
}

pub fn ended_early() -> GatewayError {
    GatewayError::internal("the run ended without a result; see the gateway log")
}

/// Starts a run that is cancelled if the caller goes away (its handle is dropped).
/// Refuses (413) a request whose text input (its messages and instructions) has more characters
/// than `gateway.http.max_input_chars`: characters, so a limit means the same in any script.
pub fn check_input_chars(
    gw: &Gateway,
    input: &[Message],
    instructions: Option<&str>,
) -> Result<(), GatewayError> {
    let max = gw.active().config.gateway.http.max_input_chars.get() as usize;
    let mut chars = 0usize;
    for text in input.iter().map(|m| m.content.as_str()).chain(instructions) {
        chars += text.chars().count();
        if chars > max {
            return Err(GatewayError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "input_too_long",
                format!("the input has more than {max} characters (gateway.http.max_input_chars): send less, or raise the limit"),
            ));
        }
    }
    Ok(())
}

pub async fn start(gw: &Gateway, mut req: RunRequest) -> Result<RunHandle, GatewayError> {
    req.cancel_on_drop = true;
    gw.agents.start(req).await.map_err(GatewayError::from)
}

/// One event of a run, as an HTTP answer sees it.
pub enum Step {
    /// An event along the way (text, tools, lifecycle).
    Going(RunEvent),
    /// The run's final message, or the error that ended it.
    Ended(Result<Finished, GatewayError>),
}

/// Sorts a run's next event (`None`: its channel closed) into going on or ended.
pub fn step(event: Option<RunEvent>) -> Step {
    match event {
        Some(RunEvent::Final { message, usage, finish_reason }) => {
            Step::Ended(Ok(Finished { message, usage, finish_reason }))
        }
        Some(RunEvent::Error { code, message }) => Step::Ended(Err(run_error(code, message))),
        Some(RunEvent::Aborted) => Step::Ended(Err(aborted())),
        Some(event) => Step::Going(event),
        None => Step::Ended(Err(ended_early())),
    }
}

/// Reads the rest of a run; its final message, or the error that ended it.
pub async fn finish(handle: &mut RunHandle) -> Result<Finished, GatewayError> {
    loop {
        if let Step::Ended(outcome) = step(handle.events.recv().await) {
            return outcome;
        }
    }
}

/// For the chat and text completion streams: the `{"error"}` body that ends the stream when
/// `event` is a failure; `None` for events those streams do not show.
pub fn stream_failure(event: RunEvent) -> Option<serde_json::Value> {
    match step(Some(event)) {
        Step::Ended(Err(e)) => Some(e.openai_body()),
        _ => None,
    }
}

pub fn now_secs() -> u64 {
    gateway_proto::time::now_ms() / 1000
}
