//! gateway-chat-bench: what the release `gatewayd` adds to `/v1/chat/completions` over calling
//! a fast upstream directly, beside the targets and OpenClaw's figures.
//!
//! Run from the workspace root:
//!   cargo build --release --workspace --bins && ./target/release/gateway-chat-bench [--json]
//!
//! The upstream is `gateway-upstream` (the tests' fake, echoing the last user message); the
//! gateway has an `openai` provider pointing at it. The same non-streamed request (a short
//! two-message chat) is sent on keep-alive connections either straight to the upstream (the
//! floor) or to the gateway with the model `fast/echo`:
//! - sequential, one connection: p50 and p99 of each, and the difference (time added);
//! - 32 concurrent connections, one request in flight each: completed requests per second.
//!
//! Figures are medians (with min and max) of several runs; direct and gateway runs alternate
//! so that drift on a shared machine hits both. The clients run on one tokio thread in this
//! process, the upstream and gatewayd in their own processes (SIGKILLed if this one dies).

use std::cell::Cell;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use gateway_tests::benchutil::{
    arg_num, die_with_parent, machine, quantile, raise_nofile, to_json, to_table, Row, Stats, Target,
};
use gateway_tests::http1;
use gateway_tests::otlp::Sink;
use gateway_tests::{bin, free_port, try_http, Daemon, Home};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TIMEOUT: Duration = Duration::from_secs(10);
const TOKEN: &str = "chat-bench-token-3b8e0c6d2a9f4e17";
const PEER: &str = "openclaw@2026.9.6 (Node 24)";
const PROMPT: &str = "hello from the chat benchmark";

struct Opts {
    json: bool,
    /// Traces and metrics exported over OTLP (at full sampling) to a sink in this process.
    otlp: bool,
    runs: usize,
    /// Sequential requests per run and side.
    requests: usize,
    clients: usize,
    seconds: f64,
    upstream_threads: usize,
    /// gatewayd's tokio workers (TOKIO_WORKER_THREADS); None: its default, one per core.
    gateway_threads: Option<usize>,
}

const USAGE: &str =
    "usage: gateway-chat-bench [--json] [--otlp] [--runs N] [--requests N] [--clients N] [--seconds S] [--upstream-threads N] [--gateway-threads N]";

fn parse_args() -> Result<Opts> {
    let mut o = Opts {
        json: false,
        otlp: false,
        runs: 5,
        requests: 2000,
        clients: 32,
        seconds: 3.0,
        upstream_threads: 2,
        gateway_threads: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--json" => o.json = true,
            "--otlp" => o.otlp = true,
            "--runs" => o.runs = arg_num(&arg, args.next())?,
            "--requests" => o.requests = arg_num(&arg, args.next())?,
            "--clients" => o.clients = arg_num(&arg, args.next())?,
            "--seconds" => o.seconds = arg_num(&arg, args.next())?,
            "--upstream-threads" => o.upstream_threads = arg_num(&arg, args.next())?,
            "--gateway-threads" => o.gateway_threads = Some(arg_num(&arg, args.next())?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} ({USAGE})"),
        }
    }
    ensure!(o.runs > 0 && o.requests > 0 && o.clients > 0 && o.seconds > 0.0, "counts must be positive");
    Ok(o)
}

// ---------------------------------------------------------------------------------------------
// Servers

/// The fake upstream as a process, killed on drop.
struct UpstreamProcess {
    child: Child,
    port: u16,
}

