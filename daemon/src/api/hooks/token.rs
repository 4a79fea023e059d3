//! The webhook token: its own secret, never the gateway token (a leaked webhook URL and token
//! must not open the whole gateway), sent as a bearer or in `x-gateway-hooks-token`.

use axum::http::HeaderMap;

use crate::api::auth::Checked;

/// The header a webhook sender may use instead of `Authorization: Bearer`.
pub const TOKEN_HEADER: &str = "x-gateway-hooks-token";
/// Whether the request carries the hooks token (bearer or header; compared in constant time).
pub fn check(headers: &HeaderMap, expected: &str) -> Checked {
    let from_header = headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok()).map(str::trim);
    let given: Vec<&str> = crate::api::auth::bearer(headers).into_iter().chain(from_header).collect();
    if given.is_empty() {
        return Checked::Missing;
    }
    if given.iter().any(|g| Checked::secret(Some(g), expected) == Checked::Valid) {
        Checked::Valid
    } else {
        Checked::Invalid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presentation() {
        let mut h = HeaderMap::new();
        assert_eq!(check(&h, "secret-secret-secret"), Checked::Missing);
        h.insert("authorization", "Bearer secret-secret-secret".parse().unwrap());
        assert_eq!(check(&h, "secret-secret-secret"), Checked::Valid);
        let mut h = HeaderMap::new();
        h.insert(TOKEN_HEADER, "secret-secret-secret".parse().unwrap());
        assert_eq!(check(&h, "secret-secret-secret"), Checked::Valid);
        assert_eq!(check(&h, "other-other-other-other"), Checked::Invalid);
    }
}
