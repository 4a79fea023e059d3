//! gateway-ws-bench: measures the release `gatewayd`'s WebSocket protocol against the project's
//! targets, OpenClaw's figures and a floor (`ws-floor`, a bare tokio WebSocket server).
//!
//! Run from the workspace root:
//!   cargo build --release --workspace --bins && ./target/release/gateway-ws-bench [--json]
//!
//! What it measures (see docs/performance.md, "WebSocket protocol"):
//! - sequential handshakes per second (open, challenge, connect, hello-ok, close), with the
//!   shared token and with a signed device identity; and, as diagnostics, the token rate over
//!   the floor's in two fixed placements (the client and both servers on one CPU; the client on
//!   one CPU, the servers on another), the token rate over that of a floor whose accept loop
//!   runs on a worker as gatewayd's does, and each server's CPU time per handshake;
//! - the round trip of `health` over an open socket, sequential, p50 and p99, beside the floor;
//! - `health` throughput of 50 authenticated clients (tokio, one thread);
//! - the resident memory a number of idle authenticated clients add to the daemon (10,000, and
//!   50, three times over with fresh servers), connecting until a budget or an RSS guard stops it;
//! - as diagnostics without a target, the same round trip and throughput with `last-heartbeat`,
//!   a method that reads a few in-memory fields and answers in a few dozen bytes, and each
//!   server's CPU time per `health` request during the throughput runs.
//!
//! Figures are medians (with min and max) of several runs; runs against gatewayd and against
//! the floor alternate so that drift on a shared machine hits both. Every child gets SIGKILL if
//! this process dies (PR_SET_PDEATHSIG), every wait has a timeout, and a watchdog ends the run
//! if it takes far longer than it should. Errors are returned rather than panicked so that the
//! children's handles drop (the release profile aborts on panic).

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use gateway_tests::benchutil::{
    arg_num, cpu_time, die_with_parent, machine, quantile, raise_nofile, rss_hwm_mb, to_json, to_table, Row,
    Stats, Target,
};
use gateway_tests::idle::hold;
use gateway_tests::otlp::Sink;
use gateway_tests::ws::Device;
use gateway_tests::wsraw::{AsyncClient, SyncClient};
use gateway_tests::{bin, free_port, try_http, Daemon, Home};
use serde::Deserialize;
use serde_json::{json, Value};

/// How long any single wait may take before the bench gives up.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The shared gateway token written into the bench's config.
const TOKEN: &str = "ws-bench-token-6f1d2c9a8b7e4f30";
const CLIENT_ID: &str = "gateway-ws-bench";
const CLIENT_MODE: &str = "bench";
/// Handshakes in flight at once while connecting many clients: under the daemon's default
/// `gateway.ws.max_unauthenticated_per_ip` (32).
const CONNECT_CONCURRENCY: usize = 16;

/// The diagnostic method: cheap, and no file I/O.
const DIAG_METHOD: &str = "last-heartbeat";

const PEER: &str = "openclaw@2026.9.6 (Node 24)";

struct Opts {
    json: bool,
    /// Traces and metrics exported over OTLP (at full sampling) to a sink in this process.
    otlp: bool,
    /// Runs per metric (handshakes, latency, throughput).
    runs: usize,
    handshakes: usize,
    device_handshakes: usize,
    rpcs: usize,
    clients: usize,
    depth: usize,
    seconds: f64,
    idle: usize,
    /// A second, small number of idle clients, before `presence` traffic dominates (0: skip).
    idle_small: usize,
    idle_budget: Duration,
    /// How long idle clients sit before the server's memory is read.
    idle_settle: Duration,
    /// Stop adding idle clients once the daemon's RSS passes this (MB): protects the machine.
    rss_guard_mb: f64,
    /// The watchdog: the whole run ends after this long.
    max_total: Duration,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            json: false,
            otlp: false,
            runs: 5,
            handshakes: 2000,
            device_handshakes: 500,
            rpcs: 4000,
            clients: 50,
            depth: 1,
            seconds: 3.0,
            idle: 10_000,
            idle_small: 50,
            idle_budget: Duration::from_secs(40),
            idle_settle: Duration::from_secs(2),
            rss_guard_mb: 1000.0,
            max_total: Duration::from_secs(300),
        }
    }
}

const USAGE: &str = "usage: gateway-ws-bench [--json] [--otlp] [--runs N] [--handshakes N] [--device-handshakes N] \
[--rpcs N] [--clients N] [--depth N] [--seconds S] [--idle K] [--idle-small K] [--idle-budget S] [--idle-settle S] [--rss-guard MB] [--max-total S]";

fn parse_args() -> Result<Opts> {
    let mut o = Opts::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--json" => o.json = true,
            "--otlp" => o.otlp = true,
            "--runs" => o.runs = arg_num(&arg, args.next())?,
            "--handshakes" => o.handshakes = arg_num(&arg, args.next())?,
            "--device-handshakes" => o.device_handshakes = arg_num(&arg, args.next())?,
            "--rpcs" => o.rpcs = arg_num(&arg, args.next())?,
            "--clients" => o.clients = arg_num(&arg, args.next())?,
            "--depth" => o.depth = arg_num(&arg, args.next())?,
            "--seconds" => o.seconds = arg_num(&arg, args.next())?,
            "--idle" => o.idle = arg_num(&arg, args.next())?,
            "--idle-small" => o.idle_small = arg_num(&arg, args.next())?,
            "--idle-budget" => o.idle_budget = Duration::from_secs_f64(arg_num(&arg, args.next())?),
            "--idle-settle" => o.idle_settle = Duration::from_secs_f64(arg_num(&arg, args.next())?),
            "--rss-guard" => o.rss_guard_mb = arg_num(&arg, args.next())?,
            "--max-total" => o.max_total = Duration::from_secs_f64(arg_num(&arg, args.next())?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} ({USAGE})"),
        }
    }
    ensure!(
        o.runs > 0 && o.handshakes > 0 && o.device_handshakes > 0 && o.rpcs > 0,
        "counts must be at least 1"
    );
    ensure!(
        o.clients > 0 && o.depth > 0 && o.seconds > 0.0,
        "--clients, --depth and --seconds must be positive"
    );
    Ok(o)
}

// ---------------------------------------------------------------------------------------------
// Servers

/// A gatewayd in a throwaway home with the bench's token, killed (and its home removed) on drop.
struct Gateway {
    daemon: Daemon,
    _home: Home,
}

