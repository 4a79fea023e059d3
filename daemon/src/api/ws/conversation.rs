//! The conversation methods: `chat.send` with `chat` events, `chat.history`, `chat.abort`, the
//! two-stage `agent` with `agent` events, `agent.wait`, `sessions.*`, and the model, agent and
//! tool lists. WebSocket runs are not tied to the connection that started them: a client that
//! goes away can come back for the outcome (`agent.wait`, `chat.history`).

use std::sync::Arc;
use std::time::Duration;

use gateway_proto::ws::{code, ErrorShape};
use gateway_proto::ws_methods::{
    AgentParams, AgentWaitParams, ChatAbortParams, ChatAbortResult, ChatHistoryParams, ChatSendParams,
    ChatSendResult, ModelsListParams, RunOptions, SessionKeyParams, SessionsCreateParams,
    SessionsCreateResult, SessionsListParams, SessionsPreviewParams,
};
use serde_json::{json, Value};

use super::hub::{Conn, Hub};
use super::methods::Pending;
use crate::api::error::GatewayError;
use crate::core::events::{CoreEvent, SessionChange};
use crate::core::gateway::Gateway;
use crate::core::store::StoreError;
use crate::runtime::agent::{
    history, Message, Observed, RunEvent, RunHandle, RunOrigin, RunOutcome, RunRequest, RunStatus,
    StoredMessage,
};
use gateway_proto::time::now_ms;

/// Longest `agent.wait`, and the default.
const MAX_WAIT: Duration = Duration::from_secs(600);
const DEFAULT_WAIT: Duration = Duration::from_secs(30);
const DEFAULT_HISTORY: usize = 200;
const MAX_HISTORY: usize = 10_000;

/// `models.list`: every configured model, or one provider's (`provider`).
pub fn models_list(gw: &Gateway, p: ModelsListParams) -> Result<Value, ErrorShape> {
    if let Some(view) = p.view.as_deref().filter(|v| !matches!(*v, "default" | "all")) {
        return Err(ErrorShape::new(
            code::INVALID_REQUEST,
            format!("invalid params: view {} is not default or all", gateway_proto::quote::short(view)),
        ));
    }
    if let Some(agent) = p.agent_id.as_deref().filter(|a| !gw.agents.has_agent(a)) {
        return Err(ErrorShape::new(
            code::INVALID_REQUEST,
            format!("unknown agent {}: see agents.list", gateway_proto::quote::short(agent)),
        ));
    }
    let mut models = gw.agents.models();
    if let Some(provider) = p.provider.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        models.retain(|m| m.provider.eq_ignore_ascii_case(provider));
    }
    Ok(json!({ "models": models }))
}

pub fn agents_list(gw: &Gateway) -> Value {
    json!({ "defaultId": gateway_config::DEFAULT_AGENT, "agents": gw.agents.agents() })
}

pub fn tools_catalog(gw: &Gateway) -> Value {
    json!({ "tools": crate::runtime::tools::catalog(&gw.agents.tools_config()) })
}

/// `chat.send`: stores the message (durable when this answers), starts the run, and streams
/// `chat` events to every reader.
pub fn chat_send(gw: Arc<Gateway>, p: ChatSendParams) -> Pending {
    Box::pin(async move {
        let handle = start(&gw, p.session_key.clone(), p.message, p.idempotency_key, p.run).await?;
        // The run's `chat` events reach every reader through the observer (`observe_runs`).
        let status = if handle.joined { "in_flight" } else { "started" };
        Ok(payload(ChatSendResult { run_id: handle.run_id, status: status.into() }))
    })
}

async fn start(
    gw: &Gateway,
    session_key: String,
    message: String,
    idempotency_key: Option<String>,
    run: RunOptions,
) -> Result<RunHandle, ErrorShape> {
    if message.trim().is_empty() {
        return Err(ErrorShape::new(code::INVALID_REQUEST, "message is empty: send the text of the message"));
    }
    let req = RunRequest {
        session_key: Some(session_key),
        agent: run.agent_id,
        model: run.model,
        input: vec![Message::user(message)],
        instructions: run.instructions,
        idempotency_key,
        origin: RunOrigin::Ws,
        ..RunRequest::default()
    };
    gw.agents.start(req).await.map_err(|e| GatewayError::from(e).ws_shape())
}

