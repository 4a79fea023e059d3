//! The command line of `gatewayd`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use gateway_config::Bind;
use gateway_proto::exit;

use crate::core::logging::LogFormat;

#[derive(Parser, Debug)]
#[command(
    name = "gatewayd",
    version,
    about = "The gateway daemon: one port for the gateway's APIs, a control socket for gatewayctl",
    after_help = "Exit codes: 0 stopped cleanly; 1 runtime failure; 2 usage; 69 port or state dir held \
                  by another process; 75 restarting to apply a config change (supervised); \
                  78 configuration error.\nSee docs/runbook.md."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gateway in the foreground (under systemd, launchd or a terminal).
    Run(RunArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Run the named profile: its own config, state dir, control socket and port.
    #[arg(long, value_name = "NAME", conflicts_with = "dev")]
    pub profile: Option<String>,
    /// The development profile `dev` (port 19001 unless configured).
    #[arg(long)]
    pub dev: bool,
    /// Config file [env: GATEWAY_CONFIG_PATH] (default: the profile's gateway.toml; `gatewayctl config path`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// State directory: token, lock, logs [env: GATEWAY_STATE_DIR].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Port to listen on; wins over gateway.port.
    #[arg(long, env = "GATEWAY_PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    /// Bind address: loopback, lan or an IP address; wins over gateway.bind.
    #[arg(long, env = "GATEWAY_BIND", value_name = "ADDR")]
    pub bind: Option<Bind>,
    /// If a gatewayd already holds the port or the state dir, stop it first (never another program).
    #[arg(long)]
    pub force: bool,
    /// Log format on stderr (ignored under journald, which gets structured fields).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log at debug level, whatever logging.level says.
    #[arg(long, short)]
    pub verbose: bool,
}

pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { exit::USAGE } else { exit::OK };
        }
    };
    match cli.command {
        Command::Run(args) => crate::startup::run(args),
    }
}
