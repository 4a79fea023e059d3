//! gatewayctl: the control client of gatewayd. It talks HTTP to the daemon's Unix socket, and
//! falls back to the files (config, token, log) when the daemon is not running.

mod client;
mod commands;
mod control_api;
mod http;
mod output;
mod service;
mod tail;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use gateway_proto::{exit, Profile};
use gatewayctl::cli::{
    ChannelsCommand, Cli, Command, ConfigCommand, DevicesCommand, PairingCommand, PasswordCommand,
    RemoteCommand, SecretsCommand, SigninsCommand, TokenCommand,
};

use commands::{
    channels, config_cmd, cron, dashboard, deep, devices, doctor, lifecycle, logs, password, remote, secrets,
    service_cmd, signins, status, token, Ctx,
};

fn main() -> ExitCode {
    restore_sigpipe();
    let cli = Cli::parse();
    // `remote inspect --profile tailscale-serve`: there, --profile may name a remote-access
    // profile rather than an instance.
    let remote_flag = match (&cli.command, cli.instance.profile.as_deref()) {
        (Command::Remote(_), Some(p)) if gateway_config::RemoteProfile::parse(p).is_some() => {
            Some(p.to_owned())
        }
        _ => None,
    };
    let instance = if remote_flag.is_some() { None } else { cli.instance.profile.as_deref() };
    let profile = match Profile::new(instance, cli.instance.dev) {
        Ok(p) => p,
        Err(e) => Cli::command().error(clap::error::ErrorKind::InvalidValue, e).exit(),
    };
    let ctx = Ctx { profile };
    let code = match run(&ctx, cli.command, remote_flag.as_deref()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("gatewayctl: {err:#}");
            exit_code(&err)
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn run(ctx: &Ctx, command: Command, remote_flag: Option<&str>) -> anyhow::Result<i32> {
    match command {
        Command::Status { deep: true, json } => deep::deep(ctx, json.json),
        Command::Status { deep: false, json } => status::status(ctx, json.json),
        Command::Health(j) => status::health(ctx, j.json),
        Command::Reload { wait, json } => lifecycle::reload(ctx, wait, json.json),
        Command::Install { system, force } => service_cmd::install(ctx, system, force),
        Command::Uninstall { system, purge } => service_cmd::uninstall(ctx, system, purge),
        Command::Start => service_cmd::start(ctx),
        Command::Stop => match service_cmd::stop_service(ctx)? {
            true => Ok(exit::OK),
            false => lifecycle::stop(ctx),
        },
        Command::Restart => service_cmd::restart(ctx),
        Command::Doctor { fix, yes, json } => doctor::doctor(ctx, fix, yes, json.json),
        Command::Logs { follow, lines, since, json } => {
            logs::logs(ctx, follow, lines, json, since.as_deref())
        }
        Command::Config(c) => match c {
            ConfigCommand::Path => config_cmd::path(ctx),
            ConfigCommand::Show(j) => config_cmd::show(ctx, j.json),
            ConfigCommand::Validate { file } => config_cmd::validate(ctx, file),
            ConfigCommand::Schema => config_cmd::schema(),
        },
        Command::Secrets(c) => match c {
            SecretsCommand::Reload(j) => secrets::reload(ctx, j.json),
            SecretsCommand::Audit(j) => secrets::audit(ctx, j.json),
        },
        Command::Dashboard { no_open, json } => dashboard::dashboard(ctx, no_open, json),
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
        Command::Signins(c) => match c {
            SigninsCommand::List(j) => signins::list(ctx, j.json),
            SigninsCommand::Revoke { id } => signins::revoke(ctx, &id),
        },
        Command::Channels(ChannelsCommand::Status { probe, json }) => channels::status(ctx, probe, json),
        Command::Cron(c) => cron::run(ctx, c),
        Command::Remote(RemoteCommand::Inspect { remote_profile, json }) => {
            remote::run(ctx, remote_profile.as_deref(), remote_flag, json.json, false)
        }
        Command::Remote(RemoteCommand::Plan { remote_profile, json }) => {
            remote::run(ctx, remote_profile.as_deref(), remote_flag, json.json, true)
        }
        Command::Pairing(c) => match c {
            PairingCommand::List(j) => channels::pairing_list(ctx, j.json),
            PairingCommand::Approve { channel, code } => channels::settle(ctx, &channel, &code, true),
            PairingCommand::Reject { channel, code } => channels::settle(ctx, &channel, &code, false),
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
