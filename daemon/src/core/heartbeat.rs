//! The heartbeat loop: counts ticks, keeps systemd's STATUS= current, pings the systemd watchdog
//! at half its period, and does housekeeping.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::time::{interval, MissedTickBehavior};

use crate::core::events::CoreEvent;
use crate::core::gateway::{Gateway, Stats};
use gateway_proto::time::now_ms;

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
    remove_stale_temp_files(&gw.paths.state_dir);
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
        if let Err(e) = gw.signins.prune() {
            tracing::warn!(error = %e, "cannot forget expired sessions");
        }
    });
}

/// Secret files are written through `.NAME.PID.tmp`; a crash mid-write can leave one behind.
fn remove_stale_temp_files(dir: &std::path::Path) {
    const STALE: Duration = Duration::from_secs(600);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
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
        }
    }
}
