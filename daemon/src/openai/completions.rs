//! `POST /v1/completions`: one prompt, answered as a single user message; stateless.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::chunks::{self, Header};
use super::error::{read_body, ApiError};
use super::run::{self, now_secs};
use super::sse::{Encoder, Frames, SseBody};
use super::wire::{self, CompletionRequest, Parsed};
use super::{respond_json, with_run_headers};
use crate::agent::{Message, RunEvent, RunOrigin, RunRequest};
use crate::gateway::Gateway;

pub async fn handle(State(gw): State<Arc<Gateway>>, _headers: HeaderMap, body: Body) -> Response {
    complete(gw, body).await.unwrap_or_else(IntoResponse::into_response)
}

async fn complete(gw: Arc<Gateway>, body: Body) -> Result<Response, ApiError> {
    let limit = gw.active().config.gateway.http.max_body_bytes.get() as usize;
    let bytes = read_body(body, limit).await?;
    let Parsed { request: r, ignored } = wire::parse::<CompletionRequest>(&bytes, wire::COMPLETION_HONOURED)?;
    let prompt = r.prompt.single()?.to_owned();
    let req = RunRequest {
        model: r.model.clone(),
        input: vec![Message::user(prompt)],
        max_output_tokens: r.max_tokens,
        temperature: r.temperature,
        origin: RunOrigin::Http,
        ..Default::default()
    };
    let mut handle = run::start(&gw, req).await?;
    let run_id = handle.run_id.clone();
    let header = Header { id: format!("cmpl-{run_id}"), created: now_secs(), model: handle.model.clone() };
    if r.stream {
        let include_usage = r.stream_options.is_some_and(|o| o.include_usage);
        let encoder = CompletionEncoder { header, include_usage, streamed_text: false };
        let response = SseBody::new(handle.events, encoder, Frames::default()).into_response();
        return Ok(with_run_headers(response, &run_id, None, &ignored));
    }
    let done = run::finish(&mut handle).await?;
    let usage = chunks::usage(done.usage.input_tokens, done.usage.output_tokens);
    let body = chunks::text_completion(
        &header,
        &done.message.content,
        Some(done.finish_reason.as_str()),
        Some(usage),
    );
    Ok(with_run_headers(respond_json(body, &ignored), &run_id, None, &ignored))
}

/// Run events as `text_completion` pieces, ending with `data: [DONE]`.
struct CompletionEncoder {
    header: Header,
    include_usage: bool,
    streamed_text: bool,
}

impl Encoder for CompletionEncoder {
    type Event = RunEvent;

    fn event(&mut self, event: RunEvent, out: &mut Frames) -> bool {
        let h = &self.header;
        match event {
            RunEvent::Delta { text } => {
                self.streamed_text = true;
                out.data(&chunks::text_completion(h, &text, None, None));
                false
            }
            RunEvent::Final { message, usage, finish_reason } => {
                if !self.streamed_text && !message.content.is_empty() {
                    out.data(&chunks::text_completion(h, &message.content, None, None));
                }
                out.data(&chunks::text_completion(h, "", Some(finish_reason.as_str()), None));
                if self.include_usage {
                    out.data(&chunks::text_usage_chunk(
                        h,
                        chunks::usage(usage.input_tokens, usage.output_tokens),
                    ));
                }
                out.done();
                true
            }
            other => run::stream_failure(other).map(|body| out.data(&body)).is_some(),
        }
    }

    fn closed(&mut self, out: &mut Frames) {
        out.data(&run::ended_early().body());
    }
}
