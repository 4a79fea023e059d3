//! `gatewayd run`: start-up in a fixed order (paths, state dir, instance lock, config, logging,
//! port, control socket), then serve until told to stop, then drain and leave, or come back with
//! a changed config.

use std::ffi::CString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gateway_config::Overrides;
use gateway_proto::api::{self, ReloadTrigger};
use gateway_proto::paths::{env_var, non_empty_env, PathFlags};
use gateway_proto::{exit, Paths, Profile};
use nix::sys::stat::{umask, Mode};
use tokio::signal::unix::{signal, SignalKind};

use crate::api::{control, listener, router};
use crate::cli::RunArgs;
use crate::core::events::CoreEvent;
use crate::core::gateway::{Active, ExitReason, Gateway, Phase};
use crate::core::supervisor::Supervisor;
use crate::core::{fsutil, heartbeat, lock, logging, port, reload, telemetry};
use crate::runtime::agent::RunOrigin;

/// A reason to exit before serving, with its exit code.
struct Fatal {
    code: i32,
    message: String,
}

impl Fatal {
    fn new(code: i32, message: impl ToString) -> Self {
        Self { code, message: message.to_string() }
    }
}

pub fn run(args: RunArgs) -> i32 {
    // Everything we create (state dir, token, socket, logs) is private, whatever umask we inherit.
    umask(Mode::from_bits_truncate(0o077));
    // Recorded now: after an upgrade, /proc/self/exe names a deleted file.
    let exe = std::env::current_exe().ok();
    match start(args) {
        Ok(ExitReason::Stop) => exit::OK,
        Ok(ExitReason::Restart) => restart(exe),
        Err(fatal) => {
            // Logging may not be set up yet: stderr reaches the terminal or the journal either way.
            eprintln!("gatewayd: {}", fatal.message);
            fatal.code
        }
    }
}

fn start(args: RunArgs) -> Result<ExitReason, Fatal> {
    let profile = Profile::new(args.profile.as_deref(), args.dev).map_err(|e| Fatal::new(exit::USAGE, e))?;
    let flags = PathFlags {
        config_file: args
            .config
            .as_deref()
            .map(std::path::absolute)
            .transpose()
            .map_err(|e| Fatal::new(exit::CONFIG, e))?,
        state_dir: args
            .state_dir
            .as_deref()
            .map(std::path::absolute)
            .transpose()
            .map_err(|e| Fatal::new(exit::CONFIG, e))?,
    };
    let mut paths = Paths::resolve(&profile, &flags).map_err(|e| Fatal::new(exit::CONFIG, e))?;
    paths.config_file = std::path::absolute(&paths.config_file).map_err(|e| Fatal::new(exit::CONFIG, e))?;
    fsutil::ensure_private_dir(&paths.state_dir).map_err(|e| {
        Fatal::new(exit::FAILURE, format!("cannot use the state dir {}: {e}", paths.state_dir.display()))
    })?;
    let _lock =
        lock::acquire(&paths.lock_file(), args.force).map_err(|e| Fatal::new(exit::UNAVAILABLE, e))?;

    let overrides = Overrides {
        port: args.port,
        bind: args.bind,
        token: non_empty_env(env_var::TOKEN),
        password: non_empty_env(env_var::PASSWORD),
    };
    let prepared =
        reload::prepare(&paths.config_file, &profile, &overrides, &paths.token_file()).map_err(|issues| {
            // Writing a first token fails on a full disk: that is no config error.
            let token_write = issues.iter().any(|i| i.key.as_deref() == Some("gateway.auth.token"));
            if let Some(full) = disk_full(&paths.state_dir).filter(|_| token_write) {
                return Fatal::new(
                    exit::DISK_FULL,
                    format!("cannot write to the state dir {}: {full}; free some space, then start gatewayd again", paths.state_dir.display()),
                );
            }
            let lines: Vec<String> = issues.iter().map(ToString::to_string).collect();
            Fatal::new(exit::CONFIG, format!("invalid configuration:\n  {}", lines.join("\n  ")))
        })?;
    let logs = logging::init(logging::Setup {
        format: args.log_format,
        verbose: args.verbose,
        logging: &prepared.config.logging,
        file: paths.log_file(),
        profile: profile.name(),
    })
    .map_err(|e| {
        Fatal::new(exit::FAILURE, format!("cannot open the log file {}: {e}", paths.log_file().display()))
    })?;

    // Before the async runtime: the OTLP client is a blocking one, on the SDK's own threads.
    let telemetry =
        telemetry::start(&prepared.config.observability).map_err(|e| Fatal::new(exit::CONFIG, e))?;
    if !telemetry.destinations.is_empty() {
        tracing::info!(to = %telemetry.destinations.join("; "), "exporting OpenTelemetry");
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Fatal::new(exit::FAILURE, format!("cannot start the async runtime: {e}")))?;
    let launch = api::LaunchRecord { args: args.relaunch_args(&paths) };
    let result =
        runtime.block_on(serve_until_exit(args.force, profile, paths, overrides, prepared, logs, launch));
    // Connections still open after the drain budget are cut here.
    runtime.shutdown_timeout(Duration::from_millis(500));
    telemetry.shutdown();
    result
}

