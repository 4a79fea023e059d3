//! The doors' one error type: a `GatewayError` knows its HTTP status, its machine code and a
//! message that says what to do. It is rendered once per wire format:
//! - the gateway's own shape, `{"error": {"code", "message"}}`, for `/gateway/*`, `/hooks/*`,
//!   `/tools/invoke` and the control socket (what `IntoResponse` gives);
//! - the OpenAI shape, `{"error": {"message", "type", "param", "code"}}`, which the official SDKs
//!   parse, for everything under `/v1/` on the main port ([`openai_shape`] re-renders any
//!   `GatewayError` answer there, the listener's refusals included);
//! - the WebSocket protocol's `ErrorShape` ([`GatewayError::ws_shape`]).

use std::fmt::Display;

use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use gateway_proto::ws::{code as ws_code, ErrorShape};
use serde_json::json;

use crate::runtime::agent::StartError;

#[derive(Debug, Clone, PartialEq)]
pub struct GatewayError {
    pub status: StatusCode,
    pub message: String,
    /// The request field at fault, when there is one (OpenAI's `param`).
    pub param: Option<String>,
    pub code: &'static str,
    pub retry_after_secs: Option<u64>,
}

impl GatewayError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), param: None, code, retry_after_secs: None }
    }

    /// A request the gateway cannot use: bad JSON, a missing or wrong-typed field.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub fn with_param(mut self, param: &str) -> Self {
        self.param = Some(param.to_owned());
        self
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "request_too_large", message)
    }

    pub fn busy(message: impl Into<String>) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "busy", message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", message)
    }

    /// A run that failed on the gateway's side or upstream; `code` is the engine's.
    pub fn server(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::new(status, code, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn rate_limited(message: impl Into<String>, retry_after_secs: u64) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
        e.retry_after_secs = Some(retry_after_secs);
        e
    }

    /// A store call that failed (logged here, with its error): 503 with `Retry-After`, since the
    /// cause (a full disk, a locked database) usually passes.
    /// The cause stays in the log (it names files on this host), except that a full disk is
    /// said, since the caller can do something about it.
    pub fn store_failed(doing: &str, error: impl Display) -> Self {
        let cause = error.to_string();
        // At most one line a second: on a full disk every refused request fails the same way,
        // and a line each would fill the space freed for the state with the log.
        if let Some(suppressed) = STORE_FAILURE_LOG.allow() {
            let more = if suppressed > 0 {
                format!(" ({suppressed} more like it in the last second)")
            } else {
                String::new()
            };
            tracing::error!(error = %cause, "the gateway cannot {doing}{more}");
        }
        // SQLite's words for SQLITE_FULL, whichever error type carried them here.
        let message = if cause.contains("database or disk is full") {
            format!("the gateway cannot {doing}: the disk holding its state is full; free some space, then try again")
        } else {
            format!("the gateway cannot {doing} right now; try again")
        };
        let mut e = Self::unavailable(message);
        e.retry_after_secs = Some(1);
        e
    }

    /// OpenAI's error `type`, which follows from the status.
    pub fn openai_type(&self) -> &'static str {
        match self.status {
            StatusCode::UNAUTHORIZED => "authentication_error",
            StatusCode::FORBIDDEN => "permission_error",
            StatusCode::NOT_FOUND => "not_found_error",
            StatusCode::TOO_MANY_REQUESTS => "rate_limit_error",
            s if s.is_server_error() => "server_error",
            _ => "invalid_request_error",
        }
    }

    /// The OpenAI-shaped JSON body, also used inside streamed error events.
    pub fn openai_body(&self) -> serde_json::Value {
        json!({ "error": {
            "message": self.message,
            "type": self.openai_type(),
            "param": self.param,
            "code": self.code,
        }})
    }

    /// The gateway's own JSON body (the control API's `ErrorBody`).
    pub fn gateway_body(&self) -> serde_json::Value {
        json!({ "error": { "code": self.code, "message": self.message } })
    }

    /// The error as the WebSocket protocol says it: its code follows from the status.
    pub fn ws_shape(&self) -> ErrorShape {
        let code = match self.status {
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => ws_code::FORBIDDEN,
            s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => ws_code::UNAVAILABLE,
            _ => ws_code::INVALID_REQUEST,
        };
        let mut shape =
            ErrorShape::new(code, self.message.clone()).with_details(json!({ "code": self.code }));
        shape.retryable = Some(code == ws_code::UNAVAILABLE);
        shape
    }

    fn respond(&self, body: serde_json::Value) -> Response {
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// The gateway's own shape; the error rides along in the extensions so that [`openai_shape`]
/// can render it again for `/v1/`.
static STORE_FAILURE_LOG: OncePerSecond = OncePerSecond::new();

/// Lets one event a second through, counting the others.
struct OncePerSecond(std::sync::Mutex<(Option<std::time::Instant>, u64)>);

impl OncePerSecond {
    const fn new() -> Self {
        Self(std::sync::Mutex::new((None, 0)))
    }

    /// Some(how many were held back since the last one let through), or None to hold this one.
    fn allow(&self) -> Option<u64> {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        match state.0 {
            Some(last) if now.duration_since(last) < std::time::Duration::from_secs(1) => {
                state.1 += 1;
                None
            }
            _ => {
                let held = state.1;
                *state = (Some(now), 0);
                Some(held)
            }
        }
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let mut response = self.respond(self.gateway_body());
        response.extensions_mut().insert(self);
        response
    }
}

/// Why a run could not start, as an HTTP answer.
impl From<crate::runtime::scheduler::CronError> for GatewayError {
    fn from(e: crate::runtime::scheduler::CronError) -> Self {
        use crate::runtime::scheduler::CronError;
        let code = e.code();
        match e {
            CronError::Invalid(m) => GatewayError::bad_request(m),
            CronError::NotFound(m) => GatewayError::not_found(code, m),
            CronError::Conflict(m) => GatewayError::new(StatusCode::CONFLICT, code, m),
            CronError::Store(e) => GatewayError::store_failed("read or write the scheduled jobs", e),
        }
    }
}

impl From<StartError> for GatewayError {
    fn from(e: StartError) -> Self {
        match e {
            StartError::UnknownModel(m) => GatewayError::not_found("model_not_found", m).with_param("model"),
            StartError::UnknownAgent(m) => GatewayError::not_found("agent_not_found", m),
            StartError::BadRequest(m) => GatewayError::bad_request(m),
            StartError::Busy(m) => GatewayError::busy(m),
            StartError::Unavailable(m) => GatewayError::unavailable(m),
            StartError::Store(e) => GatewayError::store_failed("record the run", e),
        }
    }
}

/// A refusal in one call: the error, rendered.
pub fn refuse(status: StatusCode, code: &'static str, message: impl Into<String>) -> Response {
    GatewayError::new(status, code, message).into_response()
}

/// Middleware for a router whose errors are made [`uniform`].
pub async fn uniform_errors(req: Request, next: Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let response = next.run(req).await;
    uniform(&method, &path, response).await
}

/// What every door answers goes through here: an error answer that is not one of ours (axum's
/// rejection of a path or query it cannot parse, its bare 405, a body cut off at the limit)
/// becomes a `GatewayError` in the documented shape, saying what was refused and what to do.
pub async fn uniform(method: &Method, path: &str, response: Response) -> Response {
    let status = response.status();
    let ours = response.extensions().get::<GatewayError>().is_some();
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/event-stream"));
    if ours || json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let allow = response.headers().get(header::ALLOW).cloned();
    let body = axum::body::to_bytes(response.into_body(), 4096).await.unwrap_or_default();
    let said = gateway_proto::quote::shorten_quoted(String::from_utf8_lossy(&body).trim());
    let path = gateway_proto::quote::short(path);
    let error = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            // axum's 405 carries the Allow header; kept on the answer below.
            let allowed = allow.as_ref().and_then(|a| a.to_str().ok()).map_or_else(
                || "the Allow header lists the methods it takes".to_owned(),
                |a| format!("use {a}"),
            );
            GatewayError::new(
                status,
                "method_not_allowed",
                format!("{method} is not served on {path}: {allowed}"),
            )
        }
        StatusCode::NOT_FOUND => {
            GatewayError::not_found("not_found", format!("no route for {method} {path}"))
        }
        StatusCode::PAYLOAD_TOO_LARGE => {
            GatewayError::new(status, "body_too_large", format!("{said}: send less"))
        }
        s if s.is_client_error() => GatewayError::new(
            status,
            "bad_request",
            format!("{method} {path} was refused: {said}; see docs/api.md for what it takes"),
        ),
        _ => GatewayError::internal(format!("{method} {path} failed: {said}; see the gateway log")),
    };
    let mut response = error.into_response();
    if let Some(allow) = allow {
        response.headers_mut().insert(header::ALLOW, allow);
    }
    response
}

