//! R8: kill -9 at random points while four writers run: chat completions on a stored HTTP
//! session, WebSocket `chat.send`, memory notes, and device pairing. After each kill the state
//! database must pass SQLite's `integrity_check`, and once gatewayd is ready again every write
//! it had acknowledged must be there. The time from spawn to ready is recorded.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Context, Result};
use gateway_tests::benchutil::{ms, Row, Stats, Target};
use gateway_tests::http1;
use gateway_tests::ws::{Client, Device};
use gateway_tests::{free_port, try_http, Daemon, Home};
use nix::sys::signal::Signal;
use serde_json::{json, Value};

use crate::{row, Rng};

/// What the gateway acknowledged between two kills, by kind. Each such round writes to its
/// own sessions and memory key (a session lists at most 10,000 messages).
#[derive(Default)]
struct Acked {
    http: BTreeSet<String>,
    ws: BTreeSet<String>,
    notes: BTreeSet<String>,
    devices: BTreeSet<String>,
}

pub fn run(kills: usize, rows: &mut Vec<Row>, notes: &mut Vec<String>) -> Result<()> {
    let home = Home::new();
    // Room for every chat.send in the session's queue.
    home.write_config(None, "[runs]\nmax_queued_per_session = 1000\n");
    let port = free_port();
    let mut rounds: Vec<Acked> = Vec::new();
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let mut ready_ms = Vec::new();
    let (mut lost, mut corrupt) = (0usize, 0usize);
    let mut first_lost = None;
    let owner = Device::numbered(u64::MAX);
    let result = (|| -> Result<()> {
        for kill in 0..=kills {
            let (d, took) = start(&home, port)?;
            ready_ms.push(ms(took));
            let token = home.token();
            // The last round's writes after each restart; all of them after the last one.
            let check: Vec<usize> = if kill == kills {
                (0..rounds.len()).collect()
            } else {
                kill.checked_sub(1).into_iter().collect()
            };
            // The paired devices, read once per restart (the list holds every round's).
            let paired = paired_devices(&home)?;
            for round in check {
                let missing = missing(&d, &token, &owner, &paired, round, &rounds[round])?;
                if !missing.is_empty() {
                    lost += missing.len();
                    first_lost.get_or_insert_with(|| format!("after kill {kill}: {}", missing.join(", ")));
                }
            }
            if kill == kills {
                break;
            }
            let acked = Arc::new(Mutex::new(Acked::default()));
            let stop = Arc::new(AtomicBool::new(false));
            let writers: Vec<thread::JoinHandle<()>> = (0..4)
                .map(|kind| {
                    let (stop, acked, token, owner) =
                        (stop.clone(), acked.clone(), token.clone(), owner.clone());
                    thread::Builder::new()
                        .name(format!("r8-writer-{kind}"))
                        .spawn(move || write(kind, kill, port, &token, &owner, &stop, &acked))
                })
                .collect::<Result<_, _>>()?;
            thread::sleep(Duration::from_millis(20 + rng.below(180) as u64));
            d.signal(Signal::SIGKILL);
            stop.store(true, Ordering::Relaxed);
            for w in writers {
                w.join().map_err(|_| anyhow!("a writer thread panicked"))?;
            }
            drop(d);
            rounds.push(
                Arc::try_unwrap(acked)
                    .map_err(|_| anyhow!("a writer kept its record"))?
                    .into_inner()
                    .unwrap(),
            );
            if integrity(&home.state_dir(None).join("gateway.db"))? != "ok" {
                corrupt += 1;
            }
        }
        Ok(())
    })();
    result?;

    let count = |f: fn(&Acked) -> usize| rounds.iter().map(f).sum::<usize>();
    let (http, ws, notes_, devices) = (
        count(|a| a.http.len()),
        count(|a| a.ws.len()),
        count(|a| a.notes.len()),
        count(|a| a.devices.len()),
    );
    let total = http + ws + notes_ + devices;
    let ready = Stats::of(ready_ms);
    rows.push(row(
        "R8-lost",
        format!("acknowledged writes lost over {kills} kill -9s ({total} acknowledged)"),
        "",
        lost as f64,
        Target::AtMost(0.0),
    ));
    rows.push(row(
        "R8-integrity",
        "state databases failing integrity_check after a kill".into(),
        "",
        corrupt as f64,
        Target::AtMost(0.0),
    ));
    let ready_row = row(
        "R8-ready",
        "ready again after a kill -9 (the slowest start)".into(),
        "ms",
        ready.max,
        Target::AtMost(2_000.0),
    );
    rows.push(ready_row);
    notes.push(format!(
        "R8: {kills} kills at 20-200 ms into the writes; acknowledged: {} HTTP session messages, {} chat.send, {} memory notes, {} paired devices; ready again in {:.0} ms median, {:.0} ms at most{}",
        http,
        ws,
        notes_,
        devices,
        ready.median,
        ready.max,
        first_lost.map(|l| format!("; lost {l}")).unwrap_or_default()
    ));
    Ok(())
}

/// Spawns gatewayd and waits until `/readyz` answers 200; returns it and how long that took.
fn start(home: &Home, port: u16) -> Result<(Daemon, Duration)> {
    let t = Instant::now();
    let mut d = home.spawn(&["--port", &port.to_string()], |_| {});
    loop {
        if let Ok((200, _)) = try_http(port, "GET", "/readyz", &[]) {
            return Ok((d, t.elapsed()));
        }
        if let Some(status) = d.child.try_wait()? {
            anyhow::bail!("gatewayd exited ({status}) after a kill -9:\n{}", d.stderr());
        }
        ensure!(t.elapsed() < Duration::from_secs(10), "gatewayd not ready within 10 s:\n{}", d.stderr());
        thread::sleep(Duration::from_millis(1));
    }
}

