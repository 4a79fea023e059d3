//! The gateway's secrets: where the gateway token comes from (generated on first start and kept
//! 0600 in the state dir, unless the environment or the config gives one), and comparing a
//! presented secret with the expected one in constant time.

use std::path::Path;

use gateway_config::secret::{generate_token, read_secret_file, write_secret_file};
use gateway_config::{Config, Overrides, SecretError};
use subtle::ConstantTimeEq;

use crate::core::gateway::TokenSource;

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
    given.as_bytes().ct_eq(expected.as_bytes()).into()
}
