//! `gatewayctl remote inspect|plan` on real config files (gatewayd need not run), and doctor's
//! warning when the running gateway breaks its own remote.profile. Each rule's table is in the
//! unit tests of ctl/src/commands/remote.rs; this checks what a user runs and reads.

use gateway_tests::*;
use serde_json::Value;

fn ctl(home: &Home, args: &[&str]) -> (i32, String, String) {
    let out = home.ctl(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn inspect_reads_the_config_and_the_profile_flag() {
    let home = Home::new();
    // No config file: local-only on loopback with a token.
    let (code, out, _) = ctl(&home, &["remote", "inspect", "--json"]);
    assert_eq!(code, 0, "{out}");
    let p: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (p["profile"].as_str(), p["gate"].as_str(), p["risk_level"].as_str()),
        (Some("local-only"), Some("pass"), Some("low"))
    );
    assert_eq!(p["bind_is_loopback"], true);
    assert_eq!(p["auth"]["mode"], "token");

    // --profile names a remote profile here, not an instance.
    let (code, out, _) = ctl(&home, &["remote", "inspect", "--profile", "tailscale-funnel", "--json"]);
    assert_eq!(code, 1, "the gate holds: {out}");
    let p: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(p["profile"], "tailscale-funnel");
    assert_eq!(p["reason_codes"], serde_json::json!(["password_auth_required", "password_not_set"]));

    let (code, _, err) = ctl(&home, &["remote", "inspect", "public-please"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no remote-access profile \"public-please\": use one of local-only, password-remote"),
        "{err}"
    );
}

#[test]
fn plan_fails_closed_and_otherwise_prints_checks_and_commands() {
    let home = Home::new();
    home.write_config(None, "[gateway]\nbind = \"lan\"\n");
    let (code, out, err) = ctl(&home, &["remote", "plan", "--profile", "tailscale-serve"]);
    assert_eq!(code, 78, "{out}{err}");
    assert!(out.is_empty(), "nothing planned: {out}");
    assert!(err.contains("refusing to plan tailscale-serve: the gate holds"), "{err}");
    assert!(err.contains("loopback_bind_required"), "{err}");

    home.write_config(None, "[gateway]\nport = 18999\n[remote]\nprofile = \"tailscale-serve\"\n");
    let (code, out, err) = ctl(&home, &["remote", "plan"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("check=bind status=pass detail=bind=loopback loopback=true"), "{out}");
    assert!(out.contains("check=auth status=pass detail=mode=token"), "{out}");
    assert!(out.contains("check=tailscale_cli status="), "{out}");
    assert!(out.contains("$ tailscale serve --bg --https=443 http://127.0.0.1:18999"), "{out}");
    assert!(out.contains("$ ssh -N -L 18999:127.0.0.1:18999 user@host"), "{out}");
}

#[test]
fn doctor_warns_when_the_running_gateway_breaks_its_remote_profile() {
    let home = Home::new();
    let _d = home.start_with("[remote]\nprofile = \"password-remote\"\n");
    let doctor: Value = serde_json::from_slice(&home.ctl(&["doctor", "--json"]).stdout).unwrap();
    let check = doctor["checks"].as_array().unwrap().iter().find(|c| c["id"] == "remote").cloned().unwrap();
    assert_eq!(check["severity"], "warning", "{check}");
    let finding = check["finding"].as_str().unwrap();
    assert!(
        finding.contains("the running gateway does not keep remote.profile = password-remote"),
        "{finding}"
    );
    assert!(finding.contains("password_auth_required"), "{finding}");
}
