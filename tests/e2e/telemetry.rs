//! OpenTelemetry export: a real OTLP/HTTP receiver (the official protobuf definitions from PyPI)
//! decodes what the gateway sends; one chat request is one trace, HTTP -> run -> model call
//! -> tool call, continuing the caller's `traceparent` and passing it to the upstream; the
//! metrics arrive under their conventional names; the JSONL export; the variables that turn
//! export off or are refused.

use std::time::Duration;

use gateway_tests::http1;
use gateway_tests::otlp::{Receiver, Span};
use gateway_tests::upstream::{upstream_provider, Upstream};
use gateway_tests::ws::{Client, Connect};
use gateway_tests::*;
use serde_json::{json, Value};

const CALLER_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const CALLER_SPAN: &str = "b7ad6b7169203331";

fn chat(port: u16, token: &str, model: &str, text: &str) -> Value {
    let auth = format!("Bearer {token}");
    let traceparent = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let body = json!({ "model": model, "messages": [{ "role": "user", "content": text }] }).to_string();
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
        ("traceparent", traceparent.as_str()),
    ];
    let r = http1::request(port, "POST", "/v1/chat/completions", &headers, Some(&body)).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    serde_json::from_str(&r.body).unwrap()
}

fn one<'a>(spans: &'a [Span], what: &str, found: impl Fn(&Span) -> bool) -> &'a Span {
    let matching: Vec<&Span> = spans.iter().filter(|s| found(s)).collect();
    assert_eq!(matching.len(), 1, "{what}: {matching:#?}\nall spans: {spans:#?}");
    matching[0]
}

