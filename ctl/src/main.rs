//! gatewayctl: the control client of gatewayd. It talks HTTP to the daemon's Unix socket, and
//! falls back to the files (config, token, log) when the daemon is not running.

mod client;
mod commands;
mod http;
mod output;
mod tail;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};
use gateway_proto::{exit, Profile};

use commands::{config_cmd, devices, lifecycle, logs, password, sessions, status, token, Ctx};

const EXIT_CODES: &str = "\
Exit codes:
  0   ok
  1   failure
  2   usage error
  3   gatewayd is not running (nothing answers on its control socket)
  78  config invalid, or reload rejected";

#[derive(Parser)]
#[command(
    name = "gatewayctl",
    version,
    about = "Control gatewayd, the gateway daemon",
    after_help = EXIT_CODES,
    subcommand_required = true,
    arg_required_else_help = true
)]
struct Cli {
    #[command(flatten)]
    instance: Instance,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Instance {
    /// The instance to control; each profile has its own config, state, socket and port
    #[arg(long, global = true, value_name = "NAME")]
    profile: Option<String>,
    /// The development instance (same as --profile dev)
    #[arg(long, global = true, conflicts_with = "profile")]
    dev: bool,
}

#[derive(Args)]
struct Json {
    /// Print the API's JSON instead of text
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Show whether gatewayd runs, where it listens, and its config, reload and heartbeat state
    Status(Json),
    /// Run gatewayd's health checks; exit 1 if one fails
    Health(Json),
    /// Re-read the config file now; exit 78 if it is rejected
    Reload {
        /// When the change needs a restart, wait until the restarted gatewayd is ready
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        json: Json,
    },
    /// Stop gatewayd gracefully and wait until it has exited
    Stop,
    /// Show gatewayd's log (read from its file when it is not running)
    Logs {
        /// Keep printing new lines until interrupted
        #[arg(short, long)]
        follow: bool,
        /// How many of the last lines to show
        #[arg(short = 'n', long, default_value_t = 100, value_name = "N")]
        lines: usize,
        /// Print the raw JSON lines
        #[arg(long)]
        json: bool,
    },
    /// Find, show and check the config file
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Show or replace the gateway token that clients present
    #[command(subcommand)]
    Token(TokenCommand),
    /// List paired devices and pairing requests; approve, reject or revoke them
    #[command(subcommand)]
    Devices(DevicesCommand),
    /// Set the gateway password (auth mode "password")
    #[command(subcommand)]
    Password(PasswordCommand),
    /// List or end the session tokens handed out for the password
    #[command(subcommand)]
    Sessions(SessionsCommand),
}

#[derive(Subcommand)]
enum PasswordCommand {
    /// Set a new password (asked twice without echo, or read from standard input); it ends all sessions
    Set {
        /// Read the password from the first line of standard input
        #[arg(long)]
        stdin: bool,
    },
}

#[derive(Subcommand)]
enum SessionsCommand {
    /// Show live sessions: id, age, expiry, and who created them
    List(Json),
    /// End a session: its token stops working and its connections are closed
    Revoke {
        /// The session id shown by `sessions list`
        id: String,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the config file's path
    Path,
    /// Print the config in effect (or the file's, when gatewayd is not running), secrets redacted
    Show(Json),
    /// Check a config file as gatewayd would; exit 78 if it would be refused
    Validate {
        /// The file to check [default: the config file of the instance]
        file: Option<PathBuf>,
    },
    /// Print the JSON Schema of the config file
    Schema,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Print the gateway token
    Show(Json),
    /// Replace the gateway token with a new random one
    Rotate(Json),
}

#[derive(Subcommand)]
enum DevicesCommand {
    /// Show paired devices and pending pairing requests
    List(Json),
    /// Pair a device that waits for approval
    Approve {
        /// The request id shown by `devices list` (or the device id)
        id: String,
        /// Grant this scope instead of the requested ones (repeatable)
        #[arg(long = "scope", value_name = "SCOPE",
              value_parser = clap::builder::PossibleValuesParser::new(gateway_proto::ws::scope::ALL))]
        scopes: Vec<String>,
    },
    /// Refuse a pending pairing request
    Reject {
        /// The request id shown by `devices list` (or the device id)
        id: String,
    },
    /// Unpair a device: its device token stops working and its connections are closed
    Revoke {
        /// The device id, or its first 8 or more characters as `devices list` shows them
        id: String,
    },
}

fn main() -> ExitCode {
    restore_sigpipe();
    let cli = Cli::parse();
    let profile = match Profile::new(cli.instance.profile.as_deref(), cli.instance.dev) {
        Ok(p) => p,
        Err(e) => Cli::command().error(clap::error::ErrorKind::InvalidValue, e).exit(),
    };
    let ctx = Ctx { profile };
    let code = match run(&ctx, cli.command) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("gatewayctl: {err:#}");
            exit_code(&err)
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn run(ctx: &Ctx, command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Status(j) => status::status(ctx, j.json),
        Command::Health(j) => status::health(ctx, j.json),
        Command::Reload { wait, json } => lifecycle::reload(ctx, wait, json.json),
        Command::Stop => lifecycle::stop(ctx),
        Command::Logs { follow, lines, json } => logs::logs(ctx, follow, lines, json),
        Command::Config(c) => match c {
            ConfigCommand::Path => config_cmd::path(ctx),
            ConfigCommand::Show(j) => config_cmd::show(ctx, j.json),
            ConfigCommand::Validate { file } => config_cmd::validate(ctx, file),
            ConfigCommand::Schema => config_cmd::schema(),
        },
        Command::Token(c) => match c {
            TokenCommand::Show(j) => token::show(ctx, j.json),
            TokenCommand::Rotate(j) => token::rotate(ctx, j.json),
        },
        Command::Devices(c) => match c {
            DevicesCommand::List(j) => devices::list(ctx, j.json),
            DevicesCommand::Approve { id, scopes } => devices::approve(ctx, &id, scopes),
            DevicesCommand::Reject { id } => devices::reject(ctx, &id),
            DevicesCommand::Revoke { id } => devices::revoke(ctx, &id),
        },
        Command::Password(PasswordCommand::Set { stdin }) => password::set(ctx, stdin),
        Command::Sessions(c) => match c {
            SessionsCommand::List(j) => sessions::list(ctx, j.json),
            SessionsCommand::Revoke { id } => sessions::revoke(ctx, &id),
        },
    }
}

/// Errors from the daemon carry their exit code (3 when it is not running); others are 1.
fn exit_code(err: &anyhow::Error) -> i32 {
    err.chain()
        .find_map(|e| e.downcast_ref::<client::Error>())
        .map_or(exit::FAILURE, client::Error::exit_code)
}

/// Rust ignores SIGPIPE, which turns `gatewayctl logs | head` into an error message; restore
/// the default so the pipe closing ends gatewayctl quietly. Socket writes use MSG_NOSIGNAL.
fn restore_sigpipe() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: no other thread exists yet, and SIG_DFL installs no handler code.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }
}
