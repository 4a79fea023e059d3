//! The daemon's own health checks, for `GET /v1/health` (`gatewayctl health`), and the status
//! report's `health_state` derived from them by [`state`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;

use gateway_proto::api::{HealthCheck, HealthReport, ReloadOutcome};
use gateway_proto::time::now_ms;
use serde_json::value::RawValue;

use crate::core::gateway::{Gateway, Phase};

/// What the checks are made of: while it stays the same, so do the checks.
#[derive(Clone, PartialEq)]
struct Inputs {
    phase: Phase,
    last_tick: Option<Instant>,
    /// The loop missed two ticks: something blocks the runtime.
    late: bool,
    generation: u64,
    /// When the last reload ended and how (its report is only read when these change).
    reload: Option<(u64, ReloadOutcome)>,
    /// Why the state dir takes no writes, if it does not.
    degraded: Option<String>,
}

impl Inputs {
    /// What the checks are made of, at `now`. Every probe asks, so nothing here writes to
    /// memory other threads read (no lock, no reference count): on a busy gateway the workers
    /// would pass those cache lines back and forth on every probe.
    fn of(gw: &Gateway, now: Instant) -> Self {
        let active = gw.active();
        let interval = Duration::from_millis(active.config.gateway.heartbeat.interval_ms.get());
        let last_tick = gw.last_tick.load().as_deref().copied();
        let since = now.saturating_duration_since(last_tick.unwrap_or(gw.started));
        Self {
            phase: gw.phase(),
            last_tick,
            late: since > interval * 2 + Duration::from_secs(1),
            generation: active.generation,
            reload: gw.last_reload.load().as_deref().map(|r| (r.at_ms, r.outcome)),
            degraded: gw.degraded(),
        }
    }
}

/// The last checks [`with_checks`] made, with what they were made of.
#[derive(Default)]
pub struct ChecksCache(ArcSwapOption<Made>);

/// Checks, and what they were made of.
struct Made {
    inputs: Inputs,
    checks: Checks,
}

/// The checks of [`report`], serialized, and whether all passed.
pub struct Checks {
    pub ok: bool,
    pub json: Box<RawValue>,
}

/// Answers a health probe at `now` from the checks as JSON: made again only when what they are
/// made of changed (formatting and serializing them was most of a probe's cost), and always
/// when the heartbeat is late, whose detail says how late.
pub fn with_checks<R>(gw: &Gateway, now: Instant, answer: impl FnOnce(&Checks) -> R) -> R {
    let inputs = Inputs::of(gw, now);
    if let Some(made) = gw.health_checks.0.load().as_deref().filter(|made| made.inputs == inputs) {
        return answer(&made.checks);
    }
    let report = build(gw, &inputs);
    let json = serde_json::value::to_raw_value(&report.checks).expect("checks serialize");
    let checks = Checks { ok: report.ok, json };
    if inputs.late {
        return answer(&checks);
    }
    let made = Arc::new(Made { inputs, checks });
    gw.health_checks.0.store(Some(made.clone()));
    answer(&made.checks)
}

/// The checks, made now.
pub fn report(gw: &Gateway) -> HealthReport {
    build(gw, &Inputs::of(gw, Instant::now()))
}

fn build(gw: &Gateway, inputs: &Inputs) -> HealthReport {
    let active = gw.active();
    let mut checks = Vec::new();
    let mut check = |name: &str, ok: bool, detail: String| {
        checks.push(HealthCheck { name: name.into(), ok, detail });
    };

    check(
        "listener",
        inputs.phase == Phase::Running,
        format!("{} on {}", inputs.phase.as_str(), gw.listen_addr),
    );

    let interval = active.config.gateway.heartbeat.interval_ms.get();
    check(
        "heartbeat",
        !inputs.late,
        match inputs.last_tick {
            // As a time, not an age: the detail holds until the next tick.
            Some(at) if !inputs.late => format!(
                "last tick at {} (interval {interval} ms)",
                gateway_proto::time::rfc3339_millis(now_ms().saturating_sub(at.elapsed().as_millis() as u64))
            ),
            Some(at) => {
                format!("late: last tick {} ms ago (interval {interval} ms)", at.elapsed().as_millis())
            }
            None => format!("no tick yet (interval {interval} ms)"),
        },
    );

    let config_detail = match inputs.reload {
        Some((_, ReloadOutcome::Rejected)) => {
            let last = gw.last_reload.load_full();
            let why = last.map(|r| r.errors.first().map_or_else(|| r.message.clone(), ToString::to_string));
            format!(
                "generation {} serving; the last edit was rejected: {}",
                inputs.generation,
                why.unwrap_or_default()
            )
        }
        _ => format!("generation {} in effect", inputs.generation),
    };
    check("config", true, config_detail);

    // Probed by the heartbeat, not per call: a health check must not touch the disk.
    check(
        "state_dir",
        inputs.degraded.is_none(),
        match &inputs.degraded {
            None => format!("{} writable", gw.paths.state_dir.display()),
            Some(e) => format!("{} not writable: {e}", gw.paths.state_dir.display()),
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
    let rejected = gw.last_reload.load().as_ref().map(|r| r.outcome) == Some(ReloadOutcome::Rejected);
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
