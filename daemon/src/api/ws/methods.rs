//! Dispatch of the protocol's methods: the table (names, scopes, params) is
//! `gateway_proto::ws_methods`; `hello-ok.features.methods` lists exactly what it holds.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use gateway_proto::api::{HealthReport, ReloadTrigger};
use gateway_proto::ws::{auth_code, code, scope, ErrorShape};
use gateway_proto::ws_methods::{
    parse_params, HealthResult, LastHeartbeatResult, LogsTailParams, Method, Need,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::channels;
use super::config;
use super::conversation;
use super::cron;
use super::devices;
use super::hub::{Conn, Hub};
use super::notes;
use super::summary;
use crate::core::gateway::Gateway;
use crate::core::{health, logtail, reload};
use gateway_proto::time::now_ms;

pub type Pending = Pin<Box<dyn Future<Output = Result<Value, ErrorShape>> + Send>>;

/// A response's payload, serialized once: results go to JSON text without a `Value` tree.
pub type Payload = Box<RawValue>;

/// A method's answer: at once, or from a task (it may wait, and can be cancelled).
pub enum Reply {
    Now(Result<Payload, ErrorShape>),
    Later(Pending),
}

/// Any serializable result as the payload of a response.
pub fn payload<T: Serialize + ?Sized>(result: &T) -> Payload {
    serde_json::value::to_raw_value(result).expect("results serialize to plain JSON")
}

/// Parses the params, then answers at once.
fn answer_now<P: DeserializeOwned>(
    params: Value,
    handle: impl FnOnce(P) -> Result<Value, ErrorShape>,
) -> Reply {
    Reply::Now(parse_params(params).and_then(handle).map(|v| payload(&v)))
}

/// Parses the params, then answers from a task.
fn answer_later<P: DeserializeOwned>(params: Value, handle: impl FnOnce(P) -> Pending) -> Reply {
    match parse_params(params) {
        Ok(p) => Reply::Later(handle(p)),
        Err(e) => Reply::Now(Err(e)),
    }
}

/// Serves one request: the method by name, the connection's scopes checked against the table,
/// then its handler. The `match` is exhaustive: every method `hello-ok` advertises is served.
/// The method's name (`unknown` for one this gateway does not serve, a bounded metrics label)
/// and its reply. `arrived` is when the request was read.
pub fn call(
    gw: &Arc<Gateway>,
    hub: &Hub,
    conn: &Conn,
    id: &str,
    arrived: Instant,
    method: &str,
    params: Value,
) -> (Option<Method>, Reply) {
    let Some(method) = Method::from_name(method) else {
        let reply = Reply::Now(Err(ErrorShape::new(
            code::INVALID_REQUEST,
            format!(
                "unknown method: {}: this gateway does not serve it (hello-ok features.methods lists what it serves)",
                gateway_proto::quote::cut(method)
            ),
        )));
        return (None, reply);
    };
    if let Err(e) = allowed(&conn.scopes, method.need()) {
        return (Some(method), Reply::Now(Err(e)));
    }
    (Some(method), dispatch(gw, hub, conn, id, arrived, method, params))
}

/// `gw` is borrowed: a clone, for what answers later only, would otherwise write to the count
/// every worker shares on every request.
fn dispatch(
    gw: &Arc<Gateway>,
    hub: &Hub,
    conn: &Conn,
    id: &str,
    arrived: Instant,
    method: Method,
    params: Value,
) -> Reply {
    match method {
        Method::Health => Reply::Now(Ok(health::with_checks(gw, arrived, |checks| {
            payload(&HealthAnswer {
                ok: checks.ok,
                ts: now_ms(),
                duration_ms: Some(arrived.elapsed().as_millis() as u64),
                uptime_ms: gw.uptime_ms_at(arrived),
                checks: &checks.json,
            })
        }))),
        Method::Status => Reply::Later(summary::status(gw.clone())),
        Method::SystemPresence => Reply::Now(Ok(payload(&json!({
            "presence": hub.presence().iter().map(|c| c.presence()).collect::<Vec<_>>(),
            "stateVersion": hub.state_version(),
        })))),
        Method::LastHeartbeat => Reply::Now(Ok(payload(&last_heartbeat(gw)))),
        Method::LogsTail => answer_now(params, |p| logs_tail(gw, p)),
        Method::ModelsList => answer_now(params, |p| conversation::models_list(gw, p)),
        Method::AgentsList => Reply::Now(Ok(payload(&conversation::agents_list(gw)))),
        Method::ToolsCatalog => Reply::Now(Ok(payload(&conversation::tools_catalog(gw)))),
        Method::ChatSend => answer_later(params, |p| conversation::chat_send(gw.clone(), p)),
        Method::ChatHistory => answer_later(params, |p| conversation::chat_history(gw.clone(), p)),
        Method::ChatAbort => answer_now(params, |p| conversation::chat_abort(gw, p)),
        Method::Agent => answer_later(params, |p| conversation::agent(gw.clone(), conn, id.to_owned(), p)),
        Method::AgentWait => answer_later(params, |p| conversation::agent_wait(gw.clone(), p)),
        Method::SessionsList => answer_later(params, |p| conversation::sessions_list(gw.clone(), p)),
        Method::SessionsSubscribe | Method::SessionsUnsubscribe => {
            let on = method == Method::SessionsSubscribe;
            conn.sessions_subscribed.store(on, std::sync::atomic::Ordering::Relaxed);
            Reply::Now(Ok(payload(&json!({ "subscribed": on }))))
        }
        Method::SessionsPreview => answer_later(params, |p| conversation::sessions_preview(gw.clone(), p)),
        Method::SessionsCreate => answer_later(params, |p| conversation::sessions_create(gw.clone(), p)),
        Method::SessionsReset => {
            answer_later(params, |p| conversation::sessions_forget(gw.clone(), p, false))
        }
        Method::SessionsDelete => {
            answer_later(params, |p| conversation::sessions_forget(gw.clone(), p, true))
        }
        Method::MemoryList => answer_later(params, |p| notes::list(gw.clone(), p)),
        Method::MemoryPut => answer_later(params, |p| notes::put(gw.clone(), p)),
        Method::MemoryDelete => answer_later(params, |p| notes::delete(gw.clone(), p)),
        Method::ToolsInvoke => answer_later(params, |p| notes::invoke_tool(gw.clone(), p)),
        Method::ChannelsStatus => answer_later(params, |p| channels::status(gw.clone(), p)),
        Method::ChannelsPairingList => Reply::Later(channels::pairing_list(gw.clone())),
        Method::ChannelsPairingApprove => answer_later(params, |p| channels::settle(gw.clone(), p, true)),
        Method::ChannelsPairingReject => answer_later(params, |p| channels::settle(gw.clone(), p, false)),
        Method::DevicePairList => Reply::Later(devices::list(gw.clone())),
        Method::DevicePairApprove => answer_later(params, |p| devices::approve(gw.clone(), p)),
        Method::DevicePairReject => answer_later(params, |p| devices::reject(gw.clone(), p)),
        Method::DevicePairRemove => answer_later(params, |p| devices::remove(gw.clone(), p)),
        Method::ConfigGet => {
            Reply::Now(config::get(gw, has_scope(&conn.scopes, scope::ADMIN)).map(|v| payload(&v)))
        }
        Method::ConfigSchema => Reply::Now(Ok(payload(&gateway_config::json_schema()))),
        Method::ConfigApply => answer_later(params, |p| {
            let gw = gw.clone();
            Box::pin(async move { config::apply_rpc(&gw, p, false).await })
        }),
        Method::ConfigPatch => answer_later(params, |p| {
            let gw = gw.clone();
            Box::pin(async move { config::apply_rpc(&gw, p, true).await })
        }),
        Method::SecretsReload => {
            let gw = gw.clone();
            Reply::Later(Box::pin(async move { Ok(json!(reload::reload(&gw, ReloadTrigger::Rpc).await)) }))
        }
        Method::CronList => answer_later(params, |p| cron::list(gw.clone(), p)),
        Method::CronStatus => Reply::Later(cron::status(gw.clone())),
        Method::CronAdd => answer_later(params, |p| cron::add(gw.clone(), p)),
        Method::CronUpdate => answer_later(params, |p| cron::update(gw.clone(), p)),
        Method::CronRemove => answer_later(params, |p| cron::remove(gw.clone(), p)),
        Method::CronRun => answer_later(params, |p| cron::run(gw.clone(), p)),
        Method::CronRuns => answer_later(params, |p| cron::runs(gw.clone(), p)),
    }
}

fn has_scope(scopes: &[String], wanted: &str) -> bool {
    scopes.iter().any(|s| s == wanted)
}

/// operator.admin allows everything; operator.write allows reads.
fn allowed(scopes: &[String], need: Need) -> Result<(), ErrorShape> {
    let has = |s: &str| has_scope(scopes, s);
    let (ok, required): (bool, &[&str]) = match need {
        Need::Nothing => (true, &[]),
        Need::Read => (
            has(scope::READ) || has(scope::WRITE) || has(scope::ADMIN),
            &[scope::READ, scope::WRITE, scope::ADMIN],
        ),
        Need::Write => (has(scope::WRITE) || has(scope::ADMIN), &[scope::WRITE, scope::ADMIN]),
        Need::Pairing => (has(scope::PAIRING) || has(scope::ADMIN), &[scope::PAIRING, scope::ADMIN]),
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

/// A [`HealthResult`] around checks already serialized: the `health` method's answer, and
/// `hello-ok`'s snapshot (without `durationMs`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthAnswer<'a> {
    pub ok: bool,
    pub ts: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    pub uptime_ms: u64,
    pub checks: &'a RawValue,
}

/// The health snapshot clients see (`health` method and event, hello-ok snapshot).
pub fn health_result(report: &HealthReport, at_ms: u64, uptime_ms: u64) -> HealthResult {
    HealthResult { ok: report.ok, ts: at_ms, duration_ms: None, uptime_ms, checks: report.checks.clone() }
}

fn last_heartbeat(gw: &Gateway) -> LastHeartbeatResult {
    let age = gw.last_tick_age().map(|a| a.as_millis() as u64);
    LastHeartbeatResult {
        ts: age.map(|a| now_ms().saturating_sub(a)),
        age_ms: age,
        ticks: crate::core::gateway::Stats::get(&gw.stats.heartbeat_ticks),
        interval_ms: gw.active().config.gateway.heartbeat.interval_ms.get(),
    }
}

fn logs_tail(gw: &Gateway, p: LogsTailParams) -> Result<Value, ErrorShape> {
    let limit = p.limit.unwrap_or(logtail::DEFAULT_LINES).clamp(1, 10_000);
    let max_bytes = p.max_bytes.unwrap_or(logtail::DEFAULT_MAX_BYTES).clamp(1024, 16 * 1024 * 1024);
    let tail = logtail::read(gw.logs.file_path(), p.cursor, limit, max_bytes)
        .map_err(|e| ErrorShape::new(code::UNAVAILABLE, format!("cannot read the log: {e}")))?;
    Ok(json!(tail))
}
