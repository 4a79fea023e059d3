//! A real third-party client: the npm package `openclaw-node` (pinned in `tests/node`) connects
//! to gatewayd, is paired on first use, calls methods, and comes back with the device token it
//! persisted. Needs `node` and `npm`; `.ci/run` installs `tests/node`'s dependencies, and this
//! test runs `npm ci` there itself when they are missing.

use std::path::Path;
use std::time::Duration;

use gateway_tests::node::{ensure_node_deps, node_dir};
use gateway_tests::process::{run, Finished};
use gateway_tests::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Runs the openclaw-node client script against the daemon; its exit code, stdout, stderr.
fn openclaw_client(home: &Home, port: u16, token: &str, identity: &Path) -> Finished {
    ensure_node_deps();
    let dir = node_dir();
    let mut cmd = home.command(Path::new("node"));
    cmd.arg(dir.join("openclaw_client.cjs"))
        .current_dir(&dir)
        .env("GATEWAY_URL", format!("ws://127.0.0.1:{port}/"))
        .env("GATEWAY_TOKEN", token)
        .env("DEVICE_IDENTITY_PATH", identity)
        .env("OPENCLAW_CLIENT_TIMEOUT_MS", "20000");
    run(cmd, "node openclaw_client.cjs", Duration::from_secs(40))
}

fn token(home: &Home) -> String {
    std::fs::read_to_string(home.state_dir(None).join("token")).unwrap().trim().to_owned()
}

const CONFIG: &str = "[logging]\nlevel = \"info\"\n";

