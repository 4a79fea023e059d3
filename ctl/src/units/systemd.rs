//! Renders the systemd units in `systemd/` for this host: the installed binaries' absolute paths,
//! the profile, the environment that locates the instance's files, and the watchdog and stop
//! timeouts that match the config. The shipped files are the templates, so they stay valid units.

use std::fmt::Write as _;

use super::Spec;

pub const USER_TEMPLATE: &str = include_str!("../../../systemd/user/gatewayd.service");
/// Shipped for `systemctl --user enable gatewayd@NAME`; install renders per-profile units instead.
pub const USER_PROFILE_TEMPLATE: &str = include_str!("../../../systemd/user/gatewayd@.service");
pub const SYSTEM_TEMPLATE: &str = include_str!("../../../systemd/system/gatewayd.service");

/// The unit file for `spec` (a user unit, or the hardened system unit when `spec.system`).
pub fn render(spec: &Spec) -> String {
    let template = if spec.system { SYSTEM_TEMPLATE } else { USER_TEMPLATE };
    let profile_arg = spec.profile.name().map(|p| format!(" --profile {p}")).unwrap_or_default();
    let dir = spec.profile.dir_name();
    let mut out = String::from(
        "# Written by `gatewayctl install`; `gatewayctl doctor` checks it against what install would write.\n",
    );
    for line in template.lines() {
        let (key, _) = line.split_once('=').unwrap_or((line, ""));
        let replaced = match key {
            "Description" => {
                spec.profile.name().map(|p| format!("Description=gateway daemon (gatewayd), profile {p}"))
            }
            "ExecStart" => {
                Some(format!("ExecStart={} run{profile_arg}", quote(&spec.gatewayd.to_string_lossy())))
            }
            "ExecReload" => Some(format!(
                "ExecReload={}{profile_arg} reload --wait",
                quote(&spec.gatewayctl.to_string_lossy())
            )),
            // Per profile: journald may not attribute a unit's early output to the unit (see
            // commands::journal), so `gatewayctl logs` finds it by this name.
            "SyslogIdentifier" => Some(format!("SyslogIdentifier={}", spec.profile.service_name())),
            "WatchdogSec" => Some(format!("WatchdogSec={}s", spec.watchdog_sec)),
            "TimeoutStopSec" => Some(format!("TimeoutStopSec={}s", spec.timeout_stop_sec)),
            "StateDirectory" | "RuntimeDirectory" | "ConfigurationDirectory" => Some(format!("{key}={dir}")),
            _ => None,
        };
        out.push_str(replaced.as_deref().unwrap_or(line));
        out.push('\n');
        if line == "[Service]" {
            for (name, value) in &spec.env {
                let _ = writeln!(out, "Environment={}", quote(&format!("{name}={value}")));
            }
        }
    }
    out
}

/// A word of a unit file: `%` doubled (specifier), quoted when it has spaces or quotes.
fn quote(word: &str) -> String {
    let escaped = word.replace('%', "%%");
    if escaped.chars().any(|c| c.is_whitespace() || c == '"' || c == '\\' || c == '\'') {
        format!("\"{}\"", escaped.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        escaped
    }
}

/// The config file a user unit's gatewayd would read, from the unit's `Environment=` lines
/// (`GATEWAY_CONFIG_PATH`, else `XDG_CONFIG_HOME`, else `home/.config`), for `status --deep`
/// when gatewayd is not running to say it.
pub fn config_path_of(unit_text: &str, dir_name: &str, home: &std::path::Path) -> std::path::PathBuf {
    let mut config_path = None;
    let mut config_home = None;
    for line in unit_text.lines().map(str::trim) {
        let Some(value) = line.strip_prefix("Environment=") else { continue };
        let value = value.trim_matches('"').replace("%%", "%");
        if let Some(v) = value.strip_prefix("GATEWAY_CONFIG_PATH=") {
            config_path = Some(std::path::PathBuf::from(v));
        } else if let Some(v) = value.strip_prefix("XDG_CONFIG_HOME=") {
            config_home = Some(std::path::PathBuf::from(v));
        }
    }
    config_path.unwrap_or_else(|| {
        config_home.unwrap_or_else(|| home.join(".config")).join(dir_name).join("gateway.toml")
    })
}

/// The settings of a unit file, `Section.Key=value` in order, without comments or blank lines:
/// what `doctor` compares (comments may differ between versions).
pub fn settings(text: &str) -> Vec<String> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            section = line.trim_matches(|c| c == '[' || c == ']').to_owned();
            continue;
        }
        out.push(format!("{section}.{line}"));
    }
    out
}

