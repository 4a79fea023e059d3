//! `logs`: from journald when systemd runs the service; otherwise from the daemon when it
//! answers, else straight from its JSONL file.

use std::io::{self, Write};
use std::path::PathBuf;
use std::thread::sleep;
use std::time::Duration;

use anyhow::{Context, Result};
use gateway_proto::api::LogTail;
use gateway_proto::exit;

use super::service_cmd::Service;
use super::{journal, Ctx};
use crate::client::{self, Client};
use crate::output::log_line;
use crate::service::Manager;
use crate::tail::{last_lines, Follower};

/// The daemon holds a follow request up to this long when there is nothing new.
const WAIT_MS: u64 = 25_000;
const FOLLOW_TIMEOUT: Duration = Duration::from_millis(WAIT_MS + 10_000);
const FILE_POLL: Duration = Duration::from_millis(250);

pub fn logs(ctx: &Ctx, follow: bool, lines: usize, json: bool, since: Option<&str>) -> Result<i32> {
    let svc = Service::new(ctx, false);
    if svc.manager == Manager::Systemd && svc.installed() {
        if let Some(code) = journal::show(&ctx.profile, follow, lines, json, since)? {
            return Ok(code);
        }
    }
    let cutoff = since.map(journal::cutoff).transpose()?;
    let keep = |lines: Vec<String>| match &cutoff {
        Some(c) => lines.into_iter().filter(|l| journal::at_or_after(l, c)).collect(),
        None => lines,
    };
    let client = ctx.client()?;
    match client.log_tail(lines) {
        Ok(mut tail) => {
            tail.lines = keep(std::mem::take(&mut tail.lines));
            print_lines(&tail.lines, json)?;
            if follow {
                follow_daemon(&client, tail, json)?;
            }
            Ok(exit::OK)
        }
        Err(e) if e.is_not_running() => from_file(ctx.paths()?.log_file(), follow, lines, json, e, keep),
        Err(e) => Err(e.into()),
    }
}

/// Long-polls the daemon; when it goes away, carries on in the file it was serving.
fn follow_daemon(client: &Client, mut tail: LogTail, json: bool) -> Result<()> {
    loop {
        match client.log_after(tail.cursor, WAIT_MS, FOLLOW_TIMEOUT) {
            Ok(next) => {
                if next.reset {
                    eprintln!("-- {} was rotated; reading it from the start --", next.file);
                }
                print_lines(&next.lines, json)?;
                tail = next;
            }
            Err(e) if e.is_not_running() => {
                eprintln!("-- gatewayd stopped answering; following {} directly --", tail.file);
                return follow_file(Follower::new(PathBuf::from(&tail.file), tail.cursor), json);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// `down` is why the daemon could not be asked; it is the error when there is no file either.
fn from_file(
    path: PathBuf,
    follow: bool,
    lines: usize,
    json: bool,
    down: client::Error,
    keep: impl Fn(Vec<String>) -> Vec<String>,
) -> Result<i32> {
    match last_lines(&path, lines) {
        Ok((last, end)) => {
            eprintln!("-- gatewayd is not running; reading {} --", path.display());
            print_lines(&keep(last), json)?;
            if follow {
                follow_file(Follower::new(path, end), json)?;
            }
            Ok(exit::OK)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound && follow => {
            eprintln!(
                "-- gatewayd is not running and {} does not exist yet; waiting for it --",
                path.display()
            );
            follow_file(Follower::new(path, 0), json)?;
            Ok(exit::OK)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(anyhow::Error::new(down)
                .context(format!("no log to show (no log file at {})", path.display())))
        }
        Err(e) => Err(e).with_context(|| format!("cannot read the log file {}", path.display())),
    }
}

/// Runs until interrupted (Ctrl-C) or stdout closes.
fn follow_file(mut follower: Follower, json: bool) -> Result<()> {
    loop {
        let batch = follower
            .poll()
            .with_context(|| format!("cannot read the log file {}", follower.path().display()))?;
        if batch.reset {
            eprintln!("-- {} was rotated; reading it from the start --", follower.path().display());
        }
        print_lines(&batch.lines, json)?;
        sleep(FILE_POLL);
    }
}

fn print_lines(lines: &[String], json: bool) -> Result<()> {
    let mut out = io::stdout().lock();
    for line in lines {
        if json {
            writeln!(out, "{line}")?;
        } else {
            writeln!(out, "{}", log_line(line))?;
        }
    }
    out.flush()?;
    Ok(())
}