impl Drop for UpstreamProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_upstream(threads: usize) -> Result<UpstreamProcess> {
    let port = free_port();
    let mut cmd = Command::new(bin("gateway-upstream"));
    cmd.args(["--port", &port.to_string(), "--threads", &threads.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    die_with_parent(&mut cmd);
    let mut up = UpstreamProcess { child: cmd.spawn().context("spawn gateway-upstream")?, port };
    wait_until(&mut up.child, || matches!(try_http(port, "GET", "/v1/models", &[]), Ok((200, _))), "")?;
    Ok(up)
}

/// A gatewayd in a throwaway home with an `openai` provider `fast` at the upstream.
struct Gateway {
    daemon: Daemon,
    _home: Home,
}

fn start_gateway(upstream_port: u16, threads: Option<usize>, otlp: Option<&Sink>) -> Result<Gateway> {
    let home = Home::new();
    home.write_config(
        None,
        &format!(
            "[gateway.auth]\ntoken = \"{TOKEN}\"\n\n[models.providers.fast]\nkind = \"openai\"\n\
             base_url = \"http://127.0.0.1:{upstream_port}/v1\"\nmodels = [\"echo\"]\nmax_retries = 0\n"
        ),
    );
    let port = free_port().to_string();
    let mut daemon = home.spawn(&["--port", &port], |cmd| {
        die_with_parent(cmd);
        if let Some(sink) = otlp {
            sink.point(cmd);
        }
        if let Some(n) = threads {
            cmd.env("TOKIO_WORKER_THREADS", n.to_string());
        }
    });
    let p = daemon.port;
    let stderr = daemon.stderr();
    wait_until(&mut daemon.child, || matches!(try_http(p, "GET", "/readyz", &[]), Ok((200, _))), &stderr)?;
    Ok(Gateway { daemon, _home: home })
}

fn wait_until(child: &mut Child, mut ready: impl FnMut() -> bool, log: &str) -> Result<()> {
    let deadline = Instant::now() + TIMEOUT;
    while !ready() {
        if let Some(status) = child.try_wait()? {
            bail!("server exited ({status}) {log}");
        }
        ensure!(Instant::now() < deadline, "server not ready within {TIMEOUT:?} {log}");
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Client

/// The request bytes for one side, and where to send them.
#[derive(Clone)]
struct Side {
    port: u16,
    request: Rc<Vec<u8>>,
}

impl Side {
    fn new(port: u16, model: &str, token: Option<&str>) -> Self {
        let body = json!({ "model": model, "messages": [
            { "role": "system", "content": "You are a test." },
            { "role": "user", "content": PROMPT }] })
        .to_string();
        let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        let request = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        Self { port, request: Rc::new(request.into_bytes()) }
    }

    /// Checks once, with the plain test client, that this side answers the prompt.
    fn check(&self, token: Option<&str>, model: &str) -> Result<()> {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        let body = json!({ "model": model, "messages": [{ "role": "user", "content": PROMPT }] }).to_string();
        let r = http1::request(self.port, "POST", "/v1/chat/completions", &headers, Some(&body))?;
        ensure!(r.status == 200, "{model} on port {}: HTTP {}: {}", self.port, r.status, r.body);
        let v: Value = serde_json::from_str(&r.body)?;
        ensure!(v["choices"][0]["message"]["content"] == PROMPT, "{model}: unexpected answer {v}");
        Ok(())
    }
}

/// One keep-alive HTTP/1.1 connection that sends the same request again and again.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(port: u16) -> Result<Self> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        Ok(Self { stream, buf: Vec::with_capacity(4096) })
    }

    /// Sends the request and reads the whole answer (which must have a Content-Length); Err
    /// unless it is a 200.
    async fn call(&mut self, request: &[u8]) -> Result<()> {
        self.stream.write_all(request).await?;
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buf[..end])?;
                let status = head.split_whitespace().nth(1).unwrap_or("").to_owned();
                let len: usize = head
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.trim().parse().ok())
                    .with_context(|| format!("an answer without Content-Length: {head}"))?;
                let total = end + 4 + len;
                while self.buf.len() < total {
                    self.read_more().await?;
                }
                ensure!(
                    status == "200",
                    "HTTP {status}: {}",
                    String::from_utf8_lossy(&self.buf[end + 4..total])
                );
                self.buf.drain(..total);
                return Ok(());
            }
            self.read_more().await?;
        }
    }

    async fn read_more(&mut self) -> Result<()> {
        let n = tokio::time::timeout(TIMEOUT, self.stream.read_buf(&mut self.buf))
            .await
            .context("no answer")??;
        ensure!(n > 0, "the server closed the connection");
        Ok(())
    }
}

/// p50 and p99 (ms) of `n` sequential requests on one connection, after a warm-up.
async fn sequential(target: &Side, n: usize) -> Result<(f64, f64)> {
    let mut conn = Conn::open(target.port).await?;
    for _ in 0..n / 10 {
        conn.call(&target.request).await?;
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        conn.call(&target.request).await?;
        samples.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok((quantile(&mut samples, 0.5), quantile(&mut samples, 0.99)))
}

/// Requests per second completed by `clients` connections in `seconds` (after a 0.5 s warm-up).
async fn throughput(target: &Side, clients: usize, seconds: f64) -> Result<f64> {
    let local = tokio::task::LocalSet::new();
    let done = Rc::new(Cell::new(0u64));
    let start = Instant::now() + Duration::from_millis(500);
    let end = start + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (target, done) = (target.clone(), done.clone());
        tasks.push(local.spawn_local(async move {
            let mut conn = Conn::open(target.port).await?;
            loop {
                conn.call(&target.request).await?;
                let now = Instant::now();
                if now >= end {
                    return anyhow::Ok(());
                }
                if now >= start {
                    done.set(done.get() + 1);
                }
            }
        }));
    }
    local
        .run_until(async {
            for t in tasks {
                t.await??;
            }
            anyhow::Ok(())
        })
        .await?;
    Ok(done.get() as f64 / seconds)
}

// ---------------------------------------------------------------------------------------------

