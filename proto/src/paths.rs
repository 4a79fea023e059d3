//! Where an instance keeps its config, state and control socket. A profile gives each instance its
//! own set, so several gateways can share a host; `gatewayd` and `gatewayctl` resolve the same way.

use std::env;
use std::path::{Path, PathBuf};

use thiserror::Error;

pub const DEFAULT_PORT: u16 = 18789;
pub const DEV_PROFILE: &str = "dev";
pub const DEV_PORT: u16 = 19001;

/// Environment variables of the precedence chain (flag > environment > file > default).
pub mod env_var {
    pub const CONFIG_PATH: &str = "GATEWAY_CONFIG_PATH";
    pub const STATE_DIR: &str = "GATEWAY_STATE_DIR";
    pub const PORT: &str = "GATEWAY_PORT";
    pub const BIND: &str = "GATEWAY_BIND";
    pub const TOKEN: &str = "GATEWAY_TOKEN";
    pub const PASSWORD: &str = "GATEWAY_PASSWORD";
}

#[derive(Debug, Error)]
pub enum PathError {
    #[error("invalid profile name {0:?}: use 1-32 characters from a-z, 0-9, '-' and '_'")]
    BadProfile(String),
    #[error("cannot find the home directory: set HOME, or give --config and --state-dir")]
    NoHome,
    #[error("control socket path {0} is longer than the 107 bytes a Unix socket allows: set XDG_RUNTIME_DIR to a shorter directory")]
    SocketTooLong(PathBuf),
}

/// A named instance. The default profile has no name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile(Option<String>);

impl Profile {
    /// `--dev` means the profile `dev`; `--profile default` is the default profile.
    pub fn new(name: Option<&str>, dev: bool) -> Result<Self, PathError> {
        let name = if dev { Some(DEV_PROFILE) } else { name };
        match name {
            None | Some("default") => Ok(Self(None)),
            Some(n) if valid_profile_name(n) => Ok(Self(Some(n.to_owned()))),
            Some(n) => Err(PathError::BadProfile(n.to_owned())),
        }
    }

    pub fn name(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// `gateway` or `gateway-NAME`: the directory name under the config, state and runtime dirs.
    pub fn dir_name(&self) -> String {
        self.suffixed("gateway")
    }

    /// `gatewayd` or `gatewayd-NAME`: the unit and journal name.
    pub fn service_name(&self) -> String {
        self.suffixed("gatewayd")
    }

    /// The port used when neither flag, environment nor file sets one: 18789, 19001 for `dev`,
    /// and for any other profile a stable port in 19100-19999 derived from its name.
    pub fn default_port(&self) -> u16 {
        match self.name() {
            None => DEFAULT_PORT,
            Some(DEV_PROFILE) => DEV_PORT,
            Some(name) => 19100 + (fnv1a(name.as_bytes()) % 900) as u16,
        }
    }

    fn suffixed(&self, base: &str) -> String {
        match self.name() {
            None => base.to_owned(),
            Some(n) => format!("{base}-{n}"),
        }
    }
}

fn valid_profile_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(*b)).wrapping_mul(0x0100_0193))
}

/// Paths given on the command line; they win over everything else.
#[derive(Debug, Clone, Default)]
pub struct PathFlags {
    pub config_file: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
}

/// The resolved files of one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub config_file: PathBuf,
    pub state_dir: PathBuf,
    pub runtime_dir: PathBuf,
}

