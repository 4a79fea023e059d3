//! Starting: zero config, security defaults, refusals, precedence, profiles, exclusivity.

use std::os::unix::process::CommandExt;
use std::time::Duration;

use gateway_tests::*;

#[test]
fn zero_config_start_is_private_and_authenticated() {
    let home = Home::new();
    let port = free_port();
    // Whatever umask it inherits, what gatewayd creates is private.
    let daemon = home.spawn(&["--port", &port.to_string()], |cmd| unsafe {
        cmd.pre_exec(|| {
            nix::sys::stat::umask(nix::sys::stat::Mode::empty());
            Ok(())
        });
    });
    daemon.wait_ready();
    let state = home.state_dir(None);
    let token_file = state.join("token");
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&token_file), 0o600);
    assert_eq!(mode(&state.join("logs/gatewayd.jsonl")), 0o600);
    assert_eq!(mode(&home.socket(None)), 0o600);
    assert_eq!(mode(home.socket(None).parent().unwrap()), 0o700);
    let token = std::fs::read_to_string(&token_file).unwrap().trim().to_owned();
    assert!(token.len() >= 64, "token of 32 random bytes, hex: {token}");
    // The token is never logged; the log says how to read it.
    assert!(!daemon.stderr().contains(&token));
    assert!(daemon.stderr().contains("gatewayctl token show"), "{}", daemon.stderr());

    let (status, body) = daemon.get("/healthz", &[]);
    assert_eq!((status, body["ok"].as_bool()), (200, Some(true)));
    // Readiness details go to local or authenticated callers only; loopback is local.
    let (status, body) = daemon.get("/readyz", &[]);
    assert_eq!(status, 200);
    assert_eq!(body["generation"], 1);
    let (status, _) = daemon.get("/nope", &[]);
    assert_eq!(status, 404);

    let status = control(&home.socket(None), "GET", "/v1/status");
    assert_eq!(status["listen"]["addr"], format!("127.0.0.1:{port}"));
    assert_eq!(status["auth_mode"], "token");
    assert_eq!(status["config"]["exists"], false);
    assert_eq!(status["pid"], daemon.pid());
    assert_eq!(status["state"], "running");
}

#[test]
fn non_loopback_without_auth_is_refused_with_exit_78() {
    let home = Home::new();
    home.write_config(None, "[gateway]\nbind = \"lan\"\n[gateway.auth]\nmode = \"none\"\n");
    let mut d = home.spawn(&["--port", &free_port().to_string()], |_| {});
    let status = d.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(78));
    let err = d.stderr();
    assert!(err.contains("refusing to bind gateway to 0.0.0.0:"), "{err}");
    assert!(err.contains("without auth"), "{err}");
    assert!(err.contains("gateway.toml:4:1"), "names file and line: {err}");
}

#[test]
fn remote_mode_refuses_to_start() {
    let home = Home::new();
    home.write_config(None, "[gateway]\nmode = \"remote\"\n");
    let mut d = home.spawn(&["--port", &free_port().to_string()], |_| {});
    assert_eq!(d.wait_exit(Duration::from_secs(5)).code(), Some(78));
    assert!(d.stderr().contains("Gateway start blocked: set gateway.mode=local"), "{}", d.stderr());
}

#[test]
fn invalid_config_names_file_line_and_key() {
    let home = Home::new();
    home.write_config(None, "[gateway]\nport = 1234\n\n[gateway.reload]\nmode = \"sometimes\"\n");
    let mut d = home.spawn(&[], |_| {});
    assert_eq!(d.wait_exit(Duration::from_secs(5)).code(), Some(78));
    let err = d.stderr();
    let file = home.config_file(None);
    assert!(err.contains(&format!("{}:5:", file.display())), "{err}");
    assert!(err.contains("gateway.reload.mode"), "{err}");
}

