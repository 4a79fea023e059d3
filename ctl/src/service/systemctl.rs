//! Talking to systemd through `systemctl` (no D-Bus library: the CLI is what users run too, so
//! error messages can name the command to retry by hand).

use std::collections::HashMap;
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::Serialize;

/// `systemctl` for the user's manager, or the system's.
#[derive(Debug, Clone, Copy)]
pub struct Systemctl {
    pub user: bool,
}

/// The properties of a unit that `status --deep` and `doctor` use, as `systemctl show` prints them.
pub const SHOW_PROPERTIES: &str = "LoadState,ActiveState,SubState,MainPID,NRestarts,ExecMainStatus,\
ExecMainCode,Result,UnitFileState,FragmentPath,StatusText,StartLimitBurst,StartLimitIntervalUSec,\
InactiveEnterTimestamp";

/// What systemd says about a unit.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct UnitState {
    /// `loaded`, `not-found`, ...
    pub load_state: String,
    /// `active`, `activating`, `deactivating`, `reloading`, `inactive`, `failed`.
    pub active_state: String,
    pub sub_state: String,
    pub main_pid: u32,
    /// Automatic restarts since the unit was last started by hand.
    pub n_restarts: u32,
    /// The exit status of the last main process (its signal number if killed).
    pub exec_main_status: i32,
    /// `exited`, `killed`, `dumped` or empty.
    pub exec_main_code: String,
    /// `success`, `exit-code`, `signal`, `watchdog`, `start-limit-hit`, ...
    pub result: String,
    /// `enabled`, `disabled`, `static`, ...
    pub unit_file_state: String,
    pub fragment_path: String,
    pub status_text: String,
    /// At most this many starts within `start_limit_interval_usec`, then systemd gives up.
    pub start_limit_burst: u32,
    pub start_limit_interval_usec: u64,
    /// When the unit last stopped or failed, as systemd prints it (empty if never).
    pub inactive_enter_timestamp: String,
}

impl UnitState {
    pub fn installed(&self) -> bool {
        self.load_state == "loaded"
    }

    pub fn start_limit_hit(&self) -> bool {
        self.result == "start-limit-hit"
    }

    pub fn failed(&self) -> bool {
        self.active_state == "failed"
    }

    /// The last run exited 78 (EX_CONFIG): its config is invalid, and the unit does not restart.
    pub fn config_error(&self) -> bool {
        self.exec_main_code == "exited" && self.exec_main_status == gateway_proto::exit::CONFIG
    }

    /// systemd stopped restarting the unit. It shows as `Result=start-limit-hit` when a start
    /// was refused; after a crash loop the unit is only `failed` with the last crash's result
    /// (`signal`, `exit-code`, `watchdog`) and as many restarts as the start limit allows.
    pub fn gave_up(&self) -> bool {
        self.start_limit_hit()
            || (self.failed()
                && !self.config_error()
                && self.start_limit_burst > 0
                && self.n_restarts >= self.start_limit_burst)
    }

    /// How the last run ended, for people: `killed by SIGKILL`, `exit status 1`, `watchdog timeout`.
    pub fn last_failure(&self) -> Option<String> {
        if self.result == "watchdog" {
            return Some("watchdog timeout (gatewayd stopped answering systemd's watchdog)".into());
        }
        let signal = || {
            nix::sys::signal::Signal::try_from(self.exec_main_status)
                .map_or_else(|_| format!("signal {}", self.exec_main_status), |s| s.as_str().to_owned())
        };
        match self.exec_main_code.as_str() {
            "killed" => Some(format!("killed by {}", signal())),
            "dumped" => Some(format!("crashed with {} (core dumped)", signal())),
            "exited" if self.exec_main_status != 0 => Some(format!("exit status {}", self.exec_main_status)),
            _ => None,
        }
    }

    /// `N restarts in M s` for a unit that gave up.
    pub fn restarts_summary(&self) -> String {
        let window = self.start_limit_interval_usec / 1_000_000;
        if window > 0 {
            format!("{} restarts in {window} s", self.n_restarts)
        } else {
            format!("{} restarts", self.n_restarts)
        }
    }

    fn from_show(text: &str) -> Self {
        let map: HashMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
        let s = |k: &str| map.get(k).copied().unwrap_or_default().to_owned();
        let n = |k: &str| map.get(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or_default();
        let code = match s("ExecMainCode").as_str() {
            // systemd prints the CLD_* number.
            "1" => "exited".to_owned(),
            "2" => "killed".to_owned(),
            "3" => "dumped".to_owned(),
            "0" | "" => String::new(),
            other => other.to_owned(),
        };
        Self {
            load_state: s("LoadState"),
            active_state: s("ActiveState"),
            sub_state: s("SubState"),
            main_pid: n("MainPID") as u32,
            n_restarts: n("NRestarts") as u32,
            exec_main_status: n("ExecMainStatus") as i32,
            exec_main_code: code,
            result: s("Result"),
            unit_file_state: s("UnitFileState"),
            fragment_path: s("FragmentPath"),
            status_text: s("StatusText"),
            start_limit_burst: n("StartLimitBurst") as u32,
            start_limit_interval_usec: timespan_usec(&s("StartLimitIntervalUSec")),
            inactive_enter_timestamp: s("InactiveEnterTimestamp"),
        }
    }
}

/// A systemd time span as `systemctl show` prints it (`2min`, `1min 30s`, `500ms`, `120000000`
/// in older versions), in microseconds; 0 for `infinity` or what does not parse.
fn timespan_usec(text: &str) -> u64 {
    if let Ok(usec) = text.parse::<u64>() {
        return usec;
    }
    let mut total = 0u64;
    for part in text.split_whitespace() {
        let split = part.find(|c: char| !c.is_ascii_digit()).unwrap_or(part.len());
        let (Ok(n), unit) = (part[..split].parse::<u64>(), &part[split..]) else { return 0 };
        let scale = match unit {
            "us" => 1,
            "ms" => 1_000,
            "s" | "" => 1_000_000,
            "min" => 60_000_000,
            "h" => 3_600_000_000,
            "d" => 86_400_000_000,
            _ => return 0,
        };
        total += n * scale;
    }
    total
}

impl Systemctl {
    /// The argument list for `systemctl [--user] ARGS...`.
    pub fn args(&self, rest: &[&str]) -> Vec<String> {
        let mut args = Vec::with_capacity(rest.len() + 1);
        if self.user {
            args.push("--user".to_owned());
        }
        args.extend(rest.iter().map(|s| (*s).to_owned()));
        args
    }

