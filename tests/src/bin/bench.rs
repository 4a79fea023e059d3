//! gateway-bench: measures the release `gatewayd` and `gatewayctl` against the project's targets.
//!
//! Run from the workspace root:
//!   cargo build --release --workspace --bins && ./target/release/gateway-bench [--runs N] [--json]
//!
//! Every figure is the median (with min and max) of several runs, because a small shared machine
//! is noisy. The daemons run in throwaway homes and are killed when their handles drop; errors
//! are returned rather than panicked so that those drops run (the release profile aborts on
//! panic, which would skip them).

use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use gateway_tests::benchutil::{machine, ms, proc_kib, Machine, Stats};
use gateway_tests::{bin, free_port, try_http, Daemon, Home};
use serde_json::{json, Value};

/// How long any single wait may take before the bench gives up.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Poll interval while waiting for the daemon: short, so it adds at most ~1 ms to a figure.
const POLL: Duration = Duration::from_millis(1);
/// How long a daemon sits idle before its memory is read.
const IDLE: Duration = Duration::from_millis(1500);
/// The daemon's default reload debounce: the least a config edit can take to show.
const DEBOUNCE_MS: f64 = 50.0;

/// The project's target sheet, measured on this kind of machine; the peer is OpenClaw's gateway
/// (`openclaw@2026.9.6` on Node 24).
const PEER: &str = "openclaw@2026.9.6 (Node 24)";
const COLD_TARGET_MS: f64 = 50.0;
const COLD_PEER: &str = "12.8-15.5 s";
const RSS_TARGET_MB: f64 = 16.0;
const RSS_PEER: &str = "928-971 MB";
const STATUS_TARGET_MS: f64 = 20.0;
const STATUS_PEER: &str = "2.48 s";
const EDIT_TARGET_MS: f64 = 150.0;
const EDIT_PEER: &str = "699 ms";

/// Runs per metric when `--runs` is not given: cheap metrics get more.
struct Runs {
    floor: usize,
    cold: usize,
    warm: usize,
    rss: usize,
    status: usize,
    edit: usize,
}

impl Runs {
    fn default_counts() -> Self {
        Self { floor: 50, cold: 30, warm: 20, rss: 5, status: 50, edit: 20 }
    }

    fn all(n: usize) -> Self {
        Self { floor: n, cold: n, warm: n, rss: n, status: n, edit: n }
    }
}

/// One row of the results table.
struct Row {
    id: &'static str,
    metric: &'static str,
    unit: &'static str,
    ours: Stats,
    /// The target as a maximum, if this row has one.
    target: Option<f64>,
    peer: &'static str,
    floor: Option<(Stats, &'static str)>,
}

impl Row {
    fn verdict(&self) -> Option<&'static str> {
        self.target.map(|t| if self.ours.median <= t { "meets" } else { "misses" })
    }
}

fn main() -> Result<()> {
    let (runs, as_json) = parse_args()?;
    let machine = machine();
    if !as_json {
        eprintln!("measuring for a few seconds; keep the machine otherwise idle...");
    }

    let floor = Stats::of(repeat(runs.floor, spawn_true)?);
    cold_start()?; // untimed: the first exec of gatewayd may read it from disk
    let cold = Stats::of(repeat(runs.cold, cold_start)?);
    let warm = warm_start(runs.warm)?;
    let (rss, hwm) = idle_memory(runs.rss)?;
    let status = status_wall_time(runs.status)?;
    let edit = config_edit(runs.edit)?;

    let true_spawn = "`true` spawn";
    let rows = [
        Row {
            id: "cold_start",
            metric: "cold start (spawn -> ready)",
            unit: "ms",
            ours: cold,
            target: Some(COLD_TARGET_MS),
            peer: COLD_PEER,
            floor: Some((floor, true_spawn)),
        },
        Row {
            id: "warm_start",
            metric: "warm start (existing home)",
            unit: "ms",
            ours: warm,
            target: Some(COLD_TARGET_MS),
            peer: "-",
            floor: Some((floor, true_spawn)),
        },
        Row {
            id: "idle_rss",
            metric: "idle resident memory (VmRSS)",
            unit: "MB",
            ours: rss,
            target: Some(RSS_TARGET_MB),
            peer: RSS_PEER,
            floor: None,
        },
        Row {
            id: "peak_rss",
            metric: "peak resident memory (VmHWM)",
            unit: "MB",
            ours: hwm,
            target: None,
            peer: "-",
            floor: None,
        },
        Row {
            id: "status_wall",
            metric: "`status` command wall time",
            unit: "ms",
            ours: status,
            target: Some(STATUS_TARGET_MS),
            peer: STATUS_PEER,
            floor: Some((floor, true_spawn)),
        },
        Row {
            id: "config_edit",
            metric: "config edit -> change visible",
            unit: "ms",
            ours: edit,
            target: Some(EDIT_TARGET_MS),
            peer: EDIT_PEER,
            floor: Some((Stats::of(vec![DEBOUNCE_MS]), "debounce")),
        },
    ];

    if as_json {
        println!("{}", serde_json::to_string_pretty(&to_json(&machine, &rows))?);
    } else {
        print!("{}", to_table(&machine, &rows));
    }
    Ok(())
}

