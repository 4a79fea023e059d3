//! Test harness: runs the real `gatewayd` and `gatewayctl` in an isolated home (temp dirs for
//! HOME and the XDG directories) on free ports, and talks to them like a user would: HTTP on the
//! port, HTTP on the control socket, the ctl binary, signals, and a fake systemd notify socket.
//! Every child process is killed when its handle drops.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

pub mod api;
pub mod benchutil;
pub mod disk;
pub mod http1;
pub mod idle;
pub mod irc;
pub mod matrix;
pub mod node;
pub mod otlp;
pub mod process;
pub mod prometheus;
pub mod python;
pub mod telegram;
pub mod upstream;
pub mod ws;
pub mod wsraw;

/// A built binary of the workspace: `target/<profile>/<name>`, beside this test's `deps/` dir.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace` (cargo test --workspace builds it)",
        path.display()
    );
    path
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// An isolated user environment: its own HOME, config, state and runtime dirs.
pub struct Home {
    pub dir: tempfile::TempDir,
}

impl Default for Home {
    fn default() -> Self {
        Self::new()
    }
}

impl Home {
    pub fn new() -> Self {
        // Short paths: a Unix socket path must fit in 107 bytes.
        let dir = tempfile::Builder::new().prefix("gw").tempdir_in("/tmp").unwrap();
        for sub in ["config", "state", "run"] {
            fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    fn dir_name(profile: Option<&str>) -> String {
        profile.map_or("gateway".into(), |p| format!("gateway-{p}"))
    }

    pub fn config_file(&self, profile: Option<&str>) -> PathBuf {
        self.path().join("config").join(Self::dir_name(profile)).join("gateway.toml")
    }

    pub fn state_dir(&self, profile: Option<&str>) -> PathBuf {
        self.path().join("state").join(Self::dir_name(profile))
    }

    pub fn socket(&self, profile: Option<&str>) -> PathBuf {
        self.path().join("run").join(Self::dir_name(profile)).join("gatewayd.sock")
    }

    /// Writes the profile's config file atomically (as editors that rename do).
    pub fn write_config(&self, profile: Option<&str>, text: &str) {
        let path = self.config_file(profile);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let tmp = path.with_extension("toml.tmp-edit");
        fs::write(&tmp, text).unwrap();
        fs::rename(&tmp, &path).unwrap();
    }

    /// A command with this home's environment and nothing inherited that could leak in.
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path())
            .env("XDG_CONFIG_HOME", self.path().join("config"))
            .env("XDG_STATE_HOME", self.path().join("state"))
            .env("XDG_RUNTIME_DIR", self.path().join("run"))
            .stdin(Stdio::null());
        cmd
    }

    /// The gateway token the daemon generated in this home.
    pub fn token(&self) -> String {
        fs::read_to_string(self.state_dir(None).join("token")).expect("a generated token").trim().to_owned()
    }

    /// Writes `config` and starts `gatewayd` on a free port.
    pub fn start_with(&self, config: &str) -> Daemon {
        self.write_config(None, config);
        self.start(&["--port", &free_port().to_string()])
    }

    pub fn ctl(&self, args: &[&str]) -> Output {
        self.command(&bin("gatewayctl")).args(args).output().expect("run gatewayctl")
    }