/// For the OpenAI-compatible paths: a `GatewayError` answer in the OpenAI shape, whichever check
/// or door refused the request.
pub fn openai_shape(response: Response) -> Response {
    match response.extensions().get::<GatewayError>() {
        Some(e) => e.respond(e.openai_body()),
        None => response,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape() {
        let e = GatewayError::bad_request("messages must not be empty").with_param("messages");
        assert_eq!(
            e.openai_body(),
            json!({"error": {"message": "messages must not be empty", "type": "invalid_request_error",
                "param": "messages", "code": "invalid_request"}})
        );
        assert_eq!(
            e.gateway_body(),
            json!({"error": {"code": "invalid_request", "message": "messages must not be empty"}})
        );
        assert_eq!(e.ws_shape().code, ws_code::INVALID_REQUEST);
        assert_eq!(e.into_response().status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn a_store_failure_is_a_503_to_retry() {
        let e = GatewayError::store_failed("record the run", "disk I/O error");
        assert_eq!(
            (e.status, e.code, e.retry_after_secs),
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable", Some(1))
        );
        assert!(!e.message.contains("disk I/O"), "the cause stays in the log: {}", e.message);
        assert_eq!(e.openai_type(), "server_error");
        let full = GatewayError::store_failed("save the note", "database or disk is full");
        assert_eq!(full.retry_after_secs, Some(1));
        assert!(full.message.contains("disk holding its state is full"), "{}", full.message);
    }
}