fn parse_args() -> Result<(Runs, bool)> {
    let mut runs = Runs::default_counts();
    let mut as_json = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--json" => as_json = true,
            "--runs" => {
                let n: usize =
                    args.next().context("--runs needs a number")?.parse().context("--runs needs a number")?;
                ensure!(n > 0, "--runs must be at least 1");
                runs = Runs::all(n);
            }
            "-h" | "--help" => {
                println!("usage: gateway-bench [--runs N] [--json]");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (usage: gateway-bench [--runs N] [--json])"),
        }
    }
    Ok((runs, as_json))
}

fn repeat(runs: usize, mut f: impl FnMut() -> Result<f64>) -> Result<Vec<f64>> {
    (0..runs).map(|_| f()).collect()
}

/// The floor for anything that starts a process: spawn `true` and wait for it to exit.
fn spawn_true() -> Result<f64> {
    let t0 = Instant::now();
    let status = Command::new("true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("spawn true")?;
    let elapsed = t0.elapsed();
    ensure!(status.success(), "`true` failed: {status}");
    Ok(ms(elapsed))
}

/// Spawns `gatewayd run --port P` in `home` and times it until `/readyz` answers 200.
fn start(home: &Home) -> Result<(Daemon, Duration)> {
    let port = free_port().to_string();
    let t0 = Instant::now();
    let mut daemon = home.spawn(&["--port", &port], |_| {});
    wait_ready(&mut daemon)?;
    Ok((daemon, t0.elapsed()))
}

/// Polls `/readyz` every millisecond: connection refused and 503 both mean "not yet".
fn wait_ready(daemon: &mut Daemon) -> Result<()> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Ok((200, _)) = try_http(daemon.port, "GET", "/readyz", &[]) {
            return Ok(());
        }
        if let Some(status) = daemon.child.try_wait()? {
            bail!("gatewayd exited ({status}):\n{}", daemon.stderr());
        }
        if Instant::now() > deadline {
            bail!("gatewayd not ready within {TIMEOUT:?}:\n{}", daemon.stderr());
        }
        std::thread::sleep(POLL);
    }
}

/// A first start in a fresh home (it creates its dirs and generates the token).
fn cold_start() -> Result<f64> {
    let home = Home::new();
    let (_daemon, took) = start(&home)?;
    Ok(ms(took))
}

/// Starts in a home that has already been started once (token and dirs exist).
fn warm_start(runs: usize) -> Result<Stats> {
    let home = Home::new();
    drop(start(&home)?);
    Ok(Stats::of(repeat(runs, || Ok(ms(start(&home)?.1)))?))
}

/// VmRSS and VmHWM in MB (10^6 bytes) of daemons left idle for a while. The daemons idle side
/// by side so the wait is paid once.
fn idle_memory(runs: usize) -> Result<(Stats, Stats)> {
    let homes: Vec<Home> = (0..runs).map(|_| Home::new()).collect();
    let daemons = homes.iter().map(|h| start(h).map(|(d, _)| d)).collect::<Result<Vec<_>>>()?;
    std::thread::sleep(IDLE);
    let (mut rss, mut hwm) = (Vec::new(), Vec::new());
    for d in &daemons {
        let status = std::fs::read_to_string(format!("/proc/{}/status", d.pid()))?;
        rss.push(proc_kib(&status, "VmRSS:")? * 1024.0 / 1e6);
        hwm.push(proc_kib(&status, "VmHWM:")? * 1024.0 / 1e6);
    }
    Ok((Stats::of(rss), Stats::of(hwm)))
}

