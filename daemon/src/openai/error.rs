//! Errors in the OpenAI shape, `{"error": {"message", "type", "param", "code"}}`, which the
//! official SDKs parse into their exception types.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// `invalid_request_error`, `authentication_error`, `permission_error`, `not_found_error`,
    /// `rate_limit_error`, `server_error`.
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: &'static str,
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), kind, param: None, code, retry_after_secs: None }
    }

    /// A request the gateway cannot use: bad JSON, a missing or wrong-typed field.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", "invalid_request", message)
    }

    pub fn with_param(mut self, param: &str) -> Self {
        self.param = Some(param.to_owned());
        self
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found_error", code, message)
    }

    /// A refusal by the listener before any route runs: a Host or Origin that is not allowed
    /// (403), credentials in the URL (400). `code` is the listener's own.
    pub fn refused(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        let kind = if status == StatusCode::FORBIDDEN { "permission_error" } else { "invalid_request_error" };
        Self::new(status, kind, code, message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request_error", "request_too_large", message)
    }

    pub fn busy(message: impl Into<String>) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", "busy", message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "server_error", "unavailable", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "internal_error", message)
    }

    /// A run that failed on the gateway's side or upstream; `code` is the engine's.
    pub fn server(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::new(status, "server_error", code, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "authentication_error", "unauthorized", message)
    }

    pub fn rate_limited(message: impl Into<String>, retry_after_secs: u64) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", "rate_limited", message);
        e.retry_after_secs = Some(retry_after_secs);
        e
    }

    /// The JSON body, also used inside streamed error events.
    pub fn body(&self) -> serde_json::Value {
        json!({ "error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if let Some(secs) = self.retry_after_secs {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Reads a request body that the port's guard already caps at `gateway.http.max_body_bytes`;
/// going over it is a 413 in the OpenAI shape.
pub async fn read_body(body: axum::body::Body, limit: usize) -> Result<bytes::Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        if over_limit(&e) {
            ApiError::too_large(format!(
                "request body over {limit} bytes: send less input, or raise gateway.http.max_body_bytes"
            ))
        } else {
            ApiError::bad_request(format!(
                "the request body could not be read ({e}): send it again, whole and with a correct length"
            ))
        }
    })
}

/// Whether reading a body failed because it was over the limit (rather than cut off or
/// malformed, which is the client's connection, not its size).
pub fn over_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body whose connection fails mid-way.
    struct Broken;

    impl http_body::Body for Broken {
        type Data = bytes::Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, std::io::Error>>> {
            std::task::Poll::Ready(Some(Err(std::io::Error::other("connection reset"))))
        }
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_413_and_a_broken_one_400() {
        let big = read_body(axum::body::Body::from(vec![b'x'; 100]), 10).await.unwrap_err();
        assert_eq!((big.status, big.code), (StatusCode::PAYLOAD_TOO_LARGE, "request_too_large"));
        let broken = read_body(axum::body::Body::new(Broken), 10).await.unwrap_err();
        assert_eq!(broken.status, StatusCode::BAD_REQUEST);
        assert!(broken.message.contains("could not be read"), "{}", broken.message);
        assert_eq!(read_body(axum::body::Body::from("ok"), 10).await.unwrap(), "ok");
    }

    #[test]
    fn shape() {
        let e = ApiError::bad_request("messages must not be empty").with_param("messages");
        assert_eq!(
            e.body(),
            json!({"error": {"message": "messages must not be empty", "type": "invalid_request_error",
                "param": "messages", "code": "invalid_request"}})
        );
        assert_eq!(e.into_response().status(), StatusCode::BAD_REQUEST);
    }
}
