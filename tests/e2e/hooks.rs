//! Webhooks against the real daemon: their own token (refused at startup when shared or
//! missing), never in the URL, body cap, idempotency keys, mappings, and the failure lockout.

use std::time::Duration;

use gateway_tests::http1::{self, Reply};
use gateway_tests::*;
use serde_json::{json, Value};

use gateway_tests::api::{transcript, wait_messages};

const HOOKS_TOKEN: &str = "hooks-token-0123456789abcdef";
const GATEWAY_TOKEN: &str = "gateway-token-0123456789abcdef";

fn hook(d: &Daemon, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    http1::request(d.port, "POST", path, headers, Some(body)).unwrap()
}

const BEARER: (&str, &str) = ("Authorization", "Bearer hooks-token-0123456789abcdef");

#[test]
fn startup_refuses_a_missing_short_or_shared_hooks_token() {
    let home = Home::new();
    for (config, says) in [
        ("[hooks]\nenabled = true\n".to_owned(), "hooks.token is not set"),
        ("[hooks]\nenabled = true\ntoken = \"short\"\n".to_owned(), "shorter than"),
        (
            format!("[gateway.auth]\ntoken = \"{GATEWAY_TOKEN}\"\n[hooks]\nenabled = true\ntoken = \"{GATEWAY_TOKEN}\"\n"),
            "hooks.token is the gateway token",
        ),
        (
            format!("[hooks]\nenabled = true\ntoken = \"{HOOKS_TOKEN}\"\n[[hooks.mappings]]\nname = \"wake\"\nsession_key = \"w\"\n"),
            "hooks.mappings[0].name",
        ),
    ] {
        home.write_config(None, &config);
        let mut d = home.spawn(&["--port", &free_port().to_string()], |_| {});
        assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(78), "{config}");
        assert!(d.stderr().contains(says), "{config}: {}", d.stderr());
        assert!(d.stderr().contains("key `hooks."), "{}", d.stderr());
    }
    // The same secret through the environment is caught too.
    home.write_config(None, "[hooks]\nenabled = true\ntoken = \"env:HOOKS_SECRET\"\n");
    let mut d = home.spawn(&["--port", &free_port().to_string()], |c| {
        c.env("GATEWAY_TOKEN", GATEWAY_TOKEN).env("HOOKS_SECRET", GATEWAY_TOKEN);
    });
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(78));
    assert!(d.stderr().contains("gateway token"), "{}", d.stderr());
}

fn start(home: &Home) -> Daemon {
    home.start_with(&format!(
        "[gateway.auth]\ntoken = \"{GATEWAY_TOKEN}\"\n[gateway.auth.rate_limit]\nmax_failures = 4\nlockout_ms = 60000\n\
         [hooks]\nenabled = true\ntoken = \"{HOOKS_TOKEN}\"\nmax_body_bytes = 1024\n\
         [[hooks.mappings]]\nname = \"github\"\nsession_key = \"hook:github\"\n"
    ))
}

