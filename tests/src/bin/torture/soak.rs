//! R20: a soak at moderate mixed load: chat completions on stored sessions, WebSocket
//! `chat.send`, memory notes and health probes, with idle WebSocket clients connected, after a
//! warm-up that fills SQLite's page cache. Every
//! sampling interval records gatewayd's RSS, its open fds and the p99 of the requests made in
//! that interval. The first fifth of the run is warm-up; after it, RSS may drift at most 5%,
//! fds must stay flat and the p99 stable (at the end at most 2× what it was, or 1 ms
//! more, whichever is larger, comparing the median interval p99 of the fifth after the warm-up
//! and of the last fifth).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use gateway_tests::benchutil::{ms, quantile, rss_hwm_mb, Row, Target};
use gateway_tests::idle::IdleClients;
use gateway_tests::ws::{Client, Device};
use gateway_tests::{http1, Home};
use serde_json::json;

use crate::row;

const MIB: f64 = 1_048_576.0;
/// Requests a second, over all writers.
const RATE: u64 = 40;
const IDLE_CLIENTS: usize = 100;

/// One sampling interval.
struct Sample {
    at: Duration,
    rss_mib: f64,
    fds: usize,
    p99_ms: f64,
    requests: usize,
}

pub fn run(seconds: usize, rows: &mut Vec<Row>, notes: &mut Vec<String>) -> Result<()> {
    let duration = Duration::from_secs(seconds as u64);
    let interval = duration / 24;
    let home = Home::new();
    // Sessions are reset as they grow, as a long-lived assistant's would be compacted.
    let d = home.start_with("[runs]\nmax_queued_per_session = 1000\n");
    let token = home.token();
    let (port, pid) = (d.port, d.pid());
    let idle = IdleClients::connect(port, &token, IDLE_CLIENTS)?;
    fill_page_cache(port, &token)?;

    let stop = Arc::new(AtomicBool::new(false));
    let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
    let failed = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..4)
        .map(|kind| {
            let (stop, latencies, failed, token) =
                (stop.clone(), latencies.clone(), failed.clone(), token.clone());
            thread::spawn(move || work(kind, port, &token, &stop, &latencies, &failed))
        })
        .collect();

    let started = Instant::now();
    let mut samples = Vec::new();
    while started.elapsed() < duration {
        thread::sleep(interval);
        let mut window = std::mem::take(&mut *latencies.lock().unwrap());
        let requests = window.len();
        samples.push(Sample {
            at: started.elapsed(),
            rss_mib: rss_hwm_mb(pid)?.0 * 1e6 / MIB,
            fds: std::fs::read_dir(format!("/proc/{pid}/fd"))?.count(),
            p99_ms: if window.is_empty() { 0.0 } else { quantile(&mut window, 0.99) },
            requests,
        });
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().map_err(|_| anyhow!("a worker thread panicked"))?;
    }
    let dropped = idle.closed();
    idle.close();

    // After the warm-up: the first sample against the last.
    let warm = &samples[samples.len() / 5];
    let last = samples.last().expect("samples");
    let drift = 100.0 * (last.rss_mib - warm.rss_mib) / warm.rss_mib;
    let requests: usize = samples.iter().map(|s| s.requests).sum();
    let minutes = |d: Duration| d.as_secs_f64() / 60.0;
    rows.push(row(
        "R20-rss",
        format!(
            "RSS drift over {:.0} min after warm-up ({:.1} → {:.1} MiB)",
            minutes(last.at - warm.at),
            warm.rss_mib,
            last.rss_mib
        ),
        "%",
        drift,
        Target::AtMost(5.0),
    ));
    // An interval's p99 is noisy on a shared machine: the median of them over the fifth after
    // the warm-up against the median over the last fifth.
    let fifth = (samples.len() / 5).max(1);
    let median_p99 = |s: &[Sample]| {
        let mut p: Vec<f64> = s.iter().map(|s| s.p99_ms).collect();
        quantile(&mut p, 0.5)
    };
    let early = median_p99(&samples[fifth..2 * fifth]);
    let late = median_p99(&samples[samples.len() - fifth..]);
    let allowed = (early * 2.0).max(early + 1.0);
    // Requests in flight open fds too: the most seen in each of the two fifths.
    let most_fds = |s: &[Sample]| s.iter().map(|s| s.fds).max().unwrap_or(0);
    let (fds_early, fds_late) =
        (most_fds(&samples[fifth..2 * fifth]), most_fds(&samples[samples.len() - fifth..]));
    rows.push(row(
        "R20-fds",
        format!("open fds at the end, the most in the last fifth's samples (after warm-up: {fds_early})"),
        "",
        fds_late as f64,
        Target::AtMost(fds_early as f64),
    ));
    rows.push(row(
        "R20-p99",
        format!(
            "request p99 at the end, median of the last fifth's intervals (after warm-up: {early:.2} ms)"
        ),
        "ms",
        late,
        Target::AtMost((allowed * 100.0).round() / 100.0),
    ));
    rows.push(row(
        "R20-failed",
        format!("failed requests of {requests}, idle WebSocket clients dropped of {IDLE_CLIENTS}"),
        "",
        (failed.load(Ordering::Relaxed) + dropped) as f64,
        Target::AtMost(0.0),
    ));
    let curve: Vec<String> = samples
        .iter()
        .map(|s| {
            format!("{:.1} min {:.1} MiB {} fds p99 {:.2} ms", minutes(s.at), s.rss_mib, s.fds, s.p99_ms)
        })
        .collect();
    notes.push(format!(
        "R20: {requests} requests at {RATE}/s for {:.1} min; the curve: {}",
        minutes(duration),
        curve.join("; ")
    ));
    Ok(())
}

