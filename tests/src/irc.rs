//! A real IRC server for the channel tests: Debian's `ngircd` on a free loopback port with a
//! private config (a server password, no DNS or ident lookups), killed on drop; and a small IRC
//! client that plays the person talking to the assistant.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, wait_for};

pub const SERVER_PASSWORD: &str = "irc-server-pass";

/// `/usr/sbin/ngircd`, installed with apt when missing and this runs as root (as `.ci/run` does).
pub fn ngircd() -> PathBuf {
    crate::process::debian_program(Path::new("/usr/sbin/ngircd"), "ngircd")
}

pub struct IrcServer {
    pub port: u16,
    /// With [`IrcServer::start_tls`]: the TLS port, and the PEM file of the CA that signed the
    /// server's certificate (for 127.0.0.1).
    pub tls: Option<(u16, PathBuf)>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl IrcServer {
    pub fn start() -> Self {
        Self::new(false)
    }

    /// Also listens with TLS, on a certificate a fresh test CA signed.
    pub fn start_tls() -> Self {
        Self::new(true)
    }

    fn new(tls: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        // ngircd drops to `nobody` after reading its config: its pid file's dir must let it write.
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        let tls = tls.then(|| (free_port(), write_certificates(dir.path())));
        let mut server = Self { port: free_port(), tls, dir, child: None };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let conf = self.dir.path().join("ngircd.conf");
        std::fs::write(
            &conf,
            format!(
                "[Global]\nName = irc.test\nInfo = gateway test server\nListen = 127.0.0.1\nPorts = {}\n\
                 Password = {SERVER_PASSWORD}\nPidFile = {}\nMotdPhrase = test\n\
                 [Limits]\nPingTimeout = 120\nPongTimeout = 20\nMaxConnectionsIP = 50\n\
                 [Options]\nPAM = no\nIdent = no\nDNS = no\n{}",
                self.port,
                self.dir.path().join("ngircd.pid").display(),
                match &self.tls {
                    Some((port, _)) => format!(
                        "[SSL]\nPorts = {port}\nCertFile = {}\nKeyFile = {}\n",
                        self.dir.path().join("server.pem").display(),
                        self.dir.path().join("server.key").display()
                    ),
                    None => String::new(),
                }
            ),
        )
        .unwrap();
        let child = Command::new(ngircd())
            .args(["-n", "-f"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ngircd starts");
        self.child = Some(child);
        for port in [Some(self.port), self.tls.as_ref().map(|t| t.0)].into_iter().flatten() {
            wait_for(Duration::from_secs(30), "ngircd to listen", || {
                TcpStream::connect(("127.0.0.1", port)).ok()
            });
        }
    }

    /// Stops the server (every client is disconnected).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops and starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for IrcServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A test CA (`ca.pem`) and a certificate it signed for 127.0.0.1 (`server.pem`, `server.key`),
/// in `dir`; returns the CA's path.
fn write_certificates(dir: &Path) -> PathBuf {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert =
        CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap().signed_by(&key, &issuer).unwrap();
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        // Readable by ngircd after it drops to `nobody`.
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        path
    };
    write("server.pem", cert.pem());
    write("server.key", key.serialize_pem());
    write("ca.pem", ca.pem())
}

/// A person on IRC: registers with a nick, says things, and reads what comes back.
pub struct IrcUser {
    pub nick: String,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// Every line read so far.
    pub seen: Vec<String>,
}

impl IrcUser {
    pub fn connect(server: &IrcServer, nick: &str) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let mut user = Self {
            nick: nick.to_owned(),
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
            seen: Vec::new(),
        };
        user.send(&format!("PASS {SERVER_PASSWORD}"));
        user.send(&format!("NICK {nick}"));
        user.send(&format!("USER {nick} 0 * :{nick}"));
        user.expect(Duration::from_secs(10), |l| l.contains(" 001 "));
        user
    }

    pub fn send(&mut self, line: &str) {
        self.writer.write_all(format!("{line}\r\n").as_bytes()).unwrap();
    }

    pub fn say(&mut self, to: &str, text: &str) {
        self.send(&format!("PRIVMSG {to} :{text}"));
    }

    pub fn join(&mut self, channel: &str) {
        self.send(&format!("JOIN {channel}"));
        self.expect(Duration::from_secs(10), |l| l.contains(" 366 "));
    }

    /// Reads until a line passes `wanted` (answering PINGs); panics with what came otherwise.
    pub fn expect(&mut self, timeout: Duration, wanted: impl Fn(&str) -> bool) -> String {
        self.try_expect(timeout, wanted).unwrap_or_else(|| {
            panic!("{}: nothing wanted arrived; seen:\n{}", self.nick, self.seen.join("\n"))
        })
    }

    pub fn try_expect(&mut self, timeout: Duration, wanted: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) => return None,
                Ok(_) => {
                    let line = line.trim_end().to_owned();
                    if let Some(token) = line.strip_prefix("PING ") {
                        self.send(&format!("PONG {token}"));
                    }
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return Some(line);
                    }
                }
                Err(e)
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => return None,
            }
        }
        None
    }

    /// The text of the next PRIVMSG from `from` (to us or to a channel).
    pub fn message_from(&mut self, from: &str, timeout: Duration) -> String {
        let prefix = format!(":{from}!");
        let line = self.expect(timeout, |l| l.starts_with(&prefix) && l.contains(" PRIVMSG "));
        line.split_once(" :").map(|(_, t)| t.to_owned()).unwrap_or_default()
    }
}
