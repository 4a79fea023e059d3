//! The daemon's own health checks, for `GET /v1/health` (`gatewayctl health`), and the status
//! report's `health_state` derived from them by [`state`].

use std::time::Duration;

use gateway_proto::api::{HealthCheck, HealthReport, ReloadOutcome};

use crate::core::gateway::{Gateway, Phase};

pub fn report(gw: &Gateway) -> HealthReport {
    let active = gw.active();
    let mut checks = Vec::new();
    let mut check = |name: &str, ok: bool, detail: String| {
        checks.push(HealthCheck { name: name.into(), ok, detail });
    };

    let phase = gw.phase();
    check("listener", phase == Phase::Running, format!("{} on {}", phase.as_str(), gw.listen_addr));

    // The loop is late if it missed two ticks: something blocks the runtime.
    let interval = Duration::from_millis(active.config.gateway.heartbeat.interval_ms.get());
    let since = gw.last_tick.lock().unwrap_or_else(|e| e.into_inner()).map(|t| t.elapsed());
    let since_start = gw.started.elapsed();
    let late = since.unwrap_or(since_start) > interval * 2 + Duration::from_secs(1);
    check(
        "heartbeat",
        !late,
        match since {
            Some(s) => format!("last tick {} ms ago (interval {} ms)", s.as_millis(), interval.as_millis()),
            None => format!("no tick yet (interval {} ms)", interval.as_millis()),
        },
    );

    let last = gw.last_reload.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let config_detail = match last {
        Some(r) if r.outcome == ReloadOutcome::Rejected => format!(
            "generation {} serving; the last edit was rejected: {}",
            active.generation,
            r.errors.first().map(ToString::to_string).unwrap_or(r.message)
        ),
        _ => format!("generation {} in effect", active.generation),
    };
    check("config", true, config_detail);

    // Probed by the heartbeat, not per call: a health check must not touch the disk.
    let state_dir = gw.degraded().map_or(Ok(()), Err);
    check(
        "state_dir",
        state_dir.is_ok(),
        match state_dir {
            Ok(()) => format!("{} writable", gw.paths.state_dir.display()),
            Err(e) => format!("{} not writable: {e}", gw.paths.state_dir.display()),
        },
    );

    let ok = checks.iter().all(|c| c.ok);
    HealthReport { ok, checks }
}

/// `healthy`, `degraded` or `failing`, the reason code that decided it, and every reason found.
/// Failing: not serving (`not_serving`: starting or draining) or a heartbeat late by two ticks
/// (`heartbeat_late`: the runtime is blocked). Degraded: the state dir takes no writes
/// (`state_dir_unwritable`), the last config edit was rejected (`config_rejected`), a channel
/// account keeps failing to connect (`channel_account_failing`: enabled, not connected, three
/// attempts or more). Otherwise healthy (`healthy`).
pub fn state(gw: &Gateway, health: &HealthReport) -> (&'static str, &'static str, Vec<&'static str>) {
    let failed = |name: &str| health.checks.iter().any(|c| c.name == name && !c.ok);
    let mut failing = Vec::new();
    if failed("listener") {
        failing.push("not_serving");
    }
    if failed("heartbeat") {
        failing.push("heartbeat_late");
    }
    let mut degraded = Vec::new();
    if failed("state_dir") {
        degraded.push("state_dir_unwritable");
    }
    let rejected = gw.last_reload.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|r| r.outcome)
        == Some(ReloadOutcome::Rejected);
    if rejected {
        degraded.push("config_rejected");
    }
    let accounts = gw.channels.accounts(&gw.active().config);
    if accounts.values().flatten().any(|a| a.enabled && !a.connected && a.reconnect_attempts >= 3) {
        degraded.push("channel_account_failing");
    }
    let (state, reason) = match (failing.first(), degraded.first()) {
        (Some(r), _) => ("failing", *r),
        (None, Some(r)) => ("degraded", *r),
        (None, None) => ("healthy", "healthy"),
    };
    (state, reason, failing.into_iter().chain(degraded).collect())
}

/// Whether the state dir takes a write: 4 KiB written, synced and removed (creating an empty
/// file works on a full disk too). A full disk is said as such, with its free space. Run by the
/// heartbeat.
pub fn probe_state_dir(dir: &std::path::Path) -> Result<(), String> {
    use std::io::Write;
    let probe = dir.join(format!(".health-probe.{}", std::process::id()));
    let result = std::fs::File::create(&probe).and_then(|mut f| {
        f.write_all(&[0u8; 4096])?;
        f.sync_all()
    });
    let _ = std::fs::remove_file(&probe);
    result.map_err(|e| describe_write_error(dir, &e))
}

/// A failed write in `dir`: `disk full on /var (12 KB free)` when it is that.
pub fn describe_write_error(dir: &std::path::Path, e: &std::io::Error) -> String {
    let space = gateway_proto::disk::Space::of(dir).ok();
    match space {
        Some(space) if gateway_proto::disk::is_full(e) || space.full() => space.describe(),
        _ => e.to_string(),
    }
}
