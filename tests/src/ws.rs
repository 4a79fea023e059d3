//! A WebSocket protocol client for tests, on `tungstenite` (an implementation independent of
//! the daemon's), with an Ed25519 device identity that signs `connect` like real clients do.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, WebSocket};

/// A device identity: an Ed25519 key and the id derived from it.
#[derive(Clone)]
pub struct Device {
    pub key: SigningKey,
}

impl Device {
    pub fn new(seed: u8) -> Self {
        Self { key: SigningKey::from_bytes(&[seed; 32]) }
    }

    /// One of many distinct identities (for more than `new`'s 256).
    pub fn numbered(n: u64) -> Self {
        let mut seed = [0xA5; 32];
        seed[..8].copy_from_slice(&n.to_le_bytes());
        Self { key: SigningKey::from_bytes(&seed) }
    }

    pub fn id(&self) -> String {
        Sha256::digest(self.key.verifying_key().to_bytes()).iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The `device` block of `connect`, signed over the v3 payload as the reference clients sign
    /// it (`platform` lower-cased, no device family).
    #[allow(clippy::too_many_arguments)]
    pub fn proof(
        &self,
        nonce: &str,
        client_id: &str,
        mode: &str,
        platform: &str,
        role: &str,
        scopes: &[&str],
        token: &str,
    ) -> Value {
        let signed_at =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
        let platform = platform.trim().to_ascii_lowercase();
        let id = self.id();
        let payload = [
            "v3",
            &id,
            client_id,
            mode,
            role,
            &scopes.join(","),
            &signed_at.to_string(),
            token,
            nonce,
            &platform,
            "",
        ]
        .join("|");
        json!({
            "id": id,
            "publicKey": URL_SAFE_NO_PAD.encode(self.key.verifying_key().to_bytes()),
            "signature": URL_SAFE_NO_PAD.encode(self.key.sign(payload.as_bytes()).to_bytes()),
            "signedAt": signed_at,
            "nonce": nonce,
        })
    }
}

/// How to connect.
#[derive(Clone)]
pub struct Connect<'a> {
    pub token: Option<&'a str>,
    pub password: Option<&'a str>,
    pub device: Option<&'a Device>,
    pub scopes: &'a [&'a str],
    pub client_id: &'a str,
    pub mode: &'a str,
    pub headers: Vec<(&'a str, String)>,
    pub path: &'a str,
}

impl Default for Connect<'_> {
    fn default() -> Self {
        Self {
            token: None,
            password: None,
            device: None,
            scopes: &["operator.read", "operator.write", "operator.admin"],
            client_id: "test",
            mode: "test",
            headers: Vec::new(),
            path: "/",
        }
    }
}

pub struct Client {
    pub ws: WebSocket<TcpStream>,
    pub nonce: String,
    next_id: u64,
    /// Every event received, in order.
    pub events: Vec<Value>,
    /// How many of `events` a wait has already gone past.
    taken: usize,
}

/// Why opening failed: refused with an HTTP status, or anything else.
#[derive(Debug)]
pub enum Failed {
    Refused(Refused),
    Other(String),
}

/// Why an upgrade failed: the HTTP status and body.
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    pub body: String,
}

impl Client {
    /// Opens the socket and reads the challenge; does not send `connect`.
    pub fn open(port: u16, options: &Connect<'_>) -> Result<Self, Refused> {
        Self::try_open(port, options).map_err(|e| match e {
            Failed::Refused(r) => r,
            Failed::Other(e) => panic!("{e}"),
        })
    }

