//! The OpenAI-compatible endpoints against the real daemon: the built-in echo model, and the
//! fake upstream for tool calls, stalls and faults.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use gateway_tests::api::*;
use gateway_tests::http1::{self, Reply};
use gateway_tests::upstream::Upstream;
// The llama and SDK tests take these from here.
pub(crate) use gateway_tests::api::post;
pub(crate) use gateway_tests::upstream::upstream_provider;
use gateway_tests::*;
use serde_json::{json, Value};

fn sse_data(r: &Reply) -> Vec<String> {
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.header("content-type").unwrap().starts_with("text/event-stream"));
    http1::sse(&r.body).into_iter().map(|(_, d)| d).collect()
}

#[test]
fn chat_completions_with_the_echo_model() {
    let (_home, d, token) = start_gateway("");

    let r = post(
        &d,
        "/v1/chat/completions",
        &token,
        &json!({"model": "echo/echo", "messages": [{"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello there world"}], "top_p": 0.5, "seed": 7}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let c = r.json();
    assert_eq!(c["object"], "chat.completion");
    assert!(c["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(c["model"], "echo/echo");
    assert_eq!(c["choices"][0]["message"]["role"], "assistant");
    assert_eq!(c["choices"][0]["message"]["content"], "hello there world");
    assert_eq!(c["choices"][0]["finish_reason"], "stop");
    assert_eq!(c["usage"]["completion_tokens"], 3);
    assert_eq!(
        c["usage"]["total_tokens"].as_u64().unwrap(),
        c["usage"]["prompt_tokens"].as_u64().unwrap() + 3
    );
    assert_eq!(c["ignored_fields"], json!(["seed", "top_p"]));
    assert_eq!(r.header("x-gateway-ignored-fields"), Some("seed, top_p"));
    assert!(r.header("x-gateway-run-id").is_some());
    // Stateless: no session was stored.
    assert_eq!(call(&d, "GET", "/gateway/sessions", &token, None).json()["sessions"], json!([]));

    // Without a model: the default agent's model.
    let r =
        post(&d, "/v1/chat/completions", &token, &json!({"messages": [{"role": "user", "content": "x"}]}));
    assert_eq!(r.json()["model"], "echo/echo");

    // Streamed, with usage.
    let r = post(
        &d,
        "/v1/chat/completions",
        &token,
        &json!({"model": "echo/echo", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "one two three four five six"}]}),
    );
    let data = sse_data(&r);
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> =
        data[..data.len() - 1].iter().map(|d| serde_json::from_str(d).unwrap()).collect();
    assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk"));
    assert!(chunks.iter().all(|c| c["id"] == chunks[0]["id"]));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect::<Vec<_>>()
        .concat();
    assert_eq!(text, "one two three four five six");
    let content_chunks =
        chunks.iter().filter(|c| c["choices"][0]["delta"]["content"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(content_chunks.count() >= 2, "the echo model streams in pieces: {chunks:?}");
    let n = chunks.len();
    assert_eq!(chunks[n - 2]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[n - 1]["choices"], json!([]));
    assert_eq!(chunks[n - 1]["usage"]["completion_tokens"], 6);
    assert!(chunks[..n - 1].iter().all(|c| c["usage"].is_null()));
}

#[test]
fn completions_and_models() {
    let (_home, d, token) = start_gateway("");

    let r = post(
        &d,
        "/v1/completions",
        &token,
        &json!({"model": "echo/echo", "prompt": "say this", "echo": false}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let c = r.json();
    assert_eq!(c["object"], "text_completion");
    assert_eq!(c["choices"][0]["text"], "say this");
    assert_eq!(c["choices"][0]["finish_reason"], "stop");
    assert_eq!(c["ignored_fields"], json!(["echo"]));

    let r = post(
        &d,
        "/v1/completions",
        &token,
        &json!({"model": "echo/echo", "prompt": ["a b c"], "stream": true}),
    );
    let data = sse_data(&r);
    assert_eq!(data.last().unwrap(), "[DONE]");
    let text: String = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .filter_map(|c| c["choices"][0]["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, "a b c");

    let r = post(&d, "/v1/completions", &token, &json!({"prompt": ["a", "b"]}));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["param"], "prompt");

    let models = call(&d, "GET", "/v1/models", &token, None).json();
    assert_eq!(models["object"], "list");
    let echo =
        models["data"].as_array().unwrap().iter().find(|m| m["id"] == "echo/echo").expect("echo listed");
    assert_eq!(echo["object"], "model");
    assert_eq!(echo["owned_by"], "echo");
    let one = call(&d, "GET", "/v1/models/echo/echo", &token, None);
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["id"], "echo/echo");
    let missing = call(&d, "GET", "/v1/models/nope/model", &token, None);
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"]["code"], "model_not_found");
    let unknown = post(&d, "/v1/embeddings", &token, &json!({"input": "x"}));
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["error"]["type"], "not_found_error");
    assert!(unknown.json()["error"]["message"].as_str().unwrap().contains("/v1/chat/completions"));
}

#[test]
fn refusals_in_the_openai_error_shape() {
    let (_home, d, token) = start_gateway(
        "[gateway.http]\nmax_body_bytes = 4096\n[gateway.auth.rate_limit]\nmax_failures = 3\nwindow_ms = 60000\nlockout_ms = 60000\n",
    );
    let chat = json!({"model": "echo/echo", "messages": [{"role": "user", "content": "hi"}]});

    let r = post(
        &d,
        "/v1/chat/completions",
        &token,
        &json!({"model": "no/such", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(r.status, 404, "{}", r.body);
    let e = &r.json()["error"];
    assert_eq!(e["code"], "model_not_found");
    assert_eq!(e["type"], "not_found_error");
    assert_eq!(e["param"], "model");
    assert!(e["message"].as_str().unwrap().contains("no/such"), "{e}");

    let r = call_raw(&d, "POST", "/v1/chat/completions", &token, Some("{not json"));
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("not valid JSON"));
    let r = post(&d, "/v1/chat/completions", &token, &json!({"messages": [{"role": "user", "content": 5}]}));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["param"], "messages[0].content");
    let r = post(
        &d,
        "/v1/chat/completions",
        &token,
        &json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}),
    );
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("image_url"));

    let big = json!({"messages": [{"role": "user", "content": "x".repeat(5000)}]});
    let r = post(&d, "/v1/chat/completions", &token, &big);
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    assert_eq!(r.json()["error"]["code"], "request_too_large");
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("gateway.http.max_body_bytes"));
    // Without a declared length the body is cut off at the limit as it arrives.
    let mut s = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    let chunk = big.to_string();
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    )
    .unwrap();
    let mut raw = String::new();
    std::io::Read::read_to_string(&mut s, &mut raw).unwrap();
    assert!(raw.starts_with("HTTP/1.1 413"), "{raw}");
    assert!(raw.contains("request_too_large"), "{raw}");

    // The listener's own refusals come in the OpenAI shape on /v1/ too.
    let r = call(&d, "GET", "/v1/models?api_key=x", &token, None);
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    assert_eq!(r.json()["error"]["code"], "credentials_in_url");
    let auth = format!("Bearer {token}");
    let headers = [("Authorization", auth.as_str()), ("Origin", "https://evil.example")];
    let r = http1::request(d.port, "GET", "/v1/models", &headers, None).unwrap();
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["error"]["type"], "permission_error");
    assert_eq!(r.json()["error"]["code"], "origin_not_allowed");
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("gateway.http.allowed_origins"));

    // Failures count toward the lockout: then a wrong token gets 429, the right one still passes.
    for _ in 0..3 {
        let r = post(&d, "/v1/chat/completions", "wrong-token", &chat);
        assert_eq!(r.status, 401);
        let e = &r.json()["error"];
        assert_eq!(e["type"], "authentication_error");
        assert!(e["message"].as_str().unwrap().contains("Bearer"));
    }
    let r = post(&d, "/v1/chat/completions", "wrong-token", &chat);
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"]["type"], "rate_limit_error");
    assert!(r.header("retry-after").is_some());
    assert_eq!(post(&d, "/v1/chat/completions", &token, &chat).status, 200);
}

