//! `/v1/responses` (OpenResponses) against the real daemon: whole objects, the streamed event
//! sequence, stored responses and chains, function calls, failures and disconnects.

use std::time::Duration;

use gateway_tests::api::*;
use gateway_tests::http1;
use gateway_tests::upstream::{upstream_provider, Upstream};
use gateway_tests::*;
use serde_json::{json, Value};

/// The fields the OpenResponses specification requires of a Response object.
const REQUIRED: &[&str] = &[
    "id",
    "object",
    "created_at",
    "completed_at",
    "status",
    "incomplete_details",
    "model",
    "previous_response_id",
    "instructions",
    "output",
    "error",
    "tools",
    "tool_choice",
    "truncation",
    "parallel_tool_calls",
    "text",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "top_logprobs",
    "temperature",
    "reasoning",
    "user",
    "usage",
    "max_output_tokens",
    "max_tool_calls",
    "store",
    "background",
    "service_tier",
    "metadata",
    "safety_identifier",
    "prompt_cache_key",
];

fn assert_complete(response: &Value) {
    for key in REQUIRED {
        assert!(response.get(key).is_some(), "Response object without {key}: {response}");
    }
    assert_eq!(response["object"], "response");
}

/// The named events of a streamed response, each with its JSON data.
fn named_events(r: &http1::Reply) -> Vec<(String, Value)> {
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.header("content-type").unwrap().starts_with("text/event-stream"));
    http1::sse(&r.body)
        .into_iter()
        .map(|(name, data)| (name.expect("every event is named"), serde_json::from_str(&data).unwrap()))
        .collect()
}

