//! `password set`: the gateway password for auth mode "password". It is read from the terminal
//! without echo (twice), or from standard input with `--stdin`; never from the command line,
//! where other users could see it in the process list.

use std::io::{self, BufRead, IsTerminal, Write};

use anyhow::{bail, Context, Result};
use gateway_config::secret::{hash_password, write_secret_file};
use gateway_proto::exit;
use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};

use super::Ctx;

const MIN_LENGTH: usize = 8;

pub fn set(ctx: &Ctx, from_stdin: bool) -> Result<i32> {
    let password = if from_stdin || !io::stdin().is_terminal() {
        read_line()?
    } else {
        let first = prompt("New gateway password: ")?;
        let again = prompt("Again: ")?;
        if first != again {
            bail!("the two passwords differ; nothing changed");
        }
        first
    };
    if password.chars().count() < MIN_LENGTH {
        bail!("the password must be at least {MIN_LENGTH} characters; nothing changed");
    }
    let client = ctx.client()?;
    match client.set_password(&password) {
        Ok(report) => {
            println!(
                "password changed; {} session(s) ended and {} connection(s) closed: clients must sign in again",
                report.sessions, report.closed_connections
            );
        }
        Err(e) if e.is_not_running() => {
            // No daemon to ask: write the hash it will read at its next start.
            let paths = ctx.private_state_dir()?;
            let file = paths.password_file();
            write_secret_file(&file, &hash_password(&password))
                .with_context(|| format!("cannot write {}", file.display()))?;
            println!(
                "password set in {}; gatewayd is not running and uses it from its next start",
                file.display()
            );
        }
        Err(e) => return Err(e.into()),
    }
    Ok(exit::OK)
}

fn read_line() -> Result<String> {
    let mut line = String::new();
    io::stdin().lock().read_line(&mut line).context("cannot read the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Reads a line from the terminal with echo off, restoring the terminal afterwards.
fn prompt(text: &str) -> Result<String> {
    eprint!("{text}");
    io::stderr().flush().ok();
    let stdin = io::stdin();
    let saved = tcgetattr(&stdin).context("cannot read the terminal settings")?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet).context("cannot turn off echo")?;
    let line = read_line();
    let _ = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
    eprintln!();
    line
}