fn main() -> Result<()> {
    let o = parse_args()?;
    for name in ["gatewayd", "gateway-upstream"] {
        let path = bin(name);
        ensure!(path.exists(), "{} is not built", path.display());
    }
    let watchdog = Duration::from_secs(60) + Duration::from_secs_f64(o.seconds * 4.0 * o.runs as f64);
    std::thread::spawn(move || {
        std::thread::sleep(watchdog);
        eprintln!("gateway-chat-bench: still running after {watchdog:?}; giving up (children die with us)");
        std::process::exit(3);
    });
    raise_nofile()?;
    let m = machine();
    let log = |msg: &str| {
        if !o.json {
            eprintln!("{msg}");
        }
    };
    let up = start_upstream(o.upstream_threads)?;
    let sink = if o.otlp { Some(Sink::start()?) } else { None };
    let gw =
        start_gateway(up.port, o.gateway_threads, sink.as_ref()).map_err(|e| e.context("start gatewayd"))?;
    let direct = Side::new(up.port, "echo", None);
    let through = Side::new(gw.daemon.port, "fast/echo", Some(TOKEN));
    direct.check(None, "echo")?;
    through.check(Some(TOKEN), "fast/echo").map_err(|e| e.context(gw.daemon.stderr()))?;

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (mut d50, mut d99, mut g50, mut g99, mut add50, mut add99) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut d_rps, mut g_rps) = (vec![], vec![]);
    for run in 1..=o.runs {
        let (a50, a99) = rt.block_on(sequential(&direct, o.requests))?;
        let (b50, b99) = rt.block_on(sequential(&through, o.requests))?;
        log(&format!(
            "run {run}: sequential p50/p99 direct {a50:.3}/{a99:.3} ms, gateway {b50:.3}/{b99:.3} ms"
        ));
        d50.push(a50);
        d99.push(a99);
        g50.push(b50);
        g99.push(b99);
        add50.push(b50 - a50);
        add99.push(b99 - a99);
        let a = rt.block_on(throughput(&direct, o.clients, o.seconds))?;
        let b = rt
            .block_on(throughput(&through, o.clients, o.seconds))
            .map_err(|e| e.context(gw.daemon.stderr()))?;
        log(&format!("run {run}: {} clients: direct {a:.0} req/s, gateway {b:.0} req/s", o.clients));
        d_rps.push(a);
        g_rps.push(b);
    }

    let direct_floor = "direct to the upstream".to_string();
    let rows = vec![
        Row {
            id: "chat_added_p50",
            metric: "`/v1/chat/completions` time added over the upstream, p50, sequential".into(),
            unit: "ms",
            prec: 3,
            ours: Stats::of(add50),
            target: Some(Target::AtMost(1.0)),
            peer: "+540 ms",
            floor: Some((Stats::of(d50), format!("{direct_floor}, p50"))),
        },
        Row {
            id: "chat_added_p99",
            metric: "time added, p99, sequential".into(),
            unit: "ms",
            prec: 3,
            ours: Stats::of(add99),
            target: None,
            peer: "-",
            floor: Some((Stats::of(d99), format!("{direct_floor}, p99"))),
        },
        Row {
            id: "chat_gateway_p50",
            metric: "through the gateway, p50 (diagnostic)".into(),
            unit: "ms",
            prec: 3,
            ours: Stats::of(g50),
            target: None,
            peer: "-",
            floor: None,
        },
        Row {
            id: "chat_gateway_p99",
            metric: "through the gateway, p99 (diagnostic)".into(),
            unit: "ms",
            prec: 3,
            ours: Stats::of(g99),
            target: None,
            peer: "-",
            floor: None,
        },
        Row {
            id: "chat_rps_32",
            metric: format!(
                "chat requests/s through the gateway, {} concurrent keep-alive clients",
                o.clients
            ),
            unit: "req/s",
            prec: 0,
            ours: Stats::of(g_rps),
            target: Some(Target::AtLeast(2000.0)),
            peer: "1.7 req/s",
            floor: Some((Stats::of(d_rps), direct_floor)),
        },
    ];
    let mut notes = vec![format!(
        "{} runs; sequential: {} requests per run and side after {} warm-up requests; concurrent: {} s per \
         run and side after 0.5 s; upstream: gateway-upstream with {} threads; gatewayd: {} tokio workers; \
         clients: one tokio thread",
        o.runs,
        o.requests,
        o.requests / 10,
        o.seconds,
        o.upstream_threads,
        o.gateway_threads.map_or("default".into(), |n| n.to_string()),
    )];
    if let Some(sink) = &sink {
        use std::sync::atomic::Ordering::Relaxed;
        notes.push(format!(
            "OTLP on: traces (every one sampled) and metrics exported to a sink: {} requests, {} KiB received",
            sink.requests.load(Relaxed),
            sink.bytes.load(Relaxed) / 1024
        ));
    }
    if o.json {
        println!("{}", serde_json::to_string_pretty(&to_json(&m, PEER, &rows, &notes, Value::Null))?);
    } else {
        print!("{}", to_table(&m, PEER, &rows, &notes));
    }
    drop(gw);
    drop(up);
    Ok(())
}
