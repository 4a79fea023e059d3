//! Conversations over the WebSocket protocol with the built-in echo model: `chat.send` and its
//! `chat` events, history across restarts, the two-stage `agent` with idempotent retries,
//! `sessions.*`, and the scopes they need.

use std::time::Duration;

use gateway_tests::ws::{Client, Connect, Device};
use gateway_tests::*;
use nix::sys::signal::Signal;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

/// The `chat` events of one run, up to and including its terminal one.
pub fn chat_events(c: &mut Client, run_id: &str) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let e = c.event_where("chat", WAIT, |e| e["payload"]["runId"] == run_id);
        let state = e["payload"]["state"].as_str().unwrap().to_owned();
        out.push(e["payload"].clone());
        if state != "delta" {
            return out;
        }
    }
}

fn texts(history: &Value) -> Vec<(String, String)> {
    history["payload"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap().to_owned(), m["text"].as_str().unwrap().to_owned()))
        .collect()
}

#[test]
fn echo_chat_streams_in_order_and_the_history_survives_a_restart() {
    let home = Home::new();
    let mut d = home.start_with("");
    let tok = home.token();
    let device = Device::new(7);
    let (mut c, hello) = Client::paired(d.port, &tok, &device);
    let methods = hello["payload"]["features"]["methods"].to_string();
    assert!(methods.contains("\"chat.send\"") && methods.contains("\"agent.wait\""), "{methods}");

    let models = c.request("models.list", json!({}));
    let echo = &models["payload"]["models"][0];
    assert_eq!(echo["id"], "echo/echo", "{models}");
    assert_eq!(echo["builtin"], true);
    assert!(echo["description"].as_str().unwrap().contains("built-in echo"), "{echo}");
    let agents = c.request("agents.list", json!({}));
    assert_eq!(agents["payload"]["agents"][0]["id"], "main", "{agents}");
    assert_eq!(agents["payload"]["agents"][0]["model"], "echo/echo");

    let text = "the quick brown fox jumps over the lazy dog";
    let res = c.request("chat.send", json!({ "sessionKey": "s1", "message": text, "idempotencyKey": "k1" }));
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["payload"]["status"], "started");
    let run_id = res["payload"]["runId"].as_str().unwrap().to_owned();
    assert_eq!(run_id, "k1");
    let events = chat_events(&mut c, &run_id);
    let states: Vec<&str> = events.iter().map(|e| e["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["delta", "delta", "delta", "final"], "{events:?}");
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [0, 1, 2, 3]);
    let streamed: String = events.iter().filter_map(|e| e["deltaText"].as_str()).collect();
    assert_eq!(streamed, text);
    let last = &events[3];
    assert_eq!(last["sessionKey"], "s1");
    assert_eq!(last["message"]["content"][0]["text"], text);
    assert_eq!(last["stopReason"], "stop");

    let second =
        c.request("chat.send", json!({ "sessionKey": "s1", "message": "again", "idempotencyKey": "k2" }));
    let run2 = second["payload"]["runId"].as_str().unwrap().to_owned();
    chat_events(&mut c, &run2);
    let want = vec![
        ("user".to_owned(), text.to_owned()),
        ("assistant".to_owned(), text.to_owned()),
        ("user".to_owned(), "again".to_owned()),
        ("assistant".to_owned(), "again".to_owned()),
    ];
    assert_eq!(texts(&c.request("chat.history", json!({ "sessionKey": "s1" }))), want);

    drop(c);
    d.signal(Signal::SIGTERM);
    assert!(d.wait_exit(WAIT).success());
    let d = home.start(&["--port", &d.port.to_string()]);
    let (mut c, _) = Client::paired(d.port, &tok, &device);
    assert_eq!(texts(&c.request("chat.history", json!({ "sessionKey": "s1" }))), want);
    // The key again, after the restart: the stored run, not a second one.
    let again =
        c.request("chat.send", json!({ "sessionKey": "s1", "message": text, "idempotencyKey": "k1" }));
    assert_eq!(again["payload"], json!({ "runId": "k1", "status": "in_flight" }), "{again}");
    assert_eq!(texts(&c.request("chat.history", json!({ "sessionKey": "s1" }))).len(), 4);
    let wait = c.request("agent.wait", json!({ "runId": run_id, "timeoutMs": 1000 }));
    assert_eq!(wait["payload"]["status"], "ok", "{wait}");
    assert_eq!(wait["payload"]["summary"], text);
}