fn start_gateway(otlp: Option<&Sink>) -> Result<Gateway> {
    let home = Home::new();
    home.write_config(None, &format!("[gateway.auth]\ntoken = \"{TOKEN}\"\n"));
    let port = free_port().to_string();
    let mut daemon = home.spawn(&["--port", &port], |cmd| {
        if let Some(sink) = otlp {
            sink.point(cmd);
        }
    });
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Ok((200, _)) = try_http(daemon.port, "GET", "/readyz", &[]) {
            break;
        }
        if let Some(status) = daemon.child.try_wait()? {
            bail!("gatewayd exited ({status}):\n{}", daemon.stderr());
        }
        ensure!(Instant::now() < deadline, "gatewayd not ready within {TIMEOUT:?}:\n{}", daemon.stderr());
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(Gateway { daemon, _home: home })
}

impl Gateway {
    fn port(&self) -> u16 {
        self.daemon.port
    }
    fn pid(&self) -> u32 {
        self.daemon.pid()
    }
}

/// A running ws-floor, killed on drop.
struct Floor {
    child: Child,
    port: u16,
}

impl Drop for Floor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `accept_on_worker`: the floor's accept loop is a task on a worker, as gatewayd's is, rather
/// than the main thread.
fn start_floor(accept_on_worker: bool) -> Result<Floor> {
    let port = free_port();
    let mut cmd = Command::new(bin("ws-floor"));
    cmd.args(["--port", &port.to_string()]);
    if accept_on_worker {
        cmd.arg("--accept-on-worker");
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    die_with_parent(&mut cmd);
    let mut floor = Floor { child: cmd.spawn().context("spawn ws-floor")?, port };
    let deadline = Instant::now() + TIMEOUT;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = floor.child.try_wait()? {
            bail!("ws-floor exited ({status})");
        }
        ensure!(Instant::now() < deadline, "ws-floor did not listen within {TIMEOUT:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(floor)
}

/// Which server a client talks to: the floor answers `connect` with a plain `{"ok":true}`.
#[derive(Clone, Copy, PartialEq)]
enum Server {
    Gateway,
    Floor,
}

// ---------------------------------------------------------------------------------------------
// The protocol, client side

/// A frame the server sent, for an error message: its start and its length, not all of it.
fn quoted(text: &[u8]) -> String {
    gateway_proto::quote::short(&String::from_utf8_lossy(text))
}

fn connect_frame(nonce: &str, device: Option<&Device>) -> Vec<u8> {
    let scopes: &[&str] = if device.is_some() { &["operator.read"] } else { &[] };
    let mut params = json!({
        "minProtocol": 4,
        "maxProtocol": 4,
        "client": { "id": CLIENT_ID, "version": "1.0.0", "platform": "linux", "mode": CLIENT_MODE },
        "role": "operator",
        "scopes": scopes,
        "auth": { "token": TOKEN },
    });
    if let Some(device) = device {
        params["device"] = device.proof(nonce, CLIENT_ID, CLIENT_MODE, "linux", "operator", scopes, TOKEN);
    }
    json!({ "type": "req", "id": "c", "method": "connect", "params": params }).to_string().into_bytes()
}

/// Microseconds per Ed25519 verification and per signing of a connect's v3 payload, in this
/// process, with the gateway's crate: the honest extra of a signed-device handshake.
fn ed25519_alone(device: &Device, n: usize) -> (f64, f64) {
    use ed25519_dalek::{Signer, Verifier};
    let payload = format!(
        "v3|{}|{CLIENT_ID}|{CLIENT_MODE}|operator|operator.read|1800000000000|{TOKEN}|{}|linux|",
        device.id(),
        "5f0c1e2d-3b4a-4968-8776-a5b4c3d2e1f0"
    );
    let started = Instant::now();
    let mut signature = device.key.sign(payload.as_bytes());
    for _ in 1..n {
        signature = device.key.sign(std::hint::black_box(payload.as_bytes()));
    }
    let sign = started.elapsed().as_secs_f64() * 1e6 / n as f64;
    let key = device.key.verifying_key();
    let started = Instant::now();
    for _ in 0..n {
        // A paired device's key stays parsed in the gateway: the verification is what is left.
        assert!(key.verify(std::hint::black_box(payload.as_bytes()), &signature).is_ok());
    }
    let verify = started.elapsed().as_secs_f64() * 1e6 / n as f64;
    (verify, sign)
}

/// The fields of `connect.challenge` the client uses.
#[derive(Deserialize)]
struct Challenge<'a> {
    #[serde(borrow)]
    event: &'a str,
    payload: ChallengePayload,
}

#[derive(Deserialize)]
struct ChallengePayload {
    nonce: String,
}

fn challenge_nonce(text: &[u8]) -> Result<String> {
    let c: Challenge =
        serde_json::from_slice(text).with_context(|| format!("not a challenge: {}", quoted(text)))?;
    ensure!(c.event == "connect.challenge", "expected connect.challenge, got {}", c.event);
    Ok(c.payload.nonce)
}

/// The fields of the `connect` response the client checks; serde skips the rest, as the RPC
/// loops do, so that the client's cost does not grow with the size of a server's answer.
#[derive(Deserialize)]
struct HelloHead<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(default)]
    ok: Option<bool>,
    #[serde(default, borrow)]
    payload: Option<HelloPayload<'a>>,
}

#[derive(Deserialize)]
struct HelloPayload<'a> {
    #[serde(rename = "type", default)]
    kind: Option<&'a str>,
}

/// The `connect` response, if `text` is it; an error if it refused.
fn hello(text: &[u8], server: Server) -> Result<bool> {
    let head: HelloHead = serde_json::from_slice(text).context("frame is not JSON")?;
    if head.kind != "res" {
        return Ok(false);
    }
    ensure!(head.ok == Some(true), "connect refused: {}", quoted(text));
    if server == Server::Gateway {
        let kind = head.payload.and_then(|p| p.kind);
        ensure!(kind == Some("hello-ok"), "not hello-ok: {}", quoted(text));
    }
    Ok(true)
}

fn rpc_frame(method: &str, n: u64) -> Vec<u8> {
    format!(r#"{{"type":"req","id":"h{n}","method":"{method}","params":{{}}}}"#).into_bytes()
}

/// The few fields of a frame the RPC loops look at; serde skips the rest.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(default)]
    id: Option<&'a str>,
    #[serde(default)]
    ok: Option<bool>,
    #[serde(default)]
    payload: Option<PayloadHead>,
}

#[derive(Deserialize)]
struct PayloadHead {
    /// `health`'s own verdict (the floor answers `{"ok":true}` too).
    #[serde(default)]
    ok: Option<bool>,
}

/// What a frame was to an RPC loop.
#[derive(PartialEq)]
enum Reply {
    /// An event or anything that is not a response: skipped.
    Other,
    /// A successful response whose payload says `ok: true`.
    Healthy,
    /// A successful response whose payload says `ok: false` (a failing health check).
    Unhealthy,
}

