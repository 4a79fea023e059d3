//! Admin routes for conversations under `/gateway/` (behind the gateway's auth): sessions
//! (list, one with its history and notes, reset, delete) and memory notes (list, put,
//! delete). The same store functions serve the WebSocket `sessions.*` methods.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::agent::history::{check_key, MAX_NOTE_BYTES};
use crate::agent::History;
use crate::gateway::Gateway;
use crate::guard::refuse;
use crate::store::StoreError;

/// Sessions listed, messages shown, when the caller gives no `limit`.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 10_000;

pub fn routes() -> Router<Arc<Gateway>> {
    Router::new()
        .route("/gateway/sessions", get(list_sessions))
        .route("/gateway/sessions/{key}", get(session).delete(delete_session))
        .route("/gateway/sessions/{key}/reset", post(reset_session))
        .route("/gateway/memory/{key}", get(list_notes))
        .route("/gateway/memory/{key}/{name}", put(put_note).delete(delete_note))
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

/// Runs a store call off the async workers; store failures are logged and not shown.
async fn blocking<T: Send + 'static>(
    gw: &Gateway,
    f: impl FnOnce(&History) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Response> {
    let history = gw.agents.history().clone();
    match tokio::task::spawn_blocking(move || f(&history)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "session store call failed");
            Err(refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the gateway cannot read or write its session store right now; try again".into(),
            ))
        }
        Err(e) => {
            Err(refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("store task failed: {e}")))
        }
    }
}

/// The refusal for the first invalid (what, key) pair, if any.
fn invalid(keys: &[(&str, &str)]) -> Option<Response> {
    keys.iter()
        .find_map(|(what, key)| check_key(what, key).err())
        .map(|m| refuse(StatusCode::BAD_REQUEST, "bad_request", m))
}

fn no_session(key: &str) -> Response {
    refuse(
        StatusCode::NOT_FOUND,
        "session_not_found",
        format!("no session {key:?}: GET /gateway/sessions lists them"),
    )
}

fn done(r: Result<Response, Response>) -> Response {
    r.unwrap_or_else(|e| e)
}

async fn list_sessions(State(gw): State<Arc<Gateway>>, Query(q): Query<Limit>) -> Response {
    let limit = q.get();
    done(
        blocking(&gw, move |h| h.list_sessions(limit))
            .await
            .map(|s| Json(json!({ "sessions": s })).into_response()),
    )
}

/// One session with its newest messages (oldest first) and its memory notes.
async fn session(
    State(gw): State<Arc<Gateway>>,
    Path(key): Path<String>,
    Query(q): Query<Limit>,
) -> Response {
    if let Some(r) = invalid(&[("session key", &key)]) {
        return r;
    }
    let limit = q.get();
    let k = key.clone();
    let found = blocking(&gw, move |h| {
        let Some(info) = h.session(&k)? else { return Ok(None) };
        Ok(Some((info, h.messages(&k, limit, None)?, h.notes(&k)?)))
    })
    .await;
    done(found.map(|f| match f {
        Some((info, messages, notes)) => {
            Json(json!({ "session": info, "messages": messages, "notes": notes })).into_response()
        }
        None => no_session(&key),
    }))
}

/// Forgets the conversation (runs on it are aborted); the session and its notes stay.
async fn reset_session(State(gw): State<Arc<Gateway>>, Path(key): Path<String>) -> Response {
    clear_session(&gw, key, History::reset).await
}

/// Deletes the session, its messages and its notes (runs on it are aborted).
async fn delete_session(State(gw): State<Arc<Gateway>>, Path(key): Path<String>) -> Response {
    clear_session(&gw, key, History::delete).await
}

/// Aborts the session's runs, then `op` (which says whether the session existed).
async fn clear_session(
    gw: &Gateway,
    key: String,
    op: fn(&History, &str) -> Result<bool, StoreError>,
) -> Response {
    if let Some(r) = invalid(&[("session key", &key)]) {
        return r;
    }
    let aborted = gw.agents.abort_session(&key);
    let k = key.clone();
    done(blocking(gw, move |h| op(h, &k)).await.map(|existed| {
        if existed {
            Json(json!({ "ok": true, "key": key, "abortedRuns": aborted })).into_response()
        } else {
            no_session(&key)
        }
    }))
}

async fn list_notes(State(gw): State<Arc<Gateway>>, Path(key): Path<String>) -> Response {
    if let Some(r) = invalid(&[("session key", &key)]) {
        return r;
    }
    done(blocking(&gw, move |h| h.notes(&key)).await.map(|n| Json(json!({ "notes": n })).into_response()))
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
) -> Response {
    if let Some(r) = invalid(&[("session key", &key), ("note name", &name)]) {
        return r;
    }
    let Ok(note) = serde_json::from_slice::<NoteBody>(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "bad_request", "send a JSON body {\"value\": \"…\"}".into());
    };
    if note.value.len() > MAX_NOTE_BYTES {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "note_too_large",
            format!("a memory note holds at most {MAX_NOTE_BYTES} bytes; this one has {}", note.value.len()),
        );
    }
    let (k, n) = (key.clone(), name.clone());
    done(
        blocking(&gw, move |h| h.put_note(&k, &n, &note.value))
            .await
            .map(|()| Json(json!({ "ok": true, "key": key, "name": name })).into_response()),
    )
}

async fn delete_note(State(gw): State<Arc<Gateway>>, Path((key, name)): Path<(String, String)>) -> Response {
    if let Some(r) = invalid(&[("session key", &key), ("note name", &name)]) {
        return r;
    }
    let (k, n) = (key.clone(), name.clone());
    done(blocking(&gw, move |h| h.delete_note(&k, &n)).await.map(|existed| {
        if existed {
            Json(json!({ "ok": true })).into_response()
        } else {
            refuse(StatusCode::NOT_FOUND, "note_not_found", format!("session {key:?} has no note {name:?}"))
        }
    }))
}
