//! Checks every request on the main port passes before any route runs: the Host allowlist
//! (DNS rebinding), the Origin allowlist (cross-site requests and WebSockets), no credentials in
//! the URL, and the body size limit.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use crate::api::error::refuse;
use crate::core::gateway::Gateway;

/// Query parameters that carry credentials: refused, since URLs end up in logs and histories.
const CREDENTIAL_PARAMS: [&str; 6] = ["token", "access_token", "password", "auth", "api_key", "apikey"];

pub async fn check(State(gw): State<Arc<Gateway>>, req: Request, next: Next) -> Response {
    let active = gw.active();
    let http = &active.config.gateway.http;
    let path = req.uri().path();
    if let Some(host) = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()) {
        if !host_allowed(host, &http.allowed_hosts) {
            return refuse(
                StatusCode::FORBIDDEN,
                "host_not_allowed",
                format!("Host {host:?} is not allowed: add it to gateway.http.allowed_hosts if clients use that name"),
            );
        }
    }
    if let Some(origin) = req.headers().get(header::ORIGIN).and_then(|h| h.to_str().ok()) {
        if !origin_allowed(origin, gw.listen_addr, &http.allowed_origins) {
            return refuse(
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
            return refuse(
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
        // The OpenAI-compatible routes have their own code for it.
        let code = if path.starts_with("/v1/") { "request_too_large" } else { "body_too_large" };
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, code, message);
    }
    // A body without a declared length is cut off at the limit as it streams.
    let req = req.map(|body| Body::new(http_body_util::Limited::new(body, max_body)));
    next.run(req).await
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
}
