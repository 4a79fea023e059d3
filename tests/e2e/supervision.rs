//! Lifecycle commands on a host without a service manager (this one: systemd is not PID 1):
//! `install` says so, `start` runs gatewayd detached, `restart` and `stop` work without a unit,
//! `status --deep` and `doctor` report what they find, and `doctor --fix` removes a stale socket.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use gateway_tests::{free_port, Home};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

use crate::systemd::text;

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)))
}

/// Stops a detached gatewayd that a failed assertion would leave behind.
struct Reaper(Option<i32>);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

#[test]
fn without_a_service_manager_start_runs_gatewayd_detached() {
    if Path::new("/run/systemd/system").exists() {
        eprintln!("skipped: systemd runs this host (tests/e2e/systemd.rs covers it)");
        return;
    }
    let home = Home::new();
    let port = free_port();
    home.write_config(None, &format!("[gateway]\nport = {port}\n"));

    let out = home.ctl(&["install"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("no service manager here"), "{}", text(&out));
    assert!(text(&out).contains("gatewayctl start"), "{}", text(&out));

    let out = home.ctl(&["start"]);
    assert!(out.status.success(), "{}", text(&out));
    let status = json(&home.ctl(&["status", "--json"]));
    let mut reaper = Reaper(status["pid"].as_i64().map(|p| p as i32));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("started gatewayd in the background"),
        "{}",
        text(&out)
    );
    assert_eq!(status["supervisor"], "none");
    assert_eq!(status["listen"]["port"], port);
    // Its own session: a hangup of the shell that started it does not reach it.
    let pid = status["pid"].as_i64().unwrap() as i32;
    assert_eq!(nix::unistd::getsid(Some(Pid::from_raw(pid))).unwrap(), Pid::from_raw(pid));
    assert!(home.state_dir(None).join("logs/gatewayd.out").exists());

    let again = home.ctl(&["start"]);
    assert!(again.status.success() && text(&again).contains("already running"), "{}", text(&again));

    let deep = home.ctl(&["status", "--deep", "--json"]);
    let d = json(&deep);
    assert_eq!(deep.status.code(), Some(0), "{d}");
    assert_eq!(d["manager"], "none");
    assert_eq!(d["service"]["installed"], false);
    assert_eq!(
        (d["verdict"]["runtime"].as_str(), d["verdict"]["rpc_probe"].as_str()),
        (Some("running"), Some("ok"))
    );
    assert_eq!(d["port_holders"][0]["pid"].as_i64(), Some(pid as i64), "{d}");

    // Restarted in place: the same process re-executes itself.
    let started = status["started_at_ms"].as_u64().unwrap();
    let out = home.ctl(&["restart"]);
    assert!(out.status.success(), "{}", text(&out));
    let after = json(&home.ctl(&["status", "--json"]));
    assert_eq!(after["pid"].as_i64(), Some(pid as i64), "{after}");
    assert!(after["started_at_ms"].as_u64().unwrap() > started, "{after}");
    assert!(text(&out).contains(&format!("gatewayd restarted: pid {pid} -> {pid}")), "{}", text(&out));
    // Its output file is for reading, not a terminal: no colour codes.
    let output = std::fs::read_to_string(home.state_dir(None).join("logs/gatewayd.out")).unwrap();
    assert!(output.contains("gatewayd ready") && !output.contains('\x1b'), "{output}");

    let out = home.ctl(&["stop"]);
    assert!(out.status.success(), "{}", text(&out));
    reaper.0 = None;
    let deep = home.ctl(&["status", "--deep"]);
    assert_eq!(deep.status.code(), Some(1), "{}", text(&deep));
    let t = text(&deep);
    assert!(t.contains("Runtime: stopped") && t.contains("RPC probe: failed"), "{t}");
    assert!(t.contains("gatewayd is not running"), "{t}");
}