#[test]
fn tool_calls_both_ways_through_an_upstream() {
    let up = Upstream::start();
    let (_home, d, token) = start_gateway(&upstream_provider(&up, &["tool-lookup"]));
    let tools = json!([{"type": "function", "function": {"name": "lookup", "description": "find a thing",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}]);

    let ask = json!({"model": "up/tool-lookup", "tools": tools,
        "messages": [{"role": "user", "content": "{\"q\":\"x\"}"}]});
    let r = post(&d, "/v1/chat/completions", &token, &ask);
    assert_eq!(r.status, 200, "{}", r.body);
    let c = r.json();
    assert_eq!(c["choices"][0]["finish_reason"], "tool_calls");
    let call0 = &c["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call0["type"], "function");
    assert_eq!(call0["function"]["name"], "lookup");
    assert_eq!(call0["function"]["arguments"], "{\"q\":\"x\"}");
    // The upstream was offered the caller's tool (beside the gateway's own).
    let offered = |body: &Value| {
        body["tools"].as_array().is_some_and(|t| t.iter().any(|t| t["function"]["name"] == "lookup"))
    };
    assert!(offered(&up.requests_to("/chat/completions").pop().unwrap().body));

    // The caller runs it and sends the result back.
    let id = call0["id"].as_str().unwrap();
    let answer = json!({"model": "up/tool-lookup", "tools": tools, "messages": [
        {"role": "user", "content": "{\"q\":\"x\"}"},
        {"role": "assistant", "content": null, "tool_calls": [call0]},
        {"role": "tool", "tool_call_id": id, "content": "42"}]});
    let r = post(&d, "/v1/chat/completions", &token, &answer);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["choices"][0]["message"]["content"], "tool lookup returned: 42");
    let last = up.requests_to("/chat/completions").pop().unwrap().body;
    let msgs = last["messages"].as_array().unwrap();
    assert_eq!(msgs[msgs.len() - 1]["role"], "tool");
    assert_eq!(msgs[msgs.len() - 1]["tool_call_id"], id);
    assert_eq!(msgs[msgs.len() - 2]["tool_calls"][0]["id"], id);

    // Streamed: the call arrives as a tool_calls delta.
    let mut streamed = ask.clone();
    streamed["stream"] = json!(true);
    let r = post(&d, "/v1/chat/completions", &token, &streamed);
    let data = sse_data(&r);
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> =
        data[..data.len() - 1].iter().map(|d| serde_json::from_str(d).unwrap()).collect();
    let delta = chunks
        .iter()
        .find(|c| c["choices"][0]["delta"]["tool_calls"].is_array())
        .expect("a tool_calls delta");
    assert_eq!(delta["choices"][0]["delta"]["tool_calls"][0]["index"], 0);
    assert_eq!(delta["choices"][0]["delta"]["tool_calls"][0]["function"]["name"], "lookup");
    assert!(chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "tool_calls"));

    // tool_choice "none": the tools are not offered.
    let mut none = ask.clone();
    none["tool_choice"] = json!("none");
    none["model"] = json!("up/tool-lookup");
    post(&d, "/v1/chat/completions", &token, &none);
    assert!(!offered(&up.requests_to("/chat/completions").pop().unwrap().body));
}

