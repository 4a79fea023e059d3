//! Which keys a running daemon applies hot and which need a restart, and how two configs differ.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::schema::Config;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyClass {
    /// Applied to the running daemon without dropping anything.
    Hot,
    /// Takes effect only when the daemon restarts.
    Restart,
}

impl KeyClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hot => "hot",
            Self::Restart => "restart",
        }
    }
}

pub struct KeyInfo {
    pub key: &'static str,
    pub class: KeyClass,
    /// Never shown in full (`gatewayctl config show`, logs).
    pub secret: bool,
}

const fn key(key: &'static str, class: KeyClass) -> KeyInfo {
    KeyInfo { key, class, secret: false }
}

/// Every key of the config file. The commented default `gateway.toml` documents each with its
/// class; a test keeps the two in step.
pub const KEYS: &[KeyInfo] = &[
    key("gateway.mode", KeyClass::Restart),
    key("gateway.bind", KeyClass::Restart),
    key("gateway.port", KeyClass::Restart),
    key("gateway.auth.mode", KeyClass::Hot),
    KeyInfo { key: "gateway.auth.token", class: KeyClass::Hot, secret: true },
    KeyInfo { key: "gateway.auth.password", class: KeyClass::Hot, secret: true },
    key("gateway.auth.session_ttl_ms", KeyClass::Hot),
    key("gateway.auth.local_shared_secret_scopes", KeyClass::Hot),
    key("gateway.auth.trusted_proxy.user_header", KeyClass::Hot),
    key("gateway.auth.rate_limit.max_failures", KeyClass::Hot),
    key("gateway.auth.rate_limit.window_ms", KeyClass::Hot),
    key("gateway.auth.rate_limit.lockout_ms", KeyClass::Hot),
    key("gateway.http.allowed_origins", KeyClass::Hot),
    key("gateway.http.allowed_hosts", KeyClass::Hot),
    key("gateway.http.trusted_proxies", KeyClass::Hot),
    key("gateway.http.max_body_bytes", KeyClass::Hot),
    key("gateway.http.header_read_timeout_ms", KeyClass::Hot),
    key("gateway.http.listen_backlog", KeyClass::Restart),
    key("gateway.http.max_input_chars", KeyClass::Hot),
    key("gateway.http.rate_limit.window_seconds", KeyClass::Hot),
    key("gateway.http.rate_limit.max_requests", KeyClass::Hot),
    key("gateway.ws.max_payload_bytes", KeyClass::Hot),
    key("gateway.ws.max_buffered_bytes", KeyClass::Hot),
    key("gateway.ws.handshake_timeout_ms", KeyClass::Hot),
    key("gateway.ws.max_unauthenticated_per_ip", KeyClass::Hot),
    key("gateway.reload.mode", KeyClass::Hot),
    key("gateway.reload.debounce_ms", KeyClass::Restart),
    key("gateway.heartbeat.interval_ms", KeyClass::Hot),
    key("gateway.shutdown.drain_timeout_ms", KeyClass::Hot),
    key("gateway.admin.allow_session_write", KeyClass::Hot),
    key("gateway.admin.allow_memory_write", KeyClass::Hot),
    key("logging.level", KeyClass::Hot),
    key("logging.file_max_bytes", KeyClass::Hot),
    key("models.default", KeyClass::Hot),
    key("models.providers.*.kind", KeyClass::Hot),
    key("models.providers.*.base_url", KeyClass::Hot),
    KeyInfo { key: "models.providers.*.api_key", class: KeyClass::Hot, secret: true },
    key("models.providers.*.models", KeyClass::Hot),
    key("models.providers.*.stream", KeyClass::Hot),
    key("models.providers.*.connect_timeout_ms", KeyClass::Hot),
    key("models.providers.*.first_byte_timeout_ms", KeyClass::Hot),
    key("models.providers.*.idle_timeout_ms", KeyClass::Hot),
    key("models.providers.*.total_timeout_ms", KeyClass::Hot),
    key("models.providers.*.max_retries", KeyClass::Hot),
    key("models.providers.*.retry_backoff_ms", KeyClass::Hot),
    key("agents.*.model", KeyClass::Hot),
    key("agents.*.system_prompt", KeyClass::Hot),
    key("agents.*.tools", KeyClass::Hot),
    key("agents.*.max_tool_iterations", KeyClass::Hot),
    key("agents.*.history_limit", KeyClass::Hot),
    key("tools.time", KeyClass::Hot),
    key("tools.memory", KeyClass::Hot),
    key("tools.sessions_list", KeyClass::Hot),
    key("tools.http_deny", KeyClass::Hot),
    key("tools.fetch.enabled", KeyClass::Hot),
    key("tools.fetch.allow_hosts", KeyClass::Hot),
    key("tools.fetch.max_bytes", KeyClass::Hot),
    key("tools.fetch.timeout_ms", KeyClass::Hot),
    key("tools.fetch.max_redirects", KeyClass::Hot),
    key("runs.max_concurrent", KeyClass::Restart),
    key("runs.max_queued_per_session", KeyClass::Hot),
    key("runs.idempotency_ttl_ms", KeyClass::Hot),
    key("runs.stuck_after_ms", KeyClass::Hot),
    key("runs.retention_days", KeyClass::Hot),
    key("ui.enabled", KeyClass::Hot),
    key("ui.path", KeyClass::Restart),
    key("metrics.enabled", KeyClass::Hot),
    KeyInfo { key: "metrics.token", class: KeyClass::Hot, secret: true },
    key("metrics.listen", KeyClass::Restart),
    key("observability.otlp_endpoint", KeyClass::Restart),
    key("observability.service_name", KeyClass::Restart),
    key("observability.capture_content", KeyClass::Restart),
    key("observability.otel_jsonl_path", KeyClass::Restart),
    key("observability.events_jsonl_path", KeyClass::Restart),
    key("observability.jsonl_max_bytes", KeyClass::Restart),
    key("channels.irc.accounts.*.enabled", KeyClass::Hot),
    key("channels.irc.accounts.*.host", KeyClass::Hot),
    key("channels.irc.accounts.*.port", KeyClass::Hot),
    key("channels.irc.accounts.*.tls", KeyClass::Hot),
    key("channels.irc.accounts.*.tls_ca", KeyClass::Hot),
    key("channels.irc.accounts.*.nick", KeyClass::Hot),
    key("channels.irc.accounts.*.username", KeyClass::Hot),
    key("channels.irc.accounts.*.realname", KeyClass::Hot),
    KeyInfo { key: "channels.irc.accounts.*.password", class: KeyClass::Hot, secret: true },
    key("channels.irc.accounts.*.auth", KeyClass::Hot),
    key("channels.irc.accounts.*.channels", KeyClass::Hot),
    key("channels.irc.accounts.*.dm_policy", KeyClass::Hot),
    key("channels.irc.accounts.*.allow_from", KeyClass::Hot),
    key("channels.irc.accounts.*.group_policy", KeyClass::Hot),
    key("channels.irc.accounts.*.require_mention", KeyClass::Hot),
    key("channels.irc.accounts.*.agent", KeyClass::Hot),
    key("channels.matrix.accounts.*.enabled", KeyClass::Hot),
    key("channels.matrix.accounts.*.homeserver", KeyClass::Hot),
    key("channels.matrix.accounts.*.user_id", KeyClass::Hot),
    KeyInfo { key: "channels.matrix.accounts.*.password", class: KeyClass::Hot, secret: true },
    KeyInfo { key: "channels.matrix.accounts.*.access_token", class: KeyClass::Hot, secret: true },
    key("channels.matrix.accounts.*.device_name", KeyClass::Hot),
    key("channels.matrix.accounts.*.dm_policy", KeyClass::Hot),
    key("channels.matrix.accounts.*.allow_from", KeyClass::Hot),
    key("channels.matrix.accounts.*.group_policy", KeyClass::Hot),
    key("channels.matrix.accounts.*.require_mention", KeyClass::Hot),
    key("channels.matrix.accounts.*.agent", KeyClass::Hot),
    key("channels.telegram.accounts.*.enabled", KeyClass::Hot),
    KeyInfo { key: "channels.telegram.accounts.*.bot_token", class: KeyClass::Hot, secret: true },
    key("channels.telegram.accounts.*.mode", KeyClass::Hot),
    key("channels.telegram.accounts.*.base_url", KeyClass::Hot),
    key("channels.telegram.accounts.*.webhook_url", KeyClass::Hot),
    KeyInfo { key: "channels.telegram.accounts.*.webhook_secret", class: KeyClass::Hot, secret: true },
    key("channels.telegram.accounts.*.dm_policy", KeyClass::Hot),
    key("channels.telegram.accounts.*.allow_from", KeyClass::Hot),
    key("channels.telegram.accounts.*.group_policy", KeyClass::Hot),
    key("channels.telegram.accounts.*.require_mention", KeyClass::Hot),
    key("channels.telegram.accounts.*.agent", KeyClass::Hot),
    key("hooks.enabled", KeyClass::Hot),
    KeyInfo { key: "hooks.token", class: KeyClass::Hot, secret: true },
    key("hooks.max_body_bytes", KeyClass::Hot),
    key("hooks.mappings", KeyClass::Hot),
    key("cron.enabled", KeyClass::Hot),
    key("cron.max_concurrent_runs", KeyClass::Hot),
    key("cron.catchup_stagger_ms", KeyClass::Hot),
    key("cron.failure_streak_threshold", KeyClass::Hot),
    key("cron.retryable_failure_threshold", KeyClass::Hot),
    key("cron.webhook_allow_hosts", KeyClass::Hot),
    key("cron.jobs", KeyClass::Hot),
    key("remote.profile", KeyClass::Hot),
];

