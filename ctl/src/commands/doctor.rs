//! `doctor [--fix] [--yes] [--json]`: checks of the installed service, the files and the host,
//! each with an id, a severity, what was found and how to fix it; `--fix` repairs what is safe.

use std::io::{BufRead, IsTerminal, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use anyhow::Result;
use gateway_proto::api::StatusReport;
use gateway_proto::{exit, Paths};
use serde::Serialize;

use super::service_cmd::Service;
use super::Ctx;
use crate::client::{Error, Silence};
use crate::output::print_json;
use crate::service::{probe, systemctl, unit, Manager};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Ok,
    Warning,
    Error,
}

/// A repair `--fix` can make.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Repair {
    /// Rewrite the unit (keeping a backup), reload the manager, restart the service.
    RewriteUnit,
    Enable,
    Chmod(std::path::PathBuf, u32),
    RemoveSocket(std::path::PathBuf),
    Restart,
    /// Clear a failed unit (`reset-failed`) and start it.
    Recover,
}

#[derive(Debug, Serialize)]
pub struct Check {
    pub id: &'static str,
    pub severity: Severity,
    pub finding: String,
    /// What to do about it (empty when ok).
    pub fix: String,
    /// `--fix` can repair it.
    pub fixable: bool,
    /// After `--fix`: whether the repair worked (null when not attempted).
    pub fixed: Option<bool>,
    #[serde(skip)]
    repair: Option<Repair>,
}

impl Check {
    fn ok(id: &'static str, finding: impl Into<String>) -> Self {
        Self {
            id,
            severity: Severity::Ok,
            finding: finding.into(),
            fix: String::new(),
            fixable: false,
            fixed: None,
            repair: None,
        }
    }

    fn bad(
        id: &'static str,
        severity: Severity,
        finding: String,
        fix: String,
        repair: Option<Repair>,
    ) -> Self {
        Self { id, severity, finding, fix, fixable: repair.is_some(), fixed: None, repair }
    }
}

#[derive(Serialize)]
struct Report<'a> {
    checks: &'a [Check],
    errors: usize,
    warnings: usize,
    exit_code: i32,
}

