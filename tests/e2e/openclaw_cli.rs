//! The OpenClaw CLI (npm `openclaw`, pinned in tests/node/openclaw-cli, on the Node.js 24 it
//! needs) against gatewayd: the everyday gateway commands, `status` against a gateway it does not
//! run, and the terminal UI, which connects with a device identity and chats. The CLI and Node
//! are installed by tests/node/openclaw-cli/install.sh into a cache outside the repository
//! (`.ci/run` runs it; this test runs it when they are missing).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use gateway_tests::process::{run, Finished, Reaped};
use gateway_tests::ws::{Client, Device};
use gateway_tests::*;
use serde_json::{json, Value};

/// The Node.js 24 binary and the CLI's entry script.
struct Cli {
    node: PathBuf,
    entry: PathBuf,
}

fn cli() -> &'static Cli {
    static CLI: OnceLock<Cli> = OnceLock::new();
    CLI.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("node/openclaw-cli/install.sh");
        let mut cmd = Command::new("bash");
        cmd.arg(&script);
        let done = run(cmd, "tests/node/openclaw-cli/install.sh", Duration::from_secs(900)).expect_ok(
            "installing the OpenClaw CLI (the npm registry must be reachable, or run .ci/run's install step)",
        );
        let mut lines = done.stdout.lines().map(PathBuf::from);
        let (node, entry) = (lines.next().unwrap(), lines.next().unwrap());
        assert!(node.exists() && entry.exists(), "install.sh printed {}", done.stdout);
        Cli { node, entry }
    })
}

/// What the CLI leaves under /tmp whatever its HOME: its log dir and its state locks. Removed
/// after the last test using the CLI, when they were not there before the first.
fn tmp_leftovers() -> [PathBuf; 2] {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0);
    [PathBuf::from("/tmp/openclaw"), PathBuf::from(format!("/tmp/openclaw-state-locks-{uid}"))]
}

static USERS: Mutex<(usize, Vec<PathBuf>)> = Mutex::new((0, Vec::new()));

struct TmpGuard;

impl TmpGuard {
    fn enter() -> Self {
        let mut users = USERS.lock().unwrap_or_else(|e| e.into_inner());
        if users.0 == 0 {
            users.1 = tmp_leftovers().into_iter().filter(|p| !p.exists()).collect();
        }
        users.0 += 1;
        TmpGuard
    }
}

impl Drop for TmpGuard {
    fn drop(&mut self) {
        let mut users = USERS.lock().unwrap_or_else(|e| e.into_inner());
        users.0 -= 1;
        if users.0 == 0 {
            for created in users.1.drain(..) {
                let _ = std::fs::remove_dir_all(created);
            }
        }
    }
}

/// One user of the CLI: a home (its `~/.openclaw`), a running gatewayd and its token.
struct Setup {
    home: Home,
    daemon: Daemon,
    token: String,
    _tmp: TmpGuard,
}

impl Setup {
    fn new() -> Self {
        let tmp = TmpGuard::enter();
        let home = Home::new();
        let daemon = home.start_with("[logging]\nlevel = \"info\"\n");
        let token = home.token();
        Self { home, daemon, token, _tmp: tmp }
    }

