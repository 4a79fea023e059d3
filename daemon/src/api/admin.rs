//! Admin routes for conversations under `/gateway/` (behind the gateway's auth): sessions
//! (list, one with its history and notes, append, reset, delete) and memory notes (the session's
//! memory document, list, put, delete). The same store functions serve the WebSocket
//! `sessions.*` methods. Writes pass the policy gates of `gateway.admin`; the Tau-shaped routes
//! (append, the memory document) also want the gate named in their body.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use gateway_config::DEFAULT_AGENT;
use serde::Deserialize;
use serde_json::json;

use crate::api::auth::require_gateway_auth;
use crate::api::error::GatewayError;
use crate::core::admin_policy::Gate;
use crate::core::gateway::Gateway;
use crate::core::store::StoreError;
use crate::runtime::agent::history::{check_key, MAX_NOTE_BYTES};
use crate::runtime::agent::types::{Message, Role};
use crate::runtime::agent::History;

/// Sessions listed, messages shown, when the caller gives no `limit`.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 10_000;

pub fn router(gw: Arc<Gateway>) -> Router<Arc<Gateway>> {
    Router::new()
        .route("/gateway/sessions", get(list_sessions))
        .route("/gateway/sessions/{key}", get(session).delete(delete_session))
        .route("/gateway/sessions/{key}/reset", post(reset_session))
        .route("/gateway/sessions/{key}/append", post(append_message))
        .route("/gateway/memory/{key}", get(memory).put(put_memory))
        .route("/gateway/memory/{key}/{name}", put(put_note).delete(delete_note))
        .route_layer(middleware::from_fn_with_state(gw, require_gateway_auth))
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<usize>,
}

impl Limit {
    fn get(&self) -> usize {
        self.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
    }
}

/// The refusal for the first invalid (what, key) pair, if any.
fn check_keys(keys: &[(&str, &str)]) -> Result<(), GatewayError> {
    match keys.iter().find_map(|(what, key)| check_key(what, key).err()) {
        Some(message) => Err(GatewayError::new(StatusCode::BAD_REQUEST, "bad_request", message)),
        None => Ok(()),
    }
}

fn no_session(key: &str) -> GatewayError {
    GatewayError::not_found(
        "session_not_found",
        format!("no session {}: GET /gateway/sessions lists them", gateway_proto::quote::short(key)),
    )
}

/// A call on the session store, off the async workers.
async fn history<T: Send + 'static>(
    gw: &Gateway,
    doing: &str,
    call: impl FnOnce(&History) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, GatewayError> {
    gw.agents.with_history(call).await.map_err(|e| GatewayError::store_failed(doing, e))
}

type Answer = Result<Response, GatewayError>;

async fn list_sessions(State(gw): State<Arc<Gateway>>, Query(q): Query<Limit>) -> Answer {
    let limit = q.get();
    let sessions = history(&gw, "list the sessions", move |h| h.list_sessions(limit)).await?;
    Ok(Json(json!({ "sessions": sessions })).into_response())
}

/// One session with its newest messages (oldest first) and its memory notes.
async fn session(State(gw): State<Arc<Gateway>>, Path(key): Path<String>, Query(q): Query<Limit>) -> Answer {
    check_keys(&[("session key", &key)])?;
    let limit = q.get();
    let k = key.clone();
    let found = history(&gw, "read the session", move |h| {
        let Some(info) = h.session(&k)? else { return Ok(None) };
        Ok(Some((info, h.messages(&k, limit, None)?, h.notes(&k)?)))
    })
    .await?;
    let (info, messages, notes) = found.ok_or_else(|| no_session(&key))?;
    Ok(Json(json!({ "session": info, "messages": messages, "notes": notes })).into_response())
}

