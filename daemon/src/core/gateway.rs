//! The gateway core: one value shared by the listener, the control socket, the reload watcher
//! and the heartbeat. The config in effect is an immutable snapshot swapped atomically, so a
//! request sees one whole config, old or new, never a mix.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::{ArcSwap, ArcSwapOption};
use gateway_config::{Config, Overrides};
use gateway_proto::api::ReloadReport;
use gateway_proto::time::now_ms;
use gateway_proto::{Paths, Profile};
use tokio::sync::watch;

use crate::core::events::{CoreEvent, Events};
use crate::core::limiter::WriteLimiter;
use crate::core::limiter::{AuthLimiter, RequestLimiter};
use crate::core::logging::LogControl;
use crate::core::notify::Notifier;
use crate::core::password::Password;
use crate::core::signin_store::SignIns;
use crate::core::supervisor::Supervisor;
use crate::runtime::devices::Devices;

/// What the daemon runs with: the effective config (file under flags and environment) and the
/// secrets resolved from it.
#[derive(Debug, Clone)]
pub struct Active {
    pub config: Config,
    /// 1 at start, +1 per applied reload.
    pub generation: u64,
    /// Whether the config file existed when this was loaded.
    pub file_exists: bool,
    pub token: String,
    pub token_source: TokenSource,
    /// The webhook token (`hooks.token`) while webhooks are on.
    pub hooks_token: Option<String>,
    /// The providers' API keys that could be read when this was loaded: never accepted in a
    /// URL's query (the providers read theirs again for each request).
    pub provider_keys: Vec<String>,
    /// The dotted keys the file set (the rest had their defaults).
    pub file_keys: BTreeSet<String>,
}

/// Where the gateway token comes from; only a generated one can be rotated by the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    File,
    Env,
    Config,
}

impl TokenSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Env => "env",
            Self::Config => "config",
        }
    }
}

/// The daemon's lifecycle; `Draining` once shutdown has begun.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    Starting,
    Running,
    Draining,
}

impl Phase {
    fn from_u8(value: u8) -> Self {
        match value {
            0 => Self::Starting,
            1 => Self::Running,
            _ => Self::Draining,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Draining => "draining",
        }
    }
}

/// Why the daemon leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitReason {
    Stop,
    /// A restart-required change or `gatewayctl restart`: come back with the same command line
    /// and the config as it is on disk.
    Restart,
}

#[derive(Default)]
pub struct Stats {
    pub http_requests: AtomicU64,
    pub auth_failures: AtomicU64,
    /// HTTP API requests refused by `gateway.http.rate_limit`.
    pub rate_limited_requests: AtomicU64,
    pub http_connections: AtomicU64,
    pub control_connections: AtomicU64,
    /// WebSocket connections open, authenticated or not (kept by the WebSocket door).
    pub websocket_connections: AtomicU64,
    pub reloads_applied: AtomicU64,
    pub reloads_unchanged: AtomicU64,
    pub reloads_rejected: AtomicU64,
    pub heartbeat_ticks: AtomicU64,
    /// Control UI sign-ins that opened a browser session, and those refused.
    pub ui_sign_ins: AtomicU64,
    pub ui_sign_in_failures: AtomicU64,
    /// Bearer sign-in sessions issued (`/gateway/auth/session`).
    pub sessions_issued: AtomicU64,
    /// The heartbeat's repairs: runs stopped as stuck, stale temp files removed, expired
    /// sign-in sessions forgotten.
    pub stuck_runs: AtomicU64,
    pub temp_files_cleaned: AtomicU64,
    pub sessions_expired: AtomicU64,
    /// Ended runs' records and stored responses deleted past `runs.retention_days`.
    pub runs_pruned: AtomicU64,
    pub responses_pruned: AtomicU64,
}

