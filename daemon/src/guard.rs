//! Checks every request on the main port passes before any route runs: the Host allowlist
//! (DNS rebinding), the Origin allowlist (cross-site requests and WebSockets), no credentials in
//! the URL, and the body size limit. Also works out the client's address behind trusted proxies.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::gateway::Gateway;
use crate::serve::Peer;
use crate::ws;

/// Query parameters that carry credentials: refused, since URLs end up in logs and histories.
const CREDENTIAL_PARAMS: [&str; 6] = ["token", "access_token", "password", "auth", "api_key", "apikey"];

pub fn refuse(status: StatusCode, code: &str, message: String) -> Response {
    (status, Json(json!({ "error": { "code": code, "message": message } }))).into_response()
}

/// A refusal of the listener, in the OpenAI error shape on the OpenAI-compatible routes (their
/// SDKs parse no other) and in the gateway's own shape elsewhere.
fn deny(path: &str, status: StatusCode, code: &'static str, message: String) -> Response {
    if path.starts_with("/v1/") {
        return crate::openai::error::ApiError::refused(status, code, message).into_response();
    }
    refuse(status, code, message)
}

pub async fn check(State(gw): State<Arc<Gateway>>, req: Request, next: Next) -> Response {
    let active = gw.active();
    let http = &active.config.gateway.http;
    let path = req.uri().path();
    if let Some(host) = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()) {
        if !host_allowed(host, &http.allowed_hosts) {
            return deny(
                path,
                StatusCode::FORBIDDEN,
                "host_not_allowed",
                format!("Host {host:?} is not allowed: add it to gateway.http.allowed_hosts if clients use that name"),
            );
        }
    }
    if let Some(origin) = req.headers().get(header::ORIGIN).and_then(|h| h.to_str().ok()) {
        if !origin_allowed(origin, gw.listen_addr, &http.allowed_origins) {
            return deny(
                path,
                StatusCode::FORBIDDEN,
                "origin_not_allowed",
                format!("Origin {origin:?} is not allowed: add it to gateway.http.allowed_origins to let that site call the gateway"),
            );
        }
    }
    if let Some(query) = req.uri().query() {
        let named = query
            .split('&')
            .filter_map(|kv| kv.split('=').next())
            .find(|k| CREDENTIAL_PARAMS.iter().any(|c| k.eq_ignore_ascii_case(c)));
        if let Some(name) = named {
            return deny(
                path,
                StatusCode::BAD_REQUEST,
                "credentials_in_url",
                format!("credentials in the URL ({name}=) are refused: send them in the Authorization header or the connect frame"),
            );
        }
    }
    let max_body = http.max_body_bytes.get() as usize;
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_body as u64) {
        let message = format!("request body over {max_body} bytes (gateway.http.max_body_bytes)");
        if path.starts_with("/v1/") {
            // The OpenAI-compatible routes answer in the OpenAI error shape.
            return crate::openai::error::ApiError::too_large(message).into_response();
        }
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", message);
    }
    if ws::upgrade::is_websocket(req.headers()) && !reserved_path(req.uri().path()) {
        return ws::upgrade::upgrade(gw.clone(), req).await;
    }
    // A body without a declared length is cut off at the limit as it streams.
    let req = req.map(|body| Body::new(http_body_util::Limited::new(body, max_body)));
    next.run(req).await
}

/// Paths the HTTP routes own; a WebSocket upgrade anywhere else is the control protocol.
fn reserved_path(path: &str) -> bool {
    ["/healthz", "/readyz"].contains(&path)
        || ["/gateway/", "/v1/", "/hooks/", "/tools/"].iter().any(|p| path.starts_with(p))
}

/// IP literals and loopback names are always fine (DNS rebinding needs a name); other names
/// must be listed.
fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let name = strip_port(host);
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().is_ok()
        || bare.eq_ignore_ascii_case("localhost")
        || allowed.iter().any(|a| a.eq_ignore_ascii_case(host) || a.eq_ignore_ascii_case(name))
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_once(']').map_or(host, |(h, _)| &host[..h.len() + 1]);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// The gateway's own origins (loopback names on its port, and its bound address), plus the
/// configured ones, compared exactly.
pub fn origin_allowed(origin: &str, listen: SocketAddr, allowed: &[String]) -> bool {
    let port = listen.port();
    let own = [
        format!("http://127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
        format!("http://[::1]:{port}"),
        format!("http://{listen}"),
    ];
    own.iter().chain(allowed).any(|o| o.eq_ignore_ascii_case(origin.trim_end_matches('/')))
}

/// The client's address: the peer, or, when the peer is a trusted proxy, the nearest address
/// in `X-Forwarded-For` that is not itself a trusted proxy.
pub fn client_ip(peer: &Peer, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    let ip = match peer {
        Peer::Tcp(addr) => addr.ip(),
        Peer::Unix { .. } => return IpAddr::from([127, 0, 0, 1]),
    };
    if !trusted.contains(&ip) {
        return ip;
    }
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|h| h.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    hops.into_iter().rev().find(|h| !trusted.contains(h)).unwrap_or(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        for ok in
            ["127.0.0.1:18789", "localhost:1", "LOCALHOST", "[::1]:80", "192.168.1.9:18789", "[fe80::1]"]
        {
            assert!(host_allowed(ok, &[]), "{ok}");
        }
        for bad in ["evil.example", "evil.example:18789", "localhost.evil.example"] {
            assert!(!host_allowed(bad, &[]), "{bad}");
        }
        assert!(host_allowed("gw.lan:18789", &["gw.lan".into()]));
    }

    #[test]
    fn origins() {
        let listen: SocketAddr = "127.0.0.1:18789".parse().unwrap();
        assert!(origin_allowed("http://127.0.0.1:18789", listen, &[]));
        assert!(origin_allowed("http://localhost:18789/", listen, &[]));
        assert!(!origin_allowed("http://localhost:18790", listen, &[]));
        assert!(!origin_allowed("https://evil.example", listen, &[]));
        assert!(origin_allowed("https://ui.example", listen, &["https://ui.example".into()]));
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.7, 10.0.0.2".parse().unwrap());
        let proxy = Peer::Tcp("10.0.0.1:5000".parse().unwrap());
        let stranger = Peer::Tcp("198.51.100.1:5000".parse().unwrap());
        let trusted: Vec<IpAddr> = vec!["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()];
        assert_eq!(client_ip(&proxy, &headers, &trusted), "203.0.113.7".parse::<IpAddr>().unwrap());
        assert_eq!(client_ip(&stranger, &headers, &trusted), "198.51.100.1".parse::<IpAddr>().unwrap());
        assert_eq!(client_ip(&proxy, &headers, &[]), "10.0.0.1".parse::<IpAddr>().unwrap());
    }
}