/// How `installed` differs from `expected`: the settings only one of them has.
pub fn drift(installed: &str, expected: &str) -> Vec<String> {
    let have = settings(installed);
    let want = settings(expected);
    let mut out = Vec::new();
    for w in &want {
        if !have.contains(w) {
            out.push(format!("missing or changed: {w}"));
        }
    }
    for h in &have {
        if !want.contains(h) {
            out.push(format!("not expected: {h}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use gateway_proto::Profile;

    use super::*;

    fn spec(profile: Option<&str>, system: bool) -> Spec {
        Spec {
            gatewayd: "/opt/gw bin/gatewayd".into(),
            gatewayctl: "/opt/gw bin/gatewayctl".into(),
            profile: Profile::new(profile, false).unwrap(),
            env: vec![("XDG_STATE_HOME".into(), "/home/u/state".into())],
            watchdog_sec: 30,
            timeout_stop_sec: 30,
            system,
        }
    }

    #[test]
    fn user_unit_runs_the_installed_binaries() {
        let unit = render(&spec(None, false));
        assert!(unit.contains("\nExecStart=\"/opt/gw bin/gatewayd\" run\n"), "{unit}");
        assert!(unit.contains("\nExecReload=\"/opt/gw bin/gatewayctl\" reload --wait\n"), "{unit}");
        assert!(unit.contains("[Service]\nEnvironment=XDG_STATE_HOME=/home/u/state\n"), "{unit}");
        for line in [
            "Type=notify",
            "Restart=on-failure",
            "RestartPreventExitStatus=78 74",
            "WatchdogSec=30s",
            "TimeoutStopSec=30s",
            "SyslogIdentifier=gatewayd",
            "StartLimitBurst=5",
        ] {
            assert!(unit.lines().any(|l| l == line), "{line} missing:\n{unit}");
        }
        assert!(!unit.to_lowercase().contains("token="), "{unit}");
    }

    #[test]
    fn profile_units_pass_the_profile_and_name_their_dirs() {
        let mut s = spec(Some("work"), true);
        s.watchdog_sec = 12;
        s.timeout_stop_sec = 80;
        let unit = render(&s);
        assert!(unit.contains("ExecStart=\"/opt/gw bin/gatewayd\" run --profile work\n"), "{unit}");
        assert!(unit.contains("ExecReload=\"/opt/gw bin/gatewayctl\" --profile work reload --wait\n"));
        assert!(unit.contains(
            "\nStateDirectory=gateway-work\nStateDirectoryMode=0700\nRuntimeDirectory=gateway-work\n"
        ));
        assert!(unit.contains("Description=gateway daemon (gatewayd), profile work\n"));
        assert!(unit.contains("WatchdogSec=12s\n") && unit.contains("TimeoutStopSec=80s\n"));
        assert!(unit.contains("\nSyslogIdentifier=gatewayd-work\n"), "{unit}");
        assert!(unit.contains("DynamicUser=yes"));
    }

    #[test]
    fn the_config_a_unit_reads() {
        let home = std::path::Path::new("/home/u");
        let unit = render(&spec(None, false));
        assert_eq!(config_path_of(&unit, "gateway", home), home.join(".config/gateway/gateway.toml"));
        let with_env = unit.replace("[Service]\n", "[Service]\nEnvironment=XDG_CONFIG_HOME=/x\n");
        assert_eq!(
            config_path_of(&with_env, "gateway-work", home),
            std::path::Path::new("/x/gateway-work/gateway.toml")
        );
        let pinned =
            unit.replace("[Service]\n", "[Service]\nEnvironment=\"GATEWAY_CONFIG_PATH=/a b/g.toml\"\n");
        assert_eq!(config_path_of(&pinned, "gateway", home), std::path::Path::new("/a b/g.toml"));
    }

    #[test]
    fn no_secret_is_carried_into_a_unit() {
        for name in crate::units::CARRIED_ENV {
            assert!(!name.contains("TOKEN") && !name.contains("PASSWORD"), "{name}");
        }
    }

    #[test]
    fn percent_and_quotes_are_escaped() {
        assert_eq!(quote("/a/b"), "/a/b");
        assert_eq!(quote("/a%b"), "/a%%b");
        assert_eq!(quote("K=a \"b\""), "\"K=a \\\"b\\\"\"");
    }

    #[test]
    fn drift_names_changed_settings_and_ignores_comments() {
        let expected = render(&spec(None, false));
        let commented = format!("# a note\n{expected}");
        assert!(drift(&commented, &expected).is_empty());
        let edited = expected
            .replace("RestartPreventExitStatus=78 74\n", "")
            .replace("WatchdogSec=30s", "WatchdogSec=0");
        let d = drift(&edited, &expected);
        assert!(
            d.contains(&"missing or changed: Service.RestartPreventExitStatus=78 74".to_owned()),
            "{d:?}"
        );
        assert!(d.contains(&"not expected: Service.WatchdogSec=0".to_owned()), "{d:?}");
    }

    #[test]
    fn the_profile_template_matches_the_plain_unit_but_for_the_profile() {
        let plain = settings(USER_TEMPLATE);
        let templated = settings(USER_PROFILE_TEMPLATE);
        let differ: Vec<_> = templated.iter().filter(|s| !plain.contains(s)).collect();
        assert_eq!(differ.len(), 4, "{differ:?}");
        assert!(differ.iter().all(|s| s.contains("%i")), "{differ:?}");
    }
}
