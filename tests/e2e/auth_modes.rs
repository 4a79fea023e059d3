//! The other auth modes: password (with sessions) and trusted proxy.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use gateway_tests::ws::{Client, Connect, Device};
use gateway_tests::*;
use serde_json::{json, Value};

/// POST with a JSON body; status and body.
fn post_json(port: u16, path: &str, body: &Value, headers: &[(&str, &str)]) -> (u16, Value) {
    let body = body.to_string();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut req = format!("POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    write!(s, "{req}\r\n{body}").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

#[test]
fn password_mode_with_sessions() {
    let home = Home::new();
    home.write_config(None, "[gateway.auth]\nmode = \"password\"\n");
    // No password anywhere: refused at start, saying how to set one.
    let mut d = home.spawn(&["--port", &free_port().to_string()], |_| {});
    assert_eq!(d.wait_exit(Duration::from_secs(5)).code(), Some(78));
    assert!(d.stderr().contains("gatewayctl password set"), "{}", d.stderr());

    let port = free_port();
    let d = home.spawn(&["--port", &port.to_string()], |c| {
        c.env("GATEWAY_PASSWORD", "first-password");
    });
    d.wait_ready();
    let hash = std::fs::read_to_string(home.state_dir(None).join("password")).unwrap();
    assert!(hash.starts_with("$argon2id$") && !hash.contains("first-password"));
    assert_eq!(mode(&home.state_dir(None).join("password")), 0o600);

    // WebSocket with the password.
    let device = Device::new(30);
    let (mut c, res) = Client::connect(
        port,
        &Connect { password: Some("first-password"), device: Some(&device), ..Default::default() },
    );
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["payload"]["snapshot"]["authMode"], "password");
    assert_eq!(c.request("status", json!({}))["ok"], true);
    let (mut bad, res) =
        Client::connect(port, &Connect { password: Some("wrong-password"), ..Default::default() });
    assert_eq!(res["error"]["details"]["code"], "AUTH_PASSWORD_MISMATCH", "{res}");
    assert_eq!(bad.closed().0, 1008);

    // Exchange the password for a session token; use it over HTTP and WebSocket.
    let (status, body) = post_json(port, "/gateway/auth/session", &json!({ "password": "wrong" }), &[]);
    assert_eq!(status, 401, "{body}");
    let (status, body) =
        post_json(port, "/gateway/auth/session", &json!({ "password": "first-password" }), &[]);
    assert_eq!(status, 201, "{body}");
    let session = body["token"].as_str().unwrap().to_owned();
    assert!(body["expiresAtMs"].as_u64().unwrap() > 0);
    // Tau's names for the same: access_token, token_type, expires_unix_ms, expires_in_seconds.
    assert_eq!(
        (body["access_token"].as_str(), body["token_type"].as_str()),
        (Some(session.as_str()), Some("bearer"))
    );
    assert_eq!(body["expires_unix_ms"], body["expiresAtMs"]);
    let ttl = body["expires_in_seconds"].as_u64().unwrap();
    assert!((86_390..=86_400).contains(&ttl), "{body}");
    assert_eq!(d.get("/gateway/status", &[("Authorization", &bearer(&session))]).0, 200);
    assert_eq!(d.get("/gateway/status", &[("Authorization", &bearer("not-a-session"))]).0, 401);
    // The runbook's auth block counts what just happened.
    let (_, status) = d.get("/gateway/status", &[("Authorization", &bearer(&session))]);
    let auth = &status["auth"];
    assert_eq!(
        (auth["mode"].as_str(), auth["session_ttl_seconds"].as_u64()),
        (Some("password"), Some(86_400))
    );
    assert_eq!(
        (auth["active_sessions"].as_u64(), auth["total_sessions_issued"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(auth["auth_failures"].as_u64() >= Some(3), "{auth}");
    assert_eq!(
        (auth["rate_limit_window_seconds"].as_u64(), auth["rate_limit_max_requests"].as_u64()),
        (Some(60), Some(0))
    );
    let (mut via_session, res) =
        Client::connect(port, &Connect { token: Some(&session), ..Default::default() });
    assert_eq!(res["ok"], true, "{res}");

    // Sign-in sessions are listed and can be ended: the token stops working, its sockets close
    // (4001). `sessions`, the command's old name, still answers.
    let out = home.ctl(&["signins", "list", "--json"]);
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = listed["sessions"][0]["id"].as_str().unwrap().to_owned();
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&session), "the token itself is never listed");
    let old_name: Value = serde_json::from_slice(&home.ctl(&["sessions", "list", "--json"]).stdout).unwrap();
    assert_eq!(old_name, listed);
    let revoked = home.ctl(&["signins", "revoke", &id]);
    assert!(revoked.status.success(), "{revoked:?}");
    assert!(String::from_utf8_lossy(&revoked.stdout).contains("1 connection(s) closed"), "{revoked:?}");
    assert_eq!(via_session.closed().0, 4001);
    assert_eq!(d.get("/gateway/status", &[("Authorization", &bearer(&session))]).0, 401);

    // With GATEWAY_PASSWORD set, the password cannot be changed from a client.
    let out = home.ctl_input(&["password", "set", "--stdin"], "second-password\n");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("GATEWAY_PASSWORD"), "{out:?}");
    drop(c);
}

#[test]
fn changing_the_password_ends_what_the_old_one_granted() {
    let home = Home::new();
    home.write_config(None, "[gateway.auth]\nmode = \"password\"\n");
    // Set offline first: gatewayctl writes the hash itself.
    let out = home.ctl_input(&["password", "set", "--stdin"], "offline-password\n");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(mode(&home.state_dir(None)), 0o700, "created private, whatever the umask");
    assert_eq!(mode(&home.state_dir(None).join("password")), 0o600);
    let port = free_port();
    let d = home.start(&["--port", &port.to_string()]);
    let (mut c, res) =
        Client::connect(port, &Connect { password: Some("offline-password"), ..Default::default() });
    assert_eq!(res["ok"], true, "{res}");
    let (_, body) = post_json(port, "/gateway/auth/session", &json!({ "password": "offline-password" }), &[]);
    let session = body["token"].as_str().unwrap().to_owned();

    let out = home.ctl_input(&["password", "set", "--stdin"], "online-password\n");
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 session(s) ended"), "{out:?}");
    assert_eq!(c.closed().0, 4001);
    assert_eq!(d.get("/gateway/status", &[("Authorization", &bearer(&session))]).0, 401);
    let (_c, res) =
        Client::connect(port, &Connect { password: Some("online-password"), ..Default::default() });
    assert_eq!(res["ok"], true, "{res}");
    // Too short: refused, nothing changes.
    let out = home.ctl_input(&["password", "set", "--stdin"], "short\n");
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("at least 8"), "{out:?}");
}

