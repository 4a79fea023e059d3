//! The whole command line of gatewayctl, as a clap definition that depends only on clap and
//! gateway-proto, so that man pages and shell completions can be generated from it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub const EXIT_CODES: &str = "\
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
pub struct Cli {
    #[command(flatten)]
    pub instance: Instance,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args)]
pub struct Instance {
    /// The instance to control; each profile has its own config, state, socket and port
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,
    /// The development instance (same as --profile dev)
    #[arg(long, global = true, conflicts_with = "profile")]
    pub dev: bool,
}

#[derive(Args)]
pub struct Json {
    /// Print the API's JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum Command {
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
pub enum PasswordCommand {
    /// Set a new password (asked twice without echo, or read from standard input); it ends all sessions
    Set {
        /// Read the password from the first line of standard input
        #[arg(long)]
        stdin: bool,
    },
}

#[derive(Subcommand)]
pub enum SessionsCommand {
    /// Show live sessions: id, age, expiry, and who created them
    List(Json),
    /// End a session: its token stops working and its connections are closed
    Revoke {
        /// The session id shown by `sessions list`
        id: String,
    },
}

#[derive(Subcommand)]
pub enum ConfigCommand {
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
pub enum TokenCommand {
    /// Print the gateway token
    Show(Json),
    /// Replace the gateway token with a new random one
    Rotate(Json),
}

#[derive(Subcommand)]
pub enum DevicesCommand {
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }
}