#[test]
fn a_session_header_keeps_the_conversation() {
    let (_home, d, token) = start_gateway("");
    let send = |messages: Value| {
        let r = chat_on_session(&d, &token, "desk", messages);
        assert_eq!(r.header("x-gateway-session-key"), Some("desk"));
        r.json()["choices"][0]["message"]["content"].as_str().unwrap().to_owned()
    };
    assert_eq!(send(json!([{"role": "user", "content": "one"}])), "one");
    // Clients resend the whole conversation: only what follows the last assistant message is new.
    assert_eq!(
        send(json!([{"role": "user", "content": "one"}, {"role": "assistant", "content": "one"},
            {"role": "user", "content": "two"}])),
        "two"
    );
    let session = wait_messages(&d, &token, "desk", 4);
    assert_eq!(
        transcript(&session),
        [("user", "one"), ("assistant", "one"), ("user", "two"), ("assistant", "two")]
            .map(|(r, c)| (r.to_owned(), c.to_owned()))
    );

    // A key the store would refuse is refused up front, naming the header.
    let auth = format!("Bearer {token}");
    let long = "k".repeat(257);
    let body = json!({"messages": [{"role": "user", "content": "x"}]}).to_string();
    let headers = [("Authorization", auth.as_str()), ("x-gateway-session-key", long.as_str())];
    let r = http1::request(d.port, "POST", "/v1/chat/completions", &headers, Some(&body)).unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.starts_with("x-gateway-session-key: invalid session key"), "{message}");
}

