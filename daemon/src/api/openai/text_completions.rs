//! `POST /v1/completions`: one prompt, answered as a single user message; stateless.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::completion_objects::{self, Header};
use super::completion_stream::{CompletionStream, Flavour};
use super::event_stream::SseBody;
use super::run_outcome::{self, now_secs};
use super::wire::{self, CompletionRequest, Parsed};
use super::{respond_json, with_run_headers};
use crate::api::body::read_body;
use crate::api::error::GatewayError;
use crate::core::gateway::Gateway;
use crate::runtime::agent::{Message, RunOrigin, RunRequest};

pub async fn handle(State(gw): State<Arc<Gateway>>, _headers: HeaderMap, body: Body) -> Response {
    complete(gw, body).await.unwrap_or_else(IntoResponse::into_response)
}

async fn complete(gw: Arc<Gateway>, body: Body) -> Result<Response, GatewayError> {
    let limit = gw.active().config.gateway.http.max_body_bytes.get() as usize;
    let bytes = read_body(body, limit).await?;
    let Parsed { request: r, ignored } = wire::parse::<CompletionRequest>(&bytes, wire::COMPLETION_HONOURED)?;
    let input = vec![Message::user(r.prompt.single()?.to_owned())];
    run_outcome::check_input_chars(&gw, &input, None)?;
    let req = RunRequest {
        model: r.model.clone(),
        input,
        max_output_tokens: r.max_tokens,
        temperature: r.temperature,
        origin: RunOrigin::Http,
        ..Default::default()
    };
    let mut handle = run_outcome::start(&gw, req).await?;
    let run_id = handle.run_id.clone();
    let header = Header { id: format!("cmpl-{run_id}"), created: now_secs(), model: handle.model.clone() };
    if r.stream {
        let include_usage = r.stream_options.is_some_and(|o| o.include_usage);
        let stream = CompletionStream::new(Flavour::Text, header, include_usage);
        let opening = stream.opening();
        let response = SseBody::new(handle.events, stream, opening).into_response();
        return Ok(with_run_headers(response, &run_id, None, &ignored));
    }
    let done = run_outcome::finish(&mut handle).await?;
    let usage = completion_objects::usage(done.usage.input_tokens, done.usage.output_tokens);
    let body = completion_objects::text_completion(
        &header,
        &done.message.content,
        Some(done.finish_reason.as_str()),
        Some(usage),
    );
    Ok(with_run_headers(respond_json(body, &ignored), &run_id, None, &ignored))
}
