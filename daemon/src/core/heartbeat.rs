//! The heartbeat loop: counts ticks, keeps systemd's STATUS= current, pings the systemd watchdog
//! at half its period, and repairs: stops runs stuck past `runs.stuck_after_ms`, removes stale
//! temp files, forgets expired sign-in sessions, and (hourly) deletes run records and stored
//! responses past `runs.retention_days`. Each tick's findings are kept as a [`Cycle`] for the
//! status report's `runtime_heartbeat` block.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::time::{interval, MissedTickBehavior};

use crate::core::events::CoreEvent;
use crate::core::gateway::{Gateway, Stats};
use crate::core::rotating_file::RotatingFile;
use gateway_proto::time::now_ms;

/// What one tick found and did: reason codes (`healthy_cycle` when nothing needed a repair) and
/// the repairs, said for people (the last ones kept across ticks).
#[derive(Debug, Clone, Default)]
pub struct Cycle {
    pub reason_codes: Vec<&'static str>,
    pub diagnostics: VecDeque<String>,
    /// Provider retries and exhausted retries counted at the previous tick.
    retries_seen: (u64, u64),
    /// `observability.events_jsonl_path`, opened when the heartbeat starts.
    events_file: Option<Arc<RotatingFile>>,
}

/// Repair descriptions kept in `diagnostics`.
const DIAGNOSTICS: usize = 10;
/// How often the retention is applied (first at the first tick).
const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);

/// Runs until the process ends; it keeps pinging the watchdog through a drain.
pub async fn run(gw: Arc<Gateway>) {
    open_events_file(&gw);
    let mut generation = gw.subscribe_generation();
    let mut watchdog = gw.watchdog_usec.map(|usec| {
        let mut w = interval(Duration::from_micros(usec / 2).max(Duration::from_millis(10)));
        w.set_missed_tick_behavior(MissedTickBehavior::Delay);
        w
    });
    let mut beat = heartbeat_interval(&gw);
    let mut last_health = None;
    let mut retention_applied: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = beat.tick() => {
                let retention_due = retention_applied.is_none_or(|t| t.elapsed() >= RETENTION_INTERVAL);
                if retention_due {
                    retention_applied = Some(Instant::now());
                }
                tick(&gw, &mut last_health, retention_due);
            }
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

fn tick(gw: &Arc<Gateway>, last_health: &mut Option<Vec<bool>>, retention_due: bool) {
    Stats::bump(&gw.stats.heartbeat_ticks);
    gw.last_tick.store(Some(Arc::new(Instant::now())));
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
        reasons.push("stuck_run_stopped");
        let runs = if stuck.len() == 1 { "run" } else { "runs" };
        done.push(format!("stopped {} stuck {runs}: {}", stuck.len(), stuck.join(", ")));
    }
    let retries = (gw.metrics.retries_queued.get(), gw.metrics.retries_exhausted.get());
    let seen =
        std::mem::replace(&mut gw.last_cycle.lock().unwrap_or_else(|e| e.into_inner()).retries_seen, retries);
    if retries.0 > seen.0 {
        reasons.push("retry_attempted");
    }
    if retries.1 > seen.1 {
        reasons.push("retry_exhausted");
    }
    if gw.agents.queued() > 0 {
        reasons.push("runs_queued");
    }
    let removed = remove_stale_temp_files(&gw.paths.state_dir);
    if removed > 0 {
        reasons.push("temp_files_removed");
        done.push(format!("removed {} stale temporary file(s)", removed));
    }
    if reasons.iter().all(|r| *r == "retry_attempted" || *r == "runs_queued") {
        // Retries that worked and runs waiting their turn are the runtime doing its job.
        reasons.insert(0, "healthy_cycle");
    }
    record(gw, reasons, done);
    // The counts after their diagnostics: whoever sees a count sees why.
    gw.stats.stuck_runs.fetch_add(stuck.len() as u64, Ordering::Relaxed);
    gw.stats.temp_files_cleaned.fetch_add(removed, Ordering::Relaxed);
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
        gw.state_dir_writable.store(Arc::new(probe));
        match gw.signins.prune() {
            Ok(0) => {}
            Ok(n) => {
                record(
                    &gw,
                    vec!["expired_sessions_forgotten"],
                    vec![format!("forgot {n} expired sign-in session(s)")],
                );
                gw.stats.sessions_expired.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) => tracing::warn!(error = %e, "cannot forget expired sessions"),
        }
        if retention_due {
            apply_retention(&gw);
        }
    });
}

/// Deletes run records and stored responses past `runs.retention_days`.
fn apply_retention(gw: &Gateway) {
    let days = gw.active().config.runs.retention_days.get();
    match gw.agents.delete_expired(days) {
        Ok((0, 0)) => {}
        Ok((runs, responses)) => {
            let said = format!(
                "deleted {runs} run record(s) and {responses} stored response(s) older than {days} days (runs.retention_days)"
            );
            tracing::info!(runs, responses, "{said}");
            record(gw, vec!["retention_applied"], vec![said]);
            gw.stats.runs_pruned.fetch_add(runs as u64, Ordering::Relaxed);
            gw.stats.responses_pruned.fetch_add(responses as u64, Ordering::Relaxed);
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot delete run records and responses past runs.retention_days")
        }
    }
}

fn open_events_file(gw: &Gateway) {
    let observability = &gw.active().config.observability;
    let Some(path) = observability.events_jsonl_path.clone() else {
        return;
    };
    match RotatingFile::open(path.clone(), observability.jsonl_max_bytes.get()) {
        Ok(file) => {
            gw.last_cycle.lock().unwrap_or_else(|e| e.into_inner()).events_file = Some(Arc::new(file))
        }
        Err(e) => tracing::warn!(
            file = %path.display(),
            error = %e,
            "cannot open observability.events_jsonl_path; the heartbeat's events are not written"
        ),
    }
}

/// Adds a tick's findings to the last cycle: a new tick's `reason_codes` replace the old ones
/// (a `healthy_cycle` tick's replace all), diagnostics accumulate up to [`DIAGNOSTICS`]. Each
/// call is one line of the events file, when there is one.
fn record(gw: &Gateway, reasons: Vec<&'static str>, done: Vec<String>) {
    let events_file = gw.last_cycle.lock().unwrap_or_else(|e| e.into_inner()).events_file.clone();
    if let Some(file) = events_file {
        write_event(gw, &file, &reasons, &done);
    }
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

/// One line of `runtime-events.jsonl`: what happened, and the figures an operator reads with it.
fn write_event(gw: &Gateway, file: &RotatingFile, reasons: &[&str], done: &[String]) {
    let health = crate::core::health::report(gw);
    let (state, reason, _) = crate::core::health::state(gw, &health);
    let line = serde_json::json!({
        "record_type": "runtime_heartbeat_event_v1",
        "schema_version": 1,
        "timestamp_unix_ms": now_ms(),
        "reason_codes": reasons,
        "health_state": state,
        "health_reason_code": reason,
        "tick_count": Stats::get(&gw.stats.heartbeat_ticks),
        "queue_depth": gw.agents.queued(),
        "active_runs": gw.agents.active_runs(),
        "retries_queued": gw.metrics.retries_queued.get(),
        "retries_exhausted": gw.metrics.retries_exhausted.get(),
        "diagnostics": done,
    });
    let mut text = line.to_string();
    text.push('\n');
    if let Err(e) = file.write_line(text.as_bytes()) {
        tracing::warn!(file = %file.path().display(), error = %e, "cannot write the heartbeat's event");
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
