//! The gateway's secrets: where the gateway token comes from (generated on first start and kept
//! 0600 in the state dir, unless the environment or the config gives one), and comparing a
//! presented secret with the expected one in constant time.

use std::path::Path;

use gateway_config::secret::{generate_token, read_secret_file, write_secret_file};
use gateway_config::{Config, Overrides, SecretError};
use gateway_proto::time::now_ms;
use subtle::ConstantTimeEq;

use crate::core::gateway::{Gateway, TokenSource};

/// Why the token was not rotated.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error("the token comes from GATEWAY_TOKEN: change it in the environment of gatewayd and restart it")]
    FromEnv,
    #[error("the token comes from gateway.auth.token in {0}: change it there")]
    FromConfig(String),
    #[error("cannot write {0}: {1}; the old token stays valid")]
    Write(String, std::io::Error),
}

/// Replaces a generated token at once (written 0600 first, then put in effect); the doors are
/// told, and end what the old one granted. Serialized with reloads.
pub async fn rotate_token(gw: &Gateway) -> Result<(), RotateError> {
    let _serial = gw.reload_lock.lock().await;
    let active = gw.active();
    match active.token_source {
        TokenSource::File => {}
        TokenSource::Env => return Err(RotateError::FromEnv),
        TokenSource::Config => return Err(RotateError::FromConfig(gw.config_file().display().to_string())),
    }
    let token = generate_token();
    let file = gw.paths.token_file();
    write_secret_file(&file, &token).map_err(|e| RotateError::Write(file.display().to_string(), e))?;
    let mut next = crate::core::gateway::Active::clone(&active);
    next.token = token;
    gw.swap_active(next);
    tracing::info!(file = %file.display(), at_ms = now_ms(), "gateway token rotated");
    Ok(())
}

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

/// Compares in time independent of where the inputs differ.
pub fn tokens_equal(given: &str, expected: &str) -> bool {
    tokens_equal_bytes(given.as_bytes(), expected.as_bytes())
}

/// [`tokens_equal`] for digests and other raw bytes.
pub fn tokens_equal_bytes(given: &[u8], expected: &[u8]) -> bool {
    given.ct_eq(expected).into()
}
