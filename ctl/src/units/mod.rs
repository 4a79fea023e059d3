//! What `gatewayctl install` writes: systemd units and the launchd plist rendered from the
//! templates in `systemd/` and `launchd/` for this host's binaries, profile, environment and
//! config, and where they go.

pub mod launchd;
pub mod systemd;

use std::env;
use std::path::{Path, PathBuf};

use gateway_proto::paths::{env_var, non_empty_env};
use gateway_proto::{Paths, Profile};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum UnitError {
    #[error("cannot find the path of this gatewayctl: {0}")]
    OwnPath(std::io::Error),
    #[error("cannot find gatewayd next to {0} or on PATH: install both binaries in one directory (docs/runbook.md)")]
    NoGatewayd(PathBuf),
    #[error("HOME is not set: cannot find the user's unit dir")]
    NoHome,
    #[error("cannot {what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
}

pub type Result<T, E = UnitError> = std::result::Result<T, E>;

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> UnitError {
    let path = path.to_path_buf();
    move |source| UnitError::Io { what, path, source }
}

/// Environment variables that locate an instance's files or listener; `install` copies the ones
/// set at install time into the unit, so that the service finds what the CLI finds. Secrets
/// (`GATEWAY_TOKEN`, `GATEWAY_PASSWORD`) are never copied.
pub const CARRIED_ENV: &[&str] = &[
    "XDG_CONFIG_HOME",
    "XDG_STATE_HOME",
    env_var::CONFIG_PATH,
    env_var::STATE_DIR,
    env_var::PORT,
    env_var::BIND,
];

/// What `install` writes, for the current binaries, profile, environment and config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub gatewayd: PathBuf,
    pub gatewayctl: PathBuf,
    pub profile: Profile,
    pub env: Vec<(String, String)>,
    pub watchdog_sec: u64,
    pub timeout_stop_sec: u64,
    /// The hardened system unit (root, `/etc/systemd/system`) rather than a user unit.
    pub system: bool,
}

/// Seconds to add to the drain budget for `TimeoutStopSec`: closing the store and exiting.
const STOP_MARGIN_SEC: u64 = 20;
/// The smallest `WatchdogSec` rendered: a shorter one risks kills on a loaded host.
const MIN_WATCHDOG_SEC: u64 = 10;

impl Spec {
    pub fn current(profile: &Profile, paths: &Paths, system: bool) -> Result<Self> {
        let gatewayctl = env::current_exe().and_then(|p| p.canonicalize()).map_err(UnitError::OwnPath)?;
        let gatewayd = find_gatewayd(&gatewayctl)?;
        // An invalid config gets the defaults here; `doctor` reports the config itself.
        let config = gateway_config::load_file(&paths.config_file).map(|l| l.config).unwrap_or_default();
        let heartbeat_sec = config.gateway.heartbeat.interval_ms.get().div_ceil(1000);
        let drain_sec = config.gateway.shutdown.drain_timeout_ms.get().div_ceil(1000);
        let env = if system {
            Vec::new()
        } else {
            CARRIED_ENV
                .iter()
                .filter_map(|name| non_empty_env(name).map(|v| ((*name).to_owned(), v)))
                .collect()
        };
        Ok(Self {
            gatewayd,
            gatewayctl,
            profile: profile.clone(),
            env,
            watchdog_sec: heartbeat_sec.max(MIN_WATCHDOG_SEC),
            timeout_stop_sec: drain_sec + STOP_MARGIN_SEC,
            system,
        })
    }
}

/// gatewayd next to this gatewayctl (one release installs both), else on PATH.
fn find_gatewayd(gatewayctl: &Path) -> Result<PathBuf> {
    let beside = gatewayctl.with_file_name("gatewayd");
    if beside.is_file() {
        return Ok(beside);
    }
    let on_path = env::var_os("PATH")
        .into_iter()
        .flat_map(|p| env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("gatewayd"))
        .find(|p| p.is_file());
    match on_path {
        Some(p) => Ok(p.canonicalize().unwrap_or(p)),
        None => Err(UnitError::NoGatewayd(gatewayctl.to_path_buf())),
    }
}

/// `gatewayd.service` or `gatewayd-NAME.service`.
pub fn unit_name(profile: &Profile) -> String {
    format!("{}.service", profile.service_name())
}

/// Where the unit of `profile` goes: the user's unit dir, or `/etc/systemd/system`.
pub fn unit_path(profile: &Profile, system: bool) -> Result<PathBuf> {
    let dir = if system { PathBuf::from("/etc/systemd/system") } else { user_unit_dir()? };
    Ok(dir.join(unit_name(profile)))
}

/// `$XDG_CONFIG_HOME/systemd/user`, the first user unit dir systemd searches.
pub fn user_unit_dir() -> Result<PathBuf> {
    let config = match non_empty_env("XDG_CONFIG_HOME") {
        Some(dir) => PathBuf::from(dir),
        None => home()?.join(".config"),
    };
    Ok(config.join("systemd").join("user"))
}

pub fn home() -> Result<PathBuf> {
    non_empty_env("HOME").map(PathBuf::from).ok_or(UnitError::NoHome)
}

/// Writes `text` to `path` through a temp file and a rename, keeping a different existing file
/// as `path.bak`. Returns the backup's path when one was made.
pub fn write_with_backup(path: &Path, text: &str) -> Result<Option<PathBuf>> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    let backup = match std::fs::read_to_string(path) {
        Ok(old) if old != text => {
            let mut name = path.as_os_str().to_owned();
            name.push(".bak");
            let backup = PathBuf::from(name);
            std::fs::copy(path, &backup).map_err(io("back up to", &backup))?;
            Some(backup)
        }
        _ => None,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text).map_err(io("write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("write", path))?;
    Ok(backup)
}
