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

use gateway_proto::Profile;

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

/// Where this profile's unit is installed, as far as its file shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    User,
    System,
}

/// What to check or run when this profile's gatewayd does not answer, for the service manager
/// this host actually has and the unit of ours it may run (read from files: no process is run).
pub fn not_running_hint(profile: &Profile) -> String {
    let manager = Manager::detect();
    let installed = match manager {
        Manager::Systemd => [(false, Installed::User), (true, Installed::System)]
            .into_iter()
            .find(|(system, _)| unit_path(profile, *system).is_ok_and(|p| p.exists()))
            .map(|(_, installed)| installed),
        Manager::Launchd => {
            home().ok().filter(|h| launchd::plist_path(h, profile).exists()).map(|_| Installed::User)
        }
        Manager::None => None,
    };
    hint_for(manager, installed, profile)
}

fn hint_for(manager: Manager, installed: Option<Installed>, profile: &Profile) -> String {
    let flag = match profile.name() {
        None => String::new(),
        Some(gateway_proto::paths::DEV_PROFILE) => " --dev".to_owned(),
        Some(name) => format!(" --profile {name}"),
    };
    let unit = unit_name(profile);
    let start = format!("gatewayctl start{flag}");
    match (manager, installed) {
        (Manager::Systemd, Some(Installed::User)) => format!(
            "Check the service: systemctl --user status {unit}   (logs: journalctl --user -u {unit} -n 50)\nStart it: {start}"
        ),
        (Manager::Systemd, Some(Installed::System)) => format!(
            "Check the service: systemctl status {unit}   (logs: journalctl -u {unit} -n 50)\nStart it: sudo systemctl start {unit}"
        ),
        (Manager::Launchd, Some(_)) => format!(
            "Check the agent: launchctl print gui/$(id -u)/{}   (logs: gatewayctl logs{flag} -n 50)\nStart it: {start}",
            launchd::label(profile)
        ),
        (Manager::None, _) => format!(
            "Start it: {start} (in the background), or gatewayd run{flag} (in the foreground)"
        ),
        (manager, None) => format!(
            "Start it: {start} (in the background), or gatewayd run{flag} (in the foreground); `gatewayctl install{flag}` makes {} run it",
            if manager == Manager::Launchd { "launchd" } else { "systemd" }
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_not_running_hint_names_the_manager_that_is_there() {
        let work = Profile::new(Some("work"), false).unwrap();
        let none = hint_for(Manager::None, None, &work);
        assert_eq!(none, "Start it: gatewayctl start --profile work (in the background), or gatewayd run --profile work (in the foreground)");
        let user = hint_for(Manager::Systemd, Some(Installed::User), &Profile::default());
        assert!(user.starts_with("Check the service: systemctl --user status gatewayd.service"), "{user}");
        let system = hint_for(Manager::Systemd, Some(Installed::System), &Profile::default());
        assert!(
            system.contains("systemctl status gatewayd.service") && !system.contains("--user"),
            "{system}"
        );
        let agent = hint_for(Manager::Launchd, Some(Installed::User), &Profile::default());
        assert!(
            agent.contains("launchctl print gui/$(id -u)/ai.gateway.gatewayd")
                && !agent.contains("systemctl"),
            "{agent}"
        );
        let bare = hint_for(Manager::Systemd, None, &Profile::new(None, true).unwrap());
        assert!(
            bare.contains("gatewayctl install --dev` makes systemd run it") && !bare.contains("systemctl"),
            "{bare}"
        );
    }
}
