//! The whole command line of gatewayctl, as a clap definition that depends only on clap and
//! gateway-proto, so that man pages and shell completions can be generated from it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub const EXIT_CODES: &str = "\
Exit codes:
  0   ok
  1   failure; `status --deep`: a problem found; `doctor`: warnings
  2   usage error; `doctor`: errors
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
    Status {
        /// Also ask the service manager, probe the control socket and the TCP port, find who holds
        /// the port and other gateways on this host, and give a verdict; exit 1 unless healthy
        #[arg(long)]
        deep: bool,
        #[command(flatten)]
        json: Json,
    },
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
    /// Install gatewayd as a service (systemd user unit, or launchd agent), enable and start it
    Install {
        /// The hardened system unit in /etc/systemd/system (as root), run by a dynamic user
        #[arg(long)]
        system: bool,
        /// Replace an existing unit file that gatewayctl did not write (a copy is kept as .bak)
        #[arg(long)]
        force: bool,
    },
    /// Stop and disable the service and remove its unit; config and state stay unless --purge
    Uninstall {
        /// The system unit installed with `install --system`
        #[arg(long)]
        system: bool,
        /// Also delete the instance's config and state dirs (token, paired devices, logs)
        #[arg(long)]
        purge: bool,
    },
    /// Start gatewayd: through the service manager when installed, else detached in the background
    ///
    /// A unit that failed, or that systemd gave up on after a crash loop, is cleared first
    /// (reset-failed). An invalid config is refused (exit 78), with each error located.
    Start,
    /// Stop gatewayd gracefully (through the service manager when installed) and wait until it has exited
    Stop,
    /// Restart gatewayd and wait until the new process is ready
    ///
    /// A failed unit is cleared first. With an invalid config nothing is restarted (exit 78) and
    /// a running gatewayd keeps running. Concurrent restarts are serialized, and one that waited
    /// for another does not restart again.
    Restart,
    /// Check the service, files, port and host for problems; --fix repairs what is safe
    Doctor {
        /// Repair what is safe: rewrite a drifted unit (keeping a backup), enable it, fix
        /// permissions, remove a stale socket, restart
        #[arg(long)]
        fix: bool,
        /// With --fix: do not ask before repairing
        #[arg(long, requires = "fix")]
        yes: bool,
        #[command(flatten)]
        json: Json,
    },
    /// Show gatewayd's log: from journald under systemd, else from gatewayd or its log file
    Logs {
        /// Keep printing new lines until interrupted
        #[arg(short, long)]
        follow: bool,
        /// How many of the last lines to show
        #[arg(short = 'n', long, default_value_t = 100, value_name = "N")]
        lines: usize,
        /// Only entries since T: YYYY-MM-DD[THH:MM[:SS]] (UTC) or a time ago (15m, 2h, 1d); from
        /// journald, anything `journalctl --since` takes
        #[arg(long, value_name = "T")]
        since: Option<String>,
        /// Print the raw JSON lines (journald's JSON when the log comes from the journal)
        #[arg(long)]
        json: bool,
    },
    /// Find, show and check the config file
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a link that signs a browser in to the Control UI (once, within 2 minutes), and open it
    Dashboard {
        /// Only print the link; do not start a browser
        #[arg(long)]
        no_open: bool,
        /// Print {url, ui_url, expires_at_ms, opened} as JSON
        #[arg(long)]
        json: bool,
    },
    /// Show or replace the gateway token that clients present
    #[command(subcommand)]
    Token(TokenCommand),
    /// List paired devices and pairing requests; approve, reject or revoke them
    #[command(subcommand)]
    Devices(DevicesCommand),
    /// Set the gateway password (auth mode "password")
    #[command(subcommand)]
    Password(PasswordCommand),
    /// Re-read secret references, or audit where each secret comes from
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// List or end the sign-in sessions: Control UI browsers, and tokens handed out for the password
    #[command(subcommand, alias = "sessions")]
    Signins(SigninsCommand),
    /// The chat channel accounts (IRC): connected or not, and why; --probe checks each
    #[command(subcommand)]
    Channels(ChannelsCommand),
    /// Chat channel pairing: list the codes unknown senders got, approve or reject one
    #[command(subcommand)]
    Pairing(PairingCommand),
    /// Scheduled jobs: agent turns at a time, every interval, or on a cron expression
    #[command(subcommand)]
    Cron(CronCommand),
    /// Remote access: check the config against a remote-access profile, print the steps to get there
    #[command(subcommand)]
    Remote(RemoteCommand),
}