#[test]
fn a_client_that_disconnects_mid_stream_cancels_the_upstream_request() {
    let up = Upstream::start();
    let (_home, d, token) = start_gateway(&upstream_provider(&up, &["stall-after-2"]));
    let body = json!({"model": "up/stall-after-2", "stream": true,
        "messages": [{"role": "user", "content": "alpha beta gamma delta"}]});
    let mut content = 0;
    let (seen, reader) = stream_until(d.port, "/v1/chat/completions", &token, &body, |data| {
        let chunk: Value = serde_json::from_str(data).unwrap();
        if chunk["choices"][0]["delta"]["content"].as_str().is_some_and(|t| !t.is_empty()) {
            content += 1;
        }
        content == 2
    });
    assert!(seen.len() >= 3, "{seen:?}");
    assert_eq!(up.open_streams(), 1, "the upstream is still streaming");
    drop(reader);
    // The gateway drops the run and closes its upstream request.
    wait_for(Duration::from_secs(20), "the upstream stream to close", || {
        (up.open_streams() == 0).then_some(())
    });
    up.wait_open_connections_at_most(0, Duration::from_secs(20));
    wait_connections_idle(&d, &token);
    // The gateway still serves.
    let r = post(
        &d,
        "/v1/chat/completions",
        &token,
        &json!({"model": "echo/echo", "messages": [{"role": "user", "content": "still here"}]}),
    );
    assert_eq!(r.json()["choices"][0]["message"]["content"], "still here");
}

#[test]
fn upstream_faults_are_clear_errors() {
    let up = Upstream::start();
    let (_home, d, token) = start_gateway(&upstream_provider(&up, &["fault-500"]));
    let body = json!({"model": "up/fault-500", "messages": [{"role": "user", "content": "hi"}]});
    let r = post(&d, "/v1/chat/completions", &token, &body);
    assert_eq!(r.status, 502, "{}", r.body);
    let e = &r.json()["error"];
    assert_eq!(e["type"], "server_error");
    assert!(e["code"].as_str().unwrap().starts_with("upstream"), "{e}");
    assert!(e["message"].as_str().unwrap().contains("500"), "{e}");

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let r = post(&d, "/v1/chat/completions", &token, &streamed);
    let data = sse_data(&r);
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert!(last["error"]["code"].as_str().unwrap().starts_with("upstream"), "{last}");
}

#[test]
fn a_client_that_leaves_before_a_whole_answer_cancels_too() {
    let up = Upstream::start();
    let (_home, d, token) = start_gateway(&upstream_provider(&up, &["stall-after-1"]));
    let body =
        json!({"model": "up/stall-after-1", "messages": [{"role": "user", "content": "a b c"}]}).to_string();
    let mut s = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    wait_for(Duration::from_secs(20), "the upstream stream to open", || {
        (up.open_streams() == 1).then_some(())
    });
    drop(s);
    wait_for(Duration::from_secs(20), "the upstream stream to close", || {
        (up.open_streams() == 0).then_some(())
    });
}