/// Sends `chat` events for every stateful run (whatever started it: WebSocket, HTTP, a hook) to
/// every connection with read access, in the order the runs emit them.
pub fn observe_runs(gw: &Arc<Gateway>, hub: &Arc<Hub>) {
    let weak = Arc::downgrade(gw);
    let hub = hub.clone();
    gw.agents.observe(Box::new(move |o| {
        // With nobody connected, no event is even built.
        if hub.authenticated() == 0 {
            return;
        }
        if let Some(gw) = weak.upgrade() {
            if let Some((payload, droppable)) = chat_event(o) {
                hub.send("chat", &payload, droppable, gw.ws_buffer_limit(), Conn::sees_presence);
            }
        }
    }));
}

/// The `chat` event for a run event (none for the start and tool activity: `agent` matters).
fn chat_event(o: &Observed<'_>) -> Option<(Value, bool)> {
    let mut p = json!({ "runId": o.run_id, "sessionKey": o.session_key, "seq": o.seq });
    let droppable = match o.event {
        RunEvent::Delta { text } => {
            p["state"] = "delta".into();
            p["message"] = chat_message("assistant", o.text, now_ms());
            p["deltaText"] = text.as_str().into();
            true
        }
        RunEvent::Final { message, usage, finish_reason } => {
            p["state"] = "final".into();
            p["message"] = chat_message("assistant", &message.content, now_ms());
            if !message.tool_calls.is_empty() {
                p["message"]["toolCalls"] = json!(message.tool_calls);
            }
            p["usage"] = json!(usage);
            p["stopReason"] = finish_reason.as_str().into();
            false
        }
        RunEvent::Error { code, message } => {
            p["state"] = "error".into();
            p["errorCode"] = (*code).into();
            p["errorMessage"] = message.as_str().into();
            false
        }
        RunEvent::Aborted => {
            p["state"] = "aborted".into();
            if !o.text.is_empty() {
                p["message"] = chat_message("assistant", o.text, now_ms());
            }
            false
        }
        RunEvent::Started { .. } | RunEvent::ToolStart { .. } | RunEvent::ToolResult { .. } => return None,
    };
    Some((p, droppable))
}

/// A message as chat clients show it: content blocks and a timestamp.
fn chat_message(role: &str, text: &str, ts: u64) -> Value {
    json!({ "role": role, "content": [{ "type": "text", "text": text }], "timestamp": ts })
}

fn stored_json(m: &StoredMessage) -> Value {
    let mut v = chat_message(m.message.role.as_str(), &m.message.content, m.created_at_ms);
    v["text"] = m.message.content.clone().into();
    v["id"] = m.id.into();
    v["runId"] = m.run_id.clone().into();
    if !m.message.tool_calls.is_empty() {
        v["toolCalls"] = json!(m.message.tool_calls);
    }
    if let Some(id) = &m.message.tool_call_id {
        v["toolCallId"] = id.clone().into();
    }
    v
}

pub fn chat_history(gw: Arc<Gateway>, p: ChatHistoryParams) -> Pending {
    Box::pin(async move {
        let limit = p.limit.unwrap_or(DEFAULT_HISTORY).clamp(1, MAX_HISTORY);
        let key = p.session_key.clone();
        let messages = blocking(&gw, move |h| h.messages(&key, limit, None)).await?;
        Ok(json!({
            "sessionKey": p.session_key,
            "messages": messages.iter().map(stored_json).collect::<Vec<_>>(),
        }))
    })
}

pub fn chat_abort(gw: &Gateway, p: ChatAbortParams) -> Result<Value, ErrorShape> {
    let run_ids = match (&p.run_id, &p.session_key) {
        (Some(run), _) => {
            if gw.agents.abort(run) {
                vec![run.clone()]
            } else {
                vec![]
            }
        }
        (None, Some(key)) => gw.agents.abort_session(key),
        (None, None) => {
            return Err(ErrorShape::new(code::INVALID_REQUEST, "chat.abort needs sessionKey or runId"));
        }
    };
    Ok(payload(ChatAbortResult { ok: true, aborted: !run_ids.is_empty(), run_ids }))
}

