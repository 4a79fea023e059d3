//! The methods of the protocol and the scope each needs. One table: `hello-ok.features.methods`
//! lists exactly what it holds. A method with no rule would need admin; none is left without.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use gateway_proto::api::{HealthReport, ReloadTrigger};
use gateway_proto::ws::{auth_code, code, scope, ErrorShape};
use serde::Deserialize;
use serde_json::{json, Value};

use super::config;
use super::conversation;
use super::hub::{Conn, Hub};
use crate::core::gateway::Gateway;
use crate::core::{health, logtail, reload};
use gateway_proto::time::now_ms;

/// What a method needs of the connection's scopes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Any authenticated connection, even one without scopes.
    Nothing,
    Read,
    /// Runs and session changes: operator.write (or admin).
    Write,
    Admin,
}

const METHODS: &[(&str, Need)] = &[
    ("health", Need::Nothing),
    ("status", Need::Read),
    ("system-presence", Need::Read),
    ("last-heartbeat", Need::Read),
    ("logs.tail", Need::Read),
    ("models.list", Need::Read),
    ("agents.list", Need::Read),
    ("tools.catalog", Need::Read),
    ("chat.send", Need::Write),
    ("chat.history", Need::Read),
    ("chat.abort", Need::Write),
    ("agent", Need::Write),
    ("agent.wait", Need::Read),
    ("sessions.list", Need::Read),
    ("sessions.preview", Need::Read),
    ("sessions.create", Need::Write),
    ("sessions.reset", Need::Write),
    ("sessions.delete", Need::Write),
    ("channels.status", Need::Read),
    ("config.get", Need::Admin),
    ("config.schema", Need::Admin),
    ("config.patch", Need::Admin),
    ("config.apply", Need::Admin),
    ("secrets.reload", Need::Admin),
];

/// Events a client may receive.
pub const EVENTS: &[&str] = &[
    "connect.challenge",
    "tick",
    "presence",
    "health",
    "shutdown",
    "config.changed",
    "chat",
    "agent",
    "sessions.changed",
];

pub fn names() -> Vec<&'static str> {
    METHODS.iter().map(|(name, _)| *name).collect()
}

pub type Pending = Pin<Box<dyn Future<Output = Result<Value, ErrorShape>> + Send>>;

/// A method's answer: at once, or from a task (it may wait, and can be cancelled).
pub enum Reply {
    Now(Result<Value, ErrorShape>),
    Later(Pending),
}

pub fn call(gw: &Arc<Gateway>, hub: &Hub, conn: &Conn, id: &str, method: &str, params: Value) -> Reply {
    let Some((_, need)) = METHODS.iter().find(|(name, _)| *name == method) else {
        return Reply::Now(Err(ErrorShape::new(code::INVALID_REQUEST, format!("unknown method: {method}"))));
    };
    if let Err(e) = allowed(&conn.scopes, *need) {
        return Reply::Now(Err(e));
    }
    let gw = gw.clone();
    match method {
        "health" => Reply::Now(Ok(health_payload(&health::report(&gw), now_ms(), gw.uptime_ms()))),
        "status" => {
            Reply::Now(Ok(serde_json::to_value(crate::core::status::report(&gw)).expect("plain JSON")))
        }
        "system-presence" => {
            Reply::Now(Ok(json!({ "presence": hub.presence(), "stateVersion": hub.state_version() })))
        }
        "last-heartbeat" => Reply::Now(Ok(last_heartbeat(&gw))),
        "logs.tail" => Reply::Now(logs_tail(&gw, params)),
        "models.list" => Reply::Now(Ok(conversation::models_list(&gw))),
        "agents.list" => Reply::Now(Ok(conversation::agents_list(&gw))),
        "tools.catalog" => Reply::Now(Ok(conversation::tools_catalog(&gw))),
        "chat.send" => Reply::Later(conversation::chat_send(gw, params)),
        "chat.history" => Reply::Later(conversation::chat_history(gw, params)),
        "chat.abort" => Reply::Now(conversation::chat_abort(&gw, params)),
        "agent" => Reply::Later(conversation::agent(gw, conn, id.to_owned(), params)),
        "agent.wait" => Reply::Later(conversation::agent_wait(gw, params)),
        "sessions.list" => Reply::Later(conversation::sessions_list(gw, params)),
        "sessions.preview" => Reply::Later(conversation::sessions_preview(gw, params)),
        "sessions.create" => Reply::Later(conversation::sessions_create(gw, params)),
        "sessions.reset" => Reply::Later(conversation::sessions_reset(gw, params)),
        "sessions.delete" => Reply::Later(conversation::sessions_delete(gw, params)),
        "channels.status" => Reply::Now(Ok(json!({ "channels": {} }))),
        "config.get" => Reply::Now(config::get(&gw)),
        "config.schema" => Reply::Now(Ok(gateway_config::json_schema())),
        "config.apply" => Reply::Later(Box::pin(async move { config::apply_rpc(&gw, params, false).await })),
        "config.patch" => Reply::Later(Box::pin(async move { config::apply_rpc(&gw, params, true).await })),
        "secrets.reload" => Reply::Later(Box::pin(async move {
            let report = reload::reload(&gw, ReloadTrigger::Rpc).await;
            Ok(serde_json::to_value(report).expect("plain JSON"))
        })),
        _ => unreachable!("every method in METHODS has a handler"),
    }
}

