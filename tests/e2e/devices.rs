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
