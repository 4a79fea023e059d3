//! A real Matrix homeserver for the channel tests: Synapse (PyPI `matrix-synapse`, installed once
//! into a cached venv by `tests/matrix/install.sh`) on a free loopback port with a generated
//! config (SQLite, no federation key servers, rate limits lifted), killed on drop; users made with
//! its own `register_new_matrix_user`; and a small client-server API client that plays a person.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::http1::{request, Reply};
use crate::process::run;
use crate::{free_port, wait_for};

pub const SERVER_NAME: &str = "localhost";

/// The python of the Synapse venv, installed when missing.
fn python() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("matrix/install.sh");
    let done = run(Command::new(&script), "tests/matrix/install.sh", Duration::from_secs(900))
        .expect_ok("tests/matrix/install.sh");
    PathBuf::from(done.stdout.trim())
}

pub struct Synapse {
    pub port: u16,
    dir: tempfile::TempDir,
    python: PathBuf,
    child: Option<Child>,
}

impl Synapse {
    pub fn start() -> Self {
        let python = python();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("homeserver.yaml");
        let generated = Command::new(&python)
            .args(["-m", "synapse.app.homeserver", "--server-name", SERVER_NAME, "--config-path"])
            .arg(&config)
            .arg("--data-directory")
            .arg(dir.path())
            .args(["--generate-config", "--report-stats=no"])
            .output()
            .unwrap();
        assert!(
            generated.status.success(),
            "synapse --generate-config: {}",
            String::from_utf8_lossy(&generated.stderr)
        );
        let port = free_port();
        let text = std::fs::read_to_string(&config).unwrap();
        let text = text.replace("port: 8008", &format!("port: {port}")).replace("    - ::1\n", "");
        let lifted = "{per_second: 1000, burst_count: 1000}";
        let extra = format!(
            "enable_registration: false\nsuppress_key_server_warning: true\ntrusted_key_servers: []\n\
             rc_message: {lifted}\nrc_login:\n  address: {lifted}\n  account: {lifted}\n  failed_attempts: {lifted}\n\
             rc_joins:\n  local: {lifted}\n  remote: {lifted}\nrc_invites:\n  per_room: {lifted}\n  per_user: {lifted}\n"
        );
        std::fs::write(&config, text + &extra).unwrap();
        // The generated log config writes beside the working directory: keep it in ours.
        let log_config = dir.path().join(format!("{SERVER_NAME}.log.config"));
        let logging = std::fs::read_to_string(&log_config).unwrap();
        let logging = logging
            .lines()
            .map(|l| match l.trim_start().strip_prefix("filename: ") {
                Some(_) => format!("        filename: {}", dir.path().join("homeserver.log").display()),
                None => l.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(&log_config, logging).unwrap();
        let mut server = Self { port, dir, python, child: None };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let child = Command::new(&self.python)
            .args(["-m", "synapse.app.homeserver", "-c"])
            .arg(self.dir.path().join("homeserver.yaml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("synapse starts");
        self.child = Some(child);
        let port = self.port;
        wait_for(Duration::from_secs(60), "synapse to answer", || {
            request(port, "GET", "/_matrix/client/versions", &[], None).ok().filter(|r| r.status == 200)
        });
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A new user, by its localpart; the full id is `@name:localhost`.
    pub fn register(&self, name: &str, password: &str) -> String {
        let tool = self.python.with_file_name("register_new_matrix_user");
        let mut cmd = Command::new(tool);
        cmd.args(["-u", name, "-p", password, "--no-admin", "-c"])
            .arg(self.dir.path().join("homeserver.yaml"))
            .arg(self.url());
        run(cmd, "register_new_matrix_user", Duration::from_secs(60)).expect_ok("register_new_matrix_user");
        format!("@{name}:{SERVER_NAME}")
    }
}

impl Drop for Synapse {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A person on Matrix.
pub struct MatrixUser {
    port: u16,
    token: String,
    pub user_id: String,
}

static TXN: AtomicU64 = AtomicU64::new(0);

fn escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl MatrixUser {
    pub fn login(server: &Synapse, user_id: &str, password: &str) -> Self {
        let body = json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": user_id }, "password": password });
        let r =
            request(server.port, "POST", "/_matrix/client/v3/login", &[], Some(&body.to_string())).unwrap();
        assert_eq!(r.status, 200, "login {user_id}: {}", r.body);
        Self {
            port: server.port,
            token: r.json()["access_token"].as_str().unwrap().to_owned(),
            user_id: user_id.to_owned(),
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Reply {
        let auth = format!("Bearer {}", self.token);
        let body = body.map(Value::to_string);
        request(
            self.port,
            method,
            &format!("/_matrix/client/v3/{path}"),
            &[("Authorization", &auth)],
            body.as_deref(),
        )
        .unwrap()
    }

    /// A direct-message room with `other` invited; its id.
    pub fn direct_room(&self, other: &str) -> String {
        let r = self.call(
            "POST",
            "createRoom",
            Some(&json!({ "is_direct": true, "invite": [other], "preset": "trusted_private_chat" })),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["room_id"].as_str().unwrap().to_owned()
    }

    pub fn say(&self, room: &str, text: &str) {
        let txn = TXN.fetch_add(1, Ordering::Relaxed);
        let path = format!("rooms/{}/send/m.room.message/t{txn}", escape(room));
        let r = self.call("PUT", &path, Some(&json!({ "msgtype": "m.text", "body": text })));
        assert_eq!(r.status, 200, "{}", r.body);
    }

    /// Every `m.text` from `sender` in the room, oldest first.
    pub fn messages_from(&self, room: &str, sender: &str) -> Vec<String> {
        let r = self.call("GET", &format!("rooms/{}/messages?dir=b&limit=100", escape(room)), None);
        let mut texts: Vec<String> = r.json()["chunk"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["type"] == "m.room.message" && e["sender"] == sender)
            .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
            .collect();
        texts.reverse();
        texts
    }

    /// Waits until `sender` has said at least `n` things in the room; returns them all.
    pub fn wait_messages(&self, room: &str, sender: &str, n: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.messages_from(room, sender);
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until `user` has joined the room.
    pub fn wait_joined(&self, room: &str, user: &str, timeout: Duration) {
        wait_for(timeout, "the bot to join", || {
            let r = self.call("GET", &format!("rooms/{}/joined_members", escape(room)), None);
            r.json()["joined"].get(user).map(|_| ())
        });
    }
}
