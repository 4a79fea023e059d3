//! Hot reload: applied, rejected (old config keeps serving), unchanged, restart-required.

use std::time::Duration;

use gateway_tests::*;
use serde_json::Value;

fn status(home: &Home) -> Value {
    control(&home.socket(None), "GET", "/v1/status")
}

fn wait_generation(home: &Home, generation: u64) -> Value {
    wait_for(Duration::from_secs(5), &format!("generation {generation}"), || {
        let s = status(home);
        // The report of the reload that made it is recorded just after the swap.
        (s["config"]["generation"] == generation && s["last_reload"]["generation"] == generation).then_some(s)
    })
}

fn wait_outcome(home: &Home, outcome: &str, count: usize) -> Value {
    let counter = match outcome {
        "rejected" => "reloads_rejected",
        "unchanged" => "reloads_unchanged",
        _ => "reloads_applied",
    };
    wait_for(Duration::from_secs(5), &format!("{count} {outcome} reloads"), || {
        let s = status(home);
        (s["counters"][counter].as_u64() >= Some(count as u64)).then_some(s)
    })
}

#[test]
fn edits_apply_hot_and_bad_edits_keep_the_old_config_serving() {
    let home = Home::new();
    let port = free_port();
    home.write_config(None, "[gateway.auth]\ntoken = \"first-token-0001\"\n");
    let d = home.start(&["--port", &port.to_string()]);
    let auth = |t: &str| format!("Bearer {t}");
    let generation =
        |t: &str| d.get("/gateway/status", &[("Authorization", &auth(t))]).1["config"]["generation"].clone();
    assert_eq!(generation("first-token-0001"), 1);

    // A valid edit applies: the new token is in effect.
    home.write_config(None, "[gateway.auth]\ntoken = \"second-token-002\"\n[logging]\nlevel = \"debug\"\n");
    let s = wait_generation(&home, 2);
    assert_eq!(s["last_reload"]["outcome"], "applied");
    assert_eq!(s["last_reload"]["trigger"], "watcher");
    let changed: Vec<&str> =
        s["last_reload"]["changed_keys"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(changed, ["gateway.auth.token", "logging.level"]);

    // A broken edit is rejected with file, line and key; generation 2 keeps serving.
    home.write_config(None, "[gateway.auth]\ntoken = \"third-token-0003\"\n[logging]\nlevel = \"loud\"\n");
    let s = wait_outcome(&home, "rejected", 1);
    assert_eq!(s["config"]["generation"], 2);
    let err = &s["last_reload"]["errors"][0];
    assert_eq!(err["line"], 4, "{s}");
    assert_eq!(err["key"], "logging.level");
    assert!(err["file"].as_str().unwrap().ends_with("gateway.toml"));
    let authed = |t: &str| d.get("/gateway/status", &[("Authorization", &auth(t))]).0;
    assert_eq!(authed("second-token-002"), 200, "the config in effect keeps serving");
    assert_eq!(authed("third-token-0003"), 401, "nothing of the rejected file applies");
    let health = control(&home.socket(None), "GET", "/v1/health");
    assert!(health.to_string().contains("the last edit was rejected"), "{health}");

    // A truncated, half-written file is rejected too.
    home.write_config(None, "[gateway.auth]\ntoken = \"third-tok");
    let s = wait_outcome(&home, "rejected", 2);
    assert_eq!(s["config"]["generation"], 2);

    // Writing back what is in effect changes nothing.
    home.write_config(
        None,
        "# a comment\n[logging]\nlevel = \"debug\"\n[gateway.auth]\ntoken = \"second-token-002\"\n",
    );
    let s = wait_outcome(&home, "unchanged", 1);
    assert_eq!(s["config"]["generation"], 2);
}

#[test]
fn explicit_reload_reports_its_outcome() {
    let home = Home::new();
    home.write_config(None, "[gateway.reload]\nmode = \"off\"\n");
    let d = home.start(&["--port", &free_port().to_string()]);
    let socket = home.socket(None);
    // Mode off: the watcher ignores edits...
    home.write_config(None, "[gateway.reload]\nmode = \"off\"\n[gateway.heartbeat]\ninterval_ms = 1000\n");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(status(&home)["config"]["generation"], 1);
    // ...and `reload` applies them.
    let r = control(&socket, "POST", "/v1/reload");
    assert_eq!(
        (r["outcome"].as_str(), r["generation"].as_u64(), r["trigger"].as_str()),
        (Some("applied"), Some(2), Some("control"))
    );
    let r = control(&socket, "POST", "/v1/reload");
    assert_eq!(r["outcome"], "unchanged");
    home.write_config(None, "[gateway.reload]\nmode = \"off\"\nbogus = 1\n");
    let r = control(&socket, "POST", "/v1/reload");
    assert_eq!(r["outcome"], "rejected");
    assert_eq!(r["errors"][0]["key"], "gateway.reload.bogus");
    assert_eq!(r["errors"][0]["line"], 3);

    // SIGHUP runs the same transaction.
    home.write_config(None, "[gateway.reload]\nmode = \"off\"\n[logging]\nlevel = \"warn\"\n");
    d.signal(nix::sys::signal::Signal::SIGHUP);
    let s = wait_generation(&home, 3);
    assert_eq!(s["last_reload"]["trigger"], "signal");

    // gatewayctl reload: exit 0 when applied, 78 when rejected, with the error located.
    home.write_config(None, "[gateway.reload]\nmode = \"off\"\n[logging]\nlevel = \"error\"\n");
    let out = home.ctl(&["reload", "--wait"]);
    assert!(out.status.success(), "{out:?}");
    home.write_config(None, "[gateway.reload]\nmode = \"off\"\n[logging]\nlevel = 5\n");
    let out = home.ctl(&["reload", "--wait"]);
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("gateway.toml:4:") && text.contains("logging.level"), "{text}");
}

