//! The security cases: each refusal is tested from the outside.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use gateway_tests::ws::{Client, Connect, Device};
use gateway_tests::*;
use serde_json::json;

#[test]
fn cross_site_websocket_is_refused_before_the_upgrade() {
    let home = Home::new();
    let d = home.start_with("[gateway.http]\nallowed_origins = [\"https://ui.example\"]\n");
    let evil = Connect { headers: vec![("Origin", "https://evil.example".into())], ..Default::default() };
    let refused = Client::open(d.port, &evil).err().expect("refused");
    assert_eq!(refused.status, 403);
    assert!(refused.body.contains("gateway.http.allowed_origins"), "{}", refused.body);
    for ok in [format!("http://127.0.0.1:{}", d.port), "https://ui.example".into()] {
        assert!(
            Client::open(d.port, &Connect { headers: vec![("Origin", ok)], ..Default::default() }).is_ok()
        );
    }
}

#[test]
fn unknown_host_names_are_refused() {
    let home = Home::new();
    let d = home.start_with("");
    let (status, body) = http(d.port, "GET", "/readyz", &[("Host", "attacker.example")]);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("allowed_hosts"));
    assert_eq!(http(d.port, "GET", "/readyz", &[("Host", &format!("localhost:{}", d.port))]).0, 200);
}

#[test]
fn credentials_in_the_url_are_refused() {
    let home = Home::new();
    // A provider's API key is one of the secrets too.
    let provider_key = "sk-provider-key-0123456789";
    let d = home.start_with(&format!(
        "[models.providers.up]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\napi_key = \"{provider_key}\"\nmodels = [\"m\"]\n"
    ));
    let tok = home.token();
    let (status, body) = http(d.port, "GET", &format!("/gateway/status?token={tok}"), &[]);
    assert_eq!(status, 400);
    assert!(body.contains("credentials in the URL"));
    // Any spelling of a credential's name, percent-encoded or not, and any parameter whose
    // value is one of the gateway's secrets.
    for query in [
        "api-key=x",
        "apiKey=x",
        "%74oken=x",
        "Authorization=x",
        "client_secret=x",
        "x-api-key=x",
        "bearer=x",
    ] {
        let (status, body) = http(d.port, "GET", &format!("/v1/models?{query}"), &[]);
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.contains("credentials_in_url"), "{query}: {body}");
    }
    for secret in [tok.as_str(), provider_key] {
        let (status, body) = http(d.port, "GET", &format!("/gateway/sessions?limit=1&q={secret}"), &[]);
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("holds one of the gateway's secrets") && !body.contains(secret), "{body}");
    }
    assert_eq!(
        http(d.port, "GET", "/gateway/sessions?limit=1", &[("Authorization", &format!("Bearer {tok}"))]).0,
        200
    );
    let refused =
        Client::open(d.port, &Connect { path: "/?token=x", ..Default::default() }).err().expect("refused");
    assert_eq!(refused.status, 400);
    // Nor does the token ever reach the log.
    let log = std::fs::read_to_string(home.state_dir(None).join("logs/gatewayd.jsonl")).unwrap();
    assert!(!log.contains(&tok) && !d.stderr().contains(&tok));
}

#[test]
fn brute_force_is_rate_limited_on_every_path() {
    let home = Home::new();
    let d = home.start_with("[gateway.auth.rate_limit]\nmax_failures = 5\n");
    let mut limited = 0;
    for i in 0..20 {
        let wrong = format!("wrong-{i}");
        let (status, _) =
            http(d.port, "GET", "/gateway/status", &[("Authorization", &format!("Bearer {wrong}"))]);
        if status == 429 {
            limited += 1;
        } else {
            assert_eq!(status, 401);
        }
    }
    assert_eq!(limited, 15, "after 5 failures every attempt gets 429");
    // The WebSocket path shares the lockout...
    let (mut c, res) = Client::connect(d.port, &Connect { token: Some("wrong-again"), ..Default::default() });
    assert_eq!(res["error"]["details"]["code"], "AUTH_RATE_LIMITED", "{res}");
    assert!(res["error"]["retryAfterMs"].as_u64().unwrap() > 0);
    assert_eq!(c.closed().0, 1008);
    // ...and a spoofed X-Forwarded-For from an untrusted peer changes nothing.
    let (status, _) = http(
        d.port,
        "GET",
        "/gateway/status",
        &[("Authorization", "Bearer wrong-spoofed"), ("X-Forwarded-For", "203.0.113.9")],
    );
    assert_eq!(status, 429);
    // The lockout holds back guessing, not the owner: the right token still works, over HTTP
    // and WebSocket.
    let tok = home.token();
    assert_eq!(http(d.port, "GET", "/gateway/status", &[("Authorization", &format!("Bearer {tok}"))]).0, 200);
    let (_c, res) = Client::connect(d.port, &Connect { token: Some(&tok), ..Default::default() });
    assert_eq!(res["ok"], true, "{res}");
}

