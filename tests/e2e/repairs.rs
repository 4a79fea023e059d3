//! The heartbeat repairs, not only ticks: a run that makes no progress is stopped as `stuck`
//! and its caller told so; the status report's `runtime_heartbeat` block counts it.

use gateway_tests::api::*;
use gateway_tests::upstream::{upstream_provider, Upstream};
use serde_json::json;

#[test]
fn a_run_that_makes_no_progress_is_stopped_as_stuck_and_counted() {
    let up = Upstream::start();
    // The provider's own timeouts are far away: only the heartbeat can end this run.
    let provider = upstream_provider(&up, &["stall-after-1"])
        + "first_byte_timeout_ms = 600000\nidle_timeout_ms = 600000\n";
    let config =
        format!("{provider}\n[runs]\nstuck_after_ms = 1000\n\n[gateway.heartbeat]\ninterval_ms = 200\n");
    let (_home, d, token) = start_gateway(&config);

    let started = std::time::Instant::now();
    let body = json!({"model": "up/stall-after-1", "messages": [{"role": "user", "content": "hello"}]});
    let r = post(&d, "/v1/chat/completions", &token, &body);
    assert_eq!(r.status, 504, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], "stuck", "{}", r.body);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("runs.stuck_after_ms"), "{}", r.body);
    assert!(started.elapsed().as_secs() < 30, "stopped by the heartbeat, not a provider timeout");

    let status = call(&d, "GET", "/gateway/status", &token, None).json();
    let beat = &status["runtime_heartbeat"];
    assert_eq!(
        (beat["run_state"].as_str(), beat["interval_ms"].as_u64()),
        (Some("running"), Some(200)),
        "{beat}"
    );
    assert_eq!(beat["stuck_jobs"], 1, "{beat}");
    assert!(beat["repair_actions"].as_u64() >= Some(1), "{beat}");
    assert!(beat["tick_count"].as_u64() >= Some(5), "{beat}");
    assert_eq!(beat["queue_depth"], 0, "{beat}");
    let said = beat["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d.as_str().unwrap().contains("stopped 1 stuck run: run_"));
    assert!(said, "{beat}");
    let metrics = call(&d, "GET", "/gateway/metrics", &token, None).body;
    assert!(
        metrics.contains(r#"gateway_heartbeat_repairs_total{action="stuck_run_stopped"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"gateway_runs_ended_total{provider="up",outcome="error"} 1"#), "{metrics}");
    // Later ticks found nothing to repair.
    assert!(
        beat["reason_codes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "healthy_cycle" || r == "stuck_run_stopped"),
        "{beat}"
    );
}
