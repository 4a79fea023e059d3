//! `status` and `health`: what the running daemon says about itself.

use std::fmt::Write as _;

use anyhow::Result;
use gateway_proto::api::StatusReport;
use gateway_proto::exit;

use super::Ctx;
use crate::output::{ago, duration, now_ms, plural, print_json, reload_summary};

pub fn status(ctx: &Ctx, json: bool) -> Result<i32> {
    let report = ctx.client()?.status()?;
    if json {
        print_json(&report)?;
    } else {
        print!("{}", render(&report, now_ms()));
    }
    warn_on_version_skew(&report.version);
    Ok(exit::OK)
}

/// The two binaries come from one release; a skew usually means a half-done upgrade.
pub fn warn_on_version_skew(daemon: &str) {
    if daemon != gateway_proto::VERSION {
        eprintln!(
            "warning: gatewayd is version {daemon} but gatewayctl is {}: restart gatewayd after an upgrade",
            gateway_proto::VERSION
        );
    }
}

/// Lines of `label: value`, with the values aligned.
struct Block(String);

impl Block {
    fn row(&mut self, label: &str, value: impl AsRef<str>) {
        let _ = writeln!(self.0, "{:<17}{}", format!("{label}:"), value.as_ref());
    }

    /// A continuation line under the previous value.
    fn more(&mut self, value: impl AsRef<str>) {
        let _ = writeln!(self.0, "{:<17}{}", "", value.as_ref());
    }
}

fn render(r: &StatusReport, now: u64) -> String {
    let profile = r.profile.as_deref().map(|p| format!(", profile {p}")).unwrap_or_default();
    let mut b = Block(format!(
        "{}: {} (pid {}, up {}, version {}{profile})\n",
        r.service,
        r.state,
        r.pid,
        duration(r.uptime_ms),
        r.version
    ));
    if let (Some(state), Some(reason)) = (&r.health_state, &r.health_reason_code) {
        let others: Vec<&str> = r.health_reasons.iter().map(String::as_str).filter(|x| x != reason).collect();
        let more = if others.is_empty() { String::new() } else { format!("; also {}", others.join(", ")) };
        b.row("health", if state == "healthy" { state.clone() } else { format!("{state} ({reason}{more})") });
    }
    b.row("listen", format!("{} (bind {})", r.listen.addr, r.listen.bind));
    b.row("auth", &r.auth_mode);
    let absent = if r.config.exists { "" } else { " (not present: defaults)" };
    b.row("config", format!("{}{absent}", r.config.path));
    b.row("generation", format!("{} (reload mode {})", r.config.generation, r.config.reload_mode));
    match &r.last_reload {
        None => b.row("last reload", "none since start"),
        Some(last) => {
            b.row(
                "last reload",
                format!("{} ({}, by {})", reload_summary(last), ago(last.at_ms, now), trigger(last.trigger)),
            );
            for issue in &last.errors {
                b.more(issue.to_string());
            }
        }
    }
    if !r.config.pending_restart.is_empty() {
        b.row(
            "pending restart",
            format!(
                "{} (changed in the file; in effect after a restart of gatewayd)",
                r.config.pending_restart.join(", ")
            ),
        );
    }
    let h = &r.heartbeat;
    let last_tick =
        h.last_tick_ms_ago.map_or("no tick yet".to_owned(), |ms| format!("last {} ago", duration(ms)));
    let watchdog =
        h.watchdog_usec.map_or("watchdog off".to_owned(), |us| format!("watchdog {}", duration(us / 1000)));
    b.row(
        "heartbeat",
        format!("{} every {}, {last_tick}, {watchdog}", plural(h.ticks, "tick"), duration(h.interval_ms)),
    );
    b.row(
        "connections",
        format!(
            "{} http, {} websocket, {} control",
            r.connections.http, r.connections.websocket, r.connections.control
        ),
    );
    let c = &r.counters;
    b.row(
        "requests",
        format!(
            "{} http, {}, {} rate limited",
            c.http_requests,
            plural(c.auth_failures, "auth failure"),
            c.rate_limited_requests
        ),
    );
    b.row(
        "reloads",
        format!(
            "{} applied, {} unchanged, {} rejected",
            c.reloads_applied, c.reloads_unchanged, c.reloads_rejected
        ),
    );
    if let Some(ui) = &r.web_ui {
        let ui_line = if ui.enabled {
            let host = r.listen.addr.replace("0.0.0.0", "127.0.0.1").replace("[::]", "[::1]");
            format!(
                "http://{host}{}/ ({} signed in; `gatewayctl dashboard` signs a browser in)",
                ui.path,
                plural(ui.active_sessions, "browser")
            )
        } else {
            "off (ui.enabled = false)".to_owned()
        };
        b.row("control ui", ui_line);
    }
    if let Some(e) = &r.events {
        let gate = if e.rollout_gate == "pass" {
            "gate pass".to_owned()
        } else {
            format!("gate {} ({})", e.rollout_gate, e.reason_code)
        };
        b.row(
            "scheduled jobs",
            format!(
                "{} ({} enabled, {} running), {gate}; `gatewayctl cron list`",
                e.discovered_events, e.enabled_events, e.queued_now_events
            ),
        );
    }
    b.row("supervisor", &r.supervisor);
    b.row("state dir", &r.paths.state_dir);
    b.row("socket", &r.paths.socket);
    b.0
}