#[test]
fn restart_required_change_reexecs_unsupervised() {
    let home = Home::new();
    let (old_port, new_port) = (free_port(), free_port());
    home.write_config(None, &format!("[gateway]\nport = {old_port}\n"));
    let mut d = home.spawn(&[], |_| {});
    d.port = old_port;
    d.wait_ready();
    let before = status(&home);
    home.write_config(None, &format!("[gateway]\nport = {new_port}\n"));
    // Same process (re-executed in place), now on the new port, config read afresh.
    let after = wait_for(Duration::from_secs(10), "restart on the new port", || {
        let (code, _) = try_http(new_port, "GET", "/readyz", &[]).ok()?;
        let s = unix_http(&home.socket(None), "GET", "/v1/status", &[]).ok()?;
        (code == 200).then(|| serde_json::from_str::<Value>(&s.1).unwrap())
    });
    assert_eq!(after["pid"], before["pid"]);
    assert_eq!(after["listen"]["port"], new_port);
    assert!(after["started_at_ms"].as_u64() > before["started_at_ms"].as_u64());
    assert!(try_http(old_port, "GET", "/healthz", &[]).is_err());
    assert!(d.child.try_wait().unwrap().is_none());
}

#[test]
fn hot_mode_defers_restart_keys() {
    let home = Home::new();
    let port = free_port();
    home.write_config(None, &format!("[gateway]\nport = {port}\n[gateway.reload]\nmode = \"hot\"\n"));
    let mut d = home.spawn(&[], |_| {});
    d.port = port;
    d.wait_ready();
    home.write_config(
        None,
        &format!("[gateway]\nport = {}\n[gateway.reload]\nmode = \"hot\"\n", free_port()),
    );
    let s = wait_generation(&home, 2);
    assert_eq!(s["config"]["pending_restart"][0], "gateway.port");
    assert_eq!(s["listen"]["port"], port, "still on the old port until restarted");
    assert!(s["last_reload"]["message"].as_str().unwrap().contains("restart to apply gateway.port"));

    // Reverted: nothing is pending any more, and nothing says "restart to apply".
    home.write_config(None, &format!("[gateway]\nport = {port}\n[gateway.reload]\nmode = \"hot\"\n"));
    let s = wait_generation(&home, 3);
    assert_eq!(s["config"]["pending_restart"], serde_json::json!([]), "{s}");
    assert_eq!(s["last_reload"]["restart_keys"], serde_json::json!([]), "{s}");
    let out = home.ctl(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("restart to apply") && !text.contains("pending restart"), "{text}");

    // An unrelated edit that also turns restarts on does not restart: what runs has that port.
    home.write_config(
        None,
        &format!(
            "[gateway]\nport = {port}\n[gateway.reload]\nmode = \"hybrid\"\n[logging]\nlevel = \"warn\"\n"
        ),
    );
    let after = wait_generation(&home, 4);
    assert_eq!(after["last_reload"]["outcome"], "applied", "{after}");
    assert_eq!((&after["pid"], &after["started_at_ms"]), (&s["pid"], &s["started_at_ms"]), "{after}");
}

