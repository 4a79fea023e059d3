//! The `/gateway/` admin routes for sessions and memory notes, against the real daemon.

use serde_json::json;

use gateway_tests::api::{call, chat_on_session, start_gateway, transcript, wait_messages};

#[test]
fn sessions_and_memory_notes() {
    let (_home, d, token) = start_gateway("");
    for key in ["alpha", "beta"] {
        chat_on_session(&d, &token, key, json!([{"role": "user", "content": format!("hi {key}")}]));
        wait_messages(&d, &token, key, 2);
    }

    let list = call(&d, "GET", "/gateway/sessions", &token, None);
    assert_eq!(list.status, 200);
    let sessions = list.json()["sessions"].as_array().unwrap().clone();
    let keys: Vec<&str> = sessions.iter().map(|s| s["key"].as_str().unwrap()).collect();
    assert!(keys.contains(&"alpha") && keys.contains(&"beta"), "{keys:?}");
    assert_eq!(
        call(&d, "GET", "/gateway/sessions?limit=1", &token, None).json()["sessions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let alpha = call(&d, "GET", "/gateway/sessions/alpha", &token, None).json();
    assert_eq!(alpha["session"]["key"], "alpha");
    assert_eq!(alpha["session"]["messageCount"], 2);
    assert_eq!(transcript(&alpha)[1], ("assistant".to_owned(), "hi alpha".to_owned()));

    // Memory notes.
    let r = call(&d, "PUT", "/gateway/memory/alpha/likes", &token, Some(&json!({"value": "tea"})));
    assert_eq!(r.status, 200, "{}", r.body);
    let notes = call(&d, "GET", "/gateway/memory/alpha", &token, None).json();
    assert_eq!(notes["notes"][0]["name"], "likes");
    assert_eq!(notes["notes"][0]["value"], "tea");
    assert_eq!(call(&d, "GET", "/gateway/sessions/alpha", &token, None).json()["notes"][0]["value"], "tea");
    let r = call(&d, "PUT", "/gateway/memory/alpha/big", &token, Some(&json!({"value": "x".repeat(70_000)})));
    assert_eq!(r.status, 413);
    let r = call(&d, "PUT", "/gateway/memory/alpha/bad", &token, Some(&json!({"v": 1})));
    assert_eq!(r.status, 400);

    // Reset keeps the session and its notes, forgets the messages.
    let r = call(&d, "POST", "/gateway/sessions/alpha/reset", &token, None);
    assert_eq!(r.status, 200, "{}", r.body);
    let alpha = call(&d, "GET", "/gateway/sessions/alpha", &token, None).json();
    assert_eq!(alpha["messages"], json!([]));
    assert_eq!(alpha["notes"][0]["value"], "tea");

    assert_eq!(call(&d, "DELETE", "/gateway/memory/alpha/likes", &token, None).status, 200);
    assert_eq!(call(&d, "DELETE", "/gateway/memory/alpha/likes", &token, None).status, 404);

    assert_eq!(call(&d, "DELETE", "/gateway/sessions/beta", &token, None).status, 200);
    let r = call(&d, "GET", "/gateway/sessions/beta", &token, None);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], "session_not_found");
    assert_eq!(call(&d, "DELETE", "/gateway/sessions/beta", &token, None).status, 404);
    assert_eq!(call(&d, "POST", "/gateway/sessions/nope/reset", &token, None).status, 404);

    // Authenticated only.
    assert_eq!(call(&d, "GET", "/gateway/sessions", "", None).status, 401);
    assert_eq!(call(&d, "GET", "/gateway/memory/alpha", "wrong", None).status, 401);
}

