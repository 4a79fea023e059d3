//! launchd (macOS): the LaunchAgent plist rendered from `launchd/ai.gateway.gatewayd.plist`, and
//! the `launchctl` calls for each lifecycle command, built as argument lists.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use gateway_proto::Profile;

use super::Spec;

pub const TEMPLATE: &str = include_str!("../../../launchd/ai.gateway.gatewayd.plist");

/// `ai.gateway.gatewayd`, or `ai.gateway.NAME` for a profile.
pub fn label(profile: &Profile) -> String {
    match profile.name() {
        None => "ai.gateway.gatewayd".to_owned(),
        Some(name) => format!("ai.gateway.{name}"),
    }
}

/// `~/Library/LaunchAgents/LABEL.plist`.
pub fn plist_path(home: &Path, profile: &Profile) -> PathBuf {
    home.join("Library/LaunchAgents").join(format!("{}.plist", label(profile)))
}

/// The plist for `spec`; launchd writes gatewayd's stdout and stderr to `out_log`.
pub fn render(spec: &Spec, out_log: &Path) -> String {
    let mut args = vec![spec.gatewayd.display().to_string(), "run".to_owned()];
    if let Some(name) = spec.profile.name() {
        args.extend(["--profile".to_owned(), name.to_owned()]);
    }
    let mut out = String::new();
    let mut skipping = false;
    let mut lines = TEMPLATE.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim();
        if skipping {
            skipping = trimmed != "</array>" && trimmed != "</dict>";
            if skipping {
                continue;
            }
        }
        let replaced = match trimmed {
            "<string>ai.gateway.gatewayd</string>" => {
                Some(format!("\t<string>{}</string>", xml(&label(&spec.profile))))
            }
            t if t.starts_with("<string>/usr/local/var/log/") => {
                Some(format!("\t<string>{}</string>", xml(&out_log.display().to_string())))
            }
            t if t.starts_with("<integer>") && out.ends_with("<key>ExitTimeOut</key>\n") => {
                Some(format!("\t<integer>{}</integer>", spec.timeout_stop_sec))
            }
            _ => None,
        };
        out.push_str(replaced.as_deref().unwrap_or(line));
        out.push('\n');
        let next_opens = lines.peek().map(|l| l.trim());
        if trimmed == "<key>ProgramArguments</key>" && next_opens == Some("<array>") {
            out.push_str(lines.next().unwrap_or_default());
            out.push('\n');
            for arg in &args {
                let _ = writeln!(out, "\t\t<string>{}</string>", xml(arg));
            }
            skipping = true;
        } else if trimmed == "<key>EnvironmentVariables</key>" && next_opens == Some("<dict>") {
            out.push_str(lines.next().unwrap_or_default());
            out.push('\n');
            for (name, value) in &spec.env {
                let _ = writeln!(out, "\t\t<key>{}</key>\n\t\t<string>{}</string>", xml(name), xml(value));
            }
            skipping = true;
        }
    }
    out
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The `launchctl` argument lists, for the GUI domain of user `uid`.
pub struct Launchctl {
    pub uid: u32,
    pub label: String,
}

impl Launchctl {
    fn target(&self) -> String {
        format!("gui/{}/{}", self.uid, self.label)
    }

    /// Load the agent from its plist (after `bootout` of a loaded older copy).
    pub fn bootstrap(&self, plist: &Path) -> Vec<String> {
        vec!["bootstrap".into(), format!("gui/{}", self.uid), plist.display().to_string()]
    }

    pub fn enable(&self) -> Vec<String> {
        vec!["enable".into(), self.target()]
    }

    /// Start it now; with `restart`, kill a running one first (`-k`).
    pub fn kickstart(&self, restart: bool) -> Vec<String> {
        let mut args = vec!["kickstart".to_owned()];
        if restart {
            args.push("-k".into());
        }
        args.push(self.target());
        args
    }