/// Writes of one kind until `stop` or the first failure (the daemon was killed), recording
/// each acknowledged one. Nothing here may panic: the release profile aborts on a panic.
fn write(
    kind: usize,
    kill: usize,
    port: u16,
    token: &str,
    owner: &Device,
    stop: &AtomicBool,
    acked: &Mutex<Acked>,
) {
    let auth = format!("Bearer {token}");
    let mut ws = None;
    if kind == 1 {
        match Client::try_paired(port, token, owner) {
            Ok((c, _)) => ws = Some(c),
            Err(_) => return,
        }
    }
    let (http_session, ws_session, notes_key) = keys(kill);
    for n in 0.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let id = format!("k{kill}-{n}");
        match kind {
            0 => {
                let body =
                    json!({"model": "echo/echo", "messages": [{"role": "user", "content": id}]}).to_string();
                let headers =
                    [("Authorization", auth.as_str()), ("x-gateway-session-key", http_session.as_str())];
                match http1::request(port, "POST", "/v1/chat/completions", &headers, Some(&body)) {
                    Ok(r) if r.status == 200 => acked.lock().unwrap().http.insert(id),
                    _ => return,
                };
            }
            1 => {
                let c = ws.as_mut().expect("a client");
                match c.try_request("chat.send", json!({ "sessionKey": ws_session, "message": id })) {
                    Ok(res) if res["ok"] == true => {}
                    _ => return,
                }
                acked.lock().unwrap().ws.insert(id);
            }
            2 => {
                let path = format!("/gateway/memory/{notes_key}/{id}");
                let body = json!({ "value": id }).to_string();
                match http1::request(port, "PUT", &path, &[("Authorization", &auth)], Some(&body)) {
                    Ok(r) if r.status == 200 => acked.lock().unwrap().notes.insert(id),
                    _ => return,
                };
            }
            _ => {
                let device = Device::numbered((kill as u64) << 20 | n);
                match Client::try_paired(port, token, &device) {
                    Ok((_c, hello)) if hello["ok"] == true => {}
                    _ => return,
                }
                // Paced: the registry lists every device ever paired, and it is read after each
                // restart.
                thread::sleep(Duration::from_millis(10));
                acked.lock().unwrap().devices.insert(device.id());
            }
        }
    }
}

/// The HTTP session, WebSocket session and memory key of round `kill`.
fn keys(kill: usize) -> (String, String, String) {
    (format!("r8-http-{kill}"), format!("r8-ws-{kill}"), format!("r8-{kill}"))
}

/// The acknowledged writes of round `kill` that the restarted gateway does not have.
fn missing(
    d: &Daemon,
    token: &str,
    owner: &Device,
    paired: &BTreeSet<String>,
    kill: usize,
    acked: &Acked,
) -> Result<Vec<String>> {
    let (http_session, ws_session, notes_key) = keys(kill);
    let auth = format!("Bearer {token}");
    let get = |path: &str| -> Result<Value> {
        let r = http1::request(d.port, "GET", path, &[("Authorization", &auth)], None)?;
        ensure!(r.status == 200, "GET {path}: {}", r.status);
        Ok(serde_json::from_str(&r.body)?)
    };
    let strings = |v: &Value, field: &str| -> BTreeSet<String> {
        v.as_array().into_iter().flatten().filter_map(|m| m[field].as_str().map(str::to_owned)).collect()
    };
    let users_only = |messages: &Value| -> Value {
        messages.as_array().into_iter().flatten().filter(|m| m["role"] == "user").cloned().collect()
    };
    let mut gone = Vec::new();
    let mut check = |what: &str, acked: &BTreeSet<String>, stored: BTreeSet<String>| {
        gone.extend(acked.difference(&stored).map(|id| format!("{what} {id}")));
    };
    let http = get(&format!("/gateway/sessions/{http_session}?limit=10000"));
    // A session nobody wrote to yet is a 404.
    check(
        "HTTP message",
        &acked.http,
        http.map(|s| strings(&users_only(&s["messages"]), "content")).unwrap_or_default(),
    );
    check(
        "memory note",
        &acked.notes,
        strings(&get(&format!("/gateway/memory/{notes_key}"))?["notes"], "name"),
    );
    let (mut c, _) = Client::paired(d.port, token, owner);
    let history = c.request("chat.history", json!({ "sessionKey": ws_session, "limit": 10000 }));
    check("chat.send", &acked.ws, strings(&users_only(&history["payload"]["messages"]), "text"));
    check("paired device", &acked.devices, paired.clone());
    Ok(gone)
}

/// The ids of the devices paired, from the control API.
fn paired_devices(home: &Home) -> Result<BTreeSet<String>> {
    let (code, body) = gateway_tests::unix_http(&home.socket(None), "GET", "/v1/devices", &[])?;
    ensure!(code == 200, "GET /v1/devices: {code}");
    let devices: Value = serde_json::from_str(&body)?;
    Ok(devices["devices"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["device_id"].as_str().map(str::to_owned))
        .collect())
}

/// `PRAGMA integrity_check` on the database a killed gatewayd left.
fn integrity(db: &std::path::Path) -> Result<String> {
    let conn = rusqlite::Connection::open(db).with_context(|| format!("open {}", db.display()))?;
    Ok(conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
}
