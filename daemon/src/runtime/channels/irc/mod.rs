//! IRC: one connection per account, over plain TCP or TLS (rustls, the web's root certificates),
//! registered with SASL PLAIN, a server password or NickServ; channels joined; PING answered;
//! a nick in use replaced by `nick_`; direct messages and channel messages turned into
//! [`Inbound`]; replies cut to IRC's line size and sent no faster than the server's flood limits
//! allow; reconnected with backoff and jitter. No crate: the protocol is a line codec
//! (`line`), and the maintained crates bring their own TLS and runtime choices.

pub mod line;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use gateway_config::{IrcAccount, IrcAuth};
use gateway_proto::time::now_ms;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use super::chunk::chunks;
use super::{lifecycle, update, Chat, Delivery, Inbound, Outgoing, SharedStatus};
use line::{command, mentions, strip_address, Line};

/// The text of one PRIVMSG, in bytes: the server adds our prefix to the 512-byte line.
const MAX_TEXT_BYTES: usize = 400;
/// A line longer than this from the server is cut (a server sends at most 512, 8 KB with tags).
const MAX_LINE_BYTES: usize = 16 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Silence this long makes us PING; as long again without an answer, we reconnect.
const IDLE_PING: Duration = Duration::from_secs(120);
/// Flood control: a burst of this many lines, then one per interval.
const BURST: f64 = 4.0;
const LINE_INTERVAL: Duration = Duration::from_millis(700);

pub struct Account {
    pub id: String,
    pub config: IrcAccount,
    pub password: Option<String>,
    pub status: SharedStatus,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Runs the account until `stopped`: connect, serve, and after a failure wait and connect again.
pub async fn run(
    account: Account,
    inbound: mpsc::Sender<Delivery>,
    mut outgoing: mpsc::Receiver<Outgoing>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut failures = 0u32;
    loop {
        let result = serve(&account, &inbound, &mut outgoing, &mut stopped).await;
        if *stopped.borrow() {
            break;
        }
        let registered = account.status.lock().map(|s| s.connected).unwrap_or(false);
        failures = if registered { 1 } else { failures + 1 };
        let why = match result {
            Ok(()) => "the server closed the connection".to_owned(),
            Err(e) => e,
        };
        tracing::warn!(channel = "irc", account = %account.id, error = %why, "IRC connection ended; reconnecting");
        update(&account.status, |s| {
            s.connected = false;
            s.last_error = Some(why);
            s.reconnect_attempts += 1;
        });
        let wait = lifecycle::backoff(failures);
        let pause = tokio::time::sleep(wait);
        tokio::pin!(pause);
        loop {
            tokio::select! {
                _ = &mut pause => break,
                _ = stopped.changed() => {
                    update(&account.status, |s| { s.running = false; s.connected = false; });
                    return;
                }
                Some(o) = outgoing.recv() => {
                    let _ = o.sent.send(Err("not connected to the IRC server".into()));
                }
            }
        }
    }
    update(&account.status, |s| {
        s.running = false;
        s.connected = false;
    });
}

async fn connect(config: &IrcAccount) -> Result<Box<dyn Io>, String> {
    let target = format!("{}:{}", config.host, config.port());
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&target))
        .await
        .map_err(|_| format!("connecting to {target} timed out"))?
        .map_err(|e| format!("cannot connect to {target}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    if !config.tls {
        return Ok(Box::new(tcp));
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = &config.tls_ca {
        add_pem_roots(&mut roots, path)?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(config.host.clone())
        .map_err(|_| format!("{} is not a valid TLS server name", config.host))?;
    let stream = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio_rustls::TlsConnector::from(Arc::new(tls)).connect(name, tcp),
    )
    .await
    .map_err(|_| format!("the TLS handshake with {target} timed out"))?
    .map_err(|e| {
        let hint = match e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
            Some(rustls::Error::InvalidCertificate(_)) if config.tls_ca.is_none() => {
                " (a server with a private CA or self-signed certificate needs tls_ca)"
            }
            _ => "",
        };
        format!("TLS with {target}: {e}{hint}")
    })?;
    Ok(Box::new(stream))
}

