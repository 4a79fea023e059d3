//! The openai and anthropic providers against the fake upstream, through the real daemon over
//! the WebSocket protocol: streamed and not, retries, upstream faults with clear errors, the
//! tool loop, one run at a time per session, and aborts that close the upstream connection.

use std::time::Duration;

use gateway_tests::api::{post, start_gateway};
use gateway_tests::upstream::{upstream_provider, Upstream};
use gateway_tests::ws::{Client, Device};
use gateway_tests::*;
use serde_json::{json, Value};

use crate::chat_ws::chat_events;

const WAIT: Duration = Duration::from_secs(30);

/// A daemon whose providers all point at `up`: `up` (openai, streamed), `plain` (openai, not
/// streamed), `claude` and `claude_plain` (anthropic), `nowhere` (nobody listens).
fn gateway(up: &Upstream, home: &Home, models: &[&str]) -> Daemon {
    let mut models = models.to_vec();
    if !models.contains(&"echo") {
        models.push("echo");
    }
    let list = serde_json::to_string(&models).unwrap();
    let common = format!(
        "models = {list}\nfirst_byte_timeout_ms = 1500\nidle_timeout_ms = 1500\nmax_retries = 2\nretry_backoff_ms = 10\nconnect_timeout_ms = 1000\n"
    );
    let config = format!(
        r#"
[models]
default = "up/echo"
[models.providers.up]
kind = "openai"
base_url = "{openai}"
api_key = "env:UPSTREAM_TEST_KEY"
{common}
[models.providers.plain]
kind = "openai"
base_url = "{openai}"
stream = false
{common}
[models.providers.claude]
kind = "anthropic"
base_url = "{url}"
api_key = "env:UPSTREAM_TEST_KEY"
{common}
[models.providers.claude_plain]
kind = "anthropic"
base_url = "{url}"
stream = false
{common}
[models.providers.nowhere]
kind = "openai"
base_url = "http://127.0.0.1:{dead}/v1"
{common}
"#,
        openai = up.openai_base_url(),
        url = up.url(),
        dead = free_port(),
    );
    home.write_config(None, &config);
    let port = free_port().to_string();
    let d = home.spawn(&["--port", &port], |c| {
        c.env("UPSTREAM_TEST_KEY", "sk-test-123");
    });
    d.wait_ready();
    d
}

fn send(c: &mut Client, session: &str, model: &str, message: &str) -> String {
    let res = c.request("chat.send", json!({ "sessionKey": session, "message": message, "model": model }));
    assert_eq!(res["ok"], true, "{res}");
    res["payload"]["runId"].as_str().unwrap().to_owned()
}

/// Sends and returns the run's events.
fn chat(c: &mut Client, session: &str, model: &str, message: &str) -> Vec<Value> {
    let run = send(c, session, model, message);
    chat_events(c, &run)
}

fn streamed(events: &[Value]) -> String {
    events.iter().filter_map(|e| e["deltaText"].as_str()).collect()
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn openai_streamed_and_not_sends_the_history_and_the_key() {
    let up = Upstream::start();
    let home = Home::new();
    let d = gateway(&up, &home, &["echo", "gpt-test"]);
    let (mut c, _) = Client::paired(d.port, &home.token(), &Device::new(20));

    let events = chat(&mut c, "s", "up/echo", "one two three four five");
    let last = events.last().unwrap();
    assert_eq!(last["state"], "final", "{events:?}");
    assert!(events.len() > 2, "streamed in pieces: {events:?}");
    assert_eq!(streamed(&events), "one two three four five");
    assert_eq!(last["message"]["content"][0]["text"], "one two three four five");

    let events = chat(&mut c, "s", "plain/gpt-test", "six seven");
    assert_eq!(events.last().unwrap()["state"], "final", "{events:?}");
    assert_eq!(streamed(&events), "six seven");

    let reqs = up.requests_to("/chat/completions");
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].body["stream"], true);
    assert_eq!(reqs[0].body["model"], "echo");
    assert_eq!(reqs[0].header("authorization"), Some("Bearer sk-test-123"));
    assert_eq!(reqs[1].body["stream"], false);
    assert_eq!(reqs[1].header("authorization"), None, "no key configured, none sent");
    // The second turn carries the first one.
    let roles: Vec<&str> =
        reqs[1].body["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant", "user"]);
    assert_eq!(reqs[1].body["messages"][1]["content"], "one two three four five");
    let log = d.stderr();
    assert!(!log.contains("sk-test-123"), "the key never reaches the log");
}