#[test]
fn agent_wake_and_mapped_hooks() {
    let home = Home::new();
    let d = start(&home);

    let r = hook(
        &d,
        "/hooks/agent",
        &[BEARER],
        &json!({"message": "build finished", "sessionKey": "ci"}).to_string(),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    assert!(r.json()["runId"].as_str().unwrap().starts_with("run_"));
    assert_eq!(r.json()["sessionKey"], "ci");
    let session = wait_messages(&d, GATEWAY_TOKEN, "ci", 2);
    assert_eq!(transcript(&session)[0], ("user".to_owned(), "build finished".to_owned()));

    // The header form; no session key: a session of its own.
    let r = hook(&d, "/hooks/agent", &[("x-gateway-hooks-token", HOOKS_TOKEN)], r#"{"message": "ping"}"#);
    assert_eq!(r.status, 202, "{}", r.body);
    let key = r.json()["sessionKey"].as_str().unwrap().to_owned();
    assert!(key.starts_with("hook:"), "{key}");
    wait_messages(&d, GATEWAY_TOKEN, &key, 2);

    let r = hook(&d, "/hooks/wake", &[BEARER], r#"{"text": "new mail"}"#);
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.json()["sessionKey"], "agent:main:main");
    let session = wait_messages(&d, GATEWAY_TOKEN, "agent:main:main", 2);
    assert!(transcript(&session)[0].1.contains("new mail"));

    let payload = json!({"action": "opened", "number": 7}).to_string();
    let r = hook(&d, "/hooks/github", &[BEARER], &payload);
    assert_eq!(r.status, 202, "{}", r.body);
    let session = wait_messages(&d, GATEWAY_TOKEN, "hook:github", 2);
    assert!(
        transcript(&session)[0].1.contains("\"number\": 7")
            || transcript(&session)[0].1.contains("\"number\":7")
    );
    let r = hook(&d, "/hooks/gitlab", &[BEARER], "{}");
    assert_eq!(r.status, 404);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("hooks.mappings"));

    let r = hook(&d, "/hooks/agent", &[BEARER], r#"{"sessionKey": "x"}"#);
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("message"));
}

#[test]
fn the_same_idempotency_key_is_the_same_run() {
    let home = Home::new();
    let d = start(&home);
    let body = json!({"message": "deploy 41", "sessionKey": "deploys"}).to_string();
    let headers = [BEARER, ("Idempotency-Key", "deploy-41")];
    let first = hook(&d, "/hooks/agent", &headers, &body);
    let again = hook(&d, "/hooks/agent", &headers, &body);
    assert_eq!(first.status, 202, "{}", first.body);
    assert_eq!(again.status, 202, "{}", again.body);
    assert_eq!(first.json()["runId"], again.json()["runId"]);
    assert_eq!((first.json()["joined"].clone(), again.json()["joined"].clone()), (json!(false), json!(true)));
    let other = hook(&d, "/hooks/agent", &[BEARER, ("Idempotency-Key", "deploy-42")], &body);
    assert_ne!(other.json()["runId"], first.json()["runId"]);
    // A run's input is stored before its 202: every user message is on disk by now.
    let session = wait_messages(&d, GATEWAY_TOKEN, "deploys", 4);
    let users = transcript(&session).into_iter().filter(|(r, _)| r == "user").count();
    assert_eq!(users, 2, "one run per key: {session}");
}

#[test]
fn refusals() {
    let home = Home::new();
    let d = start(&home);
    let body = r#"{"message": "hi"}"#;

    let r = hook(&d, "/hooks/agent", &[BEARER], &format!("{{\"message\": \"{}\"}}", "x".repeat(2000)));
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("hooks.max_body_bytes"));

    // Never in the URL, even the right token.
    let r = hook(&d, &format!("/hooks/agent?hooks_token={HOOKS_TOKEN}"), &[], body);
    assert_eq!(r.status, 400);
    let r = hook(&d, &format!("/hooks/agent?token={HOOKS_TOKEN}"), &[], body);
    assert_eq!(r.status, 400);

    // The gateway token is not a hooks token; failures lead to a lockout.
    let gateway = format!("Bearer {GATEWAY_TOKEN}");
    let r = hook(&d, "/hooks/agent", &[("Authorization", &gateway)], body);
    assert_eq!(r.status, 401);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("hooks"));
    for _ in 0..3 {
        assert_eq!(
            hook(&d, "/hooks/wake", &[("x-gateway-hooks-token", "wrong-wrong-wrong-wrong")], "").status,
            401
        );
    }
    let r = hook(&d, "/hooks/wake", &[("x-gateway-hooks-token", "wrong-wrong-wrong-wrong")], "");
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.header("retry-after").is_some());
    // The lockout holds back guessing, not the sender that has the token.
    let r = hook(&d, "/hooks/agent", &[BEARER], body);
    assert_eq!(r.status, 202, "{}", r.body);
}

#[test]
fn hooks_are_off_by_default() {
    let home = Home::new();
    let d = home.start_with("");
    let r = hook(&d, "/hooks/agent", &[BEARER], r#"{"message": "hi"}"#);
    assert_eq!(r.status, 404);
    let e: Value = r.json();
    assert!(e["error"]["message"].as_str().unwrap().contains("hooks.enabled"));
}

#[test]
fn a_reload_that_shares_the_token_is_rejected_and_rotation_applies() {
    let home = Home::new();
    // No file watcher: each reload is the one gatewayctl asks for.
    let config = |hooks: &str| {
        format!(
            "[gateway.reload]\nmode = \"off\"\n[gateway.auth]\ntoken = \"{GATEWAY_TOKEN}\"\n[hooks]\nenabled = true\ntoken = \"{hooks}\"\n"
        )
    };
    let d = home.start_with(&config(HOOKS_TOKEN));
    let body = r#"{"message": "still here", "sessionKey": "r"}"#;

    home.write_config(None, &config(GATEWAY_TOKEN));
    let out = home.ctl(&["reload", "--wait"]);
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("hooks.token") && text.contains("gateway token"), "{text}");
    assert_eq!(hook(&d, "/hooks/agent", &[BEARER], body).status, 202, "the old token keeps working");

    // A new token of its own applies hot; the old one stops working.
    home.write_config(None, &config("rotated-hooks-token-0123456789"));
    let out = home.ctl(&["reload", "--wait"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(hook(&d, "/hooks/agent", &[BEARER], body).status, 401);
    let rotated = [("x-gateway-hooks-token", "rotated-hooks-token-0123456789")];
    assert_eq!(hook(&d, "/hooks/agent", &rotated, body).status, 202);
}