/// Trusts the CA certificates of a PEM file (`tls_ca`) besides the web's roots.
fn add_pem_roots(roots: &mut rustls::RootCertStore, path: &std::path::Path) -> Result<(), String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let what = format!("tls_ca {}", path.display());
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{what}: cannot read it ({e}); give a PEM file of CA certificates"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what}: not a PEM certificate file ({e})"))?;
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!("{what}: holds no usable certificate; give a PEM file of CA certificates"));
    }
    Ok(())
}

/// One connection: the line reader, the rate-limited writer, and where registration stands.
struct Conn {
    reader: BufReader<tokio::io::ReadHalf<Box<dyn Io>>>,
    writer: tokio::io::WriteHalf<Box<dyn Io>>,
    allowance: f64,
    last_send: Instant,
    nick: String,
    nick_tries: u32,
    registered: bool,
}

impl Conn {
    async fn open(config: &IrcAccount, password: Option<&str>, nick: &str) -> Result<Conn, String> {
        let (reader, writer) = tokio::io::split(connect(config).await?);
        let mut conn = Conn {
            reader: BufReader::new(reader),
            writer,
            allowance: BURST,
            last_send: Instant::now(),
            nick: nick.to_owned(),
            nick_tries: 0,
            registered: false,
        };
        match (config.auth, password) {
            (IrcAuth::Sasl, Some(_)) => conn.send(&command(&["CAP", "REQ"], Some("sasl"))).await?,
            (IrcAuth::Server, Some(p)) => conn.send(&command(&["PASS"], Some(p))).await?,
            _ => {}
        }
        let user = config.username.clone().unwrap_or_else(|| config.nick.clone());
        conn.send(&command(&["NICK", nick], None)).await?;
        conn.send(&command(&["USER", &user, "0", "*"], Some(&config.realname))).await?;
        Ok(conn)
    }

    /// Writes a line, waiting first when the burst is used up (flood control).
    async fn send(&mut self, line: &str) -> Result<(), String> {
        let now = Instant::now();
        self.allowance = (self.allowance
            + now.duration_since(self.last_send).as_secs_f64() / LINE_INTERVAL.as_secs_f64())
        .min(BURST);
        self.last_send = now;
        if self.allowance < 1.0 {
            let wait = LINE_INTERVAL.mul_f64(1.0 - self.allowance);
            tokio::time::sleep(wait).await;
            self.allowance = 1.0;
            self.last_send = Instant::now();
        }
        self.allowance -= 1.0;
        self.writer.write_all(line.as_bytes()).await.map_err(|e| format!("writing to the IRC server: {e}"))
    }

    /// The next line, or None at the end of the stream.
    async fn read(&mut self) -> Result<Option<Line>, String> {
        let mut raw = Vec::new();
        loop {
            raw.clear();
            let n = (&mut self.reader)
                .take(MAX_LINE_BYTES as u64)
                .read_until(b'\n', &mut raw)
                .await
                .map_err(|e| format!("reading from the IRC server: {e}"))?;
            if n == 0 {
                return Ok(None);
            }
            if let Some(line) = Line::parse(&String::from_utf8_lossy(&raw)) {
                return Ok(Some(line));
            }
        }
    }

