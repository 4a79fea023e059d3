//! `install`, `uninstall`, `start` and `restart`, and `stop` when a service manager runs gatewayd:
//! they go through systemd or launchd when the service is installed, and start gatewayd detached
//! when there is no manager.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use gateway_proto::api::{LaunchRecord, StatusReport};
use gateway_proto::{exit, Paths, Profile};

use super::lifecycle::poll_status;
use super::Ctx;
use crate::client::Client;
use crate::output::now_ms;
use crate::service::launchd::{self, Launchctl, LaunchdState};
use crate::service::serial::Serial;
use crate::service::systemctl::{self, Systemctl, UnitState};
use crate::service::{detached, unit, unit_name, unit_path, Manager, Spec};

/// How long `start`, `restart` and `install` wait for gatewayd to answer as ready.
const READY_DEADLINE: Duration = Duration::from_secs(60);
const POLL_EVERY: Duration = Duration::from_millis(100);
/// The first line of every file `install` writes: a file without it was written by someone else.
const MARK: &str = "gatewayctl install";

/// Where an instance is installed, if it is.
pub struct Service {
    pub manager: Manager,
    pub system: bool,
    pub profile: Profile,
}

impl Service {
    pub fn new(ctx: &Ctx, system: bool) -> Self {
        Self { manager: Manager::detect(), system, profile: ctx.profile.clone() }
    }

    pub fn systemctl(&self) -> Systemctl {
        Systemctl { user: !self.system }
    }

    pub fn unit(&self) -> String {
        unit_name(&self.profile)
    }

    /// The unit file or plist that `install` writes.
    pub fn file(&self) -> Result<PathBuf> {
        match self.manager {
            Manager::Launchd => Ok(launchd::plist_path(&crate::service::home()?, &self.profile)),
            _ => Ok(unit_path(&self.profile, self.system)?),
        }
    }

    /// systemd's view, when systemd is the manager and answers.
    /// launchd's view is mapped onto systemd's properties (`runs` counts the first start too).
    pub fn unit_state(&self) -> Option<Result<UnitState>> {
        match self.manager {
            Manager::Systemd => Some(self.systemctl().show(&self.unit())),
            Manager::Launchd if self.file().is_ok_and(|p| p.exists()) => {
                let out = Command::new("launchctl").args(self.launchctl().print()).output();
                Some(match out {
                    Ok(o) if o.status.success() => {
                        Ok(from_launchd(&LaunchdState::parse(&String::from_utf8_lossy(&o.stdout))))
                    }
                    // Not loaded: the plist is there but launchd does not run it.
                    Ok(_) => Ok(UnitState {
                        load_state: "not-loaded".into(),
                        active_state: "inactive".into(),
                        ..Default::default()
                    }),
                    Err(e) => Err(anyhow::Error::new(e).context("cannot run launchctl")),
                })
            }
            _ => None,
        }
    }

    /// Installed: systemd knows the unit (wherever its file is), or the plist exists.
    pub fn installed(&self) -> bool {
        match self.manager {
            Manager::Systemd => matches!(self.unit_state(), Some(Ok(s)) if s.installed()),
            Manager::Launchd => self.file().is_ok_and(|p| p.exists()),
            Manager::None => false,
        }
    }

    fn launchctl(&self) -> Launchctl {
        Launchctl { uid: nix::unistd::getuid().as_raw(), label: launchd::label(&self.profile) }
    }

    /// What `install` would write now, for this host.
    pub fn render(&self, paths: &Paths) -> Result<String> {
        let spec = Spec::current(&self.profile, paths, self.system)?;
        Ok(match self.manager {
            Manager::Launchd => launchd::render(&spec, &detached::output_file(&paths.state_dir)),
            _ => unit::render(&spec),
        })
    }
}

