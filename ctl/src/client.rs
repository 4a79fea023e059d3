//! A blocking client of the control API on gatewayd's Unix socket. No async runtime: starting one
//! would cost more than a whole `gatewayctl status`.

use std::fmt;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use gateway_proto::api::ErrorBody;
use gateway_proto::{exit, Profile};
use nix::sys::socket::{send, MsgFlags};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::http::{self, Response};
use crate::output::duration;

/// Enough for any request that answers at once.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Answers are small; anything bigger is not the control API.
const MAX_RESPONSE: usize = 64 << 20;

pub struct Client {
    socket: PathBuf,
    profile: Profile,
}

/// Why nothing answered on the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Silence {
    NoSocket,
    Refused,
    Closed,
    TimedOut(Duration),
    Io(String),
}

#[derive(Debug)]
pub enum Error {
    /// Nothing answers on the socket: the daemon is not running, or hangs.
    NotRunning { socket: PathBuf, profile: Profile, why: Silence },
    /// The socket belongs to another user.
    PermissionDenied { socket: PathBuf },
    /// The daemon answered, with an error.
    Refused { status: u16, message: String },
    /// The answer is not what the control API promises.
    Protocol { socket: PathBuf, detail: String },
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::NotRunning { .. } => exit::NOT_RUNNING,
            _ => exit::FAILURE,
        }
    }

    pub fn is_not_running(&self) -> bool {
        matches!(self, Self::NotRunning { .. })
    }

    /// Nothing listens any more (a daemon that only answers slowly is still there).
    pub fn is_gone(&self) -> bool {
        matches!(self, Self::NotRunning { why, .. } if !matches!(why, Silence::TimedOut(_)))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotRunning { socket, profile, why } => {
                let socket = socket.display();
                match why {
                    Silence::NoSocket => write!(f, "gatewayd is not running: no answer on {socket} (no such socket).")?,
                    Silence::Refused => write!(f, "gatewayd is not running: no answer on {socket} (connection refused).")?,
                    Silence::Closed => write!(f, "gatewayd is not running: no answer on {socket} (the connection was closed without an answer).")?,
                    Silence::TimedOut(t) => write!(f, "gatewayd does not answer: no answer on {socket} within {} (it may be stuck).", duration(t.as_millis() as u64))?,
                    Silence::Io(e) => write!(f, "gatewayd is not running: no answer on {socket} ({e}).")?,
                }
                write!(f, "\n{}", crate::service::not_running_hint(profile))
            }
            Self::PermissionDenied { socket } => {
                write!(f, "permission denied on {}", socket.display())?;
                if let Ok(meta) = std::fs::metadata(socket) {
                    write!(f, " (owned by uid {})", meta.uid())?;
                }
                write!(
                    f,
                    ": gatewayctl must run as the same user as gatewayd (you are uid {})",
                    nix::unistd::geteuid()
                )
            }
            Self::Refused { status, message } => {
                write!(f, "gatewayd refused the request: {message} (HTTP {status})")
            }
            Self::Protocol { socket, detail } => write!(
                f,
                "unexpected answer on {}: {detail}; is this a gatewayd of the same version ({})?",
                socket.display(),
                gateway_proto::VERSION
            ),
        }
    }
}

impl std::error::Error for Error {}

impl Client {
    pub fn new(socket: PathBuf, profile: Profile) -> Self {
        Self { socket, profile }
    }