/// A key with the names of map entries (providers, agents) replaced by `*`, as [`KEYS`] lists it.
pub fn pattern_of(key: &str) -> String {
    let mut parts: Vec<&str> = key.split('.').collect();
    match parts.as_slice() {
        ["models", "providers", _, _, ..] => parts[2] = "*",
        ["agents", _, _, ..] => parts[1] = "*",
        ["channels", _, "accounts", _, _, ..] => parts[3] = "*",
        _ => {}
    }
    parts.join(".")
}

/// A key missing from [`KEYS`] is treated as restart-required: the safe side.
pub fn class_of(key: &str) -> KeyClass {
    let key = pattern_of(key);
    KEYS.iter().find(|k| k.key == key).map_or(KeyClass::Restart, |k| k.class)
}

/// The keys whose values differ between two configs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigDiff {
    pub changed: Vec<String>,
    /// The subset of `changed` that needs a restart.
    pub restart: Vec<String>,
}

impl ConfigDiff {
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty()
    }
}

pub fn diff(old: &Config, new: &Config) -> ConfigDiff {
    let (old, new) = (leaves(old), leaves(new));
    let changed: Vec<String> = old
        .keys()
        .chain(new.keys())
        .filter(|k| old.get(*k) != new.get(*k))
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let restart: Vec<String> = changed.iter().filter(|k| class_of(k) == KeyClass::Restart).cloned().collect();
    ConfigDiff { changed: collapse(&changed, &old, &new), restart: collapse(&restart, &old, &new) }
}

