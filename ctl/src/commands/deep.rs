//! `status --deep`: the service manager's view, a probe over the control socket and one over the
//! TCP port, who holds the port, the config path in use, other gateways, and a verdict.

use std::fmt::Write as _;

use anyhow::Result;
use gateway_proto::exit;
use serde::Serialize;

use super::service_cmd::{describe_failure, Service};
use super::Ctx;
use crate::output::{duration, print_json};
use crate::service::probe::{self, Holder, OtherGateway};
use crate::service::systemctl::UnitState;
use crate::service::Manager;

/// The JSON of `status --deep --json` (documented in docs/control-api.md).
#[derive(Debug, Serialize)]
pub struct Deep {
    pub profile: String,
    pub manager: Manager,
    pub service: ServiceView,
    pub control: ControlProbe,
    pub rpc: RpcProbe,
    pub port: u16,
    pub port_holders: Vec<Holder>,
    pub config: ConfigPaths,
    pub others: Vec<OtherGateway>,
    /// Why the service is down, when its manager reports it failed; null otherwise.
    pub failure: Option<Failure>,
    /// The filesystem holding the state dir; null when it cannot be looked at.
    pub disk: Option<Disk>,
    /// The chat channel accounts, as the running gatewayd reports them (empty when it does not answer).
    pub channels: Vec<super::channels::AccountState>,
    pub verdict: Verdict,
}

/// The filesystem holding the state dir.
#[derive(Debug, Serialize)]
pub struct Disk {
    pub mount: String,
    pub free_bytes: u64,
    /// Under 1 MB free: SQLite cannot commit.
    pub full: bool,
    /// `disk full on /var (12 KB free)`, or how much is free.
    pub summary: String,
}

impl Disk {
    pub fn of(dir: &std::path::Path) -> Option<Self> {
        let space = gateway_proto::disk::Space::of(dir).ok()?;
        Some(Self {
            mount: space.mount.display().to_string(),
            free_bytes: space.free_bytes,
            full: space.full(),
            summary: if space.full() {
                space.describe()
            } else {
                format!(
                    "{} free on {}",
                    gateway_proto::disk::human_bytes(space.free_bytes),
                    space.mount.display()
                )
            },
        })
    }
}

/// A failed service: what happened, the last log lines, and the command that recovers it.
#[derive(Debug, Serialize)]
pub struct Failure {
    /// One line for people: `systemd gave up after 5 restarts in 120 s; last: killed by SIGKILL`.
    pub summary: String,
    /// The manager stopped restarting it (systemd's start limit, launchd's throttle).
    pub gave_up: bool,
    /// Automatic restarts since it was last started by hand.
    pub restarts: u32,
    /// How the last run ended: `killed by SIGKILL`, `exit status 1`, `watchdog timeout ...`.
    pub last_failure: Option<String>,
    /// The last run exited 78: the config is invalid.
    pub config_error: bool,
    /// When it went down, as the manager prints it.
    pub since: Option<String>,
    /// The last journal lines of the instance and of the manager about it (systemd only).
    pub log: Vec<String>,
    /// The one command that brings it back.
    pub recover: String,
}