#[test]
fn openclaw_node_connects_pairs_calls_methods_and_reconnects_with_its_device_token() {
    let home = Home::new();
    home.write_config(None, CONFIG);
    let d = home.start(&["--port", &free_port().to_string()]);
    let identity_path = home.path().join("openclaw").join("device-identity.json");

    let client = openclaw_client(&home, d.port, &token(&home), &identity_path);
    let context = format!(
        "exit {:?}\n--- node stdout:\n{}\n--- node stderr:\n{}\n--- gatewayd stderr:\n{}",
        client.code,
        client.stdout,
        client.stderr,
        d.stderr()
    );
    assert_eq!(client.code, Some(0), "openclaw-node client failed: {context}");
    let out: Value = client
        .stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON line from the client: {context}"));

    // The handshake: hello-ok with the protocol, every scope asked for, and a device token.
    assert_eq!(out["connected"], true, "{out}");
    assert_eq!(out["protocol"], 4, "{out}");
    assert_eq!(out["role"], "operator", "{out}");
    assert_eq!(out["scopes"], json!(["operator.read", "operator.write", "operator.admin"]), "{out}");
    assert_eq!(out["helloHasDeviceToken"], true, "{out}");
    let methods: Vec<&str> = out["methods"]
        .as_array()
        .unwrap_or_else(|| panic!("methods: {out}"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for m in ["health", "status", "agents.list", "config.get", "channels.status"] {
        assert!(methods.contains(&m), "{m} not in hello-ok methods {methods:?}");
    }

    // The methods, as the client's helpers return them.
    assert_eq!(out["health"]["ok"], true, "{out}");
    assert!(out["health"]["checks"].is_array(), "{out}");
    assert_eq!(out["status"]["pid"], d.pid(), "{out}");
    assert_eq!(out["status"]["state"], "running", "{out}");
    assert_eq!(out["agents"]["agents"][0]["id"], "main", "{out}");

    // Chat over WS: the agent stream as openclaw-node assembles it, then chat.send's events.
    let chat = &out["chat"];
    let types: Vec<&str> =
        chat["chunks"].as_array().unwrap().iter().map(|c| c["type"].as_str().unwrap()).collect();
    assert_eq!(types.first(), Some(&"agent_start"), "{chat}");
    assert_eq!(&types[types.len() - 2..], ["agent_end", "done"], "{chat}");
    let text: String = chat["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["type"] == "text")
        .map(|c| c["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, "hello from openclaw-node", "{chat}");
    assert_eq!(chat["sent"]["status"], "started", "{chat}");
    let events = chat["chatEvents"].as_array().unwrap();
    assert!(events.iter().all(|e| e["runId"] == chat["sent"]["runId"]), "{chat}");
    assert_eq!(events.last().unwrap()["state"], "final", "{chat}");
    let streamed: String = events.iter().filter_map(|e| e["deltaText"].as_str()).collect();
    assert_eq!(streamed, "second message", "{chat}");
    assert_eq!(
        chat["history"],
        json!([
            { "role": "user", "text": "hello from openclaw-node" },
            { "role": "assistant", "text": "hello from openclaw-node" },
            { "role": "user", "text": "second message" },
            { "role": "assistant", "text": "second message" },
        ]),
        "{chat}"
    );
    assert_eq!(chat["sessions"], json!(["node-chat"]), "{chat}");
    // No accounts configured: every channel listed, none configured.
    assert_eq!(out["channels"]["channelOrder"], json!(["irc", "matrix", "telegram"]), "{out}");
    assert_eq!(out["channels"]["channels"]["irc"]["configured"], false, "{out}");
    let hash = out["configHash"].as_str().unwrap_or_default();
    assert!(
        hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "config hash is not 64 lowercase hex: {out}"
    );
    let file_hash: String = Sha256::digest(std::fs::read(home.config_file(None)).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(hash, file_hash, "config.get hash is the file's SHA-256");
    assert_eq!(out["configFormat"], "toml", "{out}");

    // openclaw-node kept its identity and the device token where it was told to.
    let identity: Value = serde_json::from_str(
        &std::fs::read_to_string(&identity_path)
            .unwrap_or_else(|e| panic!("{}: {e}", identity_path.display())),
    )
    .unwrap();
    let device_id = identity["deviceId"].as_str().unwrap_or_default().to_owned();
    assert_eq!(device_id.len(), 64, "{identity}");
    assert_eq!(out["deviceId"], device_id.as_str());
    let device_token = identity["deviceToken"].as_str().unwrap_or_default();
    assert!(
        device_token.len() >= 32,
        "no device token persisted: {:?}",
        identity.as_object().map(|o| o.keys().collect::<Vec<_>>())
    );
    assert_eq!(mode(&identity_path), 0o600);

    // Paired automatically (loopback), as the client described itself; the token is not shown.
    let devices = control(&home.socket(None), "GET", "/v1/devices");
    let listed = devices["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|dev| dev["device_id"] == device_id.as_str())
        .unwrap_or_else(|| panic!("device {device_id} not paired: {devices}"));
    assert_eq!(listed["client_id"], "gateway-client", "{listed}");
    assert_eq!(listed["mode"], "backend", "{listed}");
    assert_eq!(listed["role"], "operator", "{listed}");
    assert_eq!(listed["scopes"], json!(["operator.read", "operator.write", "operator.admin"]), "{listed}");
    assert_eq!(listed["revoked"], false, "{listed}");
    assert!(listed["last_seen_ms"].is_u64(), "{listed}");
    assert_eq!(devices["pending"], json!([]), "{devices}");
    assert!(!devices.to_string().contains(device_token));

    // A second client instance, given no shared token, got in with the persisted device token
    // (sent as auth.token) and the same scopes, and persisted the token that hello-ok issued.
    let again = &out["reconnect"];
    assert_eq!(out["reconnectedWithDeviceToken"], true, "{out}");
    assert_eq!(again["usedPersistedToken"], true, "{out}");
    assert_eq!(again["statusPid"], d.pid(), "{out}");
    assert_eq!(again["scopes"], out["scopes"], "{out}");
    assert_eq!(again["helloHasDeviceToken"], true, "{out}");
    assert_eq!(again["deviceTokenIsLatest"], true, "{out}");
    assert_eq!(
        control(&home.socket(None), "GET", "/v1/devices")["devices"].as_array().unwrap().len(),
        1,
        "the reconnect reused the pairing"
    );
}

#[test]
fn openclaw_node_with_a_wrong_token_is_refused_and_says_why() {
    let home = Home::new();
    home.write_config(None, CONFIG);
    let d = home.start(&["--port", &free_port().to_string()]);
    let identity_path = home.path().join("openclaw").join("device-identity.json");
    let client = openclaw_client(&home, d.port, "not-the-token", &identity_path);
    assert_eq!(client.code, Some(1), "stdout:\n{}\nstderr:\n{}", client.stdout, client.stderr);
    assert!(client.stdout.trim().is_empty(), "{}", client.stdout);
    // The refusal as the gateway sent it, then the close, reach the script's report.
    assert!(
        client.stderr.contains("connect #1") && client.stderr.contains("AUTH_TOKEN_MISMATCH"),
        "{}",
        client.stderr
    );
    assert!(client.stderr.contains("\"code\":1008"), "{}", client.stderr);
    assert_eq!(control(&home.socket(None), "GET", "/v1/devices"), json!({ "devices": [], "pending": [] }));
}
