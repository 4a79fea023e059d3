//! The command line of `gatewayd`.

use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};
use gateway_config::Bind;
use gateway_proto::exit;

use crate::core::logging::LogFormat;

#[derive(Parser, Debug)]
#[command(
    name = "gatewayd",
    version,
    about = "The gateway daemon: one port for the gateway's APIs, a control socket for gatewayctl",
    after_help = "Exit codes: 0 stopped cleanly; 1 runtime failure; 2 usage; 69 port or state dir held \
                  by another process; 75 restarting (a restart-required config change or `gatewayctl restart`; supervised); \
                  78 configuration error.\nSee docs/runbook.md."
)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Flags without a command run the gateway: `gatewayd --port 18790` is `gatewayd run --port 18790`.
    #[command(flatten)]
    pub run: RunArgs,
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

impl RunArgs {
    /// The arguments (from `run` on) that start this instance again as it runs now: the flags
    /// given, the environment variables clap read into them, paths absolute; never `--force`.
    pub fn relaunch_args(&self, paths: &gateway_proto::Paths) -> Vec<String> {
        let mut args = vec!["run".to_owned()];
        let mut flag = |name: &str, value: Option<String>| {
            args.push(name.to_owned());
            args.extend(value);
        };
        if self.dev {
            flag("--dev", None);
        } else if let Some(profile) = &self.profile {
            flag("--profile", Some(profile.clone()));
        }
        use gateway_proto::paths::{env_var, non_empty_env};
        if self.config.is_some() || non_empty_env(env_var::CONFIG_PATH).is_some() {
            flag("--config", Some(paths.config_file.display().to_string()));
        }
        if self.state_dir.is_some() || non_empty_env(env_var::STATE_DIR).is_some() {
            flag("--state-dir", Some(paths.state_dir.display().to_string()));
        }
        if let Some(port) = self.port {
            flag("--port", Some(port.to_string()));
        }
        if let Some(bind) = &self.bind {
            flag("--bind", Some(bind.to_string()));
        }
        if self.log_format == LogFormat::Json {
            flag("--log-format", Some("json".to_owned()));
        }
        if self.verbose {
            flag("--verbose", None);
        }
        args
    }
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
        Some(Command::Run(args)) => crate::startup::run(args),
        // Bare `gatewayd` asks what it does; flags alone mean `run`.
        None if std::env::args_os().len() <= 1 => {
            let _ = Cli::command().print_help();
            exit::USAGE
        }
        None => crate::startup::run(cli.run),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_without_a_command_mean_run() {
        let cli = Cli::try_parse_from(["gatewayd", "--port", "18790", "--verbose"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!((cli.run.port, cli.run.verbose), (Some(18790), true));
        let cli = Cli::try_parse_from(["gatewayd", "run", "--port", "18790"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Run(RunArgs { port: Some(18790), .. }))));
        let typo = Cli::try_parse_from(["gatewayd", "--prot", "18790"]).unwrap_err().to_string();
        assert!(typo.contains("a similar argument exists: '--port'"), "{typo}");
    }

    #[test]
    fn relaunch_args_bring_back_the_flags_that_matter() {
        let cli = Cli::try_parse_from([
            "gatewayd",
            "--profile",
            "work",
            "--port",
            "45649",
            "--bind",
            "127.0.0.1",
            "--force",
            "-v",
            "--log-format",
            "json",
        ])
        .unwrap();
        let paths = gateway_proto::Paths::resolve(
            &gateway_proto::Profile::new(Some("work"), false).unwrap(),
            &gateway_proto::paths::PathFlags {
                config_file: Some("/etc/g.toml".into()),
                state_dir: Some("/var/lib/g".into()),
            },
        )
        .unwrap();
        assert_eq!(
            cli.run.relaunch_args(&paths).join(" "),
            "run --profile work --port 45649 --bind 127.0.0.1 --log-format json --verbose"
        );
    }
}
