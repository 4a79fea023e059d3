//! `install`, `uninstall`, `start` and `restart`, and `stop` when a service manager runs gatewayd:
//! they go through systemd or launchd when the service is installed, and start gatewayd detached
//! when there is no manager.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use gateway_proto::{exit, Paths, Profile};

use super::lifecycle::poll_status;
use super::Ctx;
use crate::client::Client;
use crate::service::launchd::{self, Launchctl, LaunchdState};
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

fn from_launchd(l: &LaunchdState) -> UnitState {
    let failed = l.state != "running" && l.last_exit_code.is_some_and(|c| c != 0);
    UnitState {
        load_state: "loaded".into(),
        active_state: if l.state == "running" {
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
        exec_main_status: l.last_exit_code.unwrap_or_default(),
        exec_main_code: if l.last_exit_code.is_some() { "exited" } else { "" }.into(),
        result: if failed { "exit-code" } else { "success" }.into(),
        unit_file_state: "enabled".into(),
        fragment_path: l.path.clone(),
        status_text: String::new(),
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
        report_ready(ctx, None)?;
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
        bail!("{e:#}\n{unit} is {}", describe_failure(&state, sc));
    }
    if changed && was_active {
        sc.run(&["restart", &unit])?;
    }
    let state = sc.show(&unit)?;
    if state.active_state != "active" {
        bail!("{unit} did not start: {}", describe_failure(&state, sc));
    }
    println!("enabled and started {unit} ({}, pid {})", state.sub_state, state.main_pid);
    Ok(())
}

/// Why a unit is not running, and where to look.
pub fn describe_failure(state: &UnitState, sc: Systemctl) -> String {
    let mut why = format!("{} ({})", state.active_state, state.sub_state);
    if !state.result.is_empty() && state.result != "success" {
        why.push_str(&format!(", result {}", state.result));
    }
    if state.exec_main_code == "exited" && state.exec_main_status != 0 {
        why.push_str(&format!(", last exit status {}", state.exec_main_status));
        if state.exec_main_status == exit::CONFIG {
            why.push_str(" (config invalid: `gatewayctl config validate` says where)");
        }
    }
    if state.start_limit_hit() {
        why.push_str(&format!(
            "; it failed too often and systemd stopped trying: fix the cause, then `{}`",
            sc.display(&["reset-failed", &state_unit_hint(state)])
        ));
    }
    format!("{why}; see `gatewayctl logs -n 50`")
}

fn state_unit_hint(state: &UnitState) -> String {
    Path::new(&state.fragment_path)
        .file_name()
        .map_or("gatewayd.service".to_owned(), |n| n.to_string_lossy().into_owned())
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
    let svc = Service::new(ctx, false);
    if svc.installed() {
        return through_manager(ctx, &svc, None);
    }
    let client = ctx.client()?;
    if let Ok(s) = poll_status(&client) {
        println!("gatewayd is already running (pid {}, {})", s.pid, s.listen.addr);
        return Ok(exit::OK);
    }
    start_detached(ctx, &client)
}

fn start_detached(ctx: &Ctx, client: &Client) -> Result<i32> {
    let paths = ctx.private_state_dir()?;
    let spec_gatewayd = Spec::current(&ctx.profile, &paths, false)?.gatewayd;
    let output = detached::output_file(&paths.state_dir);
    let pid = detached::spawn(&spec_gatewayd, &ctx.profile, &output)?;
    let deadline = Instant::now() + READY_DEADLINE;
    loop {
        if let Ok(s) = poll_status(client) {
            if s.pid == pid && s.state == "running" {
                println!(
                    "started gatewayd in the background (pid {pid}, {}); output: {}",
                    s.listen.addr,
                    output.display()
                );
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
    let svc = Service::new(ctx, false);
    let client = ctx.client()?;
    let before = poll_status(&client).ok().map(|s| s.pid);
    if svc.installed() {
        return through_manager(ctx, &svc, before);
    }
    if before.is_some() {
        super::lifecycle::stop(ctx)?;
    }
    start_detached(ctx, &client)
}

/// `start` (no `before`) or `restart` (the pid `before` it) through the manager, then waits
/// for readiness.
fn through_manager(ctx: &Ctx, svc: &Service, before: Option<u32>) -> Result<i32> {
    let restart = before.is_some();
    match svc.manager {
        Manager::Systemd => {
            let sc = svc.systemctl();
            let verb = if restart { "restart" } else { "start" };
            if let Err(e) = sc.run(&[verb, &svc.unit()]) {
                let state = sc.show(&svc.unit())?;
                bail!("{e:#}\n{} is {}", svc.unit(), describe_failure(&state, sc));
            }
        }
        _ => launchctl(&svc.launchctl().kickstart(restart))?,
    }
    report_ready(ctx, before)?;
    Ok(exit::OK)
}

/// Waits until gatewayd answers as running (and, after a restart, is not the pid `before`).
fn report_ready(ctx: &Ctx, before: Option<u32>) -> Result<()> {
    let client = ctx.client()?;
    let deadline = Instant::now() + READY_DEADLINE;
    loop {
        let last = poll_status(&client);
        if let Ok(s) = &last {
            if s.state == "running" && Some(s.pid) != before {
                match before {
                    Some(old) => {
                        println!("gatewayd restarted: pid {old} -> {}, listening on {}", s.pid, s.listen.addr)
                    }
                    None => println!("gatewayd is running: pid {}, listening on {}", s.pid, s.listen.addr),
                }
                return Ok(());
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
