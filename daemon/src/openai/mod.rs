//! The OpenAI-compatible HTTP APIs on the main port: `/v1/chat/completions`,
//! `/v1/completions`, `/v1/models` and the OpenResponses `/v1/responses`. Same auth and
//! failure limits as every other authenticated route; errors in the OpenAI shape.

pub mod chat;
pub mod completion_objects;
pub mod completion_stream;
pub mod completions;
pub mod convert;
pub mod error;
pub mod models;
pub mod response_objects;
pub mod responses;
pub mod run;
pub mod sse;
pub mod wire;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde_json::Value;

use crate::gateway::Gateway;
use crate::http::{authenticate, gateway_auth, Refusal, UNAUTHORIZED_HINT};
use error::ApiError;

/// The header that runs a chat completion on a stored session.
pub const SESSION_HEADER: &str = "x-gateway-session-key";
/// Lists the request's top-level fields the gateway ignored.
pub const IGNORED_HEADER: &str = "x-gateway-ignored-fields";

pub fn router(gw: Arc<Gateway>) -> Router<Arc<Gateway>> {
    Router::new()
        .route("/v1/chat/completions", post(chat::handle))
        .route("/v1/completions", post(completions::handle))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{*id}", get(models::get))
        .route("/v1/responses", post(responses::create))
        .route("/v1/responses/{id}", get(responses::get).delete(responses::delete))
        .route("/v1/{*rest}", any(unknown))
        .route_layer(middleware::from_fn_with_state(gw, require_auth))
}

/// Any other `/v1/` path: a 404 in the OpenAI shape, naming what is served.
async fn unknown(req: Request) -> ApiError {
    ApiError::not_found(
        "unknown_endpoint",
        format!(
            "no endpoint {} {}: this gateway serves /v1/chat/completions, /v1/completions, /v1/models and /v1/responses",
            req.method(),
            req.uri().path()
        ),
    )
}

/// The gateway's auth, refusing in the OpenAI error shape.
async fn require_auth(State(gw): State<Arc<Gateway>>, req: Request, next: Next) -> Response {
    match authenticate(&gw, &req, gateway_auth(&gw)) {
        Ok(()) => next.run(req).await,
        Err(Refusal::RateLimited(ip, retry)) => {
            let secs = retry.as_secs() + 1;
            let message = format!("too many failed authentication attempts from {ip}: retry in {secs} s");
            ApiError::rate_limited(message, secs).into_response()
        }
        Err(Refusal::Unauthorized) => {
            let mut response = ApiError::unauthorized(UNAUTHORIZED_HINT).into_response();
            response
                .headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
    }
}

/// The stored session a request names, if any.
pub fn session_header(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(SESSION_HEADER) else { return Ok(None) };
    let key = value.to_str().map(str::trim).unwrap_or_default();
    crate::agent::history::check_key("session key", key)
        .map_err(|e| ApiError::bad_request(format!("{SESSION_HEADER}: {e}")))?;
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
