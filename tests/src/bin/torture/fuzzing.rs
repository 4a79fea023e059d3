//! R11: every fuzz target (WebSocket frames, connect params, the config loader, the HTTP routes,
//! the control API) for a number of inputs each, through `daemon/fuzz/run-short.sh` (which
//! installs cargo-fuzz when it is missing and builds with AddressSanitizer): 0 crashes, 0 hangs,
//! and the inputs each target ran. Full mode only: `.ci/run` runs the same script for 15 s a
//! target.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use gateway_tests::benchutil::{Row, Target};

use crate::row;

const TARGETS: [&str; 5] = ["ws_frames", "connect_params", "config_loader", "http_routes", "control_api"];

pub fn run(inputs: usize, rows: &mut Vec<Row>, notes: &mut Vec<String>) -> Result<()> {
    let script = Path::new("daemon/fuzz/run-short.sh");
    ensure!(script.exists(), "{} is not here: run gateway-torture from the workspace root", script.display());
    let started = Instant::now();
    let status =
        Command::new(script).env("FUZZ_RUNS", inputs.to_string()).status().context("run the fuzz script")?;
    for target in TARGETS {
        let log = std::fs::read_to_string(format!("daemon/fuzz/{target}.log")).unwrap_or_default();
        let ran: f64 = log
            .lines()
            .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0.0);
        rows.push(row(
            "R11",
            format!("fuzz target {target}: inputs run without a crash or hang"),
            "",
            ran,
            Target::AtLeast(inputs as f64),
        ));
    }
    rows.push(row(
        "R11-crashes",
        "fuzz targets that crashed or hung (inputs in daemon/fuzz/artifacts/)".into(),
        "",
        if status.success() { 0.0 } else { 1.0 },
        Target::AtMost(0.0),
    ));
    notes.push(format!(
        "R11: {} targets, {inputs} inputs each, in {:.0} min",
        TARGETS.len(),
        started.elapsed().as_secs_f64() / 60.0
    ));
    Ok(())
}
