//! `POST /tools/invoke`: runs one gateway tool for an operator, behind the same bearer auth and
//! failure rate limit as the other authenticated routes. The gateway token (or a password session)
//! carries every operator scope; tools in `tools.http_deny` are refused whatever the caller holds.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::auth::require_gateway_auth;
use crate::api::error::GatewayError;
use crate::core::gateway::Gateway;
use crate::runtime::tools;

pub fn router(gw: Arc<Gateway>) -> Router<Arc<Gateway>> {
    Router::new()
        .route("/tools/invoke", post(invoke))
        .route_layer(middleware::from_fn_with_state(gw, require_gateway_auth))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InvokeBody {
    tool: String,
    #[serde(default)]
    args: Value,
    session_key: Option<String>,
    /// Checks that the call would be allowed without running it.
    #[serde(default)]
    dry_run: bool,
}

async fn invoke(State(gw): State<Arc<Gateway>>, body: Bytes) -> Response {
    let req: InvokeBody = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("the body must be JSON {{\"tool\": NAME, \"args\": {{...}}, \"sessionKey\"?}}: {e}"),
            )
        }
    };
    let config = gw.agents.tools_config();
    if let Err((refused, message)) = tools::check_call(&config, &req.tool, req.session_key.as_deref()) {
        let status = match refused {
            tools::Refused::NotFound | tools::Refused::Disabled => StatusCode::NOT_FOUND,
            tools::Refused::Denied => StatusCode::FORBIDDEN,
            tools::Refused::BadRequest => StatusCode::BAD_REQUEST,
        };
        return error(status, refused.code(), message);
    }
    if req.dry_run {
        return Json(json!({ "ok": true, "tool": req.tool, "dryRun": true })).into_response();
    }
    match tools::call_direct(gw.agents.history(), &config, &req.tool, req.session_key.as_deref(), req.args)
        .await
    {
        Ok(result) => Json(json!({ "ok": true, "tool": req.tool, "result": result })).into_response(),
        Err(message) => error(StatusCode::BAD_REQUEST, "tool_error", message),
    }
}

/// The gateway's error shape, with `"ok": false` beside it like the successful answers' `"ok": true`.
fn error(status: StatusCode, code: &'static str, message: String) -> Response {
    let mut body = GatewayError::new(status, code, message).gateway_body();
    body["ok"] = false.into();
    (status, Json(body)).into_response()
}
