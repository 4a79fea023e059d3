//! gateway-upstream: the fake model upstream of `gateway_tests::upstream` as a process, for trying
//! the gateway by hand and for benchmarks.
//!
//!   gateway-upstream [--port P] [--threads N] [--api-key KEY] [--record]
//!
//! It prints its base URL (`http://127.0.0.1:PORT`) on stdout and serves until killed. The model
//! name picks the behaviour (echo, faults, delays, tool calls): see the module documentation.

use anyhow::{bail, Context, Result};
use gateway_tests::upstream::Upstream;

const USAGE: &str = "usage: gateway-upstream [--port P] [--threads N] [--api-key KEY] [--record]";

fn main() -> Result<()> {
    let mut builder = Upstream::builder().record(false);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value ({USAGE})"));
        match arg.as_str() {
            "--port" => builder = builder.port(value("--port")?.parse().context("--port needs a number")?),
            "--threads" => {
                builder = builder.threads(value("--threads")?.parse().context("--threads needs a number")?)
            }
            "--api-key" => builder = builder.api_key(&value("--api-key")?),
            "--record" => builder = builder.record(true),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument {other:?} ({USAGE})"),
        }
    }
    let upstream = builder.start().context("start the fake upstream")?;
    println!("{}", upstream.url());
    loop {
        std::thread::park();
    }
}