/// Classifies `text`; a failed request, or a response to another id than `expect`, is an error.
fn reply(text: &[u8], expect: Option<u64>) -> Result<Reply> {
    let head: Head = serde_json::from_slice(text).context("frame is not JSON")?;
    if head.kind != "res" {
        return Ok(Reply::Other);
    }
    ensure!(head.ok == Some(true), "request failed: {}", quoted(text));
    if let Some(n) = expect {
        let id = head.id.unwrap_or("");
        ensure!(
            id.strip_prefix('h').and_then(|x| x.parse().ok()) == Some(n),
            "response to {id:?} while waiting for h{n}"
        );
    }
    Ok(match head.payload.and_then(|p| p.ok) {
        Some(false) => Reply::Unhealthy,
        _ => Reply::Healthy,
    })
}

/// Opens a socket and completes the handshake, blocking.
fn handshake_sync(port: u16, server: Server, device: Option<&Device>, seed: u64) -> Result<SyncClient> {
    let mut c = SyncClient::open(port, TIMEOUT, seed)?;
    let nonce = challenge_nonce(&c.recv_text()?)?;
    c.send_text(&connect_frame(&nonce, device))?;
    while !hello(&c.recv_text()?, server)? {}
    Ok(c)
}

async fn handshake_async(
    port: u16,
    server: Server,
    device: Option<Device>,
    seed: u64,
) -> Result<AsyncClient> {
    let steps = async {
        let mut c = AsyncClient::open(port, seed).await?;
        let nonce = challenge_nonce(&c.recv_text().await?)?;
        c.send_text(&connect_frame(&nonce, device.as_ref())).await?;
        while !hello(&c.recv_text().await?, server)? {}
        Ok(c)
    };
    tokio::time::timeout(TIMEOUT, steps).await.context("handshake timed out")?
}

// ---------------------------------------------------------------------------------------------
// Measurements

/// Where [`Pinned`] puts the benchmark's thread and the servers' threads.
#[derive(Clone, Copy)]
enum Placement {
    /// All on one CPU: no message waits for another CPU to wake.
    OneCpu,
    /// The client on one CPU, both servers on another: every message crosses CPUs.
    TwoCpus,
}

/// While alive, this thread and every thread of the given processes run where `placement`
/// says (the first CPU this thread may use, and for the servers of [`Placement::TwoCpus`] the
/// second), with `taskset`; on drop, each gets its former CPU set back.
struct Pinned {
    /// Each pinned thread or process (`-a`: all its threads) and its former CPU list.
    former: Vec<(String, bool, String)>,
}

impl Pinned {
    /// None when `placement` needs two CPUs and this thread may use only one.
    fn new(processes: &[u32], placement: Placement) -> Result<Option<Self>> {
        // The main thread's id is the process id: `taskset` without `-a` moves this thread only.
        let me = std::process::id().to_string();
        let cpus = expand_cpu_list(&cpu_list(&me)?)?;
        let (client, servers) = match (placement, cpus.as_slice()) {
            (Placement::OneCpu, [first, ..]) => (*first, *first),
            (Placement::TwoCpus, [first, second, ..]) => (*first, *second),
            _ => return Ok(None),
        };
        let mut pinned = Self { former: Vec::new() };
        let targets = std::iter::once((me, false, client))
            .chain(processes.iter().map(|p| (p.to_string(), true, servers)));
        for (pid, all, cpu) in targets {
            let former = cpu_list(&pid)?;
            set_cpu_list(&pid, all, &cpu.to_string())?;
            pinned.former.push((pid, all, former));
        }
        Ok(Some(pinned))
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        for (pid, all, former) in &self.former {
            let _ = set_cpu_list(pid, *all, former);
        }
    }
}

/// The CPUs of a `taskset -c` list ("0-2,5" -> 0, 1, 2, 5).
fn expand_cpu_list(list: &str) -> Result<Vec<u32>> {
    let mut cpus = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let number = |s: &str| s.trim().parse::<u32>().with_context(|| format!("CPU list {list:?}"));
        match part.split_once('-') {
            Some((from, to)) => cpus.extend(number(from)?..=number(to)?),
            None => cpus.push(number(part)?),
        }
    }
    Ok(cpus)
}

/// The CPUs `pid` may run on, as `taskset -c` lists them ("0-1").
fn cpu_list(pid: &str) -> Result<String> {
    let out = Command::new("taskset").args(["-c", "-p", pid]).output().context("run taskset (util-linux)")?;
    ensure!(out.status.success(), "taskset -c -p {pid}: {}", String::from_utf8_lossy(&out.stderr).trim());
    let text = String::from_utf8_lossy(&out.stdout);
    let list = text.rsplit(':').next().map(str::trim).unwrap_or_default();
    ensure!(!list.is_empty(), "taskset -c -p {pid} printed no CPU list");
    Ok(list.to_owned())
}