async fn serve_until_exit(
    force: bool,
    profile: Profile,
    paths: Paths,
    overrides: Overrides,
    prepared: reload::Prepared,
    logs: logging::LogControl,
    launch: api::LaunchRecord,
) -> Result<ExitReason, Fatal> {
    let backlog = prepared.config.gateway.http.listen_backlog.get() as u32;
    let tcp = port::bind(prepared.addr, backlog, force).await.map_err(|e| {
        let code = if e.is_busy() { exit::UNAVAILABLE } else { exit::FAILURE };
        Fatal::new(code, e)
    })?;
    let listen_addr = tcp.local_addr().map_err(|e| Fatal::new(exit::FAILURE, e))?;
    let metrics_tcp = match prepared.config.metrics.listen {
        Some(addr) => Some(port::bind(addr, 64, false).await.map_err(|e| {
            let code = if e.is_busy() { exit::UNAVAILABLE } else { exit::FAILURE };
            Fatal::new(code, format!("metrics.listen: {e}"))
        })?),
        None => None,
    };
    let socket = paths.socket();
    let control_listener = control::bind(&socket).map_err(|e| {
        let code = if matches!(e, control::BindError::Live(_)) { exit::UNAVAILABLE } else { exit::FAILURE };
        Fatal::new(code, e)
    })?;

    reload::warn_if_secret_exposed(&paths.config_file, &prepared);
    if prepared.token_generated {
        tracing::info!(
            file = %paths.token_file().display(),
            "generated a gateway token; show it with `gatewayctl token show{}`",
            profile.name().map(|p| format!(" --profile {p}")).unwrap_or_default()
        );
    }
    let configured_password = prepared.password.clone();
    let gw = assemble(profile, paths, overrides, prepared, logs, listen_addr)?;
    telemetry::instruments::observe(&gw);
    // Hashed before the first request can ask for it.
    gw.password.configure(configured_password.as_deref());

    let http_task = tokio::spawn({
        let gw = gw.clone();
        let app = router::router(gw.clone());
        async move {
            listener::serve_main(gw, app, || async {
                let (stream, peer) = tcp.accept().await?;
                let _ = stream.set_nodelay(true);
                Ok((stream, peer))
            })
            .await
        }
    });
    let control_task = tokio::spawn(control::serve(gw.clone(), control_listener));
    if let Some(tcp) = metrics_tcp {
        let app = crate::api::probes::metrics_listener(gw.clone());
        let gw = gw.clone();
        tokio::spawn(async move {
            listener::serve(gw, app, listener::Door::Http, || async {
                let (stream, peer) = tcp.accept().await?;
                Ok((stream, listener::Peer::Tcp(peer)))
            })
            .await
        });
    }
    tokio::spawn(handle_signals(gw.clone()));
    let _watcher = match reload::watch(gw.clone()) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, dir = ?gw.config_file().parent(), "cannot watch the config directory; edits apply on `gatewayctl reload` or SIGHUP only");
            None
        }
    };

    record_launch(&gw.paths.state_dir, &launch);
    gw.set_phase(Phase::Running);
    // Started once running, so its first tick sees a serving daemon.
    tokio::spawn(heartbeat::run(gw.clone()));
    // Channel accounts connect once the gateway serves: a message they take is answered at once.
    gw.channels.configure(&gw.active().config);
    // Jobs missed while the daemon was down are caught up now that it serves.
    gw.scheduler.start(&gw.active().config);
    gw.notifier.ready(&gw.status_line());
    tracing::info!(
        event = "ready",
        addr = %listen_addr,
        socket = %socket.display(),
        config = %gw.config_file().display(),
        pid = std::process::id(),
        "gatewayd ready"
    );

    let reason = gw.exiting().await;
    gw.set_phase(Phase::Draining);
    gw.scheduler.stop();
    gw.agents.refuse_new();
    let budget = Duration::from_millis(gw.active().config.gateway.shutdown.drain_timeout_ms.get());
    gw.notifier.stopping(&format!("Draining (up to {} ms)", budget.as_millis()));
    tracing::info!(event = "draining", reason = ?reason, budget_ms = budget.as_millis() as u64, "shutting down");
    let _ = http_task.await;
    let _ = control_task.await;
    // WebSocket runs belong to no request that the drain waits for, and their clients are
    // about to be closed: abort them first, so each client gets its run's `aborted` event
    // before the `shutdown` event and the close.
    let ws_runs = gw.agents.abort_where(|origin| origin == RunOrigin::Ws, Duration::from_secs(2)).await;
    if ws_runs > 0 {
        tracing::warn!(runs = ws_runs, "WebSocket runs did not record their end in time");
    }
    let restart_expected = (reason == ExitReason::Restart).then_some(1_000);
    let why = match reason {
        ExitReason::Stop => "gateway stopping",
        ExitReason::Restart => "gateway restarting",
    };
    gw.events.publish(&CoreEvent::Shutdown { reason: why, restart_expected_ms: restart_expected });
    // Requests in flight get most of the budget to finish. A run still streaming after that (a
    // stalled upstream, a long answer) is aborted, so its client gets the documented
    // `run_aborted` end of its stream rather than a connection cut when the budget runs out.
    let margin = (budget / 4).min(Duration::from_secs(1));
    let mut left = listener::drain(&gw, budget - margin).await;
    if left > 0 {
        let unrecorded = gw.agents.abort_where(|origin| origin != RunOrigin::Ws, margin / 2).await;
        if unrecorded > 0 {
            tracing::warn!(runs = unrecorded, "HTTP runs did not record their end in time");
        }
        left = listener::drain(&gw, margin / 2).await;
    }
    if left > 0 {
        tracing::warn!(connections = left, "drain budget spent; closing the remaining connections");
    }
    // Runs still going (WebSocket runs outlive their connection) end as aborted, recorded.
    let running = gw.agents.active_runs();
    if running > 0 {
        let left = gw.agents.abort_all(Duration::from_secs(2)).await;
        tracing::info!(runs = running, unrecorded = left, "aborted the runs still going");
    }
    let _ = std::fs::remove_file(&socket);
    tracing::info!(event = "stopped", reason = ?reason, "gatewayd stopped");
    Ok(reason)
}