fn output_text(response: &Value) -> String {
    response["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["type"] == "message")
        .flat_map(|i| i["content"].as_array().unwrap().iter())
        .filter_map(|p| p["text"].as_str())
        .collect()
}

#[test]
fn a_response_is_complete_and_stored() {
    let (_home, d, token) = start_gateway("");
    let r = post(
        &d,
        "/v1/responses",
        &token,
        &json!({"model": "echo/echo", "input": "hi there", "metadata": {"k": "v"}, "top_k": 3}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-gateway-ignored-fields"), Some("top_k"));
    let resp = r.json();
    assert_complete(&resp);
    assert!(resp["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(resp["status"], "completed");
    assert_eq!(resp["model"], "echo/echo");
    assert_eq!(resp["metadata"], json!({"k": "v"}));
    assert!(resp["completed_at"].as_u64().unwrap() >= resp["created_at"].as_u64().unwrap());
    let item = &resp["output"][0];
    assert_eq!(item["type"], "message");
    assert_eq!(item["role"], "assistant");
    assert_eq!(item["status"], "completed");
    assert_eq!(
        item["content"][0],
        json!({"type": "output_text", "text": "hi there", "annotations": [], "logprobs": []})
    );
    assert_eq!(resp["usage"]["output_tokens"], 2);
    assert_eq!(
        resp["usage"]["total_tokens"].as_u64().unwrap(),
        resp["usage"]["input_tokens"].as_u64().unwrap() + 2
    );

    let id = resp["id"].as_str().unwrap();
    let stored = call(&d, "GET", &format!("/v1/responses/{id}"), &token, None);
    assert_eq!(stored.status, 200);
    // The stored object is the response; what the request carried that was ignored is said in
    // the answer to that request only.
    let mut answered = resp.clone();
    assert_eq!(answered.as_object_mut().unwrap().remove("ignored_fields"), Some(json!(["top_k"])));
    assert_eq!(stored.json(), answered);

    // store: false keeps nothing.
    let r = post(&d, "/v1/responses", &token, &json!({"model": "echo/echo", "input": "x", "store": false}));
    assert_eq!(r.json()["store"], false);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let missing = call(&d, "GET", &format!("/v1/responses/{id}"), &token, None);
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"]["code"], "response_not_found");
    assert_eq!(call(&d, "GET", "/v1/responses/resp_nope", "", None).status, 401);

    // Deleted: gone, and a second delete finds nothing.
    let path = format!("/v1/responses/{}", resp["id"].as_str().unwrap());
    let r = call(&d, "DELETE", &path, &token, None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["deleted"], true);
    assert_eq!(call(&d, "GET", &path, &token, None).status, 404);
    assert_eq!(call(&d, "DELETE", &path, &token, None).status, 404);
}

#[test]
fn the_streamed_event_sequence() {
    let (_home, d, token) = start_gateway("");
    let r = post(
        &d,
        "/v1/responses",
        &token,
        &json!({"model": "echo/echo", "stream": true, "instructions": "be kind",
            "input": [{"role": "user", "content": [{"type": "input_text", "text": "one two three four five six"}]}]}),
    );
    let events = named_events(&r);
    for (i, (name, data)) in events.iter().enumerate() {
        assert_eq!(data["type"], name.as_str());
        assert_eq!(data["sequence_number"], i as u64, "{name}");
    }
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    let deltas = names.iter().filter(|n| **n == "response.output_text.delta").count();
    assert!(deltas >= 2, "{names:?}");
    let mut expected = vec![
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ];
    expected.extend(std::iter::repeat_n("response.output_text.delta", deltas));
    expected.extend([
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]);
    assert_eq!(names, expected);

    let created = &events[0].1["response"];
    assert_complete(created);
    assert_eq!(created["status"], "in_progress");
    assert_eq!(created["instructions"], "be kind");
    let item_id = events[2].1["item"]["id"].clone();
    for (_, data) in &events[3..events.len() - 1] {
        if let Some(id) = data.get("item_id") {
            assert_eq!(id, &item_id);
            assert_eq!(data["output_index"], 0);
        }
    }
    let text: String = events.iter().filter_map(|(_, d)| d["delta"].as_str()).collect();
    assert_eq!(text, "one two three four five six");
    assert_eq!(events[events.len() - 4].1["text"], text);
    let done = &events.last().unwrap().1["response"];
    assert_complete(done);
    assert_eq!(done["status"], "completed");
    assert_eq!(output_text(done), text);
    let id = done["id"].as_str().unwrap();
    assert_eq!(&call(&d, "GET", &format!("/v1/responses/{id}"), &token, None).json(), done);
}

/// Session continuity as the runbook states it: `metadata.session_id`, then `conversation`
/// (a string or `{id}`), then `previous_response_id`; ignored fields listed in the body.
#[test]
fn metadata_session_id_then_conversation_then_previous_response_id() {
    let (_home, d, token) = start_gateway("");
    let ask = |body: Value| {
        let r = post(&d, "/v1/responses", &token, &body);
        assert_eq!(r.status, 200, "{}", r.body);
        r
    };
    let first = ask(json!({"model": "echo/echo", "input": "one", "metadata": {"session_id": "desk"}}));
    assert_eq!(first.header("x-gateway-session-key"), Some("desk"));
    let id1 = first.json()["id"].as_str().unwrap().to_owned();
    // metadata.session_id wins over conversation and previous_response_id.
    let r = ask(json!({"model": "echo/echo", "input": "two", "metadata": {"session_id": "desk"},
                       "conversation": "other", "previous_response_id": id1}));
    assert_eq!(r.header("x-gateway-session-key"), Some("desk"));
    assert_eq!(r.json()["ignored_fields"], Value::Null, "nothing was ignored: {}", r.body);
    let session = wait_messages(&d, &token, "desk", 4);
    let contents: Vec<String> = transcript(&session).into_iter().map(|(_, c)| c).collect();
    assert_eq!(contents, ["one", "one", "two", "two"]);

    // conversation, as a string or an object, over previous_response_id.
    let r = ask(
        json!({"model": "echo/echo", "input": "a", "conversation": "conv_1", "previous_response_id": id1}),
    );
    assert_eq!(r.header("x-gateway-session-key"), Some("conv_1"));
    let r = ask(json!({"model": "echo/echo", "input": "b", "conversation": {"id": "conv_1"}}));
    assert_eq!(r.header("x-gateway-session-key"), Some("conv_1"));
    wait_messages(&d, &token, "conv_1", 4);
    // previous_response_id alone: the chain's session (here, desk's).
    let r = ask(json!({"model": "echo/echo", "input": "three", "previous_response_id": id1}));
    assert_eq!(r.header("x-gateway-session-key"), Some("desk"));

    // Unknown fields are listed in the JSON body, as on the other routes.
    let r = ask(json!({"model": "echo/echo", "input": "x", "frobnicate": 1, "store": false}));
    assert_eq!(r.json()["ignored_fields"], json!(["frobnicate"]), "{}", r.body);
    let bad =
        post(&d, "/v1/responses", &token, &json!({"model": "echo/echo", "input": "x", "conversation": ""}));
    assert_eq!(
        (bad.status, bad.json()["error"]["param"].as_str()),
        (400, Some("conversation")),
        "{}",
        bad.body
    );
}

#[test]
fn previous_response_id_continues_one_session() {
    let (_home, d, token) = start_gateway("");
    let first = post(&d, "/v1/responses", &token, &json!({"model": "echo/echo", "input": "first"})).json();
    let id1 = first["id"].as_str().unwrap();
    let second = post(
        &d,
        "/v1/responses",
        &token,
        &json!({"model": "echo/echo", "input": "second", "previous_response_id": id1}),
    );
    assert_eq!(second.status, 200, "{}", second.body);
    let second = second.json();
    assert_eq!(second["previous_response_id"], id1);
    assert_eq!(output_text(&second), "second");
    let id2 = second["id"].as_str().unwrap();
    post(
        &d,
        "/v1/responses",
        &token,
        &json!({"model": "echo/echo", "input": "third", "previous_response_id": id2}),
    );

    // One session per chain, named after its first response.
    let session = wait_messages(&d, &token, &format!("resp:{id1}"), 6);
    let contents: Vec<String> = transcript(&session).into_iter().map(|(_, c)| c).collect();
    assert_eq!(contents, ["first", "first", "second", "second", "third", "third"]);

    let r = post(
        &d,
        "/v1/responses",
        &token,
        &json!({"model": "echo/echo", "input": "x", "previous_response_id": "resp_unknown"}),
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["param"], "previous_response_id");
}

#[test]
fn function_calls_round_trip_with_instructions() {
    let up = Upstream::start();
    let (_home, d, token) = start_gateway(&upstream_provider(&up, &["tool-lookup"]));
    let tools = json!([{"type": "function", "name": "lookup", "parameters": {"type": "object"}}]);
    let r = post(
        &d,
        "/v1/responses",
        &token,
        &json!({"model": "up/tool-lookup", "instructions": "use tools", "tools": tools, "input": "{\"q\":1}"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let resp = r.json();
    assert_complete(&resp);
    assert_eq!(resp["tools"][0]["name"], "lookup");
    let call_item = resp["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == "function_call")
        .expect("a function call");
    assert_eq!(call_item["name"], "lookup");
    assert_eq!(call_item["arguments"], "{\"q\":1}");
    assert_eq!(call_item["status"], "completed");
    assert!(call_item["id"].as_str().unwrap().starts_with("fc_"));
    // The instructions went upstream as system text.
    let sent = up.requests_to("/chat/completions").pop().unwrap().body;
    assert!(sent["messages"].to_string().contains("use tools"), "{sent}");

    let next = post(
        &d,
        "/v1/responses",
        &token,
        &json!({"model": "up/tool-lookup", "tools": tools, "previous_response_id": resp["id"],
            "input": [{"type": "function_call_output", "call_id": call_item["call_id"], "output": "42"}]}),
    );
    assert_eq!(next.status, 200, "{}", next.body);
    assert_eq!(output_text(&next.json()), "tool lookup returned: 42");

    // Stateless, the whole exchange given as items.
    let items = json!([
        {"role": "user", "content": "{\"q\":1}"},
        {"type": "function_call", "call_id": "c9", "name": "lookup", "arguments": "{\"q\":1}"},
        {"type": "function_call_output", "call_id": "c9", "output": "7"}]);
    let r = post(
        &d,
        "/v1/responses",
        &token,
        &json!({"model": "up/tool-lookup", "tools": tools, "store": false, "input": items}),
    );
    assert_eq!(output_text(&r.json()), "tool lookup returned: 7");

    // Streamed function call events.
    let r = post(
        &d,
        "/v1/responses",
        &token,
        &json!({"model": "up/tool-lookup", "tools": tools, "stream": true, "input": "{}"}),
    );
    let names: Vec<String> = named_events(&r).into_iter().map(|(n, _)| n).collect();
    for n in [
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.completed",
    ] {
        assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
    }
}

#[test]
fn failures_and_disconnects() {
    let up = Upstream::start();
    let (_home, d, token) = start_gateway(&upstream_provider(&up, &["fault-500", "stall-after-2"]));

    let r = post(&d, "/v1/responses", &token, &json!({"model": "up/fault-500", "input": "hi"}));
    assert_eq!(r.status, 502, "{}", r.body);
    assert!(r.json()["error"]["code"].as_str().unwrap().starts_with("upstream"));

    let r =
        post(&d, "/v1/responses", &token, &json!({"model": "up/fault-500", "input": "hi", "stream": true}));
    let (name, failed) = named_events(&r).pop().unwrap();
    assert_eq!(name, "response.failed");
    assert_eq!(failed["response"]["status"], "failed");
    assert!(failed["response"]["error"]["code"].as_str().unwrap().starts_with("upstream"));
    let id = failed["response"]["id"].as_str().unwrap();
    assert_eq!(call(&d, "GET", &format!("/v1/responses/{id}"), &token, None).json()["status"], "failed");

    let r = post(
        &d,
        "/v1/responses",
        &token,
        &json!({"model": "echo/echo", "input": [{"type": "item_reference", "id": "x"}]}),
    );
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]["message"].as_str().unwrap().starts_with("input[0]"));
    let r = post(
        &d,
        "/v1/responses",
        &token,
        &json!({"model": "echo/echo", "input": "x", "tools": [{"type": "web_search"}]}),
    );
    assert_eq!(r.status, 400);

    let body = json!({"model": "up/stall-after-2", "stream": true, "input": "a b c d e"});
    let mut deltas = 0;
    let (seen, reader) = stream_until(d.port, "/v1/responses", &token, &body, |data| {
        let event: Value = serde_json::from_str(data).unwrap();
        if event["type"] == "response.output_text.delta" {
            deltas += 1;
        }
        deltas == 2
    });
    assert_eq!(up.open_streams(), 1);
    let created: Value = serde_json::from_str(&seen[0]).unwrap();
    let path = format!("/v1/responses/{}", created["response"]["id"].as_str().unwrap());
    assert_eq!(call(&d, "GET", &path, &token, None).json()["status"], "in_progress");
    drop(reader);
    wait_for(Duration::from_secs(20), "the upstream stream to close", || {
        (up.open_streams() == 0).then_some(())
    });
    up.wait_open_connections_at_most(0, Duration::from_secs(20));
    wait_connections_idle(&d, &token);
    let stored = wait_for(Duration::from_secs(20), "the response stored as failed", || {
        let r = call(&d, "GET", &path, &token, None).json();
        (r["status"] == "failed").then_some(r)
    });
    assert_eq!(stored["error"]["code"], "client_disconnected");
}

#[test]
fn a_spent_token_budget_is_incomplete() {
    let up = Upstream::start();
    let (_home, d, token) = start_gateway(&upstream_provider(&up, &["words-6"]));
    let r = post(
        &d,
        "/v1/responses",
        &token,
        &json!({"model": "up/words-6", "input": "x", "max_output_tokens": 2}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let resp = r.json();
    assert_eq!(resp["status"], "incomplete");
    assert_eq!(resp["incomplete_details"]["reason"], "max_output_tokens");
    assert_eq!(resp["max_output_tokens"], 2);
    assert_eq!(output_text(&resp), "w1 w2");

    let r = post(
        &d,
        "/v1/responses",
        &token,
        &json!({"model": "up/words-6", "input": "x", "max_output_tokens": 2, "stream": true}),
    );
    let (name, _) = named_events(&r).pop().unwrap();
    assert_eq!(name, "response.incomplete");

    let r = post(
        &d,
        "/v1/chat/completions",
        &token,
        &json!({"model": "up/words-6", "max_tokens": 2, "messages": [{"role": "user", "content": "x"}]}),
    );
    assert_eq!(r.json()["choices"][0]["finish_reason"], "length");
}

#[test]
fn gateway_tools_run_inside_the_response() {
    let up = Upstream::start();
    let (_home, d, token) = start_gateway(&upstream_provider(&up, &["tool-time"]));
    let r = post(
        &d,
        "/v1/responses",
        &token,
        &json!({"model": "up/tool-time", "input": "what time is it?", "stream": true}),
    );
    let events = named_events(&r);
    let (name, last) = events.last().unwrap();
    assert_eq!(name, "response.completed", "{events:?}");
    // The gateway ran its own tool and the model answered with its result; no function_call
    // item is left for the caller.
    let output = last["response"]["output"].as_array().unwrap();
    assert!(output.iter().all(|i| i["type"] == "message"), "{output:?}");
    assert!(output_text(&last["response"]).starts_with("tool time returned:"), "{last}");
    let deltas: String = events.iter().filter_map(|(_, d)| d["delta"].as_str()).collect();
    let done: String = events
        .iter()
        .filter(|(n, _)| n == "response.output_text.done")
        .filter_map(|(_, d)| d["text"].as_str())
        .collect();
    assert_eq!(deltas, done, "the deltas add up to the finished texts");
}

#[test]
fn a_continuation_with_store_false_sees_the_chain_and_keeps_nothing() {
    let up = Upstream::start();
    let (_home, d, token) = start_gateway(&upstream_provider(&up, &["echo"]));
    let first = post(&d, "/v1/responses", &token, &json!({"model": "up/echo", "input": "first"})).json();
    let id1 = first["id"].as_str().unwrap();
    let r = post(
        &d,
        "/v1/responses",
        &token,
        &json!({"model": "up/echo", "input": "second", "previous_response_id": id1, "store": false}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let second = r.json();
    assert_eq!(output_text(&second), "second");
    let sent = up.requests_to("/chat/completions").pop().unwrap().body;
    let contents: Vec<&str> =
        sent["messages"].as_array().unwrap().iter().filter_map(|m| m["content"].as_str()).collect();
    assert!(contents.ends_with(&["first", "first", "second"]), "{contents:?}");
    // Nothing kept: the chain's session is as it was, the response is not stored.
    let session = wait_messages(&d, &token, &format!("resp:{id1}"), 2);
    assert_eq!(session["messages"].as_array().unwrap().len(), 2);
    let path = format!("/v1/responses/{}", second["id"].as_str().unwrap());
    assert_eq!(call(&d, "GET", &path, &token, None).status, 404);
}