    /// What registration and keep-alive need from a line; an error ends the connection.
    async fn handle_protocol(
        &mut self,
        line: &Line,
        config: &IrcAccount,
        password: Option<&str>,
    ) -> Result<(), String> {
        match line.command.as_str() {
            "PING" => self.send(&command(&["PONG"], Some(line.param(0)))).await?,
            "CAP" if line.param(1).eq_ignore_ascii_case("ACK") && line.param(2).contains("sasl") => {
                self.send(&command(&["AUTHENTICATE", "PLAIN"], None)).await?
            }
            "CAP" if line.param(1).eq_ignore_ascii_case("NAK") => {
                return Err("the IRC server does not offer SASL: set auth = \"server\" or \"nickserv\"".into())
            }
            "AUTHENTICATE" if line.param(0) == "+" => {
                let user = &config.nick;
                let plain = format!("{user}\0{user}\0{}", password.unwrap_or(""));
                self.send(&command(&["AUTHENTICATE", &STANDARD.encode(plain)], None)).await?;
            }
            "903" => self.send(&command(&["CAP", "END"], None)).await?,
            "902" | "904" | "905" | "906" => {
                return Err(format!(
                    "SASL authentication failed ({} {}): check nick and password",
                    line.command,
                    line.params.last().map_or("", String::as_str)
                ))
            }
            "464" => return Err("the server password was refused (464)".into()),
            "465" => {
                return Err(format!(
                    "banned from the server: {}",
                    line.params.last().map_or("", String::as_str)
                ))
            }
            // An erroneous nick (too long for the server, a character it refuses): the
            // configured one is a config problem to report, not a collision to work around.
            "432" if !self.registered && self.nick.eq_ignore_ascii_case(&config.nick) => {
                return Err(format!(
                    "the server refuses the nick {}: {}; set another nick",
                    config.nick,
                    line.params.last().map_or("", String::as_str)
                ));
            }
            "433" | "432" if !self.registered => {
                self.nick_tries += 1;
                if self.nick_tries > 5 {
                    return Err(format!("nick {} and its alternatives are taken", config.nick));
                }
                self.nick = format!("{}{}", config.nick, "_".repeat(self.nick_tries as usize));
                let nick = self.nick.clone();
                self.send(&command(&["NICK", &nick], None)).await?;
            }
            "NICK" if line.nick().eq_ignore_ascii_case(&self.nick) => self.nick = line.param(0).to_owned(),
            // Our nick asked back while it is still taken: keep the one we have.
            "433" => {}
            "ERROR" => return Err(format!("the server closed the connection: {}", line.param(0))),
            _ => {}
        }
        Ok(())
    }
}

/// One connected session, until it fails.
async fn serve(
    account: &Account,
    inbound: &mpsc::Sender<Delivery>,
    outgoing: &mut mpsc::Receiver<Outgoing>,
    stopped: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let config = &account.config;
    let password = account.password.as_deref();
    let mut conn = tokio::select! {
        c = Conn::open(config, password, &config.nick) => c?,
        _ = stopped.changed() => return Ok(()),
    };
    let mut pinged = false;
    // A nick taken at connect time (often our own connection, not yet gone) is asked for again.
    let mut regain = tokio::time::interval(Duration::from_secs(10));
    regain.tick().await;
    loop {
        tokio::select! {
            _ = stopped.changed() => {
                let _ = conn.send(&command(&["QUIT"], Some("reconfigured"))).await;
                return Ok(());
            }
            _ = regain.tick(), if conn.registered && !conn.nick.eq_ignore_ascii_case(&config.nick) => {
                conn.send(&command(&["NICK", &config.nick], None)).await?;
            }
            read = tokio::time::timeout(IDLE_PING, conn.read()) => {
                let line = match read {
                    Err(_) if pinged => return Err("the server stopped answering".into()),
                    Err(_) => {
                        pinged = true;
                        conn.send(&command(&["PING"], Some("gateway"))).await?;
                        continue;
                    }
                    Ok(line) => line?,
                };
                pinged = false;
                let Some(line) = line else { return Ok(()) };
                conn.handle_protocol(&line, config, password).await?;
                match line.command.as_str() {
                    "001" => {
                        conn.registered = true;
                        conn.nick = line.param(0).to_owned();
                        if let (IrcAuth::Nickserv, Some(p)) = (config.auth, password) {
                            conn.send(&command(&["PRIVMSG", "NickServ"], Some(&format!("IDENTIFY {p}")))).await?;
                        }
                        if !config.channels.is_empty() {
                            conn.send(&command(&["JOIN", &config.channels.join(",")], None)).await?;
                        }
                        update(&account.status, |s| {
                            s.connected = true;
                            s.last_error = None;
                            s.last_connected_at = Some(now_ms());
                            s.name = conn.nick.clone();
                        });
                        tracing::info!(channel = "irc", account = %account.id, nick = %conn.nick, server = %config.host, "IRC account connected");
                    }
                    "NICK" => update(&account.status, |s| s.name = conn.nick.clone()),
                    "PRIVMSG" => {
                        if let Some(message) = to_inbound(&account.id, &conn.nick, &line) {
                            if inbound.send(Delivery { message, recorded: None }).await.is_err() {
                                return Err("the account's dispatcher has stopped".into());
                            }
                        }
                    }
                    _ => {}
                }
            }
            Some(out) = outgoing.recv(), if conn.registered => {
                // IRC has no typing indicator.
                let result = if out.typing { Ok(()) } else { send_text(&mut conn, &out.to, &out.text).await };
                let failed = result.is_err();
                let _ = out.sent.send(result.clone());
                if failed {
                    return result;
                }
            }
        }
    }
}

