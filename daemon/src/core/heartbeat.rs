//! The heartbeat loop: counts ticks, keeps systemd's STATUS= current, pings the systemd watchdog
//! at half its period, and repairs: stops runs stuck past `runs.stuck_after_ms`, removes stale
//! temp files, forgets expired sign-in sessions. Each tick's findings are kept as a [`Cycle`]
//! for the status report's `runtime_heartbeat` block.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::time::{interval, MissedTickBehavior};

use crate::core::events::CoreEvent;
use crate::core::gateway::{Gateway, Stats};
use gateway_proto::time::now_ms;

/// What one tick found and did: reason codes (`healthy_cycle` when nothing needed a repair) and
/// the repairs, said for people (the last ones kept across ticks).
#[derive(Debug, Clone, Default)]
pub struct Cycle {
    pub reason_codes: Vec<&'static str>,
    pub diagnostics: VecDeque<String>,
}

/// Repair descriptions kept in `diagnostics`.
const DIAGNOSTICS: usize = 10;

/// Runs until the process ends; it keeps pinging the watchdog through a drain.
pub async fn run(gw: Arc<Gateway>) {
    let mut generation = gw.subscribe_generation();
    let mut watchdog = gw.watchdog_usec.map(|usec| {
        let mut w = interval(Duration::from_micros(usec / 2).max(Duration::from_millis(10)));
        w.set_missed_tick_behavior(MissedTickBehavior::Delay);
        w
    });
    let mut beat = heartbeat_interval(&gw);
    let mut last_health = None;
    loop {
        tokio::select! {
            _ = beat.tick() => tick(&gw, &mut last_health),
            _ = async {
                match watchdog.as_mut() {
                    Some(w) => { w.tick().await; }
                    None => std::future::pending().await,
                }
            } => gw.notifier.watchdog(),
            changed = generation.changed() => {
                if changed.is_err() {
                    return;
                }
                beat = heartbeat_interval(&gw);
            }
        }
    }
}

fn heartbeat_interval(gw: &Gateway) -> tokio::time::Interval {
    let period = Duration::from_millis(gw.active().config.gateway.heartbeat.interval_ms.get());
    let mut beat = interval(period);
    beat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    beat
}

fn tick(gw: &Arc<Gateway>, last_health: &mut Option<Vec<bool>>) {
    Stats::bump(&gw.stats.heartbeat_ticks);
    *gw.last_tick.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    gw.notifier.status(&gw.status_line());
    gw.events.publish(&CoreEvent::Tick {
        at_ms: now_ms(),
        ticks: Stats::get(&gw.stats.heartbeat_ticks),
        interval_ms: gw.active().config.gateway.heartbeat.interval_ms.get(),
    });
    // A `HealthChanged` event only when the checks' outcome changed.
    let report = crate::core::health::report(gw);
    let shape: Vec<bool> = std::iter::once(report.ok).chain(report.checks.iter().map(|c| c.ok)).collect();
    if last_health.as_ref() != Some(&shape) {
        if last_health.is_some() {
            gw.events.publish(&CoreEvent::HealthChanged {
                report,
                at_ms: now_ms(),
                uptime_ms: gw.uptime_ms(),
            });
        }
        *last_health = Some(shape);
    }
    let mut reasons = Vec::new();
    let mut done = Vec::new();
    let stuck = gw.agents.stop_stuck();
    if !stuck.is_empty() {
        gw.stats.stuck_runs.fetch_add(stuck.len() as u64, Ordering::Relaxed);
        reasons.push("stuck_run_stopped");
        let runs = if stuck.len() == 1 { "run" } else { "runs" };
        done.push(format!("stopped {} stuck {runs}: {}", stuck.len(), stuck.join(", ")));
    }
    let removed = remove_stale_temp_files(&gw.paths.state_dir);
    if removed > 0 {
        gw.stats.temp_files_cleaned.fetch_add(removed, Ordering::Relaxed);
        reasons.push("temp_files_removed");
        done.push(format!("removed {} stale temporary file(s)", removed));
    }
    if reasons.is_empty() {
        reasons.push("healthy_cycle");
    }
    record(gw, reasons, done);
    // Disk work off the async workers: the state dir's write probe, expired sessions.
    let gw = gw.clone();
    tokio::task::spawn_blocking(move || {
        let probe = crate::core::health::probe_state_dir(&gw.paths.state_dir);
        if probe.is_ok() {
            gw.devices.store().space_returned();
            if let Err(e) = gw.devices.store().checkpoint() {
                tracing::warn!(error = %e, "cannot checkpoint the state database's WAL");
            }
        }
        *gw.state_dir_writable.lock().unwrap_or_else(|e| e.into_inner()) = probe;
        match gw.signins.prune() {
            Ok(0) => {}
            Ok(n) => {
                gw.stats.sessions_expired.fetch_add(n as u64, Ordering::Relaxed);
                record(
                    &gw,
                    vec!["expired_sessions_forgotten"],
                    vec![format!("forgot {n} expired sign-in session(s)")],
                );
            }
            Err(e) => tracing::warn!(error = %e, "cannot forget expired sessions"),
        }
    });
}

/// Adds a tick's findings to the last cycle: a new tick's `reason_codes` replace the old ones
/// (`healthy_cycle` never joins others), diagnostics accumulate up to [`DIAGNOSTICS`].
fn record(gw: &Gateway, reasons: Vec<&'static str>, done: Vec<String>) {
    let mut cycle = gw.last_cycle.lock().unwrap_or_else(|e| e.into_inner());
    if reasons.contains(&"healthy_cycle") {
        cycle.reason_codes = reasons;
    } else {
        cycle.reason_codes.retain(|r| *r != "healthy_cycle");
        for r in reasons {
            if !cycle.reason_codes.contains(&r) {
                cycle.reason_codes.push(r);
            }
        }
    }
    for line in done {
        if cycle.diagnostics.len() == DIAGNOSTICS {
            cycle.diagnostics.pop_front();
        }
        cycle.diagnostics.push_back(format!("{}: {line}", gateway_proto::time::rfc3339_millis(now_ms())));
    }
}

/// Secret files are written through `.NAME.PID.tmp`; a crash mid-write can leave one behind.
/// Returns how many were removed.
fn remove_stale_temp_files(dir: &std::path::Path) -> u64 {
    const STALE: Duration = Duration::from_secs(600);
    let mut removed = 0;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with('.') && name.ends_with(".tmp")) {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .map(|t| SystemTime::now().duration_since(t).unwrap_or_default() > STALE)
            .unwrap_or(false);
        if old && std::fs::remove_file(entry.path()).is_ok() {
            tracing::info!(file = %entry.path().display(), "removed a stale temporary file");
            removed += 1;
        }
    }
    removed
}