#[test]
fn anthropic_streamed_and_not() {
    let up = Upstream::start();
    let home = Home::new();
    let d = gateway(&up, &home, &["echo", "tool-time"]);
    let (mut c, _) = Client::paired(d.port, &home.token(), &Device::new(21));

    let events = chat(&mut c, "a", "claude/echo", "hello from anthropic");
    assert_eq!(events.last().unwrap()["state"], "final", "{events:?}");
    assert_eq!(streamed(&events), "hello from anthropic");
    let events = chat(&mut c, "a", "claude_plain/echo", "and again");
    assert_eq!(events.last().unwrap()["message"]["content"][0]["text"], "and again", "{events:?}");

    // Tool use: the gateway runs the tool and answers with a tool_result block.
    let events = chat(&mut c, "a", "claude/tool-time", "what time is it");
    let text = events.last().unwrap()["message"]["content"][0]["text"].as_str().unwrap().to_owned();
    assert!(text.starts_with("tool time returned:") && text.contains("unixMs"), "{events:?}");
    let reqs = up.requests_to("/messages");
    let second = &reqs[3].body;
    let last = second["messages"].as_array().unwrap().last().unwrap();
    assert_eq!(last["role"], "user", "{second}");
    assert_eq!(last["content"][0]["type"], "tool_result", "{second}");
    let asked = &second["messages"].as_array().unwrap()[second["messages"].as_array().unwrap().len() - 2];
    assert_eq!(asked["content"].as_array().unwrap().last().unwrap()["type"], "tool_use", "{second}");
    assert_eq!(reqs[2].body["tools"][0]["input_schema"]["type"], "object");

    assert_eq!(reqs.len(), 4);
    assert_eq!(reqs[0].path, "/v1/messages");
    assert_eq!(reqs[0].body["stream"], true);
    assert_eq!(reqs[0].header("x-api-key"), Some("sk-test-123"));
    assert_eq!(reqs[0].header("anthropic-version"), Some("2023-06-01"));
    assert!(reqs[0].body["max_tokens"].as_u64().unwrap() > 0);
    assert_eq!(reqs[1].body["stream"], false);
    assert_eq!(reqs[1].body["messages"].as_array().unwrap().len(), 3);
}

#[test]
fn retries_on_429_and_500_then_clear_errors_for_every_fault() {
    let up = Upstream::start();
    let home = Home::new();
    let models = [
        "fault-429-then-ok",
        "fault-500",
        "fault-400",
        "slow-first-byte-5000",
        "stall-after-2",
        "hangup",
        "echo",
    ];
    let d = gateway(&up, &home, &models);
    let (mut c, _) = Client::paired(d.port, &home.token(), &Device::new(22));
    chat(&mut c, "warm", "up/echo", "warm");
    let baseline = fd_count(d.pid());

    let events = chat(&mut c, "r", "up/fault-429-then-ok", "made it");
    assert_eq!(events.last().unwrap()["state"], "final", "{events:?}");
    assert_eq!(streamed(&events), "made it");
    assert_eq!(up.requests().iter().filter(|r| r.body["model"] == "fault-429-then-ok").count(), 2);

    let error = |events: &[Value]| {
        let last = events.last().unwrap().clone();
        assert_eq!(last["state"], "error", "{events:?}");
        (last["errorCode"].as_str().unwrap().to_owned(), last["errorMessage"].as_str().unwrap().to_owned())
    };
    let (code, message) = error(&chat(&mut c, "r", "up/fault-500", "x"));
    assert_eq!(code, "upstream_error");
    assert!(message.contains("500") && message.contains("after 2 retries"), "{message}");
    assert_eq!(up.requests().iter().filter(|r| r.body["model"] == "fault-500").count(), 3);

    let (code, message) = error(&chat(&mut c, "r", "up/fault-400", "x"));
    assert_eq!(code, "upstream_error");
    assert!(message.contains("400"), "{message}");
    assert_eq!(
        up.requests().iter().filter(|r| r.body["model"] == "fault-400").count(),
        1,
        "4xx is not retried"
    );

    let (code, message) = error(&chat(&mut c, "r", "nowhere/echo", "x"));
    assert_eq!(code, "upstream_unavailable");
    assert!(message.contains("cannot reach") && message.contains("base_url"), "{message}");

    let (code, message) = error(&chat(&mut c, "r", "up/slow-first-byte-5000", "x"));
    assert_eq!(code, "timeout");
    assert!(message.contains("first byte"), "{message}");

    let events = chat(&mut c, "r", "up/stall-after-2", "a b c d e f");
    assert!(!streamed(&events).is_empty(), "the text before the stall was passed on: {events:?}");
    let (code, message) = error(&events);
    assert_eq!(code, "timeout");
    assert!(message.contains("idle"), "{message}");
    assert_eq!(
        up.requests().iter().filter(|r| r.body["model"] == "stall-after-2").count(),
        1,
        "never retried once text reached the client"
    );

    let (code, _) = error(&chat(&mut c, "r", "up/hangup", "x"));
    assert_eq!(code, "upstream_unavailable");

    // No run is left behind, and the upstream connections of the failed calls are closed.
    up.wait_open_connections_at_most(1, WAIT);
    wait_for(WAIT, "the daemon's descriptors back to the baseline", || {
        (fd_count(d.pid()) <= baseline).then_some(())
    });
    let events = chat(&mut c, "r", "up/echo", "still fine");
    assert_eq!(events.last().unwrap()["state"], "final");
}

