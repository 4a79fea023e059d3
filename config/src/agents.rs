//! The agent sections of the config: model providers, agents, tools, runs and webhooks.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::schema::Bounded;
use crate::secret::SecretRef;

/// The provider and model every API can use with no configuration at all.
pub const BUILTIN_ECHO: &str = "echo";
/// The agent that exists even when none is configured.
pub const DEFAULT_AGENT: &str = "main";
/// The gateway's built-in tools, as agents name them in `tools`.
pub const TOOL_NAMES: &[&str] = &["time", "memory_read", "memory_write", "sessions_list", "fetch"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Models {
    /// "provider/model": what an agent without a model of its own uses.
    pub default: String,
    /// Named providers; `echo` is built in unless a provider of that name is configured.
    pub providers: BTreeMap<String, Provider>,
}

impl Default for Models {
    fn default() -> Self {
        Self { default: format!("{BUILTIN_ECHO}/{BUILTIN_ECHO}"), providers: BTreeMap::new() }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    #[default]
    Openai,
    Anthropic,
    Echo,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Openai => "openai",
            Self::Anthropic => "anthropic",
            Self::Echo => "echo",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Provider {
    pub kind: ProviderKind,
    /// Required for `openai`; `anthropic` defaults to https://api.anthropic.com.
    pub base_url: Option<String>,
    pub api_key: Option<SecretRef>,
    /// Model names offered as "<provider>/<model>".
    pub models: Vec<String>,
    /// Ask the upstream for a streamed (SSE) answer; false: one JSON answer.
    pub stream: bool,
    pub connect_timeout_ms: Bounded<100, 600_000>,
    pub first_byte_timeout_ms: Bounded<100, 3_600_000>,
    pub idle_timeout_ms: Bounded<100, 3_600_000>,
    pub total_timeout_ms: Bounded<1_000, 86_400_000>,
    pub max_retries: Bounded<0, 10>,
    pub retry_backoff_ms: Bounded<10, 60_000>,
}

impl Default for Provider {
    fn default() -> Self {
        Self {
            kind: ProviderKind::default(),
            base_url: None,
            api_key: None,
            models: Vec::new(),
            stream: true,
            connect_timeout_ms: Bounded(10_000),
            first_byte_timeout_ms: Bounded(120_000),
            idle_timeout_ms: Bounded(60_000),
            total_timeout_ms: Bounded(600_000),
            max_retries: Bounded(2),
            retry_backoff_ms: Bounded(500),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Agent {
    /// "provider/model"; unset: `models.default`.
    pub model: Option<String>,
    pub system_prompt: Option<String>,
    /// Gateway tools this agent may call (names from `tools.catalog`); unset: every enabled one.
    pub tools: Option<Vec<String>>,
    /// Model calls per run when the model keeps asking for tools.
    pub max_tool_iterations: Bounded<1, 64>,
    /// Stored messages sent to the model per run, newest kept.
    pub history_limit: Bounded<1, 100_000>,
}

impl Default for Agent {
    fn default() -> Self {
        Self {
            model: None,
            system_prompt: None,
            tools: None,
            max_tool_iterations: Bounded(8),
            history_limit: Bounded(200),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Tools {
    pub time: bool,
    pub memory: bool,
    pub sessions_list: bool,
    pub fetch: Fetch,
    /// Tools `POST /tools/invoke` refuses, whatever the caller's scopes.
    pub http_deny: Vec<String>,
}

impl Default for Tools {
    fn default() -> Self {
        Self { time: true, memory: true, sessions_list: true, fetch: Fetch::default(), http_deny: Vec::new() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Fetch {
    pub enabled: bool,
    /// Host names (or IP addresses) fetch may reach even when they resolve to loopback, private
    /// or link-local addresses.
    pub allow_hosts: Vec<String>,
    pub max_bytes: Bounded<1_024, 16_777_216>,
    pub timeout_ms: Bounded<100, 120_000>,
    pub max_redirects: Bounded<0, 10>,
}

impl Default for Fetch {
    fn default() -> Self {
        Self {
            enabled: false,
            allow_hosts: Vec::new(),
            max_bytes: Bounded(262_144),
            timeout_ms: Bounded(10_000),
            max_redirects: Bounded(3),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Runs {
    /// Runs executing at once across all sessions; more wait their turn.
    pub max_concurrent: Bounded<1, 4_096>,
    /// Runs waiting behind one session's current run; more are refused (busy).
    pub max_queued_per_session: Bounded<1, 1_000>,
    /// How long an idempotency key keeps joining the run it started.
    pub idempotency_ttl_ms: Bounded<1_000, 86_400_000>,
    /// A started run with no event (text, tool call or result) for this long is stopped by the
    /// heartbeat with error `stuck`.
    pub stuck_after_ms: Bounded<1_000, 86_400_000>,
    /// Ended runs' records and stored OpenResponses responses older than this many days are
    /// deleted by the heartbeat; 0 keeps them forever. Sessions' messages are not touched.
    pub retention_days: Bounded<0, 36_500>,
}

impl Default for Runs {
    fn default() -> Self {
        Self {
            max_concurrent: Bounded(64),
            max_queued_per_session: Bounded(32),
            idempotency_ttl_ms: Bounded(600_000),
            stuck_after_ms: Bounded(600_000),
            retention_days: Bounded(30),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Hooks {
    pub enabled: bool,
    /// Required when enabled; must differ from the gateway token.
    pub token: Option<SecretRef>,
    pub max_body_bytes: Bounded<1_024, 16_777_216>,
    pub mappings: Vec<HookMapping>,
}

impl Default for Hooks {
    fn default() -> Self {
        Self { enabled: false, token: None, max_body_bytes: Bounded(262_144), mappings: Vec::new() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HookMapping {
    pub name: String,
    pub session_key: String,
    pub agent: Option<String>,
}

/// "provider/model" split at the first slash (model names may hold slashes themselves).
pub fn split_model_id(id: &str) -> Option<(&str, &str)> {
    id.split_once('/').filter(|(p, m)| !p.is_empty() && !m.is_empty())
}

/// The models a provider offers (the built-in echo provider offers "echo").
pub fn provider_models(provider: &Provider) -> Vec<String> {
    if provider.kind == ProviderKind::Echo && provider.models.is_empty() {
        return vec![BUILTIN_ECHO.to_owned()];
    }
    provider.models.clone()
}

/// The providers in effect: those configured, plus the built-in echo unless one took its name.
pub fn effective_providers(models: &Models) -> BTreeMap<String, Provider> {
    let mut providers = models.providers.clone();
    providers
        .entry(BUILTIN_ECHO.to_owned())
        .or_insert_with(|| Provider { kind: ProviderKind::Echo, ..Provider::default() });
    providers
}

/// Whether "provider/model" names a model some provider offers; `Err` says what is wrong.
pub fn check_model_id(models: &Models, id: &str) -> Result<(), String> {
    let providers = effective_providers(models);
    let Some((provider, model)) = split_model_id(id) else {
        return Err(format!("model {id:?} is not \"provider/model\""));
    };
    let Some(p) = providers.get(provider) else {
        let known: Vec<&str> = providers.keys().map(String::as_str).collect();
        return Err(format!(
            "model {id:?}: no provider {provider:?} (configured: {}); add [models.providers.{provider}]",
            known.join(", ")
        ));
    };
    if !provider_models(p).iter().any(|m| m == model) {
        return Err(format!(
            "model {id:?}: provider {provider:?} does not offer {model:?}; add it to models.providers.{provider}.models"
        ));
    }
    Ok(())
}

/// Checks the agent sections for what would fail every run: (key, message) per problem.
pub fn check(config: &crate::Config) -> Vec<(String, String)> {
    let mut issues = Vec::new();
    for (name, p) in &config.models.providers {
        let key = |leaf: &str| format!("models.providers.{name}.{leaf}");
        match (&p.base_url, p.kind) {
            (None, ProviderKind::Openai) => issues.push((
                key("kind"),
                format!("provider {name:?} of kind \"openai\" needs a base_url, e.g. \"http://127.0.0.1:11434/v1\""),
            )),
            (Some(url), _) if !(url.starts_with("http://") || url.starts_with("https://")) => issues.push((
                key("base_url"),
                format!("base_url {url:?} must start with http:// or https://"),
            )),
            _ => {}
        }
        if p.kind != ProviderKind::Echo && p.models.is_empty() {
            issues
                .push((key("models"), format!("provider {name:?} lists no models: add models = [\"...\"]")));
        }
    }
    if let Err(e) = check_model_id(&config.models, &config.models.default) {
        issues.push(("models.default".to_owned(), e));
    }
    for (name, agent) in &config.agents {
        if let Some(model) = &agent.model {
            if let Err(e) = check_model_id(&config.models, model) {
                issues.push((format!("agents.{name}.model"), e));
            }
        }
        for tool in agent.tools.iter().flatten().filter(|t| !TOOL_NAMES.contains(&t.as_str())) {
            issues.push((
                format!("agents.{name}.tools"),
                format!("unknown tool {tool:?}: the tools are {}", TOOL_NAMES.join(", ")),
            ));
        }
    }
    issues
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_and_tool_references_are_checked() {
        let text = r#"
[models]
default = "local/llama"
[models.providers.local]
kind = "openai"
models = ["llama"]
[agents.helper]
model = "echo/other"
tools = ["time", "shell"]
"#;
        let config = crate::parse_str(text, std::path::Path::new("t.toml")).unwrap();
        let issues = check(&config);
        let keys: Vec<&str> = issues.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["models.providers.local.kind", "agents.helper.model", "agents.helper.tools"],
            "{issues:?}"
        );
        assert!(issues[0].1.contains("base_url"));
        assert!(issues[1].1.contains("does not offer \"other\""));
        assert!(issues[2].1.contains("\"shell\""));
        assert!(check(&crate::Config::default()).is_empty(), "the defaults are valid");
        assert_eq!(split_model_id("or/meta-llama/llama-3"), Some(("or", "meta-llama/llama-3")));
    }
}