/// Forgets the conversation (runs on it are aborted); the session and its notes stay. A body,
/// if sent, is `{"policy_gate": "allow_session_write"}`.
async fn reset_session(State(gw): State<Arc<Gateway>>, Path(key): Path<String>, body: Bytes) -> Answer {
    let gate = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(parse_body::<GateBody>(&body, r#"{"policy_gate": "allow_session_write"}"#)?.policy_gate)
    };
    Gate::SessionWrite.admit(&gw, gate.as_ref().map(|g| g.as_deref()))?;
    clear_session(&gw, key, History::reset).await
}

/// Deletes the session, its messages and its notes (runs on it are aborted).
async fn delete_session(State(gw): State<Arc<Gateway>>, Path(key): Path<String>) -> Answer {
    Gate::SessionWrite.admit(&gw, None)?;
    clear_session(&gw, key, History::delete).await
}

#[derive(Deserialize)]
struct GateBody {
    policy_gate: Option<String>,
}

#[derive(Deserialize)]
struct AppendBody {
    role: String,
    content: String,
    policy_gate: Option<String>,
}

/// Appends one message to the session's history (creating the session for the default agent if
/// it has none), as its own turn: `{"role", "content", "policy_gate": "allow_session_write"}`.
async fn append_message(State(gw): State<Arc<Gateway>>, Path(key): Path<String>, body: Bytes) -> Answer {
    check_keys(&[("session key", &key)])?;
    let body: AppendBody =
        parse_body(&body, r#"{"role": "user", "content": "…", "policy_gate": "allow_session_write"}"#)?;
    Gate::SessionWrite.admit(&gw, Some(body.policy_gate.as_deref()))?;
    let role = match body.role.trim().to_ascii_lowercase().as_str() {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "system" => Role::System,
        _ => {
            return Err(GatewayError::new(
                StatusCode::BAD_REQUEST,
                "invalid_role",
                format!(
                    "role {} cannot be appended: use user, assistant or system (a tool result belongs to its tool call)",
                    gateway_proto::quote::short(&body.role)
                ),
            ))
        }
    };
    if body.content.trim().is_empty() {
        return Err(GatewayError::new(
            StatusCode::BAD_REQUEST,
            "invalid_content",
            "content is empty: send the message's text",
        ));
    }
    let message = Message::new(role, body.content);
    let run_id = format!("append-{}", uuid::Uuid::new_v4().simple());
    let (k, id) = (key.clone(), run_id.clone());
    let (turn, count) = history(&gw, "append to the session", move |h| {
        let turn = h.begin_turn(&k, DEFAULT_AGENT, &id, std::slice::from_ref(&message))?;
        Ok((turn, h.session(&k)?.map_or(0, |s| s.message_count)))
    })
    .await?;
    Ok(Json(json!({
        "ok": true,
        "key": key,
        "session_key": key,
        "turn": turn,
        "entry_count": count,
        "message_count": count,
    }))
    .into_response())
}

/// Aborts the session's runs, then `op` (which says whether the session existed).
async fn clear_session(
    gw: &Gateway,
    key: String,
    op: fn(&History, &str) -> Result<bool, StoreError>,
) -> Answer {
    check_keys(&[("session key", &key)])?;
    let aborted = gw.agents.abort_session(&key);
    let k = key.clone();
    if !history(gw, "change the session", move |h| op(h, &k)).await? {
        return Err(no_session(&key));
    }
    Ok(Json(json!({ "ok": true, "key": key, "session_key": key, "abortedRuns": aborted })).into_response())
}

/// The note that holds a session's memory document (Tau's `GET`/`PUT /gateway/memory/{key}`).
const MEMORY_DOCUMENT: &str = "content";

/// A session key's memory: its notes, and the document among them as `content`. Any key reads,
/// one with nothing written reads empty (`exists: false`).
async fn memory(State(gw): State<Arc<Gateway>>, Path(key): Path<String>) -> Answer {
    check_keys(&[("session key", &key)])?;
    let k = key.clone();
    let notes = history(&gw, "read the memory notes", move |h| h.notes(&k)).await?;
    let document = notes.iter().find(|n| n.name == MEMORY_DOCUMENT);
    let content = document.map_or("", |n| n.value.as_str());
    Ok(Json(json!({
        "session_key": key,
        "exists": !notes.is_empty(),
        "content": content,
        "bytes": content.len(),
        "updated_unix_ms": document.map(|n| n.updated_at_ms),
        "notes": notes,
    }))
    .into_response())
}

#[derive(Deserialize)]
struct MemoryBody {
    content: String,
    policy_gate: Option<String>,
}

/// Replaces the session's memory document: `{"content", "policy_gate": "allow_memory_write"}`.
async fn put_memory(State(gw): State<Arc<Gateway>>, Path(key): Path<String>, body: Bytes) -> Answer {
    check_keys(&[("session key", &key)])?;
    let body: MemoryBody = parse_body(&body, r#"{"content": "…", "policy_gate": "allow_memory_write"}"#)?;
    Gate::MemoryWrite.admit(&gw, Some(body.policy_gate.as_deref()))?;
    let bytes = body.content.len();
    write_note(&gw, &key, MEMORY_DOCUMENT, body.content).await?;
    Ok(Json(json!({ "ok": true, "session_key": key, "bytes": bytes, "updated_unix_ms": gateway_proto::time::now_ms() })).into_response())
}

/// Writes a note, creating the session it belongs to (for the default agent) if there is none,
/// so that every key with memory is listed among the sessions.
async fn write_note(gw: &Gateway, key: &str, name: &str, value: String) -> Result<(), GatewayError> {
    if value.len() > MAX_NOTE_BYTES {
        return Err(GatewayError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "note_too_large",
            format!("a memory note holds at most {MAX_NOTE_BYTES} bytes; this one has {}", value.len()),
        ));
    }
    let (k, n) = (key.to_owned(), name.to_owned());
    history(gw, "write the memory note", move |h| {
        h.create_session(&k, DEFAULT_AGENT, None)?;
        h.put_note(&k, &n, &value)
    })
    .await
}

/// Parses a JSON body, or says what to send.
fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8], example: &str) -> Result<T, GatewayError> {
    serde_json::from_slice(body).map_err(|e| {
        GatewayError::new(StatusCode::BAD_REQUEST, "bad_request", format!("{e}: send a JSON body {example}"))
    })
}