/// `agent`: answered twice with the request's id: `accepted` at once, then the outcome after
/// the run's `agent` events. Without a session key the run uses `agent:<agent>:main`.
pub fn agent(gw: Arc<Gateway>, conn: &Conn, request_id: String, p: AgentParams) -> Pending {
    let outbox = conn.outbox.clone();
    Box::pin(async move {
        if p.idempotency_key.trim().is_empty() {
            return Err(ErrorShape::new(code::INVALID_REQUEST, "agent needs a non-empty idempotencyKey"));
        }
        let agent_id = p.run.agent_id.clone().unwrap_or_else(|| gateway_config::DEFAULT_AGENT.to_owned());
        let session_key = p.session_key.unwrap_or_else(|| format!("agent:{agent_id}:main"));
        let mut handle = start(&gw, session_key, p.message, Some(p.idempotency_key), p.run).await?;
        let accepted = json!({ "runId": handle.run_id, "status": "accepted", "acceptedAt": now_ms() });
        let limit = gw.ws_buffer_limit();
        let _ = outbox.push_response(&request_id, Ok(&super::methods::payload(&accepted)), limit);

        let mut seq = 0u64;
        let mut text = String::new();
        let mut push = |stream: &str, data: Value, droppable: bool| {
            seq += 1;
            let payload =
                json!({ "runId": handle.run_id, "seq": seq, "stream": stream, "ts": now_ms(), "data": data })
                    .to_string();
            let _ = outbox.push_event(
                |s, out| super::hub::event_json(out, "agent", &payload, s, None),
                droppable,
                limit,
            );
        };
        while let Some(event) = handle.events.recv().await {
            match event {
                RunEvent::Started { model, .. } => {
                    push("lifecycle", json!({ "phase": "start", "model": model }), false)
                }
                RunEvent::Delta { text: delta } => {
                    text.push_str(&delta);
                    push("assistant", json!({ "delta": delta, "text": text }), true);
                }
                RunEvent::ToolStart { call } => push(
                    "tool",
                    json!({ "phase": "start", "name": call.name, "toolCallId": call.id, "args": call.arguments }),
                    false,
                ),
                RunEvent::ToolResult { call_id, name, output, is_error } => push(
                    "tool",
                    json!({ "phase": "result", "name": name, "toolCallId": call_id, "result": output, "isError": is_error }),
                    false,
                ),
                RunEvent::Final { message, usage, finish_reason } => {
                    push("lifecycle", json!({ "phase": "end" }), false);
                    return Ok(json!({
                        "runId": handle.run_id,
                        "status": "ok",
                        "summary": message.content,
                        "result": {
                            "payloads": payloads(&message),
                            "message": message,
                            "usage": usage,
                            "stopReason": finish_reason.as_str(),
                        },
                    }));
                }
                RunEvent::Error { code: c, message } => {
                    push("lifecycle", json!({ "phase": "error", "error": message, "code": c }), false);
                    return Err(ErrorShape::new(code::UNAVAILABLE, message)
                        .with_details(json!({ "code": c, "runId": handle.run_id })));
                }
                RunEvent::Aborted => {
                    push(
                        "lifecycle",
                        json!({ "phase": "error", "error": "aborted", "code": "aborted" }),
                        false,
                    );
                    return Err(ErrorShape::new(code::UNAVAILABLE, "the run was aborted")
                        .with_details(json!({ "code": "aborted", "runId": handle.run_id })));
                }
            }
        }
        Err(ErrorShape::new(code::UNAVAILABLE, "the run ended without an outcome"))
    })
}

pub fn agent_wait(gw: Arc<Gateway>, p: AgentWaitParams) -> Pending {
    Box::pin(async move {
        let timeout = p.timeout_ms.map_or(DEFAULT_WAIT, Duration::from_millis).min(MAX_WAIT);
        Ok(match gw.agents.wait(&p.run_id, timeout).await {
            Some(outcome) => outcome_json(&outcome),
            None => json!({ "runId": p.run_id, "status": "timeout" }),
        })
    })
}

/// The reply as the reference's `result.payloads` (what the OpenClaw CLI prints): one text payload,
/// none for an empty reply.
fn payloads(message: &Message) -> Value {
    if message.content.is_empty() {
        json!([])
    } else {
        json!([{ "text": message.content }])
    }
}