    /// The command as a user would type it, for messages.
    pub fn display(&self, rest: &[&str]) -> String {
        format!("systemctl {}", self.args(rest).join(" "))
    }

    /// Runs `systemctl [--user] ARGS`; an error carries systemctl's own message.
    pub fn run(&self, rest: &[&str]) -> Result<String> {
        let out = Command::new("systemctl")
            .args(self.args(rest))
            .output()
            .context("cannot run systemctl (is systemd installed?)")?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let hint = if self.user && err.contains("Failed to connect to bus") {
                "\nyour user's systemd is not reachable: log in to a session (or run                  `loginctl enable-linger $USER`), and check that XDG_RUNTIME_DIR is set"
            } else {
                ""
            };
            bail!("`{}` failed: {}{hint}", self.display(rest), err.trim());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn show(&self, unit: &str) -> Result<UnitState> {
        let text = self.run(&["show", unit, "-p", SHOW_PROPERTIES])?;
        Ok(UnitState::from_show(&text))
    }

    pub fn daemon_reload(&self) -> Result<()> {
        self.run(&["daemon-reload"]).map(drop)
    }
}

/// Whether the user's manager keeps running after logout (`loginctl enable-linger`).
pub fn linger_enabled(user: &str) -> bool {
    std::path::Path::new("/var/lib/systemd/linger").join(user).exists()
}

/// The login name of the current user, for `loginctl enable-linger NAME`.
pub fn current_user() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| nix::unistd::getuid().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_output_is_parsed() {
        let state = UnitState::from_show(
            "LoadState=loaded\nActiveState=failed\nSubState=failed\nMainPID=0\nNRestarts=3\n\
             ExecMainStatus=78\nExecMainCode=1\nResult=exit-code\nUnitFileState=enabled\n\
             FragmentPath=/u/gatewayd.service\nStatusText=stopping: config error\n",
        );
        assert!(state.installed());
        assert_eq!(state.exec_main_status, 78);
        assert_eq!(state.exec_main_code, "exited");
        assert_eq!(state.n_restarts, 3);
        assert_eq!(state.status_text, "stopping: config error");
        assert!(!state.start_limit_hit());
        assert!(state.config_error() && !state.gave_up(), "an exit 78 is a config error, not a crash loop");
    }

    #[test]
    fn a_crash_loop_that_systemd_gave_up_on_is_recognised() {
        // What systemd 252 shows after 6 kills 1.3 s apart: failed, result signal, no start-limit-hit.
        let looped = UnitState::from_show(
            "LoadState=loaded\nActiveState=failed\nSubState=failed\nMainPID=0\nNRestarts=5\n\
             ExecMainStatus=9\nExecMainCode=2\nResult=signal\nStartLimitBurst=5\n\
             StartLimitIntervalUSec=2min\nInactiveEnterTimestamp=Fri 2026-12-04 16:01:02 UTC\n",
        );
        assert!(looped.gave_up());
        assert_eq!(looped.last_failure().as_deref(), Some("killed by SIGKILL"));
        let hit = UnitState { result: "start-limit-hit".into(), ..UnitState::default() };
        assert!(hit.gave_up());
        assert_eq!(looped.restarts_summary(), "5 restarts in 120 s");
        assert_eq!(timespan_usec("1min 30s"), 90_000_000);
        assert_eq!(timespan_usec("500ms"), 500_000);
        assert_eq!(timespan_usec("infinity"), 0);
        let once = UnitState { n_restarts: 1, ..looped.clone() };
        assert!(!once.gave_up(), "one crash is not a give-up");
        let watchdog = UnitState { result: "watchdog".into(), ..looped.clone() };
        assert!(watchdog.last_failure().unwrap().starts_with("watchdog timeout"));
        let exited = UnitState { exec_main_code: "exited".into(), exec_main_status: 1, ..looped };
        assert_eq!(exited.last_failure().as_deref(), Some("exit status 1"));
    }

    #[test]
    fn user_commands_say_so() {
        let user = Systemctl { user: true };
        assert_eq!(
            user.args(&["enable", "--now", "gatewayd.service"]),
            ["--user", "enable", "--now", "gatewayd.service"]
        );
        assert_eq!(Systemctl { user: false }.display(&["daemon-reload"]), "systemctl daemon-reload");
    }
}
