//! kill -9 in the middle of a stream of `chat.send` writes: every message the gateway
//! acknowledged is in `chat.history` after a restart.

use std::collections::BTreeSet;
use std::time::Duration;

use gateway_tests::ws::{Client, Device};
use gateway_tests::*;
use nix::sys::signal::Signal;
use serde_json::json;

#[test]
fn kill_9_during_chat_writes_loses_no_acknowledged_message() {
    let home = Home::new();
    // Room for every write in one session's queue.
    let mut d = home.start_with("[runs]\nmax_queued_per_session = 1000\n");
    let tok = home.token();
    let device = Device::new(40);
    let (mut c, _) = Client::paired(d.port, &tok, &device);

    const SENT: usize = 400;
    const KILL_AFTER: usize = 60;
    for i in 0..SENT {
        c.send(&json!({ "type": "req", "id": format!("d{i}"), "method": "chat.send",
            "params": { "sessionKey": "durable", "message": format!("message {i}") } }));
    }
    let mut acknowledged = BTreeSet::new();
    // Until the daemon is gone.
    while let Ok(frame) = c.next_frame() {
        if frame["type"] != "res" {
            continue;
        }
        let id = frame["id"].as_str().unwrap();
        assert_eq!(frame["ok"], true, "{frame}");
        acknowledged.insert(id.trim_start_matches('d').parse::<usize>().unwrap());
        if acknowledged.len() == KILL_AFTER {
            d.signal(Signal::SIGKILL);
        }
    }
    let status = d.wait_exit(Duration::from_secs(10));
    assert!(!status.success(), "killed");
    assert!(acknowledged.len() >= KILL_AFTER, "{}", acknowledged.len());

    let d = home.start(&["--port", &d.port.to_string()]);
    let (mut c, _) = Client::paired(d.port, &tok, &device);
    let history = c.request("chat.history", json!({ "sessionKey": "durable", "limit": 10000 }));
    let stored: BTreeSet<usize> = history["payload"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user")
        .map(|m| m["text"].as_str().unwrap().trim_start_matches("message ").parse().unwrap())
        .collect();
    let lost: Vec<&usize> = acknowledged.difference(&stored).collect();
    assert!(lost.is_empty(), "acknowledged but lost after kill -9: {lost:?}");
    eprintln!("{} acknowledged, {} stored, {} sent", acknowledged.len(), stored.len(), SENT);
}
