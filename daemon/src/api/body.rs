//! Reading request bodies whole, under a limit: over it is a 413, a body that breaks off a 400.

use crate::api::error::GatewayError;

/// Reads a request body that the port's guard already caps at `gateway.http.max_body_bytes`;
/// going over it is a 413 in the OpenAI shape.
pub async fn read_body(body: axum::body::Body, limit: usize) -> Result<bytes::Bytes, GatewayError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        if over_limit(&e) {
            GatewayError::too_large(format!(
                "request body over {limit} bytes: send less input, or raise gateway.http.max_body_bytes"
            ))
        } else {
            GatewayError::bad_request(format!(
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
    use axum::http::StatusCode;

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
}
