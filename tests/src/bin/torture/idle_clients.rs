//! R1: many idle authenticated WebSocket clients: all held, and the gateway's whole RSS within
//! the target.

use std::thread;
use std::time::{Duration, Instant};

use anyhow::Result;
use gateway_tests::benchutil::{raise_nofile, rss_hwm_mb, Row, Target};
use gateway_tests::idle::IdleClients;
use gateway_tests::Home;

use crate::row;

const MIB: f64 = 1_048_576.0;

pub fn run(k: usize, rows: &mut Vec<Row>, notes: &mut Vec<String>) -> Result<()> {
    // Each client is a socket on both ends; gatewayd inherits the raised limit.
    let nofile = raise_nofile()?;
    anyhow::ensure!(nofile as usize > k + 100, "the open files limit ({nofile}) is too low for {k} clients");
    let home = Home::new();
    let d = home.start_with("");
    let before = rss_hwm_mb(d.pid())?.0 * 1e6 / MIB;
    let t = Instant::now();
    let clients = IdleClients::connect(d.port, &home.token(), k)?;
    let connect = t.elapsed();
    thread::sleep(Duration::from_secs(2));
    let (rss, hwm) = rss_hwm_mb(d.pid())?;
    let (rss, hwm) = (rss * 1e6 / MIB, hwm * 1e6 / MIB);
    let held = clients.len() - clients.closed();
    let received = clients.received.load(std::sync::atomic::Ordering::Relaxed);
    clients.close();
    rows.push(row(
        "R1-held",
        format!("{k} idle authenticated WebSocket clients held"),
        "",
        held as f64,
        Target::AtLeast(k as f64),
    ));
    rows.push(row(
        "R1-rss",
        format!("gatewayd's RSS with them (before: {before:.1} MiB)"),
        "MiB",
        rss,
        Target::AtMost(128.0),
    ));
    notes.push(format!(
        "R1: {k} clients connected in {:.1} s; gatewayd RSS {before:.1} MiB before, {rss:.1} MiB with them (peak {hwm:.1} MiB); they received {:.1} MB of events while idle",
        connect.as_secs_f64(),
        received as f64 / 1e6
    ));
    Ok(())
}