pub fn doctor(ctx: &Ctx, fix: bool, yes: bool, json: bool) -> Result<i32> {
    let mut checks = run_checks(ctx)?;
    if fix && checks.iter().any(|c| c.repair.is_some()) {
        let approved = yes || confirm(&checks)?;
        if approved {
            let _serial = crate::service::serial::Serial::acquire(ctx, "doctor --fix")?;
            apply(ctx, &mut checks);
            // Report the state after the repairs, keeping what each repair did.
            let outcome: Vec<(&'static str, Option<bool>)> = checks.iter().map(|c| (c.id, c.fixed)).collect();
            checks = run_checks(ctx)?;
            for (id, fixed) in outcome.into_iter().filter(|(_, f)| f.is_some()) {
                if let Some(c) = checks.iter_mut().find(|c| c.id == id) {
                    c.fixed = fixed;
                } else {
                    checks.push(Check { fixed, ..Check::ok(id, "repaired") });
                }
            }
        } else if !json {
            println!("nothing changed (add --yes to repair without asking)");
        }
    }
    let errors = checks.iter().filter(|c| c.severity == Severity::Error).count();
    let warnings = checks.iter().filter(|c| c.severity == Severity::Warning).count();
    let code = if errors > 0 {
        2
    } else if warnings > 0 {
        1
    } else {
        exit::OK
    };
    if json {
        print_json(&Report { checks: &checks, errors, warnings, exit_code: code })?;
    } else {
        for c in &checks {
            let mark = match c.severity {
                Severity::Ok => "ok   ",
                Severity::Warning => "WARN ",
                Severity::Error => "ERROR",
            };
            println!("{mark} {}: {}", c.id, c.finding);
            match c.fixed {
                Some(true) => println!("      fixed"),
                Some(false) => println!("      could not fix it: {}", c.fix),
                None if !c.fix.is_empty() => {
                    let how = if c.fixable { " (gatewayctl doctor --fix does it)" } else { "" };
                    println!("      fix: {}{how}", c.fix);
                }
                None => {}
            }
        }
        println!("{errors} error(s), {warnings} warning(s)");
    }
    Ok(code)
}

fn confirm(checks: &[Check]) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Ok(false);
    }
    println!("gatewayctl doctor --fix will:");
    for c in checks.iter().filter(|c| c.repair.is_some()) {
        println!("  {}: {}", c.id, c.fix);
    }
    print!("go ahead? [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

fn apply(ctx: &Ctx, checks: &mut [Check]) {
    let svc = Service::new(ctx, false);
    let mut restart = false;
    for c in checks.iter_mut() {
        let Some(repair) = c.repair.clone() else { continue };
        let result: Result<()> = (|| {
            match &repair {
                Repair::RewriteUnit => {
                    let text = svc.render(&ctx.paths()?)?;
                    let file = svc.file()?;
                    if let Some(b) = crate::service::write_with_backup(&file, &text)? {
                        eprintln!("rewrote {} (the edited copy is {})", file.display(), b.display());
                    }
                    svc.systemctl().daemon_reload()?;
                    restart = true;
                }
                Repair::Enable => {
                    svc.systemctl().run(&["enable", &svc.unit()])?;
                }
                Repair::Chmod(path, mode) => {
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(*mode))?;
                }
                Repair::RemoveSocket(path) => std::fs::remove_file(path)?,
                Repair::Restart => restart = true,
                Repair::Recover => {
                    if let Some(what) = super::service_cmd::recover(&svc)? {
                        eprintln!("{what}");
                    }
                    restart = true;
                }
            }
            Ok(())
        })();
        c.fixed = Some(result.is_ok());
        if let Err(e) = result {
            c.fix = format!("{e:#}; {}", c.fix);
        }
    }
    if restart && svc.installed() {
        let before = ctx.client().ok().and_then(|c| c.status().ok()).map(|s| s.pid);
        let restarted = svc
            .systemctl()
            .run(&["restart", &svc.unit()])
            .and_then(|_| super::service_cmd::wait_ready(ctx, before));
        match &restarted {
            Ok(ready) => eprintln!("{ready}"),
            Err(e) => eprintln!("restart after the repairs failed: {e:#}"),
        }
        if restarted.is_err() {
            for c in checks.iter_mut().filter(|c| c.repair == Some(Repair::Recover)) {
                c.fixed = Some(false);
            }
        }
    }
}

pub fn run_checks(ctx: &Ctx) -> Result<Vec<Check>> {
    let paths = ctx.paths()?;
    let svc = Service::new(ctx, false);
    let client = ctx.client()?;
    let status: Result<StatusReport, Error> = client.status();
    let mut checks = Vec::new();
    let config = config_check(ctx, &paths);
    service_checks(&svc, &paths, config.severity == Severity::Ok, &mut checks);
    checks.push(config);
    checks.extend(permission_checks(&paths));
    checks.extend(disk_check(&paths));
    checks.push(socket_check(&paths, &status));
    checks.extend(port_checks(ctx, &paths, &status));
    if svc.manager == Manager::Systemd {
        checks.push(journald_check());
    }
    if let Some(c) = version_check(&svc, &paths, &status) {
        checks.push(c);
    }
    checks.push(remote_check(ctx, status.is_ok()));
    if status.is_ok() {
        checks.push(channels_check(ctx));
    }
    Ok(checks)
}

