//! Tools the gateway runs for models: a small built-in set (time, session memory, sessions list,
//! and an opt-in HTTP fetch behind an SSRF guard). Agents offer them to the model; the
//! function-calling loop in `agent::run` calls [`invoke`]; `POST /tools/invoke` and the
//! `tools.catalog` method expose them to operators.

pub mod builtin;
pub mod fetch;

use gateway_config::Tools;
use serde::Serialize;
use serde_json::Value;

use crate::runtime::agent::history::History;
use crate::runtime::agent::ToolSpec;

/// What a tool may touch while it runs.
pub struct Context<'a> {
    pub history: &'a History,
    /// None for ephemeral runs (no stored session, so no memory).
    pub session_key: Option<&'a str>,
    pub config: &'a Tools,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CatalogEntry {
    pub name: String,
    pub description: String,
    pub parameters: Value,
    /// Turned on in `[tools]`.
    pub enabled: bool,
    /// Refused by `POST /tools/invoke` (`tools.http_deny`).
    pub http_denied: bool,
    /// Needs a session (memory tools).
    pub needs_session: bool,
}

/// Why a direct call of a tool (not one a model asked for) is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    NotFound,
    Denied,
    Disabled,
    BadRequest,
}

impl Refused {
    pub fn code(self) -> &'static str {
        match self {
            Self::NotFound => "tool_not_found",
            Self::Denied => "tool_denied",
            Self::Disabled => "tool_disabled",
            Self::BadRequest => "invalid_request",
        }
    }
}

/// Checks a direct call (`POST /tools/invoke`, WS `tools.invoke`) before it runs: the tool
/// exists, is on, is not in `tools.http_deny`, and has the session it needs.
pub fn check_call(
    config: &Tools,
    tool: &str,
    session_key: Option<&str>,
) -> Result<CatalogEntry, (Refused, String)> {
    let quoted = gateway_proto::quote::short(tool);
    let Some(entry) = catalog(config).into_iter().find(|t| t.name == tool) else {
        let names: Vec<String> = catalog(config).into_iter().map(|t| t.name).collect();
        return Err((Refused::NotFound, format!("no tool {quoted}: the tools are {}", names.join(", "))));
    };
    if entry.http_denied {
        return Err((Refused::Denied, format!("tool {quoted} is denied to direct calls by tools.http_deny")));
    }
    if !entry.enabled {
        return Err((Refused::Disabled, format!("tool {quoted} is turned off: enable it in [tools]")));
    }
    if let Some(key) = session_key {
        crate::runtime::agent::history::check_key("session key", key)
            .map_err(|e| (Refused::BadRequest, e))?;
    }
    if entry.needs_session && session_key.is_none() {
        return Err((Refused::BadRequest, format!("tool {quoted} works on a session: give \"sessionKey\"")));
    }
    Ok(entry)
}

/// Runs a direct call that [`check_call`] allowed: the arguments (`null` is `{}`), and the
/// tool's output as JSON (a string when it is not JSON).
pub async fn call_direct(
    history: &crate::runtime::agent::History,
    config: &Tools,
    tool: &str,
    session_key: Option<&str>,
    args: Value,
) -> Result<Value, String> {
    let args = if args.is_null() { Value::Object(Default::default()) } else { args };
    let ctx = Context { history, session_key, config };
    let output = invoke(&ctx, tool, &args.to_string()).await?;
    Ok(serde_json::from_str(&output).unwrap_or(Value::String(output)))
}

/// Every built-in tool, enabled or not.
pub fn catalog(config: &Tools) -> Vec<CatalogEntry> {
    builtin::ALL
        .iter()
        .map(|t| CatalogEntry {
            name: t.name.to_owned(),
            description: t.description.to_owned(),
            parameters: (t.parameters)(),
            enabled: builtin::enabled(t.name, config),
            http_denied: config.http_deny.iter().any(|d| d == t.name),
            needs_session: t.needs_session,
        })
        .collect()
}

/// The tools offered to a model: the enabled ones, narrowed to `allowed` when the agent lists
/// its tools.
pub fn specs(config: &Tools, allowed: Option<&[String]>) -> Vec<ToolSpec> {
    builtin::ALL
        .iter()
        .filter(|t| builtin::enabled(t.name, config))
        .filter(|t| allowed.is_none_or(|a| a.iter().any(|n| n == t.name)))
        .map(|t| ToolSpec {
            name: t.name.to_owned(),
            description: t.description.to_owned(),
            parameters: (t.parameters)(),
        })
        .collect()
}

/// Runs the tool `name` with `arguments` (JSON text). `Err` is an error the model (or caller)
/// is shown: the run goes on.
pub async fn invoke(ctx: &Context<'_>, name: &str, arguments: &str) -> Result<String, String> {
    let Some(tool) = builtin::ALL.iter().find(|t| t.name == name) else {
        let offered: Vec<&str> =
            builtin::ALL.iter().filter(|t| builtin::enabled(t.name, ctx.config)).map(|t| t.name).collect();
        return Err(format!(
            "unknown tool {}: call one of the tools offered ({})",
            gateway_proto::quote::short(name),
            offered.join(", ")
        ));
    };
    if !builtin::enabled(name, ctx.config) {
        return Err(format!(
            "tool {} is turned off in [tools]: use another tool or answer without it",
            gateway_proto::quote::short(name)
        ));
    }
    let args: Value = if arguments.trim().is_empty() {
        Value::Object(Default::default())
    } else {
        serde_json::from_str(arguments).map_err(|e| format!("arguments of {name} are not JSON: {e}"))?
    };
    if !args.is_object() {
        return Err(format!("arguments of {name} must be a JSON object"));
    }
    builtin::run(tool, ctx, &args).await
}