/// The map entry (`models.providers.NAME`, `agents.NAME`) a key belongs to, if any.
fn entry_of(key: &str) -> Option<&str> {
    let depth = match key.split('.').collect::<Vec<_>>().as_slice() {
        ["models", "providers", _, _, ..] => 3,
        ["agents", _, _, ..] => 2,
        ["channels", _, "accounts", _, _, ..] => 4,
        _ => return None,
    };
    key.match_indices('.').nth(depth - 1).map(|(i, _)| &key[..i])
}

/// Names a map entry once instead of each of its keys when it was added or removed, or when more
/// than three of its keys changed: a new provider is `models.providers.local`, not its dozen
/// settings.
fn collapse(keys: &[String], old: &BTreeMap<String, Value>, new: &BTreeMap<String, Value>) -> Vec<String> {
    let has = |map: &BTreeMap<String, Value>, entry: &str| {
        map.range(format!("{entry}.")..).next().is_some_and(|(k, _)| k.starts_with(&format!("{entry}.")))
    };
    let mut out: Vec<String> = Vec::with_capacity(keys.len());
    for key in keys {
        let shown = match entry_of(key) {
            Some(entry) => {
                let changed_here = keys.iter().filter(|k| entry_of(k) == Some(entry)).count();
                if changed_here > 3 || !has(old, entry) || !has(new, entry) {
                    entry.to_owned()
                } else {
                    key.clone()
                }
            }
            None => key.clone(),
        };
        if out.last() != Some(&shown) {
            out.push(shown);
        }
    }
    out
}

