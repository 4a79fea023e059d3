//! The WebSocket protocol as clients see it: handshake, scopes, methods, events.

use std::time::Duration;

use gateway_tests::ws::{Client, Connect, Device};
use gateway_tests::*;
use serde_json::{json, Value};

#[test]
fn a_device_on_loopback_is_paired_and_gets_hello_ok() {
    let home = Home::new();
    let d = home.start_with("");
    let tok = home.token();
    let device = Device::new(1);
    let (mut c, res) = Client::paired(d.port, &tok, &device);
    assert_eq!(res["ok"], true, "{res}");
    let hello = &res["payload"];
    assert_eq!(hello["type"], "hello-ok");
    assert_eq!(hello["protocol"], 4);
    let methods: Vec<&str> =
        hello["features"]["methods"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    for m in [
        "health",
        "status",
        "system-presence",
        "last-heartbeat",
        "logs.tail",
        "config.get",
        "config.apply",
        "agents.list",
    ] {
        assert!(methods.contains(&m), "{m} missing from {methods:?}");
    }
    assert!(methods.contains(&"chat.send") && !methods.contains(&"chat.inject"), "{methods:?}");
    assert_eq!(hello["snapshot"]["authMode"], "token");
    assert_eq!(hello["snapshot"]["presence"][0]["connId"], hello["server"]["connId"]);
    assert_eq!(hello["policy"]["maxPayload"], 26_214_400);
    assert_eq!(hello["auth"]["scopes"], json!(["operator.read", "operator.write", "operator.admin"]));
    let device_token = hello["auth"]["deviceToken"].as_str().unwrap().to_owned();
    assert!(device_token.len() >= 32);
    assert_eq!(c.request("health", json!({}))["payload"]["ok"], true);
    let status = c.request("status", json!({}));
    assert_eq!(status["payload"]["pid"], d.pid());

    // The device token alone lets the device back in (how openclaw-node reconnects).
    let (_c2, res) = Client::connect(
        d.port,
        &Connect { token: Some(&device_token), device: Some(&device), ..Default::default() },
    );
    assert_eq!(res["ok"], true, "{res}");
    // Without the device, the device token is no credential.
    let (_c3, res) = Client::connect(d.port, &Connect { token: Some(&device_token), ..Default::default() });
    assert_eq!(res["error"]["details"]["code"], "AUTH_TOKEN_MISMATCH", "{res}");
    assert_eq!(res["error"]["message"], "unauthorized: gateway token mismatch", "{res}");
}

/// A paired device keeps one device token: every hello-ok hands the same one out, it survives a
/// restart (derived under the key file, not kept), and the database never holds it.
#[test]
fn a_device_token_is_the_same_on_every_connect_and_after_a_restart() {
    let home = Home::new();
    let mut d = home.start_with("");
    let tok = home.token();
    let device = Device::new(7);
    let token_of = |res: &Value| res["payload"]["auth"]["deviceToken"].as_str().unwrap().to_owned();
    let (_c, first) = Client::paired(d.port, &tok, &device);
    let token = token_of(&first);
    let (_c, again) = Client::paired(d.port, &tok, &device);
    assert_eq!(token_of(&again), token);
    assert_eq!(again["payload"]["auth"]["issuedAtMs"], first["payload"]["auth"]["issuedAtMs"]);

    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(d.wait_exit(Duration::from_secs(10)).success());
    for file in ["gateway.db", "gateway.db-wal"] {
        let bytes = std::fs::read(home.state_dir(None).join(file)).unwrap_or_default();
        assert!(!bytes.windows(token.len()).any(|w| w == token.as_bytes()), "{file} holds the token");
    }
    let key = home.state_dir(None).join("device-key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);

    let d = home.start_with("");
    let (_c, res) = Client::connect(
        d.port,
        &Connect { token: Some(&token), device: Some(&device), ..Default::default() },
    );
    assert_eq!(res["ok"], true, "the device token after a restart: {res}");
    assert_eq!(token_of(&res), token);

    // Without its key file, the token cannot be handed out again: the device's next handshake,
    // still let in by the stale token's digest, issues it a new one.
    drop(d);
    std::fs::remove_file(&key).unwrap();
    let d = home.start_with("");
    let (_c, res) = Client::connect(
        d.port,
        &Connect { token: Some(&token), device: Some(&device), ..Default::default() },
    );
    assert_eq!(res["ok"], true, "the stale token: {res}");
    let fresh = token_of(&res);
    assert_ne!(fresh, token);
    let (_c, res) = Client::connect(
        d.port,
        &Connect { token: Some(&fresh), device: Some(&device), ..Default::default() },
    );
    assert_eq!(token_of(&res), fresh);
}

/// `health` answers from checks made once per change of what they are made of: a reload's
/// outcome shows in the next call, and the heartbeat check says when the loop last ticked.
#[test]
fn health_follows_reloads_at_once() {
    let home = Home::new();
    let d = home.start_with("[gateway.reload]\nmode = \"off\"\n");
    let tok = home.token();
    let (mut c, res) = Client::connect(d.port, &Connect { token: Some(&tok), ..Default::default() });
    assert_eq!(res["ok"], true, "{res}");
    let check = |c: &mut Client, name: &str| {
        let res = c.request("health", json!({}));
        let checks = res["payload"]["checks"].as_array().unwrap().clone();
        checks.into_iter().find(|k| k["name"] == name).unwrap_or_else(|| panic!("no {name} check: {res}"))
    };
    assert_eq!(check(&mut c, "config")["detail"], "generation 1 in effect");
    let beat = check(&mut c, "heartbeat");
    assert_eq!(beat["ok"], true);
    let detail = beat["detail"].as_str().unwrap();
    assert!(detail.starts_with("last tick at 20") || detail.starts_with("no tick yet"), "{detail}");

    home.write_config(None, "[gateway.reload]\nmode = \"off\"\nbogus = 1\n");
    assert_eq!(home.ctl(&["reload", "--wait"]).status.code(), Some(78));
    let config = check(&mut c, "config");
    assert!(
        config["detail"].as_str().unwrap().contains("the last edit was rejected: ")
            && config["detail"].as_str().unwrap().contains("gateway.reload.bogus"),
        "{config}"
    );
    let res = c.request("health", json!({}));
    assert_eq!(res["payload"]["ok"], true, "a rejected edit leaves the old config serving: {res}");

    home.write_config(None, "[gateway.reload]\nmode = \"off\"\n[logging]\nlevel = \"warn\"\n");
    assert!(home.ctl(&["reload", "--wait"]).status.success());
    assert_eq!(check(&mut c, "config")["detail"], "generation 2 in effect");
}

#[test]
fn handshake_refusals_say_why_and_close() {
    let home = Home::new();
    let d = home.start_with("");
    let tok = home.token();

    // Anything but connect first.
    let mut c = Client::open(d.port, &Connect::default()).unwrap();
    let res = c.request("health", json!({}));
    assert_eq!(res["error"]["code"], "INVALID_REQUEST");
    assert!(res["error"]["message"].as_str().unwrap().contains("first request must be connect"));
    assert_eq!(c.closed().0, 1008);

    // Connect params of the wrong shape, or none: what is wrong is named, then the close.
    for params in [json!({ "minProtocol": "four" }), Value::Null] {
        let mut c = Client::open(d.port, &Connect::default()).unwrap();
        let res = c.request("connect", params);
        let message = res["error"]["message"].as_str().unwrap_or_default();
        assert!(message.starts_with("invalid connect params: invalid type"), "{res}");
        assert_eq!(c.closed().0, 1008);
    }

    // Protocol mismatch: 1002 and the version we speak.
    let mut c = Client::open(d.port, &Connect::default()).unwrap();
    let mut params = c.connect_params(&Connect { token: Some(&tok), ..Default::default() });
    params["minProtocol"] = 5.into();
    params["maxProtocol"] = 6.into();
    let res = c.request("connect", params);
    assert_eq!(res["error"]["details"]["expectedProtocol"], 4, "{res}");
    assert_eq!(c.closed().0, 1002);

    // Missing and wrong tokens.
    let (mut c, res) = Client::connect(d.port, &Connect::default());
    assert_eq!(res["error"]["details"]["code"], "AUTH_TOKEN_MISSING", "{res}");
    // The signature the runbooks tell operators to look for.
    assert!(
        res["error"]["message"].as_str().unwrap().starts_with("unauthorized: gateway token missing"),
        "{res}"
    );
    assert_eq!(c.closed().0, 1008);
    let (mut c, res) = Client::connect(d.port, &Connect { token: Some("wrong"), ..Default::default() });
    assert_eq!(res["error"]["details"]["code"], "AUTH_TOKEN_MISMATCH", "{res}");
    assert_eq!(c.closed().0, 1008);

    // A signature that does not cover what is asked for.
    let device = Device::new(2);
    let mut c = Client::open(d.port, &Connect::default()).unwrap();
    let mut params = c.connect_params(&Connect {
        token: Some(&tok),
        device: Some(&device),
        scopes: &["operator.read"],
        ..Default::default()
    });
    params["scopes"] = json!(["operator.admin"]);
    let res = c.request("connect", params);
    assert_eq!(res["error"]["details"]["code"], "DEVICE_SIGNATURE_INVALID", "{res}");
    assert_eq!(c.closed().0, 1008);
}

/// A client on this host that proves the gateway token keeps the operator scopes it asks for
/// without a device, as the OpenClaw CLI expects; not through a proxy, not when turned off.
#[test]
fn a_local_client_with_the_shared_secret_keeps_its_scopes() {
    let home = Home::new();
    let d = home.start_with("");
    let tok = home.token();
    let asked = Connect {
        token: Some(&tok),
        scopes: &["operator.read", "operator.write", "node.invoke", "operator.read"],
        client_id: "cli",
        mode: "cli",
        ..Default::default()
    };
    let (mut c, res) = Client::connect(d.port, &asked);
    assert_eq!(res["payload"]["auth"]["scopes"], json!(["operator.read", "operator.write"]), "{res}");
    assert_eq!(c.request("status", json!({}))["ok"], true);
    assert_eq!(
        c.request("config.apply", json!({ "raw": "" }))["error"]["details"]["missingScope"],
        "operator.admin"
    );
    // Through a proxy the same connect gets none.
    for (name, value) in
        [("X-Forwarded-For", "127.0.0.1"), ("Forwarded", "for=127.0.0.1"), ("X-Real-IP", "127.0.0.1")]
    {
        let (_c, res) =
            Client::connect(d.port, &Connect { headers: vec![(name, value.into())], ..asked.clone() });
        assert_eq!(res["payload"]["auth"]["scopes"], json!([]), "{name}: {res}");
    }
    // Nor with the choice turned off.
    home.write_config(None, "[gateway.auth]\nlocal_shared_secret_scopes = false\n");
    assert!(home.ctl(&["reload"]).status.success());
    let (_c, res) = Client::connect(d.port, &asked);
    assert_eq!(res["payload"]["auth"]["scopes"], json!([]), "{res}");
}

#[test]
fn scopes_are_enforced_per_method() {
    let home = Home::new();
    let d = home.start_with("");
    let tok = home.token();
    // A shared token without a device, through a proxy: no scopes, health only.
    let proxied = Connect {
        token: Some(&tok),
        headers: vec![("X-Forwarded-For", "203.0.113.9".into())],
        ..Default::default()
    };
    let (mut c, res) = Client::connect(d.port, &proxied);
    assert_eq!(res["payload"]["auth"]["scopes"], json!([]));
    assert_eq!(c.request("health", json!({}))["ok"], true);
    let res = c.request("status", json!({}));
    assert_eq!(res["error"]["code"], "FORBIDDEN");
    assert_eq!(res["error"]["details"]["code"], "MISSING_SCOPE");

    // A read-only device reads, but may not touch the config.
    let reader = Device::new(3);
    let (mut c, _) = Client::connect(
        d.port,
        &Connect {
            token: Some(&tok),
            device: Some(&reader),
            scopes: &["operator.read"],
            ..Default::default()
        },
    );
    assert_eq!(c.request("status", json!({}))["ok"], true);
    // A reader sees the config in effect, secrets redacted, but not the file as written.
    let res = c.request("config.get", json!({}));
    assert_eq!(res["ok"], true, "{res}");
    assert!(res["payload"]["config"].is_object() && res["payload"].get("raw").is_none(), "{res}");
    assert!(res["payload"].get("hash").is_none(), "{res}");
    let res = c.request("config.patch", json!({ "raw": {} }));
    assert_eq!(res["error"]["details"]["missingScope"], "operator.admin", "{res}");
    // Asking for more later does not widen what it was granted.
    let (_c, res) = Client::connect(
        d.port,
        &Connect {
            token: Some(&tok),
            device: Some(&reader),
            scopes: &["operator.admin"],
            ..Default::default()
        },
    );
    assert_ne!(res["payload"]["auth"]["scopes"], json!(["operator.admin"]), "{res}");
}

#[test]
fn bad_frames_get_errors_not_crashes() {
    let home = Home::new();
    let d = home.start_with("");
    let tok = home.token();
    let device = Device::new(4);
    let (mut c, _) = Client::paired(d.port, &tok, &device);
    c.ws.send(tungstenite::Message::text("{not json")).unwrap();
    let res = c.any_response();
    assert_eq!(res["error"]["code"], "INVALID_REQUEST");
    assert!(res["error"]["message"].as_str().unwrap().contains("not JSON"));
    let res = c.request("no.such.method", json!({}));
    assert_eq!(
        res["error"]["message"],
        "unknown method: no.such.method: this gateway does not serve it (hello-ok features.methods lists what it serves)"
    );
    let res = c.request("connect", json!({}));
    assert_eq!(res["error"]["message"], "connect is only valid as the first request");
    let res = c.request("logs.tail", json!({ "limit": "many" }));
    assert!(res["error"]["message"].as_str().unwrap().starts_with("invalid params"), "{res}");
    assert_eq!(c.request("health", json!({}))["ok"], true, "still connected");
}

#[test]
fn events_tick_presence_and_sequence() {
    let home = Home::new();
    let d = home.start_with("[gateway.heartbeat]\ninterval_ms = 200\n");
    let tok = home.token();
    let (a, b) = (Device::new(5), Device::new(6));
    let (mut first, hello) = Client::paired(d.port, &tok, &a);
    assert_eq!(hello["payload"]["policy"]["tickIntervalMs"], 200);
    first.event("tick", Duration::from_secs(3));
    // Each heartbeat tick is a `heartbeat` event too, listed in hello-ok, for readers.
    assert!(
        hello["payload"]["features"]["events"].as_array().unwrap().contains(&json!("heartbeat")),
        "{hello}"
    );
    let beat = first.event("heartbeat", Duration::from_secs(3));
    assert_eq!(
        (beat["payload"]["status"].as_str(), beat["payload"]["intervalMs"].as_u64()),
        (Some("ok-empty"), Some(200)),
        "{beat}"
    );
    assert!(
        beat["payload"]["ts"].as_u64().unwrap() > 0 && beat["payload"]["ticks"].as_u64().unwrap() > 0,
        "{beat}"
    );
    // Responses take no seq: the events around them stay contiguous.
    assert_eq!(first.request("health", json!({}))["ok"], true);
    assert_eq!(first.request("status", json!({}))["ok"], true);
    first.event("tick", Duration::from_secs(3));
    // Every event so far, in arrival order: seq grows by exactly one each time.
    let seqs: Vec<u64> = first.events.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    let (_second, _) = Client::connect(
        d.port,
        &Connect { token: Some(&tok), device: Some(&b), client_id: "second", ..Default::default() },
    );
    let client_ids = |e: &Value| -> Vec<String> {
        e["payload"]["presence"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["clientId"].as_str().map(str::to_owned))
            .collect()
    };
    let presence = first
        .event_where("presence", Duration::from_secs(3), |e| client_ids(e).contains(&"second".to_owned()));
    assert!(presence["stateVersion"]["presence"].as_u64().unwrap() >= 2);
    let listed = first.request("system-presence", json!({}));
    assert_eq!(listed["payload"]["presence"].as_array().unwrap().len(), 2);
    let status = control(&home.socket(None), "GET", "/v1/status");
    assert_eq!(status["connections"]["websocket"], 2, "{status}");
    let hb = first.request("last-heartbeat", json!({}));
    assert!(hb["payload"]["ticks"].as_u64().unwrap() >= 2, "{hb}");
    let logs = first.request("logs.tail", json!({ "limit": 5 }));
    assert!(logs["payload"]["lines"].as_array().unwrap().len() <= 5);
    assert!(logs["payload"]["cursor"].as_u64().unwrap() > 0);
    let (mut approver, res) = Client::connect(
        d.port,
        &Connect {
            token: Some(&tok),
            scopes: &["operator.approvals"],
            client_id: "approver",
            ..Default::default()
        },
    );
    assert_eq!(res["ok"], true, "{res}");
    approver.event("tick", Duration::from_secs(3));
    approver.event("tick", Duration::from_secs(3));
    assert!(!approver.events.iter().any(|e| e["event"] == "heartbeat"), "no read scope, no heartbeat");
}

#[test]
fn config_get_apply_and_patch_with_optimistic_lock() {
    let home = Home::new();
    let d = home.start_with("[logging]\nlevel = \"info\"\n");
    let tok = home.token();
    let device = Device::new(7);
    let (mut c, _) = Client::paired(d.port, &tok, &device);
    let got = c.request("config.get", json!({}));
    let hash = got["payload"]["hash"].as_str().unwrap().to_owned();
    assert_eq!(got["payload"]["raw"], "[logging]\nlevel = \"info\"\n");

    // A stale hash is refused and nothing is written.
    let res = c.request(
        "config.apply",
        json!({ "raw": "[logging]\nlevel = \"warn\"\n", "baseHash": "0".repeat(64) }),
    );
    assert!(res["error"]["message"].as_str().unwrap().contains("baseHash"), "{res}");
    // An invalid config is refused with its line and key, and nothing is written.
    let res = c.request("config.apply", json!({ "raw": "[logging]\nlevel = \"loud\"\n", "baseHash": hash }));
    assert_eq!(res["error"]["details"]["errors"][0]["key"], "logging.level", "{res}");
    assert_eq!(std::fs::read_to_string(home.config_file(None)).unwrap(), "[logging]\nlevel = \"info\"\n");

    let res = c.request("config.apply", json!({ "raw": "[logging]\nlevel = \"debug\"\n", "baseHash": hash }));
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["payload"]["reload"]["outcome"], "applied");
    let changed = c.event("config.changed", Duration::from_secs(3));
    assert_eq!(changed["payload"]["changedKeys"], json!(["logging.level"]));
    let new_hash = res["payload"]["hash"].as_str().unwrap().to_owned();

    let res = c.request(
        "config.patch",
        json!({ "raw": "{\"gateway\":{\"heartbeat\":{\"interval_ms\":5000}}}", "baseHash": new_hash }),
    );
    assert_eq!(res["ok"], true, "{res}");
    let status = control(&home.socket(None), "GET", "/v1/status");
    assert_eq!(status["heartbeat"]["interval_ms"], 5000);
    assert_eq!(status["config"]["generation"], 3);
    let text = std::fs::read_to_string(home.config_file(None)).unwrap();
    assert!(text.contains("level = \"debug\"") && text.contains("interval_ms = 5000"), "{text}");
}

#[test]
fn token_rotation_closes_shared_token_sockets_with_4001() {
    let home = Home::new();
    let d = home.start_with("");
    let tok = home.token();
    let device = Device::new(8);
    let (mut shared, _) = Client::connect(d.port, &Connect { token: Some(&tok), ..Default::default() });
    let (mut paired, hello) = Client::paired(d.port, &tok, &device);
    let device_token = hello["payload"]["auth"]["deviceToken"].as_str().unwrap().to_owned();
    let (mut by_device, _) = Client::connect(
        d.port,
        &Connect { token: Some(&device_token), device: Some(&device), ..Default::default() },
    );
    assert!(home.ctl(&["token", "rotate"]).status.success());
    assert_eq!(shared.closed().0, 4001);
    assert_eq!(paired.closed().0, 4001);
    assert_eq!(by_device.request("health", json!({}))["ok"], true, "a device-token socket stays open");
}

#[test]
fn shutdown_event_then_close_1012() {
    let home = Home::new();
    let mut d = home.start_with("");
    let tok = home.token();
    let device = Device::new(9);
    let (mut c, _) = Client::paired(d.port, &tok, &device);
    d.signal(nix::sys::signal::Signal::SIGTERM);
    let (code, _) = c.closed();
    assert_eq!(code, 1012);
    assert!(c.events.iter().any(|e| e["event"] == "shutdown"), "{:?}", c.events);
    assert_eq!(d.wait_exit(Duration::from_secs(5)).code(), Some(0));
}