/// Wall time of `gatewayctl status` against a running daemon, as a user runs it.
fn status_wall_time(runs: usize) -> Result<Stats> {
    let home = Home::new();
    let (_daemon, _) = start(&home)?;
    let ctl = bin("gatewayctl");
    let run = || -> Result<f64> {
        let t0 = Instant::now();
        let status = home.command(&ctl).arg("status").stdout(Stdio::null()).stderr(Stdio::null()).status()?;
        let elapsed = t0.elapsed();
        ensure!(status.success(), "gatewayctl status failed: {status}");
        Ok(ms(elapsed))
    };
    run()?; // untimed: the first exec of the binary may read it from disk
    Ok(Stats::of(repeat(runs, run)?))
}

/// From just before an atomic write of a new token to the first 200 with that token.
fn config_edit(runs: usize) -> Result<Stats> {
    let home = Home::new();
    home.write_config(None, &token_config(0));
    let (daemon, _) = start(&home)?;
    let mut samples = Vec::new();
    for i in 1..=runs {
        // Let the watcher settle so each edit is debounced on its own, plus a jitter: a fixed
        // gap would land every edit at the same phase of the daemon's timers (the debouncer
        // checks on a 12.5 ms tick), a best case; a user's edit lands anywhere.
        std::thread::sleep(Duration::from_millis(100) + jitter(Duration::from_millis(25)));
        let t0 = Instant::now();
        home.write_config(None, &token_config(i));
        wait_authorized(&daemon, &token(i))?;
        samples.push(ms(t0.elapsed()));
    }
    Ok(Stats::of(samples))
}

/// A pseudo-random duration below `max`, from the clock's nanoseconds.
fn jitter(max: Duration) -> Duration {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    Duration::from_nanos(u64::from(nanos) % max.as_nanos() as u64)
}

fn token(i: usize) -> String {
    format!("bench-token-{i:04}")
}

fn token_config(i: usize) -> String {
    // Polling with the next token before it applies is a failed login each time: lift the
    // per-address lockout (gateway.auth.rate_limit) so the bench measures the reload, not it.
    format!("[gateway.auth]\ntoken = \"{}\"\n[gateway.auth.rate_limit]\nmax_failures = 10000\n", token(i))
}

fn wait_authorized(daemon: &Daemon, token: &str) -> Result<()> {
    let bearer = format!("Bearer {token}");
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let (status, _) = try_http(daemon.port, "GET", "/gateway/status", &[("Authorization", &bearer)])?;
        if status == 200 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the new token was not accepted within {TIMEOUT:?}:\n{}", daemon.stderr());
        }
        std::thread::sleep(POLL);
    }
}

fn fmt_stats(s: &Stats, unit: &str) -> String {
    format!("{:.1} {unit} ({:.1}-{:.1}, n={})", s.median, s.min, s.max, s.n)
}

fn to_table(m: &Machine, rows: &[Row]) -> String {
    let mut out = m.table_head(PEER);
    for r in rows {
        let target = r.target.map_or("-".into(), |t| format!("<= {t} {}", r.unit));
        let floor =
            r.floor.as_ref().map_or("-".into(), |(s, what)| format!("{:.1} {} ({what})", s.median, r.unit));
        let _ = writeln!(
            out,
            "| {} | {} | {target} | {} | {floor} | {} |",
            r.metric,
            fmt_stats(&r.ours, r.unit),
            r.peer,
            r.verdict().unwrap_or("-"),
        );
    }
    out
}

fn to_json(m: &Machine, rows: &[Row]) -> Value {
    let metrics: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "metric": r.metric,
                "unit": r.unit,
                "ours": r.ours.json(),
                "target_max": r.target,
                "peer": r.peer,
                "floor": r.floor.as_ref().map(|(s, what)| json!({ "what": what, "stats": s.json() })),
                "verdict": r.verdict(),
            })
        })
        .collect();
    json!({
        "machine": { "nproc": m.nproc, "model": m.model, "kernel": m.kernel },
        "date": m.date,
        "peer": PEER,
        "metrics": metrics,
    })
}
