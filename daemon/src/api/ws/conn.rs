//! One task per WebSocket connection: it reads frames, answers requests, and writes whatever
//! the outbox holds, all without blocking on either direction. An idle connection holds no
//! buffers: reads go through the thread's buffer and the decoder gives its memory back.

use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use gateway_proto::ws::{close, code, ErrorShape, Request, PRE_AUTH_MAX_FRAME};
use nix::sys::socket::{recv, MsgFlags};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::task::AbortHandle;
use tokio::time::Sleep;

use super::codec::{self, Decoder, Message};
use super::handshake;
use super::hub::{event_json, Conn, Hub, PreAuthSlot};
use super::methods::{self, Reply};
use super::outbox::Outbox;
use crate::api::scratch;
use crate::core::gateway::{Gateway, Stats};
use crate::core::telemetry::spans::{Attr, Kind, Traced};
use gateway_proto::time::now_ms;

/// What the upgrade learned about the client.
pub struct Context {
    pub peer: SocketAddr,
    /// The peer, or the client behind a trusted proxy.
    pub client_ip: IpAddr,
    /// The identity a trusted proxy asserted, if any.
    pub proxy_user: Option<String>,
    /// A client on this host straight to the port: a loopback peer that is no trusted proxy,
    /// no forwarding header, a loopback Host.
    pub direct_local: bool,
    /// The Control UI's browser session the upgrade's cookie opened, by id.
    pub browser_session: Option<String>,
}

/// How long a closing connection may take to flush its last frames.
const CLOSE_FLUSH: Duration = Duration::from_secs(5);

/// A WebSocket client: made when its upgrade is accepted, served once the upgrade completes.
pub struct Connection {
    _open: OpenSocket,
    gw: Arc<Gateway>,
    hub: Arc<Hub>,
    outbox: Arc<Outbox>,
    /// Until the handshake completes; on the heap, so that an idle connection does not carry it.
    handshake: Option<Box<Handshake>>,
    conn: Option<Arc<Conn>>,
    in_flight: HashMap<String, AbortHandle>,
    /// The client sent its close frame: it sends nothing after it (RFC 6455 section 5.5.1).
    peer_closed: bool,
}

/// What only the handshake needs.
struct Handshake {
    context: Context,
    id: String,
    nonce: String,
    /// The client's place among its address's pre-auth sockets, given back with it.
    _pre_auth: PreAuthSlot,
}

/// A connection's id and its challenge's nonce: two random UUIDs, from one read of the OS
/// random source (a system call each handshake rather than two).
fn id_and_nonce() -> (String, String) {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    let (id, nonce) = bytes.split_at(16);
    let uuid =
        |b: &[u8]| uuid::Builder::from_random_bytes(b.try_into().expect("16 bytes")).into_uuid().to_string();
    (uuid(id), uuid(nonce))
}

impl Connection {
    pub fn new(gw: Arc<Gateway>, hub: Arc<Hub>, context: Context, slot: PreAuthSlot) -> Self {
        let (id, nonce) = id_and_nonce();
        Self {
            _open: OpenSocket::count(&gw),
            gw,
            hub,
            outbox: Arc::new(Outbox::default()),
            handshake: Some(Box::new(Handshake { context, id, nonce, _pre_auth: slot })),
            conn: None,
            in_flight: HashMap::new(),
            peer_closed: false,
        }
    }

    /// Queues bytes to go out before any frame, in the same write as the challenge: the
    /// upgrade's response head, when it is still to be sent.
    pub fn send_first(&self, bytes: Vec<u8>) {
        self.outbox.push_raw(codec::OutFrame::unframed(bytes));
    }