    /// `open`, with every failure returned (for callers that expect the gateway to die).
    pub fn try_open(port: u16, options: &Connect<'_>) -> Result<Self, Failed> {
        let other = |what: &str, e: &dyn std::fmt::Display| Failed::Other(format!("{what}: {e}"));
        let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| other("connect to the port", &e))?;
        stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| other("set a timeout", &e))?;
        let mut request = tungstenite::client::IntoClientRequest::into_client_request(format!(
            "ws://127.0.0.1:{port}{}",
            options.path
        ))
        .map_err(|e| other("the request", &e))?;
        for (name, value) in &options.headers {
            request.headers_mut().insert(
                tungstenite::http::HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
                value.parse().expect("a header value"),
            );
        }
        let (ws, _) = match tungstenite::client::client(request, stream) {
            Ok(ok) => ok,
            Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => {
                let status = response.status().as_u16();
                let body =
                    String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned();
                return Err(Failed::Refused(Refused { status, body }));
            }
            Err(e) => return Err(other("WebSocket handshake failed", &e)),
        };
        let mut client = Self { ws, nonce: String::new(), next_id: 0, events: Vec::new(), taken: 0 };
        let challenge = client.next_frame().map_err(|e| other("no challenge", &e))?;
        client.nonce = challenge["payload"]["nonce"]
            .as_str()
            .filter(|_| challenge["event"] == "connect.challenge")
            .ok_or_else(|| other("not a challenge", &challenge))?
            .to_owned();
        Ok(client)
    }

    /// The `connect` params these options make, signed for this connection's nonce.
    pub fn connect_params(&self, options: &Connect<'_>) -> Value {
        let mut params = json!({
            "minProtocol": 4,
            "maxProtocol": 4,
            "client": { "id": options.client_id, "version": "1.0.0", "platform": "linux", "mode": options.mode },
            "role": "operator",
            "scopes": options.scopes,
            "auth": {},
        });
        if let Some(t) = options.token {
            params["auth"]["token"] = t.into();
        }
        if let Some(p) = options.password {
            params["auth"]["password"] = p.into();
        }
        if let Some(device) = options.device {
            let token = options.token.unwrap_or("");
            params["device"] = device.proof(
                &self.nonce,
                options.client_id,
                options.mode,
                "linux",
                "operator",
                options.scopes,
                token,
            );
        }
        params
    }

    /// Opens, sends `connect`, and returns the client with the `connect` response.
    pub fn connect(port: u16, options: &Connect<'_>) -> (Self, Value) {
        let mut client = Self::open(port, options).unwrap_or_else(|r| panic!("upgrade refused: {r:?}"));
        let params = client.connect_params(options);
        let response = client.request("connect", params);
        (client, response)
    }

    /// Connects with the gateway token and a device identity (paired on loopback), asking for
    /// every operator scope; panics unless the handshake succeeds.
    pub fn paired(port: u16, token: &str, device: &Device) -> (Self, Value) {
        let (client, hello) =
            Self::connect(port, &Connect { token: Some(token), device: Some(device), ..Default::default() });
        assert_eq!(hello["ok"], true, "{hello}");
        (client, hello)
    }

    /// Sends a request and waits for its response (events meanwhile are kept in `events`).
    pub fn request(&mut self, method: &str, params: Value) -> Value {
        self.try_request(method, params).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `request`, with a failed send or read returned.
    pub fn try_request(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = format!("r{}", self.next_id);
        let frame = json!({ "type": "req", "id": id, "method": method, "params": params });
        self.ws.send(Message::text(frame.to_string())).map_err(|e| format!("send {method}: {e}"))?;
        loop {
            let frame = self.next_frame().map_err(|e| format!("no response to {method}: {e}"))?;
            if frame["type"] == "res" && frame["id"] == id {
                return Ok(frame);
            }
            self.events.push(frame);
        }
    }

    /// Connects with the gateway token and a device, like `paired`, with failures returned.
    pub fn try_paired(port: u16, token: &str, device: &Device) -> Result<(Self, Value), String> {
        let options = Connect { token: Some(token), device: Some(device), ..Default::default() };
        let mut client = Self::try_open(port, &options).map_err(|e| format!("{e:?}"))?;
        let params = client.connect_params(&options);
        let hello = client.try_request("connect", params)?;
        Ok((client, hello))
    }

    pub fn send(&mut self, frame: &Value) {
        self.ws.send(Message::text(frame.to_string())).expect("send");
    }

    /// The next response frame, whatever its id (events meanwhile are kept).
    pub fn any_response(&mut self) -> Value {
        loop {
            let frame = self.next_frame().unwrap_or_else(|e| panic!("no response: {e}"));
            if frame["type"] == "res" {
                return frame;
            }
            self.events.push(frame);
        }
    }

    /// Waits for the response with this id.
    pub fn response(&mut self, id: &str) -> Value {
        loop {
            let frame = self.next_frame().unwrap_or_else(|e| panic!("no response to {id}: {e}"));
            if frame["type"] == "res" && frame["id"] == id {
                return frame;
            }
            self.events.push(frame);
        }
    }

    /// Waits for an event with this name, looking at kept events first.
    pub fn event(&mut self, name: &str, timeout: Duration) -> Value {
        self.event_where(name, timeout, |_| true)
    }

    /// Waits for an event with this name for which `wanted` holds, looking at events already
    /// received first. Every event received stays in `events`, in arrival order.
    pub fn event_where(&mut self, name: &str, timeout: Duration, wanted: impl Fn(&Value) -> bool) -> Value {
        let seen = self.taken;
        if let Some(e) = self.events.iter().skip(seen).find(|e| e["event"] == name && wanted(e)) {
            let e = e.clone();
            self.taken = self.events.iter().position(|x| *x == e).map_or(seen, |i| i + 1);
            return e;
        }
        let deadline = Instant::now() + timeout;
        self.ws.get_mut().set_read_timeout(Some(timeout)).unwrap();
        loop {
            assert!(Instant::now() < deadline, "no {name} event within {timeout:?}; got {:?}", self.events);
            match self.next_frame() {
                Ok(frame) => {
                    let hit = frame["event"] == name && wanted(&frame);
                    self.events.push(frame.clone());
                    if hit {
                        self.taken = self.events.len();
                        return frame;
                    }
                }
                Err(e) => panic!("no {name} event: {e}"),
            }
        }
    }

    /// The next text frame as JSON, or why there is none (closed: the close frame).
    pub fn next_frame(&mut self) -> Result<Value, String> {
        loop {
            match self.ws.read() {
                Ok(Message::Text(t)) => return Ok(serde_json::from_str(&t).expect("JSON frame")),
                Ok(Message::Close(frame)) => return Err(close_text(frame)),
                Ok(_) => continue,
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// Reads until the server closes; returns the close code and reason.
    pub fn closed(&mut self) -> (u16, String) {
        loop {
            match self.ws.read() {
                Ok(Message::Close(Some(frame))) => return (frame.code.into(), frame.reason.to_string()),
                Ok(Message::Close(None)) => return (1005, String::new()),
                Ok(Message::Text(t)) => self.events.push(serde_json::from_str(&t).unwrap_or(Value::Null)),
                Ok(_) => {}
                Err(e) => panic!("connection ended without a close frame: {e}"),
            }
        }
    }
}

fn close_text(frame: Option<CloseFrame>) -> String {
    match frame {
        Some(f) => format!("closed {} {}", u16::from(f.code), f.reason),
        None => "closed".into(),
    }
}
