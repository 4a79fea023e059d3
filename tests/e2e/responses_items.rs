//! `/v1/responses` input items over raw HTTP: every item type a client may send or replay,
//! `item_reference`s resolved from stored responses, and `GET /v1/responses/{id}/input_items`.
//! The fake upstream records what the model was given.

use gateway_tests::api::*;
use gateway_tests::upstream::{upstream_provider, Upstream};
use serde_json::{json, Value};

/// The messages the upstream received in its last chat request, as (role, content).
fn last_sent(up: &Upstream) -> Vec<(String, String)> {
    let sent = up.requests_to("/chat/completions").pop().expect("a request upstream").body;
    sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (m["role"].as_str().unwrap().to_owned(), m["content"].as_str().unwrap_or_default().to_owned())
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(r, c)| (r.to_string(), c.to_string())).collect()
}

#[test]
fn a_conversation_kept_by_the_client_replays_earlier_output_by_reference() {
    let up = Upstream::start();
    let (_home, d, token) = start_gateway(&upstream_provider(&up, &["echo"]));
    let first = post(&d, "/v1/responses", &token, &json!({"model": "up/echo", "input": "my name is Ada"}));
    assert_eq!(first.status, 200, "{}", first.body);
    let answer_id = first.json()["output"][0]["id"].as_str().unwrap().to_owned();

    // Turn 2 as a client that keeps the conversation itself sends it (store on, no
    // previous_response_id): the earlier answer by reference.
    let input = json!([
        {"role": "user", "content": "my name is Ada"},
        {"type": "item_reference", "id": answer_id},
        {"role": "user", "content": "what is my name?"},
    ]);
    let second = post(&d, "/v1/responses", &token, &json!({"model": "up/echo", "input": input}));
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(
        last_sent(&up),
        pairs(&[("user", "my name is Ada"), ("assistant", "my name is Ada"), ("user", "what is my name?")])
    );

    // Turn 3 refers to turn 2's output and to turn 2's own input items, which it stored.
    let second = second.json();
    let items = call(
        &d,
        "GET",
        &format!("/v1/responses/{}/input_items?order=asc", second["id"].as_str().unwrap()),
        &token,
        None,
    );
    let first_question = items.json()["data"][0]["id"].as_str().unwrap().to_owned();
    let input = json!([
        {"type": "item_reference", "id": first_question},
        {"type": "item_reference", "id": second["output"][0]["id"]},
        {"role": "user", "content": "thanks"},
    ]);
    let third = post(&d, "/v1/responses", &token, &json!({"model": "up/echo", "input": input}));
    assert_eq!(third.status, 200, "{}", third.body);
    assert_eq!(
        last_sent(&up),
        pairs(&[("user", "my name is Ada"), ("assistant", "what is my name?"), ("user", "thanks")])
    );

    // What the gateway did not store cannot be referenced: a clear 400 naming the id.
    let unknown = post(
        &d,
        "/v1/responses",
        &token,
        &json!({"model": "up/echo", "input": [{"type": "item_reference", "id": "msg_from_elsewhere"}]}),
    );
    assert_eq!(unknown.status, 400, "{}", unknown.body);
    let e = &unknown.json()["error"];
    assert!(e["message"].as_str().unwrap().contains("msg_from_elsewhere"), "{e}");
    assert!(e["message"].as_str().unwrap().starts_with("input[0]: item_reference"), "{e}");
    assert_eq!(e["param"], "input");
    let unkept =
        post(&d, "/v1/responses", &token, &json!({"model": "up/echo", "input": "x", "store": false}));
    let unkept_id = unkept.json()["output"][0]["id"].clone();
    let r = post(
        &d,
        "/v1/responses",
        &token,
        &json!({"model": "up/echo", "input": [{"type": "item_reference", "id": unkept_id}]}),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    // A deleted response's items go with it (an item replayed into another response stays
    // that response's).
    let gone = post(&d, "/v1/responses", &token, &json!({"model": "up/echo", "input": "soon gone"})).json();
    let gone_item = gone["output"][0]["id"].clone();
    let path = format!("/v1/responses/{}", gone["id"].as_str().unwrap());
    assert_eq!(call(&d, "DELETE", &path, &token, None).status, 200);
    let r = post(
        &d,
        "/v1/responses",
        &token,
        &json!({"model": "up/echo", "input": [{"type": "item_reference", "id": gone_item}]}),
    );
    assert_eq!(r.status, 400, "{}", r.body);
}

#[test]
fn every_input_item_type_is_taken_or_refused_clearly() {
    let up = Upstream::start();
    let (_home, d, token) = start_gateway(&upstream_provider(&up, &["echo"]));
    let input = json!([
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "be kind"}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "may I?"}]},
        {"type": "message", "role": "assistant", "id": "msg_old", "status": "completed",
         "content": [{"type": "refusal", "refusal": "I cannot help with that"}]},
        {"type": "reasoning", "id": "rs_old", "summary": [{"type": "summary_text", "text": "thinking"}],
         "encrypted_content": "opaque"},
        {"type": "function_call", "id": "fc_old", "call_id": "call_1", "name": "lookup", "arguments": "{}", "status": "completed"},
        {"type": "function_call_output", "call_id": "call_1", "output": [{"type": "input_text", "text": "42"}]},
        {"role": "user", "content": "and now?"},
    ]);
    let r = post(&d, "/v1/responses", &token, &json!({"model": "up/echo", "input": input}));
    assert_eq!(r.status, 200, "{}", r.body);
    let sent = up.requests_to("/chat/completions").pop().unwrap().body;
    let messages = sent["messages"].as_array().unwrap();
    let roles: Vec<&str> = messages.iter().map(|m| m["role"].as_str().unwrap()).collect();
    // The developer text is the system message; the refusal is the assistant's text, the
    // function call joins it; the reasoning item is dropped.
    assert_eq!(roles, ["system", "user", "assistant", "tool", "user"], "{sent}");
    assert!(messages[0]["content"].as_str().unwrap().contains("be kind"), "{sent}");
    assert_eq!(messages[2]["content"], "I cannot help with that", "{sent}");
    assert_eq!(messages[2]["tool_calls"][0]["function"]["name"], "lookup", "{sent}");
    assert_eq!((&messages[3]["tool_call_id"], &messages[3]["content"]), (&json!("call_1"), &json!("42")));
    assert!(!sent.to_string().contains("opaque") && !sent.to_string().contains("thinking"), "{sent}");

    // Kept as sent, with the ids given, and ids for the items that came without.
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let listed =
        call(&d, "GET", &format!("/v1/responses/{id}/input_items?order=asc&limit=100"), &token, None).json();
    let data = listed["data"].as_array().unwrap();
    assert_eq!(data.len(), 7, "{listed}");
    assert_eq!(
        (&data[2]["id"], &data[3]["id"], &data[4]["id"]),
        (&json!("msg_old"), &json!("rs_old"), &json!("fc_old"))
    );
    assert!(data[0]["id"].as_str().unwrap().starts_with("msg_"), "{listed}");
    assert!(data[5]["id"].as_str().unwrap().starts_with("fco_"), "{listed}");
    assert_eq!(data[6]["type"], "message", "{listed}");
    assert_eq!(data[6]["content"], json!([{"type": "input_text", "text": "and now?"}]), "{listed}");

    // What cannot go to the model is refused, naming the item and why.
    for (part, says) in [
        (json!({"type": "input_image", "image_url": "https://example.invalid/a.png"}), "text only"),
        (json!({"type": "input_file", "file_id": "file_1"}), "text only"),
        (json!({"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}), "text only"),
    ] {
        let input = json!([{"role": "user", "content": [{"type": "input_text", "text": "look"}, part]}]);
        let r = post(&d, "/v1/responses", &token, &json!({"model": "up/echo", "input": input}));
        assert_eq!(r.status, 400, "{}", r.body);
        let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(message.starts_with("input[0].content[1]") && message.contains(says), "{message}");
    }
    let r = post(
        &d,
        "/v1/responses",
        &token,
        &json!({"model": "up/echo", "input": [{"type": "web_search_call", "id": "ws_1", "status": "completed"}]}),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert_eq!(
        message,
        "input[0]: items of type \"web_search_call\" are not accepted here; the accepted types: message, function_call, function_call_output, reasoning, item_reference"
    );
    let r = post(
        &d,
        "/v1/responses",
        &token,
        &json!({"model": "up/echo", "input": [{"type": "reasoning", "summary": []}]}),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("reasoning items alone"), "{}", r.body);
}

#[test]
fn input_items_page_in_either_order() {
    let (_home, d, token) = start_gateway("");
    let input: Vec<Value> = (0..5).map(|i| json!({"role": "user", "content": format!("line {i}")})).collect();
    let r = post(&d, "/v1/responses", &token, &json!({"model": "echo/echo", "input": input}));
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let get = |query: &str| call(&d, "GET", &format!("/v1/responses/{id}/input_items{query}"), &token, None);
    let texts = |page: &Value| -> Vec<String> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["content"][0]["text"].as_str().unwrap().to_owned())
            .collect()
    };

    // Newest first by default, as the API documents.
    let all = get("").json();
    assert_eq!(all["object"], "list");
    assert_eq!(texts(&all), ["line 4", "line 3", "line 2", "line 1", "line 0"]);
    assert_eq!((&all["first_id"], &all["last_id"]), (&all["data"][0]["id"], &all["data"][4]["id"]));
    assert_eq!(all["has_more"], false);

    // Pages of two, oldest first, following `after`.
    let mut seen = Vec::new();
    let mut query = "?order=asc&limit=2".to_owned();
    loop {
        let page = get(&query).json();
        seen.extend(texts(&page));
        if page["has_more"] == false {
            break;
        }
        query = format!("?order=asc&limit=2&after={}", page["last_id"].as_str().unwrap());
    }
    assert_eq!(seen, ["line 0", "line 1", "line 2", "line 3", "line 4"]);

    for (query, param) in
        [("?limit=0", "limit"), ("?limit=101", "limit"), ("?order=up", "order"), ("?after=msg_nope", "after")]
    {
        let r = get(query);
        assert_eq!(r.status, 400, "{query}: {}", r.body);
        assert_eq!(r.json()["error"]["param"], param, "{query}: {}", r.body);
    }
    let missing = call(&d, "GET", "/v1/responses/resp_nope/input_items", &token, None);
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert_eq!(call(&d, "GET", &format!("/v1/responses/{id}/input_items"), "", None).status, 401);
}