fn set_cpu_list(pid: &str, all_threads: bool, list: &str) -> Result<()> {
    let mut cmd = Command::new("taskset");
    if all_threads {
        cmd.arg("-a");
    }
    let out = cmd.args(["-c", "-p", list, pid]).output().context("run taskset (util-linux)")?;
    ensure!(
        out.status.success(),
        "taskset -c -p {list} {pid}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// `n` sequential handshakes (open, challenge, connect, hello-ok, clean close) with the server
/// on `port`, whose process is `pid`: their rate and the server's CPU time.
fn handshake_rate(
    port: u16,
    pid: u32,
    server: Server,
    device: Option<&Device>,
    n: usize,
    seed: &mut u64,
) -> Result<Handshakes> {
    settle(|| {
        *seed += 1;
        handshake_sync(port, server, device, *seed)?.close()
    })?;
    let (t0, cpu0) = (Instant::now(), cpu_time(pid)?);
    for _ in 0..n {
        *seed += 1;
        handshake_sync(port, server, device, *seed)?.close()?;
    }
    let (took, cpu) = (t0.elapsed(), cpu_time(pid)?.saturating_sub(cpu0));
    Ok(Handshakes { rate: n as f64 / took.as_secs_f64(), server_cpu_us: cpu.as_secs_f64() * 1e6 / n as f64 })
}

/// What a run of sequential handshakes measured.
struct Handshakes {
    /// Handshakes per second.
    rate: f64,
    /// The server's CPU time (all threads, user and system) per handshake, in microseconds.
    server_cpu_us: f64,
}

/// Rounds of the small idle-client measurement, each with a fresh gatewayd and a fresh floor.
const IDLE_SMALL_ROUNDS: usize = 3;

/// How long each measured run of sequential work is preceded by the same work, unmeasured.
/// A server left idle while another was measured comes back with its threads placed anew: on
/// some virtual machines the kernel first runs a lightly loaded server on the client's CPU
/// (a round trip of a few microseconds) and spreads the two out within tens of milliseconds of
/// steady load (each wake-up then crosses CPUs, ~35 us apiece). Without this, whichever server
/// ran the shorter run was measured in the first state and the other in the second.
const SETTLE: Duration = Duration::from_millis(300);

/// Runs `op` over and over for [`SETTLE`].
fn settle(mut op: impl FnMut() -> Result<()>) -> Result<()> {
    let t0 = Instant::now();
    while t0.elapsed() < SETTLE {
        op()?;
    }
    Ok(())
}

/// Sequential round trips of `method` on an open client: (p50, p99) in ms of `n` requests,
/// after [`SETTLE`] of the same.
fn rpc_latency(c: &mut SyncClient, method: &str, next_id: &mut u64, n: usize) -> Result<(f64, f64)> {
    let mut round_trip = |c: &mut SyncClient| -> Result<f64> {
        *next_id += 1;
        let frame = rpc_frame(method, *next_id);
        let t0 = Instant::now();
        c.send_text(&frame)?;
        while reply(&c.recv_text()?, Some(*next_id))? == Reply::Other {}
        Ok(t0.elapsed().as_secs_f64() * 1e3)
    };
    settle(|| round_trip(c).map(drop))?;
    let samples: Result<Vec<f64>> = (0..n).map(|_| round_trip(c)).collect();
    let mut samples = samples?;
    Ok((quantile(&mut samples, 0.50), quantile(&mut samples, 0.99)))
}

/// What a throughput run measured.
struct Throughput {
    /// Requests per second.
    rate: f64,
    /// `health` answers that said `ok: false`.
    unhealthy: u64,
    /// The server's CPU time (all threads, user and system) per request, in microseconds.
    server_cpu_us: f64,
}

/// `method` requests per second over all `clients`, each keeping `depth` requests in flight,
/// counted over `seconds` after a short warm-up, and the CPU time the server (`server_pid`)
/// spent meanwhile. The clients are lent to tasks and given back.
async fn throughput(
    clients: Vec<AsyncClient>,
    method: &'static str,
    depth: usize,
    seconds: f64,
    server_pid: u32,
) -> Result<(Vec<AsyncClient>, Throughput)> {
    let warmup = Duration::from_millis(300);
    let from = tokio::time::Instant::now() + warmup;
    let until = from + Duration::from_secs_f64(seconds);
    let meter = tokio::spawn(async move {
        tokio::time::sleep_until(from).await;
        let before = cpu_time(server_pid)?;
        tokio::time::sleep_until(until).await;
        anyhow::Ok(cpu_time(server_pid)?.saturating_sub(before))
    });
    let mut tasks = tokio::task::JoinSet::new();
    for (i, mut c) in clients.into_iter().enumerate() {
        tasks.spawn(async move {
            let r = drive(&mut c, method, depth, from, until, i as u64 * 1_000_000_000).await;
            (c, r)
        });
    }
    let (mut total, mut unhealthy) = (0u64, 0u64);
    let mut back = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (c, r) = joined.context("a client task failed")?;
        let (n, bad) = r?;
        total += n;
        unhealthy += bad;
        back.push(c);
    }
    let cpu = meter.await.context("the CPU meter failed")??;
    let server_cpu_us = cpu.as_secs_f64() * 1e6 / total.max(1) as f64;
    Ok((back, Throughput { rate: total as f64 / seconds, unhealthy, server_cpu_us }))
}

async fn drive(
    c: &mut AsyncClient,
    method: &str,
    depth: usize,
    from: tokio::time::Instant,
    until: tokio::time::Instant,
    id_base: u64,
) -> Result<(u64, u64)> {
    let mut next = id_base;
    let mut in_flight = 0usize;
    let (mut counted, mut unhealthy) = (0u64, 0u64);
    for _ in 0..depth {
        next += 1;
        c.queue_text(&rpc_frame(method, next));
        in_flight += 1;
    }
    loop {
        while let Some(text) = c.buffered_text()? {
            match reply(&text, None)? {
                Reply::Other => continue,
                Reply::Unhealthy => unhealthy += 1,
                Reply::Healthy => {}
            }
            in_flight -= 1;
            let now = tokio::time::Instant::now();
            if now >= from && now < until {
                counted += 1;
            }
            if now < until {
                next += 1;
                c.queue_text(&rpc_frame(method, next));
                in_flight += 1;
            }
        }
        if in_flight == 0 && tokio::time::Instant::now() >= until {
            return Ok((counted, unhealthy));
        }
        c.flush().await?;
        tokio::time::timeout(TIMEOUT, c.fill()).await.context("no response within the timeout")??;
    }
}

struct IdleResult {
    target: usize,
    reached: usize,
    base_mb: f64,
    after_mb: f64,
    hwm_mb: f64,
    connect_secs: f64,
    /// What the idle clients received from the server, in MB: events such as `presence`.
    received_mb: f64,
    /// Why connecting stopped before `target`, if it did.
    stopped: Option<String>,
}

impl IdleResult {
    fn added_mb(&self) -> f64 {
        self.after_mb - self.base_mb
    }
    fn per_conn_kb(&self) -> f64 {
        self.added_mb() * 1e3 / self.reached.max(1) as f64
    }
    fn json(&self) -> Value {
        json!({
            "target_clients": self.target,
            "reached_clients": self.reached,
            "rss_before_mb": self.base_mb,
            "rss_after_mb": self.after_mb,
            "hwm_mb": self.hwm_mb,
            "added_mb": self.added_mb(),
            "per_connection_kb": self.per_conn_kb(),
            "connect_seconds": self.connect_secs,
            "received_mb": self.received_mb,
            "stopped": self.stopped,
        })
    }
}

/// Connects up to `k` authenticated clients, `CONNECT_CONCURRENCY` handshakes at a time, each
/// then reading and discarding whatever the server sends (as a live client would) and sending
/// nothing; after a 2 s settle, the server's VmRSS against its RSS before. Connecting stops early
/// at `budget`, when the server's RSS passes `guard_mb`, or at the first failed handshake.
async fn idle_memory(
    port: u16,
    pid: u32,
    server: Server,
    k: usize,
    budget: Duration,
    settle: Duration,
    guard_mb: f64,
) -> Result<IdleResult> {
    let received = Arc::new(AtomicU64::new(0));
    // Warm-up: clients connect, call `health` and leave, `CONNECT_CONCURRENCY` at a time as
    // below, so that the baseline already holds what the first connections page in or allocate
    // once (code, runtime and allocator structures) and the working set of that many handshakes
    // in flight: memory neither server keeps per idle client.
    let mut warm = tokio::task::JoinSet::new();
    for i in 0..CONNECT_CONCURRENCY as u64 {
        warm.spawn(async move {
            let mut c = handshake_async(port, server, None, 6_000_000 + i).await?;
            c.send_text(&rpc_frame("health", 1)).await?;
            let answered = async {
                while reply(&c.recv_text().await?, Some(1))? == Reply::Other {}
                anyhow::Ok(())
            };
            tokio::time::timeout(TIMEOUT, answered).await.context("health timed out")?
        });
    }
    while let Some(done) = warm.join_next().await {
        done.context("a warm-up client failed")??;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (base_mb, _) = rss_hwm_mb(pid)?;
    let t0 = Instant::now();
    let mut holders = tokio::task::JoinSet::new();
    let mut connecting = tokio::task::JoinSet::new();
    let mut started = 0usize;
    let mut stopped = None;
    let mut last_check = 0usize;
    while holders.len() < k {
        while stopped.is_none() && started < k && connecting.len() < CONNECT_CONCURRENCY {
            started += 1;
            let seed = 7_000_000 + started as u64;
            connecting.spawn(handshake_async(port, server, None, seed));
        }
        let Some(done) = connecting.join_next().await else {
            break;
        };
        match done.context("a connecting task failed")? {
            Ok(c) => {
                let received = received.clone();
                holders.spawn(async move { hold(c.into_stream(), &received).await });
            }
            Err(e) => {
                stopped.get_or_insert(format!("a handshake failed: {e:#}"));
            }
        }
        if stopped.is_none() && t0.elapsed() > budget {
            stopped = Some(format!("the {:.0} s budget ran out", budget.as_secs_f64()));
        }
        if stopped.is_none() && holders.len() >= last_check + 100 {
            last_check = holders.len();
            let (rss, _) = rss_hwm_mb(pid)?;
            if rss > guard_mb {
                stopped = Some(format!("the server's RSS passed the {guard_mb:.0} MB guard"));
            }
        }
    }
    // Let the handshakes still in flight finish (or fail) so that every socket counted is one
    // that completed the handshake.
    while let Some(done) = connecting.join_next().await {
        if let Ok(Ok(c)) = done {
            let received = received.clone();
            holders.spawn(async move { hold(c.into_stream(), &received).await });
        }
    }
    let connect_secs = t0.elapsed().as_secs_f64();
    tokio::time::sleep(settle).await;
    let (after_mb, hwm_mb) = rss_hwm_mb(pid)?;
    let received_mb = received.load(Ordering::Relaxed) as f64 / 1e6;
    // Clients that the server closed meanwhile do not count.
    let mut closed = 0;
    while holders.try_join_next().is_some() {
        closed += 1;
    }
    let reached = holders.len();
    if closed > 0 && stopped.is_none() {
        stopped = Some(format!("the server closed {closed} idle clients"));
    }
    holders.abort_all();
    while holders.join_next().await.is_some() {}
    Ok(IdleResult { target: k, reached, base_mb, after_mb, hwm_mb, connect_secs, received_mb, stopped })
}

// ---------------------------------------------------------------------------------------------

fn main() -> Result<()> {
    let o = parse_args()?;
    // Both servers must be built; checked before anything is started.
    for name in ["gatewayd", "ws-floor"] {
        let path = bin(name);
        ensure!(path.exists(), "{} is not built", path.display());
    }
    let max_total = o.max_total;
    std::thread::spawn(move || {
        std::thread::sleep(max_total);
        eprintln!(
            "gateway-ws-bench: still running after {max_total:?}; giving up (children are killed with us)"
        );
        std::process::exit(3);
    });
    // Idle clients need a descriptor each, here and in the server (which inherits the limit).
    let nofile = raise_nofile()?;
    let m = machine();
    let log = |msg: &str| {
        if !o.json {
            eprintln!("{msg}");
        }
    };
    log("measuring for about a minute; keep the machine otherwise idle...");

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let sink = if o.otlp { Some(Sink::start()?) } else { None };
    let gw = start_gateway(sink.as_ref())?;
    let floor = start_floor(false)?;
    let (gp, fp) = (gw.port(), floor.port);
    let (gw_pid, floor_pid) = (gw.pid(), floor.child.id());
    let mut seed = 1u64;
    let mut notes = Vec::new();

    // 1. Sequential handshakes: each round runs the shared token, the floor and the signed
    // device back to back, so that the machine's drift hits the three ratios' terms alike.
    log("handshakes (shared token, ws-floor, signed device)...");
    handshake_rate(gp, gw_pid, Server::Gateway, None, 50, &mut seed)?; // warm-up
    handshake_rate(fp, floor_pid, Server::Floor, None, 50, &mut seed)?;
    let device = Device::new(0x5b);
    // The first connect pairs the device (loopback pairs on first use); it is not measured.
    handshake_sync(gp, Server::Gateway, Some(&device), 0)?.close()?;
    handshake_rate(gp, gw_pid, Server::Gateway, Some(&device), 20, &mut seed)?;
    let (mut hs_tok, mut hs_floor, mut hs_dev) = (Vec::new(), Vec::new(), Vec::new());
    let (mut hs_tok_cpu, mut hs_floor_cpu) = (Vec::new(), Vec::new());
    let (mut verify_us, mut sign_us) = (Vec::new(), Vec::new());
    for _ in 0..o.runs {
        let run = handshake_rate(gp, gw_pid, Server::Gateway, None, o.handshakes, &mut seed)?;
        hs_tok.push(run.rate);
        hs_tok_cpu.push(run.server_cpu_us);
        let run = handshake_rate(fp, floor_pid, Server::Floor, None, o.handshakes, &mut seed)?;
        hs_floor.push(run.rate);
        hs_floor_cpu.push(run.server_cpu_us);
        hs_dev.push(
            handshake_rate(gp, gw_pid, Server::Gateway, Some(&device), o.device_handshakes, &mut seed)?.rate,
        );
        let (verify, sign) = ed25519_alone(&device, o.device_handshakes);
        verify_us.push(verify);
        sign_us.push(sign);
    }
    // Diagnostics: the same pair in two fixed placements. On one CPU no message waits for
    // another CPU to wake, so what is left is what each handshake costs in CPU time; with the
    // client on one CPU and the servers on another, every message crosses CPUs. Unpinned, the
    // kernel moves between the two, and not alike for both servers.
    let mut pinned_pair = |placement: Placement| -> Result<Option<(Vec<f64>, Vec<f64>)>> {
        let Some(_pinned) = Pinned::new(&[gw_pid, floor_pid], placement)? else {
            return Ok(None);
        };
        let (mut tok, mut floor) = (Vec::new(), Vec::new());
        for _ in 0..o.runs.min(3) {
            tok.push(handshake_rate(gp, gw_pid, Server::Gateway, None, o.handshakes, &mut seed)?.rate);
            floor.push(handshake_rate(fp, floor_pid, Server::Floor, None, o.handshakes, &mut seed)?.rate);
        }
        Ok(Some((tok, floor)))
    };
    let one_cpu = pinned_pair(Placement::OneCpu)?.context("this process may run on no CPU")?;
    let two_cpus = pinned_pair(Placement::TwoCpus)?;
    // Diagnostic: unpinned again, against a floor whose accept loop is a task on a worker, as
    // gatewayd's is. On some VMs that structure alone decides how often the kernel runs a
    // server's threads on the client's CPU (see docs/performance.md).
    let (mut worker_tok, mut worker_floor) = (Vec::new(), Vec::new());
    {
        let floor_w = start_floor(true)?;
        let (wp, w_pid) = (floor_w.port, floor_w.child.id());
        handshake_rate(wp, w_pid, Server::Floor, None, 50, &mut seed)?; // warm-up
        for _ in 0..o.runs.min(3) {
            worker_tok.push(handshake_rate(gp, gw_pid, Server::Gateway, None, o.handshakes, &mut seed)?.rate);
            worker_floor.push(handshake_rate(wp, w_pid, Server::Floor, None, o.handshakes, &mut seed)?.rate);
        }
    }
    // Per run: what a device handshake costs beyond a token one, once the signature (the
    // client's signing, the gateway's verification) is taken out.
    let device_rest_us: Vec<f64> =
        (0..o.runs).map(|i| 1e6 / hs_dev[i] - 1e6 / hs_tok[i] - verify_us[i] - sign_us[i]).collect();
    let device_vs_token: Vec<f64> = hs_dev.iter().zip(&hs_tok).map(|(d, t)| d / t).collect();

    // 2. Sequential RPC round trips. Beside `health`, a diagnostic: `last-heartbeat` (it needs
    // operator.read, so a device client) reads a few fields and answers with a 60-byte payload,
    // where `health` reads its checks' inputs and answers with four checks, about 370 bytes.
    log("round trips...");
    let mut ours = handshake_sync(gp, Server::Gateway, None, 11)?;
    let mut base = handshake_sync(fp, Server::Floor, None, 12)?;
    let mut diag = handshake_sync(gp, Server::Gateway, Some(&device), 13)?;
    let (mut id_ours, mut id_floor, mut id_diag) = (0u64, 0u64, 0u64);
    rpc_latency(&mut ours, "health", &mut id_ours, 2000)?; // warm-up
    rpc_latency(&mut base, "health", &mut id_floor, 2000)?;
    rpc_latency(&mut diag, DIAG_METHOD, &mut id_diag, 2000)?;
    let (mut p50, mut p99, mut f50, mut f99, mut ratio) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut d50, mut d99) = (Vec::new(), Vec::new());
    for _ in 0..o.runs {
        let (a50, a99) = rpc_latency(&mut ours, "health", &mut id_ours, o.rpcs)?;
        let (b50, b99) = rpc_latency(&mut base, "health", &mut id_floor, o.rpcs)?;
        let (c50, c99) = rpc_latency(&mut diag, DIAG_METHOD, &mut id_diag, o.rpcs)?;
        p50.push(a50);
        p99.push(a99);
        f50.push(b50);
        f99.push(b99);
        ratio.push(a50 / b50);
        d50.push(c50);
        d99.push(c99);
    }
    ours.close()?;
    base.close()?;
    diag.close()?;

    // 3. Throughput of many clients: `health` with shared-token clients, then (diagnostic)
    // `last-heartbeat` with device clients once those have left.
    log("throughput...");
    let runs = o.runs.min(3);
    let (tp, tp_floor, unhealthy, tp_diag, tp_cpu, tp_cpu_floor) = runtime.block_on(async {
        let mut ours = Vec::new();
        let mut base = Vec::new();
        for i in 0..o.clients {
            ours.push(handshake_async(gp, Server::Gateway, None, 100 + i as u64).await?);
            base.push(handshake_async(fp, Server::Floor, None, 200 + i as u64).await?);
        }
        let (mut tp, mut tp_floor, mut unhealthy) = (Vec::new(), Vec::new(), 0);
        let (mut cpu, mut cpu_floor) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let (back, run) = throughput(ours, "health", o.depth, o.seconds, gw_pid).await?;
            ours = back;
            tp.push(run.rate);
            cpu.push(run.server_cpu_us);
            unhealthy += run.unhealthy;
            let (back, run) = throughput(base, "health", o.depth, o.seconds, floor_pid).await?;
            base = back;
            tp_floor.push(run.rate);
            cpu_floor.push(run.server_cpu_us);
        }
        drop(ours);
        let mut diag = Vec::new();
        for i in 0..o.clients {
            diag.push(handshake_async(gp, Server::Gateway, Some(device.clone()), 300 + i as u64).await?);
        }
        let mut tp_diag = Vec::new();
        for _ in 0..runs {
            let (back, run) = throughput(diag, DIAG_METHOD, o.depth, o.seconds, gw_pid).await?;
            diag = back;
            tp_diag.push(run.rate);
        }
        anyhow::Ok((tp, tp_floor, unhealthy, tp_diag, cpu, cpu_floor))
    })?;
    drop(gw);
    drop(floor);

    // 4. Idle clients, each server fresh.
    let idle_run = |server: Server, k: usize| -> Result<IdleResult> {
        let (budget, settle, guard) = (o.idle_budget, o.idle_settle, o.rss_guard_mb);
        match server {
            Server::Gateway => {
                let gw = start_gateway(sink.as_ref())?;
                runtime.block_on(idle_memory(gw.port(), gw.pid(), server, k, budget, settle, guard))
            }
            Server::Floor => {
                let floor = start_floor(false)?;
                let pid = floor.child.id();
                runtime.block_on(idle_memory(floor.port, pid, server, k, budget, settle, guard))
            }
        }
    };
    log(&format!("{} idle clients (open files limit {nofile})...", o.idle));
    let idle_ours = idle_run(Server::Gateway, o.idle)?;
    let idle_floor = idle_run(Server::Floor, o.idle)?;
    // A few dozen clients move RSS by a few dozen pages, so one step of the allocator's heap
    // (64 KB or more) moves the per-client figure by a floor's worth: the median of several
    // fresh servers, alternating, is the figure.
    let mut small = Vec::new();
    if o.idle_small > 0 {
        log(&format!("{} idle clients, {IDLE_SMALL_ROUNDS} rounds...", o.idle_small));
        for _ in 0..IDLE_SMALL_ROUNDS {
            small.push((idle_run(Server::Gateway, o.idle_small)?, idle_run(Server::Floor, o.idle_small)?));
        }
    }

    // Report.
    let floor_of = |xs: &[f64], what: &str| Some((Stats::of(xs.to_vec()), what.to_string()));
    // Ours over the floor's, run by run (both measured in the same run, back to back).
    let per_run =
        |ours: &[f64], floor: &[f64]| -> Vec<f64> { ours.iter().zip(floor).map(|(o, f)| o / f).collect() };
    let token_vs_floor = per_run(&hs_tok, &hs_floor);
    let throughput_vs_floor = per_run(&tp, &tp_floor);
    let one_cpu_vs_floor = per_run(&one_cpu.0, &one_cpu.1);
    let diagnostic_ratio = |id, metric: &str, ratios| Row {
        id,
        metric: metric.into(),
        unit: "x",
        prec: 2,
        ours: Stats::of(ratios),
        target: None,
        peer: "-",
        floor: None,
    };
    let mut rows = vec![
        Row {
            id: "ws_handshake_token",
            metric: "WS handshakes/s, sequential, shared token".into(),
            unit: "/s",
            prec: 0,
            ours: Stats::of(hs_tok),
            target: Some(Target::AtLeast(2000.0)),
            peer: "428 /s",
            floor: floor_of(&hs_floor, "ws-floor"),
        },
        Row {
            id: "ws_handshake_token_vs_floor",
            metric: "shared token handshake rate / ws-floor's".into(),
            unit: "x",
            prec: 2,
            ours: Stats::of(token_vs_floor),
            target: Some(Target::AtLeast(0.85)),
            peer: "0.03 x",
            floor: None,
        },
        diagnostic_ratio(
            "ws_handshake_token_vs_floor_one_cpu",
            "diagnostic: the same ratio, client and both servers on one CPU",
            one_cpu_vs_floor,
        ),
        Row {
            id: "ws_handshake_token_server_cpu",
            metric: "diagnostic: server CPU time per shared token handshake, unpinned".into(),
            unit: "us",
            prec: 1,
            ours: Stats::of(hs_tok_cpu),
            target: None,
            peer: "-",
            floor: floor_of(&hs_floor_cpu, "ws-floor"),
        },
        Row {
            id: "ws_handshake_device",
            metric: "WS handshakes/s, sequential, signed device (paired)".into(),
            unit: "/s",
            prec: 0,
            ours: Stats::of(hs_dev),
            target: Some(Target::AtLeast(1000.0)),
            peer: "120 /s",
            floor: None,
        },
        Row {
            id: "ws_handshake_device_vs_token",
            metric: "signed device / shared token handshake rate".into(),
            unit: "x",
            prec: 2,
            ours: Stats::of(device_vs_token),
            target: Some(Target::AtLeast(0.6)),
            peer: "0.28 x",
            floor: None,
        },
        Row {
            id: "ed25519_verify_us",
            metric: "diagnostic: Ed25519 verification alone (the gateway's share)".into(),
            unit: "us",
            prec: 1,
            ours: Stats::of(verify_us),
            target: None,
            peer: "-",
            floor: None,
        },
        Row {
            id: "ed25519_sign_us",
            metric: "diagnostic: Ed25519 signing alone (the client's share)".into(),
            unit: "us",
            prec: 1,
            ours: Stats::of(sign_us),
            target: None,
            peer: "-",
            floor: None,
        },
        Row {
            id: "ws_handshake_device_rest_us",
            metric: "diagnostic: device handshake - token handshake - verification - signing".into(),
            unit: "us",
            prec: 1,
            ours: Stats::of(device_rest_us),
            target: None,
            peer: "-",
            floor: None,
        },
        Row {
            id: "rpc_p50",
            metric: "`health` round trip p50, sequential".into(),
            unit: "ms",
            prec: 3,
            ours: Stats::of(p50),
            target: Some(Target::AtMost(0.1)),
            peer: "1.16-1.43 ms",
            floor: floor_of(&f50, "ws-floor"),
        },
        Row {
            id: "rpc_p99",
            metric: "`health` round trip p99, sequential".into(),
            unit: "ms",
            prec: 3,
            ours: Stats::of(p99),
            target: Some(Target::AtMost(1.0)),
            peer: "3.5-13.5 ms",
            floor: floor_of(&f99, "ws-floor"),
        },
        Row {
            id: "rpc_p50_vs_floor",
            metric: "`health` p50 / ws-floor p50".into(),
            unit: "x",
            prec: 2,
            ours: Stats::of(ratio),
            target: Some(Target::AtMost(1.5)),
            peer: "-",
            floor: None,
        },
        Row {
            id: "rpc_diag_p50",
            metric: "diagnostic: `last-heartbeat` round trip p50, sequential".into(),
            unit: "ms",
            prec: 3,
            ours: Stats::of(d50),
            target: None,
            peer: "-",
            floor: floor_of(&f50, "ws-floor"),
        },
        Row {
            id: "rpc_diag_p99",
            metric: "diagnostic: `last-heartbeat` round trip p99, sequential".into(),
            unit: "ms",
            prec: 3,
            ours: Stats::of(d99),
            target: None,
            peer: "-",
            floor: floor_of(&f99, "ws-floor"),
        },
        Row {
            id: "rpc_throughput",
            metric: format!(
                "`health` throughput, {} clients{}",
                o.clients,
                if o.depth > 1 {
                    format!(", {} in flight each", o.depth)
                } else {
                    ", 1 in flight each".into()
                }
            ),
            unit: "req/s",
            prec: 0,
            ours: Stats::of(tp),
            target: Some(Target::AtLeast(50_000.0)),
            peer: "9.4k req/s",
            floor: floor_of(&tp_floor, "ws-floor"),
        },
        Row {
            id: "rpc_throughput_vs_floor",
            metric: "`health` throughput / ws-floor's".into(),
            unit: "x",
            prec: 2,
            ours: Stats::of(throughput_vs_floor),
            target: Some(Target::AtLeast(0.9)),
            peer: "-",
            floor: None,
        },
        Row {
            id: "rpc_diag_throughput_server_cpu",
            metric: "diagnostic: server CPU time per `health` request in that throughput".into(),
            unit: "us",
            prec: 2,
            ours: Stats::of(tp_cpu),
            target: None,
            peer: "-",
            floor: floor_of(&tp_cpu_floor, "ws-floor"),
        },
        Row {
            id: "rpc_diag_throughput",
            metric: format!("diagnostic: `last-heartbeat` throughput, {} clients", o.clients),
            unit: "req/s",
            prec: 0,
            ours: Stats::of(tp_diag),
            target: None,
            peer: "-",
            floor: floor_of(&tp_floor, "ws-floor"),
        },
    ];
    // The other handshake diagnostics, after the one-CPU ratio.
    let mut placement_rows = Vec::new();
    match &two_cpus {
        Some((tok, floor)) => placement_rows.push(diagnostic_ratio(
            "ws_handshake_token_vs_floor_two_cpus",
            "diagnostic: the same ratio, client on one CPU, both servers on another",
            per_run(tok, floor),
        )),
        None => notes.push(
            "handshakes: this process may use one CPU only, so the two-CPU placement was not measured".into(),
        ),
    }
    placement_rows.push(diagnostic_ratio(
        "ws_handshake_token_vs_floor_accept_on_worker",
        "diagnostic: the same ratio, unpinned, against ws-floor accepting on a worker as gatewayd does",
        per_run(&worker_tok, &worker_floor),
    ));
    let after = rows.iter().position(|r| r.id == "ws_handshake_token_vs_floor_one_cpu").map_or(0, |i| i + 1);
    rows.splice(after..after, placement_rows);
    // Not scaled when fewer than `k` clients were reached: the daemon's cost per client grows
    // with the number of clients (see the notes), so a linear scale would mislead.
    let k = o.idle;
    let idle_label = if idle_ours.reached == k {
        format!("RSS added by {k} idle authenticated clients")
    } else {
        format!("RSS added by idle authenticated clients: stopped at {} of {k}", idle_ours.reached)
    };
    rows.push(Row {
        id: "idle_clients_rss",
        metric: idle_label,
        unit: "MB",
        prec: 1,
        ours: Stats::of(vec![idle_ours.added_mb()]),
        target: Some(Target::AtMost(64.0 * k as f64 / 10_000.0)),
        peer: "~31 MB per 1,000",
        floor: Some((
            Stats::of(vec![idle_floor.added_mb()]),
            format!("ws-floor, {} clients", idle_floor.reached),
        )),
    });
    rows.push(Row {
        id: "idle_client_kb",
        metric: format!("RSS per idle authenticated client, {} clients", idle_ours.reached),
        unit: "KB",
        prec: 1,
        ours: Stats::of(vec![idle_ours.per_conn_kb()]),
        target: Some(Target::AtMost(6.4)),
        peer: "~31 KB",
        floor: Some((Stats::of(vec![idle_floor.per_conn_kb()]), "ws-floor".into())),
    });
    rows.push(Row {
        id: "idle_client_vs_floor",
        metric: format!("RSS per idle client / ws-floor's, {} clients", idle_ours.reached),
        unit: "x",
        prec: 2,
        ours: Stats::of(vec![idle_ours.per_conn_kb() / idle_floor.per_conn_kb()]),
        target: Some(Target::AtMost(2.0)),
        peer: "-",
        floor: None,
    });
    if let Some((first, _)) = small.first() {
        let ours: Vec<f64> = small.iter().map(|(o, _)| o.per_conn_kb()).collect();
        let floor: Vec<f64> = small.iter().map(|(_, f)| f.per_conn_kb()).collect();
        rows.push(Row {
            id: "idle_client_kb_small",
            metric: format!("RSS per idle authenticated client, {} clients", first.reached),
            unit: "KB",
            prec: 1,
            ours: Stats::of(ours.clone()),
            target: Some(Target::AtMost(6.4)),
            peer: "~31 KB",
            floor: Some((Stats::of(floor.clone()), "ws-floor".into())),
        });
        rows.push(Row {
            id: "idle_client_vs_floor_small",
            metric: format!("RSS per idle client / ws-floor's, {} clients", first.reached),
            unit: "x",
            prec: 2,
            ours: Stats::of(per_run(&ours, &floor)),
            target: Some(Target::AtMost(2.0)),
            peer: "-",
            floor: None,
        });
    }

    notes.push(format!(
        "handshakes: {} rounds, each of {} (token, then ws-floor) and {} (device: a paired Ed25519 identity signing each connect, with the shared token), each open, challenge, connect, hello-ok, clean close",
        o.runs, o.handshakes, o.device_handshakes
    ));
    notes.push(format!(
        "handshakes, ws-floor accepting on a worker: {} /s (median of {}), against {} /s for ws-floor accepting on its main thread",
        Stats::of(worker_floor.clone()).median.round(),
        worker_floor.len(),
        Stats::of(hs_floor.clone()).median.round()
    ));
    notes.push(format!(
        "round trips: one socket each, {} runs of {} requests after 2000 warm-up ones; p50/p99 per run; runs alternate between gatewayd `health`, ws-floor and gatewayd `last-heartbeat` (diagnostic: a device client, no file I/O)",
        o.runs, o.rpcs
    ));
    notes.push(format!(
        "throughput: {} clients on one tokio thread, each keeping {} request(s) in flight, {} runs of {:.1} s after a 0.3 s warm-up",
        o.clients,
        o.depth,
        runs,
        o.seconds
    ));
    let mut idle_all = vec![("gatewayd", &idle_ours), ("ws-floor", &idle_floor)];
    for (ours, floor) in &small {
        idle_all.extend([("gatewayd", ours), ("ws-floor", floor)]);
    }
    if unhealthy > 0 {
        notes.push(format!(
            "throughput: {unhealthy} `health` responses from gatewayd said `ok: false` under concurrent load (a failing check)"
        ));
    }
    for (who, r) in idle_all {
        notes.push(format!(
            "idle clients, {who}: {} of {} connected in {:.1} s{}; they received {:.1} MB meanwhile; after {:.1} s idle VmRSS {:.1} -> {:.1} MB (+{:.1} MB, {:.1} KB each), VmHWM {:.1} MB",
            r.reached,
            r.target,
            r.connect_secs,
            r.stopped.as_ref().map_or(String::new(), |s| format!(" (stopped: {s})")),
            r.received_mb,
            o.idle_settle.as_secs_f64(),
            r.base_mb,
            r.after_mb,
            r.added_mb(),
            r.per_conn_kb(),
            r.hwm_mb,
        ));
    }
    if let Some(sink) = &sink {
        use std::sync::atomic::Ordering::Relaxed;
        notes.push(format!(
            "OTLP on: traces (every one sampled) and metrics exported to a sink: {} requests, {} KiB received",
            sink.requests.load(Relaxed),
            sink.bytes.load(Relaxed) / 1024
        ));
    }
    if o.json {
        let extra = json!({
            "open_files_limit": nofile,
            "depth": o.depth,
            "clients": o.clients,
            "throughput_unhealthy_responses": unhealthy,
            "idle": { "gatewayd": idle_ours.json(), "floor": idle_floor.json() },
            "idle_small": small.iter().map(|(a, b)| json!({ "gatewayd": a.json(), "floor": b.json() })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&to_json(&m, PEER, &rows, &notes, extra))?);
    } else {
        print!("{}", to_table(&m, PEER, &rows, &notes));
    }
    Ok(())
}
