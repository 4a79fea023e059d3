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
    // The checks wrap the whole router once, in one layer: layered onto each route instead,
    // every request cloned a boxed copy of the stack at each level, and each `from_fn` layer
    // boxes the request's future and clones the service below it. So they are plain calls,
    // in order, in `front`.
    let checked =
        tower::ServiceBuilder::new().layer(middleware::from_fn_with_state((gw, hub), front)).service(doors);
    Router::new().fallback_service(checked)
}

/// Every request on the main port, in order: counted and traced; the listener's checks
/// (`guard`); a WebSocket upgrade on a path no HTTP door owns goes to the WebSocket door; the
/// HTTP APIs' rate limit; the doors, whose error answers are made uniform. Under `/v1/` an
/// error answer, whichever step gave it, is in the OpenAI shape.
async fn front(State((gw, hub)): State<(Arc<Gateway>, Arc<ws::Hub>)>, req: Request, next: Next) -> Response {
    Stats::bump(&gw.stats.http_requests);
    let path = req.uri().path();
    let websocket = handoff::is_websocket(req.headers()) && !http_path(path);
    let openai = path.starts_with("/v1/");
    let route = metrics_route(path, websocket);
    let method = method_name(req.method());
    let started = std::time::Instant::now();
    let span = Traced::http_server(
        req.headers(),
        || format!("{method} {route}").into(),
        || vec![Attr::new("http.request.method", method), Attr::new("http.route", route)],
    );
    let mut response = span.scope(checked(gw.clone(), hub, req, next, websocket)).await;
    if openai {
        response = error::openai_shape(response);
    }
    let status = response.status().as_u16();
    gw.metrics.http(method, route, status, started.elapsed());
    span.set(|| vec![Attr::new("http.response.status_code", status as i64)]);
    if status >= 500 {
        span.fail(&status.to_string(), || format!("HTTP {status}"));
    }
    span.end();
    response
}

/// The checks, then the WebSocket door or the HTTP doors.
async fn checked(
    gw: Arc<Gateway>,
    hub: Arc<ws::Hub>,
    mut req: Request,
    next: Next,
    websocket: bool,
) -> Response {
    if let Some(refusal) = guard::check(&gw, &mut req) {
        return refusal;
    }
    if websocket {
        return ws::upgrade::upgrade(gw, hub, req).await;
    }
    if let Some(refusal) = rate_limited(&gw, &req) {
        return refusal;
    }
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let response = next.run(req).await;
    error::uniform(&method, &path, response).await
}

/// Paths the HTTP doors own.
fn http_path(path: &str) -> bool {
    ["/healthz", "/readyz"].contains(&path)
        || ["/gateway/", "/v1/", "/hooks/", "/tools/", "/channels/"].iter().any(|p| path.starts_with(p))
}

/// `gateway.http.rate_limit`: requests per client address on the HTTP APIs; probes and
/// WebSocket upgrades are not counted.
fn rate_limited(gw: &Gateway, req: &Request) -> Option<Response> {
    let path = req.uri().path();
    let api = http_path(path) && !["/healthz", "/readyz"].contains(&path);
    let active = gw.active();
    let limits = &active.config.gateway.http.rate_limit;
    // Off (the default): nothing to count.
    if limits.max_requests.get() == 0 || !api || handoff::is_websocket(req.headers()) {
        return None;
    }
    let peer = req.extensions().get::<Peer>().copied().unwrap_or(Peer::Unix { uid: 0 });
    let ip = client_ip(&peer, req.headers(), &active.config.gateway.http.trusted_proxies);
    let retry = gw.request_limiter.take(ip, limits).err()?;
    Stats::bump(&gw.stats.rate_limited_requests);
    let secs = retry.as_secs() + 1;
    let message = format!(
        "too many requests from {ip}: at most {} per {} s (gateway.http.rate_limit); retry in {secs} s",
        limits.max_requests.get(),
        limits.window_seconds.get()
    );
    Some(GatewayError::rate_limited(message, secs).into_response())
}

/// The method as the HTTP conventions name it: the standard ones, else `_OTHER`.
fn method_name(method: &axum::http::Method) -> &'static str {
    const KNOWN: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"];
    KNOWN.iter().find(|m| **m == method.as_str()).copied().unwrap_or("_OTHER")
}

/// The `route` label of a request (`websocket`: an upgrade the WebSocket door takes): a fixed
/// set, whatever the path.
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
    if websocket {
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
