//! Upgraded sockets, handed to the door that accepted the upgrade.
//!
//! A WebSocket upgrade that opens a connection (how every WebSocket client starts) is served
//! without hyper: its head is peeked here, so that any other request reaches hyper untouched,
//! the router's layers run on it as on any request, and a `101` hands the socket to the door,
//! which sends the response head with its first frame. Each WebSocket client is spared hyper's
//! connection (two 8 KB buffers, a task, the wake-up that completes the upgrade) and the client
//! a packet. Anything else, an upgrade later on a kept-alive connection included, is hyper's.

use std::future::Future;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version};
use axum::Router;
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use nix::sys::socket::{recv, MsgFlags};
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tower::ServiceExt;

use crate::api::listener::{self, Peer};
use crate::api::scratch;
use crate::core::gateway::Gateway;

/// A socket whose upgrade succeeded.
pub struct Socket {
    pub stream: TcpStream,
    /// What the client sent past the upgrade request and was already read.
    pub read_ahead: Bytes,
    /// The `101` response's head, when it is still to be sent: before anything else.
    pub response_head: Option<Vec<u8>>,
}

/// Whether the request asks to become a WebSocket (`Upgrade: websocket`).
pub fn is_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|p| p.trim().eq_ignore_ascii_case("websocket")))
}

/// What serves a socket once its upgrade succeeded.
type Served = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;
type Taker = Box<dyn FnOnce(Socket) -> Served + Send>;

/// In the extensions of a request read here: where the door leaves what takes the socket.
#[derive(Clone, Default)]
struct Handoff(Arc<Mutex<Option<Taker>>>);

impl Handoff {
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Taker>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Once the `101` answering `req` is decided, `serve` gets the socket: on the connection's own
/// task when the upgrade was read here, on a task of its own when hyper read it.
pub fn on_upgrade<F, Fut>(req: &mut Request, serve: F)
where
    F: FnOnce(Socket) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    if let Some(handoff) = req.extensions().get::<Handoff>() {
        *handoff.slot() = Some(Box::new(move |socket| Box::pin(serve(socket))));
        return;
    }
    let upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let upgraded = match upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => return tracing::debug!(error = %e, "upgrade did not complete"),
        };
        match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => {
                let stream = parts.io.into_inner();
                serve(Socket { stream, read_ahead: parts.read_buf, response_head: None }).await
            }
            Err(_) => tracing::error!("upgrade on an unexpected stream type"),
        }
    });
}

/// Serves a connection to the main port: its first request here when it is a WebSocket
/// upgrade, everything else through hyper. Each phase is boxed while it runs, so that the task
/// a WebSocket client keeps for its lifetime holds little more than the WebSocket's own future.
pub async fn serve(
    gw: Arc<Gateway>,
    app: Router,
    stream: TcpStream,
    peer: SocketAddr,
    header_timeout: Duration,
) {
    match Box::pin(first_within(&gw, &stream, header_timeout)).await {
        Some(First::Http) => {
            Box::pin(listener::serve_http(gw, app, stream, Peer::Tcp(peer), header_timeout)).await
        }
        Some(First::Upgrade(req, head_len)) => {
            if let Some(served) = Box::pin(upgrade(app, stream, peer, req, head_len)).await {
                served.await
            }
        }
        // Closed, failed, or the head not complete in time: closed without an answer, as hyper
        // does.
        Some(First::Closed) | None => {}
    }
}

/// The first request, once its head shows what it is, within `header_timeout`. None when it
/// failed, took too long, or the gateway began to exit before the client sent anything.
async fn first_within(gw: &Gateway, stream: &TcpStream, header_timeout: Duration) -> Option<First> {
    let deadline = tokio::time::Instant::now() + header_timeout;
    let first = tokio::select! {
        first = tokio::time::timeout_at(deadline, first_request(stream)) => first,
        _ = gw.exiting() => {
            // As hyper does: a connection that has sent nothing closes now; one partway
            // through its first request gets to finish it.
            if !has_pending(stream) {
                return None;
            }
            tokio::time::timeout_at(deadline, first_request(stream)).await
        }
    };
    first.ok()?.ok()
}

