//! sd_notify as systemd sees it, through a fake NOTIFY_SOCKET.

use std::time::Duration;

use gateway_tests::*;
use nix::sys::signal::Signal;

const T: Duration = Duration::from_secs(5);

#[test]
fn ready_status_watchdog_reloading_stopping() {
    let home = Home::new();
    let mut notify = NotifySocket::new(home.path());
    let port = free_port();
    let mut d = home.spawn(&["--port", &port.to_string()], |c| {
        c.env("NOTIFY_SOCKET", &notify.path).env("WATCHDOG_USEC", "200000");
    });
    let ready = notify.expect("READY=1", T);
    assert!(ready.contains(&format!("STATUS=Serving on 127.0.0.1:{port}")), "{ready}");
    // Only after READY may clients rely on the port: it answers by then.
    assert_eq!(http(port, "GET", "/readyz", &[]).0, 200);
    notify.expect("WATCHDOG=1", T);
    notify.expect("WATCHDOG=1", T);

    home.write_config(None, "[logging]\nlevel = \"debug\"\n");
    let reloading = notify.expect("RELOADING=1", T);
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    let after = notify.expect("READY=1", T);
    assert!(after.contains("generation 2"), "{after}");

    d.signal(Signal::SIGTERM);
    notify.expect("STOPPING=1", T);
    assert_eq!(d.wait_exit(T).code(), Some(0));
}

#[test]
fn supervised_restart_exits_75_for_the_supervisor() {
    let home = Home::new();
    let mut notify = NotifySocket::new(home.path());
    let port = free_port();
    home.write_config(None, &format!("[gateway]\nport = {port}\n"));
    let mut d = home.spawn(&[], |c| {
        c.env("NOTIFY_SOCKET", &notify.path);
    });
    notify.expect("READY=1", T);
    home.write_config(None, &format!("[gateway]\nport = {}\n", free_port()));
    notify.expect("STOPPING=1", T);
    assert_eq!(d.wait_exit(T).code(), Some(75));
}
