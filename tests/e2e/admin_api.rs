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