/// Tau's session and memory routes: append and reset with `policy_gate`, the memory document
/// with `content`; gates named in the body and gates turned off in the config.
#[test]
fn tau_session_and_memory_routes_with_policy_gates() {
    let (home, d, token) = start_gateway("");
    let gate = |g: &str| json!({"policy_gate": g});

    // Append creates the session and adds the message as a turn.
    let body =
        json!({"role": "user", "content": "manual session note", "policy_gate": "allow_session_write"});
    let r = call(&d, "POST", "/gateway/sessions/default/append", &token, Some(&body));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (r.json()["session_key"].as_str(), r.json()["message_count"].as_u64()),
        (Some("default"), Some(1))
    );
    let s = call(&d, "GET", "/gateway/sessions/default", &token, None).json();
    assert_eq!(transcript(&s), [("user".to_owned(), "manual session note".to_owned())]);
    // The next chat on that session sees it.
    chat_on_session(&d, &token, "default", json!([{"role": "user", "content": "and this"}]));
    wait_messages(&d, &token, "default", 3);

    let no_gate = json!({"role": "user", "content": "x"});
    let r = call(&d, "POST", "/gateway/sessions/default/append", &token, Some(&no_gate));
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_str()),
        (403, Some("policy_gate_required")),
        "{}",
        r.body
    );
    assert!(r.body.contains("allow_session_write"), "{}", r.body);
    let wrong = json!({"role": "user", "content": "x", "policy_gate": "allow_memory_write"});
    let r = call(&d, "POST", "/gateway/sessions/default/append", &token, Some(&wrong));
    assert_eq!(r.json()["error"]["code"], "policy_gate_mismatch", "{}", r.body);
    let tool = json!({"role": "tool", "content": "x", "policy_gate": "allow_session_write"});
    assert_eq!(call(&d, "POST", "/gateway/sessions/default/append", &token, Some(&tool)).status, 400);

    // Reset with the gate in its body (and, as before, without a body).
    let r = call(&d, "POST", "/gateway/sessions/default/reset", &token, Some(&gate("allow_session_write")));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(call(&d, "GET", "/gateway/sessions/default", &token, None).json()["messages"], json!([]));
    let r = call(&d, "POST", "/gateway/sessions/default/reset", &token, Some(&gate("nope")));
    assert_eq!(r.status, 403, "{}", r.body);

    // The memory document: any key reads; writing creates the session, listed at once.
    let r = call(&d, "GET", "/gateway/memory/fresh", &token, None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!((r.json()["exists"].as_bool(), r.json()["content"].as_str()), (Some(false), Some("")));
    let body = json!({"content": "operator memory note", "policy_gate": "allow_memory_write"});
    let r = call(&d, "PUT", "/gateway/memory/fresh", &token, Some(&body));
    assert_eq!(r.status, 200, "{}", r.body);
    let m = call(&d, "GET", "/gateway/memory/fresh", &token, None).json();
    assert_eq!(
        (m["exists"].as_bool(), m["content"].as_str()),
        (Some(true), Some("operator memory note")),
        "{m}"
    );
    assert_eq!(m["notes"][0]["name"], "content");
    let keys = call(&d, "GET", "/gateway/sessions", &token, None).json()["sessions"].to_string();
    assert!(keys.contains("\"fresh\""), "a key with memory is a session: {keys}");
    let r = call(&d, "PUT", "/gateway/memory/fresh", &token, Some(&json!({"content": "x"})));
    assert_eq!(r.json()["error"]["code"], "policy_gate_required", "{}", r.body);

    // Gates off in the config: refused with the key to change, whatever the body says.
    home.write_config(None, "[gateway.admin]\nallow_session_write = false\nallow_memory_write = false\n");
    gateway_tests::wait_for(std::time::Duration::from_secs(5), "the gates to close", || {
        let r = call(&d, "POST", "/gateway/sessions/default/reset", &token, None);
        (r.status == 403).then_some(r)
    });
    let r = call(
        &d,
        "POST",
        "/gateway/sessions/default/append",
        &token,
        Some(&json!({"role": "user", "content": "x", "policy_gate": "allow_session_write"})),
    );
    assert_eq!(r.json()["error"]["code"], "policy_gate_disabled", "{}", r.body);
    assert!(r.body.contains("gateway.admin.allow_session_write"), "{}", r.body);
    assert_eq!(call(&d, "DELETE", "/gateway/sessions/default", &token, None).status, 403);
    let r = call(&d, "PUT", "/gateway/memory/fresh/likes", &token, Some(&json!({"value": "tea"})));
    assert_eq!(r.json()["error"]["code"], "policy_gate_disabled", "{}", r.body);
    assert_eq!(call(&d, "DELETE", "/gateway/memory/fresh/content", &token, None).status, 403);
    // Reading is never gated.
    assert_eq!(call(&d, "GET", "/gateway/memory/fresh", &token, None).status, 200);
}
