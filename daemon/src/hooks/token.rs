//! The webhook token: its own secret, never the gateway token (a leaked webhook URL and token
//! must not open the whole gateway), sent as a bearer or in `x-gateway-hooks-token`.

use axum::http::HeaderMap;
use gateway_config::Config;

/// The header a webhook sender may use instead of `Authorization: Bearer`.
pub const TOKEN_HEADER: &str = "x-gateway-hooks-token";
/// Shorter tokens are refused at startup: they can be guessed.
pub const MIN_TOKEN_CHARS: usize = 16;

/// Resolves `hooks.token` when webhooks are on; refuses a missing, short, or shared one.
pub fn resolve(config: &Config, gateway_token: &str) -> Result<Option<String>, String> {
    let hooks = &config.hooks;
    if !hooks.enabled {
        return Ok(None);
    }
    let Some(secret) = &hooks.token else {
        return Err(
            "hooks.enabled is true but hooks.token is not set: give the webhooks a token of their own, e.g. token = \"env:GATEWAY_HOOKS_TOKEN\""
                .into(),
        );
    };
    let token = secret.resolve().map_err(|e| e.to_string())?;
    if token.chars().count() < MIN_TOKEN_CHARS {
        return Err(format!(
            "hooks.token is shorter than {MIN_TOKEN_CHARS} characters: use a long random secret (e.g. `openssl rand -hex 32`)"
        ));
    }
    if crate::auth::tokens_equal(&token, gateway_token) {
        return Err(
            "hooks.token is the gateway token: webhooks need a token of their own, so that a sender holding it cannot use the rest of the gateway"
                .into(),
        );
    }
    Ok(Some(token))
}

/// Whether the request carries the hooks token (bearer or header; compared in constant time).
pub fn presented(headers: &HeaderMap, expected: &str) -> bool {
    let from_header = headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok()).map(str::trim);
    crate::auth::bearer(headers)
        .into_iter()
        .chain(from_header)
        .any(|given| crate::auth::tokens_equal(given, expected))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_config::SecretRef;

    fn config(enabled: bool, token: Option<&str>) -> Config {
        let mut c = Config::default();
        c.hooks.enabled = enabled;
        c.hooks.token = token.map(|t| SecretRef::Literal(t.into()));
        c
    }

    #[test]
    fn validation() {
        let gateway = "g".repeat(32);
        assert_eq!(resolve(&config(false, None), &gateway), Ok(None));
        assert!(resolve(&config(true, None), &gateway).unwrap_err().contains("not set"));
        assert!(resolve(&config(true, Some("short")), &gateway).unwrap_err().contains("shorter"));
        assert!(resolve(&config(true, Some(&gateway)), &gateway).unwrap_err().contains("gateway token"));
        let own = "h".repeat(32);
        assert_eq!(resolve(&config(true, Some(&own)), &gateway), Ok(Some(own)));
    }

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
