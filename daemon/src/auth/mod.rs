//! Who may use the main port over HTTP, by `gateway.auth.mode`: the gateway token (constant-time
//! compare), a session token (password mode), or a trusted proxy's word. The WebSocket handshake
//! has its own order of checks (`ws::handshake`).

pub mod http;
pub mod password;
pub mod sessions;

use std::path::Path;

use axum::http::HeaderMap;
use gateway_config::secret::{generate_token, read_secret_file, write_secret_file};
use gateway_config::{AuthMode, Config, Overrides, SecretError};
use subtle::ConstantTimeEq;

use crate::gateway::{Active, Gateway, TokenSource};
use crate::serve::Peer;

/// Finds the token: `GATEWAY_TOKEN`, then `gateway.auth.token`, then the state dir's token
/// file, generating that file on first start. Returns whether a token was generated.
pub fn resolve_token(
    config: &Config,
    overrides: &Overrides,
    token_file: &Path,
) -> Result<(String, TokenSource, bool), TokenError> {
    if let Some(secret) = &config.gateway.auth.token {
        let source = if overrides.token.is_some() { TokenSource::Env } else { TokenSource::Config };
        return Ok((secret.resolve()?, source, false));
    }
    if let Some(token) = read_secret_file(token_file).map_err(|e| TokenError::Io(token_file.into(), e))? {
        return Ok((token, TokenSource::File, false));
    }
    let token = generate_token();
    write_secret_file(token_file, &token).map_err(|e| TokenError::Io(token_file.into(), e))?;
    Ok((token, TokenSource::File, true))
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("gateway.auth.token: {0}")]
    Secret(#[from] SecretError),
    #[error("cannot read or write the token file {0}: {1}")]
    Io(std::path::PathBuf, std::io::Error),
}

/// The bearer token of a request, if it has one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// True when the request may pass: auth is off, it carries the gateway token (token mode) or a
/// live session token (password mode), or it comes from a trusted proxy naming a user.
pub fn authorized(gw: &Gateway, active: &Active, peer: &Peer, headers: &HeaderMap) -> bool {
    match active.config.gateway.auth.mode {
        AuthMode::None => true,
        AuthMode::Token => bearer(headers).is_some_and(|t| tokens_equal(t, &active.token)),
        AuthMode::Password => bearer(headers).is_some_and(|t| gw.sessions.verify(t).is_some()),
        AuthMode::TrustedProxy => proxy_user(active, peer, headers).is_some(),
    }
}

/// The user a trusted proxy names; `None` from anyone else, or without the header.
pub fn proxy_user<'a>(active: &Active, peer: &Peer, headers: &'a HeaderMap) -> Option<&'a str> {
    let Peer::Tcp(addr) = peer else { return None };
    let http = &active.config.gateway.http;
    if !http.trusted_proxies.contains(&addr.ip()) {
        return None;
    }
    headers
        .get(active.config.gateway.auth.trusted_proxy.user_header.as_str())
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|u| !u.is_empty())
}

/// Compares in time independent of where the inputs differ.
pub fn tokens_equal(given: &str, expected: &str) -> bool {
    given.as_bytes().ct_eq(expected.as_bytes()).into()
}
