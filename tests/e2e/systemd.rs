//! gatewayd under a real `systemd --user` and journald (tests/systemd/user-manager.sh runs them in
//! a private mount namespace; it needs root, as CI has). One scenario, run by the harness as an
//! ignored test of this binary: install, status, reload, a kill -9 and systemd's restart, a
//! broken config that must not loop, doctor repairing a hand-edited unit, journald fields,
//! stop and uninstall. Plus the static checks of the shipped and rendered unit files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use gateway_proto::Profile;
use gateway_tests::ws::{Client, Device};
use gateway_tests::{bin, free_port, wait_for, Home};
use gatewayctl::units::{launchd, systemd, Spec};
use serde_json::Value;

const LONG: Duration = Duration::from_secs(60);

/// A command's exit status and output, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn harness() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/user-manager.sh")
}

#[test]
fn user_service_under_a_real_systemd() {
    in_user_manager("systemd::scenario_in_user_manager");
}

#[test]
fn a_crash_loop_systemd_gave_up_on_is_reported_and_recovered() {
    in_user_manager("systemd::crash_loops_in_user_manager");
}

/// One harness at a time: two `systemd --user` of one uid share the cgroup tree (v1 here), so
/// one manager stopping its gatewayd.service would signal the other's too.
static HARNESS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs one ignored test of this binary under the harness's `systemd --user`.
fn in_user_manager(test: &str) {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: the systemd harness needs root (CI runs as root)");
        return;
    }
    let _one_at_a_time = HARNESS.lock().unwrap_or_else(|e| e.into_inner());
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("timeout")
        .arg("300")
        .arg(harness())
        .arg(&exe)
        .args(["--exact", test, "--ignored", "--nocapture", "--test-threads=1"])
        .output()
        .expect("run the systemd harness");
    let all = text(&out);
    assert!(out.status.success(), "{test} under systemd failed:\n{all}");
    assert!(all.contains("scenario complete"), "{test} did not run to its end:\n{all}");
    assert!(all.contains("1 passed"), "{all}");
}

/// The instance under the harness's manager: the manager's unit and runtime dirs, our own
/// HOME and state dir.
struct Inside {
    home: Home,
    config_home: PathBuf,
    runtime: PathBuf,
}

impl Inside {
    fn new() -> Self {
        let var = |name: &str| {
            PathBuf::from(std::env::var(name).unwrap_or_else(|_| panic!("{name} from the harness")))
        };
        Self { home: Home::new(), config_home: var("XDG_CONFIG_HOME"), runtime: var("XDG_RUNTIME_DIR") }
    }

    fn command(&self, program: &Path) -> Command {
        let mut cmd = self.home.command(program);
        cmd.env("XDG_CONFIG_HOME", &self.config_home).env("XDG_RUNTIME_DIR", &self.runtime);
        cmd
    }

    fn ctl(&self, args: &[&str]) -> Output {
        self.command(&bin("gatewayctl")).args(args).output().expect("run gatewayctl")
    }

    fn ctl_ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(out.status.success(), "gatewayctl {args:?}:\n{}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn systemctl(&self, args: &[&str]) -> Output {
        self.command(Path::new("/bin/systemctl")).arg("--user").args(args).output().expect("run systemctl")
    }

