//! The service manager side: which manager this host has, and how to talk to it. What
//! `install` writes is rendered by `gatewayctl::units`.

pub mod detached;
pub mod probe;
pub mod serial;
pub mod systemctl;

pub use gatewayctl::units::{
    home, launchd, systemd as unit, unit_name, unit_path, user_unit_dir, write_with_backup, Spec,
};

use std::path::Path;

/// The service manager that `install`, `start`, `stop` and `restart` go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Manager {
    Systemd,
    Launchd,
    None,
}

impl Manager {
    /// systemd is the manager when it booted the host (it creates `/run/systemd/system`).
    pub fn detect() -> Self {
        if cfg!(target_os = "macos") {
            Self::Launchd
        } else if Path::new("/run/systemd/system").is_dir() {
            Self::Systemd
        } else {
            Self::None
        }
    }
}
