//! ws-floor: the least a tokio WebSocket server can do for `gateway-ws-bench`'s clients, as the
//! floor the gateway's figures are compared with.
//!
//!   ws-floor [--port P] [--accept-on-worker]
//!
//! The port defaults to a free one and is printed on stdout. Connections are accepted on the
//! main thread, as tokio's examples do, and each is served on a worker; with
//! `--accept-on-worker` the accept loop is itself a task on a worker, as in gatewayd, which
//! then serves each connection on the worker that accepted it (a diagnostic of the benchmark:
//! on some virtual machines this alone changes where the kernel runs the threads).
//!
//! It accepts any upgrade on 127.0.0.1, sends a fixed `connect.challenge` event on open (so the
//! benchmark's client runs the same steps against it as against gatewayd), and answers every
//! `{"type":"req","id":X,...}` text frame with `{"type":"res","id":X,"ok":true,"payload":{"ok":true}}`,
//! `connect` included. It parses each frame as JSON (serde_json), as any real server must, and
//! like gatewayd it holds no buffers for an idle connection: reads go through a stack buffer.
//! It has no auth, no presence, no events and no limits: it runs until killed.

use std::io;

use anyhow::{bail, Context, Result};
use gateway_tests::wsraw::{accept_for, head_end, write_frame, Frames, CLOSE, PING, PONG, TEXT};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

const USAGE: &str = "ws-floor [--port P] [--accept-on-worker]";

const CHALLENGE: &[u8] =
    br#"{"type":"event","event":"connect.challenge","payload":{"nonce":"floor","ts":0}}"#;

fn main() -> Result<()> {
    let mut port = 0u16;
    let mut accept_on_worker = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                port =
                    args.next().context("--port needs a number")?.parse().context("--port needs a number")?
            }
            "--accept-on-worker" => accept_on_worker = true,
            "-h" | "--help" => {
                println!("usage: {USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument {other:?} (usage: {USAGE})"),
        }
    }
    // The same runtime as gatewayd's: multi-threaded, one worker per core.
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let listener = runtime.block_on(TcpListener::bind(("127.0.0.1", port)))?;
    println!("{}", listener.local_addr()?.port());
    if accept_on_worker {
        runtime.block_on(runtime.spawn(accept_loop(listener)))?;
    } else {
        runtime.block_on(accept_loop(listener));
    }
    Ok(())
}

async fn accept_loop(listener: TcpListener) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(ok) => ok,
            // Out of file descriptors and the like: wait a little rather than spin.
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        tokio::spawn(async move {
            let _ = serve(stream).await;
        });
    }
}

async fn serve(mut stream: TcpStream) -> Result<()> {
    stream.set_nodelay(true)?;
    let mut frames = Frames::default();
    let mut out = Vec::new();
    // The upgrade request, read like everything else: through a stack buffer.
    let end = loop {
        if let Some(end) = head_end(frames.peek()) {
            break end;
        }
        if frames.pending() > 16384 {
            bail!("request head too long");
        }
        stream.readable().await?;
        if !read_available(&stream, &mut frames) {
            return Ok(());
        }
    };
    let key = String::from_utf8_lossy(&frames.peek()[..end])
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("sec-websocket-key"))
        .map(|(_, v)| v.trim().to_owned())
        .context("no Sec-WebSocket-Key")?;
    frames.consume(end);
    out.extend_from_slice(
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            accept_for(&key)
        )
        .as_bytes(),
    );
    write_frame(&mut out, TEXT, CHALLENGE, None);
    stream.write_all(&out).await?;
    out = Vec::new();
    loop {
        let mut closing = false;
        while let Some((opcode, payload)) = frames.next_frame()? {
            match opcode {
                TEXT => respond(&payload, &mut out),
                PING => write_frame(&mut out, PONG, &payload, None),
                CLOSE => {
                    write_frame(&mut out, CLOSE, &payload[..payload.len().min(2)], None);
                    closing = true;
                    break;
                }
                _ => {}
            }
        }
        frames.release();
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
        if closing {
            stream.shutdown().await?;
            return Ok(());
        }
        stream.readable().await?;
        if !read_available(&stream, &mut frames) {
            return Ok(());
        }
    }
}

fn respond(payload: &[u8], out: &mut Vec<u8>) {
    let Ok(frame) = serde_json::from_slice::<Value>(payload) else {
        return;
    };
    if frame.get("type").and_then(Value::as_str) != Some("req") {
        return;
    }
    let id = frame.get("id").cloned().unwrap_or(Value::Null);
    let response = format!(r#"{{"type":"res","id":{id},"ok":true,"payload":{{"ok":true}}}}"#);
    write_frame(out, TEXT, response.as_bytes(), None);
}

/// Reads what the socket has through a stack buffer (not kept between reads). False at the end
/// of the stream or on an error.
fn read_available(stream: &TcpStream, frames: &mut Frames) -> bool {
    let mut buf = [0u8; 8192];
    loop {
        match stream.try_read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => {
                frames.extend(&buf[..n]);
                if n < buf.len() {
                    return true;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
}
