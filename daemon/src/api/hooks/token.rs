//! The webhook token: its own secret, never the gateway token (a leaked webhook URL and token
//! must not open the whole gateway), sent as a bearer or in `x-gateway-hooks-token`.

use axum::http::HeaderMap;

/// The header a webhook sender may use instead of `Authorization: Bearer`.
pub const TOKEN_HEADER: &str = "x-gateway-hooks-token";
/// Whether the request carries the hooks token (bearer or header; compared in constant time).
pub fn presented(headers: &HeaderMap, expected: &str) -> bool {
    let from_header = headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok()).map(str::trim);
    crate::api::auth::bearer(headers)
        .into_iter()
        .chain(from_header)
        .any(|given| crate::core::secrets::tokens_equal(given, expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presentation() {
        let mut h = HeaderMap::new();
        assert!(!presented(&h, "secret-secret-secret"));
        h.insert("authorization", "Bearer secret-secret-secret".parse().unwrap());
        assert!(presented(&h, "secret-secret-secret"));
        let mut h = HeaderMap::new();
        h.insert(TOKEN_HEADER, "secret-secret-secret".parse().unwrap());
        assert!(presented(&h, "secret-secret-secret"));
        assert!(!presented(&h, "other-other-other-other"));
    }
}