fn service_checks(svc: &Service, paths: &Paths, config_ok: bool, checks: &mut Vec<Check>) {
    if svc.manager == Manager::None {
        checks.push(Check::ok(
            "service.manager",
            "no service manager on this host; gatewayd runs unsupervised",
        ));
        return;
    }
    let Ok(file) = svc.file() else { return };
    let Ok(installed) = std::fs::read_to_string(&file) else {
        checks.push(Check::bad(
            "service.installed",
            Severity::Warning,
            format!("{} is not installed ({} does not exist)", svc.unit(), file.display()),
            "gatewayctl install".into(),
            None,
        ));
        return;
    };
    match svc.render(paths) {
        Ok(expected) => {
            let drift = if svc.manager == Manager::Systemd {
                unit::drift(&installed, &expected)
            } else if installed == expected {
                Vec::new()
            } else {
                vec!["the plist differs".to_owned()]
            };
            if drift.is_empty() {
                checks.push(Check::ok(
                    "service.unit",
                    format!("{} is what `gatewayctl install` writes", file.display()),
                ));
            } else {
                let serious = drift.iter().any(|d| {
                    ["ExecStart=", "RestartPreventExitStatus=", "WatchdogSec=", "Type=", "Environment="]
                        .iter()
                        .any(|k| d.contains(k))
                });
                checks.push(Check::bad(
                    "service.unit",
                    if serious { Severity::Error } else { Severity::Warning },
                    format!(
                        "{} differs from what `gatewayctl install` would write: {}",
                        file.display(),
                        drift.join("; ")
                    ),
                    "rewrite it (a backup is kept), reload the manager and restart gatewayd".into(),
                    (svc.manager == Manager::Systemd).then_some(Repair::RewriteUnit),
                ));
            }
        }
        Err(e) => checks.push(Check::bad(
            "service.unit",
            Severity::Error,
            format!("cannot render the unit to compare: {e:#}"),
            "install gatewayd next to gatewayctl".into(),
            None,
        )),
    }
    if svc.manager != Manager::Systemd {
        return;
    }
    match svc.systemctl().show(&svc.unit()) {
        Ok(state) => {
            if state.unit_file_state == "enabled" {
                checks.push(Check::ok("service.enabled", format!("{} is enabled", svc.unit())));
            } else {
                checks.push(Check::bad(
                    "service.enabled",
                    Severity::Warning,
                    format!("{} is {}: it does not start at login", svc.unit(), state.unit_file_state),
                    format!("systemctl --user enable {}", svc.unit()),
                    Some(Repair::Enable),
                ));
            }
            if state.active_state == "inactive" {
                checks.push(Check::bad(
                    "service.running",
                    Severity::Warning,
                    format!("{} is installed but not running", svc.unit()),
                    "gatewayctl start".into(),
                    None,
                ));
            }
            if state.failed() || state.start_limit_hit() {
                let (fix, repair) = if config_ok {
                    (
                        "clear the failure (reset-failed) and start it: gatewayctl start".to_owned(),
                        Some(Repair::Recover),
                    )
                } else {
                    (
                        "fix the config first (gatewayctl config validate says where), then gatewayctl start"
                            .to_owned(),
                        None,
                    )
                };
                checks.push(Check::bad(
                    "service.failed",
                    Severity::Error,
                    format!(
                        "{} is {}",
                        svc.unit(),
                        super::service_cmd::describe_failure(&state, svc.manager)
                    ),
                    fix,
                    repair,
                ));
            }
        }
        Err(e) => checks.push(Check::bad(
            "service.manager",
            Severity::Error,
            format!("systemd does not answer: {e:#}"),
            "check that the user manager runs: systemctl --user status".into(),
            None,
        )),
    }
    let user = systemctl::current_user();
    if systemctl::linger_enabled(&user) {
        checks.push(Check::ok("service.linger", format!("lingering is on for {user}")));
    } else {
        checks.push(Check::bad(
            "service.linger",
            Severity::Warning,
            format!("lingering is off for {user}: gatewayd stops when {user} logs out"),
            format!("loginctl enable-linger {user}"),
            None,
        ));
    }
}

fn config_check(ctx: &Ctx, paths: &Paths) -> Check {
    let file = paths.config_file.display();
    match super::config_cmd::check(&ctx.profile, &paths.config_file) {
        Ok(true) => Check::ok("config.valid", format!("{file} is valid")),
        Ok(false) => Check::ok("config.valid", format!("no config file at {file}: defaults apply")),
        Err(issues) => Check::bad(
            "config.valid",
            Severity::Error,
            format!(
                "{file} is invalid: {}",
                issues.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
            ),
            "edit the file (gatewayctl config validate shows each error), then gatewayctl reload".into(),
            None,
        ),
    }
}

fn disk_check(paths: &Paths) -> Option<Check> {
    let disk = super::deep::Disk::of(paths.state_dir.ancestors().find(|p| p.exists())?)?;
    Some(if disk.full {
        Check::bad(
            "disk.space",
            Severity::Error,
            format!("{}: the state dir {} takes no writes", disk.summary, paths.state_dir.display()),
            format!("free some space on {}; gatewayd recovers by itself once writes work", disk.mount),
            None,
        )
    } else {
        Check::ok("disk.space", disk.summary)
    })
}

