//! `channels status [--probe]` and `pairing list|approve|reject`: the chat channel accounts as
//! the running daemon sees them (or, when it is not running, as its config sets them up), and
//! the pairing codes unknown senders got.

use anyhow::{bail, Context, Result};
use gateway_config::load_file;
use gateway_proto::exit;
use serde_json::{json, Value};

use super::Ctx;
use crate::output::{ago, duration, print_json};

/// The channels this gatewayctl knows (as the daemon's `channelOrder` lists them).
const CHANNELS: &[&str] = &["irc", "matrix", "telegram"];

pub fn status(ctx: &Ctx, probe: bool, json: bool) -> Result<i32> {
    let report = match ctx.client()?.channels(probe) {
        Ok(report) => report,
        Err(e) if e.is_not_running() => return config_only(ctx, json),
        Err(e) => return Err(e.into()),
    };
    if json {
        print_json(&report)?;
        return Ok(exit::OK);
    }
    let now = gateway_proto::time::now_ms();
    let mut any = false;
    let mut failing = false;
    for channel in report["channelOrder"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        let label = report["channelLabels"][channel].as_str().unwrap_or(channel);
        for a in report["channelAccounts"][channel].as_array().into_iter().flatten() {
            any = true;
            let id = a["accountId"].as_str().unwrap_or("?");
            let state = if !a["enabled"].as_bool().unwrap_or(true) {
                "disabled".to_owned()
            } else if a["connected"].as_bool().unwrap_or(false) {
                let since = a["lastConnectedAt"]
                    .as_u64()
                    .map(|t| format!(" (since {})", ago(t, now)))
                    .unwrap_or_default();
                format!("connected as {}{since}", a["name"].as_str().unwrap_or("?"))
            } else if a["running"].as_bool().unwrap_or(false) {
                failing = true;
                format!("connecting (attempt {})", a["reconnectAttempts"].as_u64().unwrap_or(0) + 1)
            } else {
                "not running".to_owned()
            };
            println!("{label} {id}: {state}");
            if let Some(err) = a["lastError"].as_str() {
                println!("    last error: {err}");
            }
            let when = |key: &str| a[key].as_u64().map_or("never".to_owned(), |t| ago(t, now));
            println!("    last message in: {}, out: {}", when("lastInboundAt"), when("lastOutboundAt"));
            if let Some(n) = a["pendingReplies"].as_u64().filter(|n| *n > 0) {
                println!("    {n} replies waiting to be sent");
            }
            if probe {
                match &a["probe"] {
                    Value::Object(p) if p["ok"].as_bool() == Some(true) => {
                        println!("    probe: works ({})", duration(p["elapsedMs"].as_u64().unwrap_or(0)));
                    }
                    Value::Object(p) => {
                        failing = true;
                        println!("    probe failed: {}", p["error"].as_str().unwrap_or("unknown error"));
                    }
                    _ => println!("    probe: not run (the account is disabled)"),
                }
            }
        }
    }
    if !any {
        println!("no channel accounts: add one as [channels.<irc|matrix|telegram>.accounts.<id>] (docs/channels.md)");
    }
    Ok(if probe && failing { exit::FAILURE } else { exit::OK })
}

/// One account as `status --deep` and `doctor` judge it.
#[derive(Debug, serde::Serialize)]
pub struct AccountState {
    pub channel: String,
    pub account: String,
    pub connected: bool,
    /// Running but not connected after several attempts.
    pub failing: bool,
    pub last_error: Option<String>,
}

/// Each account of a `channels.status` answer.
pub fn account_states(report: &Value) -> Vec<AccountState> {
    let mut out = Vec::new();
    for channel in report["channelOrder"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        for a in report["channelAccounts"][channel].as_array().into_iter().flatten() {
            let connected = a["connected"].as_bool().unwrap_or(false);
            let enabled = a["enabled"].as_bool().unwrap_or(true);
            out.push(AccountState {
                channel: channel.to_owned(),
                account: a["accountId"].as_str().unwrap_or("?").to_owned(),
                connected,
                failing: enabled && !connected && a["reconnectAttempts"].as_u64().unwrap_or(0) >= 3,
                last_error: a["lastError"].as_str().map(str::to_owned),
            });
        }
    }
    out
}