/// The secrets the config sets, by key: `gateway.auth.token`, `gateway.auth.password`,
/// `hooks.token`, `models.providers.NAME.api_key`, `channels.irc.accounts.ID.password`.
pub fn secret_refs(config: &Config) -> Vec<(String, &crate::SecretRef)> {
    let auth = &config.gateway.auth;
    let mut refs: Vec<(String, &crate::SecretRef)> = [
        ("gateway.auth.token", auth.token.as_ref()),
        ("gateway.auth.password", auth.password.as_ref()),
        ("hooks.token", config.hooks.token.as_ref()),
        ("metrics.token", config.metrics.token.as_ref()),
    ]
    .into_iter()
    .filter_map(|(key, secret)| Some((key.to_owned(), secret?)))
    .collect();
    for (name, provider) in &config.models.providers {
        if let Some(key) = &provider.api_key {
            refs.push((format!("models.providers.{name}.api_key"), key));
        }
    }
    for (id, account) in &config.channels.irc.accounts {
        if let Some(password) = &account.password {
            refs.push((format!("channels.irc.accounts.{id}.password"), password));
        }
    }
    for (id, account) in &config.channels.matrix.accounts {
        if let Some(password) = &account.password {
            refs.push((format!("channels.matrix.accounts.{id}.password"), password));
        }
        if let Some(token) = &account.access_token {
            refs.push((format!("channels.matrix.accounts.{id}.access_token"), token));
        }
    }
    for (id, account) in &config.channels.telegram.accounts {
        if let Some(token) = &account.bot_token {
            refs.push((format!("channels.telegram.accounts.{id}.bot_token"), token));
        }
        if let Some(secret) = &account.webhook_secret {
            refs.push((format!("channels.telegram.accounts.{id}.webhook_secret"), secret));
        }
    }
    refs
}

/// The config as JSON with secrets redacted: what people may see.
pub fn redacted(config: &Config) -> Value {
    let mut value = serde_json::to_value(config).expect("config serializes");
    for info in KEYS.iter().filter(|k| k.secret) {
        let parts: Vec<&str> = info.key.split('.').collect();
        redact_at(&mut value, &parts);
    }
    value
}

/// Redacts the string at `path`, where `*` matches every entry of a map.
fn redact_at(value: &mut Value, path: &[&str]) {
    match path {
        [] => {
            if let Value::String(s) = value {
                let shown = crate::SecretRef::try_from(s.clone()).ok();
                *value = Value::String(shown.map_or_else(|| "<redacted>".into(), |s| s.redacted()));
            }
        }
        ["*", rest @ ..] => {
            if let Value::Object(map) = value {
                map.values_mut().for_each(|v| redact_at(v, rest));
            }
        }
        [part, rest @ ..] => {
            if let Some(v) = value.get_mut(*part) {
                redact_at(v, rest);
            }
        }
    }
}