#[test]
fn agent_answers_twice_and_a_retry_joins_the_same_run() {
    let home = Home::new();
    let d = home.start_with("");
    let (mut c, _) = Client::paired(d.port, &home.token(), &Device::new(8));

    let id = "agent-req-1";
    c.send(&json!({ "type": "req", "id": id, "method": "agent",
        "params": { "message": "hello agent", "idempotencyKey": "idem-1" } }));
    let accepted = c.response(id);
    assert_eq!(accepted["ok"], true, "{accepted}");
    assert_eq!(accepted["payload"]["status"], "accepted");
    let run_id = accepted["payload"]["runId"].as_str().unwrap().to_owned();
    assert_eq!(run_id, "idem-1", "the idempotency key is the run id");
    let done = c.response(id);
    assert_eq!(done["payload"]["status"], "ok", "{done}");
    assert_eq!(done["payload"]["runId"], run_id.as_str());
    assert_eq!(done["payload"]["summary"], "hello agent");
    let streams: Vec<(String, String)> = c
        .events
        .iter()
        .filter(|e| e["event"] == "agent" && e["payload"]["runId"] == run_id.as_str())
        .map(|e| {
            let p = &e["payload"];
            (p["stream"].as_str().unwrap().to_owned(), p["data"]["phase"].as_str().unwrap_or("").to_owned())
        })
        .collect();
    assert_eq!(streams.first().unwrap(), &("lifecycle".to_owned(), "start".to_owned()), "{streams:?}");
    assert_eq!(streams.last().unwrap(), &("lifecycle".to_owned(), "end".to_owned()));
    assert!(streams.iter().any(|(s, _)| s == "assistant"));

    // The same idempotency key again: the same run, not a second one.
    let retry = "agent-req-2";
    c.send(&json!({ "type": "req", "id": retry, "method": "agent",
        "params": { "message": "hello agent", "idempotencyKey": "idem-1" } }));
    assert_eq!(c.response(retry)["payload"]["runId"], run_id.as_str());
    let again = c.response(retry);
    assert_eq!(again["payload"]["status"], "ok", "{again}");
    assert_eq!(again["payload"]["runId"], run_id.as_str());
    let history = c.request("chat.history", json!({ "sessionKey": "agent:main:main" }));
    assert_eq!(history["payload"]["messages"].as_array().unwrap().len(), 2, "{history}");

    let wait = c.request("agent.wait", json!({ "runId": run_id }));
    assert_eq!(wait["payload"]["status"], "ok", "{wait}");
    let unknown = c.request("agent.wait", json!({ "runId": "run_nope", "timeoutMs": 10 }));
    assert_eq!(unknown["payload"]["status"], "timeout", "{unknown}");
    let missing = c.request("agent", json!({ "message": "x" }));
    assert_eq!(missing["error"]["code"], "INVALID_REQUEST", "{missing}");
    assert!(missing["error"]["message"].as_str().unwrap().contains("idempotencyKey"), "{missing}");
}