/// Warm-up: SQLite's page cache (2 MiB) fills as the database grows and is read, which takes
/// minutes at this load; 3 MiB of notes written and read back fill it first, so that what the
/// soak measures afterwards is growth, not the cache reaching its size.
fn fill_page_cache(port: u16, token: &str) -> Result<()> {
    let auth = format!("Bearer {token}");
    let value = json!({ "value": "w".repeat(60_000) }).to_string();
    for i in 0..50 {
        let r = http1::request(
            port,
            "PUT",
            &format!("/gateway/memory/soak-warm/n{i}"),
            &[("Authorization", &auth)],
            Some(&value),
        )?;
        anyhow::ensure!(r.status == 200, "warm-up note: {} {}", r.status, r.body);
    }
    for _ in 0..2 {
        let r = http1::request(port, "GET", "/gateway/memory/soak-warm", &[("Authorization", &auth)], None)?;
        anyhow::ensure!(r.status == 200, "warm-up read: {}", r.status);
    }
    Ok(())
}

/// One kind of traffic at RATE/4 a second until `stop`: 0 chat completions on a stored session,
/// 1 WebSocket `chat.send`, 2 memory notes, 3 `/healthz`. Latencies go to `latencies`.
fn work(
    kind: usize,
    port: u16,
    token: &str,
    stop: &AtomicBool,
    latencies: &Mutex<Vec<f64>>,
    failed: &AtomicUsize,
) {
    let auth = format!("Bearer {token}");
    let every = Duration::from_micros(4 * 1_000_000 / RATE);
    let mut ws = (kind == 1).then(|| Client::try_paired(port, token, &Device::numbered(20_000)));
    let mut next = Instant::now();
    for n in 0u64.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        thread::sleep(next.saturating_duration_since(Instant::now()));
        next += every;
        // Each session takes 100 requests (200 messages), then is deleted.
        let session = format!("soak-{kind}-{}", n / 100);
        let t = Instant::now();
        let ok = match kind {
            0 => {
                let body =
                    json!({"model": "echo/echo", "messages": [{"role": "user", "content": format!("m{n}")}]});
                let headers = [("Authorization", auth.as_str()), ("x-gateway-session-key", session.as_str())];
                let r =
                    http1::request(port, "POST", "/v1/chat/completions", &headers, Some(&body.to_string()));
                r.is_ok_and(|r| r.status == 200)
            }
            1 => match ws.as_mut() {
                Some(Ok((c, _))) => {
                    let sent = json!({ "sessionKey": session, "message": format!("m{n}") });
                    let ok = c.try_request("chat.send", sent).is_ok_and(|r| r["ok"] == true);
                    // The run's events, read along the way, are not needed.
                    c.events.clear();
                    ok
                }
                _ => false,
            },
            2 => {
                let body = json!({ "value": format!("v{n}") }).to_string();
                let path = format!("/gateway/memory/soak/n{}", n % 50);
                http1::request(port, "PUT", &path, &[("Authorization", &auth)], Some(&body))
                    .is_ok_and(|r| r.status == 200)
            }
            _ => http1::request(port, "GET", "/healthz", &[], None).is_ok_and(|r| r.status == 200),
        };
        latencies.lock().unwrap().push(ms(t.elapsed()));
        if !ok {
            failed.fetch_add(1, Ordering::Relaxed);
        }
        if kind < 2 && n % 100 == 99 {
            let path = format!("/gateway/sessions/{session}");
            let _ = http1::request(port, "DELETE", &path, &[("Authorization", &auth)], None);
        }
    }
}
