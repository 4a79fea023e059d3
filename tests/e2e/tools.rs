//! Gateway tools: `tools.catalog`, `POST /tools/invoke` (auth, deny list, sessions), and the
//! fetch tool's SSRF guard, on resolved addresses and on redirects.

use std::io::{Read, Write};
use std::net::TcpListener;

use gateway_tests::api::{call_raw, post, start_gateway};
use gateway_tests::upstream::Upstream;
use gateway_tests::ws::{Client, Device};
use gateway_tests::*;
use serde_json::{json, Value};

fn invoke(d: &Daemon, token: &str, body: Value) -> (u16, Value) {
    let reply = post(d, "/tools/invoke", token, &body);
    (reply.status, reply.json())
}

#[test]
fn catalog_and_invoke_with_auth_sessions_and_the_deny_list() {
    let (_home, d, tok) = start_gateway("[tools]\nhttp_deny = [\"sessions_list\"]\n");
    let (mut c, _) = Client::paired(d.port, &tok, &Device::new(30));
    let catalog = c.request("tools.catalog", json!({}));
    let tools = catalog["payload"]["tools"].as_array().unwrap();
    let find =
        |name: &str| tools.iter().find(|t| t["name"] == name).unwrap_or_else(|| panic!("{catalog}")).clone();
    assert_eq!(find("time")["enabled"], true);
    assert_eq!(find("fetch")["enabled"], false, "fetch is off by default");
    assert_eq!(find("sessions_list")["httpDenied"], true);
    assert_eq!(find("memory_write")["needsSession"], true);

    let reply = call_raw(&d, "POST", "/tools/invoke", "", Some(r#"{"tool":"time"}"#));
    assert_eq!(reply.status, 401, "{}", reply.body);

    let (status, body) = invoke(&d, &tok, json!({ "tool": "time" }));
    assert_eq!(status, 200, "{body}");
    assert!(body["result"]["utc"].as_str().unwrap().ends_with('Z'), "{body}");

    let (status, body) = invoke(
        &d,
        &tok,
        json!({ "tool": "memory_write", "sessionKey": "m", "args": { "name": "k", "value": "v1" } }),
    );
    assert_eq!((status, body["result"]["saved"].clone()), (200, json!(true)), "{body}");
    let (_, body) =
        invoke(&d, &tok, json!({ "tool": "memory_read", "sessionKey": "m", "args": { "name": "k" } }));
    assert_eq!(body["result"]["value"], "v1", "{body}");
    let (status, body) = invoke(&d, &tok, json!({ "tool": "memory_read" }));
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("sessionKey"), "{body}");
    let (status, body) =
        invoke(&d, &tok, json!({ "tool": "memory_write", "sessionKey": "m", "args": { "name": "k" } }));
    assert_eq!((status, body["error"]["code"].clone()), (400, json!("tool_error")), "{body}");

    let (status, body) = invoke(&d, &tok, json!({ "tool": "sessions_list" }));
    assert_eq!((status, body["error"]["code"].clone()), (403, json!("tool_denied")), "{body}");
    let (status, body) =
        invoke(&d, &tok, json!({ "tool": "fetch", "args": { "url": "http://example.com/" } }));
    assert_eq!((status, body["error"]["code"].clone()), (404, json!("tool_disabled")), "{body}");
    let (status, body) = invoke(&d, &tok, json!({ "tool": "rm -rf" }));
    assert_eq!((status, body["error"]["code"].clone()), (404, json!("tool_not_found")), "{body}");
    let reply = call_raw(&d, "POST", "/tools/invoke", &tok, Some("nope"));
    assert_eq!(reply.status, 400, "{}", reply.body);
}

/// A server on loopback that answers every request with a redirect to `location`.
fn redirector(location: String) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let reply =
                format!("HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    port
}

#[test]
fn fetch_refuses_non_public_targets_directly_and_after_redirects() {
    let up = Upstream::start();
    let (_home, d, tok) = start_gateway("[tools.fetch]\nenabled = true\nallow_hosts = [\"127.0.0.1\"]\n");
    let fetch = |url: String| invoke(&d, &tok, json!({ "tool": "fetch", "args": { "url": url } }));

    // Allowed by name: the loopback upstream answers.
    let (status, body) = fetch(format!("{}/models", up.openai_base_url()));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["status"], 200);
    assert!(body["result"]["body"].as_str().unwrap().contains("\"data\""), "{body}");

    // The same server by another name is not allowed: the check is on the resolved address.
    let (status, body) = fetch(format!("http://localhost:{}/v1/models", up.port()));
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("refused") && message.contains("127.0.0.1") && message.contains("allow_hosts"),
        "{message}"
    );
    for url in ["http://10.0.0.1/", "http://169.254.169.254/latest/meta-data/", "http://[::1]:1/", "ftp://x/"]
    {
        let (status, body) = fetch(url.to_owned());
        assert_eq!(status, 400, "{url}: {body}");
    }

    // An allowed host that redirects to a refused one: the redirect is checked too.
    let port = redirector(format!("http://localhost:{}/v1/models", up.port()));
    let (status, body) = fetch(format!("http://127.0.0.1:{port}/start"));
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("refused"), "{body}");
    let models_requests = up.requests().iter().filter(|r| r.path.ends_with("/models")).count();
    assert_eq!(models_requests, 1, "only the allowed fetch reached the upstream");
}