#[test]
fn flag_beats_env_beats_file() {
    let home = Home::new();
    let (file_port, env_port, flag_port) = (free_port(), free_port(), free_port());
    home.write_config(None, &format!("[gateway]\nport = {file_port}\n"));

    // The file alone.
    let mut d = home.spawn(&[], |_| {});
    d.port = file_port;
    d.wait_ready();
    drop(d);
    // Environment over file.
    let d = home.spawn(&[], |c| {
        c.env("GATEWAY_PORT", env_port.to_string());
    });
    d.wait_ready();
    assert_eq!(d.port, env_port);
    assert!(try_http(file_port, "GET", "/healthz", &[]).is_err());
    drop(d);
    // Flag over environment.
    let d = home.spawn(&["--port", &flag_port.to_string()], |c| {
        c.env("GATEWAY_PORT", env_port.to_string());
    });
    d.wait_ready();
    assert!(try_http(env_port, "GET", "/healthz", &[]).is_err());
    let status = control(&home.socket(None), "GET", "/v1/status");
    assert_eq!(status["listen"]["port"], flag_port);
}

#[test]
fn token_from_env_wins_and_is_not_written() {
    let home = Home::new();
    let port = free_port();
    let d = home.spawn(&["--port", &port.to_string()], |c| {
        c.env("GATEWAY_TOKEN", "env-token-0123456789");
    });
    d.wait_ready();
    assert!(!home.state_dir(None).join("token").exists());
    let token = control(&home.socket(None), "GET", "/v1/token");
    assert_eq!(token["source"], "env");
}

#[test]
fn two_profiles_run_side_by_side() {
    let home = Home::new();
    let (a, b) = (free_port(), free_port());
    let work = home.start(&["--profile", "work", "--port", &a.to_string()]);
    let play = home.start(&["--profile", "play", "--port", &b.to_string()]);
    let sw = control(&home.socket(Some("work")), "GET", "/v1/status");
    let sp = control(&home.socket(Some("play")), "GET", "/v1/status");
    assert_eq!((sw["pid"].as_u64(), sp["pid"].as_u64()), (Some(work.pid().into()), Some(play.pid().into())));
    assert_eq!(sw["service"], "gatewayd-work");
    assert_ne!(sw["paths"]["state_dir"], sp["paths"]["state_dir"]);
    assert!(home.state_dir(Some("work")).join("token").exists());
    assert!(home.state_dir(Some("play")).join("token").exists());
}

#[test]
fn busy_port_names_the_holder() {
    let home = Home::new();
    let blocker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = blocker.local_addr().unwrap().port();
    let mut d = home.spawn(&["--port", &port.to_string()], |_| {});
    assert_eq!(d.wait_exit(Duration::from_secs(5)).code(), Some(69));
    assert!(
        d.stderr().contains(&format!(
            "127.0.0.1:{port} is already in use by another program (pid {}",
            std::process::id()
        )),
        "{}",
        d.stderr()
    );

    // Held by one of ours: said so, with its PID; --force never stops someone else's program.
    let other = Home::new();
    let port = free_port();
    let first = other.start(&["--port", &port.to_string()]);
    let mut second = home.spawn(&["--port", &port.to_string()], |_| {});
    assert_eq!(second.wait_exit(Duration::from_secs(5)).code(), Some(69));
    let err = second.stderr();
    assert!(
        err.contains(&format!(
            "another gateway instance is already listening on 127.0.0.1:{port} (pid {}",
            first.pid()
        )),
        "{err}"
    );
}

#[test]
fn force_replaces_a_gatewayd_on_the_port() {
    let (a, b) = (Home::new(), Home::new());
    let port = free_port();
    let mut first = a.start(&["--port", &port.to_string()]);
    let second = b.spawn(&["--port", &port.to_string(), "--force"], |_| {});
    assert_eq!(
        first.wait_exit(Duration::from_secs(15)).code(),
        Some(0),
        "the old one drained and exited cleanly"
    );
    second.wait_ready();
    let status = wait_for(Duration::from_secs(5), "the new daemon's control socket", || {
        unix_http(&b.socket(None), "GET", "/v1/status", &[]).ok()
    });
    let status: serde_json::Value = serde_json::from_str(&status.1).unwrap();
    assert_eq!(status["pid"], second.pid());
}

