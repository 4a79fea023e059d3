//! Scheduled jobs against the real daemon: jobs added with gatewayctl and over the WebSocket
//! fire and are listed with their runs; a kill -9 during a run leaves it `interrupted` and the
//! next run happens; runs missed during downtime run once (or are skipped); webhook delivery
//! reaches a local receiver; the rollout gate holds after two failures and passes again after a
//! success; jobs declared in the config follow its reloads. Schedules are seconds long, so the
//! tests wait for real slots rather than a clock they set.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use gateway_tests::upstream::{upstream_provider, Upstream};
use gateway_tests::ws::{Client, Device};
use gateway_tests::*;
use nix::sys::signal::Signal;
use serde_json::{json, Value};

fn ctl_json(home: &Home, args: &[&str]) -> Value {
    let out = home.ctl(args);
    assert!(
        out.status.success(),
        "gatewayctl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn runs(home: &Home, job: &str) -> Vec<Value> {
    ctl_json(home, &["cron", "runs", job, "--json"]).as_array().unwrap().clone()
}

/// Waits until a run of `job` matches `wanted`, and returns it.
fn wait_run(home: &Home, job: &str, timeout: Duration, wanted: impl Fn(&Value) -> bool) -> Value {
    wait_for(timeout, &format!("a run of {job}"), || runs(home, job).into_iter().find(|r| wanted(r)))
}

/// The status report's events block, over the main port as a client reads it.
fn events(home: &Home, d: &Daemon) -> Value {
    let bearer = format!("Bearer {}", home.token());
    let (status, report) = d.get("/gateway/status", &[("Authorization", &bearer)]);
    assert_eq!(status, 200, "{report}");
    report["events"].clone()
}

#[test]
fn a_job_added_with_gatewayctl_fires_and_its_runs_are_listed() {
    let home = Home::new();
    let d = home.start(&["--port", &free_port().to_string()]);

    let job = ctl_json(
        &home,
        &["cron", "add", "--name", "tick", "--every", "1s", "--message", "hello from cron", "--json"],
    );
    assert_eq!(job["name"], "tick");
    assert_eq!(job["schedule"], json!({"kind": "every", "everyMs": 1000, "anchorMs": job["createdAtMs"]}));
    assert_eq!(job["sessionTarget"], "isolated");

    let run = wait_run(&home, "tick", Duration::from_secs(15), |r| r["status"] == "ok");
    assert_eq!(run["trigger"], "schedule");
    assert_eq!(run["reasonCode"], "completed");
    assert_eq!(run["summary"], "hello from cron", "the echo model answers with the message");
    assert_eq!(run["delivery"], "none");
    let session = run["sessionKey"].as_str().unwrap();
    assert!(session.starts_with(&format!("cron:{}:", job["id"].as_str().unwrap())), "{session}");

    // The status report's events block and `status --deep` see it.
    let e = events(&home, &d);
    assert_eq!(e["rollout_gate"], "pass", "{e}");
    assert_eq!(e["reason_code"], "events_healthy", "{e}");
    assert_eq!(e["discovered_events"], 1, "{e}");
    assert_eq!(e["enabled_events"], 1, "{e}");
    assert!(e["executed_history_entries"].as_u64().unwrap() >= 1, "{e}");
    assert!(e["last_execution_unix_ms"].as_u64().is_some(), "{e}");
    let deep = String::from_utf8_lossy(&home.ctl(&["status", "--deep"]).stdout).into_owned();
    assert!(deep.contains("rollout gate: pass (events_healthy)"), "{deep}");
    let bearer = format!("Bearer {}", home.token());
    let (_, metrics) = http(d.port, "GET", "/gateway/metrics", &[("Authorization", &bearer)]);
    assert!(metrics.contains("gateway_cron_runs_total{outcome=\"ok\",trigger=\"schedule\"}"), "{metrics}");

    // list, show (by id or name), disable, enable, rm.
    let listed = ctl_json(&home, &["cron", "list", "--json"]);
    assert_eq!(listed[0]["id"], job["id"]);
    let shown = ctl_json(&home, &["cron", "show", job["id"].as_str().unwrap(), "--json"]);
    assert_eq!(shown["name"], "tick");
    let text = String::from_utf8_lossy(&home.ctl(&["cron", "disable", "tick"]).stdout).into_owned();
    assert!(text.contains("job tick disabled; next run none"), "{text}");
    let settled = runs(&home, "tick").len();
    std::thread::sleep(Duration::from_millis(2_500));
    assert!(runs(&home, "tick").iter().all(|r| r["status"] != "running"));
    assert_eq!(runs(&home, "tick").len(), settled, "a disabled job does not run");
    assert!(home.ctl(&["cron", "enable", "tick"]).status.success());
    let out = home.ctl(&["cron", "rm", "tick"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed job tick"), "{out:?}");
    let out = home.ctl(&["cron", "show", "tick"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("no scheduled job \"tick\": see `gatewayctl cron list`"),
        "{out:?}"
    );

    // Bad definitions are refused with what to write.
    let out = home.ctl(&["cron", "add", "--cron", "61 * * * *", "--message", "x"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not parse"), "{out:?}");
    let out = home.ctl(&["cron", "add", "--cron", "0 7 * * *", "--tz", "Mars/Olympus", "--message", "x"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("IANA"), "{out:?}");
    let out = home.ctl(&["cron", "add", "--at", "2020-01-01T00:00:00Z", "--message", "x"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("has passed"), "{out:?}");
}

#[test]
fn a_one_shot_job_runs_once_and_the_websocket_methods_serve_the_same_jobs() {
    let home = Home::new();
    let d = home.start(&["--port", &free_port().to_string()]);
    let (mut c, _) = Client::paired(d.port, &home.token(), &Device::new(7));

    let added = c.request(
        "cron.add",
        json!({"name": "once", "schedule": {"kind": "at", "at": "+1s"}, "sessionTarget": "session",
               "sessionKey": "reminders", "payload": {"kind": "agentTurn", "message": "stand up"}}),
    );
    assert_eq!(added["ok"], true, "{added}");
    let id = added["payload"]["id"].as_str().unwrap().to_owned();
    let at = added["payload"]["schedule"]["at"].as_str().unwrap();
    assert!(at.ends_with('Z'), "a relative time is stored absolute: {at}");

    let run = wait_run(&home, "once", Duration::from_secs(15), |r| r["status"] == "ok");
    assert_eq!(run["sessionKey"], "reminders");
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(runs(&home, "once").len(), 1, "a one-shot runs once");
    let listed = c.request("cron.list", json!({}));
    assert_eq!(listed["payload"]["jobs"][0]["state"]["nextRunAtMs"], Value::Null, "{listed}");

    let entries = c.request("cron.runs", json!({"jobId": id}));
    assert_eq!(entries["payload"]["entries"][0]["status"], "ok", "{entries}");
    let ran = c.request("cron.run", json!({"id": "once", "waitMs": 10000}));
    assert_eq!(ran["payload"]["run"]["trigger"], "manual", "{ran}");
    assert_eq!(ran["payload"]["run"]["status"], "ok", "{ran}");
    let updated = c.request("cron.update", json!({"id": id, "patch": {"message": "sit down"}}));
    assert_eq!(updated["payload"]["payload"]["message"], "sit down", "{updated}");
    let status = c.request("cron.status", json!({}));
    assert_eq!(status["payload"]["events"]["rollout_gate"], "pass", "{status}");
    let removed = c.request("cron.remove", json!({"id": id}));
    assert_eq!(removed["payload"]["removed"], true, "{removed}");
    let gone = c.request("cron.remove", json!({"id": id}));
    assert_eq!(gone["ok"], false, "{gone}");
}

#[test]
fn kill_9_during_a_run_marks_it_interrupted_and_the_next_run_happens() {
    let up = Upstream::start();
    let home = Home::new();
    let config = upstream_provider(&up, &["stall-after-1", "echo"]);
    let mut d = home.start_with(&config);
    ctl_json(
        &home,
        &[
            "cron",
            "add",
            "--name",
            "slow",
            "--every",
            "2s",
            "--model",
            "up/stall-after-1",
            "--message",
            "take your time",
            "--json",
        ],
    );
    wait_run(&home, "slow", Duration::from_secs(15), |r| r["status"] == "running");
    d.signal(Signal::SIGKILL);
    d.wait_exit(Duration::from_secs(5));

    // The next start finds the run going, marks it, then the job runs again (caught up once).
    let _d = home.start_with(&config);
    let interrupted = wait_run(&home, "slow", Duration::from_secs(10), |r| r["status"] == "interrupted");
    assert_eq!(interrupted["reasonCode"], "interrupted_by_restart", "{interrupted}");
    assert!(home.ctl(&["cron", "edit", "slow", "--model", "up/echo"]).status.success());
    let next = wait_run(&home, "slow", Duration::from_secs(15), |r| r["status"] == "ok");
    assert_eq!(next["summary"], "take your time");
}

#[test]
fn runs_missed_during_downtime_run_once_or_are_skipped() {
    let home = Home::new();
    let mut d = home.start(&["--port", &free_port().to_string()]);
    ctl_json(&home, &["cron", "add", "--name", "catch", "--every", "1s", "--message", "catch up", "--json"]);
    ctl_json(
        &home,
        &[
            "cron",
            "add",
            "--name",
            "skipper",
            "--every",
            "1s",
            "--missed",
            "skip",
            "--message",
            "skip it",
            "--json",
        ],
    );
    wait_run(&home, "catch", Duration::from_secs(15), |r| r["status"] == "ok");
    let before = runs(&home, "catch");
    d.signal(Signal::SIGTERM);
    d.wait_exit(Duration::from_secs(10));
    // Four slots pass while the daemon is down.
    std::thread::sleep(Duration::from_secs(4));
    let _d = home.start(&["--port", &free_port().to_string()]);
    let missed = wait_run(&home, "catch", Duration::from_secs(10), |r| {
        r["trigger"] == "missed" && r["status"] != "running"
    });
    assert_eq!(missed["status"], "ok", "{missed}");
    let skipped = wait_run(&home, "skipper", Duration::from_secs(10), |r| r["status"] == "skipped");
    assert_eq!(skipped["reasonCode"], "missed_skipped", "{skipped}");
    std::thread::sleep(Duration::from_millis(1_500));
    let caught: Vec<Value> = runs(&home, "catch").into_iter().filter(|r| r["trigger"] == "missed").collect();
    assert_eq!(caught.len(), 1, "four missed slots, one run: {caught:?}");
    assert!(runs(&home, "catch").len() > before.len());
}

/// A loopback HTTP server that takes each request's body and answers 200.
fn receiver() -> (u16, mpsc::Receiver<Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut data = Vec::new();
            let mut buf = [0u8; 8192];
            loop {
                let n = stream.read(&mut buf).unwrap_or(0);
                data.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&data).into_owned();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        let _ = tx.send(serde_json::from_str(&body[..len]).unwrap_or(Value::Null));
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (port, rx)
}

#[test]
fn webhook_delivery_reaches_a_local_receiver_and_other_local_hosts_are_refused() {
    let (port, received) = receiver();
    let home = Home::new();
    let _d = home.start_with("[cron]\nwebhook_allow_hosts = [\"127.0.0.1\"]\n");
    let url = format!("webhook:http://127.0.0.1:{port}/hook");
    ctl_json(
        &home,
        &[
            "cron",
            "add",
            "--name",
            "report",
            "--at",
            "+1s",
            "--message",
            "daily report",
            "--deliver",
            &url,
            "--json",
        ],
    );
    let body = received.recv_timeout(Duration::from_secs(15)).expect("the webhook is called");
    assert_eq!(body["jobName"], "report", "{body}");
    assert_eq!(body["answer"], "daily report", "{body}");
    assert_eq!(body["status"], "ok", "{body}");
    let run = wait_run(&home, "report", Duration::from_secs(5), |r| r["delivery"] == "delivered");
    assert_eq!(run["status"], "ok");

    // The same server by another name is not on the allowlist: refused, and said so.
    let url = format!("webhook:http://localhost:{port}/hook");
    ctl_json(
        &home,
        &["cron", "add", "--name", "sneaky", "--at", "+1s", "--message", "x", "--deliver", &url, "--json"],
    );
    let run = wait_run(&home, "sneaky", Duration::from_secs(15), |r| r["delivery"] == "failed");
    let why = run["deliveryError"].as_str().unwrap();
    assert!(why.contains("refused") && why.contains("cron.webhook_allow_hosts"), "{why}");
    assert!(received.recv_timeout(Duration::from_millis(500)).is_err(), "nothing reached the receiver");
}

#[test]
fn the_rollout_gate_holds_after_two_failures_and_passes_after_a_success() {
    let up = Upstream::start();
    let home = Home::new();
    let d = home.start_with(&upstream_provider(&up, &["fault-503", "echo"]));
    ctl_json(
        &home,
        &[
            "cron",
            "add",
            "--name",
            "flaky",
            "--every",
            "1h",
            "--model",
            "up/fault-503",
            "--message",
            "try",
            "--json",
        ],
    );
    for attempt in 1..=2 {
        let out = home.ctl(&["cron", "run", "flaky", "--json"]);
        assert_eq!(out.status.code(), Some(1), "a failed run exits 1");
        let run: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(run["status"], "error", "{run}");
        assert_eq!(run["retryable"], true, "{run}");
        let e = events(&home, &d);
        if attempt == 1 {
            assert_eq!(e["rollout_gate"], "pass", "{e}");
        }
    }
    let e = events(&home, &d);
    assert_eq!(e["rollout_gate"], "hold", "{e}");
    assert_eq!(e["reason_code"], "failure_streak_threshold", "{e}");
    assert_eq!(e["health_state"], "degraded", "{e}");
    assert_eq!(e["failed_history_entries"], 2, "{e}");
    assert!(e["diagnostics"][0].as_str().unwrap().contains("job flaky failed 2 time(s) in a row"), "{e}");
    let deep = String::from_utf8_lossy(&home.ctl(&["status", "--deep"]).stdout).into_owned();
    assert!(deep.contains("rollout gate: hold (failure_streak_threshold)"), "{deep}");

    assert!(home.ctl(&["cron", "edit", "flaky", "--model", "up/echo"]).status.success());
    let out = home.ctl(&["cron", "run", "flaky", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let e = events(&home, &d);
    assert_eq!(e["rollout_gate"], "pass", "{e}");
    assert_eq!(e["reason_code"], "events_healthy", "{e}");
}

#[test]
fn jobs_declared_in_the_config_follow_its_reloads() {
    let home = Home::new();
    let job = |every: &str| {
        format!("[[cron.jobs]]\nname = \"declared\"\nevery = \"{every}\"\nmessage = \"from the file\"\n")
    };
    let _d = home.start_with(&job("1s"));
    let listed = ctl_json(&home, &["cron", "list", "--json"]);
    assert_eq!(listed[0]["id"], "cfg:declared", "{listed}");
    assert_eq!(listed[0]["source"], "config");
    wait_run(&home, "declared", Duration::from_secs(15), |r| r["status"] == "ok");

    // Changed only in the file.
    let out = home.ctl(&["cron", "rm", "declared"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("declared in the config file"), "{out:?}");
    // Disabled by hand: it stays so through reloads that leave its entry alone.
    assert!(home.ctl(&["cron", "disable", "declared"]).status.success());
    home.write_config(None, &format!("{}[gateway.heartbeat]\ninterval_ms = 5000\n", job("1s")));
    assert!(home.ctl(&["reload"]).status.success());
    assert_eq!(ctl_json(&home, &["cron", "show", "declared", "--json"])["enabled"], false);

    // A broken entry is refused with its key and line; the job in effect stays.
    home.write_config(
        None,
        &format!(
            "{}tz = \"Mars/Olympus\"\ncron = \"0 7 * * *\"\n",
            job("1s").replace("every = \"1s\"\n", "")
        ),
    );
    let out = home.ctl(&["reload"]);
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        err.contains("gateway.toml:4:1: key `cron.jobs[0].tz`") && err.contains("IANA"),
        "file, line, key: {err}"
    );
    assert_eq!(ctl_json(&home, &["cron", "show", "declared", "--json"])["schedule"]["everyMs"], 1000);

    // Changed in the file: applied; removed from the file: gone.
    home.write_config(None, &job("1h"));
    assert!(home.ctl(&["reload"]).status.success());
    let changed = ctl_json(&home, &["cron", "show", "declared", "--json"]);
    assert_eq!(changed["schedule"]["everyMs"], 3_600_000);
    assert_eq!(changed["enabled"], true, "a changed entry is applied as the file says");
    home.write_config(None, "");
    assert!(home.ctl(&["reload"]).status.success());
    assert_eq!(ctl_json(&home, &["cron", "list", "--json"]), json!([]));
}