    /// Stop it: SIGTERM, a clean exit, which KeepAlive does not restart.
    pub fn stop(&self) -> Vec<String> {
        vec!["kill".into(), "SIGTERM".into(), self.target()]
    }

    /// Unload it (stops it too).
    pub fn bootout(&self) -> Vec<String> {
        vec!["bootout".into(), self.target()]
    }

    /// Its state, for `status --deep` (see `LaunchdState::parse`).
    pub fn print(&self) -> Vec<String> {
        vec!["print".into(), self.target()]
    }
}

/// What `launchctl print gui/UID/LABEL` says about a loaded agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaunchdState {
    /// `running`, `not running`, ...
    pub state: String,
    pub pid: Option<u32>,
    /// How many times launchd started it since it was loaded.
    pub runs: u32,
    pub last_exit_code: Option<i32>,
    /// The signal that ended the last run, as launchd names it (`Killed: 9`).
    pub last_signal: Option<String>,
    /// launchd holds back its respawn: the job exits faster than its `ThrottleInterval` (it is
    /// `spawn scheduled`, or in the `penalty box`).
    pub throttled: bool,
    pub path: String,
}

impl LaunchdState {
    /// The number of the signal that ended the last run (`Killed: 9` is 9).
    pub fn signal_number(&self) -> Option<i32> {
        self.last_signal.as_deref()?.rsplit(' ').next()?.parse().ok()
    }
}