/// A reply as PRIVMSG lines: one per line of the text, each cut to IRC's size.
async fn send_text(conn: &mut Conn, to: &str, text: &str) -> Result<(), String> {
    let limit = MAX_TEXT_BYTES.saturating_sub(to.len()).max(64);
    for paragraph in text.lines().map(str::trim_end).filter(|l| !l.trim().is_empty()) {
        for piece in chunks(paragraph, limit) {
            conn.send(&command(&["PRIVMSG", to], Some(&piece))).await?;
        }
    }
    Ok(())
}

static MESSAGES: AtomicU64 = AtomicU64::new(0);

/// A PRIVMSG as an inbound message; None for what is not for the assistant (CTCP, our own).
fn to_inbound(account: &str, nick: &str, line: &Line) -> Option<Inbound> {
    let (target, text) = (line.param(0), line.param(1));
    let from = line.nick();
    if text.starts_with('\u{1}') || from.is_empty() || from.eq_ignore_ascii_case(nick) {
        return None;
    }
    let chat = if target.eq_ignore_ascii_case(nick) { Chat::Dm } else { Chat::Group(target.to_owned()) };
    let mentioned = mentions(text, nick);
    let body = strip_address(text, nick).trim();
    if body.is_empty() {
        return None;
    }
    // IRC gives messages no ids: ours are unique per process and time.
    let id = format!("{}-{}", now_ms(), MESSAGES.fetch_add(1, Ordering::Relaxed));
    Some(Inbound {
        channel: "irc",
        account: account.to_owned(),
        message_id: id,
        peer: from.to_owned(),
        peer_mask: line.prefix.clone(),
        display: from.to_owned(),
        chat,
        text: body.to_owned(),
        mentioned,
        reply_target: None,
    })
}

/// Checks the account from scratch: connects, registers (with its credentials) under a nick of
/// its own, and leaves. Ok when the server welcomed it.
/// The probe's own nick, beside the account's: at most 9 characters, the least servers allow.
fn probe_nick(nick: &str) -> String {
    format!("{}-p", nick.chars().take(7).collect::<String>())
}