    fn show(&self, property: &str) -> String {
        let out = self.systemctl(&["show", "gatewayd.service", "-p", property, "--value"]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The messages of the journal entries that `matches` select.
    fn journal(&self, matches: &[&str]) -> String {
        let out = self
            .command(Path::new("/bin/journalctl"))
            .args(["--no-pager", "-o", "cat"])
            .args(matches)
            .output()
            .expect("run journalctl");
        assert!(out.status.success(), "journalctl {matches:?}:\n{}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn config_file(&self) -> PathBuf {
        self.config_home.join("gateway/gateway.toml")
    }

    fn write_config(&self, text: &str) {
        let path = self.config_file();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
    }

    fn unit_file(&self) -> PathBuf {
        self.config_home.join("systemd/user/gatewayd.service")
    }

    fn deep(&self) -> (i32, Value) {
        let out = self.ctl(&["status", "--deep", "--json"]);
        let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
        (out.status.code().unwrap(), v)
    }

    fn token(&self) -> String {
        std::fs::read_to_string(self.home.state_dir(None).join("token")).unwrap().trim().to_owned()
    }
}

#[test]
#[ignore = "runs inside tests/systemd/user-manager.sh, started by user_service_under_a_real_systemd"]
fn scenario_in_user_manager() {
    assert_eq!(
        std::env::var("SYSTEMD_HARNESS").as_deref(),
        Ok("1"),
        "run by user_service_under_a_real_systemd"
    );
    let t = Inside::new();
    let port = free_port();
    // No file watcher: the reload below must come from systemd's ExecReload.
    let config = format!(
        "[gateway]\nport = {port}\n\n[gateway.reload]\nmode = \"off\"\n\n[gateway.heartbeat]\ninterval_ms = 10000\n"
    );
    t.write_config(&config);

    // install: unit written, enabled, started, ready.
    let out = t.ctl_ok(&["install"]);
    assert!(out.contains("enabled and started gatewayd.service"), "{out}");
    assert!(out.contains("loginctl enable-linger"), "{out}");
    let unit = std::fs::read_to_string(t.unit_file()).unwrap();
    assert!(
        unit.contains(&format!("ExecStart={} run\n", bin("gatewayd").canonicalize().unwrap().display())),
        "{unit}"
    );
    assert!(!unit.contains(&t.token()), "no secret in the unit");
    assert!(unit.contains("\nWatchdogSec=10s\n"), "the heartbeat's period: {unit}");
    assert_eq!(t.show("UnitFileState"), "enabled");

    // status --deep: running and probed.
    let text_out = t.ctl_ok(&["status", "--deep"]);
    assert!(text_out.contains("Runtime: running"), "{text_out}");
    assert!(text_out.contains("RPC probe: ok"), "{text_out}");
    let (code, deep) = t.deep();
    assert_eq!(code, 0, "{deep}");
    assert_eq!(deep["verdict"]["healthy"], true, "{deep}");
    assert_eq!(deep["service"]["unit"]["active_state"], "active");
    let pid = deep["control"]["pid"].as_u64().unwrap();
    assert_eq!(deep["service"]["unit"]["main_pid"].as_u64(), Some(pid));
    assert_eq!(deep["config"]["same"], true, "{deep}");

    // systemctl reload runs ExecReload (gatewayctl reload --wait): a hot change applies.
    t.write_config(&format!("{config}\n[logging]\nlevel = \"debug\"\n"));
    let out = t.systemctl(&["reload", "gatewayd.service"]);
    assert!(out.status.success(), "{}", text(&out));
    let status: Value = serde_json::from_slice(&t.ctl(&["status", "--json"]).stdout).unwrap();
    assert_eq!(status["config"]["generation"], 2, "{status}");
    assert_eq!(status["last_reload"]["trigger"], "control", "{status}");
    assert_eq!(status["pid"].as_u64(), Some(pid), "a hot reload keeps the process");

    // kill -9: systemd restarts it, and clients reconnect.
    let device = Device::new(7);
    let (mut client, _) = Client::paired(port, &t.token(), &device);
    assert_eq!(client.request("health", Value::Null)["ok"], true);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL)
        .unwrap();
    let new_pid = wait_for(LONG, "systemd to restart gatewayd", || {
        let main: u64 = t.show("MainPID").parse().ok()?;
        (main != 0 && main != pid && t.show("ActiveState") == "active").then_some(main)
    });
    assert_eq!(t.show("NRestarts"), "1");
    let (code, deep) = t.deep();
    assert_eq!((code, deep["control"]["pid"].as_u64()), (0, Some(new_pid)), "{deep}");
    assert_eq!(deep["service"]["unit"]["n_restarts"], 1);
    let (mut again, _) = Client::paired(port, &t.token(), &device);
    assert_eq!(again.request("health", Value::Null)["ok"], true);
    drop(again);

    // A second profile: its own unit, seen by the first one's status --deep; --purge removes its files.
    let work_port = free_port();
    let work_config = t.config_home.join("gateway-work/gateway.toml");
    std::fs::create_dir_all(work_config.parent().unwrap()).unwrap();
    std::fs::write(&work_config, format!("[gateway]\nport = {work_port}\n")).unwrap();
    let out = t.ctl_ok(&["--profile", "work", "install"]);
    assert!(out.contains("enabled and started gatewayd-work.service"), "{out}");
    let work_unit =
        std::fs::read_to_string(t.config_home.join("systemd/user/gatewayd-work.service")).unwrap();
    assert!(work_unit.contains(" run --profile work\n"), "{work_unit}");
    let (_, deep) = t.deep();
    let others = deep["others"].as_array().unwrap();
    assert!(
        others.iter().any(|o| o["kind"] == "profile" && o["name"] == "work" && o["port"] == work_port),
        "{deep}"
    );
    assert!(
        others.iter().any(|o| o["kind"] == "user-unit" && o["name"] == "gatewayd-work.service"),
        "{deep}"
    );
    let out = t.ctl_ok(&["--profile", "work", "uninstall", "--purge"]);
    assert!(out.contains("removed"), "{out}");
    assert!(!work_config.exists() && !t.home.state_dir(Some("work")).exists());

    // A broken config: gatewayctl restart refuses (gatewayd keeps running); a restart by
    // systemd exits 78, with no restart loop, and status --deep says why.
    t.write_config(&format!("{config}\n[gateway.oops]\n"));
    let running: u64 = t.show("MainPID").parse().unwrap();
    let out = t.ctl(&["restart"]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("gateway.oops") && said.contains("not restarting gatewayd"), "{}", text(&out));
    assert_eq!(t.show("MainPID").parse::<u64>().unwrap(), running, "still the same gatewayd");
    let out = t.systemctl(&["restart", "gatewayd.service"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert_eq!(t.show("ExecMainStatus"), "78");
    let restarts = t.show("NRestarts");
    std::thread::sleep(Duration::from_secs(4)); // RestartSec is 1s: a loop would show by now.
    assert_eq!(t.show("NRestarts"), restarts, "no restart after exit 78");
    assert_eq!(t.show("ActiveState"), "failed");
    let (code, deep) = t.deep();
    assert_eq!(code, 1);
    assert_eq!(deep["verdict"]["runtime"], "failed", "{deep}");
    assert_eq!(deep["control"]["ok"], false);
    assert_eq!(
        deep["config"]["service"].as_str(),
        Some(t.config_file().to_str().unwrap()),
        "read off the unit"
    );
    let why = deep["verdict"]["problems"].to_string();
    assert!(why.contains("last exit status 78") && why.contains("config invalid"), "{why}");
    assert_eq!(deep["failure"]["config_error"], true, "{deep}");
    assert_eq!(deep["failure"]["gave_up"], false, "{deep}");
    // What gatewayd printed before its logging started comes from the unit's output stream,
    // which journald may store a moment later, and may not attribute to the unit (gatewayd has
    // exited by then): it carries the unit's SyslogIdentifier.
    let message = |e: &Value| e["MESSAGE"].as_str().unwrap_or_default().to_owned();
    let error_lines = wait_for(LONG, "the config error in gatewayctl logs", || {
        let out = t.ctl_ok(&["logs", "-n", "50", "--json"]);
        let entries: Vec<Value> = out.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        let head = entries.iter().find(|e| message(e).contains("invalid configuration"))?;
        let detail = entries.iter().find(|e| message(e).contains("gateway.oops"))?;
        Some([head.clone(), detail.clone()])
    });
    for line in &error_lines {
        assert_eq!(
            (line["SYSLOG_IDENTIFIER"].as_str(), line["_TRANSPORT"].as_str()),
            (Some("gatewayd"), Some("stdout")),
            "{line}"
        );
    }
    let plain = t.ctl_ok(&["logs", "-n", "50"]);
    assert!(plain.contains("invalid configuration") && plain.contains("gateway.oops"), "{plain}");
    let out = t.ctl(&["doctor", "--json"]);
    let doctor: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(2), "{doctor}");
    assert!(doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["id"] == "config.valid" && c["severity"] == "error"));
    t.write_config(&config);

    // A hand-edited unit: doctor finds it, --fix restores it (keeping the edit) and restarts.
    let edited =
        unit.replace("RestartPreventExitStatus=78 74\n", "").replace("WatchdogSec=", "#WatchdogSec=");
    std::fs::write(t.unit_file(), &edited).unwrap();
    let out = t.ctl(&["doctor"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("RestartPreventExitStatus=78 74"), "{}", text(&out));
    let out = t.ctl(&["doctor", "--fix", "--yes", "--json"]);
    let fixed: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    let unit_check =
        fixed["checks"].as_array().unwrap().iter().find(|c| c["id"] == "service.unit").unwrap().clone();
    assert_eq!(
        (unit_check["severity"].as_str(), unit_check["fixed"].as_bool()),
        (Some("ok"), Some(true)),
        "{fixed}"
    );
    assert_eq!(std::fs::read_to_string(t.unit_file()).unwrap(), unit);
    let backup = t.unit_file().with_extension("service.bak");
    assert_eq!(std::fs::read_to_string(&backup).unwrap(), edited);
    wait_for(LONG, "gatewayd to run again after doctor --fix", || {
        (t.show("ActiveState") == "active").then_some(())
    });
    let (code, deep) = t.deep();
    assert_eq!(code, 0, "{deep}");

    // A hung gatewayd stops pinging the watchdog (WatchdogSec=10s here): systemd restarts it.
    let hung: u64 = t.show("MainPID").parse().unwrap();
    let restarts: u32 = t.show("NRestarts").parse().unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(hung as i32), nix::sys::signal::Signal::SIGSTOP)
        .unwrap();
    wait_for(LONG, "the watchdog to restart a stopped gatewayd", || {
        let main: u64 = t.show("MainPID").parse().ok()?;
        (main != 0 && main != hung && t.show("ActiveState") == "active").then_some(())
    });
    assert_eq!(t.show("NRestarts").parse::<u32>().unwrap(), restarts + 1);
    let (code, deep) = t.deep();
    assert_eq!(code, 0, "{deep}");

    // Logs come from journald, with gatewayd's structured fields.
    let out = t.ctl_ok(&["logs", "-n", "500", "--json"]);
    let entries: Vec<Value> = out.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let ready = entries
        .iter()
        .find(|e| e["GATEWAY_EVENT"] == "ready")
        .unwrap_or_else(|| panic!("no ready event in {out}"));
    assert_eq!(ready["SYSLOG_IDENTIFIER"], "gatewayd");
    assert_eq!(ready["GATEWAY_PROFILE"], "default");
    assert_eq!(ready["MESSAGE"], "gatewayd ready");
    // The profile installed above logged too, and none of it shows here.
    let work_entries = t.journal(&["GATEWAY_PROFILE=work"]);
    assert!(work_entries.contains("gatewayd ready"), "{work_entries}");
    assert!(
        entries.iter().all(|e| e["GATEWAY_PROFILE"] != "work" && e["SYSLOG_IDENTIFIER"] != "gatewayd-work"),
        "{out}"
    );
    let by_field = t.journal(&["GATEWAY_EVENT=reload", "GATEWAY_PROFILE=default"]);
    assert!(by_field.contains("applied; generation 2 in effect"), "{by_field}");
    let plain = t.ctl_ok(&["logs", "-n", "50"]);
    assert!(plain.contains("gatewayd ready"), "{plain}");

    // stop, uninstall: nothing left behind.
    t.ctl_ok(&["stop"]);
    assert_eq!(t.show("ActiveState"), "inactive");
    let out = t.ctl_ok(&["uninstall"]);
    assert!(out.contains("removed"), "{out}");
    assert!(!t.unit_file().exists() && !backup.exists());
    let listed = t.systemctl(&["list-units", "--all", "--no-legend", "gatewayd*"]);
    assert_eq!(String::from_utf8_lossy(&listed.stdout).trim(), "", "{}", text(&listed));
    assert!(gateway_proto::procfs::port_holders(port).is_empty(), "nothing listens on {port}");
    assert!(!t.runtime.join("gateway/gatewayd.sock").exists());
    println!("scenario complete");
}

impl Inside {
    /// Kills gatewayd each time systemd brings it back, until systemd stops trying; returns the
    /// number of kills.
    fn crash_until_systemd_gives_up(&self) -> u32 {
        for kills in 0..12 {
            let pid = wait_for(LONG, "gatewayd to run (or systemd to give up)", || {
                if self.show("ActiveState") == "failed" {
                    return Some(None);
                }
                let main: i32 = self.show("MainPID").parse().ok()?;
                (main != 0 && self.show("ActiveState") == "active").then_some(Some(main))
            });
            let Some(pid) = pid else { return kills };
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL)
                .unwrap();
            wait_for(LONG, "systemd to see the kill", || {
                (self.show("MainPID") != pid.to_string()).then_some(())
            });
        }
        panic!("systemd kept restarting gatewayd after 12 kills");
    }

    fn main_pid(&self) -> u64 {
        self.show("MainPID").parse().unwrap()
    }
}

#[test]
#[ignore = "runs inside tests/systemd/user-manager.sh, started by a_crash_loop_systemd_gave_up_on_is_reported_and_recovered"]
fn crash_loops_in_user_manager() {
    assert_eq!(std::env::var("SYSTEMD_HARNESS").as_deref(), Ok("1"), "run by the harness");
    let t = Inside::new();
    let port = free_port();
    let config = format!("[gateway]\nport = {port}\n\n[gateway.heartbeat]\ninterval_ms = 10000\n");
    t.write_config(&config);
    t.ctl_ok(&["install"]);

    // A crash loop until systemd gives up: status --deep says so, how it died, the last log
    // lines, and the command that recovers it.
    let kills = t.crash_until_systemd_gives_up();
    assert!(kills >= 5, "systemd gave up after {kills} kills");
    assert_eq!(t.show("ActiveState"), "failed");
    let (code, deep) = t.deep();
    assert_eq!(code, 1, "{deep}");
    let failure = &deep["failure"];
    assert_eq!(failure["gave_up"], true, "{deep}");
    assert_eq!(failure["last_failure"], "killed by SIGKILL", "{deep}");
    assert!(failure["restarts"].as_u64().unwrap() >= 4, "{deep}");
    assert_eq!(failure["recover"], "gatewayctl start", "{deep}");
    let log = failure["log"].to_string();
    assert!(log.contains("gatewayd ready") || log.contains("status=9/KILL"), "{deep}");
    let out = t.ctl(&["status", "--deep"]);
    let shown = text(&out);
    assert!(
        shown.contains("Failure: systemd gave up after") && shown.contains("; last: killed by SIGKILL"),
        "{shown}"
    );
    assert!(shown.contains("Last log lines:") && shown.contains("Recover: gatewayctl start"), "{shown}");
    let out = t.ctl(&["doctor"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("systemd gave up after"), "{}", text(&out));

    // gatewayctl start clears the failure and brings it back.
    let out = t.ctl_ok(&["start"]);
    assert!(out.contains("cleared that") && out.contains("gatewayd is running"), "{out}");
    assert_eq!(t.show("ActiveState"), "active");
    let (code, deep) = t.deep();
    assert_eq!((code, &deep["failure"]), (0, &Value::Null), "{deep}");

    // The same with restart.
    t.crash_until_systemd_gives_up();
    let out = t.ctl_ok(&["restart"]);
    assert!(out.contains("cleared that") && out.contains("gatewayd is running"), "{out}");
    assert_eq!(t.show("ActiveState"), "active");

    // And with doctor --fix.
    t.crash_until_systemd_gives_up();
    let out = t.ctl(&["doctor", "--fix", "--yes", "--json"]);
    let fixed: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    let check = fixed["checks"].as_array().unwrap().iter().find(|c| c["id"] == "service.failed").cloned();
    assert_eq!(check.map(|c| c["fixed"].clone()), Some(Value::Bool(true)), "{fixed}");
    assert_eq!(t.show("ActiveState"), "active");
    assert_eq!(t.deep().0, 0);

    // A unit that exited 78 is a config error: start refuses, naming the key, until it validates.
    t.write_config(&format!("{config}\n[gateway.oops]\n"));
    assert!(!t.systemctl(&["restart", "gatewayd.service"]).status.success());
    let (_, deep) = t.deep();
    assert_eq!(
        (deep["failure"]["config_error"].as_bool(), deep["failure"]["gave_up"].as_bool()),
        (Some(true), Some(false)),
        "{deep}"
    );
    assert!(deep["failure"]["recover"].as_str().unwrap().contains("config validate"), "{deep}");
    let out = t.ctl(&["start"]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("gateway.oops"), "{}", text(&out));
    assert_eq!(t.show("ActiveState"), "failed", "not started with a broken config");
    let out = t.ctl(&["doctor", "--fix", "--yes", "--json"]);
    let doctor: Value = serde_json::from_slice(&out.stdout).unwrap();
    let check =
        doctor["checks"].as_array().unwrap().iter().find(|c| c["id"] == "service.failed").cloned().unwrap();
    assert_eq!((check["fixable"].as_bool(), check["fixed"].clone()), (Some(false), Value::Null), "{doctor}");
    t.write_config(&config);
    let out = t.ctl_ok(&["start"]);
    assert!(out.contains("cleared that"), "{out}");
    assert_eq!(t.show("ActiveState"), "active");

    // Three restarts at once: serialized, one restart does for all, and the gatewayd they leave
    // keeps its pid (no restart loop, no automatic restarts). The test holds the lifecycle lock
    // while they start, so that all three wait.
    let before = t.main_pid();
    let restarts = t.show("NRestarts");
    let lock_file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(t.runtime.join("gateway/lifecycle.lock"))
        .unwrap();
    let held = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive).unwrap();
    let spawn = || {
        t.command(&bin("gatewayctl"))
            .arg("restart")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut children: Vec<_> = (0..3).map(|_| spawn()).collect();
    std::thread::sleep(Duration::from_secs(1));
    assert!(children.iter_mut().all(|c| c.try_wait().unwrap().is_none()), "they wait for the lock");
    drop(held);
    let outs: Vec<Output> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    let all: String = outs.iter().map(text).collect();
    assert!(outs.iter().all(|o| o.status.success()), "{all}");
    assert_eq!(all.matches("waiting for ").count(), 3, "{all}");
    assert_eq!(all.matches("gatewayd restarted: pid").count(), 1, "{all}");
    assert_eq!(all.matches("not restarting it again").count(), 2, "{all}");
    let after = t.main_pid();
    assert_ne!(after, before, "{all}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!((t.main_pid(), t.show("NRestarts")), (after, restarts.clone()), "{all}");
    assert_eq!(t.show("ActiveState"), "active");

    t.ctl_ok(&["uninstall"]);
    println!("scenario complete");
}

fn spec(system: bool, profile: Option<&str>) -> Spec {
    Spec {
        gatewayd: bin("gatewayd").canonicalize().unwrap(),
        gatewayctl: bin("gatewayctl").canonicalize().unwrap(),
        profile: Profile::new(profile, false).unwrap(),
        env: vec![("XDG_STATE_HOME".into(), "/home/someone/.local/state".into())],
        watchdog_sec: 30,
        timeout_stop_sec: 30,
        system,
    }
}

/// `systemd-analyze verify` prints nothing for a good unit (it exits 0 even on unknown keys).
fn verify(unit_text: &str, name: &str, user: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, unit_text).unwrap();
    let mut cmd = Command::new("systemd-analyze");
    cmd.arg("verify").arg("--man=no");
    if user {
        // The user manager's paths need a runtime dir; a private one will do.
        cmd.arg("--user").env("XDG_RUNTIME_DIR", dir.path());
    }
    let out = cmd.arg(&path).output().expect("systemd-analyze (apt-get install systemd)");
    let all = text(&out);
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "{name}:\n{all}\n{unit_text}"
    );
}

#[test]
fn rendered_units_pass_systemd_analyze_verify() {
    verify(&systemd::render(&spec(false, None)), "gatewayd.service", true);
    verify(&systemd::render(&spec(false, Some("work"))), "gatewayd-work.service", true);
    verify(&systemd::render(&spec(true, None)), "gatewayd.service", false);
}

#[test]
fn the_system_unit_is_hardened() {
    for unit_text in [systemd::SYSTEM_TEMPLATE.to_owned(), systemd::render(&spec(true, Some("work")))] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gatewayd.service");
        std::fs::write(&path, &unit_text).unwrap();
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(&path)
            .output()
            .expect("systemd-analyze");
        let all = text(&out);
        let line =
            all.lines().find(|l| l.contains("Overall exposure level")).unwrap_or_else(|| panic!("{all}"));
        let score: f64 =
            line.split(':').nth(1).and_then(|s| s.split_whitespace().next()).unwrap().parse().unwrap();
        // systemd calls 0-2.9 "OK" (and below 1 "SAFE").
        assert!(score < 3.0, "exposure {score}, not OK:\n{all}");
        for key in [
            "DynamicUser=yes",
            "StateDirectory=",
            "RuntimeDirectory=",
            "ConfigurationDirectory=",
            "RestartPreventExitStatus=78 74",
        ] {
            assert!(unit_text.contains(key), "{key}");
        }
    }
}