#[test]
fn trusted_proxy_identity_only_from_trusted_addresses() {
    let home = Home::new();
    // Without proxies configured, the mode is refused at start.
    home.write_config(None, "[gateway.auth]\nmode = \"trusted-proxy\"\n");
    let mut d = home.spawn(&["--port", &free_port().to_string()], |_| {});
    assert_eq!(d.wait_exit(Duration::from_secs(5)).code(), Some(78));
    assert!(d.stderr().contains("gateway.http.trusted_proxies"), "{}", d.stderr());

    home.write_config(None, "[gateway.auth]\nmode = \"trusted-proxy\"\n[gateway.auth.trusted_proxy]\nuser_header = \"x-auth-user\"\n[gateway.http]\ntrusted_proxies = [\"127.0.0.1\"]\n");
    let port = free_port();
    let d = home.start(&["--port", &port.to_string()]);
    assert_eq!(d.get("/gateway/status", &[("X-Auth-User", "alice")]).0, 200);
    assert_eq!(d.get("/gateway/status", &[]).0, 401);
    let with_user = Connect { headers: vec![("X-Auth-User", "alice".into())], ..Default::default() };
    let (_c, res) = Client::connect(port, &with_user);
    assert_eq!(res["ok"], true, "{res}");
    let (_c, res) = Client::connect(port, &Connect::default());
    assert_eq!(res["ok"], false, "{res}");

    // The same header from an address that is not a trusted proxy counts for nothing.
    home.write_config(None, "[gateway.auth]\nmode = \"trusted-proxy\"\n[gateway.auth.trusted_proxy]\nuser_header = \"x-auth-user\"\n[gateway.http]\ntrusted_proxies = [\"10.9.9.9\"]\n");
    wait_for(Duration::from_secs(5), "the reload", || {
        (control(&home.socket(None), "GET", "/v1/status")["config"]["generation"] == 2).then_some(())
    });
    assert_eq!(d.get("/gateway/status", &[("X-Auth-User", "alice")]).0, 401);
}

/// `gateway.auth.password` as a secret reference: signs in, cannot be replaced from a client,
/// and a changed value applies on reload, ending what the old one granted.
#[test]
fn the_password_from_the_config() {
    let home = Home::new();
    let port = free_port();
    let secret = home.path().join("pw");
    std::fs::write(&secret, "from-a-file-1\n").unwrap();
    let config = |value: &str| format!("[gateway.auth]\nmode = \"password\"\npassword = \"{value}\"\n");
    home.write_config(None, &config("env:GW_TEST_PASSWORD"));
    let mut d = home.spawn(&["--port", &port.to_string()], |c| {
        c.env("GW_TEST_PASSWORD", "from-the-env-1");
    });
    d.port = port;
    d.wait_ready();

    let (status, body) =
        post_json(port, "/gateway/auth/session", &json!({"password": "from-the-env-1"}), &[]);
    assert_eq!(status, 201, "{body}");
    let session = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(d.get("/gateway/status", &[("Authorization", &bearer(&session))]).0, 200);
    let out = home.ctl_input(&["password", "set", "--stdin"], "another-password\n");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("gateway.auth.password"), "{out:?}");

    // Too short: the reload is refused, naming the key; the old password keeps working.
    std::fs::write(&secret, "short\n").unwrap();
    home.write_config(None, &config(&format!("file:{}", secret.display())));
    let s = wait_for(Duration::from_secs(5), "the rejected reload", || {
        let s = control(&home.socket(None), "GET", "/v1/status");
        (s["counters"]["reloads_rejected"] == 1).then_some(s)
    });
    assert_eq!(s["last_reload"]["errors"][0]["key"], "gateway.auth.password", "{s}");
    assert_eq!(d.get("/gateway/status", &[("Authorization", &bearer(&session))]).0, 200);

    // A new value (from a file): applied hot; the old password's session ends.
    std::fs::write(&secret, "from-a-file-2\n").unwrap();
    home.write_config(None, &format!("{}# touched\n", config(&format!("file:{}", secret.display()))));
    wait_for(Duration::from_secs(5), "the old session to end", || {
        (d.get("/gateway/status", &[("Authorization", &bearer(&session))]).0 == 401).then_some(())
    });
    assert_eq!(post_json(port, "/gateway/auth/session", &json!({"password": "from-the-env-1"}), &[]).0, 401);
    assert_eq!(post_json(port, "/gateway/auth/session", &json!({"password": "from-a-file-2"}), &[]).0, 201);
}
