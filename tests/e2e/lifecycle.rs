//! Stopping: SIGTERM and `gatewayctl stop` drain in-flight requests, then exit 0.

use std::path::Path;
use std::time::{Duration, Instant};

use gateway_tests::*;
use nix::sys::signal::Signal;

#[test]
fn sigterm_lets_in_flight_requests_finish() {
    let home = Home::new();
    let port = free_port();
    let mut d = home.start(&["--port", &port.to_string()]);
    let socket = home.socket(None);
    let cursor = control(&socket, "GET", "/v1/logs?lines=1")["cursor"].as_u64().unwrap();
    // A long poll is in flight when the signal comes: it gets a whole answer, not a reset.
    let in_flight = {
        let socket = socket.clone();
        std::thread::spawn(move || {
            unix_http(&socket, "GET", &format!("/v1/logs?cursor={cursor}&wait_ms=20000"), &[])
        })
    };
    wait_for(Duration::from_secs(5), "the long poll to be in flight", || {
        let s = control(&socket, "GET", "/v1/status");
        (s["connections"]["control"].as_u64() >= Some(2)).then_some(())
    });
    let t0 = Instant::now();
    d.signal(Signal::SIGTERM);
    let (status, body) = in_flight.join().unwrap().expect("the in-flight request was answered");
    assert_eq!(status, 200, "{body}");
    assert!(t0.elapsed() < Duration::from_secs(5), "the long poll ends with the drain");
    assert_eq!(d.wait_exit(Duration::from_secs(12)).code(), Some(0));
    assert!(!socket.exists(), "the control socket is removed");
    assert!(try_http(port, "GET", "/healthz", &[]).is_err(), "the port is closed");
    let log = std::fs::read_to_string(home.state_dir(None).join("logs/gatewayd.jsonl")).unwrap();
    assert!(log.contains("\"event\":\"draining\"") && log.contains("\"event\":\"stopped\""), "{log}");
}

#[test]
fn gatewayctl_stop_stops_it() {
    let home = Home::new();
    let mut d = home.start(&["--port", &free_port().to_string()]);
    let out = home.ctl(&["stop"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("stopped"), "{out:?}");
    assert_eq!(d.wait_exit(Duration::from_secs(5)).code(), Some(0));
}

/// Colour on a terminal only, and not with NO_COLOR: gatewayd under `script` (a pseudo-terminal)
/// for two seconds, then interrupted.
#[test]
fn log_colour_only_on_a_terminal_without_no_color() {
    let on_terminal = |no_color: bool| {
        let home = Home::new();
        let gatewayd = bin("gatewayd");
        let line = format!("timeout -s INT 2 {} --port {}", gatewayd.display(), free_port());
        let mut cmd = home.command(Path::new("script"));
        cmd.args(["-qec", &line, "/dev/null"]);
        if no_color {
            cmd.env("NO_COLOR", "1");
        }
        let out = cmd.output().expect("script (bsdutils) runs");
        let screen = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(screen.contains("gatewayd ready"), "{screen}");
        screen
    };
    let (coloured, plain) = std::thread::scope(|s| {
        let coloured = s.spawn(|| on_terminal(false));
        let plain = s.spawn(|| on_terminal(true));
        (coloured.join().unwrap(), plain.join().unwrap())
    });
    assert!(coloured.contains("\x1b["), "{coloured}");
    assert!(!plain.contains('\x1b'), "{plain}");
}