fn trigger(t: gateway_proto::api::ReloadTrigger) -> &'static str {
    use gateway_proto::api::ReloadTrigger::*;
    match t {
        Watcher => "file watcher",
        Signal => "SIGHUP",
        Control => "gatewayctl reload",
        Rpc => "a WebSocket client (config.apply, config.patch, secrets.reload)",
    }
}

pub fn health(ctx: &Ctx, json: bool) -> Result<i32> {
    let client = ctx.client()?;
    let report = client.health()?;
    if json {
        print_json(&report)?;
    } else {
        for check in &report.checks {
            let mark = if check.ok { "ok  " } else { "FAIL" };
            println!("{mark} {}: {}", check.name, check.detail);
        }
    }
    Ok(if report.ok { exit::OK } else { exit::FAILURE })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> StatusReport {
        serde_json::from_value(serde_json::json!({
            "service": "gatewayd", "version": "0.1.0", "pid": 1234, "profile": null,
            "state": "running", "supervisor": "systemd", "started_at_ms": 1000,
            "uptime_ms": 192_000,
            "listen": {"bind": "loopback", "addr": "127.0.0.1:18789", "port": 18789},
            "auth_mode": "token",
            "config": {"path": "/c/gateway.toml", "exists": false, "generation": 2,
                       "reload_mode": "hybrid", "pending_restart": ["gateway.port"]},
            "last_reload": {"trigger": "watcher", "outcome": "rejected", "generation": 2,
                "at_ms": 90_000, "changed_keys": [], "restart_keys": [],
                "errors": [{"file": "/c/gateway.toml", "line": 3, "column": 1,
                            "key": "gateway.prot", "message": "unknown field"}],
                "message": "1 error in /c/gateway.toml"},
            "heartbeat": {"ticks": 7, "interval_ms": 30000, "last_tick_ms_ago": 2500,
                          "watchdog_usec": null},
            "connections": {"http": 2, "control": 1},
            "counters": {"http_requests": 10, "auth_failures": 1, "reloads_applied": 1,
                         "reloads_unchanged": 0, "reloads_rejected": 1},
            "paths": {"state_dir": "/s", "runtime_dir": "/r", "socket": "/r/gatewayd.sock",
                      "log_file": "/s/logs/gatewayd.jsonl"},
            "web_ui": {"enabled": true, "path": "/ui", "active_sessions": 1, "sign_ins": 1,
                       "sign_in_failures": 0},
            "events": {"health_state": "degraded", "rollout_gate": "hold",
                       "reason_code": "failure_streak_threshold", "health_reason": "",
                       "discovered_events": 3, "enabled_events": 2, "queued_now_events": 1}
        }))
        .unwrap()
    }

    #[test]
    fn status_block() {
        let text = render(&report(), 102_000);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "gatewayd: running (pid 1234, up 3m12s, version 0.1.0)");
        assert!(text.contains("config:          /c/gateway.toml (not present: defaults)\n"));
        assert!(text.contains(
            "last reload:     rejected: 1 error in /c/gateway.toml (12s ago, by file watcher)\n                 /c/gateway.toml:3:1: key `gateway.prot`: unknown field\n"
        ), "{text}");
        assert!(text.contains("pending restart: gateway.port"));
        assert!(text.contains("heartbeat:       7 ticks every 30s, last 2s ago, watchdog off"));
        assert!(text.contains("requests:        10 http, 1 auth failure, 0 rate limited\n"), "{text}");
        assert!(text.contains("control ui:      http://127.0.0.1:18789/ui/ (1 browser signed in;"), "{text}");
        let mut one = report();
        one.heartbeat.ticks = 1;
        assert!(render(&one, 102_000).contains("heartbeat:       1 tick every 30s"));
        assert!(
            text.contains("scheduled jobs:  3 (2 enabled, 1 running), gate hold (failure_streak_threshold);"),
            "{text}"
        );
        assert!(text.ends_with("socket:          /r/gatewayd.sock\n"));
    }
}
