//! Prometheus metrics at `/gateway/metrics`: a real Prometheus (Debian's) scrapes them with the
//! scrapers' token and finds our series with the traffic the test made; the endpoint's auth;
//! labels that stay bounded whatever the paths; and `metrics.enabled`.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use gateway_tests::http1;
use gateway_tests::prometheus::Prometheus;
use gateway_tests::upstream::{upstream_provider, Upstream};
use gateway_tests::ws::{Client, Connect};
use gateway_tests::*;
use serde_json::json;

const SCRAPER_TOKEN: &str = "scraper-token-5d1f0a9c7e3b";

fn chat(port: u16, token: &str) {
    let auth = format!("Bearer {token}");
    let body =
        json!({ "model": "echo", "messages": [{ "role": "user", "content": "count me" }] }).to_string();
    let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
    let r = http1::request(port, "POST", "/v1/chat/completions", &headers, Some(&body)).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn a_real_prometheus_scrapes_the_gateway_with_the_scrapers_token() {
    let home = Home::new();
    let token_file = home.path().join("metrics.token");
    std::fs::write(&token_file, SCRAPER_TOKEN).unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let d = home.start_with(&format!("[metrics]\ntoken = \"file:{}\"\n", token_file.display()));
    let token = home.token();
    for _ in 0..3 {
        chat(d.port, &token);
    }
    let (mut ws, _) = Client::connect(d.port, &Connect { token: Some(&token), ..Default::default() });
    ws.request("health", json!({}));
    assert_eq!(http(d.port, "GET", "/gateway/status", &[("Authorization", "Bearer wrong")]).0, 401);

    let prometheus = Prometheus::scraping(d.port, &token_file);
    let wait = Duration::from_secs(30);
    assert_eq!(prometheus.value(r#"up{job="gateway"}"#, wait), 1.0, "{}", prometheus.log());
    let chats = r#"gateway_http_requests_total{route="/v1/chat/completions",status="2xx"}"#;
    assert_eq!(prometheus.value(chats, wait), 3.0);
    assert_eq!(prometheus.value(r#"gateway_runs_ended_total{provider="echo",outcome="ok"}"#, wait), 3.0);
    assert_eq!(prometheus.value(r#"gateway_ws_rpc_calls_total{method="health",outcome="ok"}"#, wait), 1.0);
    assert_eq!(prometheus.value(r#"gateway_ws_handshakes_total{outcome="accepted"}"#, wait), 1.0);
    assert_eq!(prometheus.value("gateway_ws_connections", wait), 1.0);
    assert!(prometheus.value("gateway_auth_failures_total", wait) >= 1.0);
    assert_eq!(prometheus.value("gateway_config_generation", wait), 1.0);
    assert!(prometheus.value("process_resident_memory_bytes", wait) > 1e6);
    assert!(prometheus.value("process_open_fds", wait) > 3.0);
    let p50 = r#"histogram_quantile(0.5, sum by (le) (gateway_http_request_duration_seconds_bucket{route="/v1/chat/completions"}))"#;
    let p50 = prometheus.value(p50, wait);
    assert!(p50 > 0.0 && p50 < 1.0, "chat p50 {p50} s");
}

#[test]
fn metrics_need_credentials_keep_labels_bounded_and_can_be_turned_off() {
    let home = Home::new();
    let d = home.start_with(&format!("[metrics]\ntoken = \"{SCRAPER_TOKEN}\"\n"));
    let token = home.token();
    let scraper = format!("Bearer {SCRAPER_TOKEN}");
    let gateway = format!("Bearer {token}");
    assert_eq!(http(d.port, "GET", "/gateway/metrics", &[]).0, 401);
    assert_eq!(http(d.port, "GET", "/gateway/metrics", &[("Authorization", "Bearer nope")]).0, 401);
    // The scrapers' token opens the metrics and nothing else.
    assert_eq!(http(d.port, "GET", "/gateway/status", &[("Authorization", scraper.as_str())]).0, 401);
    for n in 0..20 {
        http(d.port, "GET", &format!("/no/such/path/{n}"), &[]);
    }
    let r = http1::request(d.port, "GET", "/gateway/metrics", &[("Authorization", scraper.as_str())], None)
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let kind =
        r.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("content-type")).map(|(_, v)| v.as_str());
    assert_eq!(kind, Some("application/openmetrics-text; version=1.0.0; charset=utf-8"));
    assert!(r.body.ends_with("# EOF\n"), "{}", r.body);
    assert!(r.body.contains(r#"gateway_http_requests_total{route="other",status="4xx"} 20"#), "{}", r.body);
    assert!(!r.body.contains("/no/such"), "paths never become labels");
    assert!(!r.body.contains(SCRAPER_TOKEN) && !r.body.contains(&token));
    assert_eq!(http(d.port, "GET", "/gateway/metrics", &[("Authorization", gateway.as_str())]).0, 200);

    home.write_config(None, &format!("[metrics]\nenabled = false\ntoken = \"{SCRAPER_TOKEN}\"\n"));
    assert!(home.ctl(&["reload"]).status.success());
    let (status, body) = http(d.port, "GET", "/gateway/metrics", &[("Authorization", gateway.as_str())]);
    assert_eq!(status, 404);
    assert!(body.contains("metrics.enabled"), "{body}");
}

#[test]
fn provider_errors_retries_and_tokens_are_counted_by_provider() {
    let up = Upstream::start();
    let home = Home::new();
    let provider = upstream_provider(&up, &["echo", "fault-503-then-ok", "fault-400"])
        .replace("max_retries = 0", "max_retries = 1");
    let d = home.start_with(&provider);
    let token = home.token();
    let ask = |model: &str| {
        let auth = format!("Bearer {token}");
        let body = json!({ "model": format!("up/{model}"), "messages": [{ "role": "user", "content": "three little words" }] }).to_string();
        let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
        http1::request(d.port, "POST", "/v1/chat/completions", &headers, Some(&body)).unwrap().status
    };
    assert_eq!((ask("echo"), ask("fault-503-then-ok"), ask("fault-400")), (200, 200, 502));
    let r = http1::request(
        d.port,
        "GET",
        "/gateway/metrics",
        &[("Authorization", &format!("Bearer {token}"))],
        None,
    )
    .unwrap();
    let has = |line: &str| assert!(r.body.lines().any(|l| l == line), "no {line:?} in\n{}", r.body);
    has(r#"gateway_provider_retries_total{provider="up"} 1"#);
    has(r#"gateway_provider_errors_total{provider="up",kind="upstream_error"} 1"#);
    has(r#"gateway_runs_ended_total{provider="up",outcome="error"} 1"#);
    has(r#"gateway_tokens_total{provider="up",model="echo",direction="out"} 3"#);
}

#[test]
fn a_dedicated_loopback_listener_serves_the_metrics_alone() {
    let home = Home::new();
    let listen = free_port();
    let d = home
        .start_with(&format!("[metrics]\ntoken = \"{SCRAPER_TOKEN}\"\nlisten = \"127.0.0.1:{listen}\"\n"));
    chat(d.port, &home.token());
    let scraper = format!("Bearer {SCRAPER_TOKEN}");
    for path in ["/metrics", "/gateway/metrics"] {
        let r = http1::request(listen, "GET", path, &[("Authorization", scraper.as_str())], None).unwrap();
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert!(
            r.body.contains(r#"gateway_http_requests_total{route="/v1/chat/completions",status="2xx"} 1"#),
            "{}",
            r.body
        );
    }
    assert_eq!(http(listen, "GET", "/metrics", &[]).0, 401, "the same credentials");
    let gateway = format!("Bearer {}", home.token());
    assert_eq!(
        http(listen, "GET", "/v1/models", &[("Authorization", gateway.as_str())]).0,
        404,
        "the metrics alone"
    );
    assert_eq!(http(listen, "GET", "/gateway/status", &[("Authorization", gateway.as_str())]).0, 404);
    drop(d);

    let home = Home::new();
    home.write_config(None, "[metrics]\nlisten = \"0.0.0.0:9464\"\n");
    let out =
        home.command(&bin("gatewayd")).args(["run", "--port", &free_port().to_string()]).output().unwrap();
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("gateway.toml:2:")
            && stderr.contains("metrics.listen")
            && stderr.contains("loopback"),
        "{stderr}"
    );
}
