//! The `[hooks]` section, checked whenever a config is loaded: `[[hooks.mappings]]` and the
//! webhook token, so a bad entry is refused at start (or its reload rejected) instead of failing
//! each webhook call. The token is its own secret, never the gateway token: a leaked webhook
//! token must not open the whole gateway.

use std::collections::HashSet;

use gateway_config::{Config, DEFAULT_AGENT};

/// Checks the section and resolves the hooks token (when webhooks are on); a problem comes back
/// as (key, message).
pub fn prepare(config: &Config, gateway_token: &str) -> Result<Option<String>, (String, String)> {
    check_mappings(config)?;
    resolve_token(config, gateway_token).map_err(|message| ("hooks.token".to_owned(), message))
}

/// Route names the built-in webhooks take.
const RESERVED: [&str; 2] = ["wake", "agent"];

/// The first problem with the mappings, as (key, message).
fn check_mappings(config: &Config) -> Result<(), (String, String)> {
    let mut seen = HashSet::new();
    for (i, m) in config.hooks.mappings.iter().enumerate() {
        let key = |leaf: &str| format!("hooks.mappings[{i}].{leaf}");
        let url_safe = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if m.name.is_empty() || m.name.len() > 64 || !m.name.chars().all(url_safe) {
            return Err((
                key("name"),
                format!(
                    "webhook name {:?}: use 1-64 letters, digits, '-' or '_' (it is the path /hooks/<name>)",
                    m.name
                ),
            ));
        }
        if RESERVED.contains(&m.name.as_str()) {
            return Err((
                key("name"),
                format!("webhook name {:?} is taken by the built-in /hooks/{}", m.name, m.name),
            ));
        }
        if !seen.insert(m.name.as_str()) {
            return Err((key("name"), format!("webhook name {:?} is given twice", m.name)));
        }
        crate::runtime::agent::history::check_key("session key", &m.session_key)
            .map_err(|e| (key("session_key"), e))?;
        if let Some(agent) = &m.agent {
            if agent != DEFAULT_AGENT && !config.agents.contains_key(agent) {
                return Err((
                    key("agent"),
                    format!("no agent {agent:?}: add [agents.{agent}] or leave agent out"),
                ));
            }
        }
    }
    Ok(())
}

/// Shorter tokens are refused at startup: they can be guessed.
pub const MIN_TOKEN_CHARS: usize = 16;

/// Resolves `hooks.token` when webhooks are on; refuses a missing, short, or shared one.
fn resolve_token(config: &Config, gateway_token: &str) -> Result<Option<String>, String> {
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
    if crate::core::secrets::tokens_equal(&token, gateway_token) {
        return Err(
            "hooks.token is the gateway token: webhooks need a token of their own, so that a sender holding it cannot use the rest of the gateway"
                .into(),
        );
    }
    Ok(Some(token))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_config::HookMapping;

    fn with(mappings: &[(&str, &str, Option<&str>)]) -> Config {
        let mut c = Config::default();
        c.hooks.mappings = mappings
            .iter()
            .map(|(name, session_key, agent)| HookMapping {
                name: (*name).into(),
                session_key: (*session_key).into(),
                agent: agent.map(Into::into),
            })
            .collect();
        c
    }

    #[test]
    fn mappings() {
        assert!(check_mappings(&with(&[("github", "hook:github", None), ("ci", "ci", Some("main"))])).is_ok());
        let err = |m| check_mappings(&with(m)).unwrap_err();
        assert_eq!(err(&[("git/hub", "s", None)]).0, "hooks.mappings[0].name");
        assert!(err(&[("wake", "s", None)]).1.contains("built-in"));
        assert!(err(&[("a", "s", None), ("a", "t", None)]).1.contains("twice"));
        assert_eq!(err(&[("a", "", None)]).0, "hooks.mappings[0].session_key");
        assert!(err(&[("a", "s", Some("ghost"))]).1.contains("ghost"));
    }

    fn with_token(enabled: bool, token: Option<&str>) -> Config {
        let mut c = Config::default();
        c.hooks.enabled = enabled;
        c.hooks.token = token.map(|t| gateway_config::SecretRef::Literal(t.into()));
        c
    }

    #[test]
    fn token_validation() {
        let gateway = "g".repeat(32);
        assert_eq!(resolve_token(&with_token(false, None), &gateway), Ok(None));
        assert!(resolve_token(&with_token(true, None), &gateway).unwrap_err().contains("not set"));
        assert!(resolve_token(&with_token(true, Some("short")), &gateway).unwrap_err().contains("shorter"));
        assert!(resolve_token(&with_token(true, Some(&gateway)), &gateway)
            .unwrap_err()
            .contains("gateway token"));
        let own = "h".repeat(32);
        assert_eq!(resolve_token(&with_token(true, Some(&own)), &gateway), Ok(Some(own)));
    }
}
