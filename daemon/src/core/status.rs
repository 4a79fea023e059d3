//! The status model: one report of what the daemon is doing, built here and served unchanged by
//! the control socket (`gatewayctl status`), the WebSocket `status` method and
//! `GET /gateway/status`.

use gateway_proto::api;

use crate::core::gateway::{Gateway, Stats};

/// The daemon's status now.
pub fn report(gw: &Gateway) -> api::StatusReport {
    let active = gw.active();
    let stats = &gw.stats;
    let config = &active.config;
    let (health_state, health_reason, health_reasons) =
        crate::core::health::state(gw, &crate::core::health::report(gw));
    let web_ui = api::WebUiInfo {
        enabled: config.ui.enabled,
        path: config.ui.path.as_str().to_owned(),
        active_sessions: gw.signins.count(crate::core::signin_store::Kind::Browser).unwrap_or(0),
        sign_ins: Stats::get(&stats.ui_sign_ins),
        sign_in_failures: Stats::get(&stats.ui_sign_in_failures),
        sign_in_path: "/gateway/ui/session".into(),
        allow_session_write: config.gateway.admin.allow_session_write,
        allow_memory_write: config.gateway.admin.allow_memory_write,
    };
    api::StatusReport {
        service: gw.profile.service_name(),
        version: gateway_proto::VERSION.into(),
        pid: std::process::id(),
        profile: gw.profile.name().map(str::to_owned),
        state: gw.phase().as_str().into(),
        supervisor: gw.supervisor.as_str().into(),
        started_at_ms: gw.started_at_ms,
        uptime_ms: gw.started.elapsed().as_millis() as u64,
        listen: api::ListenInfo {
            bind: config.gateway.bind.to_string(),
            addr: gw.listen_addr.to_string(),
            port: gw.listen_addr.port(),
        },
        auth_mode: config.gateway.auth.mode.as_str().into(),
        config: api::ConfigInfo {
            path: gw.config_file().display().to_string(),
            exists: active.file_exists,
            generation: active.generation,
            reload_mode: config.gateway.reload.mode.as_str().into(),
            pending_restart: gw.pending_restart.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        },
        last_reload: gw.last_reload.load().as_deref().cloned(),
        heartbeat: api::HeartbeatInfo {
            ticks: Stats::get(&stats.heartbeat_ticks),
            interval_ms: config.gateway.heartbeat.interval_ms.get(),
            last_tick_ms_ago: gw.last_tick_age().map(|age| age.as_millis() as u64),
            watchdog_usec: gw.watchdog_usec,
        },
        connections: api::Connections {
            http: Stats::get(&stats.http_connections),
            control: Stats::get(&stats.control_connections),
            websocket: Stats::get(&stats.websocket_connections),
        },
        counters: api::Counters {
            http_requests: Stats::get(&stats.http_requests),
            auth_failures: Stats::get(&stats.auth_failures),
            rate_limited_requests: Stats::get(&stats.rate_limited_requests),
            reloads_applied: Stats::get(&stats.reloads_applied),
            reloads_unchanged: Stats::get(&stats.reloads_unchanged),
            reloads_rejected: Stats::get(&stats.reloads_rejected),
        },
        paths: api::PathsInfo {
            state_dir: gw.paths.state_dir.display().to_string(),
            runtime_dir: gw.paths.runtime_dir.display().to_string(),
            socket: gw.paths.socket().display().to_string(),
            log_file: gw.logs.file_path().display().to_string(),
        },
        web_ui: Some(web_ui.clone()),
        health_state: Some(health_state.into()),
        health_reason_code: Some(health_reason.into()),
        health_reasons: health_reasons.iter().map(|r| (*r).to_owned()).collect(),
        runtime_heartbeat: Some(runtime_heartbeat(gw, &health_reasons)),
        events: match gw.scheduler.status_now() {
            Ok(s) => Some(s.events),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the scheduled jobs for the status report");
                None
            }
        },
        gateway: Some(api::GatewayBlocks { openai_compat: gw.openai_stats.info(), web_ui: Some(web_ui) }),
        auth: Some(api::AuthInfo {
            mode: config.gateway.auth.mode.as_str().into(),
            session_ttl_seconds: config.gateway.auth.session_ttl_ms.get() / 1000,
            active_sessions: gw.signins.count(crate::core::signin_store::Kind::Bearer).unwrap_or(0),
            total_sessions_issued: Stats::get(&stats.sessions_issued),
            auth_failures: Stats::get(&stats.auth_failures),
            rate_limited_requests: Stats::get(&stats.rate_limited_requests),
            rate_limit_window_seconds: config.gateway.http.rate_limit.window_seconds.get(),
            rate_limit_max_requests: config.gateway.http.rate_limit.max_requests.get(),
        }),
    }
}

fn runtime_heartbeat(gw: &Gateway, health_reasons: &[&str]) -> api::RuntimeHeartbeatInfo {
    let stats = &gw.stats;
    let cycle = gw.last_cycle.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let late = health_reasons.contains(&"heartbeat_late");
    let (stuck, temp, sessions) = (
        Stats::get(&stats.stuck_runs),
        Stats::get(&stats.temp_files_cleaned),
        Stats::get(&stats.sessions_expired),
    );
    let (runs_pruned, responses_pruned) =
        (Stats::get(&stats.runs_pruned), Stats::get(&stats.responses_pruned));
    let interrupted = gw.agents.interrupted_at_start();
    api::RuntimeHeartbeatInfo {
        run_state: if late { "stopped" } else { "running" }.into(),
        reason_code: if late {
            "heartbeat_late"
        } else {
            cycle.reason_codes.first().copied().unwrap_or("healthy_cycle")
        }
        .into(),
        interval_ms: gw.active().config.gateway.heartbeat.interval_ms.get(),
        tick_count: Stats::get(&stats.heartbeat_ticks),
        queue_depth: gw.agents.queued() as u64,
        stuck_jobs: stuck,
        repair_actions: interrupted + stuck + temp + sessions + runs_pruned + responses_pruned,
        temp_files_cleaned: temp,
        expired_sessions_cleaned: sessions,
        interrupted_runs_marked: interrupted,
        runs_pruned,
        responses_pruned,
        retries_queued: gw.metrics.retries_queued.get(),
        retries_exhausted: gw.metrics.retries_exhausted.get(),
        reason_codes: cycle.reason_codes.iter().map(|r| (*r).to_owned()).collect(),
        diagnostics: cycle.diagnostics.into_iter().collect(),
    }
}
