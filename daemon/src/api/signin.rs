//! `POST /gateway/auth/session` (sign in: the password for a session token with a TTL) and
//! `DELETE /gateway/auth/session` (sign out: the bearer session ends). Same per-address limits
//! as every other auth path.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use gateway_config::AuthMode;
use serde::Deserialize;
use serde_json::json;

use crate::api::auth::{bearer, rate_limited};
use crate::api::error::{refuse, GatewayError};
use crate::api::listener::{client_ip, Peer};
use crate::core::events::{CoreEvent, Credential};
use crate::core::gateway::{Gateway, Stats};
use crate::core::signin_store::Kind;

pub fn router() -> Router<Arc<Gateway>> {
    Router::new().route("/gateway/auth/session", post(create_session).delete(end_session))
}

#[derive(Deserialize)]
struct SignIn {
    password: String,
}

async fn create_session(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let active = gw.active_owned();
    if active.config.gateway.auth.mode != AuthMode::Password {
        let mode = active.config.gateway.auth.mode.as_str();
        return refuse(
            StatusCode::CONFLICT,
            "wrong_auth_mode",
            format!("sessions need gateway.auth.mode = \"password\"; this gateway uses \"{mode}\""),
        );
    }
    let peer = req.extensions().get::<Peer>().copied().unwrap_or(Peer::Unix { uid: 0 });
    let ip = client_ip(&peer, req.headers(), &active.config.gateway.http.trusted_proxies);
    if let Err(retry) = gw.limiter.check(ip) {
        return rate_limited(ip, retry).into_response();
    }
    let agent = req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let body = match axum::body::to_bytes(req.into_body(), usize::MAX).await {
        Ok(b) => b,
        Err(_) => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "request body over gateway.http.max_body_bytes",
            )
        }
    };
    let Ok(sign_in) = serde_json::from_slice::<SignIn>(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "bad_request", "send a JSON body {\"password\": \"…\"}");
    };
    if !gw.password.verify(&sign_in.password).await {
        gw.limiter.failure(ip, &active.config.gateway.auth.rate_limit);
        Stats::bump(&gw.stats.auth_failures);
        return refuse(StatusCode::UNAUTHORIZED, "unauthorized", "wrong password");
    }
    gw.limiter.success(ip);
    let ttl = active.config.gateway.auth.session_ttl_ms.get();
    let sessions = gw.signins.clone();
    let client = format!("{ip} {agent}").trim().to_owned();
    match crate::core::store::off_workers(sessions, move |s| s.create(Kind::Bearer, ttl, &client)).await {
        Ok((info, token)) => {
            Stats::bump(&gw.stats.sessions_issued);
            tracing::info!(event = "session_created", session = %info.id, "password session created");
            // Ours, and the same again under the names Tau's clients read.
            let now = gateway_proto::time::now_ms();
            let body = json!({
                "token": token,
                "id": info.id,
                "expiresAtMs": info.expires_at_ms,
                "access_token": token,
                "token_type": "bearer",
                "expires_unix_ms": info.expires_at_ms,
                "expires_in_seconds": info.expires_at_ms.saturating_sub(now) / 1000,
            });
            (StatusCode::CREATED, Json(body)).into_response()
        }
        Err(e) => GatewayError::store_failed("record the sign-in session", e).into_response(),
    }
}

async fn end_session(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let Some(id) = bearer(req.headers()).and_then(|t| gw.signins.verify(Kind::Bearer, t)) else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send the session token to end as `Authorization: Bearer <token>`",
        );
    };
    match gw.signins.revoke(&id) {
        Ok(_) => {
            gw.events.publish(&CoreEvent::CredentialRevoked(Credential::SignIn(id)));
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot end a session");
            refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the gateway cannot end the session right now; try again",
            )
        }
    }
}