/// operator.admin allows everything; operator.write allows reads.
fn allowed(scopes: &[String], need: Need) -> Result<(), ErrorShape> {
    let has = |s: &str| scopes.iter().any(|x| x == s);
    let (ok, required): (bool, &[&str]) = match need {
        Need::Nothing => (true, &[]),
        Need::Read => (
            has(scope::READ) || has(scope::WRITE) || has(scope::ADMIN),
            &[scope::READ, scope::WRITE, scope::ADMIN],
        ),
        Need::Write => (has(scope::WRITE) || has(scope::ADMIN), &[scope::WRITE, scope::ADMIN]),
        Need::Admin => (has(scope::ADMIN), &[scope::ADMIN]),
    };
    if ok {
        return Ok(());
    }
    let missing = required[0];
    let hint =
        if scopes.is_empty() { " (a client without a paired device identity has no scopes)" } else { "" };
    Err(ErrorShape::new(code::FORBIDDEN, format!("missing scope: {missing}{hint}")).with_details(
        json!({ "code": auth_code::MISSING_SCOPE, "missingScope": missing, "requiredScopes": required }),
    ))
}

/// The health snapshot clients see (`health` method and event, hello-ok snapshot).
pub fn health_payload(report: &HealthReport, at_ms: u64, uptime_ms: u64) -> Value {
    json!({
        "ok": report.ok,
        "ts": at_ms,
        "uptimeMs": uptime_ms,
        "checks": report.checks,
    })
}

fn last_heartbeat(gw: &Gateway) -> Value {
    let last = *gw.last_tick.lock().unwrap_or_else(|e| e.into_inner());
    let age = last.map(|t| t.elapsed().as_millis() as u64);
    json!({
        "ts": age.map(|a| now_ms().saturating_sub(a)),
        "ageMs": age,
        "ticks": crate::core::gateway::Stats::get(&gw.stats.heartbeat_ticks),
        "intervalMs": gw.active().config.gateway.heartbeat.interval_ms.get(),
    })
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct LogsParams {
    cursor: Option<u64>,
    limit: Option<usize>,
    max_bytes: Option<u64>,
}

fn logs_tail(gw: &Gateway, params: Value) -> Result<Value, ErrorShape> {
    let p: LogsParams = parse_params(params)?;
    let limit = p.limit.unwrap_or(logtail::DEFAULT_LINES).clamp(1, 10_000);
    let max_bytes = p.max_bytes.unwrap_or(logtail::DEFAULT_MAX_BYTES).clamp(1024, 16 * 1024 * 1024);
    let tail = logtail::read(gw.logs.file_path(), p.cursor, limit, max_bytes)
        .map_err(|e| ErrorShape::new(code::UNAVAILABLE, format!("cannot read the log: {e}")))?;
    Ok(serde_json::to_value(tail).expect("plain JSON"))
}

/// Params of the wrong shape are the client's error, named as such.
pub fn parse_params<T: for<'de> Deserialize<'de> + Default>(params: Value) -> Result<T, ErrorShape> {
    if params.is_null() {
        return Ok(T::default());
    }
    serde_json::from_value(params)
        .map_err(|e| ErrorShape::new(code::INVALID_REQUEST, format!("invalid params: {e}")))
}