#[test]
fn a_password_session_token_is_a_bearer_too() {
    let home = Home::new();
    home.write_config(None, "[gateway.auth]\nmode = \"password\"\n");
    let port = free_port();
    let d = home.spawn(&["--port", &port.to_string()], |c| {
        c.env("GATEWAY_PASSWORD", "correct horse battery");
    });
    d.wait_ready();
    let signed_in = http1::request(
        d.port,
        "POST",
        "/gateway/auth/session",
        &[],
        Some(&json!({"password": "correct horse battery"}).to_string()),
    )
    .unwrap();
    assert_eq!(signed_in.status, 201, "{}", signed_in.body);
    let session = signed_in.json()["token"].as_str().unwrap().to_owned();
    let r =
        post(&d, "/v1/chat/completions", &session, &json!({"messages": [{"role": "user", "content": "hi"}]}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["choices"][0]["message"]["content"], "hi");
    // The generated gateway token is no credential in password mode.
    assert_eq!(call(&d, "GET", "/v1/models", &home.token(), None).status, 401);
}

/// A client's huge wrong value is quoted short in the answer, whatever the route.
#[test]
fn huge_values_are_quoted_short_in_errors() {
    let (_home, d, token) = start_gateway("[gateway.http]\nmax_body_bytes = 4194304\n");
    let huge = "m".repeat(1_000_000);
    let r = post(
        &d,
        "/v1/chat/completions",
        &token,
        &json!({ "model": huge, "messages": [{"role": "user", "content": "hi"}] }),
    );
    assert_eq!(r.status, 404, "{}", &r.body[..r.body.len().min(300)]);
    assert!(
        r.body.len() < 1_000 && r.body.contains("1000000 bytes"),
        "{} bytes: {}",
        r.body.len(),
        &r.body[..300.min(r.body.len())]
    );
    let r = post(
        &d,
        "/v1/chat/completions",
        &token,
        &json!({ "model": "echo/echo", "messages": [{"role": huge, "content": "hi"}] }),
    );
    assert_eq!(r.status, 400);
    assert!(r.body.len() < 1_000, "{} bytes", r.body.len());
    let r = post(&d, "/v1/chat/completions", &token, &json!({ "model": "echo/echo", "messages": huge }));
    assert_eq!(r.status, 400);
    assert!(r.body.len() < 1_000, "{} bytes", r.body.len());
    let r = call(&d, "GET", &format!("/gateway/sessions/{}", "k".repeat(5_000)), &token, None);
    assert_eq!(r.status, 400);
    assert!(r.body.len() < 1_000, "{} bytes", r.body.len());
}

#[test]
fn a_stream_still_going_at_stop_ends_with_run_aborted() {
    let up = Upstream::start();
    let config = format!(
        "{}\n[gateway.shutdown]\ndrain_timeout_ms = 2000\n",
        upstream_provider(&up, &["stall-after-1"])
    );
    let (_home, mut d, token) = start_gateway(&config);
    let body = json!({"model": "up/stall-after-1", "stream": true,
        "messages": [{"role": "user", "content": "alpha beta gamma"}]});
    let (_, mut reader) = stream_until(d.port, "/v1/chat/completions", &token, &body, |data| {
        data.contains("\"content\":\"alpha")
    });
    d.signal(nix::sys::signal::Signal::SIGTERM);
    // The rest of the stream: the run's end, then the connection closes, within the budget.
    let mut rest = String::new();
    use std::io::Read;
    reader.read_to_string(&mut rest).expect("the stream ends cleanly, not reset");
    let errors: Vec<&str> = rest.lines().filter(|l| l.starts_with("data: {\"error\"")).collect();
    assert_eq!(errors.len(), 1, "{rest}");
    assert!(errors[0].contains("run_aborted"), "{rest}");
    assert!(rest.contains("data: [DONE]") || rest.ends_with("0\r\n\r\n"), "{rest}");
    assert!(d.wait_exit(Duration::from_secs(5)).success(), "{}", d.stderr());
}

/// `gateway.http.max_input_chars` counts characters, not bytes, on every /v1 route: ten "é"
/// (twenty bytes) pass a limit of ten, eleven do not.
#[test]
fn max_input_chars_counts_characters_on_every_route() {
    let (_home, d, token) = start_gateway("[gateway.http]\nmax_input_chars = 10\n");
    let (ok, over) = ("é".repeat(10), "é".repeat(11));
    let routes = |text: &str| {
        [
            (
                "/v1/chat/completions",
                json!({"model": "echo/echo", "messages": [{"role": "user", "content": text}]}),
            ),
            ("/v1/completions", json!({"model": "echo/echo", "prompt": text})),
            ("/v1/responses", json!({"model": "echo/echo", "input": text, "store": false})),
        ]
    };
    for (path, body) in routes(&ok) {
        let r = post(&d, path, &token, &body);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    for (path, body) in routes(&over) {
        let r = post(&d, path, &token, &body);
        assert_eq!(r.status, 413, "{path}: {}", r.body);
        assert_eq!(r.json()["error"]["code"], "input_too_long", "{path}: {}", r.body);
        assert!(
            r.body.contains("more than 10 characters (gateway.http.max_input_chars)"),
            "{path}: {}",
            r.body
        );
    }
    // Instructions count too.
    let r = post(
        &d,
        "/v1/responses",
        &token,
        &json!({"model": "echo/echo", "input": "hi", "instructions": "0123456789"}),
    );
    assert_eq!(r.status, 413, "{}", r.body);
}

/// `gateway.http.rate_limit`: per client address, 429 with Retry-After past the limit, probes
/// never limited, the refusals counted in status; apart from the failed-auth lockout.
#[test]
fn the_request_rate_limit_refuses_with_retry_after() {
    let (home, d, token) =
        start_gateway("[gateway.http.rate_limit]\nwindow_seconds = 60\nmax_requests = 3\n");
    for _ in 0..3 {
        assert_eq!(call(&d, "GET", "/v1/models", &token, None).status, 200);
    }
    let r = call(&d, "GET", "/v1/models", &token, None);
    assert_eq!(r.status, 429, "{}", r.body);
    let retry: u64 = r.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert!(r.body.contains("at most 3 per 60 s (gateway.http.rate_limit)"), "{}", r.body);
    assert_eq!(call(&d, "GET", "/gateway/sessions", &token, None).status, 429, "every HTTP API");
    assert_eq!(call(&d, "GET", "/healthz", "", None).status, 200, "probes are not limited");
    let status = control(&home.socket(None), "GET", "/v1/status");
    assert_eq!(status["counters"]["rate_limited_requests"], 2, "{status}");
    assert_eq!(status["counters"]["auth_failures"], 0, "not an auth failure");
    // Turned off again (0), hot: requests pass.
    home.write_config(None, "[gateway.http.rate_limit]\nmax_requests = 0\n");
    wait_for(std::time::Duration::from_secs(5), "the limit to lift", || {
        (call(&d, "GET", "/v1/models", &token, None).status == 200).then_some(())
    });
}

#[test]
fn the_status_reports_what_the_openai_apis_served_in_the_runbooks_block() {
    let (_home, d, token) = start_gateway("");
    let chat = json!({"model": "echo/echo", "messages": [{"role": "user", "content": "hi"}], "seed": 1});
    assert_eq!(post(&d, "/v1/chat/completions", &token, &chat).status, 200);
    let mut streamed = chat.clone();
    streamed["stream"] = json!(true);
    sse_data(&post(&d, "/v1/chat/completions", &token, &streamed));
    assert_eq!(
        post(&d, "/v1/completions", &token, &json!({"model": "echo/echo", "prompt": "x"})).status,
        200
    );
    assert_eq!(call(&d, "GET", "/v1/models", &token, None).status, 200);
    let unknown = json!({"model": "nope/nope", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(post(&d, "/v1/chat/completions", &token, &unknown).status, 404);
    assert_eq!(post(&d, "/v1/chat/completions", &token, &json!({"messages": 3})).status, 400);
    assert_eq!(call(&d, "GET", "/v1/models", "wrong-token", None).status, 401);

    let status = call(&d, "GET", "/gateway/status", &token, None).json();
    let block = &status["gateway"]["openai_compat"];
    let count = |k: &str| block[k].as_u64().unwrap_or_else(|| panic!("{k} in {block}"));
    assert_eq!(block["chat_completions_endpoint"], "/v1/chat/completions");
    assert_eq!(count("total_requests"), 6, "the refused credential is not counted here: {block}");
    assert_eq!(
        (count("chat_completions_requests"), count("completions_requests"), count("models_requests")),
        (4, 1, 1)
    );
    assert_eq!(
        (count("stream_requests"), count("translation_failures"), count("execution_failures")),
        (1, 2, 0)
    );
    assert_eq!(block["reason_code_counts"]["model_not_found"], 1, "{block}");
    assert_eq!(block["last_reason_codes"].as_array().unwrap().len(), 2, "{block}");
    assert_eq!(block["ignored_field_counts"]["seed"], 2, "{block}");
}