    /// Serves the connection until it closes. The socket and the decoder (holding what was read
    /// past the upgrade request) are the caller's, like the connection's state, so that each is
    /// held once, by the caller's task, rather than copied into this future.
    pub async fn serve(&mut self, stream: &mut TcpStream, decoder: &mut Decoder) {
        let this = self;
        this.outbox.served_by_this_task();
        let handshake_timeout =
            Duration::from_millis(this.gw.active().config.gateway.ws.handshake_timeout_ms.get());
        if let Some(handshake) = &this.handshake {
            let challenge = Challenge { nonce: &handshake.nonce, ts: now_ms() };
            let challenge = serde_json::to_string(&challenge).expect("a challenge serializes");
            let _ = this.outbox.push_event(
                |seq, out| event_json(out, "connect.challenge", &challenge, seq, None),
                false,
                usize::MAX,
            );
        }
        // Every idle connection holds this task's state, so it is kept small: one wait for
        // whatever comes first (no future per event source), and on the heap only while
        // needed, the handshake (the one step that waits) and a timer (the handshake's
        // deadline, then the close's flush deadline).
        let mut timer = Some(Box::pin(tokio::time::sleep(handshake_timeout)));
        let mut flushing = false;
        loop {
            while !this.outbox.is_closing() {
                let Some(connect) = this.decode(decoder) else {
                    break;
                };
                Box::pin(this.on_handshake(connect)).await;
            }
            decoder.release();
            if this.conn.is_some() && !flushing {
                timer = None;
            }
            // Looked at before writing: a close queued by another task after it also wakes this
            // one, so its frame is not left behind.
            let reading = !this.outbox.is_closing();
            // Answer at once rather than after another trip through the scheduler.
            let Ok(all_written) = this.outbox.write_some(|b| write(stream, b)) else {
                break;
            };
            if !reading {
                if all_written {
                    break;
                }
                if !flushing {
                    flushing = true;
                    timer = Some(Box::pin(tokio::time::sleep(CLOSE_FLUSH)));
                }
            }
            // Closing, there is something to write; otherwise the read side is what is awaited
            // (with writing too when the socket took only part of what is pending).
            let writing = !all_written;
            let outbox = &this.outbox;
            let event = poll_fn(|cx| next_event(cx, stream, outbox, reading, writing, &mut timer)).await;
            match event {
                // Writes happen at the top of the loop.
                Event::Readable => {
                    if !read_available(stream, decoder) {
                        break;
                    }
                }
                Event::Writable | Event::Queued => {}
                Event::Failed => break,
                Event::Expired => {
                    if flushing {
                        break;
                    }
                    let reason = format!(
                        "handshake timeout: send connect within {} ms",
                        handshake_timeout.as_millis()
                    );
                    this.outbox.close(close::POLICY, &reason);
                }
            }
        }
        // Half-close. A client that closed first sends nothing more, so the socket closes now
        // (the server closes the TCP connection first, as RFC 6455 section 7.1.1 asks);
        // otherwise its last bytes drain first, so that our close frame is not lost to a reset.
        let _ = stream.shutdown().await;
        if !this.peer_closed {
            // Boxed: a timer and a wait inline would be part of every idle connection's task.
            let _ = Box::pin(tokio::time::timeout(Duration::from_secs(1), drain_until_eof(stream))).await;
        }
        this.finish();
    }
}

/// What ended a connection's wait.
enum Event {
    /// The timer fired: the handshake's deadline, or the close's flush deadline.
    Expired,
    /// Something was queued to be sent.
    Queued,
    Readable,
    Writable,
    /// The socket failed.
    Failed,
}

/// Polls what a connection waits on, the timer first, so that a client that never stops
/// sending still meets its handshake deadline. Readiness is registered on the socket itself
/// (`poll_*_ready`), so the wait holds no future of its own.
fn next_event(
    cx: &mut std::task::Context<'_>,
    stream: &TcpStream,
    outbox: &Outbox,
    reading: bool,
    writing: bool,
    timer: &mut Option<Pin<Box<Sleep>>>,
) -> Poll<Event> {
    if let Some(sleep) = timer {
        if sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Event::Expired);
        }
    }
    if outbox.poll_queued(cx).is_ready() {
        return Poll::Ready(Event::Queued);
    }
    if reading {
        match stream.poll_read_ready(cx) {
            Poll::Ready(Ok(())) => return Poll::Ready(Event::Readable),
            Poll::Ready(Err(_)) => return Poll::Ready(Event::Failed),
            Poll::Pending => {}
        }
    }
    if writing {
        match stream.poll_write_ready(cx) {
            Poll::Ready(Ok(())) => return Poll::Ready(Event::Writable),
            Poll::Ready(Err(_)) => return Poll::Ready(Event::Failed),
            Poll::Pending => {}
        }
    }
    Poll::Pending
}