#[test]
fn abort_mid_stream_closes_the_upstream_connection_and_frees_descriptors() {
    let up = Upstream::start();
    let home = Home::new();
    let d = gateway(&up, &home, &["chunk-delay-200+words-200", "echo"]);
    let (mut c, _) = Client::paired(d.port, &home.token(), &Device::new(23));
    // Warm up: the pool's connection and the database are open from here on.
    chat(&mut c, "warm", "up/echo", "warm");
    let baseline = fd_count(d.pid());

    let run = send(&mut c, "x", "up/chunk-delay-200+words-200", "long");
    c.event_where("chat", WAIT, |e| {
        e["payload"]["runId"] == run.as_str() && e["payload"]["state"] == "delta"
    });
    assert!(up.open_streams() >= 1);
    let res = c.request("chat.abort", json!({ "sessionKey": "x" }));
    assert_eq!(res["payload"]["runIds"], json!([run]), "{res}");
    let last = chat_events(&mut c, &run).last().unwrap().clone();
    assert_eq!(last["state"], "aborted", "{last}");
    wait_for(WAIT, "the upstream stream to be closed", || (up.open_streams() == 0).then_some(()));
    up.wait_open_connections_at_most(1, WAIT);
    wait_for(WAIT, "the daemon's descriptors back to the baseline", || {
        (fd_count(d.pid()) <= baseline).then_some(())
    });
    let wait = c.request("agent.wait", json!({ "runId": run }));
    assert_eq!(wait["payload"]["status"], "aborted", "{wait}");
    assert_eq!(c.request("chat.abort", json!({ "runId": run }))["payload"]["aborted"], false);
}