impl Stats {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

pub struct Gateway {
    pub profile: Profile,
    pub paths: Paths,
    pub overrides: Overrides,
    /// The config the process started with: restart-required keys are compared against it.
    pub(in crate::core) booted_with: Config,
    pub listen_addr: SocketAddr,
    pub(in crate::core) supervisor: Supervisor,
    pub(in crate::core) watchdog_usec: Option<u64>,
    pub(in crate::core) started: Instant,
    pub started_at_ms: u64,
    pub(in crate::core) active: ArcSwap<Active>,
    pub stats: Stats,
    /// Prometheus families counted on the hot paths (`core::metrics`).
    pub metrics: Arc<crate::core::metrics::Metrics>,
    /// What the OpenAI-compatible APIs served (the status report's `gateway.openai_compat`).
    pub openai_stats: crate::core::openai_stats::OpenAiStats,
    pub notifier: Notifier,
    /// Where the core and the doors tell the doors what happened.
    pub events: Events,
    pub devices: Devices,
    pub password: Password,
    /// Sign-in sessions (password mode's bearer tokens, the UI's cookies): not conversations,
    /// which live in `agents`.
    pub signins: SignIns,
    /// The Control UI's one-time sign-in codes (`gatewayctl dashboard`).
    pub ui_codes: crate::core::ui_codes::UiCodes,
    /// Runs, sessions of conversation, models and tools.
    pub agents: crate::runtime::agent::Agents,
    /// Chat channel accounts (IRC, ...), their pairing and their inbox.
    pub channels: crate::runtime::channels::Channels,
    /// Scheduled jobs and their history.
    pub scheduler: crate::runtime::scheduler::Scheduler,
    pub limiter: AuthLimiter,
    /// Requests per client address on the HTTP APIs (`gateway.http.rate_limit`).
    pub request_limiter: RequestLimiter,
    pub config_writes: WriteLimiter,
    /// Serializes config writes from clients (check hash, write, reload).
    pub config_write_lock: tokio::sync::Mutex<()>,
    pub logs: LogControl,
    /// Serializes reload transactions and token rotations.
    pub(in crate::core) reload_lock: tokio::sync::Mutex<()>,
    pub(in crate::core) last_reload: ArcSwapOption<ReloadReport>,
    /// Restart-required keys changed in the file but not in effect (reload mode `hot`).
    pub(in crate::core) pending_restart: Mutex<Vec<String>>,
    pub(in crate::core) last_tick: ArcSwapOption<Instant>,
    /// What the heartbeat's last tick found and did (the status report's `runtime_heartbeat`).
    pub(in crate::core) last_cycle: Mutex<crate::core::heartbeat::Cycle>,
    /// The heartbeat's last probe of the state dir.
    pub(in crate::core) state_dir_writable: ArcSwap<Result<(), String>>,
    /// The health checks health probes are answered from.
    pub(in crate::core) health_checks: crate::core::health::ChecksCache,
    phase: AtomicU8,
    exit: watch::Sender<Option<ExitReason>>,
    /// The generation in effect; subsystems that cache config values wait on it.
    generation: watch::Sender<u64>,
}

impl Gateway {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        profile: Profile,
        paths: Paths,
        overrides: Overrides,
        listen_addr: SocketAddr,
        supervisor: Supervisor,
        active: Active,
        logs: LogControl,
        devices: Devices,
        password: Password,
        signins: SignIns,
    ) -> Arc<Self> {
        let generation = active.generation;
        let metrics = Arc::new(crate::core::metrics::Metrics::default());
        let agents =
            crate::runtime::agent::Agents::new(devices.store().clone(), &active.config, metrics.clone());
        let channels = crate::runtime::channels::Channels::new(devices.store().clone(), agents.clone());
        let scheduler = crate::runtime::scheduler::Scheduler::new(
            devices.store().clone(),
            agents.clone(),
            channels.clone(),
            metrics.clone(),
            &active.config,
        );
        Arc::new(Self {
            profile,
            paths,
            overrides,
            booted_with: active.config.clone(),
            listen_addr,
            supervisor,
            watchdog_usec: crate::core::notify::watchdog_usec(),
            started: Instant::now(),
            started_at_ms: now_ms(),
            active: ArcSwap::from_pointee(active),
            stats: Stats::default(),
            metrics,
            openai_stats: Default::default(),
            notifier: Notifier::default(),
            events: Events::default(),
            devices,
            password,
            signins,
            ui_codes: Default::default(),
            agents,
            channels,
            scheduler,
            limiter: AuthLimiter::default(),
            request_limiter: RequestLimiter::default(),
            config_writes: WriteLimiter::default(),
            config_write_lock: tokio::sync::Mutex::new(()),
            logs,
            reload_lock: tokio::sync::Mutex::new(()),
            last_reload: ArcSwapOption::empty(),
            pending_restart: Mutex::new(Vec::new()),
            last_tick: ArcSwapOption::empty(),
            last_cycle: Mutex::default(),
            state_dir_writable: ArcSwap::from_pointee(Ok(())),
            health_checks: Default::default(),
            phase: AtomicU8::new(Phase::Starting as u8),
            exit: watch::channel(None).0,
            generation: watch::channel(generation).0,
        })
    }