#[test]
fn sessions_can_be_created_listed_previewed_reset_and_deleted() {
    let home = Home::new();
    let d = home.start_with("");
    let (mut c, _) = Client::paired(d.port, &home.token(), &Device::new(9));

    let created = c.request("sessions.create", json!({ "key": "work", "label": "Work" }));
    assert_eq!(created["payload"], json!({ "key": "work", "created": true }), "{created}");
    let generated = c.request("sessions.create", json!({}));
    assert!(generated["payload"]["key"].as_str().unwrap().starts_with("session:"), "{generated}");
    let bad = c.request("sessions.create", json!({ "key": "x", "agentId": "ghost" }));
    assert!(bad["error"]["message"].as_str().unwrap().contains("unknown agent"), "{bad}");

    let run = c.request("chat.send", json!({ "sessionKey": "work", "message": "remember this" }));
    let run_id = run["payload"]["runId"].as_str().unwrap().to_owned();
    assert_eq!(chat_events(&mut c, &run_id).last().unwrap()["state"], "final");

    let list = c.request("sessions.list", json!({}));
    let work = list["payload"]["sessions"].as_array().unwrap().iter().find(|s| s["key"] == "work").cloned();
    let work = work.unwrap_or_else(|| panic!("{list}"));
    assert_eq!((work["label"].clone(), work["messageCount"].clone()), (json!("Work"), json!(2)));

    let preview = c.request("sessions.preview", json!({ "keys": ["work", "ghost"], "limit": 1 }));
    let previews = preview["payload"]["previews"].as_array().unwrap();
    assert_eq!(previews[0]["messages"][0]["text"], "remember this", "{preview}");
    assert_eq!(previews[0]["messages"].as_array().unwrap().len(), 1);
    assert_eq!(previews[1]["found"], false);

    // sessions.changed comes only after sessions.subscribe, in the reference's names too.
    assert!(!c.events.iter().any(|e| e["event"] == "sessions.changed"), "{:?}", c.events);
    assert_eq!(c.request("sessions.subscribe", json!({}))["payload"]["subscribed"], true);
    assert_eq!(c.request("sessions.reset", json!({ "key": "work" }))["payload"]["reset"], true);
    let history = c.request("chat.history", json!({ "sessionKey": "work" }));
    assert!(history["payload"]["messages"].as_array().unwrap().is_empty(), "{history}");
    let changed = c.event_where("sessions.changed", WAIT, |e| e["payload"]["change"] == "reset");
    assert_eq!(
        (&changed["payload"]["sessionKey"], &changed["payload"]["reason"]),
        (&json!("work"), &json!("reset"))
    );
    assert_eq!(c.request("sessions.unsubscribe", json!({}))["payload"]["subscribed"], false);
    assert_eq!(c.request("sessions.delete", json!({ "key": "work" }))["payload"]["deleted"], true);
    assert_eq!(c.request("sessions.delete", json!({ "key": "work" }))["payload"]["deleted"], false);
}

#[test]
fn reading_needs_read_scope_and_running_needs_write() {
    let home = Home::new();
    let d = home.start_with("");
    let tok = home.token();
    let device = Device::new(10);
    let (mut reader, hello) = Client::connect(
        d.port,
        &Connect {
            token: Some(&tok),
            device: Some(&device),
            scopes: &["operator.read"],
            ..Default::default()
        },
    );
    assert_eq!(hello["ok"], true, "{hello}");
    assert_eq!(reader.request("sessions.list", json!({}))["ok"], true);
    assert_eq!(reader.request("chat.history", json!({ "sessionKey": "s" }))["ok"], true);
    for (method, params) in [
        ("chat.send", json!({ "sessionKey": "s", "message": "hi" })),
        ("agent", json!({ "message": "hi", "idempotencyKey": "k" })),
        ("sessions.delete", json!({ "key": "s" })),
    ] {
        let res = reader.request(method, params);
        assert_eq!(res["error"]["code"], "FORBIDDEN", "{method}: {res}");
        assert_eq!(res["error"]["details"]["missingScope"], "operator.write", "{res}");
    }
    let res = reader.request("chat.send", json!({ "sessionKey": "s", "message": "   " }));
    assert_eq!(res["error"]["code"], "FORBIDDEN", "scope is checked before the params");

    let (mut writer, _) = Client::paired(d.port, &tok, &Device::new(11));
    let res = writer.request("chat.send", json!({ "sessionKey": "s", "message": "hi", "model": "nope/x" }));
    assert_eq!(res["error"]["code"], "INVALID_REQUEST", "{res}");
    assert_eq!(res["error"]["details"]["code"], "model_not_found", "{res}");
    let res = writer.request("chat.send", json!({ "sessionKey": "s", "message": "" }));
    assert!(res["error"]["message"].as_str().unwrap().contains("empty"), "{res}");
}

