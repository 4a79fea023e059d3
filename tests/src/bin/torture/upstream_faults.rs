//! R16: upstream faults (a refused connection, a hang before the first byte, garbage where JSON
//! or events belong, a stall and a drop mid-stream) and clients that leave mid-stream. Every
//! request must end, with a documented error, within the provider's timeouts; afterwards nothing
//! may be left behind: no request still open at the upstream, no HTTP connection open at the
//! gateway, and the gateway's file descriptors back to their count before (less the idle
//! connections its upstream pool keeps).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use gateway_tests::benchutil::{ms, Row, Stats, Target};
use gateway_tests::upstream::Upstream;
use gateway_tests::{free_port, Home};
use serde_json::{json, Value};

use crate::row;

const FIRST_BYTE_MS: u64 = 1_000;
const IDLE_MS: u64 = 1_000;

/// One kind of fault: the model asked for, and whether the client leaves after the first
/// content chunk.
struct Fault {
    name: &'static str,
    model: &'static str,
    stream: bool,
    leaves: bool,
}

const FAULTS: &[Fault] = &[
    Fault { name: "connection refused", model: "down/echo", stream: false, leaves: false },
    Fault {
        name: "hang before the first byte",
        model: "up/slow-first-byte-600000",
        stream: true,
        leaves: false,
    },
    Fault { name: "garbage events", model: "up/garbage", stream: true, leaves: false },
    Fault { name: "garbage JSON", model: "whole/garbage", stream: false, leaves: false },
    Fault { name: "HTTP 500", model: "up/fault-500", stream: true, leaves: false },
    Fault { name: "stall mid-stream", model: "up/stall-after-2", stream: true, leaves: false },
    Fault { name: "drop mid-stream", model: "up/drop-after-2", stream: true, leaves: false },
    Fault { name: "client leaves mid-stream", model: "up/stall-after-2", stream: true, leaves: true },
];

pub fn run(n: usize, rows: &mut Vec<Row>, notes: &mut Vec<String>) -> Result<()> {
    let up = Upstream::builder().record(false).start()?;
    let timeouts = format!(
        "first_byte_timeout_ms = {FIRST_BYTE_MS}\nidle_timeout_ms = {IDLE_MS}\nmax_retries = 0\nconnect_timeout_ms = 1000\n"
    );
    let models =
        r#"["echo", "slow-first-byte-600000", "garbage", "fault-500", "stall-after-2", "drop-after-2"]"#;
    // Room for every request to run at once, so a request's time is the fault's, not a wait
    // for a run slot (`runs.max_concurrent`, 64 by default).
    let config = format!(
        "[runs]\nmax_concurrent = 1024\n\n[models.providers.up]\nkind = \"openai\"\nbase_url = \"{base}\"\nmodels = {models}\n{timeouts}\n\
         [models.providers.whole]\nkind = \"openai\"\nbase_url = \"{base}\"\nstream = false\nmodels = [\"garbage\"]\n{timeouts}\n\
         [models.providers.down]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:{closed}/v1\"\nmodels = [\"echo\"]\n{timeouts}",
        base = up.openai_base_url(),
        closed = free_port(),
    );
    let home = Home::new();
    let d = home.start_with(&config);
    let token = home.token();
    let socket = home.socket(None);
    let port = d.port;
    let pid = d.pid();

    // The baseline, after one good request has warmed up the pool.
    let ok = chat(port, &token, "up/echo", true, false)?;
    anyhow::ensure!(ok.error.is_none(), "a good request failed: {:?}", ok.error);
    thread::sleep(Duration::from_millis(200));
    let before = Leftovers::read(pid, &up, &socket)?;

    let started = Instant::now();
    let clients: Vec<_> = FAULTS
        .iter()
        .flat_map(|f| (0..n).map(move |_| f))
        .map(|f| {
            let token = token.clone();
            thread::spawn(move || chat(port, &token, f.model, f.stream, f.leaves).map(|o| (f.name, o)))
        })
        .collect();
    let mut durations = Vec::new();
    let mut slowest: Vec<(&str, f64)> = Vec::new();
    let (mut clean, mut total) = (0, 0);
    let mut odd = Vec::new();
    for c in clients {
        let (name, outcome) = c.join().map_err(|_| anyhow!("a client thread panicked"))??;
        total += 1;
        durations.push(ms(outcome.took));
        match slowest.iter_mut().find(|(n, _)| *n == name) {
            Some((_, t)) => *t = t.max(ms(outcome.took)),
            None => slowest.push((name, ms(outcome.took))),
        }
        // A client that left ends by leaving; the others must get a documented error.
        if outcome.left || outcome.error.as_deref().is_some_and(documented) {
            clean += 1;
        } else if odd.len() < 3 {
            odd.push(format!("{name}: {:?}", outcome.error));
        }
    }
    let took = Stats::of(durations);
    // What the faults left behind, once the gateway had a moment to notice clients that left.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut after = Leftovers::read(pid, &up, &socket)?;
    while !after.settled(&before) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
        after = Leftovers::read(pid, &up, &socket)?;
    }
    let bound = (FIRST_BYTE_MS.max(IDLE_MS) + 1_000) as f64;
    rows.push(row(
        "R16-ended",
        format!("{total} requests on faulty upstreams ended with a documented error"),
        "%",
        100.0 * clean as f64 / total as f64,
        Target::AtLeast(100.0),
    ));
    rows.push(row(
        "R16-bounded",
        format!("the longest of them (first-byte and idle timeouts {FIRST_BYTE_MS} ms)"),
        "ms",
        took.max,
        Target::AtMost(bound),
    ));
    rows.push(row(
        "R16-upstream",
        "requests still open at the upstream afterwards".into(),
        "",
        after.upstream_streams as f64,
        Target::AtMost(0.0),
    ));
    rows.push(row(
        "R16-connections",
        "HTTP connections still open at the gateway afterwards".into(),
        "",
        after.http_connections as f64,
        Target::AtMost(0.0),
    ));
    rows.push(row(
        "R16-fds",
        format!("gateway fds afterwards, less pooled upstream connections (before: {})", before.own_fds()),
        "",
        after.own_fds() as f64,
        Target::AtMost(before.own_fds() as f64),
    ));
    notes.push(format!(
        "R16: {total} requests ({n} per fault; the slowest of each: {}) in {:.1} s; fds {} before, {} after, {} pooled upstream connections after{}",
        slowest.iter().map(|(n, t)| format!("{n} {t:.0} ms")).collect::<Vec<_>>().join(", "),
        started.elapsed().as_secs_f64(),
        before.fds,
        after.fds,
        after.upstream_connections,
        if odd.is_empty() { String::new() } else { format!("; not clean: {}", odd.join("; ")) }
    ));
    Ok(())
}