fn permission_checks(paths: &Paths) -> Vec<Check> {
    let mut out = Vec::new();
    for (id, path, mode) in [
        ("files.state_dir", paths.state_dir.clone(), 0o700),
        ("files.token", paths.token_file(), 0o600),
        ("files.password", paths.password_file(), 0o600),
        ("files.device_key", paths.device_key_file(), 0o600),
    ] {
        let Ok(meta) = std::fs::metadata(&path) else { continue };
        let actual = meta.permissions().mode() & 0o777;
        if actual & !mode == 0 {
            out.push(Check::ok(id, format!("{} is {actual:o}", path.display())));
        } else {
            out.push(Check::bad(
                id,
                Severity::Error,
                format!("{} is {actual:o}: others can read it", path.display()),
                format!("chmod {mode:o} {}", path.display()),
                Some(Repair::Chmod(path, mode)),
            ));
        }
    }
    out
}

fn socket_check(paths: &Paths, status: &Result<StatusReport, Error>) -> Check {
    let socket = paths.socket();
    match status {
        Ok(s) => Check::ok("socket", format!("gatewayd (pid {}) answers on {}", s.pid, socket.display())),
        Err(Error::NotRunning { why: Silence::Refused, .. }) if !lock_held(&paths.lock_file()) => Check::bad(
            "socket.stale",
            Severity::Warning,
            format!("{} is left over from a gatewayd that is gone", socket.display()),
            format!("rm {}", socket.display()),
            Some(Repair::RemoveSocket(socket)),
        ),
        Err(e) => Check::ok("socket", e.to_string().lines().next().unwrap_or_default().to_owned()),
    }
}

/// gatewayd holds an exclusive lock on the state dir's lock file while it runs.
fn lock_held(lock: &Path) -> bool {
    use nix::fcntl::{Flock, FlockArg};
    let Ok(file) = std::fs::File::open(lock) else { return false };
    Flock::lock(file, FlockArg::LockSharedNonblock).is_err()
}

fn port_checks(ctx: &Ctx, paths: &Paths, status: &Result<StatusReport, Error>) -> Vec<Check> {
    let mut out = Vec::new();
    let port = match status {
        Ok(s) => s.listen.port,
        Err(_) => probe::configured_port(&ctx.profile, &paths.config_file),
    };
    let own = status.as_ref().ok().map(|s| s.pid);
    let foreign: Vec<_> = probe::holders(port).into_iter().filter(|h| Some(h.pid) != own).collect();
    if foreign.is_empty() {
        out.push(Check::ok("port", format!("port {port} is free or held by this gatewayd")));
    } else {
        let who: Vec<String> = foreign
            .iter()
            .map(|h| format!("pid {} ({})", h.pid, h.exe.as_deref().unwrap_or("unknown")))
            .collect();
        let other_gateway = foreign.iter().all(|h| h.gatewayd);
        out.push(Check::bad(
            "port",
            Severity::Error,
            format!(
                "port {port} is held by {}{}",
                if other_gateway { "another gatewayd: " } else { "another program: " },
                who.join(", ")
            ),
            "stop it, or give this profile another gateway.port".into(),
            None,
        ));
    }
    let others = probe::other_gateways(&ctx.profile, &paths.runtime_dir);
    let state_dir = paths.state_dir.display().to_string();
    let shared: Vec<String> = others
        .iter()
        .filter(|o| o.port == Some(port) || o.state_dir.as_deref() == Some(state_dir.as_str()))
        .map(|o| format!("profile {} ({})", o.name, o.detail))
        .collect();
    if shared.is_empty() {
        out.push(Check::ok("gateways.shared", format!("no other gateway uses port {port} or {state_dir}")));
    } else {
        out.push(Check::bad(
            "gateways.shared",
            Severity::Error,
            format!("{} uses port {port} or the state dir {state_dir} too", shared.join(", ")),
            "give each profile its own port and state dir (docs/runbook.md, several gateways on one host)"
                .into(),
            None,
        ));
    }
    out
}

