//! The main port's HTTP routes. Liveness needs no auth; readiness shows details only to
//! authenticated or local callers.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::json;

use crate::auth;
use crate::gateway::{now_ms, Gateway, Phase, Stats};
use crate::serve::Peer;

pub fn router(gw: Arc<Gateway>) -> Router {
    let authenticated = Router::new()
        .route("/gateway/status", get(gateway_status))
        .route("/tools/invoke", axum::routing::post(crate::tools::http::invoke))
        .merge(crate::admin::routes())
        .route_layer(middleware::from_fn_with_state(gw.clone(), require_token));
    Router::new()
        .route(
            "/gateway/auth/session",
            axum::routing::post(crate::auth::http::create_session).delete(crate::auth::http::end_session),
        )
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(authenticated)
        .merge(crate::openai::router(gw.clone()))
        .merge(crate::hooks::router(gw.clone()))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(gw.clone(), crate::guard::check))
        .layer(middleware::from_fn_with_state(gw.clone(), count_requests))
        .with_state(gw)
}

async fn count_requests(State(gw): State<Arc<Gateway>>, req: Request, next: Next) -> Response {
    Stats::bump(&gw.stats.http_requests);
    next.run(req).await
}

/// Liveness: the process answers. Nothing more is said to unauthenticated callers.
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "ok": true, "status": "live" }))
}

/// Readiness: 200 while serving, 503 while starting or draining (load balancers stop sending).
async fn readyz(
    State(gw): State<Arc<Gateway>>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
) -> Response {
    let phase = gw.phase();
    let ready = phase == Phase::Running;
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let active = gw.active();
    let local = matches!(peer, Peer::Tcp(addr) if addr.ip().is_loopback());
    if !(local || auth::authorized(&gw, &active, &peer, &headers)) {
        return (status, Json(json!({ "ready": ready }))).into_response();
    }
    let body = json!({
        "ready": ready,
        "phase": phase.as_str(),
        "version": gateway_proto::VERSION,
        "pid": std::process::id(),
        "uptime_ms": now_ms().saturating_sub(gw.started_at_ms),
        "generation": active.generation,
    });
    (status, Json(body)).into_response()
}

/// The daemon's status for authenticated HTTP clients (the control socket serves the same).
async fn gateway_status(State(gw): State<Arc<Gateway>>) -> Json<gateway_proto::api::StatusReport> {
    Json(crate::control::status_report(&gw))
}

/// Why a request was refused at authentication.
pub enum Refusal {
    /// Too many failures from this address: retry after the duration.
    RateLimited(std::net::IpAddr, std::time::Duration),
    Unauthorized,
}

/// What `require_token` tells a client without the right bearer.
pub const UNAUTHORIZED_HINT: &str =
    "missing or wrong bearer token: send `Authorization: Bearer <token>` (the token: `gatewayctl token show`)";

/// The port's authentication for a request: `check` decides (the gateway's auth by default,
/// the hooks token for webhooks); failures count toward the per-address lockout.
pub fn authenticate(
    gw: &Gateway,
    req: &Request,
    check: impl FnOnce(&crate::gateway::Active, &Peer, &HeaderMap) -> bool,
) -> Result<(), Refusal> {
    let active = gw.active();
    let peer = req.extensions().get::<Peer>().copied().unwrap_or(Peer::Unix { uid: 0 });
    let ip = crate::guard::client_ip(&peer, req.headers(), &active.config.gateway.http.trusted_proxies);
    if let Err(retry) = gw.limiter.check(ip) {
        return Err(Refusal::RateLimited(ip, retry));
    }
    if check(&active, &peer, req.headers()) {
        gw.limiter.success(ip);
        return Ok(());
    }
    gw.limiter.failure(ip, &active.config.gateway.auth.rate_limit);
    Stats::bump(&gw.stats.auth_failures);
    Err(Refusal::Unauthorized)
}

/// The gateway's own auth (token, password session, trusted proxy) for `authenticate`.
pub fn gateway_auth(gw: &Gateway) -> impl FnOnce(&crate::gateway::Active, &Peer, &HeaderMap) -> bool + '_ {
    move |active, peer, headers| auth::authorized(gw, active, peer, headers)
}

/// Lets a request pass with the gateway token (or with auth off); otherwise a 401 that says
/// what to send. Failures are counted.
async fn require_token(State(gw): State<Arc<Gateway>>, req: Request, next: Next) -> Response {
    match authenticate(&gw, &req, gateway_auth(&gw)) {
        Ok(()) => next.run(req).await,
        Err(Refusal::RateLimited(ip, retry)) => crate::auth::http::rate_limited(ip, retry),
        Err(Refusal::Unauthorized) => (
            StatusCode::UNAUTHORIZED,
            [(axum::http::header::WWW_AUTHENTICATE, "Bearer")],
            Json(json!({ "error": { "code": "unauthorized", "message": UNAUTHORIZED_HINT } })),
        )
            .into_response(),
    }
}

async fn not_found(req: Request) -> Response {
    let message = format!("no route for {} {}", req.method(), req.uri().path());
    (StatusCode::NOT_FOUND, Json(json!({ "error": { "code": "not_found", "message": message } })))
        .into_response()
}