#[test]
fn one_run_at_a_time_per_session_in_order() {
    let up = Upstream::start();
    let home = Home::new();
    let d = gateway(&up, &home, &["chunk-delay-50"]);
    let (mut c, _) = Client::paired(d.port, &home.token(), &Device::new(24));

    let model = "up/chunk-delay-50";
    let first = send(&mut c, "q", model, "first message here");
    let second = send(&mut c, "q", model, "second message");
    let third = send(&mut c, "q", model, "never sent upstream");
    let other = send(&mut c, "other", model, "elsewhere");
    // A queued run can be aborted before it starts: it never reaches the upstream.
    let res = c.request("chat.abort", json!({ "runId": third }));
    assert_eq!(res["payload"]["aborted"], true, "{res}");
    chat_events(&mut c, &second);
    // Another session is not held up by the queue of this one.
    assert_eq!(c.request("agent.wait", json!({ "runId": other }))["payload"]["status"], "ok");
    let order: Vec<(String, String)> = c
        .events
        .iter()
        .filter(|e| e["event"] == "chat" && e["payload"]["sessionKey"] == "q")
        .map(|e| {
            (
                e["payload"]["runId"].as_str().unwrap().to_owned(),
                e["payload"]["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let first_final = order.iter().position(|(r, s)| *r == first && s == "final").expect("first ended");
    let second_start = order.iter().position(|(r, _)| *r == second).unwrap();
    assert!(first_final < second_start, "the second run waited for the first: {order:?}");

    assert_eq!(c.request("agent.wait", json!({ "runId": third }))["payload"]["status"], "aborted");
    assert!(!up.requests().iter().any(|r| r.body.to_string().contains("never sent upstream")));

    // The second call saw the first turn complete, in order.
    let reqs = up.requests_to("/chat/completions");
    let second_req =
        reqs.iter().find(|r| r.body["messages"].as_array().unwrap().len() == 3).expect("3 messages");
    let contents: Vec<&str> = second_req.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["first message here", "first message here", "second message"]);
}

#[test]
fn the_tool_loop_runs_a_built_in_tool_and_continues() {
    let up = Upstream::start();
    let home = Home::new();
    let d = gateway(&up, &home, &["tool-time", "tool-memory_write", "tool-nope"]);
    let (mut c, _) = Client::paired(d.port, &home.token(), &Device::new(25));

    let id = "tool-run";
    c.send(&json!({ "type": "req", "id": id, "method": "agent",
        "params": { "message": "what time is it", "idempotencyKey": "t1", "model": "up/tool-time", "sessionKey": "t" } }));
    assert_eq!(c.response(id)["payload"]["status"], "accepted");
    let done = c.response(id);
    assert_eq!(done["payload"]["status"], "ok", "{done}");
    let summary = done["payload"]["summary"].as_str().unwrap();
    assert!(summary.starts_with("tool time returned:") && summary.contains("unixMs"), "{summary}");
    let tools: Vec<&Value> =
        c.events.iter().filter(|e| e["event"] == "agent" && e["payload"]["stream"] == "tool").collect();
    assert_eq!(tools.len(), 2, "{tools:?}");
    assert_eq!(tools[0]["payload"]["data"]["phase"], "start");
    assert_eq!(tools[1]["payload"]["data"]["name"], "time");
    assert_eq!(tools[1]["payload"]["data"]["isError"], false);

    let reqs = up.requests_to("/chat/completions");
    assert_eq!(reqs.len(), 2);
    let offered: Vec<&str> = reqs[0].body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert!(
        offered.contains(&"time") && offered.contains(&"memory_write") && !offered.contains(&"fetch"),
        "{offered:?}"
    );
    let roles: Vec<&str> =
        reqs[1].body["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant", "tool"]);

    // A memory note written by the model lands in the session's memory.
    let res = c.request(
        "chat.send",
        json!({ "sessionKey": "t", "model": "up/tool-memory_write", "message": "{\"name\":\"color\",\"value\":\"blue\"}" }),
    );
    let run = res["payload"]["runId"].as_str().unwrap().to_owned();
    assert_eq!(chat_events(&mut c, &run).last().unwrap()["state"], "final");
    let history = c.request("chat.history", json!({ "sessionKey": "t" }));
    let tool_msgs: Vec<&Value> =
        history["payload"]["messages"].as_array().unwrap().iter().filter(|m| m["role"] == "tool").collect();
    assert!(tool_msgs.last().unwrap()["text"].as_str().unwrap().contains("saved"), "{history}");

    // A tool the gateway does not have is the caller's: the run ends asking for it.
    let res = c.request("chat.send", json!({ "sessionKey": "t", "model": "up/tool-nope", "message": "x" }));
    let run = res["payload"]["runId"].as_str().unwrap().to_owned();
    let last = chat_events(&mut c, &run).last().unwrap().clone();
    assert_eq!(last["stopReason"], "tool_calls", "{last}");
    assert_eq!(last["message"]["toolCalls"][0]["name"], "nope");
}

#[test]
fn providers_apply_on_reload_and_bad_model_references_are_refused_with_the_line() {
    use std::os::unix::fs::PermissionsExt;
    let up = Upstream::start();
    let home = Home::new();
    let d = home.start_with("");
    let (mut c, _) = Client::paired(d.port, &home.token(), &Device::new(26));
    let ids = |c: &mut Client| -> Vec<String> {
        let models = c.request("models.list", json!({}));
        models["payload"]["models"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&mut c), ["echo/echo"]);

    // A literal key in a file others can read is flagged (never shown).
    let config = format!(
        "[models]\ndefault = \"up/echo\"\n[models.providers.up]\nkind = \"openai\"\nbase_url = \"{}\"\napi_key = \"sk-literal-456\"\nmodels = [\"echo\"]\n",
        up.openai_base_url()
    );
    home.write_config(None, &config);
    std::fs::set_permissions(home.config_file(None), std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = home.ctl(&["reload"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(ids(&mut c), ["echo/echo", "up/echo"]);
    let events = chat(&mut c, "h", "up/echo", "via the reloaded provider");
    assert_eq!(events.last().unwrap()["state"], "final", "{events:?}");
    assert_eq!(up.requests_to("/chat/completions")[0].header("authorization"), Some("Bearer sk-literal-456"));
    let agents = c.request("agents.list", json!({}));
    assert_eq!(agents["payload"]["agents"][0]["model"], "up/echo", "{agents}");

    // A default naming a model nobody offers: the reload is refused, the old config serves on.
    home.write_config(None, &config.replace("default = \"up/echo\"", "default = \"up/missing\""));
    let out = home.ctl(&["reload"]);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "{text}");
    assert!(text.contains(":2:") && text.contains("models.default") && text.contains("up/missing"), "{text}");
    assert_eq!(ids(&mut c), ["echo/echo", "up/echo"]);
    drop(c);

    let mut d = d;
    d.signal(nix::sys::signal::Signal::SIGTERM);
    d.wait_exit(WAIT);
    home.write_config(None, &config);
    std::fs::set_permissions(home.config_file(None), std::fs::Permissions::from_mode(0o644)).unwrap();
    let d = home.start(&["--port", &free_port().to_string()]);
    let log = d.stderr();
    assert!(log.contains("models.providers.up.api_key") && log.contains("chmod 600"), "{log}");
    assert!(!log.contains("sk-literal-456"), "{log}");
}

#[test]
fn the_global_cap_holds_runs_of_other_sessions() {
    let up = Upstream::start();
    let home = Home::new();
    home.write_config(
        None,
        &format!(
            "[runs]\nmax_concurrent = 1\n[models.providers.up]\nkind = \"openai\"\nbase_url = \"{}\"\nmodels = [\"chunk-delay-50\"]\n",
            up.openai_base_url()
        ),
    );
    let d = home.start(&["--port", &free_port().to_string()]);
    let (mut c, _) = Client::paired(d.port, &home.token(), &Device::new(27));
    let model = "up/chunk-delay-50";
    let a = send(&mut c, "one", model, "a b c d");
    // `a` holds the only slot once it streams.
    c.event_where("chat", WAIT, |e| e["payload"]["runId"] == a.as_str() && e["payload"]["state"] == "delta");
    let b = send(&mut c, "two", model, "e f g h");
    chat_events(&mut c, &b);
    let order: Vec<(String, String)> = c
        .events
        .iter()
        .filter(|e| e["event"] == "chat")
        .map(|e| {
            let p = &e["payload"];
            (p["runId"].as_str().unwrap().to_owned(), p["state"].as_str().unwrap().to_owned())
        })
        .collect();
    let a_final = order.iter().position(|(r, s)| *r == a && s == "final").expect("a ended first");
    let b_first = order.iter().position(|(r, _)| *r == b).unwrap();
    assert!(a_final < b_first, "one run at a time across sessions: {order:?}");
}

/// An upstream that echoes the key it was given in its error (some servers and proxies do):
/// the error the caller gets, and the log, say what failed without the key.
#[test]
fn an_upstream_echoing_the_key_does_not_pass_it_on() {
    let up = Upstream::builder().api_key("sk-the-right-one").start().unwrap();
    let config = format!("{}api_key = \"sk-wrong-key-789\"\n", upstream_provider(&up, &["echo"]));
    let (_home, d, token) = start_gateway(&config);
    let r = post(
        &d,
        "/v1/chat/completions",
        &token,
        &json!({"model": "up/echo", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(r.status, 502, "{}", r.body);
    let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("401") && message.contains("[api_key redacted]"), "{message}");
    assert!(!r.body.contains("sk-wrong-key-789"), "{}", r.body);
    assert!(!d.stderr().contains("sk-wrong-key-789"), "the key never reaches the log");
}