/// What a connection's first request is.
enum First {
    /// A WebSocket upgrade, and the length of its head. Boxed: the connection's task holds
    /// this value for as long as the WebSocket is open.
    Upgrade(Box<Request>, usize),
    /// Anything else, for hyper: nothing of it was consumed.
    Http,
    Closed,
}

/// The most of a request head peeked at; a longer one goes to hyper.
const PEEK: usize = scratch::SIZE;

/// Waits until the first request's head shows what it is.
async fn first_request(stream: &TcpStream) -> io::Result<First> {
    loop {
        stream.readable().await?;
        // A head seen incomplete leaves the socket not ready, so the next wait is for more.
        match stream.try_io(Interest::READABLE, || peek_first(stream)) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            other => return other,
        }
    }
}

/// Whether the client has sent anything not yet read.
fn has_pending(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    let flags = MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT;
    matches!(recv(stream.as_raw_fd(), &mut byte, flags), Ok(n) if n > 0)
}

/// Peeks at what has arrived: `WouldBlock` while it may still become a WebSocket upgrade.
fn peek_first(stream: &TcpStream) -> io::Result<First> {
    scratch::with(|buf| {
        let n = recv(stream.as_raw_fd(), buf, MsgFlags::MSG_PEEK).map_err(io::Error::from)?;
        classify(&buf[..n])
    })
}

/// What a connection's first bytes, `seen`, are.
fn classify(seen: &[u8]) -> io::Result<First> {
    let n = seen.len();
    if n == 0 {
        return Ok(First::Closed);
    }
    let start = seen.len().min(4);
    if seen[..start] != b"GET "[..start] {
        return Ok(First::Http);
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut head = httparse::Request::new(&mut headers);
    match head.parse(seen) {
        Ok(httparse::Status::Complete(len)) => {
            let req = websocket_request(&head, &seen[..len]);
            Ok(req.map_or(First::Http, |req| First::Upgrade(Box::new(req), len)))
        }
        Ok(httparse::Status::Partial) if n < PEEK => Err(io::ErrorKind::WouldBlock.into()),
        // Too long, too many headers or malformed: hyper answers it.
        _ => Ok(First::Http),
    }
}

/// The request, when `head`, parsed from `raw`, is a bodiless HTTP/1.1 `GET` asking for a
/// WebSocket, with nothing that hyper would read differently.
fn websocket_request(head: &httparse::Request<'_, '_>, raw: &[u8]) -> Option<Request> {
    if head.method != Some("GET") || head.version != Some(1) {
        return None;
    }
    // The target and the header values are slices of one copy of the head, not a copy each.
    let copy = Bytes::copy_from_slice(raw);
    let shared = |piece: &[u8]| {
        let start = piece.as_ptr() as usize - raw.as_ptr() as usize;
        copy.slice(start..start + piece.len())
    };
    let mut headers = HeaderMap::with_capacity(head.headers.len());
    for h in head.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        headers.append(name, HeaderValue::from_maybe_shared(shared(h.value)).ok()?);
    }
    let bodiless = !headers.contains_key(header::TRANSFER_ENCODING)
        && headers.get_all(header::CONTENT_LENGTH).iter().all(|v| v.as_bytes() == b"0");
    if !is_websocket(&headers) || !bodiless {
        return None;
    }
    let uri = Uri::from_maybe_shared(shared(head.path?.as_bytes())).ok()?;
    let mut req = Request::new(Body::empty());
    *req.method_mut() = Method::GET;
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_11;
    *req.headers_mut() = headers;
    Some(req)
}

/// Runs the router on the upgrade request. On `101` returns what serves the socket; otherwise
/// writes the refusal and closes.
async fn upgrade(
    app: Router,
    stream: TcpStream,
    peer: SocketAddr,
    req: Box<Request>,
    head_len: usize,
) -> Option<Served> {
    let mut req = *req;
    // The head is in the socket's buffer (it was peeked): take exactly it, leaving any frame
    // the client sent after it to the WebSocket.
    consume(&stream, head_len).ok()?;
    let handoff = Handoff::default();
    req.extensions_mut().insert(Peer::Tcp(peer));
    req.extensions_mut().insert(handoff.clone());
    let Ok(response) = app.oneshot(req).await;
    let (parts, body) = response.into_parts();
    if parts.status == StatusCode::SWITCHING_PROTOCOLS {
        let Some(take) = handoff.slot().take() else {
            tracing::error!("a 101 answer with nothing to take the socket");
            return None;
        };
        let head = response_head(parts.status, &parts.headers, None);
        return Some(take(Socket { stream, read_ahead: Bytes::new(), response_head: Some(head) }));
    }
    refuse(stream, parts, body).await;
    None
}

