//! gateway-torture: reliability scenarios against the release `gatewayd`, each as a figure beside
//! its target in the R-list of the project's targets (docs/reliability.md says what each row
//! measures). One module per scenario:
//!
//! - `auth` R15: wrong credentials on every auth path; the owner never locked out.
//! - `slow_clients` R12: slow-header and silent connections.
//! - `configs` R5: mutated, truncated, half-written config files, each reloaded.
//! - `upstream_faults` R16: refused, hanging, garbage and stalling upstreams; clients leaving.
//! - `stop` R7: SIGTERM with SSE and WebSocket clients mid-run.
//! - `crashes` R8: kill -9 during writes; nothing acknowledged lost, integrity_check.
//! - `full_disk` R10: the state's disk filling under writers (root: it mounts a tmpfs).
//! - `idle_clients` R1: many idle authenticated WebSocket clients.
//! - `reloads` R4: config reloads under chat load and open sockets.
//! - `soak` R20: moderate mixed load for an hour; RSS, fds and p99 sampled.
//! - `fuzzing` R11: every fuzz target for 10^6 inputs (full mode only; it needs cargo-fuzz).
//!
//! Run from the workspace root:
//!   cargo build --release --workspace --bins && ./target/release/gateway-torture [--short] [--only R8,R16]
//!
//! `--short` runs smaller counts and a 2-minute soak (under 3 minutes in all); the full run
//! takes a little over an hour. Daemons run in throwaway homes and are killed when their
//! handles drop; errors are returned rather than panicked so the drops run (the release
//! profile aborts on a panic). It exits 1 when a row misses its target.

use anyhow::{bail, ensure, Context, Result};
use gateway_tests::benchutil::{machine, Row, Stats, Target};

mod auth;
mod configs;
mod crashes;
mod full_disk;
mod fuzzing;
mod idle_clients;
mod reloads;
mod slow_clients;
mod soak;
mod stop;
mod upstream_faults;

const PEER: &str = "-";

const USAGE: &str = "usage: gateway-torture [--short] [--only R1,R16,...] [--soak-minutes M]";

fn main() -> Result<()> {
    let mut short = false;
    let mut only: Option<Vec<String>> = None;
    let mut soak_minutes: Option<usize> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--short" => short = true,
            "--only" => {
                let list = args.next().with_context(|| format!("--only needs a list of rows ({USAGE})"))?;
                only = Some(list.split(',').map(|r| r.trim().to_uppercase()).collect());
            }
            "--soak-minutes" => soak_minutes = Some(gateway_tests::benchutil::arg_num(&arg, args.next())?),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument {other:?} ({USAGE})"),
        }
    }
    let wanted = |id: &str| only.as_ref().is_none_or(|o| o.iter().any(|w| w == id));
    let m = machine();
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    type Scenario = fn(usize, &mut Vec<Row>, &mut Vec<String>) -> Result<()>;
    // Each row's count in the full and the short mode (R20's is seconds).
    let scenarios: [(&str, usize, usize, Scenario); 11] = [
        ("R15", 1_000, 100, auth::run),
        ("R12", 500, 50, slow_clients::run),
        ("R5", 1_000, 100, configs::run),
        ("R16", 50, 5, upstream_faults::run),
        ("R7", 100, 20, stop::run),
        ("R8", 1_000, 50, crashes::run),
        ("R10", 1_000, 100, full_disk::run),
        ("R1", 10_000, 1_000, idle_clients::run),
        ("R4", 100, 10, reloads::run),
        ("R20", 3_600, 120, soak::run),
        ("R11", 1_000_000, 0, fuzzing::run),
    ];
    for (id, full, short_count, scenario) in scenarios {
        if short && short_count == 0 {
            if wanted(id) {
                notes.push(format!("{id}: full mode only (.ci/run runs the fuzz targets for 15 s each)"));
            }
            continue;
        }
        if wanted(id) {
            eprintln!("{id}...");
            let count = match (id, soak_minutes) {
                ("R20", Some(m)) => m * 60,
                _ if short => short_count,
                _ => full,
            };
            scenario(count, &mut rows, &mut notes).with_context(|| format!("scenario {id}"))?;
        }
    }
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

/// A small deterministic generator (xorshift64*), so a run can be repeated.
pub struct Rng(u64);

impl Rng {
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1) as u64) as usize
    }
}