    pub fn config_file(&self) -> &PathBuf {
        &self.paths.config_file
    }

    /// The snapshot in effect, for a look now: loading it touches no counter shared between
    /// threads (a clone of the `Arc` would, on every request of every worker). Hold it briefly;
    /// [`Self::active_owned`] keeps one across waits.
    pub fn active(&self) -> arc_swap::Guard<Arc<Active>> {
        self.active.load()
    }

    /// The snapshot in effect, to keep.
    pub fn active_owned(&self) -> Arc<Active> {
        self.active.load_full()
    }

    /// Puts a new snapshot in effect and tells the subsystems that cache config values. When the
    /// shared token changed, the doors are told (`TokenRotated`) so they end what it granted.
    pub fn swap_active(&self, active: Active) {
        let generation = active.generation;
        let token_changed = self.active().token != active.token;
        self.logs.apply(&active.config.logging);
        self.agents.configure(&active.config);
        self.scheduler.configure(&active.config);
        if self.phase() != Phase::Starting {
            self.channels.configure(&active.config);
        }
        self.active.store(Arc::new(active));
        self.generation.send_replace(generation);
        if token_changed {
            // Browser sessions were granted on the old token's word (or a code it vouched for).
            if let Err(e) = self.signins.revoke_kind(crate::core::signin_store::Kind::Browser) {
                tracing::error!(error = %e, "cannot end the browser sessions of the old gateway token");
            }
            let closed = self.events.publish(&CoreEvent::TokenRotated);
            if closed > 0 {
                tracing::info!(
                    event = "token_changed",
                    closed,
                    "closed connections that used the old gateway token"
                );
            }
        }
    }

    /// Connections open on every door: HTTP, the control socket and WebSockets.
    pub fn open_connections(&self) -> u64 {
        Stats::get(&self.stats.http_connections)
            + Stats::get(&self.stats.control_connections)
            + Stats::get(&self.stats.websocket_connections)
    }

    /// Why the gateway cannot keep what it is given, if it cannot: the state dir does not take
    /// writes (the heartbeat's probe), or the database refused a write for want of space.
    pub fn degraded(&self) -> Option<String> {
        match &**self.state_dir_writable.load() {
            Err(why) => Some(why.clone()),
            Ok(()) if self.devices.store().full() => {
                Some(gateway_proto::disk::Space::of(&self.paths.state_dir).map_or_else(
                    |_| "the disk is full: the state database refused a write".to_owned(),
                    |s| s.describe(),
                ))
            }
            Ok(()) => None,
        }
    }

    /// How long ago the heartbeat last ticked; None before its first tick.
    pub fn last_tick_age(&self) -> Option<std::time::Duration> {
        self.last_tick.load().as_deref().map(Instant::elapsed)
    }

    /// Milliseconds since the daemon started.
    pub fn uptime_ms(&self) -> u64 {
        self.uptime_ms_at(Instant::now())
    }

    /// Milliseconds from the daemon's start to `at`.
    pub fn uptime_ms_at(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.started).as_millis() as u64
    }

    /// Unsent bytes one WebSocket client may have queued.
    pub fn ws_buffer_limit(&self) -> usize {
        self.active().config.gateway.ws.max_buffered_bytes.get() as usize
    }

    pub fn subscribe_generation(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    pub fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Release);
    }

    /// Asks the daemon to leave; the first reason given wins.
    pub fn request_exit(&self, reason: ExitReason) {
        self.exit.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason);
                true
            } else {
                false
            }
        });
    }

    pub fn exit_reason(&self) -> Option<ExitReason> {
        *self.exit.borrow()
    }

    /// Resolves once an exit has been requested.
    pub async fn exiting(&self) -> ExitReason {
        let mut rx = self.exit.subscribe();
        loop {
            if let Some(reason) = *rx.borrow_and_update() {
                return reason;
            }
            if rx.changed().await.is_err() {
                return ExitReason::Stop;
            }
        }
    }

    /// One line for systemd's STATUS= and for people.
    pub fn status_line(&self) -> String {
        let active = self.active();
        let conns = Stats::get(&self.stats.http_connections) + Stats::get(&self.stats.websocket_connections);
        let reload = self
            .last_reload
            .load()
            .as_ref()
            .map(|r| format!("; last reload {}", r.outcome))
            .unwrap_or_default();
        format!(
            "{} on {} (config generation {}, {conns} connections{reload})",
            match self.phase() {
                Phase::Draining => "Draining",
                _ => "Serving",
            },
            self.listen_addr,
            active.generation,
        )
    }
}
