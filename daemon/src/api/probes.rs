//! The probes on the main port: liveness (`/healthz`, no auth), readiness (`/readyz`: details
//! only to authenticated or local callers) and the daemon's status (`/gateway/status`, behind
//! the gateway's auth), and the Prometheus metrics (`/gateway/metrics`: the gateway's auth or
//! the scrapers' `metrics.token`), also served alone on `metrics.listen`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use gateway_proto::time::now_ms;
use serde_json::json;

use crate::api::auth::require_gateway_auth;
use crate::api::listener::Peer;
use crate::core::gateway::{Gateway, Phase};

pub fn router(gw: Arc<Gateway>) -> Router<Arc<Gateway>> {
    let authenticated = Router::new()
        .route("/gateway/status", get(gateway_status))
        .route_layer(middleware::from_fn_with_state(gw.clone(), require_gateway_auth));
    let metrics = Router::new()
        .route("/gateway/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(gw, metrics_auth));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(authenticated)
        .merge(metrics)
}

/// The app of the dedicated metrics listener (`metrics.listen`): the metrics alone, under
/// Prometheus's default path and ours, with the same credentials.
pub fn metrics_listener(gw: Arc<Gateway>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/gateway/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(gw.clone(), metrics_auth))
        .with_state(gw)
}

/// `metrics.token` as a bearer token opens `/gateway/metrics` alone; anything else goes through
/// the gateway's own auth (which counts and locks out failures).
async fn metrics_auth(State(gw): State<Arc<Gateway>>, req: Request, next: Next) -> Response {
    let active = gw.active_owned();
    if !active.config.metrics.enabled {
        let message = "metrics are off (metrics.enabled = false in the config)";
        return crate::api::error::GatewayError::new(StatusCode::NOT_FOUND, "not_found", message)
            .into_response();
    }
    let token = active.config.metrics.token.as_ref().and_then(|t| t.resolve().ok());
    let given = crate::api::auth::bearer(req.headers());
    if let (Some(token), Some(given)) = (token, given) {
        if crate::core::secrets::tokens_equal(given, &token) {
            return next.run(req).await;
        }
    }
    require_gateway_auth(State(gw.clone()), req, next).await
}

/// The Prometheus exposition (OpenMetrics text), read now.
async fn metrics(State(gw): State<Arc<Gateway>>) -> Response {
    let body = crate::core::metrics::render(&gw);
    let kind = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(axum::http::header::CONTENT_TYPE, kind)], body).into_response()
}

/// Liveness: the process answers. Nothing more is said to unauthenticated callers.
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "ok": true, "status": "live" }))
}

/// Readiness: 200 while serving, 503 while starting, draining, or degraded (the state dir takes
/// no writes, e.g. a full disk: what it is given could not be kept), so load balancers stop
/// sending. It clears by itself once writes work again.
async fn readyz(
    State(gw): State<Arc<Gateway>>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
) -> Response {
    let phase = gw.phase();
    let degraded = gw.degraded();
    let ready = phase == Phase::Running && degraded.is_none();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let active = gw.active();
    let local = matches!(peer, Peer::Tcp(addr) if addr.ip().is_loopback());
    if !(local || crate::api::auth::authorized(&gw, &active, &peer, &headers)) {
        return (status, Json(json!({ "ready": ready }))).into_response();
    }
    let body = json!({
        "ready": ready,
        "phase": phase.as_str(),
        "version": gateway_proto::VERSION,
        "pid": std::process::id(),
        "uptime_ms": now_ms().saturating_sub(gw.started_at_ms),
        "generation": active.generation,
        "degraded": degraded,
    });
    (status, Json(body)).into_response()
}

/// The daemon's status for authenticated HTTP clients (the control socket serves the same).
async fn gateway_status(State(gw): State<Arc<Gateway>>) -> Json<gateway_proto::api::StatusReport> {
    Json(crate::core::status::report(&gw))
}