impl LaunchdState {
    /// Reads the top-level `key = value` lines of `launchctl print` (nested blocks are skipped).
    pub fn parse(text: &str) -> Self {
        let mut out = Self::default();
        let mut depth = 0usize;
        let mut throttled_state = false;
        for line in text.lines() {
            let line = line.trim();
            if line.ends_with('{') {
                depth += 1;
                continue;
            }
            if line == "}" {
                depth = depth.saturating_sub(1);
                continue;
            }
            if depth != 1 {
                continue;
            }
            let Some((key, value)) = line.split_once(" = ") else { continue };
            match key {
                "state" => {
                    out.state = value.to_owned();
                    throttled_state = value == "spawn scheduled";
                }
                "pid" => out.pid = value.parse().ok(),
                "runs" => out.runs = value.parse().unwrap_or_default(),
                "last exit code" => {
                    out.last_exit_code = value.split([':', ' ']).next().and_then(|v| v.parse().ok())
                }
                "last terminating signal" => out.last_signal = Some(value.to_owned()),
                "path" => out.path = value.to_owned(),
                "properties" if value.contains("penalty box") => out.throttled = true,
                _ => {}
            }
        }
        out.throttled |= throttled_state;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(profile: Option<&str>) -> Spec {
        Spec {
            gatewayd: "/Users/a b/bin/gatewayd".into(),
            gatewayctl: "/Users/a b/bin/gatewayctl".into(),
            profile: Profile::new(profile, false).unwrap(),
            env: vec![("GATEWAY_STATE_DIR".into(), "/Users/a b/state & more".into())],
            watchdog_sec: 30,
            timeout_stop_sec: 45,
            system: false,
        }
    }

    /// The whole rendered plist, so that any change to it is seen in review.
    #[test]
    fn plist_snapshot() {
        let plist = render(&spec(Some("work")), Path::new("/Users/a b/state/logs/gatewayd.out.log"));
        let expected = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<!-- gatewayd as a LaunchAgent. `gatewayctl install` writes a copy rendered for the installed
     binaries, profile and environment to ~/Library/LaunchAgents/. No secret belongs here. -->
<plist version="1.0">
<dict>
	<key>Label</key>
	<string>ai.gateway.work</string>
	<key>ProgramArguments</key>
	<array>
		<string>/Users/a b/bin/gatewayd</string>
		<string>run</string>
		<string>--profile</string>
		<string>work</string>
	</array>
	<key>EnvironmentVariables</key>
	<dict>
		<key>GATEWAY_STATE_DIR</key>
		<string>/Users/a b/state &amp; more</string>
	</dict>
	<key>RunAtLoad</key>
	<true/>
	<!-- Restarted only after a failed exit, so that `gatewayctl stop` stays stopped. -->
	<key>KeepAlive</key>
	<dict>
		<key>SuccessfulExit</key>
		<false/>
	</dict>
	<key>ThrottleInterval</key>
	<integer>10</integer>
	<key>ExitTimeOut</key>
	<integer>45</integer>
	<key>ProcessType</key>
	<string>Background</string>
	<key>Umask</key>
	<integer>63</integer>
	<key>StandardOutPath</key>
	<string>/Users/a b/state/logs/gatewayd.out.log</string>
	<key>StandardErrorPath</key>
	<string>/Users/a b/state/logs/gatewayd.out.log</string>
</dict>
</plist>
"#;
        assert_eq!(plist, expected);
    }

    #[test]
    fn launchctl_argument_lists() {
        let l = Launchctl { uid: 501, label: label(&Profile::default()) };
        let plist = plist_path(Path::new("/Users/a"), &Profile::default());
        assert_eq!(plist, Path::new("/Users/a/Library/LaunchAgents/ai.gateway.gatewayd.plist"));
        assert_eq!(
            l.bootstrap(&plist),
            ["bootstrap", "gui/501", "/Users/a/Library/LaunchAgents/ai.gateway.gatewayd.plist"]
        );
        assert_eq!(l.enable(), ["enable", "gui/501/ai.gateway.gatewayd"]);
        assert_eq!(l.kickstart(true), ["kickstart", "-k", "gui/501/ai.gateway.gatewayd"]);
        assert_eq!(l.kickstart(false), ["kickstart", "gui/501/ai.gateway.gatewayd"]);
        assert_eq!(l.stop(), ["kill", "SIGTERM", "gui/501/ai.gateway.gatewayd"]);
        assert_eq!(l.bootout(), ["bootout", "gui/501/ai.gateway.gatewayd"]);
        assert_eq!(l.print(), ["print", "gui/501/ai.gateway.gatewayd"]);
    }

    #[test]
    fn launchctl_print_is_read() {
        let text = "gui/501/ai.gateway.gatewayd = {\n\tactive count = 1\n\tpath = /Users/a/Library/LaunchAgents/ai.gateway.gatewayd.plist\n\tstate = running\n\n\tprogram = /usr/local/bin/gatewayd\n\targuments = {\n\t\t/usr/local/bin/gatewayd\n\t\trun\n\t}\n\n\truns = 3\n\tpid = 812\n\tlast exit code = 78: EX_CONFIG\n\tenvironment = {\n\t\tpid = 1\n\t}\n}\n";
        let s = LaunchdState::parse(text);
        assert_eq!(s.state, "running");
        assert_eq!((s.pid, s.runs, s.last_exit_code), (Some(812), 3, Some(78)));
        assert_eq!(s.path, "/Users/a/Library/LaunchAgents/ai.gateway.gatewayd.plist");
        assert!(!s.throttled && s.last_signal.is_none());
    }

    #[test]
    fn a_throttled_agent_killed_by_a_signal_is_read() {
        let text = "gui/501/ai.gateway.gatewayd = {\n\tactive count = 0\n\tpath = /Users/a/Library/LaunchAgents/ai.gateway.gatewayd.plist\n\tstate = spawn scheduled\n\truns = 9\n\tlast exit code = (never exited)\n\tlast terminating signal = Killed: 9\n\tproperties = keepalive | runatload | inferred program\n}\n";
        let s = LaunchdState::parse(text);
        assert_eq!((s.state.as_str(), s.pid, s.runs), ("spawn scheduled", None, 9));
        assert_eq!((s.last_exit_code, s.signal_number()), (None, Some(9)));
        assert!(s.throttled);
        let boxed =
            LaunchdState::parse("x = {\n\tstate = not running\n\tproperties = keepalive | penalty box\n}\n");
        assert!(boxed.throttled);
    }
}