/// Reload reports people read: a new provider is named once, not by each of its settings; a
/// rejected reload does not say "rejected" twice.
#[test]
fn reload_reports_name_a_new_provider_once_and_rejections_plainly() {
    let home = Home::new();
    home.write_config(None, "[gateway.reload]\nmode = \"off\"\n");
    let _d = home.start(&["--port", &free_port().to_string()]);
    home.write_config(
        None,
        "[gateway.reload]\nmode = \"off\"\n[models.providers.local]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodels = [\"m\"]\n",
    );
    let out = home.ctl(&["reload"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(text.contains("applied: generation 2 (changed: models.providers.local)"), "{text}");
    home.write_config(None, "[gateway.reload]\nmode = \"off\"\nbogus = 1\n");
    let out = home.ctl(&["reload"]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    assert!(text.starts_with("rejected: generation 2 keeps serving\n"), "{text}");
    // The daemon says it is degraded, and why, until an edit is accepted.
    let status: serde_json::Value = serde_json::from_slice(&home.ctl(&["status", "--json"]).stdout).unwrap();
    assert_eq!(
        (status["health_state"].as_str(), status["health_reason_code"].as_str()),
        (Some("degraded"), Some("config_rejected"))
    );
    let text = String::from_utf8(home.ctl(&["status"]).stdout).unwrap();
    assert!(text.contains("health:          degraded (config_rejected)"), "{text}");
    home.write_config(None, "[gateway.reload]\nmode = \"off\"\n");
    assert!(home.ctl(&["reload"]).status.success());
    let status: serde_json::Value = serde_json::from_slice(&home.ctl(&["status", "--json"]).stdout).unwrap();
    assert_eq!(
        (status["health_state"].as_str(), status["health_reasons"].as_array().map(Vec::len)),
        (Some("healthy"), Some(0))
    );
}

#[test]
fn token_rotation_takes_effect_at_once() {
    let home = Home::new();
    let port = free_port();
    let d = home.start(&["--port", &port.to_string()]);
    let old = String::from_utf8(home.ctl(&["token", "show"]).stdout).unwrap().trim().to_owned();
    assert_eq!(old, std::fs::read_to_string(home.state_dir(None).join("token")).unwrap().trim());
    let out = home.ctl(&["token", "rotate"]);
    assert!(out.status.success(), "{out:?}");
    let new = String::from_utf8(home.ctl(&["token", "show"]).stdout).unwrap().trim().to_owned();
    assert_ne!(old, new);
    assert_eq!(new, std::fs::read_to_string(home.state_dir(None).join("token")).unwrap().trim());
    let get = |t: &str| d.get("/gateway/status", &[("Authorization", &format!("Bearer {t}"))]).0;
    assert_eq!(get(&new), 200);
    assert_eq!(get(&old), 401, "the old token stops working at once");
    drop(d);
}

/// A program that rewrites the file in place (truncate, then write) must never have its
/// in-between states applied: not an empty file, not the defaults, and never a self-restart
/// from a transient read.
#[test]
fn a_file_rewritten_in_place_is_read_only_once_it_has_settled() {
    let home = Home::new();
    let port = free_port();
    // runs.max_concurrent needs a restart: applying the defaults in between would restart the daemon.
    let text = "[runs]\nmax_concurrent = 3\n\n[gateway.heartbeat]\ninterval_ms = 20000\n".to_owned();
    home.write_config(None, &text);
    let d = home.start(&["--port", &port.to_string()]);
    let pid = status(&home)["pid"].clone();
    let path = home.config_file(None);

    // Emptied and left empty for a while: the watcher refuses it with a clear message.
    std::fs::OpenOptions::new().write(true).truncate(true).open(&path).unwrap();
    let s = wait_outcome(&home, "rejected", 1);
    assert!(s["last_reload"]["errors"][0]["message"].as_str().unwrap().contains("empty"), "{s}");
    assert_eq!((s["config"]["generation"].clone(), s["pid"].clone()), (Value::from(1), pid.clone()));

    // The same text rewritten in place, truncate then write, 100 times at 40-70 ms: nothing applies.
    for i in 0..100u64 {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().write(true).truncate(true).open(&path).unwrap();
        std::thread::sleep(Duration::from_millis(1 + i % 4));
        f.write_all(text.as_bytes()).unwrap();
        drop(f);
        std::thread::sleep(Duration::from_millis(40 + (i * 7) % 31));
    }
    std::thread::sleep(Duration::from_millis(500));
    let s = status(&home);
    assert_eq!(s["pid"], pid, "no self-restart: {s}");
    assert_eq!(s["config"]["generation"], 1, "nothing applied: {s}");
    assert_eq!(s["counters"]["reloads_applied"], 0, "{s}");
    assert_eq!(d.get("/healthz", &[]).0, 200);
}

/// Keys that vanish from the file go back to their defaults: the report names them, the log
/// warns, and `reload --wait` prints them.
#[test]
fn keys_that_vanish_from_the_file_are_named_as_back_to_their_defaults() {
    let home = Home::new();
    home.write_config(None, "[gateway.heartbeat]\ninterval_ms = 20000\n\n[logging]\nlevel = \"debug\"\n\n[gateway.reload]\nmode = \"off\"\n");
    let _d = home.start(&["--port", &free_port().to_string()]);
    // A file cut short after its third line: interval_ms and level are gone.
    home.write_config(None, "[gateway.heartbeat]\n\n[gateway.reload]\nmode = \"off\"\n");
    let out = home.ctl(&["reload", "--wait"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        said.contains("back to their defaults because the file no longer sets them: gateway.heartbeat.interval_ms, logging.level"),
        "{said}"
    );
    let s = status(&home);
    let defaulted: Vec<&str> =
        s["last_reload"]["defaulted_keys"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(defaulted, ["gateway.heartbeat.interval_ms", "logging.level"], "{s}");
    let log = wait_for(Duration::from_secs(5), "the warning in the log", || {
        let log = std::fs::read_to_string(home.state_dir(None).join("logs/gatewayd.jsonl")).ok()?;
        log.contains("reload_defaults").then_some(log)
    });
    assert!(log.contains("no longer sets gateway.heartbeat.interval_ms, logging.level"), "{log}");
}

/// Invalid UTF-8 is located; a huge wrong value is quoted short, in the report and the log.
#[test]
fn bad_bytes_and_huge_values_get_short_located_errors() {
    let home = Home::new();
    home.write_config(None, "[logging]\nlevel = \"info\"\n");
    let _d = home.start(&["--port", &free_port().to_string()]);
    std::fs::write(home.config_file(None), b"[logging]\nlevel = \"in\xFFfo\"\n").unwrap();
    let s = wait_outcome(&home, "rejected", 1);
    let e = &s["last_reload"]["errors"][0];
    assert_eq!((e["line"].as_u64(), e["column"].as_u64()), (Some(2), Some(12)), "{s}");
    let huge = format!("[gateway.heartbeat]\ninterval_ms = \"{}\"\n", "7".repeat(4_000_000));
    home.write_config(None, &huge);
    let s = wait_outcome(&home, "rejected", 2);
    let report = s["last_reload"].to_string();
    assert!(report.len() < 2_000, "a {} byte report", report.len());
    assert!(report.contains("4000000 bytes"), "{report}");
    let log = std::fs::read_to_string(home.state_dir(None).join("logs/gatewayd.jsonl")).unwrap();
    assert!(log.len() < 100_000, "the log took the whole value: {} bytes", log.len());
}
