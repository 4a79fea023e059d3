//! Admin routes for conversations under `/gateway/` (behind the gateway's auth): sessions
//! (list, one with its history and notes, reset, delete) and memory notes (list, put,
//! delete). The same store functions serve the WebSocket `sessions.*` methods.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::api::auth::require_gateway_auth;
use crate::api::error::GatewayError;
use crate::core::gateway::Gateway;
use crate::core::store::StoreError;
use crate::runtime::agent::history::{check_key, MAX_NOTE_BYTES};
use crate::runtime::agent::History;

/// Sessions listed, messages shown, when the caller gives no `limit`.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 10_000;

pub fn router(gw: Arc<Gateway>) -> Router<Arc<Gateway>> {
    Router::new()
        .route("/gateway/sessions", get(list_sessions))
        .route("/gateway/sessions/{key}", get(session).delete(delete_session))
        .route("/gateway/sessions/{key}/reset", post(reset_session))
        .route("/gateway/memory/{key}", get(list_notes))
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

/// Forgets the conversation (runs on it are aborted); the session and its notes stay.
async fn reset_session(State(gw): State<Arc<Gateway>>, Path(key): Path<String>) -> Answer {
    clear_session(&gw, key, History::reset).await
}

/// Deletes the session, its messages and its notes (runs on it are aborted).
async fn delete_session(State(gw): State<Arc<Gateway>>, Path(key): Path<String>) -> Answer {
    clear_session(&gw, key, History::delete).await
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
    Ok(Json(json!({ "ok": true, "key": key, "abortedRuns": aborted })).into_response())
}

async fn list_notes(State(gw): State<Arc<Gateway>>, Path(key): Path<String>) -> Answer {
    check_keys(&[("session key", &key)])?;
    let notes = history(&gw, "read the memory notes", move |h| h.notes(&key)).await?;
    Ok(Json(json!({ "notes": notes })).into_response())
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
    let Ok(note) = serde_json::from_slice::<NoteBody>(&body) else {
        return Err(GatewayError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "send a JSON body {\"value\": \"…\"}",
        ));
    };
    if note.value.len() > MAX_NOTE_BYTES {
        return Err(GatewayError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "note_too_large",
            format!("a memory note holds at most {MAX_NOTE_BYTES} bytes; this one has {}", note.value.len()),
        ));
    }
    let (k, n) = (key.clone(), name.clone());
    history(&gw, "write the memory note", move |h| h.put_note(&k, &n, &note.value)).await?;
    Ok(Json(json!({ "ok": true, "key": key, "name": name })).into_response())
}

async fn delete_note(State(gw): State<Arc<Gateway>>, Path((key, name)): Path<(String, String)>) -> Answer {
    check_keys(&[("session key", &key), ("note name", &name)])?;
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
