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

use anyhow::{bail, ensure, Context, Result};
use gateway_tests::benchutil::{machine, Row, Stats, Target};

mod auth;
mod configs;
mod crashes;
mod full_disk;
mod idle_clients;
mod reloads;
mod slow_clients;
mod stop;
mod upstream_faults;

const PEER: &str = "-";

const USAGE: &str = "usage: gateway-torture [--short] [--only R1,R16,...]";

fn main() -> Result<()> {
    let mut short = false;
    let mut only: Option<Vec<String>> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--short" => short = true,
            "--only" => {
                let list = args.next().with_context(|| format!("--only needs a list of rows ({USAGE})"))?;
                only = Some(list.split(',').map(|r| r.trim().to_uppercase()).collect());
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument {other:?} ({USAGE})"),
        }
    }
    let scale = if short { 10 } else { 1 };
    let wanted = |id: &str| only.as_ref().is_none_or(|o| o.iter().any(|w| w == id));
    let m = machine();
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    type Scenario = fn(usize, &mut Vec<Row>, &mut Vec<String>) -> Result<()>;
    let scenarios: [(&str, usize, Scenario); 9] = [
        ("R1", 10_000, idle_clients::run),
        ("R4", 100, reloads::run),
        ("R15", 1_000, auth::run),
        ("R12", 500, slow_clients::run),
        ("R5", 1_000, configs::run),
        ("R16", 50, upstream_faults::run),
        ("R7", 100, stop::run),
        ("R8", 1_000, crashes::run),
        ("R10", 1_000, full_disk::run),
    ];
    for (id, count, scenario) in scenarios {
        if wanted(id) {
            eprintln!("{id}...");
            scenario(count / scale, &mut rows, &mut notes).with_context(|| format!("scenario {id}"))?;
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