#[test]
fn doctor_finds_and_fixes_a_stale_socket_and_loose_permissions() {
    let home = Home::new();
    let mut daemon = home.start(&["--port", &free_port().to_string()]);
    daemon.wait_ready();
    let healthy = home.ctl(&["doctor", "--json"]);
    let report = json(&healthy);
    assert_eq!(report["errors"], 0, "{report}");
    assert!(report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["id"] == "socket" && c["severity"] == "ok"));

    // A crash leaves the socket behind; someone loosens the token file.
    daemon.signal(Signal::SIGKILL);
    daemon.wait_exit(Duration::from_secs(10));
    assert!(home.socket(None).exists());
    let token = home.state_dir(None).join("token");
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();

    let out = home.ctl(&["doctor"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("ERROR files.token") && t.contains("chmod 600"), "{t}");
    assert!(t.contains("WARN  socket.stale"), "{t}");

    // Without --yes and without a terminal, --fix only says what it would do.
    let out = home.ctl(&["doctor", "--fix"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(home.socket(None).exists());

    let out = home.ctl(&["doctor", "--fix", "--yes", "--json"]);
    let report = json(&out);
    let check = |id: &str| report["checks"].as_array().unwrap().iter().find(|c| c["id"] == id).cloned();
    assert_eq!(check("files.token").unwrap()["fixed"], true, "{report}");
    assert_eq!(check("socket.stale").unwrap()["fixed"], true, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    assert!(!home.socket(None).exists());
    assert_eq!(gateway_tests::mode(&token), 0o600);
}

#[test]
fn logs_since_filters_the_file() {
    let home = Home::new();
    let mut daemon = home.start(&["--port", &free_port().to_string()]);
    daemon.wait_ready();
    let all = home.ctl(&["logs", "-n", "100", "--json", "--since", "1h"]);
    assert!(all.status.success(), "{}", text(&all));
    assert!(String::from_utf8_lossy(&all.stdout).contains("gatewayd ready"), "{}", text(&all));
    let future = home.ctl(&["logs", "-n", "100", "--since", "2999-01-01"]);
    assert!(future.status.success() && future.stdout.is_empty(), "{}", text(&future));
    let bad = home.ctl(&["logs", "--since", "yesterday"]);
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    assert!(text(&bad).contains("--since"), "{}", text(&bad));
    daemon.signal(Signal::SIGTERM);
    daemon.wait_exit(Duration::from_secs(30));
}

#[test]
fn purge_removes_only_the_profiles_own_dirs() {
    let home = Home::new();
    home.write_config(None, "[gateway]\n");
    std::fs::create_dir_all(home.state_dir(None)).unwrap();
    let out = home.ctl(&["uninstall", "--purge"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!home.state_dir(None).exists() && !home.config_file(None).exists(), "{}", text(&out));

    // A state dir given by GATEWAY_STATE_DIR may hold other things: it stays.
    let shared = home.path().join("mine");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::write(shared.join("notes.txt"), "keep me").unwrap();
    let out = home
        .command(&gateway_tests::bin("gatewayctl"))
        .env("GATEWAY_STATE_DIR", &shared)
        .args(["uninstall", "--purge"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("left") && shared.join("notes.txt").exists(), "{}", text(&out));
}

/// `gatewayd --port P --verbose` in a "terminal" (its stderr a file): flags without a command
/// run it; `gatewayctl restart` brings back the same process with the same flags, `stop` then
/// `start` starts it with them again.
#[test]
fn restart_and_start_keep_the_flags_of_a_gatewayd_started_by_hand() {
    let home = Home::new();
    let port = free_port();
    let stderr = home.path().join("terminal.log");
    let mut by_hand = home
        .command(&gateway_tests::bin("gatewayd"))
        .args(["--port", &port.to_string(), "--verbose"])
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let pid = by_hand.id() as i32;
    let mut reaper = Reaper(Some(pid));
    let before = gateway_tests::wait_for(Duration::from_secs(10), "gatewayd ready", || {
        let out = home.ctl(&["status", "--json"]);
        out.status.success().then(|| json(&out))
    });
    assert_eq!(before["listen"]["port"], port, "{before}");

    let out = home.ctl(&["restart"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "gatewayd restarted: pid {pid} -> {pid}, listening on 127.0.0.1:{port}, flags: --port {port} --verbose"
        )),
        "{}",
        text(&out)
    );
    let after = json(&home.ctl(&["status", "--json"]));
    assert_eq!(
        (after["pid"].as_i64(), &after["listen"]["port"]),
        (Some(pid as i64), &before["listen"]["port"])
    );
    let log = std::fs::read_to_string(&stderr).unwrap();
    assert_eq!(log.matches("gatewayd ready").count(), 2, "{log}");
    // The process that came back recorded its own flags: still --verbose.
    let launch: Value =
        serde_json::from_str(&std::fs::read_to_string(home.state_dir(None).join("launch.json")).unwrap())
            .unwrap();
    assert_eq!(
        launch["args"],
        serde_json::json!(["run", "--port", port.to_string(), "--verbose"]),
        "{launch}"
    );
    assert_eq!(gateway_tests::mode(&home.state_dir(None).join("launch.json")), 0o600);
    assert!(!log.contains('\x1b'), "colour codes in a file: {log}");

    let out = home.ctl(&["stop"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(by_hand.wait().unwrap().success());
    reaper.0 = None;

    let out = home.ctl(&["start"]);
    assert!(out.status.success(), "{}", text(&out));
    let status = json(&home.ctl(&["status", "--json"]));
    reaper.0 = status["pid"].as_i64().map(|p| p as i32);
    assert_eq!(status["listen"]["port"], port, "{status}");
    assert!(
        text(&out).contains(&format!("with the flags of its last run: --port {port} --verbose")),
        "{}",
        text(&out)
    );
    let out = home.ctl(&["stop"]);
    assert!(out.status.success(), "{}", text(&out));
    reaper.0 = None;
}

/// A restart that cannot come back (its configured port is now taken) says so and exits 1,
/// without waiting out its deadline.
#[test]
fn a_restart_that_cannot_come_back_says_so() {
    let home = Home::new();
    let (port, taken) = (free_port(), std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    // Reload mode off: the edit below waits for the restart.
    home.write_config(None, &format!("[gateway]\nport = {port}\n[gateway.reload]\nmode = \"off\"\n"));
    let mut child = home.command(&gateway_tests::bin("gatewayd")).arg("run").spawn().unwrap();
    let pid = child.id() as i32;
    let _reaper = Reaper(Some(pid));
    gateway_tests::wait_for(Duration::from_secs(10), "gatewayd ready", || {
        home.ctl(&["status"]).status.success().then_some(())
    });
    let taken_port = taken.local_addr().unwrap().port();
    home.write_config(None, &format!("[gateway]\nport = {taken_port}\n[gateway.reload]\nmode = \"off\"\n"));
    // Reaped at once, as a shell would, so its pid disappears when it exits.
    let exited = std::thread::spawn(move || child.wait().unwrap());

    let asked = std::time::Instant::now();
    let out = home.ctl(&["restart"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains(&format!("gatewayd (pid {pid}) exited while restarting")), "{}", text(&out));
    assert!(text(&out).contains("the terminal it runs in"), "{}", text(&out));
    assert!(asked.elapsed() < Duration::from_secs(20), "took {:?}", asked.elapsed());
    assert_eq!(exited.join().unwrap().code(), Some(69));
}

/// `status --deep` of a stopped profile whose port another profile's gateway holds: the probe
/// is answered, but not by this instance, and it says whose gateway did.
#[test]
fn deep_status_knows_when_the_port_answers_for_another_gateway() {
    let home = Home::new();
    let port = free_port();
    home.write_config(None, &format!("[gateway]\nport = {port}\n"));
    let work = home.start(&["--profile", "work", "--port", &port.to_string()]);

    let deep = home.ctl(&["status", "--deep"]);
    let t = text(&deep);
    assert_eq!(deep.status.code(), Some(1), "{t}");
    assert!(t.contains("Runtime: stopped"), "{t}");
    assert!(
        t.contains(&format!("RPC probe: other (GET http://127.0.0.1:{port}/healthz: 200, answered by another gateway (pid {}, profile work), not this instance)", work.pid())),
        "{t}"
    );
    assert!(
        t.contains(&format!("port {port} is held by another gateway (pid {}, profile work)", work.pid())),
        "{t}"
    );
    let d = json(&home.ctl(&["status", "--deep", "--json"]));
    assert_eq!(d["verdict"]["rpc_probe"], "other", "{d}");

    // The profile that runs there probes itself: ok.
    let d = json(&home.ctl(&["--profile", "work", "status", "--deep", "--json"]));
    assert_eq!(d["verdict"]["rpc_probe"], "ok", "{d}");
}