/// What any web page can make a browser send (an `<img>` with no credential, a cross-site
/// request) is refused without counting, so it can never lock the owner out.
#[test]
fn credential_less_and_cross_site_requests_never_lock_out_the_owner() {
    let home = Home::new();
    let d = home.start_with("[gateway.auth.rate_limit]\nmax_failures = 5\n");
    for _ in 0..20 {
        assert_eq!(http(d.port, "GET", "/gateway/status", &[]).0, 401, "no credential: 401, never 429");
        assert_eq!(http(d.port, "GET", "/v1/models", &[]).0, 401);
    }
    for headers in [
        [("Sec-Fetch-Site", "cross-site"), ("Authorization", "Bearer wrong")],
        [("Referer", "https://evil.example/page"), ("Authorization", "Bearer wrong")],
        [("Origin", "https://evil.example"), ("Authorization", "Bearer wrong")],
    ] {
        for _ in 0..10 {
            let (status, body) = http(d.port, "GET", "/gateway/status", &headers);
            assert_eq!(status, 403, "{headers:?}: {body}");
        }
    }
    let (status, body) = http(d.port, "GET", "/gateway/status", &[("Sec-Fetch-Site", "cross-site")]);
    assert!(status == 403 && body.contains("another web site"), "{status} {body}");
    // None of that counted: a wrong token now gets 401, not 429, and the right one works.
    assert_eq!(http(d.port, "GET", "/gateway/status", &[("Authorization", "Bearer wrong")]).0, 401);
    let tok = home.token();
    assert_eq!(http(d.port, "GET", "/gateway/status", &[("Authorization", &format!("Bearer {tok}"))]).0, 200);
    // A same-origin page's request (its own Referer) is fine.
    let own = format!("http://127.0.0.1:{}/ui", d.port);
    assert_eq!(
        http(
            d.port,
            "GET",
            "/gateway/status",
            &[("Referer", &own), ("Authorization", &format!("Bearer {tok}"))]
        )
        .0,
        200
    );
    let status: serde_json::Value = control(&home.socket(None), "GET", "/v1/status");
    assert_eq!(status["counters"]["auth_failures"], 1, "{status}");
}

/// The Host header names this gateway, once; an absolute-form target names the same host.
#[test]
fn ambiguous_hosts_are_refused() {
    let home = Home::new();
    let d = home.start_with("");
    let tok = format!("Bearer {}", home.token());
    let (status, body) = http(
        d.port,
        "GET",
        "/gateway/status",
        &[("Host", "localhost"), ("Host", "evil.example"), ("Authorization", &tok)],
    );
    assert!(status == 400 && body.contains("2 Host headers"), "{status} {body}");
    let (status, body) = http(d.port, "GET", "/gateway/status", &[("Host", ""), ("Authorization", &tok)]);
    assert!(status == 400 && body.contains("empty"), "{status} {body}");
    let (status, body) = http(
        d.port,
        "GET",
        "http://evil.example/gateway/status",
        &[("Host", "localhost"), ("Authorization", &tok)],
    );
    assert!(status == 400 && body.contains("must agree"), "{status} {body}");
    let absolute = format!("http://127.0.0.1:{}/gateway/status", d.port);
    let host = format!("127.0.0.1:{}", d.port);
    assert_eq!(http(d.port, "GET", &absolute, &[("Host", &host), ("Authorization", &tok)]).0, 200);
}

/// Rejections the router makes itself (a path or query it cannot parse, a method a route does
/// not serve) come in the documented JSON shapes, never as plain text.
#[test]
fn router_rejections_come_in_the_documented_shapes() {
    let home = Home::new();
    let d = home.start_with("");
    let tok = format!("Bearer {}", home.token());
    let auth = [("Authorization", tok.as_str())];
    let (status, body) = http(d.port, "GET", "/v1/responses/%ff%fe", &auth);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(status, 400, "{body}");
    assert_eq!(v["error"]["type"], "invalid_request_error", "{body}");
    let (status, body) = http(d.port, "GET", "/gateway/sessions?limit=-1", &auth);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!((status, v["error"]["code"].as_str()), (400, Some("bad_request")), "{body}");
    let (status, body) = http(d.port, "DELETE", "/gateway/status", &auth);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!((status, v["error"]["code"].as_str()), (405, Some("method_not_allowed")), "{body}");
    assert!(v["error"]["message"].as_str().unwrap().ends_with(": use GET,HEAD"), "{body}");
    let (status, body) = unix_http(&home.socket(None), "GET", "/v1/logs?lines=many", &[]).unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!((status, v["error"]["code"].as_str()), (400, Some("bad_request")), "{body}");
}

