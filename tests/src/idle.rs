//! Many idle authenticated WebSocket clients on a small tokio runtime of their own: each opens,
//! answers the challenge with the gateway token, waits for `hello-ok`, then reads and discards
//! what the server sends (as a live client would) until the server closes it.

use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::wsraw::AsyncClient;

/// Handshakes in flight at once while connecting (the gateway admits 32 per address).
const CONCURRENCY: usize = 16;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);

pub struct IdleClients {
    runtime: tokio::runtime::Runtime,
    holders: JoinSet<()>,
    closed: Arc<AtomicUsize>,
    /// Bytes the clients received while idle (events such as `presence`).
    pub received: Arc<AtomicU64>,
}

impl IdleClients {
    /// Connects `k` clients to the gateway on `port` with `token`; fails at the first refused
    /// handshake.
    pub fn connect(port: u16, token: &str, k: usize) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
        let closed = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(AtomicU64::new(0));
        let holders = runtime.block_on(async {
            let mut holders = JoinSet::new();
            let mut connecting = JoinSet::new();
            let mut started = 0;
            while holders.len() < k {
                while started < k && connecting.len() < CONCURRENCY {
                    started += 1;
                    connecting.spawn(handshake(port, token.to_owned(), started as u64));
                }
                let Some(done) = connecting.join_next().await else { break };
                let client = done.context("a connecting task failed")??;
                let (closed, received) = (closed.clone(), received.clone());
                holders.spawn(async move {
                    hold(client.into_stream(), &received).await;
                    closed.fetch_add(1, Ordering::Relaxed);
                });
            }
            anyhow::Ok(holders)
        })?;
        Ok(Self { runtime, holders, closed, received })
    }

    pub fn len(&self) -> usize {
        self.holders.len()
    }

    pub fn is_empty(&self) -> bool {
        self.holders.is_empty()
    }

    /// How many the server has closed so far.
    pub fn closed(&self) -> usize {
        self.closed.load(Ordering::Relaxed)
    }

    /// Closes every client and waits until their sockets are gone.
    pub fn close(mut self) {
        self.holders.abort_all();
        self.runtime.block_on(async { while self.holders.join_next().await.is_some() {} });
    }
}

/// Opens a socket and completes the handshake with `token`.
pub async fn handshake(port: u16, token: String, seed: u64) -> Result<AsyncClient> {
    let steps = async {
        let mut c = AsyncClient::open(port, seed).await?;
        let challenge: Value =
            serde_json::from_slice(&c.recv_text().await?).context("challenge is not JSON")?;
        ensure!(challenge["event"] == "connect.challenge", "expected connect.challenge, got {challenge}");
        let connect = json!({ "type": "req", "id": "c", "method": "connect", "params": {
            "minProtocol": 4, "maxProtocol": 4,
            "client": { "id": "gateway-torture", "version": "1.0.0", "platform": "linux", "mode": "backend" },
            "role": "operator", "scopes": [], "auth": { "token": token } } });
        c.send_text(connect.to_string().as_bytes()).await?;
        loop {
            let frame: Value = serde_json::from_slice(&c.recv_text().await?).context("frame is not JSON")?;
            if frame["type"] == "res" && frame["id"] == "c" {
                if frame["ok"] != true {
                    bail!("connect refused: {}", frame["error"]);
                }
                return Ok(c);
            }
        }
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, steps).await.context("handshake timed out")?
}

/// Holds an idle client's socket, reading and discarding what arrives, until the server closes.
pub async fn hold(stream: tokio::net::TcpStream, received: &AtomicU64) {
    loop {
        if stream.readable().await.is_err() || !discard_available(&stream, received) {
            return;
        }
    }
}

/// Reads what the socket has; false once the server closed it.
fn discard_available(stream: &tokio::net::TcpStream, received: &AtomicU64) -> bool {
    let mut buf = [0u8; 65536];
    loop {
        match stream.try_read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => {
                received.fetch_add(n as u64, Ordering::Relaxed);
                if n < buf.len() {
                    return true;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}
