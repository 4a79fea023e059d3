//! One HTTP/1.1 server loop for both doors (the TCP port and the control socket): header-read
//! timeout, connection counting, and graceful shutdown that lets in-flight requests finish. On
//! the main port, a WebSocket upgrade that opens a connection is served by [`handoff`].

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tower::ServiceExt;

use crate::api::handoff;
use crate::core::gateway::{Gateway, Stats};

/// Who is on the other end of a connection; handlers read it from the request extensions.
#[derive(Debug, Clone, Copy)]
pub enum Peer {
    Tcp(SocketAddr),
    Unix { uid: u32 },
}

/// Accepts until the gateway begins to exit, serving each connection through hyper on its own
/// task. `accept` yields a stream and its peer.
pub async fn serve<A, F, Io>(gw: Arc<Gateway>, app: Router, door: Door, accept: A)
where
    A: FnMut() -> F,
    F: Future<Output = io::Result<(Io, Peer)>>,
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    accept_loop(gw, door, accept, move |gw, io, peer, header_timeout| {
        serve_http(gw, app.clone(), io, peer, header_timeout)
    })
    .await
}

/// [`serve`] for the main port, whose WebSocket upgrades are served without hyper
/// ([`handoff`]).
pub async fn serve_main<A, F>(gw: Arc<Gateway>, app: Router, accept: A)
where
    A: FnMut() -> F,
    F: Future<Output = io::Result<(TcpStream, SocketAddr)>>,
{
    accept_loop(gw, Door::Http, accept, move |gw, stream, peer, header_timeout| {
        handoff::serve(gw, app.clone(), stream, peer, header_timeout)
    })
    .await
}

/// Accepts until the gateway begins to exit; `handle` serves each connection on its own task.
async fn accept_loop<A, F, Io, P, H, Served>(gw: Arc<Gateway>, door: Door, mut accept: A, handle: H)
where
    A: FnMut() -> F,
    F: Future<Output = io::Result<(Io, P)>>,
    H: Fn(Arc<Gateway>, Io, P, Duration) -> Served,
    Served: Future<Output = ()> + Send + 'static,
{
    loop {
        let (io, peer) = tokio::select! {
            accepted = accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning, keep serving the rest.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = gw.exiting() => return,
        };
        door.counter(&gw.stats).fetch_add(1, Ordering::Relaxed);
        let guard = Decrement(gw.clone(), door);
        // A client that has not sent its request headers within this long is disconnected (slowloris).
        let header_timeout =
            Duration::from_millis(gw.active().config.gateway.http.header_read_timeout_ms.get());
        let served = handle(gw.clone(), io, peer, header_timeout);
        tokio::spawn(async move {
            let _guard = guard;
            served.await
        });
    }
}

/// Serves one connection's requests with hyper until it closes; when the gateway begins to
/// exit, the request in flight finishes and the connection closes.
pub async fn serve_http<Io>(gw: Arc<Gateway>, app: Router, io: Io, peer: Peer, header_timeout: Duration)
where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(peer);
        app.clone().oneshot(req)
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        // The connection first, so that what the client already sent is read before a
        // shutdown decides whether the connection is idle.
        biased;
        r = conn.as_mut() => r,
        _ = gw.exiting() => {
            // Finish the request in flight, then close; idle connections close now.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// The two ways in, each with its own connection count.
#[derive(Debug, Clone, Copy)]
pub enum Door {
    Http,
    Control,
}

impl Door {
    fn counter(self, stats: &Stats) -> &AtomicU64 {
        match self {
            Self::Http => &stats.http_connections,
            Self::Control => &stats.control_connections,
        }
    }
}

struct Decrement(Arc<Gateway>, Door);

impl Drop for Decrement {
    fn drop(&mut self) {
        self.1.counter(&self.0.stats).fetch_sub(1, Ordering::Relaxed);
    }
}

/// Waits until no connection is being served, or the budget is spent. Returns how many were
/// still open at the end.
pub async fn drain(gw: &Gateway, budget: Duration) -> u64 {
    let deadline = Instant::now() + budget;
    loop {
        let open = gw.open_connections();
        if open == 0 || Instant::now() >= deadline {
            return open;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The client's address: the peer, or, when the peer is a trusted proxy, the nearest address
/// in `X-Forwarded-For` that is not itself a trusted proxy.
pub fn client_ip(peer: &Peer, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    let ip = match peer {
        Peer::Tcp(addr) => addr.ip(),
        Peer::Unix { .. } => return IpAddr::from([127, 0, 0, 1]),
    };
    if !trusted.contains(&ip) {
        return ip;
    }
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|h| h.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    hops.into_iter().rev().find(|h| !trusted.contains(h)).unwrap_or(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.7, 10.0.0.2".parse().unwrap());
        let proxy = Peer::Tcp("10.0.0.1:5000".parse().unwrap());
        let stranger = Peer::Tcp("198.51.100.1:5000".parse().unwrap());
        let trusted: Vec<IpAddr> = vec!["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()];
        assert_eq!(client_ip(&proxy, &headers, &trusted), "203.0.113.7".parse::<IpAddr>().unwrap());
        assert_eq!(client_ip(&stranger, &headers, &trusted), "198.51.100.1".parse::<IpAddr>().unwrap());
        assert_eq!(client_ip(&proxy, &headers, &[]), "10.0.0.1".parse::<IpAddr>().unwrap());
    }
}
