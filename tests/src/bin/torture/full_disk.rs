//! R10: the disk holding the state fills up while writers run (a small tmpfs the tool mounts;
//! root only, skipped with a note otherwise). Every write must be acknowledged or refused with
//! a clear error (503, `Retry-After`, saying the disk is full); health must turn degraded, and
//! clear by itself when space returns; nothing acknowledged may be lost across a restart.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Context, Result};
use gateway_tests::benchutil::{ms, Row, Target};
use gateway_tests::disk::{fill, Tmpfs};
use gateway_tests::{free_port, http1, try_http, Daemon, Home};
use serde_json::{json, Value};

use crate::row;

const HEARTBEAT_MS: u64 = 200;

/// What the writers saw.
#[derive(Default)]
struct Seen {
    acked: BTreeSet<String>,
    refused_clearly: usize,
    unclear: Vec<String>,
}

pub fn run(refusals: usize, rows: &mut Vec<Row>, notes: &mut Vec<String>) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        notes.push("R10: skipped: mounting a small tmpfs needs root".into());
        return Ok(());
    }
    let disk = Tmpfs::mount("16m")?;
    let state = disk.path().join("state");
    let home = Home::new();
    home.write_config(None, &format!("[gateway.heartbeat]\ninterval_ms = {HEARTBEAT_MS}\n"));
    let port = free_port();
    let d = start(&home, &state, port, "/readyz")?;
    let token = std::fs::read_to_string(state.join("token"))?.trim().to_owned();
    let socket = home.socket(None);
    let health = || -> Result<u16> { Ok(gateway_tests::unix_http(&socket, "GET", "/v1/health", &[])?.0) };

    // Space set aside before the writers start, given back with the filler's: fast writers may
    // fill the disk themselves before the filler gets any.
    let ballast = disk.path().join("ballast");
    std::fs::write(&ballast, vec![7u8; 4 << 20])?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let refused = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // Held while space is given back: on a fast machine the writers would fill it again before
    // the next heartbeat could see it free.
    let pause = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (seen, refused, token) = (seen.clone(), refused.clone(), token.clone());
            let (stop, pause) = (stop.clone(), pause.clone());
            thread::spawn(move || write(w, port, &token, (&stop, &pause), &seen, &refused))
        })
        .collect();

    thread::sleep(Duration::from_millis(300));
    let filled = Instant::now();
    let filler = fill(disk.path())?;
    let mut degraded_after = None;
    while degraded_after.is_none() || refused.load(Ordering::Relaxed) < refusals {
        if degraded_after.is_none() && health()? == 503 {
            degraded_after = Some(filled.elapsed());
        }
        ensure!(filled.elapsed() < Duration::from_secs(60), "the full disk went unnoticed for a minute");
        thread::sleep(Duration::from_millis(5));
    }
    pause.store(true, Ordering::Relaxed);
    thread::sleep(Duration::from_millis(100));
    let freed = Instant::now();
    std::fs::remove_file(&filler)?;
    std::fs::remove_file(&ballast)?;
    let acked_before = seen.lock().unwrap().acked.len();
    let mut recovered_after = None;
    while recovered_after.is_none() {
        if health()? == 200 {
            pause.store(false, Ordering::Relaxed);
            if seen.lock().unwrap().acked.len() > acked_before {
                recovered_after = Some(freed.elapsed());
            }
        }
        if freed.elapsed() > Duration::from_secs(60) {
            let health = gateway_tests::unix_http(&socket, "GET", "/v1/health", &[])?.1;
            let seen = seen.lock().unwrap();
            anyhow::bail!(
                "no recovery a minute after space returned: health {health}; {} writes acknowledged \
                 (before freeing: {acked_before}), last unclear answers {:?}; gatewayd's log:\n{}",
                seen.acked.len(),
                seen.unclear,
                d.stderr().lines().rev().take(20).collect::<Vec<_>>().join("\n")
            );
        }
        thread::sleep(Duration::from_millis(5));
    }
    thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().map_err(|_| anyhow!("a writer thread panicked"))??;
    }

    // Across a restart, every acknowledged note is there. The writers may have filled the disk
    // again before they stopped: then gatewayd starts live but, rightly, not ready.
    drop(d);
    let d = start(&home, &state, port, "/healthz")?;
    let auth = format!("Bearer {token}");
    let r = http1::request(d.port, "GET", "/gateway/memory/r10", &[("Authorization", &auth)], None)?;
    ensure!(r.status == 200, "GET /gateway/memory/r10: {}", r.status);
    let stored: BTreeSet<String> = r.json()["notes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["name"].as_str().map(str::to_owned))
        .collect();
    let seen = seen.lock().unwrap();
    let lost = seen.acked.difference(&stored).count();
    let bound = (2 * HEARTBEAT_MS + 1_000) as f64;
    let total = seen.acked.len() + seen.refused_clearly + seen.unclear.len();
    rows.push(row(
        "R10-clear",
        format!("writes answered with an acknowledgement or a clear disk-full error ({total} writes)"),
        "%",
        100.0 * (total - seen.unclear.len()) as f64 / total as f64,
        Target::AtLeast(100.0),
    ));
    rows.push(row(
        "R10-lost",
        format!("acknowledged writes lost ({})", seen.acked.len()),
        "",
        lost as f64,
        Target::AtMost(0.0),
    ));
    rows.push(row(
        "R10-degraded",
        format!("health degraded after the disk filled (heartbeat {HEARTBEAT_MS} ms)"),
        "ms",
        degraded_after.map_or(f64::INFINITY, ms),
        Target::AtMost(bound),
    ));
    rows.push(row(
        "R10-recovered",
        "healthy and writing again after space returned".into(),
        "ms",
        recovered_after.map_or(f64::INFINITY, ms),
        Target::AtMost(bound),
    ));
    notes.push(format!(
        "R10: on a 16 MiB tmpfs, {} notes acknowledged, {} writes refused with 503 and a disk-full message{}",
        seen.acked.len(),
        seen.refused_clearly,
        seen.unclear.first().map(|u| format!("; unclear: {u}")).unwrap_or_default()
    ));
    Ok(())
}

