//! The gatewayctl binary as users and scripts see it: help, exit codes, and what it does without
//! a daemon (and against a stand-in daemon on a Unix socket).

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Command, Output};

use tempfile::TempDir;

/// gatewayctl with every path of the instance under `home`, and nothing from the caller's
/// environment that could point elsewhere.
fn ctl(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatewayctl"));
    cmd.env("HOME", home)
        .env("XDG_RUNTIME_DIR", home.join("run"))
        .env("XDG_STATE_HOME", home.join("state"))
        .env("XDG_CONFIG_HOME", home.join("config"));
    for var in [
        "GATEWAY_CONFIG_PATH",
        "GATEWAY_STATE_DIR",
        "GATEWAY_PORT",
        "GATEWAY_BIND",
        "GATEWAY_TOKEN",
        "STATE_DIRECTORY",
        "RUNTIME_DIRECTORY",
        "CONFIGURATION_DIRECTORY",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output { status, stdout, stderr } = cmd.output().expect("gatewayctl runs");
    (status.code().expect("exited"), String::from_utf8(stdout).unwrap(), String::from_utf8(stderr).unwrap())
}

#[test]
fn help_lists_the_commands_and_exit_codes() {
    let home = TempDir::new().unwrap();
    let (code, out, _) = run(ctl(home.path()).arg("--help"));
    assert_eq!(code, 0);
    let commands: Vec<&str> = out
        .split("Commands:\n")
        .nth(1)
        .unwrap()
        .lines()
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        commands,
        [
            "status",
            "health",
            "reload",
            "install",
            "uninstall",
            "start",
            "stop",
            "restart",
            "doctor",
            "logs",
            "config",
            "dashboard",
            "token",
            "devices",
            "password",
            "secrets",
            "signins",
            "channels",
            "pairing",
            "cron",
            "remote",
            "help"
        ]
    );
    for code in ["0 ", "1 ", "2 ", "3 ", "78 "] {
        assert!(out.contains(&format!("  {code}")), "exit code {code}in {out}");
    }
    let (code, out, _) = run(ctl(home.path()).args(["config", "--help"]));
    assert_eq!(code, 0);
    for sub in ["path", "show", "validate", "schema"] {
        assert!(out.contains(&format!("  {sub} ")), "{sub} in {out}");
    }
}

#[test]
fn validate_names_file_line_and_key() {
    let home = TempDir::new().unwrap();
    let file = home.path().join("bad.toml");
    fs::write(&file, "[gateway]\nport = 18789\nprot = 5\n").unwrap();
    let (code, out, err) = run(ctl(home.path()).args(["config", "validate"]).arg(&file));
    assert_eq!(code, 78, "{out}{err}");
    assert!(err.contains(&format!("{}:3", file.display())), "file:line in {err}");
    assert!(err.contains("gateway.prot"), "key in {err}");

    // Parses, but gatewayd would refuse to start with it.
    fs::write(&file, "[gateway]\nmode = \"remote\"\n").unwrap();
    let (code, _, err) = run(ctl(home.path()).args(["config", "validate"]).arg(&file));
    assert_eq!(code, 78);
    assert!(err.contains(":2:1: key `gateway.mode`"), "{err}");

    fs::write(&file, "[logging]\nlevel = \"debug\"\n").unwrap();
    let (code, out, _) = run(ctl(home.path()).args(["config", "validate"]).arg(&file));
    assert_eq!((code, out), (0, format!("{}: ok\n", file.display())));
}

#[test]
fn config_path_follows_the_environment() {
    let home = TempDir::new().unwrap();
    let (code, out, _) =
        run(ctl(home.path()).args(["config", "path"]).env("GATEWAY_CONFIG_PATH", "/etc/gw/custom.toml"));
    assert_eq!((code, out.as_str()), (0, "/etc/gw/custom.toml\n"));
    let (_, out, _) = run(ctl(home.path()).args(["--dev", "config", "path"]));
    assert_eq!(out.trim_end(), home.path().join("config/gateway-dev/gateway.toml").to_str().unwrap());
}

#[test]
fn status_without_a_daemon_says_what_to_do() {
    let home = TempDir::new().unwrap();
    let (code, out, err) = run(ctl(home.path()).arg("status"));
    assert_eq!(code, 3, "{out}{err}");
    assert!(err.contains("gatewayd is not running"), "{err}");
    // No unit installed in this home: start it, with no systemctl advice.
    assert!(err.contains("Start it: gatewayctl start (in the background), or gatewayd run"), "{err}");
    assert!(!err.contains("systemctl"), "{err}");
    let (code, _, err) = run(ctl(home.path()).args(["--profile", "work", "status"]));
    assert_eq!(code, 3);
    assert!(err.contains("gatewayd run --profile work"), "{err}");
}

#[test]
fn token_rotate_without_a_daemon_writes_a_private_file() {
    let home = TempDir::new().unwrap();
    let (code, _, err) = run(ctl(home.path()).args(["token", "show"]));
    assert_eq!(code, 1);
    assert!(err.contains("no token yet"), "{err}");

    let (code, out, err) = run(ctl(home.path()).args(["token", "rotate"]));
    assert_eq!(code, 0, "{out}{err}");
    let file = home.path().join("state/gateway/token");
    let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dir_mode = fs::metadata(file.parent().unwrap()).unwrap().permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o700);
    let written = fs::read_to_string(&file).unwrap();

    let (code, out, _) = run(ctl(home.path()).args(["token", "show"]));
    assert_eq!(code, 0);
    assert_eq!(out, written);
    assert_eq!(out.trim_end().len(), 64);
}

/// A stand-in daemon answering `answers` (path -> status line and JSON body), one per connection.
fn fake_daemon(home: &Path, answers: Vec<(&'static str, &'static str, String)>) {
    let dir = home.join("run/gateway");
    fs::create_dir_all(&dir).unwrap();
    let listener = UnixListener::bind(dir.join("gatewayd.sock")).unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let mut conn = conn.unwrap();
            let mut request = Vec::new();
            let mut buf = [0; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                let n = conn.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
            }
            let request = String::from_utf8(request).unwrap();
            let (status, body) = answers
                .iter()
                .find(|(route, _, _)| request.starts_with(route))
                .map_or(("404 Not Found", String::new()), |(_, s, b)| (*s, b.clone()));
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
}

#[test]
fn reload_and_health_against_a_daemon() {
    let home = TempDir::new().unwrap();
    let rejected = r#"{"trigger":"control","outcome":"rejected","generation":4,"at_ms":0,
        "changed_keys":[],"restart_keys":[],"message":"the file does not load",
        "errors":[{"file":"/c/gateway.toml","line":3,"column":1,"key":"gateway.prot","message":"unknown field"}]}"#;
    let health = r#"{"ok":false,"checks":[{"name":"listener","ok":true,"detail":"127.0.0.1:18789"},
        {"name":"heartbeat","ok":false,"detail":"no tick for 95s"}]}"#;
    fake_daemon(
        home.path(),
        vec![
            ("POST /v1/reload ", "200 OK", rejected.to_owned()),
            ("GET /v1/health ", "503 Service Unavailable", health.to_owned()),
        ],
    );
    let (code, _, err) = run(ctl(home.path()).arg("reload"));
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("rejected: the file does not load"), "{err}");
    assert!(err.contains("/c/gateway.toml:3:1: key `gateway.prot`: unknown field"), "{err}");
    let (code, out, _) = run(ctl(home.path()).arg("health"));
    assert_eq!(code, 1);
    assert_eq!(out, "ok   listener: 127.0.0.1:18789\nFAIL heartbeat: no tick for 95s\n");
}
