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

/// Run records and stored responses past `runs.retention_days` are deleted at the first tick
/// and counted; a run a crashed process left running is marked interrupted at start and
/// counted; every cycle is a line of `runtime-events.jsonl`.
#[test]
fn retention_deletes_old_records_and_the_heartbeat_writes_its_events() {
    let home = gateway_tests::Home::new();
    let events = home.path().join("runtime-events.jsonl");
    let config = format!(
        "[gateway.heartbeat]\ninterval_ms = 200\n\n[runs]\nretention_days = 7\n\n[observability]\nevents_jsonl_path = \"{}\"\n",
        events.display()
    );
    let d = home.start_with(&config);
    let token = home.token();
    // Two stored responses (each a stateful run), one of which is made old below.
    let mut ids = Vec::new();
    for text in ["old news", "fresh news"] {
        let r = post(&d, "/v1/responses", &token, &json!({"model": "echo", "input": text}));
        assert_eq!(r.status, 200, "{}", r.body);
        ids.push(r.json()["id"].as_str().unwrap().to_owned());
    }
    drop(d);

    let db = rusqlite::Connection::open(home.state_dir(None).join("gateway.db")).unwrap();
    let ten_days_ago = gateway_proto::time::now_ms() as i64 - 10 * 86_400_000;
    let old_runs = db
        .execute(
            "UPDATE runs SET started_at_ms = ?1, ended_at_ms = ?1 WHERE run_id IN (SELECT run_id FROM runs LIMIT 1)",
            [ten_days_ago],
        )
        .unwrap();
    db.execute(
        "UPDATE responses SET created_at_ms = ?1 WHERE id = ?2",
        rusqlite::params![ten_days_ago, ids[0]],
    )
    .unwrap();
    db.execute(
        "INSERT INTO runs (run_id, agent, model, origin, status, started_at_ms) VALUES ('run_cut', 'main', 'echo/echo', 'http', 'running', ?1)",
        [ten_days_ago],
    )
    .unwrap();
    drop(db);

    let d = home.start_with(&config);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let beat = loop {
        let status = call(&d, "GET", "/gateway/status", &token, None).json();
        let beat = status["runtime_heartbeat"].clone();
        if beat["responses_pruned"] == 1 || std::time::Instant::now() > deadline {
            break beat;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(beat["responses_pruned"], 1, "{beat}");
    assert_eq!(beat["runs_pruned"], old_runs as u64, "{beat}");
    assert_eq!(beat["interrupted_runs_marked"], 1, "{beat}");
    assert!(beat["repair_actions"].as_u64() >= Some(2 + old_runs as u64), "{beat}");
    let said = beat["diagnostics"].as_array().unwrap().iter().any(|d| {
        d.as_str()
            .unwrap()
            .contains(&format!("deleted {old_runs} run record(s) and 1 stored response(s) older than 7 days"))
    });
    assert!(said, "{beat}");
    assert_eq!(call(&d, "GET", &format!("/v1/responses/{}", ids[0]), &token, None).status, 404);
    assert_eq!(call(&d, "GET", &format!("/v1/responses/{}", ids[1]), &token, None).status, 200);
    // Not deleted: interrupted just now, whatever its start.
    let db = rusqlite::Connection::open(home.state_dir(None).join("gateway.db")).unwrap();
    let status: String =
        db.query_row("SELECT status FROM runs WHERE run_id = 'run_cut'", [], |r| r.get(0)).unwrap();
    assert_eq!(status, "interrupted");
    let metrics = call(&d, "GET", "/gateway/metrics", &token, None).body;
    assert!(metrics.contains(r#"gateway_heartbeat_repairs_total{action="response_pruned"} 1"#), "{metrics}");
    assert!(
        metrics.contains(r#"gateway_heartbeat_repairs_total{action="interrupted_run_marked"} 1"#),
        "{metrics}"
    );

    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&events).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let has =
        |code: &str| lines.iter().any(|l| l["reason_codes"].as_array().unwrap().iter().any(|r| r == code));
    assert!(has("healthy_cycle") && has("retention_applied"), "{lines:#?}");
    let line = lines.iter().find(|l| l["reason_codes"][0] == "retention_applied").unwrap();
    assert_eq!(line["record_type"], "runtime_heartbeat_event_v1");
    assert_eq!(line["health_state"], "healthy", "{line}");
    assert!(line["diagnostics"][0].as_str().unwrap().contains("runs.retention_days"), "{line}");
    assert!(line["tick_count"].as_u64() >= Some(1), "{line}");
}
