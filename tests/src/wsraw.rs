//! A minimal RFC 6455 WebSocket implementation for the benchmarks: the client side (masked
//! frames; a blocking client and a tokio client) used by `gateway-ws-bench`, and the framing the
//! `ws-floor` server uses. It is independent of the daemon's codec and does only what the
//! benchmarks need: no extensions, no fragmented messages from servers, text frames only.
//! Every call returns errors instead of panicking, and every blocking read has a timeout.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha1::{Digest, Sha1};

pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

/// The largest frame the benchmarks accept (a `hello-ok` with many clients present is large).
pub const MAX_FRAME: usize = 256 << 20;

const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`.
pub fn accept_for(key: &str) -> String {
    STANDARD.encode(Sha1::digest(format!("{key}{ACCEPT_GUID}").as_bytes()))
}

/// A small non-cryptographic generator (xorshift64*) for masks and keys: a benchmark needs
/// unpredictability from nobody.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn mask(&mut self) -> [u8; 4] {
        (self.next_u64() as u32).to_ne_bytes()
    }
}

/// Appends one frame to `out`; masked (as clients must) when `mask` is given.
pub fn write_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) {
    out.push(0x80 | opcode);
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(m | n as u8),
        n if n <= 0xFFFF => {
            out.push(m | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(m | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        None => out.extend_from_slice(payload),
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i & 3]));
        }
    }
}

/// Bytes from the socket, cut into frames.
#[derive(Default)]
pub struct Frames {
    buf: Vec<u8>,
    pos: usize,
}

impl Frames {
    pub fn extend(&mut self, data: &[u8]) {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 0 && self.pos >= self.buf.len() / 2 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The bytes not yet taken as frames (an HTTP head before the upgrade).
    pub fn peek(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Drops the first `n` pending bytes.
    pub fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
    }

    pub fn pending(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Gives the buffer's memory back when nothing is pending (for idle connections).
    pub fn release(&mut self) {
        if self.pending() == 0 {
            self.buf = Vec::new();
            self.pos = 0;
        }
    }

    /// The next whole frame as (opcode, unmasked payload), if buffered.
    pub fn next_frame(&mut self) -> Result<Option<(u8, Vec<u8>)>> {
        let buf = &self.buf[self.pos..];
        if buf.len() < 2 {
            return Ok(None);
        }
        let (b0, b1) = (buf[0], buf[1]);
        ensure!(b0 & 0x70 == 0, "reserved bits set");
        ensure!(b0 & 0x80 != 0, "fragmented frames are not supported here");
        let opcode = b0 & 0x0F;
        let (len, mut at) = match b1 & 0x7F {
            126 if buf.len() < 4 => return Ok(None),
            126 => (u16::from_be_bytes([buf[2], buf[3]]) as u64, 4),
            127 if buf.len() < 10 => return Ok(None),
            127 => (u64::from_be_bytes(buf[2..10].try_into()?), 10),
            n => (n as u64, 2),
        };
        ensure!(len <= MAX_FRAME as u64, "frame of {len} bytes is too big");
        let len = len as usize;
        let mask = if b1 & 0x80 != 0 {
            if buf.len() < at + 4 {
                return Ok(None);
            }
            let key: [u8; 4] = buf[at..at + 4].try_into()?;
            at += 4;
            Some(key)
        } else {
            None
        };
        if buf.len() < at + len {
            return Ok(None);
        }
        let mut payload = buf[at..at + len].to_vec();
        if let Some(key) = mask {
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= key[i & 3];
            }
        }
        self.pos += at + len;
        Ok(Some((opcode, payload)))
    }
}

/// The end of an HTTP head (`\r\n\r\n`) in `buf`: the index just past it.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

fn upgrade_request(port: u16, key: &str) -> String {
    format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

fn check_upgrade_response(head: &[u8], key: &str) -> Result<()> {
    let head = String::from_utf8_lossy(head);
    let status = head.lines().next().unwrap_or("");
    ensure!(status.starts_with("HTTP/1.1 101"), "upgrade refused: {}", head.trim());
    let accept = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("sec-websocket-accept"))
        .map(|(_, v)| v.trim().to_owned())
        .context("no Sec-WebSocket-Accept in the 101 response")?;
    ensure!(accept == accept_for(key), "wrong Sec-WebSocket-Accept");
    Ok(())
}

fn new_key(rng: &mut Rng) -> String {
    let mut raw = [0u8; 16];
    raw[..8].copy_from_slice(&rng.next_u64().to_ne_bytes());
    raw[8..].copy_from_slice(&rng.next_u64().to_ne_bytes());
    STANDARD.encode(raw)
}

/// A blocking client: lowest overhead for sequential measurements.
pub struct SyncClient {
    stream: TcpStream,
    frames: Frames,
    out: Vec<u8>,
    rng: Rng,
    read_buf: Box<[u8; 65536]>,
}

impl SyncClient {
    /// Connects and upgrades; `timeout` bounds every later read and write as well.
    pub fn open(port: u16, timeout: Duration, seed: u64) -> Result<Self> {
        let stream = TcpStream::connect(("127.0.0.1", port)).context("connect")?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let mut client = Self {
            stream,
            frames: Frames::default(),
            out: Vec::with_capacity(512),
            rng: Rng::new(seed),
            read_buf: Box::new([0; 65536]),
        };
        let key = new_key(&mut client.rng);
        client.stream.write_all(upgrade_request(port, &key).as_bytes())?;
        let mut head = Vec::new();
        let end = loop {
            if let Some(end) = head_end(&head) {
                break end;
            }
            ensure!(head.len() < 16384, "upgrade response head too long");
            let n = client.stream.read(&mut client.read_buf[..])?;
            ensure!(n > 0, "connection closed during the upgrade");
            head.extend_from_slice(&client.read_buf[..n]);
        };
        check_upgrade_response(&head[..end], &key)?;
        client.frames.extend(&head[end..]);
        Ok(client)
    }

    pub fn send_text(&mut self, text: &[u8]) -> Result<()> {
        self.out.clear();
        let mask = self.rng.mask();
        write_frame(&mut self.out, TEXT, text, Some(mask));
        self.stream.write_all(&self.out)?;
        Ok(())
    }

    /// Several text frames in one write (pipelining).
    pub fn send_texts<'a>(&mut self, texts: impl IntoIterator<Item = &'a [u8]>) -> Result<()> {
        self.out.clear();
        for t in texts {
            let mask = self.rng.mask();
            write_frame(&mut self.out, TEXT, t, Some(mask));
        }
        self.stream.write_all(&self.out)?;
        Ok(())
    }

    /// The next text message; a close frame or the end of the stream is an error.
    pub fn recv_text(&mut self) -> Result<Vec<u8>> {
        loop {
            match self.frames.next_frame()? {
                Some((TEXT, payload)) => return Ok(payload),
                Some((CLOSE, payload)) => bail!("closed by the server: {}", close_text(&payload)),
                Some((PING, payload)) => {
                    self.out.clear();
                    let mask = self.rng.mask();
                    write_frame(&mut self.out, PONG, &payload, Some(mask));
                    self.stream.write_all(&self.out)?;
                }
                Some(_) => {}
                None => {
                    let n = self.stream.read(&mut self.read_buf[..])?;
                    ensure!(n > 0, "connection closed by the server");
                    self.frames.extend(&self.read_buf[..n]);
                }
            }
        }
    }

    /// A clean close: our close frame, then the server's, then the end of the stream.
    pub fn close(mut self) -> Result<()> {
        self.out.clear();
        let mask = self.rng.mask();
        write_frame(&mut self.out, CLOSE, &1000u16.to_be_bytes(), Some(mask));
        self.stream.write_all(&self.out)?;
        let mut got_close = false;
        loop {
            while let Some((opcode, _)) = self.frames.next_frame()? {
                got_close |= opcode == CLOSE;
            }
            let n = self.stream.read(&mut self.read_buf[..])?;
            if n == 0 {
                ensure!(got_close, "the server ended the stream without a close frame");
                return Ok(());
            }
            self.frames.extend(&self.read_buf[..n]);
        }
    }
}

fn close_text(payload: &[u8]) -> String {
    if payload.len() >= 2 {
        format!("{} {}", u16::from_be_bytes([payload[0], payload[1]]), String::from_utf8_lossy(&payload[2..]))
    } else {
        "no code".into()
    }
}

/// A tokio client, for many connections on few threads. Callers bound its awaits with
/// `tokio::time::timeout`.
pub struct AsyncClient {
    pub stream: tokio::net::TcpStream,
    frames: Frames,
    out: Vec<u8>,
    rng: Rng,
}

impl AsyncClient {
    pub async fn open(port: u16, seed: u64) -> Result<Self> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.context("connect")?;
        stream.set_nodelay(true)?;
        let mut client = Self { stream, frames: Frames::default(), out: Vec::new(), rng: Rng::new(seed) };
        let key = new_key(&mut client.rng);
        client.stream.write_all(upgrade_request(port, &key).as_bytes()).await?;
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        let end = loop {
            if let Some(end) = head_end(&head) {
                break end;
            }
            ensure!(head.len() < 16384, "upgrade response head too long");
            let n = client.stream.read(&mut buf).await?;
            ensure!(n > 0, "connection closed during the upgrade");
            head.extend_from_slice(&buf[..n]);
        };
        check_upgrade_response(&head[..end], &key)?;
        client.frames.extend(&head[end..]);
        Ok(client)
    }

    /// Queues a text frame; `flush` sends everything queued in one write.
    pub fn queue_text(&mut self, text: &[u8]) {
        let mask = self.rng.mask();
        write_frame(&mut self.out, TEXT, text, Some(mask));
    }

    pub async fn flush(&mut self) -> Result<()> {
        use tokio::io::AsyncWriteExt;
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    pub async fn send_text(&mut self, text: &[u8]) -> Result<()> {
        self.queue_text(text);
        self.flush().await
    }

    /// A text message already received, without reading the socket.
    pub fn buffered_text(&mut self) -> Result<Option<Vec<u8>>> {
        loop {
            match self.frames.next_frame()? {
                Some((TEXT, payload)) => return Ok(Some(payload)),
                Some((CLOSE, payload)) => bail!("closed by the server: {}", close_text(&payload)),
                Some(_) => {}
                None => return Ok(None),
            }
        }
    }

    /// The next text message; a close frame or the end of the stream is an error.
    pub async fn recv_text(&mut self) -> Result<Vec<u8>> {
        loop {
            if let Some(text) = self.buffered_text()? {
                return Ok(text);
            }
            self.fill().await?;
        }
    }

    /// Reads whatever the socket has into the frame buffer.
    pub async fn fill(&mut self) -> Result<()> {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 16384];
        let n = self.stream.read(&mut buf).await?;
        if n == 0 {
            return Err(anyhow!("connection closed by the server"));
        }
        self.frames.extend(&buf[..n]);
        Ok(())
    }

    /// Hands back the socket and whatever was read past the last message (for idling).
    pub fn into_stream(self) -> tokio::net::TcpStream {
        self.stream
    }
}
