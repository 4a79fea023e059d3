//! R12: slow-header and silent connections against the header read timeout.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use gateway_tests::benchutil::{ms, Row, Stats, Target};
use gateway_tests::{try_http, Home};

use crate::row;

/// R12: `n` slow-header and `n` silent connections against a 2 s header timeout.
pub fn run(n: usize, rows: &mut Vec<Row>, notes: &mut Vec<String>) -> Result<()> {
    const TIMEOUT_MS: u64 = 2_000;
    let home = Home::new();
    let d = home.start_with(&format!("[gateway.http]\nheader_read_timeout_ms = {TIMEOUT_MS}\n"));
    let port = d.port;
    let latency = |count: usize| -> Result<Vec<f64>> {
        (0..count)
            .map(|_| {
                let t = Instant::now();
                let (code, _) = try_http(port, "GET", "/healthz", &[])?;
                ensure!(code == 200, "/healthz answered {code}");
                Ok(ms(t.elapsed()))
            })
            .collect()
    };
    let p99 = |mut xs: Vec<f64>| gateway_tests::benchutil::quantile(&mut xs, 0.99);
    let before_ms = latency(200)?;
    let before = (Stats::of(before_ms.clone()).median, p99(before_ms));

    // Each attacker reports how long the gateway took to close it.
    let spawn = |slow: bool| {
        thread::Builder::new().stack_size(64 * 1024).spawn(move || -> Result<Duration> {
            let mut s = TcpStream::connect(("127.0.0.1", port))?;
            s.set_read_timeout(Some(Duration::from_millis(200)))?;
            let t = Instant::now();
            if slow {
                s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")?;
            }
            let mut buf = [0u8; 64];
            loop {
                if slow && s.write_all(b"X").is_err() {
                    return Ok(t.elapsed());
                }
                match s.read(&mut buf) {
                    Ok(0) => return Ok(t.elapsed()),
                    Ok(_) => {}
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock
                            || e.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(_) => return Ok(t.elapsed()),
                }
                if t.elapsed() > Duration::from_millis(TIMEOUT_MS + 10_000) {
                    return Ok(t.elapsed());
                }
            }
        })
    };
    let attackers: Vec<_> = (0..2 * n).map(|i| spawn(i % 2 == 0)).collect::<Result<_, _>>()?;
    thread::sleep(Duration::from_millis(300));
    let during_ms = latency(200)?;
    let during = (Stats::of(during_ms.clone()).median, p99(during_ms));
    let mut closed = Vec::with_capacity(attackers.len());
    for a in attackers {
        closed.push(ms(a.join().map_err(|_| anyhow::anyhow!("an attacker thread panicked"))??));
    }
    let closed = Stats::of(closed);
    rows.push(row(
        "R12-closed",
        format!("{n} slow-header + {n} silent connections: the last closed after (timeout {TIMEOUT_MS} ms)"),
        "ms",
        closed.max,
        Target::AtMost((TIMEOUT_MS + 1_000) as f64),
    ));
    // "Unaffected", on a 2-core machine where the attack's threads share the cores: at most 3×
    // the p99 before, or 1 ms more, whichever is larger (sub-millisecond p99s are noisy).
    let allowed = ((before.1 * 3.0).max(before.1 + 1.0) * 100.0).round() / 100.0;
    rows.push(row(
        "R12-normal",
        format!("a normal client's /healthz p99 during the attack (before: {:.2} ms)", before.1),
        "ms",
        during.1,
        Target::AtMost(allowed),
    ));
    notes.push(format!(
        "R12: /healthz p50/p99 {:.2}/{:.2} ms before, {:.2}/{:.2} ms during; connections closed after {:.0}-{:.0} ms",
        before.0, before.1, during.0, during.1, closed.min, closed.max
    ));
    Ok(())
}