/// Writes a response that refused the upgrade, then closes.
async fn refuse(mut stream: TcpStream, parts: axum::http::response::Parts, body: Body) {
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
    let mut out = response_head(parts.status, &parts.headers, Some(body.len()));
    out.extend_from_slice(&body);
    if stream.write_all(&out).await.is_ok() {
        let _ = stream.shutdown().await;
    }
}

/// Reads and drops `len` bytes that are known to be in the socket's buffer.
fn consume(stream: &TcpStream, mut len: usize) -> io::Result<()> {
    scratch::with(|buf| {
        while len > 0 {
            match stream.try_read(&mut buf[..len]) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => len -= n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    })
}

/// A response's head as hyper writes it (lower-case names, a `date`). With a body length the
/// connection closes after it.
fn response_head(status: StatusCode, headers: &HeaderMap, body_len: Option<usize>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let reason = status.canonical_reason().unwrap_or("");
    let _ = write!(out, "HTTP/1.1 {} {reason}\r\n", status.as_str());
    let framing = [header::CONTENT_LENGTH, header::TRANSFER_ENCODING, header::CONNECTION];
    for (name, value) in headers {
        if body_len.is_some() && framing.contains(name) {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(len) = body_len {
        let _ = write!(out, "content-length: {len}\r\nconnection: close\r\n");
    }
    if !headers.contains_key(header::DATE) {
        let _ = write!(out, "date: {}\r\n", httpdate::fmt_http_date(std::time::SystemTime::now()));
    }
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Option<Request> {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut head = httparse::Request::new(&mut headers);
        assert!(head.parse(raw.as_bytes()).unwrap().is_complete());
        websocket_request(&head, raw.as_bytes())
    }

    const UPGRADE: &str =
        "GET /ws?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";

    #[test]
    fn only_bodiless_http11_websocket_gets_are_taken() {
        let req = parse(UPGRADE).expect("an upgrade");
        assert_eq!(req.uri().path(), "/ws");
        assert_eq!(req.uri().query(), Some("x=1"));
        assert_eq!(req.headers()["host"], "127.0.0.1");
        assert!(parse(&UPGRADE.replace("HTTP/1.1", "HTTP/1.0")).is_none());
        assert!(parse(&UPGRADE.replace("Upgrade: websocket", "Upgrade: h2c")).is_none());
        assert!(parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n").is_none());
        let with_body = UPGRADE.replace("\r\n\r\n", "\r\nContent-Length: 5\r\n\r\n");
        assert!(parse(&with_body).is_none());
        let chunked = UPGRADE.replace("\r\n\r\n", "\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert!(parse(&chunked).is_none());
        assert!(parse(&UPGRADE.replace("\r\n\r\n", "\r\nContent-Length: 0\r\n\r\n")).is_some());
    }

    #[test]
    fn refusal_heads_frame_their_body_and_close() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("999"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        let head = String::from_utf8(response_head(StatusCode::FORBIDDEN, &headers, Some(12))).unwrap();
        assert!(head.starts_with("HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\n"), "{head}");
        assert!(head.contains("content-length: 12\r\nconnection: close\r\ndate: "), "{head}");
        assert!(!head.contains("999") && !head.contains("keep-alive"), "{head}");
        assert!(head.ends_with("GMT\r\n\r\n"), "{head}");
    }

    #[test]
    fn switching_heads_keep_their_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        let head = String::from_utf8(response_head(StatusCode::SWITCHING_PROTOCOLS, &headers, None)).unwrap();
        assert!(head.starts_with(
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\ndate: "
        ));
        assert!(!head.contains("content-length"));
    }
}