    /// Runs gatewayctl with `input` on its standard input.
    pub fn ctl_input(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .command(&bin("gatewayctl"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run gatewayctl");
        child.stdin.take().expect("piped").write_all(input.as_bytes()).expect("write stdin");
        child.wait_with_output().expect("gatewayctl ends")
    }

    /// Starts `gatewayd run ARGS` and waits until its port answers.
    pub fn start(&self, args: &[&str]) -> Daemon {
        let daemon = self.spawn(args, |_| {});
        daemon.wait_ready();
        daemon
    }

    /// Spawns `gatewayd run ARGS` without waiting; `adjust` may add environment and the like.
    /// The port is the one given with `--port`, else taken from `GATEWAY_PORT` set by `adjust`.
    pub fn spawn(&self, args: &[&str], adjust: impl FnOnce(&mut Command)) -> Daemon {
        let log = self.path().join(format!("gatewayd-{}.stderr", unique()));
        let mut cmd = self.command(&bin("gatewayd"));
        cmd.arg("run").args(args).stdout(Stdio::null()).stderr(fs::File::create(&log).unwrap());
        // Killed with the thread that spawned it, should that thread's process abort before
        // the handle's drop runs (the release profile of gateway-torture aborts on a panic).
        benchutil::die_with_parent(&mut cmd);
        adjust(&mut cmd);
        let port = args
            .iter()
            .position(|a| *a == "--port")
            .and_then(|i| args.get(i + 1))
            .and_then(|p| p.parse().ok())
            .or_else(|| {
                cmd.get_envs()
                    .find(|(k, _)| *k == "GATEWAY_PORT")
                    .and_then(|(_, v)| v?.to_str()?.parse().ok())
            })
            .unwrap_or(0);
        let child = cmd.spawn().expect("spawn gatewayd");
        Daemon { child, port, stderr: log }
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A running gatewayd, killed on drop.
pub struct Daemon {
    pub child: Child,
    pub port: u16,
    stderr: PathBuf,
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn wait_ready(&self) {
        let port = self.port;
        assert!(port != 0, "give --port (or GATEWAY_PORT) to a daemon the harness should wait for");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok((200, _)) = try_http(port, "GET", "/readyz", &[]) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "gatewayd did not become ready on port {port}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid() as i32), signal).expect("signal gatewayd");
    }

    /// Waits for the process to exit; panics after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "gatewayd did not exit within {timeout:?}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
        let (status, body) = http(self.port, "GET", path, headers);
        (status, serde_json::from_str(&body).unwrap_or(Value::String(body)))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request over TCP to 127.0.0.1:port; returns status and body.
pub fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    try_http(port, method, path, headers).unwrap_or_else(|e| panic!("{method} {path} on port {port}: {e}"))
}

pub fn try_http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, String)> {
    let stream = TcpStream::connect(("127.0.0.1", port))?;
    exchange(stream, method, path, headers)
}

/// One HTTP/1.1 request over a Unix socket.
pub fn unix_http(
    socket: &Path,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, String)> {
    exchange(UnixStream::connect(socket)?, method, path, headers)
}

fn exchange<S: Read + Write>(
    mut stream: S,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, String)> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: 0\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str("Host: localhost\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no HTTP status in {head:?}")))?;
    Ok((status, body.to_owned()))
}

/// A control-API call that must succeed; the body as JSON.
pub fn control(socket: &Path, method: &str, path: &str) -> Value {
    let (status, body) = unix_http(socket, method, path, &[]).expect("control socket answers");
    assert!((200..300).contains(&status), "{method} {path}: {status} {body}");
    serde_json::from_str(&body).expect("JSON body")
}

/// A fake systemd: a datagram socket that collects sd_notify messages.
pub struct NotifySocket {
    sock: UnixDatagram,
    pub path: PathBuf,
    seen: Vec<String>,
}

impl NotifySocket {
    pub fn new(dir: &Path) -> Self {
        let path = dir.join(format!("notify-{}.sock", unique()));
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        Self { sock, path, seen: Vec::new() }
    }

    /// Waits for a message containing `needle`; returns it.
    pub fn expect(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        if let Some(m) = self.seen.iter().find(|m| m.contains(needle)) {
            let m = m.clone();
            self.seen.retain(|x| *x != m);
            return m;
        }
        loop {
            if let Ok(n) = self.sock.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                if msg.contains(needle) {
                    return msg;
                }
                self.seen.push(msg);
            }
            assert!(
                Instant::now() < deadline,
                "no notify message with {needle:?} within {timeout:?}; got {:?}",
                self.seen
            );
        }
    }
}

/// Mode bits of a path.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}