/// Builds the gateway from a prepared config: its store, device registry, sign-ins and password.
fn assemble(
    profile: Profile,
    paths: Paths,
    overrides: Overrides,
    prepared: reload::Prepared,
    logs: logging::LogControl,
    listen_addr: std::net::SocketAddr,
) -> Result<Arc<Gateway>, Fatal> {
    let active = Active {
        config: prepared.config,
        generation: 1,
        file_exists: prepared.file_exists,
        token: prepared.token,
        token_source: prepared.token_source,
        hooks_token: prepared.hooks_token,
        provider_keys: prepared.provider_keys,
        file_keys: prepared.file_keys,
    };
    let store_path = paths.state_dir.join("gateway.db");
    let store = crate::core::store::Store::open(&store_path).map_err(|e| match disk_full(&paths.state_dir) {
        Some(full) => Fatal::new(
            exit::DISK_FULL,
            format!(
                "cannot open the state database {}: {full}. Free some space there, then start gatewayd again; \
                 the database is not damaged and nothing needs moving (exit 74: the unit does not restart on it)",
                store_path.display()
            ),
        ),
        None => Fatal::new(exit::FAILURE, e),
    })?;
    let store = Arc::new(store);
    let key_file = paths.device_key_file();
    let key = crate::runtime::devices::TokenKey::load_or_create(&key_file).map_err(|e| {
        Fatal::new(
            exit::FAILURE,
            format!(
                "cannot read or create the device token key {}: {e}; check that the state dir belongs to this user",
                key_file.display()
            ),
        )
    })?;
    let devices = crate::runtime::devices::Devices::new(store.clone(), key);
    let signins = crate::core::signin_store::SignIns::new(store);
    let password_file = paths.password_file();
    let password = crate::core::password::Password::load(&password_file, overrides.password.as_deref())
        .map_err(|e| {
            Fatal::new(
                exit::FAILURE,
                format!("cannot use the password file {}: {e}", password_file.display()),
            )
        })?;
    Ok(Gateway::new(
        profile,
        paths,
        overrides,
        listen_addr,
        Supervisor::detect(),
        active,
        logs,
        devices,
        password,
        signins,
    ))
}

