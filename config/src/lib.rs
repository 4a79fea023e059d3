//! The gateway's configuration: the schema (every key documented once, in the commented default
//! `gateway.toml` beside this crate), loading with errors that name file, line and key, the
//! precedence of flags and environment over the file, secret references, and which keys a running
//! daemon can apply hot and which need a restart.

pub mod agents;
pub mod channels;
pub mod classify;
pub mod cron;
pub mod load;
pub mod observability;
pub mod schema;
pub mod secret;
pub mod settings;

pub use agents::{
    split_model_id, Agent, Fetch, HookMapping, Hooks, Models, Provider, ProviderKind, Runs, Tools,
    BUILTIN_ECHO, DEFAULT_AGENT,
};
pub use channels::{
    Channels, DmPolicy, GroupPolicy, IrcAccount, IrcAuth, MatrixAccount, TelegramAccount, TelegramMode,
};
pub use classify::{diff, KeyClass, KEYS};
pub use load::{load_file, parse_str, Loaded};
pub use observability::Observability;
pub use schema::*;
pub use secret::{SecretError, SecretRef};
pub use settings::{check_startable, Overrides};

/// The commented default config: the configuration reference.
pub const DEFAULT_TOML: &str = include_str!("../gateway.toml");

/// The JSON Schema of the config file, as `gatewayctl config schema` prints it.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Config)).expect("a schema is plain JSON")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn default_file_is_the_defaults() {
        assert_eq!(parse_str(DEFAULT_TOML, Path::new("gateway.toml")).unwrap(), Config::default());
    }

    /// Every key appears in the default file, in its section, with its class.
    #[test]
    fn default_file_documents_every_key_with_its_class() {
        for info in KEYS {
            // Map entries are documented with an example name.
            let example = info
                .key
                .replace("providers.*", "providers.local")
                .replace("agents.*", "agents.main")
                .replace("accounts.*", "accounts.main");
            let (section, leaf) = example.rsplit_once('.').unwrap();
            let header = format!("[{section}]");
            let body = DEFAULT_TOML.split(&header).nth(1).unwrap_or_else(|| panic!("no {header}"));
            let body = body.split("\n[").next().unwrap();
            let lines: Vec<&str> = body.lines().collect();
            let at = lines
                .iter()
                .position(|l| l.starts_with(&format!("{leaf} =")) || l.starts_with(&format!("# {leaf} =")))
                .unwrap_or_else(|| panic!("{} is not in the default config", info.key));
            let comments: Vec<&str> =
                lines[..at].iter().rev().take_while(|l| l.starts_with('#')).copied().collect();
            let want = format!("# Applies: {}", info.class.as_str());
            assert!(comments.contains(&want.as_str()), "{} lacks `{want}`", info.key);
        }
    }

    #[test]
    fn schema_lists_the_sections() {
        let schema = json_schema().to_string();
        assert!(schema.contains("drain_timeout_ms") && schema.contains("debounce_ms"));
    }
}