/// Dotted path -> leaf value.
fn leaves(config: &Config) -> BTreeMap<String, Value> {
    fn walk(prefix: &str, value: Value, out: &mut BTreeMap<String, Value>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    let path = if prefix.is_empty() { k } else { format!("{prefix}.{k}") };
                    walk(&path, v, out);
                }
            }
            leaf => {
                out.insert(prefix.to_owned(), leaf);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", serde_json::to_value(config).expect("config serializes"), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::*;
    use crate::{Agent, Provider, SecretRef};

    fn with_all_keys_set() -> Config {
        let mut c = Config::default();
        c.gateway.port = Port::new(1);
        c.gateway.auth.token = Some(SecretRef::Literal("x".into()));
        c.metrics.token = Some(SecretRef::Literal("m".into()));
        c.gateway.auth.password = Some(SecretRef::Literal("y".into()));
        c.models.providers.insert("p".into(), Provider::default());
        c.agents.insert("a".into(), Agent::default());
        let irc = crate::IrcAccount {
            port: Port::new(6667),
            username: Some("u".into()),
            password: Some(SecretRef::Literal("z".into())),
            agent: Some("a".into()),
            ..Default::default()
        };
        c.channels.irc.accounts.insert("i".into(), irc);
        let telegram = crate::channels::TelegramAccount {
            bot_token: Some(SecretRef::Literal("t".into())),
            webhook_url: Some("https://x".into()),
            webhook_secret: Some(SecretRef::Literal("s".into())),
            agent: Some("a".into()),
            ..Default::default()
        };
        c.channels.telegram.accounts.insert("t".into(), telegram);
        let matrix = crate::channels::MatrixAccount {
            password: Some(SecretRef::Literal("p".into())),
            access_token: Some(SecretRef::Literal("a".into())),
            agent: Some("a".into()),
            ..Default::default()
        };
        c.channels.matrix.accounts.insert("m".into(), matrix);
        c
    }

    #[test]
    fn every_key_is_classified() {
        let all = leaves(&with_all_keys_set());
        let listed: Vec<&str> = KEYS.iter().map(|k| k.key).collect();
        let mut found: Vec<String> = all.keys().map(|k| pattern_of(k)).collect();
        found.sort();
        assert_eq!(found, {
            let mut l = listed.clone();
            l.sort();
            l
        });
    }

    #[test]
    fn diff_separates_hot_from_restart() {
        let old = Config::default();
        assert!(diff(&old, &old).is_empty());
        let mut new = old.clone();
        new.logging.level = LogLevel::Debug;
        new.gateway.port = Port::new(9999);
        let d = diff(&old, &new);
        assert_eq!(d.changed, ["gateway.port", "logging.level"]);
        assert_eq!(d.restart, ["gateway.port"]);
    }

    #[test]
    fn a_new_or_reworked_provider_is_named_once() {
        let old = Config::default();
        let mut new = old.clone();
        new.models.providers.insert("local".into(), Provider::default());
        new.agents.insert("helper".into(), Agent::default());
        assert_eq!(diff(&old, &new).changed, ["agents.helper", "models.providers.local"]);
        assert_eq!(diff(&new, &old).changed, ["agents.helper", "models.providers.local"]);
        // One or a few keys of an existing entry are named each.
        let mut one = new.clone();
        one.models.providers.get_mut("local").unwrap().max_retries = Bounded::new(7).unwrap();
        assert_eq!(diff(&new, &one).changed, ["models.providers.local.max_retries"]);
        let mut many = one.clone();
        let p = many.models.providers.get_mut("local").unwrap();
        p.base_url = Some("http://127.0.0.1:9/v1".into());
        p.max_retries = Bounded::new(1).unwrap();
        p.stream = !p.stream;
        p.retry_backoff_ms = Bounded::new(50).unwrap();
        assert_eq!(diff(&one, &many).changed, ["models.providers.local"]);
    }

    #[test]
    fn every_secret_key_is_found_by_secret_refs() {
        let config = with_all_keys_set();
        let mut c = config.clone();
        c.hooks.token = Some(SecretRef::Env("H".into()));
        c.models.providers.get_mut("p").unwrap().api_key = Some(SecretRef::Env("K".into()));
        let mut found: Vec<String> = secret_refs(&c).into_iter().map(|(k, _)| pattern_of(&k)).collect();
        found.sort();
        let mut secret: Vec<&str> = KEYS.iter().filter(|k| k.secret).map(|k| k.key).collect();
        secret.sort();
        assert_eq!(found, secret);
    }

    #[test]
    fn redaction_hides_literal_secrets_only() {
        let mut c = Config::default();
        c.gateway.auth.token = Some(SecretRef::Literal("hunter2".into()));
        let shown = redacted(&c).to_string();
        assert!(!shown.contains("hunter2") && shown.contains("<redacted>"), "{shown}");
        c.gateway.auth.token = Some(SecretRef::Env("TOK".into()));
        assert!(redacted(&c).to_string().contains("env:TOK"));
        let provider = Provider { api_key: Some(SecretRef::Literal("sk-123".into())), ..Provider::default() };
        c.models.providers.insert("p".into(), provider);
        let shown = redacted(&c).to_string();
        assert!(!shown.contains("sk-123") && shown.contains("<redacted>"), "{shown}");
    }
}