/// One line for `status --deep`: every account and whether it is connected.
pub fn summary(states: &[AccountState]) -> String {
    if states.is_empty() {
        return "none configured".to_owned();
    }
    states
        .iter()
        .map(|s| {
            let state = if s.connected {
                "connected".to_owned()
            } else {
                format!("not connected ({})", s.last_error.as_deref().unwrap_or("connecting"))
            };
            format!("{} {} {state}", s.channel, s.account)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// What the config sets up, said to be only that.
fn config_only(ctx: &Ctx, json: bool) -> Result<i32> {
    let paths = ctx.paths()?;
    let loaded = load_file(&paths.config_file)
        .map_err(|issues| {
            anyhow::anyhow!("{}", issues.iter().map(|i| i.to_string()).collect::<Vec<_>>().join("\n"))
        })
        .with_context(|| format!("cannot read the config {}", paths.config_file.display()))?;
    let accounts: Vec<Value> = loaded
        .config
        .channels
        .irc
        .accounts
        .iter()
        .map(|(id, a)| {
            json!({
                "channel": "irc", "accountId": id, "enabled": a.enabled, "nick": a.nick,
                "server": format!("{}:{}", a.host, a.port()), "tls": a.tls,
                "dmPolicy": a.dm_policy.as_str(), "groupPolicy": a.group_policy.as_str(),
            })
        })
        .chain(loaded.config.channels.matrix.accounts.iter().map(|(id, a)| {
            json!({
                "channel": "matrix", "accountId": id, "enabled": a.enabled, "user": a.user_id,
                "homeserver": a.homeserver,
                "dmPolicy": a.dm_policy.as_str(), "groupPolicy": a.group_policy.as_str(),
            })
        }))
        .chain(loaded.config.channels.telegram.accounts.iter().map(|(id, a)| {
            json!({
                "channel": "telegram", "accountId": id, "enabled": a.enabled,
                "mode": format!("{:?}", a.mode).to_lowercase(),
                "dmPolicy": a.dm_policy.as_str(), "groupPolicy": a.group_policy.as_str(),
            })
        }))
        .collect();
    if json {
        print_json(&json!({ "running": false, "accounts": accounts }))?;
        return Ok(exit::OK);
    }
    println!(
        "gatewayd is not running: this is what {} sets up, nothing is connected",
        paths.config_file.display()
    );
    if accounts.is_empty() {
        println!("no channel accounts: add one as [channels.<irc|matrix|telegram>.accounts.<id>] (docs/channels.md)");
    }
    for a in accounts.iter().filter(|a| a["channel"] == "matrix") {
        println!(
            "Matrix {}: {} on {}{}, direct messages: {}, rooms: {}",
            a["accountId"].as_str().unwrap_or("?"),
            a["user"].as_str().unwrap_or("?"),
            a["homeserver"].as_str().unwrap_or("?"),
            if a["enabled"].as_bool() == Some(false) { ", disabled" } else { "" },
            a["dmPolicy"].as_str().unwrap_or("?"),
            a["groupPolicy"].as_str().unwrap_or("?"),
        );
    }
    for a in accounts.iter().filter(|a| a["channel"] == "telegram") {
        println!(
            "Telegram {}: {}{}, direct messages: {}, groups: {}",
            a["accountId"].as_str().unwrap_or("?"),
            a["mode"].as_str().unwrap_or("?"),
            if a["enabled"].as_bool() == Some(false) { ", disabled" } else { "" },
            a["dmPolicy"].as_str().unwrap_or("?"),
            a["groupPolicy"].as_str().unwrap_or("?"),
        );
    }
    for a in accounts.iter().filter(|a| a["channel"] == "irc") {
        println!(
            "IRC {}: {} @ {}{}{}, direct messages: {}, channels: {}",
            a["accountId"].as_str().unwrap_or("?"),
            a["nick"].as_str().unwrap_or("?"),
            a["server"].as_str().unwrap_or("?"),
            if a["tls"].as_bool() == Some(true) { " (TLS)" } else { "" },
            if a["enabled"].as_bool() == Some(false) { ", disabled" } else { "" },
            a["dmPolicy"].as_str().unwrap_or("?"),
            a["groupPolicy"].as_str().unwrap_or("?"),
        );
    }
    Ok(exit::OK)
}

pub fn pairing_list(ctx: &Ctx, json: bool) -> Result<i32> {
    let report = ctx.client()?.pairing()?;
    if json {
        print_json(&report)?;
        return Ok(exit::OK);
    }
    if report.requests.is_empty() {
        println!("no pairing requests waiting");
    }
    let now = gateway_proto::time::now_ms();
    for r in &report.requests {
        let left = r.expires_at_ms.saturating_sub(now) / 60_000;
        println!(
            "{} {}  {}  from {}  asked {}, expires in {left} min  (gatewayctl pairing approve {} {})",
            r.channel,
            r.account,
            r.code,
            r.display,
            ago(r.created_at_ms, now),
            r.channel,
            r.code
        );
    }
    Ok(exit::OK)
}

pub fn settle(ctx: &Ctx, channel: &str, code: &str, approve: bool) -> Result<i32> {
    if !CHANNELS.contains(&channel) {
        bail!("unknown channel {channel:?}: the channels are {}", CHANNELS.join(", "));
    }
    if code.len() != 8 || !code.chars().all(|c| c.is_ascii_alphanumeric()) {
        bail!(
            "invalid pairing code {:?}: give the 8 characters the sender got (gatewayctl pairing list)",
            gateway_proto::quote::short(code)
        );
    }
    let request = ctx.client()?.settle_pairing(channel, &code.to_ascii_uppercase(), approve)?;
    if approve {
        println!(
            "approved: {} on {} {} may talk to the assistant now",
            request.display, request.channel, request.account
        );
    } else {
        println!(
            "rejected: {} on {} {} (they may ask again)",
            request.display, request.channel, request.account
        );
    }
    Ok(exit::OK)
}