/// A gateway assembled as `run` assembles it, in `dir`, from the config text `config`, that
/// serves no port and no control socket: the fuzz targets (daemon/fuzz) drive its two routers
/// in process. Call it once per process (it installs the global log subscriber), inside a
/// tokio runtime.
pub fn embedded(dir: &std::path::Path, config: &str) -> Result<Embedded, String> {
    let paths = Paths {
        config_file: dir.join("gateway.toml"),
        state_dir: dir.join("state"),
        runtime_dir: dir.join("run"),
    };
    fsutil::ensure_private_dir(&paths.state_dir).map_err(|e| e.to_string())?;
    std::fs::write(&paths.config_file, config).map_err(|e| e.to_string())?;
    let profile = Profile::new(None, false).map_err(|e| e.to_string())?;
    let overrides = Overrides::default();
    let prepared = reload::prepare(&paths.config_file, &profile, &overrides, &paths.token_file())
        .map_err(|issues| format!("invalid configuration: {issues:?}"))?;
    let logs = logging::init(logging::Setup {
        format: logging::LogFormat::Text,
        verbose: false,
        logging: &prepared.config.logging,
        file: paths.log_file(),
        profile: None,
    })
    .map_err(|e| e.to_string())?;
    let addr = prepared.addr;
    let configured_password = prepared.password.clone();
    let gw = assemble(profile, paths, overrides, prepared, logs, addr).map_err(|f| f.message)?;
    gw.password.configure(configured_password.as_deref());
    gw.set_phase(Phase::Running);
    Ok(Embedded {
        http: router::router(gw.clone()),
        control: control::router(gw.clone()),
        token: gw.active().token.clone(),
        gateway: gw,
    })
}

/// What [`embedded`] returns.
pub struct Embedded {
    pub gateway: Arc<Gateway>,
    /// The main port's router.
    pub http: axum::Router,
    /// The control socket's router.
    pub control: axum::Router,
    pub token: String,
}

/// Writes `STATE_DIR/launch.json` (see [`api::LaunchRecord`]); a failure costs only that
/// `gatewayctl start` after a stop starts with the config's settings, so it is logged, not fatal.
fn record_launch(state_dir: &std::path::Path, launch: &api::LaunchRecord) {
    let file = state_dir.join(api::LaunchRecord::FILE);
    let json = serde_json::to_vec_pretty(launch).expect("plain JSON");
    // The same record again (a restart in place, the same command) writes nothing: a full disk
    // must not lose its last blocks to it.
    if std::fs::read(&file).is_ok_and(|old| old == json) {
        return;
    }
    let tmp = file.with_extension("json.tmp");
    let written = std::fs::write(&tmp, &json)
        .and_then(|()| fsutil::make_private(&tmp))
        .and_then(|()| std::fs::rename(&tmp, &file));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        tracing::warn!(file = %file.display(), error = %e, "cannot record this launch's flags; `gatewayctl start` after a stop will not reuse them");
    }
}

/// `disk full on /x (12 KB free)` when the filesystem holding `dir` has (almost) no space left.
fn disk_full(dir: &std::path::Path) -> Option<String> {
    gateway_proto::disk::Space::of(dir).ok().filter(|s| s.full()).map(|s| s.describe())
}

async fn handle_signals(gw: Arc<Gateway>) {
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) =
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup()))
    else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => stop_or_give_up(&gw),
            _ = int.recv() => stop_or_give_up(&gw),
            _ = hup.recv() => {
                let gw = gw.clone();
                tokio::spawn(async move { reload::reload(&gw, ReloadTrigger::Signal).await });
            }
        }
    }
}

/// The first SIGTERM or SIGINT drains; a second one, during the drain, exits at once.
fn stop_or_give_up(gw: &Gateway) {
    if gw.exit_reason().is_some() {
        tracing::warn!(event = "stopped", "second stop signal during the drain: exiting now");
        std::process::exit(exit::FAILURE);
    }
    gw.request_exit(ExitReason::Stop);
}

/// Comes back with the new config: a supervisor restarts us on exit code 75; on our own we
/// replace the process image (same PID, same arguments).
fn restart(exe: Option<PathBuf>) -> i32 {
    if Supervisor::detect() != Supervisor::None {
        return exit::RESTART;
    }
    let Some(exe) = exe.and_then(|p| CString::new(p.into_os_string().into_encoded_bytes()).ok()) else {
        eprintln!("gatewayd: cannot find my own executable to restart; exiting with code 75");
        return exit::RESTART;
    };
    let args: Vec<CString> =
        std::env::args_os().filter_map(|a| CString::new(a.into_encoded_bytes()).ok()).collect();
    let err = nix::unistd::execv(&exe, &args).unwrap_err();
    eprintln!("gatewayd: cannot restart {}: {err}; exiting with code 75", exe.to_string_lossy());
    exit::RESTART
}
