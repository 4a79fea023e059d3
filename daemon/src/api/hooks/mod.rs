//! Webhooks on the main port: `POST /hooks/wake`, `POST /hooks/agent` and one route per
//! `[[hooks.mappings]]` entry (`POST /hooks/<name>`). They take the hooks token (never the
//! gateway token, never in the URL), bodies up to `hooks.max_body_bytes`, and an
//! `Idempotency-Key` header (the same key joins the run it started instead of starting
//! another). Each accepted call starts an agent turn and answers 202 with its run id at once.

pub mod token;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::auth::authenticate;
use crate::api::error::{refuse, GatewayError};
use crate::core::gateway::Gateway;
use crate::runtime::agent::{Message, RunOrigin, RunRequest};

/// The session `/hooks/wake` runs on: the default agent's main conversation, the one the
/// WebSocket `agent` method uses when given no session key.
pub fn wake_session() -> String {
    format!("agent:{}:main", gateway_config::DEFAULT_AGENT)
}

pub fn router(gw: Arc<Gateway>) -> Router<Arc<Gateway>> {
    Router::new()
        .route("/hooks/wake", post(wake))
        .route("/hooks/agent", post(agent))
        .route("/hooks/{name}", post(mapped))
        .route_layer(middleware::from_fn_with_state(gw, require_hooks_token))
}

const HOOKS_UNAUTHORIZED_HINT: &str = "missing or wrong hooks token: send `Authorization: Bearer <hooks.token>` or x-gateway-hooks-token (the gateway token does not work here)";

/// Webhooks on, no query string, the hooks token; failures count toward the per-address
/// lockout like every other auth path.
async fn require_hooks_token(State(gw): State<Arc<Gateway>>, req: Request, next: Next) -> Response {
    let active = gw.active_owned();
    let Some(expected) = active.hooks_token.clone() else {
        return refuse(
            StatusCode::NOT_FOUND,
            "hooks_disabled",
            "webhooks are off: set hooks.enabled = true and hooks.token in the config",
        );
    };
    if req.uri().query().is_some() {
        return refuse(
            StatusCode::BAD_REQUEST,
            "query_not_allowed",
            "webhooks take no query string (URLs end up in logs): send the token as `Authorization: Bearer <hooks token>` or in x-gateway-hooks-token",
        );
    }
    match authenticate(&gw, &req, |_, _, headers| token::check(headers, &expected)) {
        Ok(()) => next.run(req).await,
        Err(refusal) => refusal.into_error(HOOKS_UNAUTHORIZED_HINT).into_response(),
    }
}

/// Reads the body under `hooks.max_body_bytes`.
async fn read(gw: &Gateway, body: Body) -> Result<bytes::Bytes, Response> {
    let limit = gw.active().config.hooks.max_body_bytes.get() as usize;
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        if crate::api::body::over_limit(&e) {
            refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("webhook body over {limit} bytes (hooks.max_body_bytes): send less"),
            )
        } else {
            refuse(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("the webhook body could not be read ({e}): send it again, whole"),
            )
        }
    })
}

fn idempotency_key(headers: &HeaderMap) -> Option<String> {
    let key = headers.get("idempotency-key")?.to_str().ok()?.trim();
    (!key.is_empty()).then(|| format!("hook:{key}"))
}

/// Starts the turn (not tied to this request) and answers 202 with its run id.
async fn accept(gw: &Gateway, headers: &HeaderMap, req: RunRequest) -> Response {
    let session_key = req.session_key.clone();
    let req = RunRequest { idempotency_key: idempotency_key(headers), origin: RunOrigin::Hook, ..req };
    match gw.agents.start(req).await {
        Ok(handle) => {
            tracing::info!(
                event = "hook_accepted",
                run = %handle.run_id,
                session = session_key.as_deref().unwrap_or(""),
                joined = handle.joined,
                "a webhook started a run"
            );
            // `joined`: an Idempotency-Key seen before; this is the run it started.
            let body = json!({ "ok": true, "runId": handle.run_id, "sessionKey": session_key, "joined": handle.joined });
            (StatusCode::ACCEPTED, Json(body)).into_response()
        }
        Err(e) => GatewayError::from(e).into_response(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AgentHook {
    message: String,
    #[serde(default)]
    session_key: Option<String>,
    #[serde(default)]
    agent_id: Option<String>,
    #[serde(default)]
    model: Option<String>,
}

fn bad_json(what: &str, e: impl std::fmt::Display) -> Response {
    refuse(StatusCode::BAD_REQUEST, "bad_request", format!("{what}: {e}"))
}

/// `POST /hooks/agent`: `{"message", "sessionKey"?, "agentId"?, "model"?}`; without a
/// session key the turn gets a session of its own (`hook:<uuid>`).
async fn agent(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Body) -> Response {
    let bytes = match read(&gw, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let hook: AgentHook = match serde_json::from_slice(&bytes) {
        Ok(h) => h,
        Err(e) => return bad_json("send a JSON body {\"message\": \"…\", \"sessionKey\"?, \"agentId\"?}", e),
    };
    if hook.message.trim().is_empty() {
        return refuse(StatusCode::BAD_REQUEST, "bad_request", "message: must not be empty");
    }
    let session_key = hook.session_key.unwrap_or_else(|| format!("hook:{}", uuid::Uuid::new_v4()));
    let req = RunRequest {
        session_key: Some(session_key),
        agent: hook.agent_id,
        model: hook.model,
        input: vec![Message::user(hook.message)],
        ..Default::default()
    };
    accept(&gw, &headers, req).await
}

#[derive(Deserialize, Default)]
struct WakeHook {
    #[serde(default)]
    text: Option<String>,
}

/// `POST /hooks/wake`: a turn on the default agent's main session, with `text` (optional)
/// as what woke it.
async fn wake(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Body) -> Response {
    let bytes = match read(&gw, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let hook: WakeHook = if bytes.iter().all(u8::is_ascii_whitespace) {
        WakeHook::default()
    } else {
        match serde_json::from_slice(&bytes) {
            Ok(h) => h,
            Err(e) => return bad_json("send a JSON body {\"text\"?: \"…\"} or none", e),
        }
    };
    let text =
        hook.text.filter(|t| !t.trim().is_empty()).unwrap_or_else(|| "Wake-up call from a webhook.".into());
    let req = RunRequest {
        session_key: Some(wake_session()),
        input: vec![Message::user(format!("[wake] {text}"))],
        ..Default::default()
    };
    accept(&gw, &headers, req).await
}

/// `POST /hooks/<name>` for a `[[hooks.mappings]]` entry: a turn on its session with the
/// body's `message` field, or else the whole body, as the user message.
async fn mapped(
    State(gw): State<Arc<Gateway>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let active = gw.active_owned();
    let Some(mapping) = active.config.hooks.mappings.iter().find(|m| m.name == name).cloned() else {
        return refuse(
            StatusCode::NOT_FOUND,
            "hook_not_found",
            format!(
                "no webhook {0}: add a [[hooks.mappings]] entry with name = {0}",
                gateway_proto::quote::short(&name)
            ),
        );
    };
    let bytes = match read(&gw, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let text = String::from_utf8_lossy(&bytes);
    let message = match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(o)) if o.get("message").is_some_and(Value::is_string) => {
            o["message"].as_str().unwrap_or_default().to_owned()
        }
        _ => format!("Webhook {name} delivered:\n{text}"),
    };
    let req = RunRequest {
        session_key: Some(mapping.session_key.clone()),
        agent: mapping.agent.clone(),
        input: vec![Message::user(message)],
        ..Default::default()
    };
    accept(&gw, &headers, req).await
}