/// Chat channel accounts that keep failing to connect.
fn channels_check(ctx: &Ctx) -> Check {
    let states = match ctx.client().map(|c| c.channels(false)) {
        Ok(Ok(report)) => super::channels::account_states(&report),
        _ => return Check::ok("channels", "channel accounts: not reported by this gatewayd"),
    };
    let failing: Vec<String> = states
        .iter()
        .filter(|s| s.failing)
        .map(|s| {
            format!(
                "{} {} ({})",
                s.channel,
                s.account,
                s.last_error.as_deref().unwrap_or("no error recorded")
            )
        })
        .collect();
    if failing.is_empty() {
        let connected = states.iter().filter(|s| s.connected).count();
        return Check::ok("channels", format!("channel accounts: {connected} of {} connected", states.len()));
    }
    Check::bad(
        "channels",
        Severity::Warning,
        format!("channel accounts keep failing to connect: {}", failing.join("; ")),
        "gatewayctl channels status --probe says why; fix the account in the config (docs/channels.md)"
            .into(),
        None,
    )
}

/// The config in effect (the running daemon's, else the file's) against its own
/// `remote.profile`.
fn remote_check(ctx: &Ctx, running: bool) -> Check {
    let Ok((file_config, facts)) = super::remote::load(ctx) else {
        return Check::ok("remote", "remote access: not checked (the config does not load)");
    };
    let in_effect = running
        .then(|| ctx.client().ok()?.config().ok())
        .flatten()
        .and_then(|view| serde_json::from_value::<gateway_config::Config>(view.config).ok());
    let (config, whose) = match in_effect {
        Some(c) => (c, "the running gateway"),
        None => (file_config, "the config file"),
    };
    let posture = super::remote::inspect(config.remote.profile, &config, &facts);
    if posture.gate == "pass" {
        return Check::ok(
            "remote",
            format!("remote access: {} ({}), gate pass", posture.profile, posture.posture),
        );
    }
    Check::bad(
        "remote",
        Severity::Warning,
        format!(
            "{whose} does not keep remote.profile = {}: {}",
            posture.profile,
            posture.reason_codes.join(", ")
        ),
        format!(
            "{}; `gatewayctl remote inspect` says more",
            posture.recommendations.first().cloned().unwrap_or_default()
        ),
        None,
    )
}

fn journald_check() -> Check {
    let socket = Path::new("/run/systemd/journal/socket");
    let reads = Command::new("journalctl").args(["-n", "0", "--no-pager", "-q"]).output();
    match reads {
        Ok(o) if o.status.success() && socket.exists() => {
            Check::ok("journald", "journald takes and serves logs")
        }
        Ok(o) if !socket.exists() || !o.status.success() => Check::bad(
            "journald",
            Severity::Warning,
            format!(
                "journald is unreachable ({}): `gatewayctl logs` falls back to the log file",
                if socket.exists() {
                    String::from_utf8_lossy(&o.stderr).trim().to_owned()
                } else {
                    format!("no {}", socket.display())
                }
            ),
            "systemctl status systemd-journald".into(),
            None,
        ),
        _ => Check::bad(
            "journald",
            Severity::Warning,
            "cannot run journalctl: `gatewayctl logs` falls back to the log file".into(),
            "install systemd's journalctl".into(),
            None,
        ),
    }
}

/// The running daemon against the gatewayd binary the service would start.
fn version_check(svc: &Service, paths: &Paths, status: &Result<StatusReport, Error>) -> Option<Check> {
    let running = status.as_ref().ok()?;
    let spec = crate::service::Spec::current(&svc.profile, paths, false).ok()?;
    let out = Command::new(&spec.gatewayd).arg("--version").output().ok()?;
    let installed = String::from_utf8_lossy(&out.stdout).split_whitespace().nth(1)?.to_owned();
    Some(if installed == running.version {
        Check::ok(
            "version",
            format!("gatewayd {} runs, the installed binary is the same version", running.version),
        )
    } else {
        Check::bad(
            "version",
            Severity::Warning,
            format!(
                "gatewayd {} runs but {} is {installed}: it was upgraded without a restart",
                running.version,
                spec.gatewayd.display()
            ),
            "gatewayctl restart".into(),
            svc.installed().then_some(Repair::Restart),
        )
    })
}
