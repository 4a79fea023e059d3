//! Checks `[[hooks.mappings]]` when the config is loaded, so a bad entry is refused at start
//! (or its reload rejected) instead of failing each webhook call.

use std::collections::HashSet;

use gateway_config::{Config, DEFAULT_AGENT};

/// Route names the built-in webhooks take.
const RESERVED: [&str; 2] = ["wake", "agent"];

/// The first problem with the mappings, as (key, message).
pub fn check(config: &Config) -> Result<(), (String, String)> {
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
        crate::agent::history::check_key("session key", &m.session_key)
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
        assert!(check(&with(&[("github", "hook:github", None), ("ci", "ci", Some("main"))])).is_ok());
        let err = |m| check(&with(m)).unwrap_err();
        assert_eq!(err(&[("git/hub", "s", None)]).0, "hooks.mappings[0].name");
        assert!(err(&[("wake", "s", None)]).1.contains("built-in"));
        assert!(err(&[("a", "s", None), ("a", "t", None)]).1.contains("twice"));
        assert_eq!(err(&[("a", "", None)]).0, "hooks.mappings[0].session_key");
        assert!(err(&[("a", "s", Some("ghost"))]).1.contains("ghost"));
    }
}
