//! R7: SIGTERM while streams are open. Half of the SSE streams are about to finish, half wait on
//! a stalled upstream; half of the WebSocket clients are idle, half have a run going on a
//! stalled upstream. Every client must get a clean end within the drain budget: an SSE stream
//! its last event and the end of the chunked body (`[DONE]`, or the `run_aborted` error), a
//! WebSocket client its run's `aborted` event (when it had one), `shutdown` and close 1012.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Result};
use gateway_tests::benchutil::{ms, Row, Stats, Target};
use gateway_tests::upstream::Upstream;
use gateway_tests::ws::{Client, Device};
use gateway_tests::Home;
use nix::sys::signal::Signal;
use serde_json::json;
use tungstenite::Message;

use crate::row;

const DRAIN_MS: u64 = 3_000;
const STALLED: &str = "up/stall-after-1";
/// 60 words, 20 ms apart: still streaming at the signal, done well within the budget.
const FINISHING: &str = "up/words-60+chunk-delay-20";

/// How one client's connection ended, and when (since the signal).
struct End {
    clean: bool,
    at: Instant,
    what: String,
}

pub fn run(n: usize, rows: &mut Vec<Row>, notes: &mut Vec<String>) -> Result<()> {
    let up = Upstream::builder().record(false).start()?;
    let config = format!(
        "[runs]\nmax_concurrent = 1024\n\n[gateway.shutdown]\ndrain_timeout_ms = {DRAIN_MS}\n\n{}",
        gateway_tests::upstream::upstream_provider(&up, &["stall-after-1", "words-60+chunk-delay-20"])
    );
    let home = Home::new();
    let mut d = home.start_with(&config);
    let token = home.token();
    let port = d.port;

    // Every client says when it is mid-stream, then reports how it ended.
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let mut clients = Vec::new();
    for i in 0..n {
        let (token, ready) = (token.clone(), ready_tx.clone());
        let model = if i % 2 == 0 { STALLED } else { FINISHING };
        clients.push(thread::spawn(move || sse_client(port, &token, model, ready)));
    }
    // WebSocket clients connect one after the other (the gateway admits 32 handshakes in
    // flight per address), then each waits on its own thread.
    for i in 0..n {
        let running = i % 2 == 0;
        let c = ws_client(port, &token, i, running)?;
        let _ = ready_tx.send(());
        clients.push(thread::spawn(move || ws_end(c, i, running)));
    }
    drop(ready_tx);
    for _ in 0..2 * n {
        ready_rx.recv_timeout(Duration::from_secs(30)).map_err(|_| anyhow!("a client did not get going"))?;
    }

    let signalled = Instant::now();
    d.signal(Signal::SIGTERM);
    let mut ends = Vec::new();
    for c in clients {
        ends.push(c.join().map_err(|_| anyhow!("a client thread panicked"))??);
    }
    let exited = loop {
        if let Some(status) = d.child.try_wait()? {
            break (status, signalled.elapsed());
        }
        ensure!(signalled.elapsed() < Duration::from_secs(30), "gatewayd did not exit after SIGTERM");
        thread::sleep(Duration::from_millis(5));
    };
    let clean = ends.iter().filter(|e| e.clean).count();
    let last = Stats::of(ends.iter().map(|e| ms(e.at.duration_since(signalled))).collect());
    let unclean: Vec<&str> = ends.iter().filter(|e| !e.clean).map(|e| e.what.as_str()).take(3).collect();
    rows.push(row(
        "R7-clean",
        format!("{n} SSE + {n} WebSocket clients (half mid-run) that got a clean end on SIGTERM"),
        "%",
        100.0 * clean as f64 / ends.len() as f64,
        Target::AtLeast(100.0),
    ));
    rows.push(row(
        "R7-within",
        format!("the last client's end after the signal (drain budget {DRAIN_MS} ms)"),
        "ms",
        last.max,
        Target::AtMost(DRAIN_MS as f64),
    ));
    rows.push(row(
        "R7-exit",
        format!("gatewayd exited 0 after (exit status {})", exited.0.code().unwrap_or(-1)),
        "ms",
        if exited.0.success() { ms(exited.1) } else { f64::INFINITY },
        Target::AtMost((DRAIN_MS + 1_000) as f64),
    ));
    notes.push(format!(
        "R7: clients ended {:.0}-{:.0} ms after the signal (finished streams first, stalled ones at the budget's last quarter); gatewayd exited after {:.0} ms{}",
        last.min,
        last.max,
        ms(exited.1),
        if unclean.is_empty() { String::new() } else { format!("; not clean: {}", unclean.join("; ")) }
    ));
    Ok(())
}