/// launchd's view in systemd's terms: a run killed by a signal is `killed`, a non-zero exit
/// `exited`, and a throttled respawn (launchd holding back a job that keeps failing) shows as
/// `start-limit-hit`, systemd's giving up.
fn from_launchd(l: &LaunchdState) -> UnitState {
    let running = l.state == "running";
    let signal = l.signal_number();
    let failed = !running && (signal.is_some() || l.last_exit_code.is_some_and(|c| c != 0));
    let (code, status) = match (signal, l.last_exit_code) {
        (Some(sig), _) => ("killed", sig),
        (None, Some(code)) => ("exited", code),
        (None, None) => ("", 0),
    };
    UnitState {
        load_state: "loaded".into(),
        active_state: if running {
            "active"
        } else if failed {
            "failed"
        } else {
            "inactive"
        }
        .into(),
        sub_state: l.state.clone(),
        main_pid: l.pid.unwrap_or_default(),
        n_restarts: l.runs.saturating_sub(1),
        exec_main_status: status,
        exec_main_code: code.into(),
        result: if l.throttled && !running {
            "start-limit-hit"
        } else if signal.is_some() && failed {
            "signal"
        } else if failed {
            "exit-code"
        } else {
            "success"
        }
        .into(),
        unit_file_state: "enabled".into(),
        fragment_path: l.path.clone(),
        ..UnitState::default()
    }
}