    /// The CLI as a user on this host runs it against the gateway on its port: the port and
    /// token from the environment, as `openclaw` documents.
    fn command(&self, args: &[&str]) -> Command {
        let cli = cli();
        let mut cmd = self.home.command(&cli.node);
        let path =
            format!("{}:{}", cli.node.parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
        cmd.arg(&cli.entry)
            .args(args)
            .env("PATH", path)
            .env("NO_COLOR", "1")
            .env("OPENCLAW_GATEWAY_PORT", self.daemon.port.to_string())
            .env("OPENCLAW_GATEWAY_TOKEN", &self.token);
        cmd
    }

    fn run(&self, args: &[&str]) -> Finished {
        run(self.command(args), &format!("openclaw {}", args.join(" ")), Duration::from_secs(90))
    }

    /// Runs a command with `--json` that must succeed; its JSON output.
    fn json(&self, args: &[&str]) -> Value {
        let args: Vec<&str> = args.iter().copied().chain(["--json"]).collect();
        let done = self.run(&args);
        let what = format!("openclaw {}", args.join(" "));
        assert_eq!(
            done.code,
            Some(0),
            "{what} failed\nstdout:\n{}\nstderr:\n{}\ngatewayd:\n{}",
            done.stdout,
            done.stderr,
            self.daemon.stderr()
        );
        serde_json::from_str(&done.stdout)
            .unwrap_or_else(|e| panic!("{what}: not JSON ({e}):\n{}\nstderr:\n{}", done.stdout, done.stderr))
    }

    /// Points the CLI's config at this gateway as a remote one (`gateway.mode = remote`): then it
    /// asks the gateway for everything instead of inspecting a local service of its own.
    fn use_remote_config(&self) {
        let dir = self.home.path().join(".openclaw");
        std::fs::create_dir_all(&dir).unwrap();
        let config = json!({ "gateway": { "mode": "remote", "remote": {
            "url": format!("ws://127.0.0.1:{}", self.daemon.port), "token": self.token } } });
        let file = dir.join("openclaw.json");
        std::fs::write(&file, config.to_string()).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

#[test]
fn the_everyday_gateway_commands_work() {
    let s = Setup::new();
    let port = s.daemon.port.to_string();

    let health = s.json(&["health"]);
    assert_eq!(health["ok"], true, "{health}");

    let status = s.json(&["gateway", "status", "--require-rpc"]);
    assert_eq!(status["rpc"]["ok"], true, "{status}");
    assert!(status["rpc"]["url"].as_str().unwrap().ends_with(&port), "{status}");

    let probe = s.json(&["gateway", "probe"]);
    assert_eq!(probe["ok"], true, "{probe}");
    assert_eq!(probe["warnings"], json!([]), "{probe}");
    assert_eq!(probe["targets"][0]["connect"]["rpcOk"], true, "{probe}");

    let presence = s.json(&["system", "presence"]);
    let clients: Vec<&str> =
        presence["presence"].as_array().unwrap().iter().filter_map(|p| p["clientId"].as_str()).collect();
    assert!(clients.contains(&"cli"), "{presence}");

    // One agent turn, as people type it and as scripts read it.
    let said = s.run(&["agent", "--message", "hello from the cli"]).expect_ok("openclaw agent --message");
    assert_eq!(said.stdout.trim(), "hello from the cli", "stderr:\n{}", said.stderr);
    let turn = s.json(&["agent", "--message", "and once more"]);
    assert_eq!(turn["status"], "ok", "{turn}");
    assert_eq!(turn["result"]["payloads"][0]["text"], "and once more", "{turn}");

    let sessions = s.json(&["gateway", "call", "sessions.list"]);
    let main = sessions["sessions"].as_array().unwrap().iter().find(|x| x["key"] == "agent:main:main");
    assert_eq!(main.unwrap_or_else(|| panic!("{sessions}"))["messageCount"], 4, "{sessions}");

    let models = s.json(&["models", "list"]);
    let keys: Vec<&str> =
        models["models"].as_array().unwrap().iter().filter_map(|m| m["key"].as_str()).collect();
    assert!(keys.contains(&"echo/echo"), "{models}");

    // `logs` prints each line's message: the daemon's lines have the fields it reads.
    let logs = s.run(&["logs", "--json", "--limit", "200"]).expect_ok("openclaw logs");
    let messages: Vec<String> = logs
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["type"] == "log")
        .filter_map(|l| l["message"].as_str().map(str::to_owned))
        .collect();
    assert!(messages.iter().any(|m| m == "gatewayd ready"), "{}", logs.stdout);

    let devices = s.json(&["devices", "list"]);
    assert!(devices["pending"].is_array() && devices["paired"].is_array(), "{devices}");
    let channels = s.json(&["channels", "status"]);
    assert_eq!(channels["channelOrder"], json!(["irc", "matrix", "telegram"]), "{channels}");
    assert_eq!(channels["channelAccounts"]["irc"], json!([]), "{channels}");
    // The CLI asks config.get with operator.read: the config in effect, not the file's text.
    let config = s.json(&["gateway", "call", "config.get"]);
    assert_eq!(config["config"]["logging"]["level"], "info", "{config}");
    assert!(config.get("raw").is_none(), "{config}");

    // Scheduled jobs: the CLI's cron commands on our scheduler.
    let added = s.json(&["cron", "add", "--name", "cli-job", "--every", "1h", "--message", "from the CLI"]);
    let id = added["id"].as_str().unwrap().to_owned();
    assert_eq!(added["schedule"]["everyMs"], 3_600_000, "{added}");
    assert_eq!(added["delivery"]["mode"], "none", "the CLI's default announce has no route here: {added}");
    let listed = s.json(&["cron", "list"]);
    assert_eq!(listed["jobs"][0]["id"], id.as_str(), "{listed}");
    let ran = s.json(&["cron", "run", &id]);
    assert_eq!((ran["ran"].as_bool(), ran["run"]["trigger"].as_str()), (Some(true), Some("manual")), "{ran}");
    let entry = wait_for(Duration::from_secs(20), "the CLI's run to end", || {
        let runs = s.json(&["cron", "runs", "--id", &id]);
        runs["entries"].as_array()?.first().filter(|e| e["status"] == "ok").cloned()
    });
    assert_eq!(entry["summary"], "from the CLI", "{entry}");
}

#[test]
fn status_and_health_against_a_gateway_it_does_not_run() {
    let s = Setup::new();
    s.use_remote_config();
    let status = s.json(&["status"]);
    assert_eq!(status["gateway"]["reachable"], true, "{status}");
    assert_eq!(status["gateway"]["mode"], "remote", "{status}");
    let deep = s.json(&["status", "--deep"]);
    assert_eq!(deep["gateway"]["reachable"], true, "{deep}");
    assert_eq!(deep["health"]["ok"], true, "{deep}");
    let text = s.run(&["status"]).expect_ok("openclaw status");
    assert!(text.stdout.contains("reachable"), "{}", text.stdout);
    let health = s.json(&["health"]);
    assert_eq!(health["ok"], true, "{health}");
}

#[test]
fn the_terminal_ui_connects_with_a_device_identity_and_chats() {
    let s = Setup::new();
    let url = format!("ws://127.0.0.1:{}", s.daemon.port);
    // The TUI wants a terminal: `script` gives it one and throws the screen away.
    let tui = shell_words(&[
        &cli().node.display().to_string(),
        &cli().entry.display().to_string(),
        "tui",
        "--url",
        &url,
        "--token",
        &s.token,
        "--session",
        "tui",
        "--message",
        "hello from the tui",
    ]);
    let mut cmd = s.home.command(Path::new("script"));
    cmd.args(["-q", "-e", "-c", &tui, "/dev/null"])
        .env("TERM", "xterm-256color")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _tui = Reaped(cmd.spawn().expect("script (util-linux) runs the TUI in a terminal"));

    let (mut c, _) = Client::paired(s.daemon.port, &s.token, &Device::new(41));
    let history = wait_for(Duration::from_secs(60), "the TUI's message and its reply", || {
        let h = c.request("chat.history", json!({ "sessionKey": "agent:main:tui" }));
        (h["payload"]["messages"].as_array().is_some_and(|m| m.len() == 2)).then_some(h)
    });
    let texts: Vec<&str> = history["payload"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(texts, ["hello from the tui", "hello from the tui"], "{history}");
    // It came with its own device identity, paired on first use from this host.
    let devices = s.home.ctl(&["devices", "list", "--json"]);
    let listed: Value = serde_json::from_slice(&devices.stdout).unwrap();
    let tui = listed["devices"].as_array().unwrap().iter().find(|d| d["client_id"] == "openclaw-tui");
    let tui = tui.unwrap_or_else(|| panic!("{listed}"));
    assert_eq!((&tui["mode"], &tui["revoked"]), (&json!("ui"), &json!(false)), "{listed}");
}

/// Words quoted for `sh -c`.
fn shell_words(words: &[&str]) -> String {
    words.iter().map(|w| format!("'{}'", w.replace('\'', r"'\''"))).collect::<Vec<_>>().join(" ")
}
