//! gateway-torture: reliability scenarios against the release `gatewayd`, each as a figure beside
//! its target in `../shared/design/targets.md`'s R-list (docs/reliability.md). The rows so far:
//!
//! - R15: wrong credentials from one address on every auth path (HTTP bearer, password sign-in,
//!   WebSocket `connect`, hooks token): the share answered 429, and that the owner, and requests
//!   without a credential, are never locked out.
//! - R12: slow-header and silent connections: when the gateway closes them, against the header
//!   read timeout, and a normal client's latency meanwhile.
//! - R5: mutated, truncated, half-written config files (byte flips, cuts at any offset, wrong
//!   types, unknown keys, huge values, duplicate tables, invalid UTF-8, a BOM, an empty file),
//!   each reloaded: rejected with a located message, or applied with the keys that went back to
//!   their defaults named; the old config keeps serving; no restart.
//!
//! Run from the workspace root:
//!   cargo build --release --workspace --bins && ./target/release/gateway-torture [--short]
//!
//! `--short` uses a tenth of the counts (seconds in all). Daemons run in throwaway homes and are
//! killed when their handles drop; errors are returned rather than panicked so the drops run.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use gateway_tests::benchutil::{machine, ms, Row, Stats, Target};
use gateway_tests::ws::{Client, Connect};
use gateway_tests::{free_port, try_http, Home};

const PEER: &str = "-";

fn main() -> Result<()> {
    let short = std::env::args().any(|a| a == "--short");
    let scale = if short { 10 } else { 1 };
    let m = machine();
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    r15(1_000 / scale, &mut rows, &mut notes)?;
    r12(500 / scale, &mut rows, &mut notes)?;
    r5(1_000 / scale, &mut rows, &mut notes)?;
    println!("{}", gateway_tests::benchutil::to_table(&m, PEER, &rows, &notes));
    let missed: Vec<&str> = rows.iter().filter(|r| r.verdict() == Some("misses")).map(|r| r.id).collect();
    ensure!(missed.is_empty(), "rows that miss their target: {}", missed.join(", "));
    Ok(())
}

fn row(id: &'static str, metric: String, unit: &'static str, value: f64, target: Target) -> Row {
    Row {
        id,
        metric,
        unit,
        prec: 1,
        ours: Stats::of(vec![value]),
        target: Some(target),
        peer: PEER,
        floor: None,
    }
}

/// The share (in %) of `attempts` that `attempt` says were answered 429.
fn share_limited(attempts: usize, mut attempt: impl FnMut(usize) -> Result<bool>) -> Result<f64> {
    let mut limited = 0;
    for i in 0..attempts {
        if attempt(i)? {
            limited += 1;
        }
    }
    Ok(100.0 * limited as f64 / attempts as f64)
}