#[test]
fn a_chat_request_is_one_trace_at_a_real_otlp_receiver_from_http_to_the_upstream() {
    let receiver = Receiver::start();
    let up = Upstream::start();
    let home = Home::new();
    home.write_config(None, &upstream_provider(&up, &["tool-time"]));
    let port = free_port();
    let d = home.spawn(&["--port", &port.to_string()], |cmd| {
        cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
            .env("OTEL_SERVICE_NAME", "gateway-under-test")
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .env("OTEL_METRIC_EXPORT_INTERVAL", "300");
    });
    d.wait_ready();
    let token = home.token();
    let answer = chat(port, &token, "up/tool-time", "what time is it?");
    assert!(answer["choices"][0]["message"]["content"].as_str().unwrap().starts_with("tool time returned"));
    let (mut ws, _) = Client::connect(port, &Connect { token: Some(&token), ..Default::default() });
    ws.request("health", json!({}));

    receiver.wait_spans("health", |s| s.name == "health");
    let spans = receiver.wait_spans("HTTP request", |s| s.name == "POST /v1/chat/completions");
    let http = one(&spans, "the HTTP span", |s| s.name == "POST /v1/chat/completions");
    assert_eq!(http.service, "gateway-under-test");
    assert_eq!(http.kind, "SPAN_KIND_SERVER");
    assert_eq!(http.trace_id, CALLER_TRACE, "the caller's trace continues");
    assert_eq!(http.parent_span_id.as_deref(), Some(CALLER_SPAN));
    assert_eq!(http.attr("http.route").as_deref(), Some("/v1/chat/completions"));
    assert_eq!(http.attr("http.response.status_code").as_deref(), Some("200"));

    let run = one(&spans, "the run span", |s| s.name == "invoke_agent main");
    assert_eq!(run.parent_span_id.as_ref(), Some(&http.span_id));
    assert_eq!(run.trace_id, CALLER_TRACE);
    assert_eq!(run.attr("gen_ai.operation.name").as_deref(), Some("invoke_agent"));
    assert_eq!(run.attr("gen_ai.agent.id").as_deref(), Some("main"));
    assert_eq!(run.attr("gateway.run.status").as_deref(), Some("ok"));
    assert!(run.attr("gateway.run.id").is_some_and(|id| id.starts_with("run_")), "{run:#?}");

    // Two model calls (the tool call, then the answer) and the tool between them.
    let calls: Vec<&Span> = spans.iter().filter(|s| s.name == "chat tool-time").collect();
    assert_eq!(calls.len(), 2, "{spans:#?}");
    for call in &calls {
        assert_eq!(call.parent_span_id.as_ref(), Some(&run.span_id));
        assert_eq!(call.kind, "SPAN_KIND_CLIENT");
        assert_eq!(call.attr("gen_ai.provider.name").as_deref(), Some("openai"));
        assert_eq!(call.attr("gen_ai.request.model").as_deref(), Some("tool-time"));
        assert_eq!(call.attr("server.address").as_deref(), Some("127.0.0.1"));
        assert!(call.attr("gen_ai.usage.output_tokens").is_some(), "{call:#?}");
        assert!(call.attr("gen_ai.input.messages").is_none(), "no content unless asked: {call:#?}");
    }
    let tool = one(&spans, "the tool span", |s| s.name == "execute_tool time");
    assert_eq!(tool.parent_span_id.as_ref(), Some(&run.span_id));
    assert_eq!(tool.attr("gen_ai.tool.name").as_deref(), Some("time"));
    let finish: Vec<String> = calls.iter().filter_map(|c| c.attr("gen_ai.response.finish_reasons")).collect();
    assert!(
        finish.iter().any(|f| f.contains("tool_calls")) && finish.iter().any(|f| f.contains("stop")),
        "{finish:?}"
    );

    // The upstream saw each call's span as its parent.
    let sent = up.requests_to("/chat/completions");
    assert_eq!(sent.len(), 2);
    for request in &sent {
        let traceparent = request.header("traceparent").expect("traceparent sent upstream");
        let parts: Vec<&str> = traceparent.split('-').collect();
        assert_eq!(parts[1], CALLER_TRACE, "{traceparent}");
        assert!(calls.iter().any(|c| c.span_id == parts[2]), "{traceparent} names a model-call span");
    }

    let health = one(&spans, "the WebSocket call span", |s| s.name == "health");
    assert_eq!(health.attr("rpc.method").as_deref(), Some("health"));
    assert_eq!(health.kind, "SPAN_KIND_SERVER");

    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let wanted = [
        "http.server.request.duration",
        "gen_ai.client.token.usage",
        "gateway.run.duration",
        "rpc.server.call.duration",
        "gateway.ws.handshakes",
        "gateway.config_generation",
        "gateway.auth_failures",
        "process.memory.usage",
    ];
    loop {
        let names = receiver.metric_names();
        if wanted.iter().all(|w| names.iter().any(|n| n == w)) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "metrics missing from {names:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_jsonl_export_writes_tau_records_and_content_only_when_asked() {
    let home = Home::new();
    let file = home.path().join("otel.jsonl");
    let d = home.start_with(&format!(
        "[observability]\notel_jsonl_path = \"{}\"\ncapture_content = true\n",
        file.display()
    ));
    chat(d.port, &home.token(), "echo", "remember the tulips");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let lines = loop {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        if lines.iter().any(|l| l["name"] == "chat echo") {
            break lines;
        }
        assert!(std::time::Instant::now() < deadline, "no model-call span in {}: {text}", file.display());
        std::thread::sleep(Duration::from_millis(200));
    };
    for l in &lines {
        assert_eq!(l["record_type"], "otel_export_v1", "{l}");
        assert_eq!(l["schema_version"], 1);
        assert_eq!(l["resource"]["service.name"], "gatewayd", "{l}");
    }
    let call = lines.iter().find(|l| l["name"] == "chat echo").unwrap();
    assert_eq!(call["signal"], "trace");
    let input = call["attributes"]["gen_ai.input.messages"].as_str().expect("content captured");
    assert!(input.contains("remember the tulips"), "{input}");
    let output = call["attributes"]["gen_ai.output.messages"].as_str().unwrap();
    assert!(output.contains("\"role\":\"assistant\""), "{output}");
    let mode = std::fs::metadata(&file).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777, 0o600);
}

#[test]
fn otel_variables_turn_export_off_or_are_refused_with_what_to_do() {
    let receiver = Receiver::start();
    let home = Home::new();
    let port = free_port();
    let d = home.spawn(&["--port", &port.to_string()], |cmd| {
        cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
            .env("OTEL_SDK_DISABLED", "true")
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .env("OTEL_METRIC_EXPORT_INTERVAL", "200");
    });
    d.wait_ready();
    chat(port, &home.token(), "echo", "hello");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(receiver.records().is_empty(), "OTEL_SDK_DISABLED=true: nothing exported");
    drop(d);

    let home = Home::new();
    let mut d = home.spawn(&["--port", &free_port().to_string()], |cmd| {
        cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc");
    });
    let status = d.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(78));
    let stderr = d.stderr();
    assert!(stderr.contains("OTEL_EXPORTER_OTLP_PROTOCOL=\"grpc\"") && stderr.contains("4318"), "{stderr}");
}