/// The gates of `gateway.admin` as the admin routes check them: Tau's clients also name the
/// gate in the body's `policy_gate`.
trait GateCheck {
    fn admit(self, gw: &Gateway, given: Option<Option<&str>>) -> Result<(), GatewayError>;
}

impl GateCheck for Gate {
    /// Refuses when the config turns the gate off, or when a body was due to name it (`given`
    /// is `Some`) and does not. `given` is None for routes whose body does not carry it.
    fn admit(self, gw: &Gateway, given: Option<Option<&str>>) -> Result<(), GatewayError> {
        let name = self.name();
        if let Err(message) = Gate::check(self, &gw.active().config) {
            return Err(GatewayError::new(StatusCode::FORBIDDEN, "policy_gate_disabled", message));
        }
        match given.map(|g| g.map(str::trim).filter(|g| !g.is_empty())) {
            Some(None) => Err(GatewayError::new(
                StatusCode::FORBIDDEN,
                "policy_gate_required",
                format!("name the policy gate for this write: add \"policy_gate\": \"{name}\" to the body"),
            )),
            Some(Some(g)) if g != name => Err(GatewayError::new(
                StatusCode::FORBIDDEN,
                "policy_gate_mismatch",
                format!(
                    "policy_gate {} does not open this write: it must be \"{name}\"",
                    gateway_proto::quote::short(g)
                ),
            )),
            _ => Ok(()),
        }
    }
}

#[derive(Deserialize)]
struct NoteBody {
    value: String,
}

/// Writes a note (`{"value": "…"}`), creating or replacing it.
async fn put_note(
    State(gw): State<Arc<Gateway>>,
    Path((key, name)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Answer {
    check_keys(&[("session key", &key), ("note name", &name)])?;
    let note: NoteBody = parse_body(&body, r#"{"value": "…"}"#)?;
    Gate::MemoryWrite.admit(&gw, None)?;
    write_note(&gw, &key, &name, note.value).await?;
    Ok(Json(json!({ "ok": true, "key": key, "name": name })).into_response())
}

async fn delete_note(State(gw): State<Arc<Gateway>>, Path((key, name)): Path<(String, String)>) -> Answer {
    check_keys(&[("session key", &key), ("note name", &name)])?;
    Gate::MemoryWrite.admit(&gw, None)?;
    let (k, n) = (key.clone(), name.clone());
    if !history(&gw, "delete the memory note", move |h| h.delete_note(&k, &n)).await? {
        return Err(GatewayError::not_found(
            "note_not_found",
            format!(
                "session {} has no note {}",
                gateway_proto::quote::short(&key),
                gateway_proto::quote::short(&name)
            ),
        ));
    }
    Ok(Json(json!({ "ok": true })).into_response())
}