/// A streamed chat completion: ready after its first content; clean when the stream's last
/// event is `[DONE]` or the `run_aborted` error and the chunked body ends properly.
fn sse_client(port: u16, token: &str, model: &str, ready: mpsc::Sender<()>) -> Result<End> {
    let body = json!({"model": model, "stream": true,
        "messages": [{"role": "user", "content": "alpha beta gamma"}]})
    .to_string();
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut reader = BufReader::new(s);
    let mut line = String::new();
    loop {
        line.clear();
        ensure!(reader.read_line(&mut line)? > 0, "the stream ended before any content");
        if line.contains("\"content\":\"") {
            break;
        }
    }
    let _ = ready.send(());
    let mut rest = String::new();
    let read = reader.read_to_string(&mut rest);
    let at = Instant::now();
    let data: Vec<&str> = rest.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
    let ended_well =
        matches!(data.last(), Some(&"[DONE]")) || data.last().is_some_and(|d| d.contains("run_aborted"));
    // The chunked body's last chunk: the stream was ended, not cut.
    let clean = read.is_ok() && ended_well && rest.ends_with("0\r\n\r\n");
    Ok(End { clean, at, what: format!("SSE {model}: {:?}", data.last()) })
}

/// A WebSocket client, connected, and with a run going on the stalled upstream if `running`.
fn ws_client(port: u16, token: &str, i: usize, running: bool) -> Result<Client> {
    let device = Device::new(100 + (i % 150) as u8);
    let (mut c, res) = Client::paired(port, token, &device);
    ensure!(res["ok"] == true, "connect refused: {res}");
    let run_id = format!("r7-{i}");
    if running {
        let res = c.request(
            "chat.send",
            json!({ "sessionKey": format!("r7-{i}"), "message": "hello", "model": STALLED, "idempotencyKey": run_id }),
        );
        ensure!(res["ok"] == true, "chat.send refused: {res}");
        c.event_where("chat", Duration::from_secs(20), |e| e["payload"]["runId"] == run_id.as_str());
    }
    Ok(c)
}

/// Clean with the run's `aborted` event (when it had one), `shutdown`, then close 1012.
fn ws_end(mut c: Client, i: usize, running: bool) -> Result<End> {
    let run_id = format!("r7-{i}");
    c.ws.get_mut().set_read_timeout(Some(Duration::from_secs(30)))?;
    // Until the close frame; a connection cut without one has code 0.
    let (code, reason) = loop {
        match c.ws.read() {
            Ok(Message::Text(t)) => c.events.push(serde_json::from_str(&t).unwrap_or_default()),
            Ok(Message::Close(frame)) => {
                break frame.map_or((1005, String::new()), |f| (u16::from(f.code), f.reason.to_string()))
            }
            Ok(_) => {}
            Err(e) => break (0, e.to_string()),
        }
    };
    let at = Instant::now();
    let saw = |name: &str, state: Option<&str>| {
        c.events.iter().any(|e| {
            e["event"] == name
                && state
                    .is_none_or(|s| e["payload"]["state"] == s && e["payload"]["runId"] == run_id.as_str())
        })
    };
    let clean = code == 1012 && saw("shutdown", None) && (!running || saw("chat", Some("aborted")));
    Ok(End { clean, at, what: format!("WebSocket (run: {running}): close {code} {reason}") })
}