#[test]
fn the_shipped_templates_verify_as_they_are() {
    // The packaged files carry /usr/bin paths, which need not exist here: check everything else.
    for (text, name, user) in [
        (systemd::USER_TEMPLATE, "gatewayd.service", true),
        (systemd::USER_PROFILE_TEMPLATE, "gatewayd@work.service", true),
        (systemd::SYSTEM_TEMPLATE, "gatewayd.service", false),
    ] {
        let bins = text
            .replace("/usr/bin/gatewayd", &bin("gatewayd").display().to_string())
            .replace("/usr/bin/gatewayctl", &bin("gatewayctl").display().to_string());
        verify(&bins, name, user);
    }
    for needle in [
        "RestartPreventExitStatus=78 74",
        "Type=notify",
        "WatchdogSec=",
        "ExecReload=/usr/bin/gatewayctl reload --wait",
    ] {
        assert!(systemd::USER_TEMPLATE.contains(needle), "{needle}");
    }
}

/// The plist as Python's plistlib reads it (Debian's plistutil accepts malformed input).
fn plistlib(plist: &str) -> Value {
    use std::io::Write;
    let script = "import plistlib, sys, json\nprint(json.dumps(plistlib.loads(sys.stdin.buffer.read())))";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(plist.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}\n{plist}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_plist_parses_with_plistlib() {
    let d =
        plistlib(&launchd::render(&spec(false, Some("work")), Path::new("/Users/u/state/logs/gatewayd.out")));
    assert_eq!(d["Label"], "ai.gateway.work");
    let args: Vec<&str> =
        d["ProgramArguments"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(args, [bin("gatewayd").canonicalize().unwrap().to_str().unwrap(), "run", "--profile", "work"]);
    assert_eq!(d["KeepAlive"], serde_json::json!({"SuccessfulExit": false}));
    assert_eq!(d["RunAtLoad"], true);
    assert_eq!(d["Umask"], 0o077);
    assert_eq!(d["ThrottleInterval"], 10);
    assert_eq!(d["StandardErrorPath"], "/Users/u/state/logs/gatewayd.out");
    assert_eq!(d["EnvironmentVariables"]["XDG_STATE_HOME"], "/home/someone/.local/state");
    let shipped = plistlib(launchd::TEMPLATE);
    assert_eq!(shipped["Label"], "ai.gateway.gatewayd");
    assert_eq!(shipped["KeepAlive"], d["KeepAlive"]);
}
