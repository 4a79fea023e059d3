//! The control API (what the Unix socket serves), in process, with arbitrary bodies and path
//! parameters, as the socket's owner.
//!
//! Input: one byte picks the route, one byte gives the length of the path parameter taken from
//! the input, the rest is the body. Every answer must come within 10 s, never be a 500, and
//! every refusal must be the documented `{"error": {"code", "message"}}`, short.
//! `POST /v1/stop` (it ends the gateway) and `POST /v1/password` (argon2 costs tens of
//! milliseconds by design) are left out; the tests cover them.

#![no_main]

use axum::body::Body;
use axum::http::Request;
use gatewayd::api::listener::Peer;
use libfuzzer_sys::fuzz_target;

#[path = "driver.rs"]
mod driver;

const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/status"),
    ("POST", "/v1/reload"),
    ("GET", "/v1/logs"),
    ("GET", "/v1/config"),
    ("GET", "/v1/token"),
    ("POST", "/v1/token/rotate"),
    ("GET", "/v1/devices"),
    ("POST", "/v1/devices/{}/approve"),
    ("POST", "/v1/devices/{}/reject"),
    ("POST", "/v1/devices/{}/revoke"),
    ("GET", "/v1/signins"),
    ("POST", "/v1/signins/{}/revoke"),
    ("GET", "/v1/sessions"),
    ("POST", "/v1/sessions/{}/revoke"),
    ("GET", "/v1/{}"),
    ("POST", "/v1/{}"),
];

fuzz_target!(|data: &[u8]| {
    let [route, len, rest @ ..] = data else {
        return;
    };
    let (method, template) = ROUTES[usize::from(*route) % ROUTES.len()];
    let (param, body) = rest.split_at(usize::from(*len).min(rest.len()));
    let path = template.replace("{}", &driver::segment(param));
    let fixture = driver::fixture();
    let req = Request::builder()
        .method(method)
        .uri(&path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_vec()))
        .expect("a request");
    let uid = own_uid();
    let answer = driver::send(&fixture.gateway.control, Peer::Unix { uid }, req);
    driver::check_refusal(&format!("{method} {path}"), &answer);
});

/// The socket's owner: this process's user.
fn own_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid()).expect("/proc/self")
}
