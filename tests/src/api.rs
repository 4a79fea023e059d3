//! Calls to the gateway's HTTP API for the e2e tests: authenticated requests, a streamed read
//! the test can break off, and waits for what a run stores.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{json, Value};

use crate::http1::{self, Reply};
use crate::{wait_for, Daemon, Home};

/// A fresh home running `gatewayd` with `config`, and the gateway token it generated.
pub fn start_gateway(config: &str) -> (Home, Daemon, String) {
    let home = Home::new();
    let d = home.start_with(config);
    let token = home.token();
    (home, d, token)
}

/// A request with the bearer token (none when `token` is empty) and a JSON body.
pub fn call(d: &Daemon, method: &str, path: &str, token: &str, body: Option<&Value>) -> Reply {
    call_raw(d, method, path, token, body.map(Value::to_string).as_deref())
}

/// [`call`] with a body as it is, JSON or not.
pub fn call_raw(d: &Daemon, method: &str, path: &str, token: &str, body: Option<&str>) -> Reply {
    let auth = format!("Bearer {token}");
    let headers: Vec<(&str, &str)> =
        if token.is_empty() { vec![] } else { vec![("Authorization", auth.as_str())] };
    http1::request(d.port, method, path, &headers, body).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

pub fn post(d: &Daemon, path: &str, token: &str, body: &Value) -> Reply {
    call(d, "POST", path, token, Some(body))
}

/// An echo chat completion on a stored session (the `x-gateway-session-key` header).
pub fn chat_on_session(d: &Daemon, token: &str, key: &str, messages: Value) -> Reply {
    let auth = format!("Bearer {token}");
    let body = json!({"model": "echo/echo", "messages": messages}).to_string();
    let headers = [("Authorization", auth.as_str()), ("x-gateway-session-key", key)];
    let r = http1::request(d.port, "POST", "/v1/chat/completions", &headers, Some(&body)).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    r
}

/// Waits until the stored session has at least `n` messages; returns `GET /gateway/sessions/KEY`.
pub fn wait_messages(d: &Daemon, token: &str, key: &str, n: usize) -> Value {
    wait_for(Duration::from_secs(20), &format!("{n} messages in session {key}"), || {
        let r = call(d, "GET", &format!("/gateway/sessions/{key}"), token, None);
        (r.status == 200 && r.json()["messages"].as_array().is_some_and(|m| m.len() >= n)).then(|| r.json())
    })
}

/// Waits until the only HTTP connection the gateway serves is the one asking.
pub fn wait_connections_idle(d: &Daemon, token: &str) {
    wait_for(Duration::from_secs(20), "HTTP connections back to one", || {
        let status = call(d, "GET", "/gateway/status", token, None).json();
        (status["connections"]["http"] == 1).then_some(())
    });
}

/// The (role, content) pairs of a session's messages.
pub fn transcript(session: &Value) -> Vec<(String, String)> {
    session["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap().to_owned(), m["content"].as_str().unwrap_or("").to_owned()))
        .collect()
}

/// Opens a streamed request and reads SSE data lines until `stop` says so; the open stream
/// is returned so the caller decides when the client goes away.
pub fn stream_until(
    port: u16,
    path: &str,
    token: &str,
    body: &Value,
    mut stop: impl FnMut(&str) -> bool,
) -> (Vec<String>, BufReader<TcpStream>) {
    let body = body.to_string();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reader = BufReader::new(s);
    let mut seen = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "stream ended early; saw {seen:?}");
        if let Some(data) = line.trim_end().strip_prefix("data: ") {
            seen.push(data.to_owned());
            if stop(data) {
                return (seen, reader);
            }
        }
    }
}