/// Writes what the socket takes: `send` for one buffer, which costs less than `writev`.
fn write(stream: &TcpStream, bufs: &[std::io::IoSlice<'_>]) -> io::Result<usize> {
    match bufs {
        [one] => stream.try_write(one),
        _ => stream.try_write_vectored(bufs),
    }
}

/// Reads whatever the socket has into the decoder. Returns false at end of stream or on an error.
fn read_available(stream: &TcpStream, decoder: &mut Decoder) -> bool {
    scratch::with(|buf| read_through(stream, buf, decoder))
}

fn read_through(stream: &TcpStream, buf: &mut [u8], decoder: &mut Decoder) -> bool {
    loop {
        let mut got = 0;
        let read = stream.try_io(Interest::READABLE, || {
            got = recv(stream.as_raw_fd(), buf, MsgFlags::empty()).map_err(io::Error::from)?;
            // A read that did not fill the buffer emptied the socket, and with an edge-triggered
            // poller anything arriving later raises a new edge: the socket is marked not ready
            // now (a `WouldBlock` to `try_io`) rather than after one more read that would find
            // nothing, a system call each time the client sends. tokio's own `poll_read` does
            // the same (tokio-rs/tokio#5866).
            if got > 0 && got < buf.len() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(got)
        });
        match read {
            Ok(0) => return false,
            Ok(n) => decoder.feed(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                decoder.feed(&buf[..got]);
                return true;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
}

async fn drain_until_eof(stream: &TcpStream) {
    while stream.readable().await.is_ok() && discard_available(stream) {}
}

/// Reads and drops what the socket has, through the thread's buffer. False at end of stream or
/// on an error.
fn discard_available(stream: &TcpStream) -> bool {
    scratch::with(|buf| match stream.try_read(buf) {
        Ok(0) => false,
        Ok(_) => true,
        Err(e) => e.kind() == io::ErrorKind::WouldBlock,
    })
}

impl Connection {
    fn limit(&self) -> usize {
        self.gw.active().config.gateway.ws.max_buffered_bytes.get() as usize
    }

    fn max_message(&self) -> usize {
        match self.conn {
            Some(_) => self.gw.active().config.gateway.ws.max_payload_bytes.get() as usize,
            None => PRE_AUTH_MAX_FRAME,
        }
    }

    /// Handles the decoded frames; stops at a request before the handshake, which the caller
    /// answers with [`Self::on_handshake`] (it waits on the device store).
    fn decode(&mut self, decoder: &mut Decoder) -> Option<FirstRequest> {
        loop {
            match decoder.next(self.max_message()) {
                Ok(Some(message)) => {
                    if let Some(first) = self.on_message(message) {
                        return Some(first);
                    }
                }
                Ok(None) => return None,
                Err(e) => {
                    self.outbox.close(e.close_code(), &e.reason());
                    return None;
                }
            }
            if self.outbox.is_closing() {
                return None;
            }
        }
    }

    /// A request before the handshake is returned to be handled as one.
    fn on_message(&mut self, message: Message) -> Option<FirstRequest> {
        match message {
            Message::Text(text) => return self.on_text(&text),
            Message::Binary(_) => {
                self.outbox.close(1003, "binary frames are not supported: send JSON text frames")
            }
            Message::Ping(payload) => self.outbox.push_raw(codec::pong(&payload)),
            Message::Pong => {}
            Message::Close(peer) => {
                self.peer_closed = true;
                self.outbox.close(peer.map_or(close::NORMAL, |(code, _)| echo_code(code)), "")
            }
        }
        None
    }

    fn respond(&self, id: &str, result: Result<&RawValue, &ErrorShape>) {
        let _ = self.outbox.push_response(id, result, self.limit());
    }

    fn on_text(&mut self, text: &str) -> Option<FirstRequest> {
        // A well-formed request in one pass; anything else is read again below, which says
        // precisely what is wrong with it. Before the handshake the params are the connect's,
        // left unparsed for `handshake::connect` to read straight into their type.
        if self.conn.is_none() {
            if let Ok(frame) = serde_json::from_str::<RequestFrame<Option<&RawValue>>>(text) {
                if frame.kind == "req" {
                    let params = frame.params.map(RawValue::to_owned);
                    return Some(FirstRequest { id: frame.id, method: frame.method, params });
                }
            }
        } else if let Ok(frame) = serde_json::from_str::<RequestFrame<Value>>(text) {
            if frame.kind == "req" {
                self.on_request(Request { id: frame.id, method: frame.method, params: frame.params });
                return None;
            }
        }
        let frame: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                self.bad_frame("", format!("invalid frame: not JSON ({e})"));
                return None;
            }
        };
        let id = frame.get("id").and_then(Value::as_str).unwrap_or("").to_owned();
        match frame.get("type").and_then(Value::as_str) {
            Some("req") => match serde_json::from_value::<Request>(frame) {
                Ok(req) if self.conn.is_none() => return Some(FirstRequest::from(req)),
                Ok(req) => self.on_request(req),
                Err(e) => self.bad_frame(&id, format!("invalid request frame: {e}")),
            },
            Some("cancel") if self.conn.is_some() => self.on_cancel(&id),
            Some(other) => self.bad_frame(
                &id,
                format!("invalid frame: unknown type {}", gateway_proto::quote::short(other)),
            ),
            None => self.bad_frame(&id, "invalid frame: no type".into()),
        }
        None
    }

    /// Before the handshake a bad frame ends the connection; after it, it only gets an error.
    fn bad_frame(&self, id: &str, message: String) {
        if self.conn.is_none() {
            let message = format!("invalid handshake: first request must be connect ({message})");
            self.respond(id, Err(&ErrorShape::new(code::INVALID_REQUEST, message.clone())));
            return self.outbox.close(close::POLICY, &message);
        }
        self.respond(id, Err(&ErrorShape::new(code::INVALID_REQUEST, message)));
    }

    async fn on_handshake(&mut self, req: FirstRequest) {
        if req.method != "connect" {
            let message = "invalid handshake: first request must be connect";
            self.respond(&req.id, Err(&ErrorShape::new(code::INVALID_REQUEST, message)));
            return self.outbox.close(close::POLICY, message);
        }
        let Some(pending) = self.handshake.as_deref() else {
            return;
        };
        let attempt = handshake::Attempt {
            id: &pending.id,
            nonce: &pending.nonce,
            context: &pending.context,
            outbox: &self.outbox,
            hub: &self.hub,
        };
        match handshake::connect(&self.gw, attempt, req.params.as_deref()).await {
            Ok(accepted) => {
                self.gw.metrics.ws_handshake(true);
                self.respond(&req.id, Ok(&accepted.hello));
                // Needed only to get here; the connection's record has its own id.
                self.handshake = None;
                self.hub.join(accepted.conn.clone(), self.limit());
                self.conn = Some(accepted.conn);
            }
            Err(refusal) => {
                self.gw.metrics.ws_handshake(false);
                self.respond(&req.id, Err(&refusal.error));
                self.outbox.close(refusal.close, &refusal.reason);
            }
        }
    }

    fn on_request(&mut self, req: Request) {
        let Some(conn) = self.conn.clone() else {
            return;
        };
        if req.method == "connect" {
            let error = ErrorShape::new(code::INVALID_REQUEST, "connect is only valid as the first request");
            return self.respond(&req.id, Err(&error));
        }
        let started = Instant::now();
        // Named once the method is known: the request's own string is not a bounded name.
        let span =
            Traced::start(|| "ws call".into(), Kind::Server, || vec![Attr::new("rpc.system", "openclaw")]);
        let (method, reply) = {
            let _current = span.enter();
            methods::call(&self.gw, &self.hub, &conn, &req.id, started, &req.method, req.params)
        };
        let name = method.map_or(crate::core::metrics::UNKNOWN_METHOD, |m| m.name());
        span.rename(name);
        span.set(|| vec![Attr::new("rpc.method", name)]);
        match reply {
            Reply::Now(result) => {
                self.gw.metrics.ws_call(method, result.is_ok(), started.elapsed());
                span.end_with(result.as_ref().err().map(|e| e.code.as_str()));
                self.respond(&req.id, result.as_deref())
            }
            Reply::Later(future) => {
                let outbox = self.outbox.clone();
                let limit = self.limit();
                let id = req.id.clone();
                let gw = self.gw.clone();
                let task = tokio::spawn(async move {
                    let result = span.scope(future).await;
                    gw.metrics.ws_call(method, result.is_ok(), started.elapsed());
                    span.end_with(result.as_ref().err().map(|e| e.code.as_str()));
                    let result = result.map(|v| methods::payload(&v));
                    let _ = outbox.push_response(&id, result.as_deref(), limit);
                });
                self.in_flight.retain(|_, t| !t.is_finished());
                self.in_flight.insert(req.id, task.abort_handle());
            }
        }
    }

    fn on_cancel(&mut self, id: &str) {
        if let Some(task) = self.in_flight.remove(id) {
            if !task.is_finished() {
                task.abort();
                let error = ErrorShape::new(code::UNAVAILABLE, "request cancelled by the client");
                self.respond(id, Err(&error));
            }
        }
    }

    fn finish(&mut self) {
        for task in self.in_flight.values() {
            task.abort();
        }
        if let Some(conn) = &self.conn {
            self.hub.leave(&conn.id, self.limit());
        }
    }
}

/// A request frame as it should be, with its params as `P`.
#[derive(Deserialize)]
struct RequestFrame<'a, P> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    id: String,
    method: String,
    #[serde(default)]
    params: P,
}

/// `connect.challenge`'s payload.
#[derive(serde::Serialize)]
struct Challenge<'a> {
    nonce: &'a str,
    ts: u64,
}