/// On SIGTERM a client whose run is still going gets that run's `aborted` `chat` event, then
/// `shutdown`, then close 1012, in that order.
#[test]
fn a_run_in_progress_at_shutdown_ends_aborted_before_the_close() {
    let up = gateway_tests::upstream::Upstream::start();
    let config = gateway_tests::upstream::upstream_provider(&up, &["stall-after-1"]);
    let home = Home::new();
    let mut d = home.start_with(&config);
    let tok = home.token();
    let (mut c, _) = Client::paired(d.port, &tok, &Device::new(11));
    let res = c.request(
        "chat.send",
        json!({ "sessionKey": "s-stop", "message": "hello", "model": "up/stall-after-1", "idempotencyKey": "stop-1" }),
    );
    assert_eq!(res["ok"], true, "{res}");
    let first = c.event_where("chat", WAIT, |e| e["payload"]["runId"] == "stop-1");
    assert_eq!(first["payload"]["state"], "delta", "{first}");
    d.signal(Signal::SIGTERM);
    let (code, _) = c.closed();
    assert_eq!(code, 1012);
    let order: Vec<String> = c
        .events
        .iter()
        .filter_map(|e| match e["event"].as_str()? {
            "chat" if e["payload"]["runId"] == "stop-1" => {
                Some(format!("chat:{}", e["payload"]["state"].as_str()?))
            }
            "shutdown" => Some("shutdown".to_owned()),
            _ => None,
        })
        .filter(|s| s != "chat:delta")
        .collect();
    assert_eq!(order, ["chat:aborted", "shutdown"], "{:?}", c.events);
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn memory_notes_and_direct_tool_calls_over_the_websocket_follow_the_gates() {
    let home = Home::new();
    let d = home.start_with("[tools]\nhttp_deny = [\"fetch\"]\n");
    let tok = home.token();
    let (mut c, _) = Client::paired(d.port, &tok, &Device::new(11));
    let put = c.request("memory.put", json!({ "sessionKey": "notes", "name": "colour", "value": "blue" }));
    assert_eq!(put["payload"]["saved"], true, "{put}");
    let list = c.request("memory.list", json!({ "sessionKey": "notes" }));
    assert_eq!(list["payload"]["notes"][0]["value"], "blue", "{list}");
    let sessions = c.request("sessions.list", json!({}));
    assert!(sessions.to_string().contains("\"notes\""), "a note creates its session: {sessions}");
    let deleted = c.request("memory.delete", json!({ "sessionKey": "notes", "name": "colour" }));
    assert_eq!(deleted["payload"]["deleted"], true);
    let missing = c.request("memory.put", json!({ "sessionKey": "notes", "name": "x" }));
    assert!(missing["error"]["message"].as_str().unwrap().contains("needs \"value\""), "{missing}");

    let dry = c.request("tools.invoke", json!({ "tool": "time", "dryRun": true }));
    assert_eq!(dry["payload"], json!({ "ok": true, "tool": "time", "dryRun": true }));
    let ran = c.request("tools.invoke", json!({ "tool": "time" }));
    assert!(ran["payload"]["result"]["unixMs"].as_u64().unwrap() > 0, "{ran}");
    let denied = c.request("tools.invoke", json!({ "tool": "fetch", "dryRun": true }));
    assert_eq!(denied["error"]["details"]["code"], "tool_denied", "{denied}");
    let session = c.request("tools.invoke", json!({ "tool": "memory_read", "dryRun": true }));
    assert_eq!(session["error"]["details"]["code"], "invalid_request", "{session}");

    // The admin gates close these doors too.
    home.write_config(
        None,
        "[tools]\nhttp_deny = [\"fetch\"]\n\n[gateway.admin]\nallow_memory_write = false\nallow_session_write = false\n",
    );
    assert!(home.ctl(&["reload"]).status.success());
    let refused = c.request("memory.put", json!({ "sessionKey": "notes", "name": "a", "value": "b" }));
    assert_eq!(refused["error"]["details"]["code"], "policy_gate_disabled", "{refused}");
    let reset = c.request("sessions.reset", json!({ "key": "notes" }));
    assert!(reset["error"]["message"].as_str().unwrap().contains("allow_session_write"), "{reset}");
    assert_eq!(
        c.request("memory.list", json!({ "sessionKey": "notes" }))["ok"],
        true,
        "reading is never gated"
    );
}
