//! Pairing as the owner sees it: a remote device waits, `gatewayctl devices` approves, rejects
//! and revokes it. "Remote" is a client behind a trusted proxy on loopback, whose
//! `X-Forwarded-For` names another address.

use gateway_tests::ws::{Client, Connect, Device};
use gateway_tests::*;
use serde_json::{json, Value};

const BEHIND_PROXY: &str = "[gateway.http]\ntrusted_proxies = [\"127.0.0.1\"]\n";

fn token(home: &Home) -> String {
    std::fs::read_to_string(home.state_dir(None).join("token")).unwrap().trim().to_owned()
}

fn remote<'a>(token: &'a str, device: &'a Device) -> Connect<'a> {
    Connect {
        token: Some(token),
        device: Some(device),
        headers: vec![("x-forwarded-for", "203.0.113.5".to_owned())],
        ..Default::default()
    }
}

/// Runs gatewayctl; exit code, stdout, stderr.
fn ctl(home: &Home, args: &[&str]) -> (i32, String, String) {
    let out = home.ctl(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn listing(home: &Home) -> Value {
    let (code, out, err) = ctl(home, &["devices", "list", "--json"]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

fn request_id(res: &Value) -> String {
    assert_eq!(res["ok"], false, "{res}");
    assert_eq!(res["error"]["code"], "NOT_PAIRED", "{res}");
    res["error"]["details"]["requestId"].as_str().unwrap().to_owned()
}

#[test]
fn a_remote_device_is_approved_then_revoked() {
    let home = Home::new();
    home.write_config(None, BEHIND_PROXY);
    let d = home.start(&["--port", &free_port().to_string()]);
    let tok = token(&home);
    let device = Device::new(21);

    let (_c, res) = Client::connect(d.port, &remote(&tok, &device));
    let rid = request_id(&res);
    let list = listing(&home);
    assert_eq!(list["devices"], json!([]));
    assert_eq!(list["pending"][0]["request_id"], rid.as_str());
    assert_eq!(list["pending"][0]["device_id"], device.id());
    let (_, text, _) = ctl(&home, &["devices", "list"]);
    assert!(text.contains(&format!("gatewayctl devices approve {rid}")), "{text}");

    let (code, out, err) = ctl(&home, &["devices", "approve", &rid, "--scope", "operator.read"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("approved device"), "{out}");
    assert_eq!(listing(&home)["pending"], json!([]));

    // Asking for read, write and admin, it gets what it was granted.
    let (mut c, res) = Client::connect(d.port, &remote(&tok, &device));
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["payload"]["auth"]["scopes"], json!(["operator.read"]));
    let device_token = res["payload"]["auth"]["deviceToken"].as_str().unwrap().to_owned();
    let list = listing(&home);
    assert_eq!(list["devices"][0]["device_id"], device.id());
    assert!(list["devices"][0]["last_seen_ms"].is_u64(), "{list}");
    assert!(!list.to_string().contains(&device_token));

    // Revoked by the short id `devices list` shows: its socket closes, its token stops working.
    let (code, out, err) = ctl(&home, &["devices", "revoke", &device.id()[..12]]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("closed its open connection"), "{out}");
    assert_eq!(c.closed(), (4001, "device revoked".to_owned()));
    let (_c, res) = Client::connect(d.port, &remote(&device_token, &device));
    assert_eq!(res["error"]["details"]["code"], "AUTH_TOKEN_MISMATCH", "{res}");
    assert_eq!(listing(&home)["devices"][0]["revoked"], true);
    let (_c, res) = Client::connect(d.port, &remote(&tok, &device));
    request_id(&res);
}

#[test]
fn rejected_and_unknown_requests() {
    let home = Home::new();
    home.write_config(None, BEHIND_PROXY);
    let d = home.start(&["--port", &free_port().to_string()]);
    let tok = token(&home);
    let device = Device::new(22);
    let (_c, res) = Client::connect(d.port, &remote(&tok, &device));
    let rid = request_id(&res);

    let (code, out, err) = ctl(&home, &["devices", "reject", &rid]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("rejected pairing request {rid}")), "{out}");
    assert_eq!(listing(&home)["pending"], json!([]));

    let (code, _, err) = ctl(&home, &["devices", "approve", &rid]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no pending pairing request matches") && err.contains("gatewayctl devices list"),
        "{err}"
    );
    assert!(err.contains("HTTP 404"), "{err}");
    let (code, _, err) = ctl(&home, &["devices", "revoke", "../../stop"]);
    assert_eq!(code, 1);
    assert!(err.contains("invalid id") && err.contains("HTTP 400"), "{err}");
    let (code, _, err) = ctl(&home, &["devices", "approve", &rid, "--scope", "root"]);
    assert_eq!(code, 2, "a scope that does not exist is a usage error: {err}");

    // The daemon still serves after all that.
    let (_c, res) = Client::connect(d.port, &remote(&tok, &device));
    request_id(&res);
    assert_eq!(listing(&home)["pending"].as_array().unwrap().len(), 1);
}

/// The same pairing over the WebSocket's `device.pair.*` methods, as the OpenClaw CLI and UI
/// call them; they need operator.pairing (or admin).
#[test]
fn device_pair_methods_list_approve_reject_and_remove() {
    let home = Home::new();
    home.write_config(None, BEHIND_PROXY);
    let d = home.start(&["--port", &free_port().to_string()]);
    let tok = token(&home);
    let (mut owner, _) = Client::paired(d.port, &tok, &Device::new(30));
    let waiting = Device::new(31);
    let rid = request_id(&Client::connect(d.port, &remote(&tok, &waiting)).1);
    let other = Device::new(32);
    let other_rid = request_id(&Client::connect(d.port, &remote(&tok, &other)).1);

    let list = owner.request("device.pair.list", json!({}));
    assert_eq!(list["ok"], true, "{list}");
    let pending = list["payload"]["pending"].as_array().unwrap();
    assert_eq!(pending.len(), 2, "{list}");
    let first = pending.iter().find(|p| p["requestId"] == rid.as_str()).expect("the request listed");
    assert_eq!(first["deviceId"], waiting.id());
    assert_eq!(first["role"], "operator");
    assert!(first["ts"].is_u64(), "{first}");
    assert!(list["payload"]["paired"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["deviceId"] == Device::new(30).id()));

    let approved = owner.request("device.pair.approve", json!({ "requestId": rid }));
    assert_eq!(approved["payload"]["requestId"], rid.as_str(), "{approved}");
    assert_eq!(approved["payload"]["device"]["deviceId"], waiting.id());
    let (_c, hello) = Client::connect(d.port, &remote(&tok, &waiting));
    assert_eq!(hello["ok"], true, "{hello}");

    let rejected = owner.request("device.pair.reject", json!({ "requestId": other_rid }));
    assert_eq!(rejected["payload"]["deviceId"], other.id(), "{rejected}");
    let unknown = owner.request("device.pair.reject", json!({ "requestId": other_rid }));
    assert_eq!(unknown["error"]["code"], "INVALID_REQUEST", "{unknown}");

    let removed = owner.request("device.pair.remove", json!({ "deviceId": waiting.id() }));
    assert_eq!(removed["payload"]["deviceId"], waiting.id(), "{removed}");
    let list = owner.request("device.pair.list", json!({}));
    assert!(
        !list["payload"]["paired"].as_array().unwrap().iter().any(|p| p["deviceId"] == waiting.id()),
        "{list}"
    );
    assert_eq!(list["payload"]["pending"], json!([]), "{list}");

    // A reader may not manage pairing.
    let (mut reader, _) = Client::connect(
        d.port,
        &Connect {
            token: Some(&tok),
            device: Some(&Device::new(33)),
            scopes: &["operator.read"],
            ..Default::default()
        },
    );
    let denied = reader.request("device.pair.list", json!({}));
    assert_eq!(denied["error"]["details"]["missingScope"], "operator.pairing", "{denied}");
}
