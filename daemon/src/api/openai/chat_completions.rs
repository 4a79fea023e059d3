//! `POST /v1/chat/completions`: stateless by default (the messages are the whole
//! conversation, nothing is stored); the `x-gateway-session-key` header runs the turn on a
//! stored session instead, where only the messages after the last assistant message are new.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::completion_objects::{self, Header};
use super::completion_stream::{CompletionStream, Flavour};
use super::event_stream::SseBody;
use super::run_outcome::{self, now_secs};
use super::wire::{self, ChatRequest, Parsed};
use super::{convert, respond_json, session_header};
use crate::api::body::read_body;
use crate::api::error::GatewayError;
use crate::core::gateway::Gateway;
use crate::runtime::agent::{RunOrigin, RunRequest};

pub async fn handle(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Body) -> Response {
    chat(gw, headers, body).await.unwrap_or_else(IntoResponse::into_response)
}

async fn chat(gw: Arc<Gateway>, headers: HeaderMap, body: Body) -> Result<Response, GatewayError> {
    let limit = gw.active().config.gateway.http.max_body_bytes.get() as usize;
    let bytes = read_body(body, limit).await?;
    let Parsed { request: r, ignored } = wire::parse::<ChatRequest>(&bytes, wire::CHAT_HONOURED)?;
    let messages = convert::chat_messages(&r.messages)?;
    let session_key = session_header(&headers)?;
    let (instructions, input) =
        if session_key.is_some() { convert::new_turn(messages) } else { (None, messages) };
    run_outcome::check_input_chars(&gw, &input, instructions.as_deref())?;
    let tools_off = r.tool_choice.as_ref().is_some_and(wire::ToolChoice::is_none);
    let client_tools = if tools_off { Vec::new() } else { convert::chat_tools(&r.tools)? };
    let req = RunRequest {
        session_key,
        model: r.model.clone(),
        input,
        instructions,
        client_tools,
        max_output_tokens: r.max_completion_tokens.or(r.max_tokens),
        temperature: r.temperature,
        origin: RunOrigin::Http,
        ..Default::default()
    };
    let mut handle = run_outcome::start(&gw, req).await?;
    let (run_id, session) = (handle.run_id.clone(), handle.session_key.clone());
    let header =
        Header { id: format!("chatcmpl-{run_id}"), created: now_secs(), model: handle.model.clone() };
    if r.stream {
        let include_usage = r.stream_options.is_some_and(|o| o.include_usage);
        let stream = CompletionStream::new(Flavour::Chat, header, include_usage);
        let opening = stream.opening();
        let response = SseBody::new(handle.events, stream, opening).into_response();
        return Ok(super::with_run_headers(response, &run_id, session.as_deref(), &ignored));
    }
    let done = run_outcome::finish(&mut handle).await?;
    let calls: Vec<Value> = done
        .message
        .tool_calls
        .iter()
        .map(|c| completion_objects::tool_call(None, &c.id, &c.name, &c.arguments))
        .collect();
    // Null content when the model only called tools, as OpenAI sends it.
    let content =
        (!done.message.content.is_empty() || calls.is_empty()).then_some(done.message.content.as_str());
    let body = completion_objects::chat_completion(
        &header,
        content,
        calls,
        done.finish_reason.as_str(),
        completion_objects::usage(done.usage.input_tokens, done.usage.output_tokens),
    );
    let response = respond_json(body, &ignored);
    Ok(super::with_run_headers(response, &run_id, session.as_deref(), &ignored))
}