    /// `GET path`, expecting a 2xx with a `T`.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        self.call("GET", path, DEFAULT_TIMEOUT)
    }

    /// A request expecting a 2xx with a `T`; other statuses become [`Error::Refused`].
    pub fn call<T: DeserializeOwned>(&self, method: &str, path: &str, timeout: Duration) -> Result<T, Error> {
        let response = self.send(method, path, timeout)?;
        if !response.is_success() {
            return Err(self.refused(&response));
        }
        self.decode(&response)
    }

    /// A request with a JSON body, expecting a 2xx with a `T`.
    pub fn call_json<T: DeserializeOwned, B: Serialize>(
        &self,
        method: &str,
        path: &str,
        body: &B,
        timeout: Duration,
    ) -> Result<T, Error> {
        let body = serde_json::to_vec(body).map_err(|e| self.protocol(e.to_string()))?;
        let response = self.exchange(&http::request_json(method, path, &body), timeout)?;
        if !response.is_success() {
            return Err(self.refused(&response));
        }
        self.decode(&response)
    }

    pub fn decode<T: DeserializeOwned>(&self, response: &Response) -> Result<T, Error> {
        serde_json::from_slice(&response.body).map_err(|e| self.protocol(format!("{e}")))
    }

    /// The error for a non-2xx answer, with the daemon's message when it sent one.
    pub fn refused(&self, response: &Response) -> Error {
        let message = serde_json::from_slice::<ErrorBody>(&response.body)
            .map(|b| b.error.message)
            .unwrap_or_else(|_| String::from_utf8_lossy(&response.body).trim().to_owned());
        Error::Refused {
            status: response.status,
            message: if message.is_empty() { "no reason given".to_owned() } else { message },
        }
    }

    /// One request on a fresh connection; reads until the response is complete.
    pub fn send(&self, method: &str, path: &str, timeout: Duration) -> Result<Response, Error> {
        self.exchange(http::request(method, path).as_bytes(), timeout)
    }

    fn exchange(&self, request: &[u8], timeout: Duration) -> Result<Response, Error> {
        let stream = UnixStream::connect(&self.socket).map_err(|e| self.io_error(e, timeout))?;
        stream
            .set_read_timeout(Some(timeout))
            .and_then(|()| stream.set_write_timeout(Some(timeout)))
            .map_err(|e| self.io_error(e, timeout))?;
        write_all(&stream, request).map_err(|e| self.io_error(e, timeout))?;
        self.read_response(stream, timeout)
    }

    fn read_response(&self, mut stream: UnixStream, timeout: Duration) -> Result<Response, Error> {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let n = match stream.read(&mut chunk) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io_error(e, timeout)),
            };
            let eof = n == 0;
            if eof && buf.is_empty() {
                return Err(self.not_running(Silence::Closed));
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.len() > MAX_RESPONSE {
                return Err(self.protocol("the response is larger than 64 MiB".to_owned()));
            }
            match http::parse(&buf, eof) {
                Ok(Some(response)) => return Ok(response),
                Ok(None) => {}
                Err(detail) => return Err(self.protocol(detail)),
            }
        }
    }

    fn io_error(&self, e: io::Error, timeout: Duration) -> Error {
        use io::ErrorKind::*;
        let why = match e.kind() {
            PermissionDenied => return Error::PermissionDenied { socket: self.socket.clone() },
            NotFound => Silence::NoSocket,
            ConnectionRefused => Silence::Refused,
            WouldBlock | TimedOut => Silence::TimedOut(timeout),
            ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof => Silence::Closed,
            _ => Silence::Io(e.to_string()),
        };
        self.not_running(why)
    }

    fn not_running(&self, why: Silence) -> Error {
        Error::NotRunning { socket: self.socket.clone(), profile: self.profile.clone(), why }
    }

    fn protocol(&self, detail: String) -> Error {
        Error::Protocol { socket: self.socket.clone(), detail }
    }
}

/// Writes with MSG_NOSIGNAL: gatewayctl restores the default SIGPIPE (so `| head` ends it
/// quietly), and a daemon closing the socket early must be an error, not a silent death.
fn write_all(stream: &UnixStream, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match send(stream.as_raw_fd(), buf, MsgFlags::MSG_NOSIGNAL) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixListener;

    fn serve_once(status: &str, body: &str) -> (tempfile::TempDir, Client) {
        let answer = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("d.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut req = [0u8; 1024];
            let n = conn.read(&mut req).unwrap();
            assert!(req[..n].starts_with(b"GET /v1/token HTTP/1.1\r\n"));
            conn.write_all(answer.as_bytes()).unwrap();
            // Keep the connection open: the client must stop at Content-Length.
            std::thread::sleep(Duration::from_secs(2));
        });
        (dir, Client::new(socket, Profile::default()))
    }

    #[test]
    fn reads_json_and_errors() {
        let (_dir, client) = serve_once("200 OK", r#"{"token":"t","source":"file","file":null}"#);
        let info: gateway_proto::api::TokenInfo = client.get("/v1/token").unwrap();
        assert_eq!(info.token, "t");

        let (_dir, client) =
            serve_once("409 Conflict", r#"{"error":{"code":"conflict","message":"no way"}}"#);
        let err = client.get::<gateway_proto::api::TokenInfo>("/v1/token").unwrap_err();
        assert_eq!(err.to_string(), "gatewayd refused the request: no way (HTTP 409)");
        assert_eq!(err.exit_code(), exit::FAILURE);
    }

    #[test]
    fn missing_socket_is_not_running_with_the_next_step() {
        let dir = tempfile::tempdir().unwrap();
        let profile = Profile::new(Some("work"), false).unwrap();
        let client = Client::new(dir.path().join("none.sock"), profile);
        let err = client.get::<serde_json::Value>("/v1/status").unwrap_err();
        assert_eq!(err.exit_code(), exit::NOT_RUNNING);
        let text = err.to_string();
        assert!(text.contains("(no such socket)"), "{text}");
        assert!(text.contains("gatewayctl start --profile work"), "{text}");
    }
}