/// The error codes the API documents for a failed upstream (docs/api.md).
fn documented(code: &str) -> bool {
    ["upstream_unavailable", "upstream_error", "timeout"].contains(&code)
}

/// How a request ended.
struct Outcome {
    took: Duration,
    /// The error code the gateway ended it with, if any.
    error: Option<String>,
    /// The client left after the first content chunk.
    left: bool,
}

/// A chat completion on `model`; with `leaves`, the client goes away after the first content.
fn chat(port: u16, token: &str, model: &str, stream: bool, leaves: bool) -> Result<Outcome> {
    let body = json!({"model": model, "stream": stream,
        "messages": [{"role": "user", "content": "alpha beta gamma delta"}]})
    .to_string();
    let started = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut reader = BufReader::new(s);
    let mut error = None;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).context("read the answer")? == 0 {
            break;
        }
        let text = line.trim_end();
        let data = text.strip_prefix("data: ").unwrap_or(text);
        if leaves && data.contains("\"content\":\"alpha") {
            return Ok(Outcome { took: started.elapsed(), error: None, left: true });
        }
        if let Ok(v) = serde_json::from_str::<Value>(data) {
            if let Some(code) = v["error"]["code"].as_str() {
                error = Some(code.to_owned());
            }
        }
    }
    Ok(Outcome { took: started.elapsed(), error, left: false })
}

/// What a gateway holds open.
struct Leftovers {
    fds: usize,
    upstream_connections: usize,
    upstream_streams: usize,
    http_connections: u64,
}

impl Leftovers {
    fn read(pid: u32, up: &Upstream, socket: &std::path::Path) -> Result<Self> {
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count();
        let (_, body) = gateway_tests::unix_http(socket, "GET", "/v1/status", &[])?;
        let status: Value = serde_json::from_str(&body)?;
        Ok(Self {
            fds,
            upstream_connections: up.open_connections(),
            upstream_streams: up.open_streams(),
            http_connections: status["connections"]["http"].as_u64().context("connections.http")?,
        })
    }

    /// The gateway's fds other than its pooled upstream connections.
    fn own_fds(&self) -> usize {
        self.fds - self.upstream_connections.min(self.fds)
    }

    fn settled(&self, before: &Self) -> bool {
        self.upstream_streams == 0 && self.http_connections == 0 && self.own_fds() <= before.own_fds()
    }
}