#[derive(Debug, Serialize)]
pub struct ServiceView {
    pub installed: bool,
    /// `gatewayd.service`, or the launchd label.
    pub name: String,
    pub file: Option<String>,
    pub enabled: Option<bool>,
    /// systemd's properties; null without systemd.
    pub unit: Option<UnitState>,
    /// Why the manager could not be asked.
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ControlProbe {
    pub socket: String,
    pub ok: bool,
    pub error: Option<String>,
    pub pid: Option<u32>,
    pub version: Option<String>,
    pub state: Option<String>,
    pub uptime_ms: Option<u64>,
    pub supervisor: Option<String>,
    /// The daemon's own `health_state` and the reasons for it.
    pub health_state: Option<String>,
    pub health_reasons: Vec<String>,
    /// Scheduled jobs and the rollout gate.
    pub events: Option<gateway_proto::cron::EventsInfo>,
}

#[derive(Debug, Serialize)]
pub struct RpcProbe {
    /// The address probed (the daemon's listener, else the configured port on loopback).
    pub addr: String,
    pub ok: bool,
    pub http_status: Option<u16>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ConfigPaths {
    /// The file gatewayctl resolves for this profile.
    pub cli: String,
    /// The file the running gatewayd reads; null when it does not answer.
    pub service: Option<String>,
    pub same: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct Verdict {
    /// `running`, `starting`, `draining`, `failed` or `stopped`.
    pub runtime: String,
    /// `ok` (this instance answered), `failed`, or `other` (another gateway holds the port and
    /// answered in its place).
    pub rpc_probe: String,
    pub healthy: bool,
    pub problems: Vec<Problem>,
}

#[derive(Debug, Serialize)]
pub struct Problem {
    pub what: String,
    pub fix: String,
}

pub fn deep(ctx: &Ctx, json: bool) -> Result<i32> {
    let report = gather(ctx)?;
    if json {
        print_json(&report)?;
    } else {
        print!("{}", render(&report));
    }
    Ok(if report.verdict.healthy { exit::OK } else { exit::FAILURE })
}

pub fn gather(ctx: &Ctx) -> Result<Deep> {
    let paths = ctx.paths()?;
    let svc = Service::new(ctx, false);
    let service = service_view(&svc);
    let status = ctx.client()?.status();
    let control = ControlProbe {
        socket: paths.socket().display().to_string(),
        ok: status.is_ok(),
        error: status.as_ref().err().map(|e| e.to_string().lines().next().unwrap_or_default().to_owned()),
        pid: status.as_ref().ok().map(|s| s.pid),
        version: status.as_ref().ok().map(|s| s.version.clone()),
        state: status.as_ref().ok().map(|s| s.state.clone()),
        uptime_ms: status.as_ref().ok().map(|s| s.uptime_ms),
        supervisor: status.as_ref().ok().map(|s| s.supervisor.clone()),
        health_state: status.as_ref().ok().and_then(|s| s.health_state.clone()),
        health_reasons: status.as_ref().map(|s| s.health_reasons.clone()).unwrap_or_default(),
        events: status.as_ref().ok().and_then(|s| s.events.clone()),
    };
    let port = match &status {
        Ok(s) => s.listen.port,
        Err(_) => probe::configured_port(&ctx.profile, &paths.config_file),
    };
    let addr = status.as_ref().map_or_else(|_| format!("127.0.0.1:{port}"), |s| s.listen.addr.clone());
    let rpc = match probe::rpc_probe(&addr) {
        Ok(code) => RpcProbe { addr, ok: code == 200, http_status: Some(code), error: None },
        Err(e) => RpcProbe { addr, ok: false, http_status: None, error: Some(e) },
    };
    let cli_config = paths.config_file.display().to_string();
    // Said by the running gatewayd; else read off the installed user unit.
    let service_config = match &status {
        Ok(s) => Some(s.config.path.clone()),
        Err(_) if svc.manager == Manager::Systemd => svc
            .file()
            .ok()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .zip(crate::service::home().ok())
            .map(|(unit, home)| {
                crate::service::unit::config_path_of(&unit, &ctx.profile.dir_name(), &home)
                    .display()
                    .to_string()
            }),
        Err(_) => None,
    };
    let config = ConfigPaths {
        same: service_config.as_ref().map(|s| *s == cli_config),
        cli: cli_config,
        service: service_config,
    };
    let mut report = Deep {
        profile: ctx.profile.name().unwrap_or("default").to_owned(),
        manager: svc.manager,
        service,
        control,
        rpc,
        port,
        port_holders: probe::holders(port),
        config,
        others: probe::other_gateways(&ctx.profile, &paths.runtime_dir),
        failure: None,
        // The state dir may not exist yet: then its nearest existing parent's filesystem.
        disk: paths.state_dir.ancestors().find(|p| p.exists()).and_then(Disk::of),
        channels: match &status {
            Ok(_) => {
                ctx.client()?.channels(false).map(|r| super::channels::account_states(&r)).unwrap_or_default()
            }
            Err(_) => Vec::new(),
        },
        verdict: Verdict {
            runtime: String::new(),
            rpc_probe: String::new(),
            healthy: false,
            problems: Vec::new(),
        },
    };
    report.failure = failure(ctx, &report, &svc);
    report.verdict = verdict(&report, &svc);
    Ok(report)
}

/// How many journal lines a failure report shows.
const FAILURE_LOG_LINES: usize = 12;

fn failure(ctx: &Ctx, r: &Deep, svc: &Service) -> Option<Failure> {
    let unit = r.service.unit.as_ref().filter(|u| u.installed() && (u.failed() || u.gave_up()))?;
    let flag = super::service_cmd::profile_flag(&ctx.profile);
    let config_error = unit.config_error();
    let last = unit.last_failure().map(|l| format!("; last: {l}")).unwrap_or_default();
    let summary = if unit.gave_up() {
        let who =
            if svc.manager == Manager::Launchd { "launchd throttled its respawn" } else { "systemd gave up" };
        format!("{who} after {}{last}", unit.restarts_summary())
    } else if config_error {
        "gatewayd exited with status 78: its config is invalid".to_owned()
    } else {
        format!("it failed{last}")
    };
    Some(Failure {
        summary,
        gave_up: unit.gave_up(),
        restarts: unit.n_restarts,
        last_failure: unit.last_failure(),
        config_error,
        since: Some(unit.inactive_enter_timestamp.clone()).filter(|t| !t.is_empty()),
        log: if svc.manager == Manager::Systemd {
            super::journal::recent(&ctx.profile, FAILURE_LOG_LINES)
        } else {
            Vec::new()
        },
        recover: if config_error {
            format!("gatewayctl{flag} config validate, fix what it names, then gatewayctl{flag} start")
        } else {
            format!("gatewayctl{flag} start")
        },
    })
}

fn service_view(svc: &Service) -> ServiceView {
    let file = svc.file().ok();
    let mut view = ServiceView {
        installed: false,
        name: match svc.manager {
            Manager::Launchd => crate::service::launchd::label(&svc.profile),
            _ => svc.unit(),
        },
        file: file.as_ref().filter(|f| f.exists()).map(|f| f.display().to_string()),
        enabled: None,
        unit: None,
        error: None,
    };
    match svc.unit_state() {
        Some(Ok(state)) => {
            view.installed = state.installed();
            if view.installed {
                view.file = Some(state.fragment_path.clone());
                view.enabled = Some(state.unit_file_state == "enabled");
            }
            view.unit = Some(state);
        }
        Some(Err(e)) => view.error = Some(format!("{e:#}")),
        None => view.installed = view.file.is_some(),
    }
    view
}

fn verdict(r: &Deep, svc: &Service) -> Verdict {
    let mut problems = Vec::new();
    let mut add = |what: String, fix: String| problems.push(Problem { what, fix });
    let unit = r.service.unit.as_ref().filter(|u| u.installed());
    let runtime = match (&r.control.state, unit) {
        (Some(state), _) => state.clone(),
        (None, Some(u)) if u.active_state == "failed" => "failed".to_owned(),
        (None, Some(u)) if u.active_state == "activating" => "starting".to_owned(),
        _ => "stopped".to_owned(),
    };
    if let Some(e) = &r.service.error {
        add(format!("the service manager does not answer: {e}"), "check `systemctl --user status`".into());
    }
    match (r.control.ok, unit) {
        (false, Some(u)) => add(
            format!("{} is {}", r.service.name, describe_failure(u, svc.manager)),
            match &r.failure {
                Some(f) => f.recover.clone(),
                None => "gatewayctl logs -n 50; fix what it says, then gatewayctl start".into(),
            },
        ),
        (false, None) if r.service.installed => add(
            format!("{} is installed but gatewayd does not answer on {}", r.service.name, r.control.socket),
            "gatewayctl start; gatewayctl logs -n 50".into(),
        ),
        (false, None) => add(
            format!("gatewayd is not running (nothing answers on {})", r.control.socket),
            match r.manager {
                Manager::None => "gatewayctl start".into(),
                _ => "gatewayctl install (run it as a service), or gatewayctl start".into(),
            },
        ),
        (true, Some(u)) if u.main_pid != 0 && Some(u.main_pid) != r.control.pid => add(
            format!(
                "the control socket is answered by pid {}, not by the service's main pid {}",
                r.control.pid.unwrap_or_default(),
                u.main_pid
            ),
            "stop the gatewayd started by hand, then gatewayctl restart".into(),
        ),
        _ => {}
    }
    if r.service.enabled == Some(false) {
        add(
            format!("{} is not enabled: it will not start at login or boot", r.service.name),
            format!("systemctl --user enable {}", r.service.name),
        );
    }
    if r.control.ok && !r.rpc.ok {
        add(
            format!(
                "gatewayd runs but {} does not answer: {}",
                r.rpc.addr,
                r.rpc
                    .error
                    .clone()
                    .unwrap_or_else(|| format!("HTTP {}", r.rpc.http_status.unwrap_or_default()))
            ),
            "gatewayctl doctor".into(),
        );
    }
    for h in r.port_holders.iter().filter(|h| h.gatewayd && Some(h.pid) != r.control.pid) {
        let (what, fix) = match other_profile(r, h.pid) {
            Some(name) => (
                format!("port {} is held by another gateway (pid {}, profile {name})", r.port, h.pid),
                format!("stop it (`gatewayctl --profile {name} stop`), or give one of them another gateway.port"),
            ),
            None => (
                format!("port {} is held by another gateway (pid {})", r.port, h.pid),
                format!("find its profile (`ps -o args= -p {}`) and stop it, or give one of them another gateway.port", h.pid),
            ),
        };
        add(what, fix);
    }
    for h in r.port_holders.iter().filter(|h| !h.gatewayd) {
        add(
            format!(
                "port {} is held by another program: pid {} ({})",
                r.port,
                h.pid,
                h.exe.as_deref().unwrap_or("unknown")
            ),
            "stop that program, or set gateway.port to a free port".into(),
        );
    }
    for s in r.channels.iter().filter(|s| s.failing) {
        add(
            format!(
                "channel account {} {} keeps failing to connect: {}",
                s.channel,
                s.account,
                s.last_error.as_deref().unwrap_or("no error recorded")
            ),
            "gatewayctl channels status --probe says why; fix the account in the config (docs/channels.md)"
                .into(),
        );
    }
    if let Some(space) = &r.disk.as_ref().filter(|s| s.full) {
        add(
            format!("{} (the state dir is there): gatewayd cannot keep what it is given", space.summary),
            format!("free some space on {}; gatewayd recovers by itself once writes work", space.mount),
        );
    }
    if r.config.same == Some(false) {
        add(
            format!(
                "the service reads {} but gatewayctl resolves {}",
                r.config.service.as_deref().unwrap_or_default(),
                r.config.cli
            ),
            "gatewayctl install (the unit gets this shell's environment), or run gatewayctl with the service's environment".into(),
        );
    }
    for o in r.others.iter().filter(|o| o.port == Some(r.port) && r.control.ok) {
        add(
            format!("profile {} also uses port {}", o.name, r.port),
            "give each profile its own gateway.port".into(),
        );
    }
    let rpc_probe = match (r.rpc.ok, reached_other(r)) {
        (_, true) => "other",
        (true, false) => "ok",
        (false, false) => "failed",
    }
    .to_owned();
    let healthy = problems.is_empty() && runtime == "running" && rpc_probe == "ok";
    Verdict { runtime, rpc_probe, healthy, problems }
}

/// Whether the probe was answered by another gateway than this instance: something answered,
/// and this instance does not run, or runs but does not hold the port.
fn reached_other(r: &Deep) -> bool {
    let ours = match r.control.pid {
        Some(pid) => r.port_holders.is_empty() || r.port_holders.iter().any(|h| h.pid == pid),
        None => false,
    };
    r.rpc.http_status.is_some() && !ours
}

/// The profile of another running gateway with this pid, if it answers on its socket.
fn other_profile(r: &Deep, pid: u32) -> Option<&str> {
    r.others.iter().find(|o| o.pid == Some(pid)).map(|o| o.name.as_str())
}

fn render(r: &Deep) -> String {
    let mut o = String::new();
    let s = &r.service;
    let kind = match r.manager {
        Manager::Systemd => "systemd user unit",
        Manager::Launchd => "launchd agent",
        Manager::None => "no service manager",
    };
    let _ = writeln!(o, "Profile: {}", r.profile);
    if r.manager == Manager::None {
        let _ = writeln!(o, "Service: none (no service manager on this host)");
    } else if !s.installed {
        let _ = writeln!(o, "Service: {kind} {} not installed (gatewayctl install)", s.name);
    } else {
        let enabled = match s.enabled {
            Some(true) => ", enabled",
            Some(false) => ", not enabled",
            None => "",
        };
        let _ = writeln!(o, "Service: {kind} {} ({}){enabled}", s.name, s.file.as_deref().unwrap_or("?"));
    }
    if let Some(u) = s.unit.as_ref().filter(|u| u.installed()) {
        let last = if u.exec_main_code.is_empty() {
            "none".to_owned()
        } else {
            format!("{} {}", u.exec_main_code, u.exec_main_status)
        };
        let _ = writeln!(
            o,
            "Unit: {} ({}), main pid {}, restarts {}, last exit {last}, result {}",
            u.active_state, u.sub_state, u.main_pid, u.n_restarts, u.result
        );
        // What gatewayd last told systemd; once it is gone, that text is stale.
        if !u.status_text.is_empty() && !matches!(u.active_state.as_str(), "failed" | "inactive") {
            let _ = writeln!(o, "Unit status: {}", u.status_text);
        }
    }
    if let Some(e) = &s.error {
        let _ = writeln!(o, "Service manager: {e}");
    }
    if let Some(f) = &r.failure {
        let since = f.since.as_deref().map(|t| format!(" (since {t})")).unwrap_or_default();
        let _ = writeln!(o, "Failure: {}{since}", f.summary);
        if !f.log.is_empty() {
            let _ = writeln!(o, "Last log lines:");
            for line in &f.log {
                let _ = writeln!(o, "  {line}");
            }
        }
        let _ = writeln!(o, "Recover: {}", f.recover);
    }
    let c = &r.control;
    match (&c.pid, &c.error) {
        (Some(pid), _) => {
            let _ = writeln!(
                o,
                "Runtime: {} (pid {pid}, version {}, up {}, supervisor {})",
                r.verdict.runtime,
                c.version.as_deref().unwrap_or("?"),
                duration(c.uptime_ms.unwrap_or_default()),
                c.supervisor.as_deref().unwrap_or("?")
            );
            let _ = writeln!(o, "Control socket: ok ({})", c.socket);
            if let Some(state) = &c.health_state {
                let why = if c.health_reasons.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", c.health_reasons.join(", "))
                };
                let _ = writeln!(o, "Daemon health: {state}{why}");
            }
            if let Some(e) = &c.events {
                let _ = write!(o, "Scheduled jobs: {}", super::cron::events_text(e));
            }
        }
        (None, e) => {
            let _ = writeln!(o, "Runtime: {}", r.verdict.runtime);
            let _ = writeln!(o, "Control socket: no answer ({})", e.as_deref().unwrap_or(&c.socket));
        }
    }
    match (&r.rpc.http_status, &r.rpc.error) {
        (Some(code), _) if r.verdict.rpc_probe == "other" => {
            let who = match r.port_holders.iter().find(|h| h.gatewayd).or(r.port_holders.first()) {
                Some(h) if h.gatewayd => match other_profile(r, h.pid) {
                    Some(name) => format!("another gateway (pid {}, profile {name})", h.pid),
                    None => format!("another gateway (pid {})", h.pid),
                },
                Some(h) => format!("pid {} ({})", h.pid, h.exe.as_deref().unwrap_or("unknown")),
                None => "a process of another user".to_owned(),
            };
            let _ = writeln!(
                o,
                "RPC probe: other (GET http://{}/healthz: {code}, answered by {who}, not this instance)",
                r.rpc.addr
            );
        }
        (Some(code), _) => {
            let _ =
                writeln!(o, "RPC probe: {} (GET http://{}/healthz: {code})", r.verdict.rpc_probe, r.rpc.addr);
        }
        (None, e) => {
            let _ = writeln!(o, "RPC probe: {} ({})", r.verdict.rpc_probe, e.as_deref().unwrap_or(""));
        }
    }
    let holders = if r.port_holders.is_empty() {
        "nobody (or a process of another user)".to_owned()
    } else {
        r.port_holders
            .iter()
            .map(|h| format!("pid {} ({})", h.pid, h.exe.as_deref().unwrap_or("unknown")))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(o, "Port {}: {holders}", r.port);
    match &r.config.service {
        Some(p) if r.config.same == Some(true) => {
            let _ = writeln!(o, "Config: {p} (the service and gatewayctl read the same file)");
        }
        Some(p) => {
            let _ = writeln!(o, "Config: the service reads {p}; gatewayctl resolves {}", r.config.cli);
        }
        None => {
            let _ = writeln!(o, "Config: {} (as gatewayctl resolves it)", r.config.cli);
        }
    }
    if let Some(disk) = &r.disk {
        let _ = writeln!(o, "Disk: {}", disk.summary);
    }
    if r.control.ok {
        let _ = writeln!(o, "Channels: {}", super::channels::summary(&r.channels));
    }
    if r.others.is_empty() {
        let _ = writeln!(o, "Other gateways: none");
    } else {
        for g in &r.others {
            let _ = writeln!(o, "Other gateway: {} {}: {}", g.kind, g.name, g.detail);
        }
    }
    if r.verdict.healthy {
        let _ = writeln!(o, "Verdict: healthy");
    } else {
        let _ = writeln!(o, "Verdict: {} problem(s)", r.verdict.problems.len().max(1));
        for p in &r.verdict.problems {
            let _ = writeln!(o, "  - {}\n    fix: {}", p.what, p.fix);
        }
    }
    o
}
