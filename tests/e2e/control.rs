//! The control socket: who may use it, and what gatewayctl gets from it.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use gateway_tests::*;

#[test]
fn browsers_are_refused() {
    let home = Home::new();
    let _d = home.start(&["--port", &free_port().to_string()]);
    let socket = home.socket(None);
    for header in [("Origin", "http://evil.example"), ("Referer", "http://evil.example/x")] {
        let (status, body) = unix_http(&socket, "GET", "/v1/status", &[header]).unwrap();
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("Origin or Referer"), "{body}");
    }
}

#[test]
fn other_users_are_refused_even_if_they_reach_the_socket() {
    if !nix::unistd::geteuid().is_root() || Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("skipped: needs root and setpriv to act as another user");
        return;
    }
    let home = Home::new();
    let _d = home.start(&["--port", &free_port().to_string()]);
    let socket = home.socket(None);
    // Open every directory on the way and the socket itself, so only the uid check stands.
    for dir in [home.path(), &home.path().join("run"), socket.parent().unwrap()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "curl", "-s", "--unix-socket"])
        .arg(&socket)
        .arg("http://localhost/v1/status")
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(body.contains("refuses control requests from uid 65534"), "{out:?}");
}

#[test]
fn a_stale_socket_is_replaced() {
    let home = Home::new();
    let socket = home.socket(None);
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    let d = home.start(&["--port", &free_port().to_string()]);
    let status = control(&socket, "GET", "/v1/status");
    assert_eq!(status["pid"], d.pid());
}

#[test]
fn status_and_health_through_gatewayctl() {
    let home = Home::new();
    let port = free_port();
    let d = home.start(&["--port", &port.to_string()]);
    let out = home.ctl(&["status"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("running") && text.contains(&d.pid().to_string()), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");

    let out = home.ctl(&["status", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["pid"], d.pid());
    assert_eq!(json["config"]["generation"], 1);

    let out = home.ctl(&["health", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["ok"], true);
}

#[test]
fn logs_tail_and_follow() {
    let home = Home::new();
    let _d = home.start(&["--port", &free_port().to_string()]);
    let out = home.ctl(&["logs", "--lines", "20"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("gatewayd ready"), "{out:?}");

    // A long poll from the end of the log returns as soon as a new line is written.
    let socket = home.socket(None);
    let tail = control(&socket, "GET", "/v1/logs?lines=1");
    let cursor = tail["cursor"].as_u64().unwrap();
    let waiter = std::thread::spawn(move || {
        control(&socket, "GET", &format!("/v1/logs?cursor={cursor}&wait_ms=10000"))
    });
    std::thread::sleep(Duration::from_millis(200));
    home.write_config(None, "[gateway.heartbeat]\ninterval_ms = 5000\n");
    let next = waiter.join().unwrap();
    let lines = next["lines"].as_array().unwrap();
    assert!(lines.iter().any(|l| l.as_str().unwrap().contains("\"event\":\"reload\"")), "{next}");

    // The log stays readable when the daemon is gone.
    drop(_d);
    let out = home.ctl(&["logs", "--lines", "50"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("gatewayd ready"), "{out:?}");
}

#[test]
fn gatewayctl_says_what_to_check_when_the_daemon_is_down() {
    let home = Home::new();
    let out = home.ctl(&["status"]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("gatewayd is not running"), "{err}");
    // No unit is installed in this home (and no systemd runs this host): no systemctl advice.
    assert!(err.contains("Start it: gatewayctl start (in the background), or gatewayd run"), "{err}");
    assert!(!err.contains("systemctl"), "{err}");
    let out = home.ctl(&["--profile", "work", "status"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("gatewayctl start --profile work"), "{out:?}");
}
