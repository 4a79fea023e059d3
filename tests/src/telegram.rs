//! A fake Telegram Bot API for the channel tests: no Telegram server runs offline, so this
//! speaks the documented wire format (https://core.telegram.org/bots/api): `getMe`,
//! `getUpdates` (offset confirms earlier updates; `timeout` long-polls), `sendMessage`,
//! `sendChatAction`, `setWebhook` and `deleteWebhook`, a 401 for a wrong token, and a 429 with
//! `retry_after` on demand. It records every call. One thread per connection, `Connection: close`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const TOKEN: &str = "123456:test-token";
pub const BOT_ID: i64 = 99;
pub const BOT_USERNAME: &str = "gwbot";

#[derive(Default)]
struct State {
    next_update: i64,
    /// Updates not yet confirmed by an offset past them.
    updates: Vec<Value>,
    calls: Vec<(String, Value)>,
    offsets: Vec<i64>,
    too_many: u32,
}

pub struct FakeTelegram {
    pub port: u16,
    state: Arc<(Mutex<State>, Condvar)>,
}

impl FakeTelegram {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state: Arc<(Mutex<State>, Condvar)> =
            Arc::new((Mutex::new(State { next_update: 1, ..Default::default() }), Condvar::new()));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = shared.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &shared);
                });
            }
        });
        Self { port, state }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A text message from a person (`chat_id` is theirs for a private chat, a group's otherwise).
    pub fn message(&self, from: i64, username: &str, chat_id: i64, chat_type: &str, text: &str) -> i64 {
        let (lock, wake) = &*self.state;
        let mut s = lock.lock().unwrap();
        let id = s.next_update;
        s.next_update += 1;
        s.updates.push(self::update(id, from, username, chat_id, chat_type, text));
        wake.notify_all();
        id
    }

    /// The next `n` sendMessage calls get 429 with retry_after 1.
    pub fn too_many_requests(&self, n: u32) {
        self.state.0.lock().unwrap().too_many = n;
    }

    pub fn calls(&self, method: &str) -> Vec<Value> {
        self.state
            .0
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|(m, _)| m == method)
            .map(|(_, b)| b.clone())
            .collect()
    }

    pub fn offsets(&self) -> Vec<i64> {
        self.state.0.lock().unwrap().offsets.clone()
    }

    /// Waits for the texts sent to `chat_id` to number at least `n`; returns them all.
    pub fn wait_sent(&self, chat_id: i64, n: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let sent: Vec<String> = self
                .calls("sendMessage")
                .iter()
                .filter(|b| {
                    b["chat_id"].as_str() == Some(&chat_id.to_string())
                        || b["chat_id"].as_i64() == Some(chat_id)
                })
                .map(|b| b["text"].as_str().unwrap_or("").to_owned())
                .collect();
            if sent.len() >= n || Instant::now() > deadline {
                return sent;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

pub fn update(id: i64, from: i64, username: &str, chat_id: i64, chat_type: &str, text: &str) -> Value {
    json!({
        "update_id": id,
        "message": {
            "message_id": id * 10, "date": 0, "text": text,
            "from": {"id": from, "is_bot": false, "first_name": username, "username": username},
            "chat": {"id": chat_id, "type": chat_type}
        }
    })
}

fn serve(stream: TcpStream, shared: &Arc<(Mutex<State>, Condvar)>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let path = request_line.split_whitespace().nth(1).unwrap_or("").to_owned();
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header)?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let body: Value = serde_json::from_slice(&body).unwrap_or(json!({}));
    let (status, answer) = answer(&path, body, shared);
    let text = answer.to_string();
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )?;
    stream.flush()
}

fn answer(path: &str, body: Value, shared: &Arc<(Mutex<State>, Condvar)>) -> (u16, Value) {
    let Some((token, method)) = path.trim_start_matches("/bot").split_once('/') else {
        return (404, json!({"ok": false, "error_code": 404, "description": "Not Found"}));
    };
    if token != TOKEN {
        return (401, json!({"ok": false, "error_code": 401, "description": "Unauthorized"}));
    }
    let (lock, wake) = &**shared;
    let mut s = lock.lock().unwrap();
    s.calls.push((method.to_owned(), body.clone()));
    match method {
        "getMe" => (
            200,
            json!({"ok": true, "result": {"id": BOT_ID, "is_bot": true, "first_name": "Gw", "username": BOT_USERNAME}}),
        ),
        "getUpdates" => {
            let offset = body["offset"].as_i64().unwrap_or(0);
            s.offsets.push(offset);
            // The long poll: a short wait keeps the tests quick; the gateway polls again.
            let deadline =
                Instant::now() + Duration::from_millis(body["timeout"].as_u64().unwrap_or(0).min(1) * 1000);
            loop {
                s.updates.retain(|u| u["update_id"].as_i64().unwrap_or(0) >= offset);
                if !s.updates.is_empty() || Instant::now() >= deadline {
                    break;
                }
                s = wake.wait_timeout(s, deadline - Instant::now()).unwrap().0;
            }
            (200, json!({"ok": true, "result": s.updates.clone()}))
        }
        "sendMessage" if s.too_many > 0 => {
            s.too_many -= 1;
            s.calls.pop();
            (
                429,
                json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 1", "parameters": {"retry_after": 1}}),
            )
        }
        "sendMessage" => {
            let text = body["text"].as_str().unwrap_or("");
            if text.is_empty() || text.chars().count() > 4096 {
                s.calls.pop();
                return (
                    400,
                    json!({"ok": false, "error_code": 400, "description": "Bad Request: message text is empty or too long"}),
                );
            }
            (
                200,
                json!({"ok": true, "result": {"message_id": 1, "date": 0, "chat": {"id": body["chat_id"]}, "text": text}}),
            )
        }
        "sendChatAction" | "setWebhook" | "deleteWebhook" => (200, json!({"ok": true, "result": true})),
        _ => (404, json!({"ok": false, "error_code": 404, "description": "Not Found: method not found"})),
    }
}