/// Starts gatewayd on the state dir and waits until `probe` (`/readyz`, or `/healthz` when the
/// disk may be full) answers 200.
fn start(home: &Home, state: &std::path::Path, port: u16, probe: &str) -> Result<Daemon> {
    let state = state.to_owned();
    let mut d = home.spawn(&["--port", &port.to_string()], move |c| {
        c.env("GATEWAY_STATE_DIR", &state);
    });
    d.port = port;
    let t = Instant::now();
    while !matches!(try_http(port, "GET", probe, &[]), Ok((200, _))) {
        if let Some(status) = d.child.try_wait()? {
            anyhow::bail!("gatewayd exited ({status}):\n{}", d.stderr());
        }
        ensure!(
            t.elapsed() < Duration::from_secs(10),
            "gatewayd not answering {probe} with 200:\n{}",
            d.stderr()
        );
        thread::sleep(Duration::from_millis(5));
    }
    Ok(d)
}

/// Memory notes of 2 KB until `stop`: each acknowledged, or refused (clearly or not).
fn write(
    w: usize,
    port: u16,
    token: &str,
    (stop, pause): (&AtomicBool, &AtomicBool),
    seen: &Mutex<Seen>,
    refused: &AtomicUsize,
) -> Result<()> {
    let auth = format!("Bearer {token}");
    let body = json!({ "value": "x".repeat(2_048) }).to_string();
    for n in 0.. {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        if pause.load(Ordering::Relaxed) {
            thread::sleep(Duration::from_millis(5));
            continue;
        }
        let name = format!("w{w}-{n}");
        let r = http1::request(
            port,
            "PUT",
            &format!("/gateway/memory/r10/{name}"),
            &[("Authorization", &auth)],
            Some(&body),
        )
        .with_context(|| format!("PUT note {name}"))?;
        let mut seen = seen.lock().unwrap();
        if r.status == 200 {
            seen.acked.insert(name);
        } else if r.status == 503 && r.header("retry-after").is_some() && clear(&r.body) {
            seen.refused_clearly += 1;
            refused.fetch_add(1, Ordering::Relaxed);
        } else if seen.unclear.len() < 3 {
            seen.unclear.push(format!("{} {}", r.status, r.body));
        }
    }
    Ok(())
}

fn clear(body: &str) -> bool {
    serde_json::from_str::<Value>(body)
        .is_ok_and(|v| v["error"]["message"].as_str().is_some_and(|m| m.contains("disk")))
}
