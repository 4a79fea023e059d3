//! R4: config reloads while chat requests and idle WebSocket clients run. Each reload changes a
//! hot key (`gateway.shutdown.drain_timeout_ms`); half are left to the file watcher, half are
//! asked for over the control socket. No request may fail, no socket may be dropped, the
//! gateway must not restart, and every change must be applied once.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Context, Result};
use gateway_tests::benchutil::{Row, Target};
use gateway_tests::idle::IdleClients;
use gateway_tests::{http1, Home};
use serde_json::{json, Value};

use crate::row;

const RATE: u64 = 200;
const SPACING: Duration = Duration::from_millis(100);

pub fn run(reloads: usize, rows: &mut Vec<Row>, notes: &mut Vec<String>) -> Result<()> {
    let sockets = reloads * 10;
    gateway_tests::benchutil::raise_nofile()?;
    let home = Home::new();
    let d = home.start_with(&config(0));
    let token = home.token();
    let socket = home.socket(None);
    let status = || -> Result<Value> {
        let (code, body) = gateway_tests::unix_http(&socket, "GET", "/v1/status", &[])?;
        ensure!(code == 200, "status answered {code}");
        Ok(serde_json::from_str(&body)?)
    };
    let first = status()?;
    let clients = IdleClients::connect(d.port, &token, sockets)?;

    // Chat at RATE requests a second, on four threads, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load: Vec<_> = (0..4)
        .map(|t| {
            let (stop, sent, failed, token, port) = (stop.clone(), sent.clone(), failed.clone(), token.clone(), d.port);
            thread::spawn(move || {
                let auth = format!("Bearer {token}");
                let every = Duration::from_micros(4 * 1_000_000 / RATE);
                let mut next = Instant::now() + every * t / 4;
                let mut first_failure = None;
                while !stop.load(Ordering::Relaxed) {
                    thread::sleep(next.saturating_duration_since(Instant::now()));
                    next += every;
                    let body = json!({"model": "echo/echo", "messages": [{"role": "user", "content": "still here"}]});
                    let r = http1::request(port, "POST", "/v1/chat/completions", &[("Authorization", &auth)], Some(&body.to_string()));
                    sent.fetch_add(1, Ordering::Relaxed);
                    match r {
                        Ok(r) if r.status == 200 && r.body.contains("still here") => {}
                        other => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            first_failure.get_or_insert(format!("{other:?}"));
                        }
                    }
                }
                first_failure
            })
        })
        .collect();

    let started = Instant::now();
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    let generation = |s: &Value| s["config"]["generation"].as_u64().context("generation");
    let mut watcher_ms = Vec::new();
    for i in 1..=reloads {
        thread::sleep(SPACING);
        let was = generation(&status()?)?;
        let t = Instant::now();
        home.write_config(None, &config(i));
        if i % 2 == 0 {
            let (code, body) = gateway_tests::unix_http(&socket, "POST", "/v1/reload", &[])?;
            ensure!(code == 200, "reload answered {code}: {body}");
            let report: Value = serde_json::from_str(&body)?;
            *outcomes.entry(report["outcome"].as_str().unwrap_or("?").to_owned()).or_default() += 1;
        } else {
            // The watcher applies it once the file has settled.
            while generation(&status()?)? == was {
                ensure!(t.elapsed() < Duration::from_secs(10), "the watcher did not apply change {i}");
                thread::sleep(Duration::from_millis(5));
            }
            watcher_ms.push(gateway_tests::benchutil::ms(t.elapsed()));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut first_failure = None;
    for l in load {
        if let Some(f) = l.join().map_err(|_| anyhow!("a load thread panicked"))? {
            first_failure.get_or_insert(f);
        }
    }
    let elapsed = started.elapsed();
    let last = status()?;
    let dropped = clients.closed();
    clients.close();
    let applied = last["config"]["generation"].as_u64().context("generation")?
        - first["config"]["generation"].as_u64().context("generation")?;
    let same = last["pid"] == first["pid"] && last["started_at_ms"] == first["started_at_ms"];
    let (sent, failed) = (sent.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    rows.push(row(
        "R4-failed",
        format!("failed chat requests of {sent} during {reloads} reloads"),
        "",
        failed as f64,
        Target::AtMost(0.0),
    ));
    rows.push(row(
        "R4-dropped",
        format!("WebSocket clients dropped of {sockets}"),
        "",
        dropped as f64,
        Target::AtMost(0.0),
    ));
    rows.push(row(
        "R4-applied",
        format!(
            "changes applied, each once, no restart ({})",
            if same { "same process" } else { "restarted" }
        ),
        "",
        if same { applied as f64 } else { 0.0 },
        Target::AtLeast(reloads as f64),
    ));
    notes.push(format!(
        "R4: {sent} chat requests at {RATE}/s over {:.1} s while the config changed {reloads} times, {} ms apart; generation +{applied}; the watcher applied its changes after {:.0} ms median; control reloads: {}{}",
        elapsed.as_secs_f64(),
        SPACING.as_millis(),
        gateway_tests::benchutil::Stats::of(watcher_ms).median,
        outcomes.iter().map(|(k, v)| format!("{v} {k}")).collect::<Vec<_>>().join(", "),
        first_failure.map(|f| format!("; first failure: {f}")).unwrap_or_default()
    ));
    ensure!(applied as usize <= reloads, "more generations ({applied}) than changes ({reloads})");
    Ok(())
}

/// The `i`th config: only a hot key changes.
fn config(i: usize) -> String {
    format!("[gateway.shutdown]\ndrain_timeout_ms = {}\n", 10_000 + i)
}