/// A job's definition on the command line (`cron add`; `cron edit` changes what is given).
#[derive(Args, Default)]
pub struct JobArgs {
    /// The job's name (unique; letters, digits, '-', '_', '.'); add: job-<id> when not given
    #[arg(long)]
    pub name: Option<String>,
    /// Run once at this time: RFC 3339 (2026-12-24T18:00:00+01:00) or from now (+20m, +2s)
    #[arg(long, value_name = "TIME", group = "when")]
    pub at: Option<String>,
    /// Run every interval: 30s, 5m, 1h, 1d (at least 1s)
    #[arg(long, value_name = "INTERVAL", group = "when")]
    pub every: Option<String>,
    /// Run on a cron expression: 5 fields, or 6 with seconds first ("0 7 * * 1-5")
    #[arg(long, value_name = "EXPR", group = "when")]
    pub cron: Option<String>,
    /// The IANA time zone of --cron (Europe/Paris); UTC when not given
    #[arg(long, value_name = "ZONE", requires = "cron")]
    pub tz: Option<String>,
    /// What the agent is asked to do
    #[arg(long, value_name = "TEXT")]
    pub message: Option<String>,
    /// Run in this session (the conversation goes on from run to run)
    #[arg(long, value_name = "KEY", group = "target")]
    pub session: Option<String>,
    /// Run in a fresh session each time (the default)
    #[arg(long, group = "target")]
    pub isolated: bool,
    /// Run in the default agent's main session
    #[arg(long, group = "target")]
    pub main: bool,
    /// The agent (default: main)
    #[arg(long)]
    pub agent: Option<String>,
    /// The model, provider/model (default: the agent's)
    #[arg(long)]
    pub model: Option<String>,
    /// Where the answer goes: none, webhook:<URL>, or <channel>[/<account>]:<peer> (irc:alice)
    #[arg(long, value_name = "TARGET")]
    pub deliver: Option<String>,
    /// A run missed while gatewayd was down: run it once after start, or skip it
    #[arg(long, value_parser = ["run_once", "skip"])]
    pub missed: Option<String>,
    /// History kept: this many runs ...
    #[arg(long, value_name = "N")]
    pub keep_runs: Option<u32>,
    /// ... and runs younger than this many days
    #[arg(long, value_name = "DAYS")]
    pub keep_days: Option<u32>,
}

#[derive(Subcommand)]
pub enum CronCommand {
    /// The scheduler: jobs, runs going, the next run, and the rollout gate
    Status(Json),
    /// Every job: id, name, schedule, next run, last outcome
    List(Json),
    /// One job (by id or name), in full
    Show {
        job: String,
        #[command(flatten)]
        json: Json,
    },
    /// Add a job: one of --at, --every, --cron, and --message
    Add {
        #[command(flatten)]
        job: Box<JobArgs>,
        /// Add it disabled
        #[arg(long)]
        disabled: bool,
        #[command(flatten)]
        json: Json,
    },
    /// Change a job added with `cron add` (a [[cron.jobs]] entry is changed in the config file)
    Edit {
        job: String,
        #[command(flatten)]
        args: Box<JobArgs>,
        #[command(flatten)]
        json: Json,
    },
    /// Remove a job and its history
    Rm { job: String },
    /// Run a job now, whatever its schedule, and wait for it to end
    Run {
        job: String,
        /// Return once it started
        #[arg(long)]
        no_wait: bool,
        /// Stop waiting after this long (the run goes on)
        #[arg(long, default_value = "10m", value_name = "DURATION")]
        timeout: String,
        #[command(flatten)]
        json: Json,
    },
    /// The runs, newest first: of one job, or of all
    Runs {
        job: Option<String>,
        /// At most this many
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[command(flatten)]
        json: Json,
    },
    /// Let a job run on its schedule again
    Enable { job: String },
    /// Keep a job from running on its schedule (`cron run` still runs it)
    Disable { job: String },
}

#[derive(Subcommand)]
pub enum RemoteCommand {
    /// Check the config against a remote-access profile: gate pass or hold, risk, reasons and
    /// recommendations (reads the config; gatewayd need not run)
    Inspect {
        /// local-only, password-remote, proxy-remote, tailscale-serve or tailscale-funnel
        /// [default: remote.profile in the config]; `--profile P` works too
        #[arg(value_name = "PROFILE")]
        remote_profile: Option<String>,
        #[command(flatten)]
        json: Json,
    },
    /// The steps to reach this gateway under a profile, with preflight checks and the exact
    /// commands; refuses (exit 78) with the reasons when the gate holds
    Plan {
        /// local-only, password-remote, proxy-remote, tailscale-serve or tailscale-funnel
        /// [default: remote.profile in the config]; `--profile P` works too
        #[arg(value_name = "PROFILE")]
        remote_profile: Option<String>,
        #[command(flatten)]
        json: Json,
    },
}

#[derive(Subcommand)]
pub enum ChannelsCommand {
    /// Each account's state; without a running gatewayd, what the config sets up
    Status {
        /// Check each account's credentials and connectivity now (up to 20 s)
        #[arg(long)]
        probe: bool,
        /// Print the JSON the gateway answers (channelOrder, channels, channelAccounts, ...)
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum PairingCommand {
    /// The pairing requests waiting for you: channel, account, sender, code, expiry
    List(Json),
    /// Let the sender of CODE talk to the assistant from now on
    Approve {
        /// The channel: irc, matrix or telegram
        channel: String,
        /// The 8-character code the sender got
        code: String,
    },
    /// Refuse the sender of CODE (they may ask again later)
    Reject {
        /// The channel: irc, matrix or telegram
        channel: String,
        /// The 8-character code the sender got
        code: String,
    },
}

#[derive(Subcommand)]
pub enum PasswordCommand {
    /// Set a new password (asked twice without echo, or read from standard input); it ends all sign-in sessions
    Set {
        /// Read the password from the first line of standard input
        #[arg(long)]
        stdin: bool,
    },
}

#[derive(Subcommand)]
pub enum SecretsCommand {
    /// Re-read every env: and file: secret reference now (a reload); exit 78 if one does not resolve
    Reload(Json),
    /// Where each secret comes from (literal, env:, file:, environment, state dir), whether it
    /// resolves, and file modes; never a value. Exit 1 if something is wrong
    Audit(Json),
}

#[derive(Subcommand)]
pub enum SigninsCommand {
    /// Show live sign-in sessions: id, kind (browser or bearer), age, expiry, and who created them
    List(Json),
    /// End a sign-in session: its cookie or token stops working and its connections are closed
    Revoke {
        /// The sign-in session id shown by `signins list`
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
