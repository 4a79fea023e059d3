//! gateway-ws-client: a small WebSocket client of the gateway protocol, for scripts (the demo)
//! and people trying the protocol by hand. It connects to 127.0.0.1:PORT with the token from
//! `GATEWAY_TOKEN` (never on the command line) and a device identity, then runs each step:
//!
//!   gateway-ws-client --port 18789 hello call status '{}' chat demo "Hello there"
//!
//! - `hello`: prints the protocol version and how many methods the server offers;
//! - `call METHOD PARAMS`: prints the response's payload (or its error) as one JSON line;
//! - `chat SESSION MESSAGE`: `chat.send`, then prints each `chat` event's state and the final text.
//!
//! It exits 1 when a step fails.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use gateway_tests::ws::{Client, Connect, Device};
use serde_json::{json, Value};

fn main() {
    if let Err(e) = run() {
        eprintln!("gateway-ws-client: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let mut args = std::env::args().skip(1).peekable();
    let mut port = None;
    let mut steps = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" => port = Some(args.next().context("--port needs a number")?.parse::<u16>()?),
            "-h" | "--help" => {
                println!("usage: GATEWAY_TOKEN=... gateway-ws-client --port PORT [hello] [call METHOD PARAMS] [chat SESSION MESSAGE]...");
                return Ok(());
            }
            _ => steps.push(a),
        }
    }
    let port = port.context("give --port PORT")?;
    let token = std::env::var("GATEWAY_TOKEN").context("set GATEWAY_TOKEN to the gateway token")?;
    let device = Device::new(42);
    let options = Connect { token: Some(&token), device: Some(&device), ..Default::default() };
    let mut client = Client::open(port, &options)
        .map_err(|r| anyhow::anyhow!("upgrade refused: {} {}", r.status, r.body))?;
    let params = client.connect_params(&options);
    let hello = client.request("connect", params);
    if hello["ok"] != true {
        bail!("connect refused: {}", hello["error"]);
    }
    let mut steps = steps.into_iter();
    while let Some(step) = steps.next() {
        match step.as_str() {
            "hello" => {
                let p = &hello["payload"];
                let methods = p["features"]["methods"].as_array().map_or(0, Vec::len);
                println!("connected: protocol {}, {methods} methods", p["protocol"]);
            }
            "call" => {
                let method = steps.next().context("call needs METHOD PARAMS")?;
                let params: Value = serde_json::from_str(&steps.next().context("call needs PARAMS")?)
                    .context("PARAMS must be JSON")?;
                let res = client.request(&method, params);
                if res["ok"] != true {
                    bail!("{method}: {}", res["error"]);
                }
                println!("{method}: {}", res["payload"]);
            }
            "chat" => {
                let session = steps.next().context("chat needs SESSION MESSAGE")?;
                let message = steps.next().context("chat needs SESSION MESSAGE")?;
                let res = client.request("chat.send", json!({ "sessionKey": session, "message": message }));
                let run_id = res["payload"]["runId"].as_str().context("chat.send gave no runId")?.to_owned();
                let mut deltas = 0;
                loop {
                    let e = client
                        .event_where("chat", Duration::from_secs(30), |e| e["payload"]["runId"] == run_id);
                    match e["payload"]["state"].as_str() {
                        Some("delta") => deltas += 1,
                        Some("final") => {
                            let text = e["payload"]["message"]["content"][0]["text"].as_str().unwrap_or("");
                            println!("chat {session}: {deltas} deltas, then final: {text}");
                            break;
                        }
                        other => bail!("chat ended {}: {}", other.unwrap_or("?"), e["payload"]),
                    }
                }
            }
            other => bail!("unknown step {other:?}: hello, call METHOD PARAMS, chat SESSION MESSAGE"),
        }
    }
    Ok(())
}
