//! The main port's router: mounts every HTTP door, serves WebSocket upgrades on any path the
//! doors do not own, and puts the listener's checks in front of all of it. It is where doors
//! meet, so it is the one module of `api` that imports them.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::api::error::{self, GatewayError};
use crate::api::listener::{client_ip, Peer};
use crate::api::{admin, channel_hooks, guard, handoff, hooks, openai, probes, signin, tools_invoke, ui, ws};
use crate::core::gateway::{Gateway, Stats};
use crate::core::telemetry::spans::{Attr, Traced};

pub fn router(gw: Arc<Gateway>) -> Router {
    let hub = ws::open(&gw);
    let doors = Router::new()
        .merge(probes::router(gw.clone()))
        .merge(signin::router())
        .merge(tools_invoke::router(gw.clone()))
        .merge(admin::router(gw.clone()))
        .merge(openai::router(gw.clone()))
        .merge(hooks::router(gw.clone()))
        .merge(channel_hooks::router())
        .merge(ui::router(&gw))
        .fallback(not_found)
        .with_state(gw.clone());
    // The checks wrap the whole router once, outermost first. Layered onto each route instead,
    // every request cloned a boxed copy of the stack at each of its six levels (21 allocations
    // before a handler ran); here a request clones the stack once.
    let checked = tower::ServiceBuilder::new()
        .layer(middleware::from_fn_with_state(gw.clone(), count_requests))
        .layer(middleware::from_fn(error::openai_shape))
        .layer(middleware::from_fn_with_state(gw.clone(), guard::check))
        .layer(middleware::from_fn_with_state(gw.clone(), request_rate_limit))
        .layer(middleware::from_fn(error::uniform_errors))
        .layer(middleware::from_fn_with_state((gw, hub), websocket_upgrades))
        .service(doors);
    Router::new().fallback_service(checked)
}

/// A WebSocket upgrade on any path the HTTP doors do not own is the control protocol.
async fn websocket_upgrades(
    State((gw, hub)): State<(Arc<Gateway>, Arc<ws::Hub>)>,
    req: Request,
    next: Next,
) -> Response {
    if handoff::is_websocket(req.headers()) && !http_path(req.uri().path()) {
        return ws::upgrade::upgrade(gw, hub, req).await;
    }
    next.run(req).await
}

/// Paths the HTTP doors own.
fn http_path(path: &str) -> bool {
    ["/healthz", "/readyz"].contains(&path)
        || ["/gateway/", "/v1/", "/hooks/", "/tools/", "/channels/"].iter().any(|p| path.starts_with(p))
}

/// `gateway.http.rate_limit`: requests per client address on the HTTP APIs; probes and
/// WebSocket upgrades are not counted.
async fn request_rate_limit(State(gw): State<Arc<Gateway>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let api = http_path(path) && !["/healthz", "/readyz"].contains(&path);
    let active = gw.active();
    // Off (the default): nothing to count.
    if active.config.gateway.http.rate_limit.max_requests.get() > 0
        && api
        && !handoff::is_websocket(req.headers())
    {
        let peer = req.extensions().get::<Peer>().copied().unwrap_or(Peer::Unix { uid: 0 });
        let ip = client_ip(&peer, req.headers(), &active.config.gateway.http.trusted_proxies);
        let limits = &active.config.gateway.http.rate_limit;
        if let Err(retry) = gw.request_limiter.take(ip, limits) {
            Stats::bump(&gw.stats.rate_limited_requests);
            let secs = retry.as_secs() + 1;
            let message = format!(
                "too many requests from {ip}: at most {} per {} s (gateway.http.rate_limit); retry in {secs} s",
                limits.max_requests.get(),
                limits.window_seconds.get()
            );
            return GatewayError::rate_limited(message, secs).into_response();
        }
    }
    next.run(req).await
}

async fn count_requests(State(gw): State<Arc<Gateway>>, req: Request, next: Next) -> Response {
    Stats::bump(&gw.stats.http_requests);
    let route = metrics_route(req.uri().path(), handoff::is_websocket(req.headers()));
    let method = method_name(req.method());
    let started = std::time::Instant::now();
    let span = Traced::http_server(
        req.headers(),
        || format!("{method} {route}").into(),
        || vec![Attr::new("http.request.method", method), Attr::new("http.route", route)],
    );
    let response = span.scope(next.run(req)).await;
    let status = response.status().as_u16();
    gw.metrics.http(method, route, status, started.elapsed());
    span.set(|| vec![Attr::new("http.response.status_code", status as i64)]);
    if status >= 500 {
        span.fail(&status.to_string(), || format!("HTTP {status}"));
    }
    span.end();
    response
}

/// The method as the HTTP conventions name it: the standard ones, else `_OTHER`.
fn method_name(method: &axum::http::Method) -> &'static str {
    const KNOWN: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"];
    KNOWN.iter().find(|m| **m == method.as_str()).copied().unwrap_or("_OTHER")
}

/// The `route` label of a request: a fixed set, whatever the path.
fn metrics_route(path: &str, websocket: bool) -> &'static str {
    const EXACT: &[&str] = &[
        "/healthz",
        "/readyz",
        "/gateway/status",
        "/gateway/metrics",
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/models",
        "/v1/responses",
        "/tools/invoke",
    ];
    const PREFIXES: &[(&str, &str)] = &[
        ("/v1/models/", "/v1/models"),
        ("/v1/responses/", "/v1/responses"),
        ("/v1/", "/v1/other"),
        ("/gateway/", "/gateway/other"),
        ("/hooks/", "/hooks"),
        ("/channels/", "/channels"),
    ];
    if websocket && !http_path(path) {
        return "websocket";
    }
    if let Some(exact) = EXACT.iter().find(|r| **r == path) {
        return exact;
    }
    PREFIXES.iter().find(|(prefix, _)| path.starts_with(prefix)).map_or("other", |(_, route)| route)
}

async fn not_found(req: Request) -> Response {
    let message = format!("no route for {} {}", req.method(), req.uri().path());
    GatewayError::new(StatusCode::NOT_FOUND, "not_found", message).into_response()
}
