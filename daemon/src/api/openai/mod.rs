//! The OpenAI-compatible HTTP APIs on the main port: `/v1/chat/completions`,
//! `/v1/completions`, `/v1/models` and the OpenResponses `/v1/responses`. Same auth and
//! failure limits as every other authenticated route; errors in the OpenAI shape.

pub mod chat_completions;
pub mod completion_objects;
pub mod completion_stream;
pub mod convert;
pub mod event_stream;
pub mod models;
pub mod response_objects;
pub mod responses;
pub mod run_outcome;
pub mod text_completions;
pub mod wire;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde_json::Value;

use crate::api::auth::require_gateway_auth;
use crate::api::error::GatewayError;
use crate::core::gateway::Gateway;
use crate::core::openai_stats::{Answer, Endpoint};

/// The header that runs a chat completion on a stored session.
pub const SESSION_HEADER: &str = "x-gateway-session-key";
/// Lists the request's top-level fields the gateway ignored.
pub const IGNORED_HEADER: &str = "x-gateway-ignored-fields";

pub fn router(gw: Arc<Gateway>) -> Router<Arc<Gateway>> {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions::handle))
        .route("/v1/completions", post(text_completions::handle))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{*id}", get(models::get))
        .route("/v1/responses", post(responses::create))
        .route("/v1/responses/{id}", get(responses::get).delete(responses::delete))
        .route("/v1/responses/{id}/input_items", get(responses::input_items))
        .route("/v1/{*rest}", any(unknown))
        .route_layer(middleware::from_fn_with_state(gw.clone(), count))
        .route_layer(middleware::from_fn_with_state(gw, require_gateway_auth))
}

/// Records each answer for the status report's `gateway.openai_compat` block.
async fn count(State(gw): State<Arc<Gateway>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let endpoint = match path {
        "/v1/chat/completions" => Endpoint::ChatCompletions,
        "/v1/completions" => Endpoint::Completions,
        p if p == "/v1/models" || p.starts_with("/v1/models/") => Endpoint::Models,
        p if p == "/v1/responses" || p.starts_with("/v1/responses/") => Endpoint::Responses,
        _ => Endpoint::Other,
    };
    let response = next.run(req).await;
    let streamed = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let ignored = response.headers().get(IGNORED_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    let ignored_fields: Vec<&str> = ignored.split(", ").filter(|f| !f.is_empty()).collect();
    gw.openai_stats.record(&Answer {
        endpoint,
        status: response.status().as_u16(),
        streamed,
        reason: response.extensions().get::<GatewayError>().map(|e| e.code),
        ignored_fields: &ignored_fields,
    });
    response
}

/// Any other `/v1/` path: a 404 in the OpenAI shape, naming what is served.
async fn unknown(req: Request) -> GatewayError {
    GatewayError::not_found(
        "unknown_endpoint",
        format!(
            "no endpoint {} {}: this gateway serves /v1/chat/completions, /v1/completions, /v1/models and /v1/responses",
            req.method(),
            req.uri().path()
        ),
    )
}

/// The stored session a request names, if any.
pub fn session_header(headers: &HeaderMap) -> Result<Option<String>, GatewayError> {
    let Some(value) = headers.get(SESSION_HEADER) else { return Ok(None) };
    let key = value.to_str().map(str::trim).unwrap_or_default();
    crate::runtime::agent::history::check_key("session key", key)
        .map_err(|e| GatewayError::bad_request(format!("{SESSION_HEADER}: {e}")))?;
    Ok(Some(key.to_owned()))
}

/// A JSON body, with `ignored_fields` added when the request carried any.
pub fn respond_json(mut body: Value, ignored: &[String]) -> Response {
    if !ignored.is_empty() {
        body["ignored_fields"] = Value::from(ignored.to_vec());
    }
    Json(body).into_response()
}

/// Headers that say which run answered, on which session, and what was ignored.
pub fn with_run_headers(
    mut response: Response,
    run_id: &str,
    session: Option<&str>,
    ignored: &[String],
) -> Response {
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(run_id) {
        headers.insert("x-gateway-run-id", v);
    }
    if let Some(v) = session.and_then(|s| HeaderValue::from_str(s).ok()) {
        headers.insert(SESSION_HEADER, v);
    }
    if let Ok(v) = HeaderValue::from_str(&ignored.join(", ")) {
        if !ignored.is_empty() {
            headers.insert(IGNORED_HEADER, v);
        }
    }
    response
}