#[test]
fn one_instance_per_state_dir() {
    let home = Home::new();
    let first = home.start(&["--port", &free_port().to_string()]);
    let mut second = home.spawn(&["--port", &free_port().to_string()], |_| {});
    assert_eq!(second.wait_exit(Duration::from_secs(5)).code(), Some(69));
    let err = second.stderr();
    assert!(
        err.contains(&format!("another gatewayd (pid {}) is already using the state dir", first.pid())),
        "{err}"
    );
}

#[test]
fn a_readable_config_holding_a_secret_is_flagged() {
    use std::os::unix::fs::PermissionsExt;
    let home = Home::new();
    home.write_config(None, "[gateway.auth]\ntoken = \"literal-secret-123\"\n");
    let file = home.config_file(None);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let d = home.start(&["--port", &free_port().to_string()]);
    let err = d.stderr();
    assert!(err.contains("others can read it: chmod 600"), "{err}");
    assert!(!err.contains("literal-secret-123"), "the secret itself is never logged");
}

#[test]
fn a_second_stop_signal_during_the_drain_exits_at_once() {
    let home = Home::new();
    home.write_config(None, "[gateway.shutdown]\ndrain_timeout_ms = 60000\n");
    let port = free_port();
    let mut d = home.start(&["--port", &port.to_string()]);
    // An open request keeps the drain waiting; the second signal cuts it short.
    let socket = home.socket(None);
    let cursor = control(&socket, "GET", "/v1/logs?lines=1")["cursor"].as_u64().unwrap();
    let _hold = std::thread::spawn(move || {
        let _ = unix_http(&socket, "GET", &format!("/v1/logs?cursor={cursor}&wait_ms=30000"), &[]);
    });
    let mut hold_open = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    std::io::Write::write_all(&mut hold_open, b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    d.signal(nix::sys::signal::Signal::SIGINT);
    std::thread::sleep(Duration::from_millis(200));
    assert!(d.child.try_wait().unwrap().is_none(), "still draining the half-sent request");
    d.signal(nix::sys::signal::Signal::SIGINT);
    assert_eq!(d.wait_exit(Duration::from_secs(3)).code(), Some(1));
}

/// The listen queue is `gateway.http.listen_backlog` (1024 by default, not the standard
/// library's 128), as the kernel reports it for the listening socket (`ss`: Send-Q).
#[test]
fn the_listen_backlog_is_the_configured_one() {
    let Ok(somaxconn) = std::fs::read_to_string("/proc/sys/net/core/somaxconn") else { return };
    let cap: u32 = somaxconn.trim().parse().unwrap();
    for (config, want) in [("", 1024u32), ("[gateway.http]\nlisten_backlog = 777\n", 777)] {
        let home = Home::new();
        let d = home.start_with(config);
        let out = match ss(&format!("sport = :{}", d.port)) {
            Some(out) => out,
            None => {
                eprintln!(
                    "skipped: ss (iproute2) is not installed and cannot be installed here (needs root)"
                );
                return;
            }
        };
        let line = String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default().to_owned();
        let send_q: u32 =
            line.split_whitespace().nth(2).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{line:?}"));
        assert_eq!(send_q, want.min(cap), "{line}");
    }
}

/// `ss -ltnH FILTER`, installing iproute2 first when `ss` is missing and we are root (as CI is).
fn ss(filter: &str) -> Option<std::process::Output> {
    let run = || {
        std::process::Command::new("ss").args(["-ltnH", filter]).output().ok().filter(|o| o.status.success())
    };
    if let Some(out) = run() {
        return Some(out);
    }
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let apt = |args: &[&str]| {
        std::process::Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    if !apt(&["install", "-y", "-qq", "iproute2"]) {
        apt(&["update", "-qq"]);
        apt(&["install", "-y", "-qq", "iproute2"]);
    }
    run()
}
