//! `stop` and `reload`: requests that change the running daemon, and waiting for their effect.

use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use gateway_proto::api::{ReloadOutcome, ReloadReport, StatusReport};
use gateway_proto::exit;

use super::Ctx;
use crate::client::{Client, Error};
use crate::output::{print_json, reload_summary};

const STOP_DEADLINE: Duration = Duration::from_secs(30);
const RESTART_DEADLINE: Duration = Duration::from_secs(60);
/// A reload is synchronous; reading a file and swapping config is quick, but leave room.
const POLL_EVERY: Duration = Duration::from_millis(100);
const POLL_TIMEOUT: Duration = Duration::from_secs(1);

pub fn stop(ctx: &Ctx) -> Result<i32> {
    let client = ctx.client()?;
    let pid = client.stop()?.pid;
    let deadline = Instant::now() + STOP_DEADLINE;
    // It drains in-flight requests first; it is gone once the socket stops answering.
    loop {
        sleep(POLL_EVERY);
        match poll_status(&client) {
            Err(e) if e.is_gone() => break,
            Ok(s) if s.pid != pid => {
                println!(
                    "gatewayd stopped (pid {pid}); its supervisor started a new one (pid {})",
                    s.pid
                );
                return Ok(exit::OK);
            }
            _ if Instant::now() >= deadline => bail!(
                "gatewayd (pid {pid}) still answers {}s after the stop request: it may be stuck draining \
                 (gateway.shutdown.drain_timeout_ms). See `gatewayctl logs`, or end it with: kill -TERM {pid}",
                STOP_DEADLINE.as_secs()
            ),
            _ => {}
        }
    }
    println!("gatewayd stopped (pid {pid})");
    Ok(exit::OK)
}

pub fn reload(ctx: &Ctx, wait: bool, json: bool) -> Result<i32> {
    let client = ctx.client()?;
    // What "restarted" means is judged against the daemon as it was before the request.
    let before = if wait { Some(client.status()?) } else { None };
    let report = client.reload()?;
    show_reload(&report, json, "gatewayctl reload")?;
    match (report.outcome, before) {
        (ReloadOutcome::Rejected, _) => Ok(exit::CONFIG),
        (ReloadOutcome::Restarting, Some(before)) => {
            let after = wait_for_restart(&client, &before, false)?;
            if !json {
                println!("restarted: pid {}, generation {}", after.pid, after.config.generation);
            }
            Ok(exit::OK)
        }
        (ReloadOutcome::Restarting, None) if !json => {
            println!("`gatewayctl status` shows when it is back (or use `gatewayctl reload --wait`)");
            Ok(exit::OK)
        }
        _ => Ok(exit::OK),
    }
}

/// Prints a reload's report: JSON, or its summary (a rejection's errors on stderr, with what to
/// run again once they are fixed).
pub fn show_reload(report: &ReloadReport, json: bool, again: &str) -> Result<()> {
    if json {
        print_json(report)?;
    } else if report.outcome == ReloadOutcome::Rejected {
        eprintln!("{}", reload_summary(report));
        for issue in &report.errors {
            eprintln!("  {issue}");
        }
        eprintln!("the config in effect keeps serving; fix what is named and run `{again}` again");
    } else {
        println!("{}", reload_summary(report));
    }
    Ok(())
}

/// Polls until a daemon started after `before` is ready; returns its status. `in_place`: it
/// re-executes itself (same pid), so that pid gone means it failed to come back.
pub fn wait_for_restart(client: &Client, before: &StatusReport, in_place: bool) -> Result<StatusReport> {
    let deadline = Instant::now() + RESTART_DEADLINE;
    loop {
        sleep(POLL_EVERY);
        let last = match poll_status(client) {
            Ok(s)
                if s.state == "running"
                    && (s.started_at_ms > before.started_at_ms || s.pid != before.pid) =>
            {
                return Ok(s)
            }
            other => other,
        };
        let gone = nix::sys::signal::kill(nix::unistd::Pid::from_raw(before.pid as i32), None).is_err();
        if in_place && gone && last.is_err() {
            bail!("gatewayd (pid {}) exited while restarting", before.pid);
        }
        if Instant::now() >= deadline {
            let secs = RESTART_DEADLINE.as_secs();
            return match last {
                Err(e) if e.is_not_running() => Err(anyhow::Error::new(e).context(format!(
                    "gatewayd did not come back within {secs}s of restarting (see `gatewayctl logs`)"
                ))),
                _ => bail!(
                    "gatewayd (pid {}) has not finished restarting after {secs}s; see `gatewayctl status` and `gatewayctl logs`",
                    before.pid
                ),
            };
        }
    }
}

pub fn poll_status(client: &Client) -> Result<StatusReport, Error> {
    client.status_within(POLL_TIMEOUT)
}