fn launchctl(args: &[String]) -> Result<()> {
    let out = Command::new("launchctl").args(args).output().context("cannot run launchctl")?;
    if !out.status.success() {
        bail!("`launchctl {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// The paths of the instance the service runs: for the system unit, systemd's dirs.
fn service_paths(ctx: &Ctx, system: bool) -> Result<Paths> {
    if !system {
        return ctx.paths();
    }
    let dir = ctx.profile.dir_name();
    Ok(Paths {
        config_file: Path::new("/etc").join(&dir).join("gateway.toml"),
        state_dir: Path::new("/var/lib").join(&dir),
        runtime_dir: Path::new("/run").join(&dir),
    })
}

pub fn install(ctx: &Ctx, system: bool, force: bool) -> Result<i32> {
    let svc = Service::new(ctx, system);
    if svc.manager == Manager::None {
        eprintln!(
            "no service manager here: /run/systemd/system is missing, so systemd does not run this host; \
             nothing was installed.\nStart gatewayd in the background with `gatewayctl{} start`, or run \
             `gatewayd run` under the supervisor you use.",
            profile_flag(&ctx.profile)
        );
        return Ok(exit::FAILURE);
    }
    if system && (svc.manager == Manager::Launchd || !nix::unistd::geteuid().is_root()) {
        bail!("install --system writes /etc/systemd/system: run it as root (sudo), on a Linux host with systemd");
    }
    let paths = service_paths(ctx, system)?;
    let text = svc.render(&paths)?;
    let file = svc.file()?;
    let changed = match std::fs::read_to_string(&file) {
        Ok(old) if old == text => false,
        Ok(old) if !old.contains(MARK) && !force => bail!(
            "{} exists and was not written by gatewayctl install; look at it, then run \
             `gatewayctl install --force` to replace it (a copy is kept as {}.bak)",
            file.display(),
            file.display()
        ),
        _ => true,
    };
    if changed {
        let backup = crate::service::write_with_backup(&file, &text)?;
        println!("wrote {}", file.display());
        if let Some(b) = backup {
            println!("kept the previous file as {}", b.display());
        }
    } else {
        println!("{} is up to date", file.display());
    }
    match svc.manager {
        Manager::Systemd => install_systemd(&svc, changed)?,
        Manager::Launchd => {
            let l = svc.launchctl();
            // A loaded older copy must go before the new one loads; not loaded is fine.
            let _ = launchctl(&l.bootout());
            launchctl(&l.bootstrap(&file))?;
            launchctl(&l.enable())?;
            launchctl(&l.kickstart(false))?;
            println!("loaded {} (launchctl bootstrap gui/{})", l.label, l.uid);
        }
        Manager::None => unreachable!("handled above"),
    }
    if !system {
        println!("{}", wait_ready(ctx, None)?);
    }
    if svc.manager == Manager::Systemd && !system {
        let user = systemctl::current_user();
        if !systemctl::linger_enabled(&user) {
            println!(
                "note: lingering is off for {user}: systemd stops your user services when you log out. \
                 To keep gatewayd running, run: loginctl enable-linger {user}"
            );
        }
    }
    Ok(exit::OK)
}

fn install_systemd(svc: &Service, changed: bool) -> Result<()> {
    let sc = svc.systemctl();
    let unit = svc.unit();
    sc.daemon_reload()?;
    let was_active = sc.show(&unit)?.active_state == "active";
    if let Err(e) = sc.run(&["enable", "--now", &unit]) {
        let state = sc.show(&unit)?;
        bail!("{e:#}\n{unit} is {}", describe_failure(&state, svc.manager));
    }
    if changed && was_active {
        sc.run(&["restart", &unit])?;
    }
    let state = sc.show(&unit)?;
    if state.active_state != "active" {
        bail!("{unit} did not start: {}", describe_failure(&state, svc.manager));
    }
    println!("enabled and started {unit} ({}, pid {})", state.sub_state, state.main_pid);
    Ok(())
}

/// Why a unit is not running, and where to look.
pub fn describe_failure(state: &UnitState, manager: Manager) -> String {
    let mut why = format!("{} ({})", state.active_state, state.sub_state);
    if state.gave_up() {
        let who =
            if manager == Manager::Launchd { "launchd throttled its respawn" } else { "systemd gave up" };
        why.push_str(&format!(": {who} after {}", state.restarts_summary()));
        if let Some(last) = state.last_failure() {
            why.push_str(&format!("; last: {last}"));
        }
    } else {
        if !state.result.is_empty() && state.result != "success" {
            why.push_str(&format!(", result {}", state.result));
        }
        if state.config_error() {
            why.push_str(&format!(
                ", last exit status {} (config invalid: `gatewayctl config validate` says where; it is not \
                 restarted until the config validates)",
                state.exec_main_status
            ));
        } else if let Some(last) = state.last_failure() {
            why.push_str(&format!(", last: {last}"));
        }
    }
    format!("{why}; see `gatewayctl logs -n 50`")
}

pub fn uninstall(ctx: &Ctx, system: bool, purge: bool) -> Result<i32> {
    let svc = Service::new(ctx, system);
    match svc.manager {
        Manager::Systemd => {
            let sc = svc.systemctl();
            let unit = svc.unit();
            let file = svc.file()?;
            if file.exists() {
                sc.run(&["disable", "--now", &unit])?;
                remove(&file)?;
                let mut backup = file.clone().into_os_string();
                backup.push(".bak");
                let _ = std::fs::remove_file(PathBuf::from(backup));
                sc.daemon_reload()?;
                // Forget a failed state, so nothing of the unit is left listed.
                let _ = sc.run(&["reset-failed", &unit]);
                println!("stopped and disabled {unit}, removed {}", file.display());
            } else if let Some(Ok(state)) =
                svc.unit_state().filter(|s| s.as_ref().is_ok_and(UnitState::installed))
            {
                bail!(
                    "{unit} comes from {}, which gatewayctl did not write (a package?): disable it with `{}`",
                    state.fragment_path,
                    sc.display(&["disable", "--now", &unit])
                );
            } else {
                println!("{unit} is not installed");
            }
        }
        Manager::Launchd => {
            let file = svc.file()?;
            if file.exists() {
                let _ = launchctl(&svc.launchctl().bootout());
                remove(&file)?;
                println!("unloaded {} and removed {}", launchd::label(&svc.profile), file.display());
            } else {
                println!("{} is not installed", file.display());
            }
        }
        Manager::None => println!("no service manager here: nothing to uninstall"),
    }
    if purge {
        let paths = service_paths(ctx, system)?;
        // A DynamicUser's state dir is /var/lib/private/NAME, behind the /var/lib/NAME link.
        let private = system.then(|| Path::new("/var/lib/private").join(ctx.profile.dir_name()));
        for dir in [Some(paths.state_dir.clone()), private, paths.config_file.parent().map(Path::to_path_buf)]
            .into_iter()
            .flatten()
        {
            // Only a dir named for the profile: GATEWAY_STATE_DIR or GATEWAY_CONFIG_PATH may
            // point into a dir that holds other things too.
            if dir.file_name().and_then(|n| n.to_str()) != Some(ctx.profile.dir_name().as_str()) {
                if dir.exists() {
                    println!(
                        "left {} alone (not a dir of gatewayctl's naming): remove it yourself",
                        dir.display()
                    );
                }
                continue;
            }
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => println!("removed {}", dir.display()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("cannot remove {}", dir.display())),
            }
        }
    } else {
        println!("config and state stay (`gatewayctl uninstall --purge` removes them)");
    }
    Ok(exit::OK)
}

fn remove(file: &Path) -> Result<()> {
    std::fs::remove_file(file).with_context(|| format!("cannot remove {}", file.display()))
}

pub fn start(ctx: &Ctx) -> Result<i32> {
    let _serial = Serial::acquire(ctx, "start")?;
    let svc = Service::new(ctx, false);
    let client = ctx.client()?;
    if let Ok(s) = poll_status(&client) {
        println!("gatewayd is already running (pid {}, {})", s.pid, s.listen.addr);
        return Ok(exit::OK);
    }
    if let Some(code) = refuse_invalid_config(ctx, "not starting gatewayd")? {
        return Ok(code);
    }
    if svc.installed() {
        return through_manager(ctx, &svc, None);
    }
    start_detached(ctx, &client)
}

/// With an invalid config gatewayd would exit 78 at once: say where the config is wrong instead
/// (and exit 78 too), leaving a running gatewayd as it is.
fn refuse_invalid_config(ctx: &Ctx, what: &str) -> Result<Option<i32>> {
    let file = ctx.paths()?.config_file;
    match super::config_cmd::check(&ctx.profile, &file) {
        Ok(_) => Ok(None),
        Err(issues) => {
            let code = super::config_cmd::report_issues(&issues);
            eprintln!(
                "{what}: {} is invalid (above); fix it, then run this again (`gatewayctl config validate` checks it)",
                file.display()
            );
            Ok(Some(code))
        }
    }
}

fn start_detached(ctx: &Ctx, client: &Client) -> Result<i32> {
    let paths = ctx.private_state_dir()?;
    let spec_gatewayd = Spec::current(&ctx.profile, &paths, false)?.gatewayd;
    let output = detached::output_file(&paths.state_dir);
    let (args, record) = detached::launch_args(&ctx.profile, &paths.state_dir);
    let pid = detached::spawn(&spec_gatewayd, &args, &output)?;
    let deadline = Instant::now() + READY_DEADLINE;
    loop {
        if let Ok(s) = poll_status(client) {
            if s.pid == pid && s.state == "running" {
                println!(
                    "started gatewayd in the background (pid {pid}, {}); output: {}",
                    s.listen.addr,
                    output.display()
                );
                if let Some(flags) = record.as_ref().map(LaunchRecord::flags).filter(|f| !f.is_empty()) {
                    println!("with the flags of its last run: {flags}");
                }
                if Manager::detect() != Manager::None {
                    println!("it is not a service: `gatewayctl install` makes the service manager run it");
                }
                return Ok(exit::OK);
            }
        }
        if let Some(code) = detached::exited(pid) {
            let tail = crate::tail::last_lines(&output, 10).map(|(l, _)| l.join("\n")).unwrap_or_default();
            eprintln!("{tail}");
            bail!(
                "gatewayd exited with status {code} while starting (its output is above, and in {})",
                output.display()
            );
        }
        if Instant::now() >= deadline {
            bail!(
                "gatewayd (pid {pid}) did not answer on {} within {}s; see {}",
                paths.socket().display(),
                READY_DEADLINE.as_secs(),
                output.display()
            );
        }
        sleep(POLL_EVERY);
    }
}

/// `stop` through the manager; false when the manager does not run this instance (a gatewayd
/// started by hand is stopped over the control socket instead).
pub fn stop_service(ctx: &Ctx) -> Result<bool> {
    let _serial = Serial::acquire(ctx, "stop")?;
    let svc = Service::new(ctx, false);
    if !svc.installed() {
        return Ok(false);
    }
    match svc.manager {
        Manager::Systemd => {
            let state = svc.systemctl().show(&svc.unit())?;
            if !matches!(state.active_state.as_str(), "active" | "activating" | "reloading") {
                return Ok(false);
            }
            svc.systemctl().run(&["stop", &svc.unit()])?;
            println!("stopped {}", svc.unit());
        }
        _ => {
            launchctl(&svc.launchctl().stop())?;
            println!("stopped {}", launchd::label(&svc.profile));
        }
    }
    Ok(true)
}

pub fn restart(ctx: &Ctx) -> Result<i32> {
    let asked_at_ms = now_ms();
    let serial = Serial::acquire(ctx, "restart")?;
    let svc = Service::new(ctx, false);
    let client = ctx.client()?;
    let running = poll_status(&client).ok();
    // A restart finished after this command was given (another gatewayctl's, which this one
    // waited for): that gatewayd read its config after the request, which is all a restart
    // promises, so a second restart would only drop its connections again.
    if let Some(s) = running.as_ref().filter(|s| s.state == "running" && s.started_at_ms >= asked_at_ms) {
        let by = serial.waited_for.as_ref().map_or("another command".to_owned(), |(who, _)| who.clone());
        println!(
            "gatewayd was restarted by {by} after this command was given (pid {}, listening on {}): not restarting it again",
            s.pid, s.listen.addr
        );
        return Ok(exit::OK);
    }
    if let Some(code) = refuse_invalid_config(ctx, "not restarting gatewayd (it keeps running as it is)")? {
        return Ok(code);
    }
    if svc.installed() {
        return through_manager(ctx, &svc, running.map(|s| s.pid));
    }
    match running {
        Some(before) => restart_in_place(ctx, &client, &before),
        None => start_detached(ctx, &client),
    }
}

/// A gatewayd no service manager of ours runs (started by hand, or by `gatewayctl start`) is
/// asked to restart itself: it drains and re-executes its own command line, keeping its pid,
/// flags, terminal and output. A supervisor we did not install brings it back instead (75).
fn restart_in_place(ctx: &Ctx, client: &Client, before: &StatusReport) -> Result<i32> {
    let report = client.restart()?;
    let paths = ctx.paths()?;
    let restarted = super::lifecycle::wait_for_restart(client, before, report.supervisor == "none").map_err(|e| {
        let output = detached::output_file(&paths.state_dir);
        let hint = if report.supervisor == "none" {
            format!(
                "it re-executes itself, so its error went where its output goes: the terminal it runs in, or {} for one `gatewayctl start` started",
                output.display()
            )
        } else {
            format!("{} restarts it: see `gatewayctl logs -n 50`", report.supervisor)
        };
        e.context(format!("gatewayd (pid {}) did not come back from the restart; {hint}", before.pid))
    })?;
    let flags =
        detached::launch_args(&ctx.profile, &paths.state_dir).1.map(|r| r.flags()).unwrap_or_default();
    let with = if flags.is_empty() { String::new() } else { format!(", flags: {flags}") };
    println!(
        "gatewayd restarted: pid {} -> {}, listening on {}{with}",
        before.pid, restarted.pid, restarted.listen.addr
    );
    Ok(exit::OK)
}

/// `start` (no `before`) or `restart` (the pid `before` it) through the manager, then waits
/// for readiness. A unit the manager gave up on, or that failed, is cleared first: otherwise
/// systemd refuses the start (or starts it only to give up again at once).
fn through_manager(ctx: &Ctx, svc: &Service, before: Option<u32>) -> Result<i32> {
    let restart = before.is_some();
    match svc.manager {
        Manager::Systemd => {
            let sc = svc.systemctl();
            let unit = svc.unit();
            if let Some(what) = recover(svc)? {
                println!("{what}");
            }
            let verb = if restart { "restart" } else { "start" };
            if let Err(e) = sc.run(&[verb, &unit]) {
                let state = sc.show(&unit)?;
                bail!("{e:#}\n{unit} is {}", describe_failure(&state, svc.manager));
            }
        }
        _ => {
            let l = svc.launchctl();
            if let Some(Ok(state)) = svc.unit_state() {
                if state.load_state == "not-loaded" {
                    launchctl(&l.bootstrap(&svc.file()?))?;
                } else if state.failed() || state.gave_up() {
                    println!("{} was {}; starting it again", l.label, describe_failure(&state, svc.manager));
                }
            }
            // A disabled agent does not start; a throttled one waits out its penalty unless kicked.
            launchctl(&l.enable())?;
            launchctl(&l.kickstart(true))?;
        }
    }
    println!("{}", wait_ready(ctx, before)?);
    Ok(exit::OK)
}

/// Clears a failed (or given-up) systemd unit; returns what it was, for people, or None when
/// there was nothing to clear.
pub fn recover(svc: &Service) -> Result<Option<String>> {
    let sc = svc.systemctl();
    let unit = svc.unit();
    let state = sc.show(&unit)?;
    if !state.failed() && !state.start_limit_hit() {
        return Ok(None);
    }
    sc.run(&["reset-failed", &unit])?;
    Ok(Some(format!(
        "{unit} was {}\ncleared that (`{}`); starting it again",
        describe_failure(&state, svc.manager).trim_end_matches("; see `gatewayctl logs -n 50`"),
        sc.display(&["reset-failed", &unit])
    )))
}

/// Waits until gatewayd answers as running (and, after a restart, is not the pid `before`);
/// returns the line that says so.
pub fn wait_ready(ctx: &Ctx, before: Option<u32>) -> Result<String> {
    let client = ctx.client()?;
    let deadline = Instant::now() + READY_DEADLINE;
    loop {
        let last = poll_status(&client);
        if let Ok(s) = &last {
            if s.state == "running" && Some(s.pid) != before {
                return Ok(match before {
                    Some(old) => {
                        format!("gatewayd restarted: pid {old} -> {}, listening on {}", s.pid, s.listen.addr)
                    }
                    None => format!("gatewayd is running: pid {}, listening on {}", s.pid, s.listen.addr),
                });
            }
        }
        if Instant::now() >= deadline {
            let why = match last {
                Ok(s) => format!("it answers as {} (pid {})", s.state, s.pid),
                Err(e) => e.to_string(),
            };
            bail!(
                "gatewayd is not ready {}s after starting: {why}\nSee `gatewayctl status --deep` and `gatewayctl logs -n 50`",
                READY_DEADLINE.as_secs()
            );
        }
        sleep(POLL_EVERY);
    }
}

pub fn profile_flag(profile: &Profile) -> String {
    profile.name().map(|p| format!(" --profile {p}")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttled_launchd_agent_reads_as_given_up_with_its_signal() {
        let text = "gui/501/ai.gateway.gatewayd = {\n\tpath = /Users/a/Library/LaunchAgents/ai.gateway.gatewayd.plist\n\tstate = spawn scheduled\n\truns = 7\n\tlast terminating signal = Killed: 9\n}\n";
        let state = from_launchd(&LaunchdState::parse(text));
        assert!(state.failed() && state.gave_up(), "{state:?}");
        assert_eq!(state.last_failure().as_deref(), Some("killed by SIGKILL"));
        assert_eq!(
            describe_failure(&state, Manager::Launchd),
            "failed (spawn scheduled): launchd throttled its respawn after 6 restarts; last: killed by SIGKILL; \
             see `gatewayctl logs -n 50`"
        );
        let stopped =
            from_launchd(&LaunchdState::parse("x = {\n\tstate = not running\n\tlast exit code = 0\n}\n"));
        assert!(!stopped.failed() && !stopped.gave_up(), "{stopped:?}");
        let config = from_launchd(&LaunchdState::parse(
            "x = {\n\tstate = not running\n\tlast exit code = 78: EX_CONFIG\n}\n",
        ));
        assert!(config.failed() && config.config_error() && !config.gave_up(), "{config:?}");
    }

    #[test]
    fn a_crash_loop_systemd_gave_up_on_is_described_with_how_it_ended() {
        let state = UnitState {
            load_state: "loaded".into(),
            active_state: "failed".into(),
            sub_state: "failed".into(),
            n_restarts: 5,
            exec_main_code: "killed".into(),
            exec_main_status: 9,
            result: "signal".into(),
            start_limit_burst: 5,
            start_limit_interval_usec: 120_000_000,
            ..UnitState::default()
        };
        assert_eq!(
            describe_failure(&state, Manager::Systemd),
            "failed (failed): systemd gave up after 5 restarts in 120 s; last: killed by SIGKILL; see `gatewayctl logs -n 50`"
        );
    }
}