/// The first request, which the handshake answers; its params are still JSON text.
struct FirstRequest {
    id: String,
    method: String,
    params: Option<Box<RawValue>>,
}

impl From<Request> for FirstRequest {
    fn from(req: Request) -> Self {
        let params = (!req.params.is_null()).then(|| methods::payload(&req.params));
        FirstRequest { id: req.id, method: req.method, params }
    }
}

/// Codes a peer may not put on the wire are answered with 1002.
fn echo_code(code: u16) -> u16 {
    match code {
        1000..=1003 | 1007..=1014 | 3000..=4999 => code,
        _ => close::PROTOCOL_ERROR,
    }
}

/// Counts a WebSocket as open in the gateway's stats (status, the drain) while held.
struct OpenSocket(Arc<Gateway>);

impl OpenSocket {
    fn count(gw: &Arc<Gateway>) -> Self {
        Stats::bump(&gw.stats.websocket_connections);
        Self(gw.clone())
    }
}

impl Drop for OpenSocket {
    fn drop(&mut self) {
        self.0.stats.websocket_connections.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::id_and_nonce;

    #[test]
    fn id_and_nonce_are_distinct_random_uuids() {
        let (id, nonce) = id_and_nonce();
        for value in [&id, &nonce] {
            let parsed = uuid::Uuid::parse_str(value).expect("a UUID");
            assert_eq!(parsed.get_version_num(), 4, "{value}");
        }
        assert_ne!(id, nonce);
        assert_ne!(id_and_nonce().1, nonce);
    }
}