fn outcome_json(o: &RunOutcome) -> Value {
    let mut v = json!({
        "runId": o.run_id,
        "sessionKey": o.session_key,
        "status": o.status.as_str(),
        "model": o.model,
        "startedAt": o.started_at_ms,
        "endedAt": o.ended_at_ms,
        "usage": o.usage,
    });
    if let Some(m) = &o.message {
        v["summary"] = m.content.clone().into();
        v["result"] = json!({
            "payloads": payloads(m),
            "message": m,
            "stopReason": o.finish_reason.map(|f| f.as_str()),
        });
    }
    if let Some(e) = &o.error {
        v["error"] = json!(e);
    }
    if o.status == RunStatus::Interrupted {
        v["error"] = json!({ "code": "interrupted", "message": "the gateway stopped during the run" });
    }
    v
}

pub fn sessions_list(gw: Arc<Gateway>, p: SessionsListParams) -> Pending {
    Box::pin(async move {
        let limit = p.limit.unwrap_or(100).clamp(1, 10_000);
        let sessions = blocking(&gw, move |h| h.list_sessions(limit)).await?;
        Ok(json!({ "sessions": sessions }))
    })
}

pub fn sessions_create(gw: Arc<Gateway>, p: SessionsCreateParams) -> Pending {
    Box::pin(async move {
        let key = p.key.unwrap_or_else(|| format!("session:{}", uuid::Uuid::new_v4().simple()));
        history::check_key("session key", &key).map_err(|m| ErrorShape::new(code::INVALID_REQUEST, m))?;
        let agent = p.agent_id.unwrap_or_else(|| gateway_config::DEFAULT_AGENT.to_owned());
        if !gw.agents.has_agent(&agent) {
            return Err(ErrorShape::new(
                code::INVALID_REQUEST,
                format!("unknown agent {}: see agents.list", gateway_proto::quote::short(&agent)),
            ));
        }
        let (k, label) = (key.clone(), p.label.clone());
        let created = blocking(&gw, move |h| h.create_session(&k, &agent, label.as_deref())).await?;
        sessions_changed(&gw, &key, SessionChange::Created);
        Ok(payload(SessionsCreateResult { key, created }))
    })
}

pub fn sessions_preview(gw: Arc<Gateway>, p: SessionsPreviewParams) -> Pending {
    Box::pin(async move {
        let limit = p.limit.unwrap_or(5).clamp(1, 100);
        let keys: Vec<String> = p.keys.into_iter().take(100).collect();
        let previews = blocking(&gw, move |h| {
            keys.iter()
                .map(|k| {
                    let session = h.session(k)?;
                    let messages = h.messages(k, limit, None)?;
                    Ok(json!({
                        "key": k,
                        "found": session.is_some(),
                        "session": session,
                        "messages": messages.iter().map(stored_json).collect::<Vec<_>>(),
                    }))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
        Ok(json!({ "previews": previews }))
    })
}

/// `sessions.reset` and `sessions.delete`: aborts the session's runs, then forgets its messages
/// (reset) or all of it (delete).
pub fn sessions_forget(gw: Arc<Gateway>, p: SessionKeyParams, delete: bool) -> Pending {
    Box::pin(async move {
        super::notes::gate(&gw, crate::core::admin_policy::Gate::SessionWrite)?;
        gw.agents.abort_session(&p.key);
        let k = p.key.clone();
        let existed = blocking(&gw, move |h| if delete { h.delete(&k) } else { h.reset(&k) }).await?;
        let change = if delete { SessionChange::Deleted } else { SessionChange::Reset };
        if existed {
            sessions_changed(&gw, &p.key, change);
        }
        Ok(json!({ "key": p.key, change.as_str(): existed }))
    })
}

fn sessions_changed(gw: &Gateway, key: &str, change: SessionChange) {
    gw.events.publish(&CoreEvent::SessionsChanged { key: key.to_owned(), change, at_ms: now_ms() });
}

/// Runs a store read or write off the async workers; a failure is logged, not shown.
pub(super) async fn blocking<T: Send + 'static>(
    gw: &Gateway,
    f: impl FnOnce(&history::History) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ErrorShape> {
    gw.agents
        .with_history(f)
        .await
        .map_err(|e| GatewayError::store_failed("use its session store", e).ws_shape())
}

/// Any serializable result as the payload of a response.
fn payload<T: serde::Serialize>(result: T) -> Value {
    serde_json::to_value(result).expect("results serialize to plain JSON")
}