impl Paths {
    /// Flag > `GATEWAY_*` environment > systemd's `*_DIRECTORY` > XDG base directories.
    pub fn resolve(profile: &Profile, flags: &PathFlags) -> Result<Self, PathError> {
        let base = directories::BaseDirs::new();
        let dir_name = profile.dir_name();
        let config_file = match flag_or_env(&flags.config_file, env_var::CONFIG_PATH) {
            Some(p) => p,
            None => {
                let dir = match systemd_dir("CONFIGURATION_DIRECTORY") {
                    Some(d) => d,
                    None => base.as_ref().ok_or(PathError::NoHome)?.config_dir().join(&dir_name),
                };
                dir.join("gateway.toml")
            }
        };
        let state_dir = match flag_or_env(&flags.state_dir, env_var::STATE_DIR)
            .or_else(|| systemd_dir("STATE_DIRECTORY"))
        {
            Some(p) => p,
            None => {
                let base = base.as_ref().ok_or(PathError::NoHome)?;
                // macOS has no XDG state dir; its local data dir is the nearest equivalent.
                base.state_dir().unwrap_or_else(|| base.data_local_dir()).join(&dir_name)
            }
        };
        let runtime_dir = systemd_dir("RUNTIME_DIRECTORY")
            .or_else(|| base.as_ref().and_then(|b| b.runtime_dir()).map(|d| d.join(&dir_name)))
            .unwrap_or_else(|| state_dir.join("run"));
        let paths = Self { config_file, state_dir, runtime_dir };
        let socket = paths.socket();
        if socket.as_os_str().len() > 107 {
            return Err(PathError::SocketTooLong(socket));
        }
        Ok(paths)
    }

    /// The control socket.
    pub fn socket(&self) -> PathBuf {
        self.runtime_dir.join("gatewayd.sock")
    }

    /// The generated gateway token (0600).
    pub fn token_file(&self) -> PathBuf {
        self.state_dir.join("token")
    }

    /// The argon2id hash of the gateway password (0600), for auth mode `password`.
    pub fn password_file(&self) -> PathBuf {
        self.state_dir.join("password")
    }

    /// The key device tokens are derived with (0600), kept apart from the database that holds
    /// their digests (docs/security.md, Device tokens).
    pub fn device_key_file(&self) -> PathBuf {
        self.state_dir.join("device-key")
    }

    /// One instance per state dir: `gatewayd` holds an exclusive lock on this file.
    pub fn lock_file(&self) -> PathBuf {
        self.state_dir.join("gatewayd.lock")
    }

    /// The size-bounded JSONL log that `gatewayctl logs` reads when there is no journal.
    pub fn log_file(&self) -> PathBuf {
        self.state_dir.join("logs").join("gatewayd.jsonl")
    }
}

fn flag_or_env(flag: &Option<PathBuf>, var: &str) -> Option<PathBuf> {
    flag.clone().or_else(|| non_empty_env(var).map(PathBuf::from))
}

/// systemd sets `STATE_DIRECTORY` and friends to a colon-separated list; the first entry is ours.
fn systemd_dir(var: &str) -> Option<PathBuf> {
    let value = non_empty_env(var)?;
    let first = value.split(':').next()?;
    Path::new(first).is_absolute().then(|| PathBuf::from(first))
}

pub fn non_empty_env(var: &str) -> Option<String> {
    env::var(var).ok().filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_get_their_own_names_and_ports() {
        let default = Profile::new(None, false).unwrap();
        assert_eq!(default.service_name(), "gatewayd");
        assert_eq!(default.default_port(), 18789);
        let dev = Profile::new(None, true).unwrap();
        assert_eq!(dev.dir_name(), "gateway-dev");
        assert_eq!(dev.default_port(), 19001);
        let work = Profile::new(Some("work"), false).unwrap();
        assert_eq!(work.service_name(), "gatewayd-work");
        let port = work.default_port();
        assert!((19100..20000).contains(&port));
        assert_eq!(port, Profile::new(Some("work"), false).unwrap().default_port());
        assert_eq!(Profile::new(Some("default"), false).unwrap(), default);
    }

    #[test]
    fn bad_profile_names_are_refused() {
        for bad in ["", "Work", "../x", "a b", &"x".repeat(33)] {
            assert!(Profile::new(Some(bad), false).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn flags_win_over_everything() {
        let flags = PathFlags { config_file: Some("/cfg/g.toml".into()), state_dir: Some("/st".into()) };
        let paths = Paths::resolve(&Profile::default(), &flags).unwrap();
        assert_eq!(paths.config_file, PathBuf::from("/cfg/g.toml"));
        assert_eq!(paths.state_dir, PathBuf::from("/st"));
        assert_eq!(paths.token_file(), PathBuf::from("/st/token"));
    }
}