/// R15: wrong credentials per auth path; the owner and credential-less clients get through.
fn r15(attempts: usize, rows: &mut Vec<Row>, notes: &mut Vec<String>) -> Result<()> {
    // The first `max_failures` (10) wrong attempts get 401; every one after must get 429. The
    // target sheet's 99% is that for 1,000 attempts; fewer attempts (--short) scale it.
    let share = Target::AtLeast(99f64.min(100.0 * attempts.saturating_sub(10) as f64 / attempts as f64));
    let hooks = "hooks-token-0123456789abcdef";
    let home = Home::new();
    let d = home.start_with(&format!("[hooks]\nenabled = true\ntoken = \"{hooks}\"\n"));
    let token = home.token();
    let status = |path: &str, headers: &[(&str, &str)]| -> Result<u16> {
        Ok(try_http(d.port, "GET", path, headers).with_context(|| format!("GET {path}"))?.0)
    };
    let post_status = |path: &str, headers: &[(&str, &str)], body: &str| -> Result<u16> {
        Ok(gateway_tests::http1::request(d.port, "POST", path, headers, Some(body))?.status)
    };

    // Credential-less requests first: none of them may count.
    for _ in 0..attempts {
        ensure!(status("/gateway/status", &[])? == 401, "a request without a credential must get 401");
    }
    let bearer = format!("Bearer {token}");
    ensure!(
        status("/gateway/status", &[("Authorization", &bearer)])? == 200,
        "owner locked out by credential-less requests"
    );

    let http = share_limited(attempts, |i| {
        let wrong = format!("Bearer wrong-{i}");
        Ok(status("/gateway/status", &[("Authorization", &wrong)])? == 429)
    })?;
    rows.push(row("R15-http", format!("{attempts} wrong bearer tokens answered 429"), "%", http, share));
    let ws = share_limited(attempts, |i| {
        let wrong = format!("wrong-{i}");
        let (_c, res) = Client::connect(d.port, &Connect { token: Some(&wrong), ..Default::default() });
        Ok(res["error"]["details"]["code"] == "AUTH_RATE_LIMITED")
    })?;
    rows.push(row(
        "R15-ws",
        format!("{attempts} wrong WebSocket tokens answered AUTH_RATE_LIMITED"),
        "%",
        ws,
        share,
    ));
    let hook = share_limited(attempts, |i| {
        let wrong = format!("x-wrong-hooks-token-{i:06}");
        Ok(post_status("/hooks/wake", &[("x-gateway-hooks-token", &wrong)], "{}")? == 429)
    })?;
    rows.push(row("R15-hooks", format!("{attempts} wrong hooks tokens answered 429"), "%", hook, share));
    // The owner still gets in, over HTTP and WebSocket, while the address is locked out.
    let owner_http = status("/gateway/status", &[("Authorization", &bearer)])? == 200;
    let (_c, res) = Client::connect(d.port, &Connect { token: Some(&token), ..Default::default() });
    let owner = u8::from(owner_http) + u8::from(res["ok"] == true);
    rows.push(row(
        "R15-owner",
        "the owner's token during the lockout (HTTP, WS) accepted".into(),
        "of 2",
        owner.into(),
        Target::AtLeast(2.0),
    ));
    drop(d);

    // Password sign-in: guesses get 429 without being tried once the address is locked out.
    let home = Home::new();
    home.write_config(None, "[gateway.auth]\nmode = \"password\"\n");
    let port = free_port();
    let mut d = home.spawn(&["--port", &port.to_string()], |c| {
        c.env("GATEWAY_PASSWORD", "the-right-password");
    });
    d.port = port;
    d.wait_ready();
    let started = Instant::now();
    let password = share_limited(attempts, |i| {
        let body = format!("{{\"password\": \"guess-{i}\"}}");
        Ok(gateway_tests::http1::request(port, "POST", "/gateway/auth/session", &[], Some(&body))?.status
            == 429)
    })?;
    rows.push(row("R15-password", format!("{attempts} wrong passwords answered 429"), "%", password, share));
    notes.push(format!(
        "R15: {attempts} password guesses took {:.1} s in all: only the first 10 ran argon2, the rest were refused at once",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// R12: `n` slow-header and `n` silent connections against a 2 s header timeout.
fn r12(n: usize, rows: &mut Vec<Row>, notes: &mut Vec<String>) -> Result<()> {
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

/// A small deterministic generator (xorshift64*), so a run can be repeated.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1) as u64) as usize
    }
}

const R5_BASE: &str = "[gateway.reload]\nmode = \"off\"\n\n[gateway.heartbeat]\ninterval_ms = 20000\n\n\
[logging]\nlevel = \"info\"\n\n[gateway.http]\nmax_body_bytes = 2097152\nheader_read_timeout_ms = 9000\n";

/// The `i`th mutation of the base config.
fn mutate(rng: &mut Rng, i: usize) -> Vec<u8> {
    let base = R5_BASE.as_bytes();
    match i % 9 {
        0 => {
            let mut b = base.to_vec();
            let at = rng.below(b.len());
            b[at] ^= 1 << rng.below(8);
            b
        }
        1 => base[..rng.below(base.len())].to_vec(),
        2 => R5_BASE.replace("20000", "\"twenty\"").into_bytes(),
        3 => format!("{R5_BASE}bogus_key = 1\n").into_bytes(),
        4 => R5_BASE.replace("\"info\"", &format!("\"{}\"", "A".repeat(1_000_000))).into_bytes(),
        5 => format!("{R5_BASE}\n[logging]\nlevel = \"debug\"\n").into_bytes(),
        6 => {
            let mut b = base.to_vec();
            b.insert(rng.below(b.len()), 0xFF);
            b
        }
        7 => [b"\xEF\xBB\xBF".as_slice(), base].concat(),
        _ => Vec::new(),
    }
}

/// R5: `count` mutated configs, each written in place and reloaded, then the base put back.
fn r5(count: usize, rows: &mut Vec<Row>, notes: &mut Vec<String>) -> Result<()> {
    let home = Home::new();
    let d = home.start_with(R5_BASE);
    let bearer = format!("Bearer {}", home.token());
    let socket = home.socket(None);
    let file = home.config_file(None);
    let reload = || -> Result<serde_json::Value> {
        let (code, body) = gateway_tests::unix_http(&socket, "POST", "/v1/reload", &[])?;
        ensure!(code == 200, "reload answered {code}: {body}");
        Ok(serde_json::from_str(&body)?)
    };
    let pid = || -> Result<u64> {
        let (_, body) = gateway_tests::unix_http(&socket, "GET", "/v1/status", &[])?;
        let v: serde_json::Value = serde_json::from_str(&body)?;
        v["pid"].as_u64().context("a pid")
    };
    let first_pid = pid()?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut rejected, mut located, mut applied, mut named, mut serving) = (0, 0, 0, 0, 0);
    let (mut other, mut longest) = (0, 0usize);
    for i in 0..count {
        let text = mutate(&mut rng, i);
        std::fs::write(&file, &text)?;
        let report = reload()?;
        longest = longest.max(report.to_string().len());
        match report["outcome"].as_str() {
            Some("rejected") => {
                rejected += 1;
                let e = &report["errors"][0];
                if e["line"].is_u64() || e["key"].is_string() {
                    located += 1;
                }
            }
            Some("applied") => {
                applied += 1;
                // Every changed key whose name the file no longer holds went back to its
                // default: the report must name it as such.
                let text = String::from_utf8_lossy(&text);
                let names = |field: &str| -> Vec<String> {
                    report[field]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|k| k.as_str().map(str::to_owned))
                        .collect()
                };
                let defaulted = names("defaulted_keys");
                let vanished = names("changed_keys").into_iter().filter(|k| {
                    let leaf = k.rsplit('.').next().unwrap_or(k);
                    !text.contains(leaf)
                });
                if vanished.into_iter().all(|k| defaulted.contains(&k)) {
                    named += 1;
                }
            }
            Some("unchanged") => {}
            _ => other += 1,
        }
        if try_http(d.port, "GET", "/gateway/status", &[("Authorization", &bearer)])?.0 == 200
            && pid()? == first_pid
        {
            serving += 1;
        }
        std::fs::write(&file, R5_BASE)?;
        reload()?;
    }
    let pct = |n: usize, of: usize| if of == 0 { 100.0 } else { 100.0 * n as f64 / of as f64 };
    rows.push(row(
        "R5-located",
        format!("rejected configs whose error names a line or key ({rejected} of {count})"),
        "%",
        pct(located, rejected),
        Target::AtLeast(100.0),
    ));
    rows.push(row(
        "R5-defaults",
        format!("applied configs that name every key gone back to its default ({applied} of {count})"),
        "%",
        pct(named, applied),
        Target::AtLeast(100.0),
    ));
    rows.push(row(
        "R5-serving",
        format!("{count} reloads after which the token works and the pid is the same"),
        "%",
        pct(serving, count),
        Target::AtLeast(100.0),
    ));
    rows.push(row(
        "R5-restarts",
        "reloads that restarted the gateway or ended otherwise".into(),
        "",
        other as f64,
        Target::AtMost(0.0),
    ));
    rows.push(row(
        "R5-report",
        "the largest reload report (a 1 MB value among the inputs)".into(),
        "bytes",
        longest as f64,
        Target::AtMost(2_000.0),
    ));
    notes.push(format!(
        "R5: of {count} mutated files, {rejected} were rejected, {applied} applied ({named} naming every key that went back to its default), the rest unchanged"
    ));
    Ok(())
}