#[test]
fn oversize_frames_close_with_1009() {
    let home = Home::new();
    let d = home.start_with("[gateway.ws]\nmax_payload_bytes = 100000\n");
    // Before the handshake: 64 KiB.
    let mut c = Client::open(d.port, &Connect::default()).unwrap();
    c.ws.send(tungstenite::Message::text("x".repeat(70_000))).unwrap();
    assert_eq!(c.closed().0, 1009);
    // After it: the configured maximum.
    let tok = home.token();
    let device = Device::new(20);
    let (mut c, _) = Client::paired(d.port, &tok, &device);
    let big =
        json!({ "type": "req", "id": "big", "method": "health", "params": { "pad": "x".repeat(90_000) } });
    c.send(&big);
    assert_eq!(c.response("big")["ok"], true, "under the limit");
    c.ws.send(tungstenite::Message::text("x".repeat(100_001))).unwrap();
    assert_eq!(c.closed().0, 1009);
}

#[test]
fn oversize_http_bodies_get_413() {
    let home = Home::new();
    let d = home.start_with("[gateway.http]\nmax_body_bytes = 2048\n");
    let mut s = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    write!(s, "POST /gateway/status HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4096\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");
}

#[test]
fn silent_and_slow_clients_are_cut_off() {
    let home = Home::new();
    let d = home.start_with(
        "[gateway.http]\nheader_read_timeout_ms = 500\n[gateway.ws]\nhandshake_timeout_ms = 500\n",
    );
    // Slow headers (slowloris) and silence.
    let mut slow = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    slow.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut silent = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    let t0 = Instant::now();
    for s in [&mut slow, &mut silent] {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
    }
    assert!(
        t0.elapsed() < Duration::from_millis(2500),
        "closed within the timeout + 1 s: {:?}",
        t0.elapsed()
    );
    // A WebSocket that never sends connect.
    let mut c = Client::open(d.port, &Connect::default()).unwrap();
    let (code, reason) = c.closed();
    assert_eq!(code, 1008);
    assert!(reason.contains("handshake timeout"), "{reason}");
    // Nor one that keeps talking (pings, each answered with a pong) and never sends connect.
    let mut chatty = Client::open(d.port, &Connect::default()).unwrap();
    let t0 = Instant::now();
    let (code, reason) = loop {
        assert!(t0.elapsed() < Duration::from_secs(3), "still open after {:?}", t0.elapsed());
        chatty.ws.send(tungstenite::Message::Ping(Vec::new().into())).unwrap();
        match chatty.ws.read().unwrap() {
            tungstenite::Message::Pong(_) => {}
            tungstenite::Message::Close(Some(f)) => break (u16::from(f.code), f.reason.to_string()),
            other => panic!("unexpected {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, 1008);
    assert!(reason.contains("handshake timeout"), "{reason}");
    // Normal clients are unaffected.
    assert_eq!(http(d.port, "GET", "/readyz", &[]).0, 200);
}

#[test]
fn unauthenticated_sockets_per_address_are_capped() {
    let home = Home::new();
    let d = home.start_with("[gateway.ws]\nmax_unauthenticated_per_ip = 3\n");
    let held: Vec<Client> = (0..3).map(|_| Client::open(d.port, &Connect::default()).unwrap()).collect();
    let refused = Client::open(d.port, &Connect::default()).err().expect("the fourth is refused");
    assert_eq!(refused.status, 503);
    drop(held);
    wait_for(Duration::from_secs(3), "places to free up", || Client::open(d.port, &Connect::default()).ok());
}

#[test]
fn a_client_that_stops_reading_is_closed_as_a_slow_consumer() {
    let home = Home::new();
    let d = home.start_with("[gateway.ws]\nmax_buffered_bytes = 65536\n");
    let tok = home.token();
    let device = Device::new(21);
    let (mut c, _) =
        Client::connect(d.port, &Connect { token: Some(&tok), device: Some(&device), ..Default::default() });
    // Ask for far more than the socket buffers hold, without reading any of it.
    let schema_request =
        |i: usize| json!({ "type": "req", "id": format!("s{i}"), "method": "config.schema" });
    let mut sent = 0;
    for i in 0..5_000 {
        if c.ws.send(tungstenite::Message::text(schema_request(i).to_string())).is_err() {
            break;
        }
        sent += 1;
    }
    assert!(sent > 100);
    let (code, reason) = c.closed();
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("slow consumer"), "{reason}");
    // Memory stays bounded: the daemon is fine and serves others.
    assert_eq!(http(d.port, "GET", "/readyz", &[]).0, 200);
}
