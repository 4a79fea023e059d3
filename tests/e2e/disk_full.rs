//! A full disk, on a small tmpfs the test mounts (root only, as CI runs): writes fail with a
//! clear 503, health and readiness say `disk full on ...` with the free space, it clears by
//! itself when space returns, and a start on a full disk exits 74 with the right diagnosis.

use std::time::Duration;

use gateway_tests::api::chat_on_session;
use gateway_tests::disk::{fill, Tmpfs};
use gateway_tests::*;
use serde_json::{json, Value};

fn health(home: &Home) -> (u16, Value) {
    let (status, body) = unix_http(&home.socket(None), "GET", "/v1/health", &[]).expect("control socket");
    (status, serde_json::from_str(&body).unwrap())
}

#[test]
fn a_full_disk_is_reported_refused_clearly_and_clears_by_itself() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: mounting a small tmpfs needs root (CI runs as root)");
        return;
    }
    let disk = Tmpfs::mount("8m").unwrap();
    let state = disk.path().join("state");
    let home = Home::new();
    home.write_config(None, "[gateway.heartbeat]\ninterval_ms = 200\n");
    let port = free_port();
    let state_env = state.clone();
    let mut d = home.spawn(&["--port", &port.to_string()], |c| {
        c.env("GATEWAY_STATE_DIR", &state_env);
    });
    d.port = port;
    d.wait_ready();
    let token = std::fs::read_to_string(state.join("token")).unwrap().trim().to_owned();
    assert_eq!(chat_on_session(&d, &token, "before", json!([{"role": "user", "content": "hi"}])).status, 200);

    // The disk fills up: health and readiness say so, with the free space; writes get 503.
    let filler = fill(disk.path()).unwrap();
    let (status, report) = wait_for(Duration::from_secs(10), "health to see the full disk", || {
        let (status, report) = health(&home);
        (status == 503).then_some((status, report))
    });
    assert_eq!(status, 503);
    let detail = report.to_string();
    assert!(detail.contains("disk full on") && detail.contains("free"), "{report}");
    let (ready, body) = http(port, "GET", "/readyz", &[]);
    assert_eq!(ready, 503, "{body}");
    assert!(body.contains("disk full on"), "{body}");
    let auth = format!("Bearer {token}");
    let body = json!({"model": "echo/echo", "messages": [{"role": "user", "content": "hi"}]}).to_string();
    let headers = [("Authorization", auth.as_str()), ("x-gateway-session-key", "during")];
    let r = http1::request(port, "POST", "/v1/chat/completions", &headers, Some(&body)).unwrap();
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.header("retry-after").is_some(), "{}", r.body);
    assert!(r.body.contains("disk holding its state is full") && r.body.contains("try again"), "{}", r.body);
    let out = home.ctl(&["health"]);
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stdout).contains("disk full on"),
        "{out:?}"
    );

    // Space returns: it clears by itself, and nothing acknowledged was lost.
    std::fs::remove_file(&filler).unwrap();
    wait_for(Duration::from_secs(10), "health to clear", || (health(&home).0 == 200).then_some(()));
    assert_eq!(http(port, "GET", "/readyz", &[]).0, 200);
    assert_eq!(chat_on_session(&d, &token, "after", json!([{"role": "user", "content": "hi"}])).status, 200);
    let before = control(&home.socket(None), "GET", "/v1/status");
    assert_eq!(before["state"], "running");
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(0));

    // Starting on a full disk: exit 74 (the unit does not restart on it), saying the disk is
    // full and never that the database should be moved.
    let filler = fill(disk.path()).unwrap();
    let mut again = home.spawn(&["--port", &free_port().to_string()], |c| {
        c.env("GATEWAY_STATE_DIR", &state);
    });
    let status = again.wait_exit(Duration::from_secs(10));
    let said = again.stderr();
    assert_eq!(status.code(), Some(gateway_proto::exit::DISK_FULL), "{said}");
    assert!(said.contains("disk full on") && !said.contains("move"), "{said}");
    std::fs::remove_file(filler).unwrap();
}
