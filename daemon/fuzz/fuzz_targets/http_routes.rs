//! Every `/v1/`, `/gateway/`, `/hooks/` and `/tools/` route of the main port, in process, with
//! an arbitrary body (and optionally an arbitrary path parameter, content type, or no
//! credential), through the same router and middleware the daemon serves.
//!
//! Input: one byte picks the route; one byte of flags (bit 0: no credential, bit 1: a
//! `text/plain` content type, bit 2: the next byte gives the length of a path parameter taken
//! from the input); the rest is the body. Every answer must come within 10 s, never be a 500,
//! and every refusal must be the documented JSON error (`{"error": {"message", …}}`), short.

#![no_main]

use std::net::SocketAddr;

use axum::body::Body;
use axum::http::Request;
use gatewayd::api::listener::Peer;
use libfuzzer_sys::fuzz_target;

#[path = "driver.rs"]
mod driver;

/// (method, path); `{}` is the path parameter.
const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/completions"),
    ("GET", "/v1/models"),
    ("GET", "/v1/models/{}"),
    ("POST", "/v1/responses"),
    ("GET", "/v1/responses/{}"),
    ("DELETE", "/v1/responses/{}"),
    ("POST", "/v1/{}"),
    ("GET", "/gateway/status"),
    ("POST", "/gateway/auth/session"),
    ("DELETE", "/gateway/auth/session"),
    ("GET", "/gateway/sessions"),
    ("GET", "/gateway/sessions/{}"),
    ("DELETE", "/gateway/sessions/{}"),
    ("POST", "/gateway/sessions/{}/reset"),
    ("GET", "/gateway/memory/{}"),
    ("PUT", "/gateway/memory/fuzz/{}"),
    ("DELETE", "/gateway/memory/fuzz/{}"),
    ("POST", "/hooks/wake"),
    ("POST", "/hooks/agent"),
    ("POST", "/hooks/{}"),
    ("POST", "/tools/invoke"),
];

fuzz_target!(|data: &[u8]| {
    let [route, flags, rest @ ..] = data else {
        return;
    };
    let (method, template) = ROUTES[usize::from(*route) % ROUTES.len()];
    let (param, body) = match rest.split_first() {
        Some((len, rest)) if flags & 4 != 0 => rest.split_at(usize::from(*len).min(rest.len())),
        _ => (&b"fuzz"[..], rest),
    };
    let path = template.replace("{}", &driver::segment(param));
    let fixture = driver::fixture();
    let mut req = Request::builder().method(method).uri(&path).header("host", "localhost");
    if flags & 1 == 0 {
        let bearer = format!("Bearer {}", fixture.gateway.token);
        req = req
            .header("authorization", bearer)
            .header("x-gateway-hooks-token", "fuzz-hooks-token-0123456789");
    }
    let content_type = if flags & 2 == 0 { "application/json" } else { "text/plain" };
    let req = req.header("content-type", content_type).body(Body::from(body.to_vec())).expect("a request");
    let answer =
        driver::send(&fixture.gateway.http, Peer::Tcp(SocketAddr::from(([127, 0, 0, 1], 40_000))), req);
    driver::check_refusal(&format!("{method} {path}"), &answer);
});