pub async fn probe(config: &IrcAccount, password: Option<&str>) -> Result<(), String> {
    let probe_nick = probe_nick(&config.nick);
    let attempt = async {
        let mut conn = Conn::open(config, password, &probe_nick).await?;
        loop {
            let Some(line) = conn.read().await? else {
                return Err("the server closed the connection during registration".to_owned());
            };
            conn.handle_protocol(&line, config, password).await?;
            if line.command == "001" {
                let _ = conn.send(&command(&["QUIT"], Some("probe"))).await;
                return Ok(());
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), attempt)
        .await
        .map_err(|_| "no welcome from the server within 20 s".to_owned())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tls_ca_that_is_missing_or_not_pem_is_named_with_what_to_give() {
        let mut roots = rustls::RootCertStore::empty();
        let missing = add_pem_roots(&mut roots, std::path::Path::new("/nonexistent/ca.pem")).unwrap_err();
        assert!(missing.starts_with("tls_ca /nonexistent/ca.pem: cannot read it"), "{missing}");
        assert!(missing.contains("give a PEM file of CA certificates"), "{missing}");
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("ca.pem");
        std::fs::write(&text, "not a certificate\n").unwrap();
        let empty = add_pem_roots(&mut roots, &text).unwrap_err();
        assert!(empty.contains("holds no usable certificate"), "{empty}");
        assert_eq!(roots.len(), 0);
    }

    fn privmsg(raw: &str) -> Option<Inbound> {
        to_inbound("main", "bot", &Line::parse(raw).unwrap())
    }

    #[test]
    fn direct_and_channel_messages_become_inbound() {
        let dm = privmsg(":alice!a@h PRIVMSG bot :hello").unwrap();
        assert_eq!(
            (dm.chat.clone(), dm.text.as_str(), dm.session_key()),
            (Chat::Dm, "hello", "irc:main:dm:alice".to_owned())
        );
        let group = privmsg(":Alice!a@h PRIVMSG #Chan :bot: what time is it?").unwrap();
        assert_eq!(group.chat, Chat::Group("#Chan".into()));
        assert!(group.mentioned);
        assert_eq!(group.text, "what time is it?");
        assert_eq!(group.session_key(), "irc:main:group:#chan");
        assert_eq!(group.reply_to(), "#Chan");
        assert!(!privmsg(":alice!a@h PRIVMSG #chan :just chatting").unwrap().mentioned);
    }

    #[test]
    fn ctcp_and_our_own_lines_are_not_inbound() {
        assert_eq!(privmsg(":alice!a@h PRIVMSG bot :\u{1}ACTION waves\u{1}"), None);
        assert_eq!(privmsg(":bot!b@h PRIVMSG #chan :echo"), None);
        assert_eq!(privmsg(":alice!a@h PRIVMSG #chan :bot:"), None);
    }
}

#[cfg(test)]
mod sasl_tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    /// A server that offers SASL PLAIN and checks the credentials the way the IRCv3 spec says.
    async fn sasl_server(password: &'static str) -> (u16, tokio::task::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            let mut seen = Vec::new();
            while let Ok(Some(line)) = lines.next_line().await {
                seen.push(line.clone());
                let reply = match line.as_str() {
                    "CAP REQ :sasl" => ":srv CAP * ACK :sasl\r\n".to_owned(),
                    "AUTHENTICATE PLAIN" => "AUTHENTICATE +\r\n".to_owned(),
                    l if l.starts_with("AUTHENTICATE ") => {
                        let decoded = STANDARD.decode(&l["AUTHENTICATE ".len()..]).unwrap();
                        if decoded == format!("bot\0bot\0{password}").into_bytes() {
                            ":srv 903 bot :SASL authentication successful\r\n".to_owned()
                        } else {
                            ":srv 904 bot :SASL authentication failed\r\n".to_owned()
                        }
                    }
                    "CAP END" => ":srv 001 bot :Welcome\r\n".to_owned(),
                    l if l.starts_with("QUIT") => break,
                    _ => String::new(),
                };
                if !reply.is_empty() && write.write_all(reply.as_bytes()).await.is_err() {
                    break;
                }
            }
            seen
        });
        (port, task)
    }

    fn account(port: u16) -> IrcAccount {
        IrcAccount {
            host: "127.0.0.1".into(),
            port: gateway_config::Port::new(port as u64),
            tls: false,
            nick: "bot".into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn sasl_plain_registers_with_the_nick_and_password() {
        let (port, server) = sasl_server("right").await;
        let mut config = account(port);
        config.nick = "bot".into();
        // The probe registers as `bot-p` but authenticates as the account's nick.
        assert_eq!(probe(&config, Some("right")).await, Ok(()));
        let seen = server.await.unwrap();
        assert_eq!(&seen[..2], ["CAP REQ :sasl", "NICK bot-p"]);
        assert!(seen.contains(&"CAP END".to_owned()), "{seen:?}");
    }

    #[tokio::test]
    async fn a_refused_sasl_login_says_so() {
        let (port, _server) = sasl_server("right").await;
        let error = probe(&account(port), Some("wrong")).await.unwrap_err();
        assert_eq!(
            error,
            "SASL authentication failed (904 SASL authentication failed): check nick and password"
        );
    }
}
