//! Telegram: a bot on the Bot API (`base_url`, over the gateway's HTTP client). Updates come by
//! `getUpdates` long polling (the offset advances only after the update is recorded, and is kept
//! in SQLite) or by webhook (`POST /channels/telegram/<id>` with the secret-token header, which
//! the HTTP door hands over through `Channels::webhook`). Replies are `sendMessage` calls cut to
//! the API's 4096-character limit; a run shows `typing`; a 429 waits the `retry_after` it names.
//! The bot token is part of every API URL, so no URL is ever logged or shown: errors drop it.

use std::time::Duration;

use gateway_config::{TelegramAccount, TelegramMode};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, watch};

use super::chunk::chunks;
use super::state::ChannelState;
use super::{lifecycle, Chat, Delivery, Inbound, Outgoing, SharedStatus};
use crate::core::store::off_workers;

/// Bytes per message: within Telegram's 4096 characters whatever the text.
const MAX_TEXT_BYTES: usize = 4000;
/// The long poll's wait, in seconds, and the HTTP timeout around it.
const POLL_SECONDS: u64 = 25;
const HTTP_TIMEOUT: Duration = Duration::from_secs(POLL_SECONDS + 15);
/// A 429's `retry_after` is honoured up to this long; longer, the send fails and is retried later.
const MAX_RETRY_AFTER: u64 = 60;

#[derive(Clone)]
pub struct Bot {
    pub id: String,
    pub config: TelegramAccount,
    pub token: String,
    pub secret: Option<String>,
    pub status: SharedStatus,
    pub state: ChannelState,
}

/// The bot as `getMe` describes it: mentions name it.
#[derive(Clone, Default)]
struct Me {
    id: i64,
    username: String,
}

/// Calls one Bot API method; the `result`, or what went wrong (never with the URL).
async fn call(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    method: &str,
    body: &Value,
) -> Result<Value, ApiError> {
    let url = format!("{}/bot{token}/{method}", base.trim_end_matches('/'));
    let response = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| ApiError::Network(e.without_url().to_string()))?;
    let status = response.status();
    let bytes = response.bytes().await.map_err(|e| ApiError::Network(e.without_url().to_string()))?;
    let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if answer["ok"] == true {
        return Ok(answer["result"].clone());
    }
    let description = answer["description"].as_str().unwrap_or("no description").to_owned();
    match status.as_u16() {
        429 => Err(ApiError::TooMany(answer["parameters"]["retry_after"].as_u64().unwrap_or(5))),
        401 | 404 => {
            Err(ApiError::Refused(format!("the bot token was refused ({} {description})", status.as_u16())))
        }
        code => Err(ApiError::Refused(format!("{method}: {code} {description}"))),
    }
}

#[derive(Debug)]
enum ApiError {
    Network(String),
    TooMany(u64),
    Refused(String),
}

impl ApiError {
    fn text(&self) -> String {
        match self {
            Self::Network(e) => format!("cannot reach the Bot API: {e}"),
            Self::TooMany(s) => format!("the Bot API asks to wait {s} s (429)"),
            Self::Refused(e) => e.clone(),
        }
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(HTTP_TIMEOUT).build().expect("an HTTP client")
}

async fn get_me(client: &reqwest::Client, config: &TelegramAccount, token: &str) -> Result<Me, String> {
    let me = call(client, &config.base_url, token, "getMe", &json!({})).await.map_err(|e| e.text())?;
    Ok(Me { id: me["id"].as_i64().unwrap_or(0), username: me["username"].as_str().unwrap_or("").to_owned() })
}

/// Runs the bot until `stopped`: sets up polling or the webhook, takes updates, sends replies.
pub async fn run(
    bot: Bot,
    deliveries: mpsc::Sender<Delivery>,
    mut outgoing: mpsc::Receiver<Outgoing>,
    mut webhook_updates: mpsc::Receiver<(Value, oneshot::Sender<()>)>,
    mut stopped: watch::Receiver<bool>,
) {
    let client = client();
    // Set up: who the bot is, and where its updates go.
    let setup = || async {
        let me = get_me(&client, &bot.config, &bot.token).await?;
        let (method, body) = match bot.config.mode {
            TelegramMode::Polling => ("deleteWebhook", json!({ "drop_pending_updates": false })),
            TelegramMode::Webhook => (
                "setWebhook",
                json!({
                    "url": bot.config.webhook_url, "secret_token": bot.secret,
                    "allowed_updates": ["message"],
                }),
            ),
        };
        call(&client, &bot.config.base_url, &bot.token, method, &body).await.map_err(|e| e.text())?;
        Ok::<Me, String>(me)
    };
    let Some(me) = lifecycle::set_up("telegram", &bot.id, &bot.status, &mut stopped, setup).await else {
        return;
    };
    lifecycle::mark_ready(&bot.status, format!("@{}", me.username));
    tracing::info!(channel = "telegram", account = %bot.id, bot = %me.username, mode = ?bot.config.mode, "Telegram bot ready");
    let poller = (bot.config.mode == TelegramMode::Polling).then(|| {
        tokio::spawn(poll(client.clone(), bot.clone(), me.clone(), deliveries.clone(), stopped.clone()))
    });
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            Some(out) = outgoing.recv() => {
                let result = send(&client, &bot, &out).await;
                lifecycle::settle(&bot.status, out, result);
            }
            Some((raw, recorded)) = webhook_updates.recv() => {
                match to_inbound(&bot.id, &me, &raw) {
                    Some(message) => {
                        if deliveries.send(Delivery { message, recorded: Some(recorded) }).await.is_err() {
                            break;
                        }
                    }
                    None => { let _ = recorded.send(()); }
                }
            }
        }
    }
    if let Some(poller) = poller {
        poller.abort();
    }
    lifecycle::mark_stopped(&bot.status);
}

/// Long polling: each batch is recorded (the dispatcher says so) before the offset moves past it.
async fn poll(
    client: reqwest::Client,
    bot: Bot,
    me: Me,
    deliveries: mpsc::Sender<Delivery>,
    mut stopped: watch::Receiver<bool>,
) {
    let id = bot.id.clone();
    let mut offset: i64 = off_workers(bot.state.clone(), move |s| s.cursor("telegram", &id))
        .await
        .ok()
        .flatten()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut streak = lifecycle::Streak::default();
    loop {
        let body = json!({ "offset": offset, "timeout": POLL_SECONDS, "allowed_updates": ["message"] });
        let batch = tokio::select! {
            r = call(&client, &bot.config.base_url, &bot.token, "getUpdates", &body) => r,
            _ = stopped.changed() => return,
        };
        let updates = match batch {
            Ok(updates) => {
                streak.succeeded(&bot.status);
                updates.as_array().cloned().unwrap_or_default()
            }
            Err(e) => {
                let asked = match e {
                    ApiError::TooMany(s) => Some(Duration::from_secs(s.min(MAX_RETRY_AFTER))),
                    _ => None,
                };
                if !lifecycle::pause(streak.failed(&bot.status, e.text(), asked), &mut stopped).await {
                    return;
                }
                continue;
            }
        };
        let mut next = offset;
        for raw in &updates {
            let update_id = raw["update_id"].as_i64().unwrap_or(next - 1);
            if let Some(message) = to_inbound(&bot.id, &me, raw) {
                let (recorded, done) = oneshot::channel();
                if deliveries.send(Delivery { message, recorded: Some(recorded) }).await.is_err() {
                    return;
                }
                if done.await.is_err() {
                    return;
                }
            }
            next = next.max(update_id + 1);
        }
        if next != offset {
            offset = next;
            let (id, cursor) = (bot.id.clone(), offset.to_string());
            if let Err(e) =
                off_workers(bot.state.clone(), move |s| s.set_cursor("telegram", &id, &cursor)).await
            {
                tracing::error!(channel = "telegram", account = %bot.id, error = %e, "cannot keep the Telegram offset");
            }
        }
    }
}

/// A reply (cut to size), or the typing indicator; a 429 is waited out once.
async fn send(client: &reqwest::Client, bot: &Bot, out: &Outgoing) -> Result<(), String> {
    let (method, bodies): (&str, Vec<Value>) = if out.typing {
        ("sendChatAction", vec![json!({ "chat_id": out.to, "action": "typing" })])
    } else {
        (
            "sendMessage",
            chunks(&out.text, MAX_TEXT_BYTES)
                .into_iter()
                .map(|t| json!({ "chat_id": out.to, "text": t }))
                .collect(),
        )
    };
    for body in bodies {
        let mut waited = false;
        loop {
            match call(client, &bot.config.base_url, &bot.token, method, &body).await {
                Ok(_) => break,
                Err(ApiError::TooMany(s)) if !waited && s <= MAX_RETRY_AFTER => {
                    waited = true;
                    tokio::time::sleep(Duration::from_secs(s)).await;
                }
                Err(e) => return Err(e.text()),
            }
        }
    }
    Ok(())
}

/// A text message as an inbound message; None for anything else (edits, channel posts, media).
fn to_inbound(account: &str, me: &Me, update: &Value) -> Option<Inbound> {
    let message = &update["message"];
    let text = message["text"].as_str()?;
    let from = &message["from"];
    let from_id = from["id"].as_i64()?;
    if from["is_bot"] == true {
        return None;
    }
    let chat_id = message["chat"]["id"].as_i64()?;
    let chat = match message["chat"]["type"].as_str()? {
        "private" => Chat::Dm,
        "group" | "supergroup" => Chat::Group(chat_id.to_string()),
        _ => return None,
    };
    let username = from["username"].as_str().map(|u| format!("@{u}"));
    let display = username
        .clone()
        .or_else(|| from["first_name"].as_str().map(str::to_owned))
        .unwrap_or_else(|| from_id.to_string());
    let handle = format!("@{}", me.username);
    let mentioned = (!me.username.is_empty() && text.to_lowercase().contains(&handle.to_lowercase()))
        || message["reply_to_message"]["from"]["id"].as_i64() == Some(me.id);
    let body = if me.username.is_empty() { text.to_owned() } else { remove_ci(text, &handle) };
    let body = body.trim();
    if body.is_empty() {
        return None;
    }
    Some(Inbound {
        channel: "telegram",
        account: account.to_owned(),
        message_id: update["update_id"].as_i64()?.to_string(),
        peer: from_id.to_string(),
        peer_mask: username.unwrap_or_default(),
        display,
        chat,
        text: body.to_owned(),
        mentioned,
        reply_target: None,
    })
}

/// `text` without `needle`, matched without regard to case.
fn remove_ci(text: &str, needle: &str) -> String {
    let lower = text.to_lowercase();
    match lower.find(&needle.to_lowercase()) {
        Some(at) if lower.len() == text.len() => format!("{}{}", &text[..at], &text[at + needle.len()..]),
        _ => text.to_owned(),
    }
}

/// Checks the token: `getMe` answers with the bot.
pub async fn probe(config: &TelegramAccount, token: &str) -> Result<(), String> {
    let client =
        reqwest::Client::builder().timeout(Duration::from_secs(20)).build().map_err(|e| e.to_string())?;
    get_me(&client, config, token).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Me {
        Me { id: 99, username: "GwBot".into() }
    }

    #[test]
    fn private_and_group_text_messages_become_inbound() {
        let dm = json!({"update_id": 7, "message": {"message_id": 1, "text": "hello",
            "from": {"id": 42, "is_bot": false, "first_name": "Alice", "username": "alice"},
            "chat": {"id": 42, "type": "private"}}});
        let m = to_inbound("main", &me(), &dm).unwrap();
        assert_eq!(
            (m.message_id.as_str(), m.peer.as_str(), m.peer_mask.as_str(), m.chat.clone()),
            ("7", "42", "@alice", Chat::Dm)
        );
        assert_eq!((m.session_key(), m.reply_to()), ("telegram:main:dm:42".to_owned(), "42".to_owned()));
        let group = json!({"update_id": 8, "message": {"message_id": 2, "text": "@gwbot what time is it?",
            "from": {"id": 43, "first_name": "Bob"}, "chat": {"id": -100, "type": "supergroup"}}});
        let g = to_inbound("main", &me(), &group).unwrap();
        assert!(g.mentioned);
        assert_eq!(
            (g.text.as_str(), g.reply_to(), g.display.as_str()),
            ("what time is it?", "-100".to_owned(), "Bob")
        );
        let reply = json!({"update_id": 9, "message": {"text": "and you?", "from": {"id": 43},
            "chat": {"id": -100, "type": "group"}, "reply_to_message": {"from": {"id": 99}}}});
        assert!(to_inbound("main", &me(), &reply).unwrap().mentioned);
    }

    #[test]
    fn edits_bots_channels_and_media_are_not_inbound() {
        let none = [
            json!({"update_id": 1, "edited_message": {"text": "x", "from": {"id": 1}, "chat": {"id": 1, "type": "private"}}}),
            json!({"update_id": 2, "message": {"text": "x", "from": {"id": 1, "is_bot": true}, "chat": {"id": 1, "type": "private"}}}),
            json!({"update_id": 3, "message": {"text": "x", "from": {"id": 1}, "chat": {"id": 1, "type": "channel"}}}),
            json!({"update_id": 4, "message": {"photo": [], "from": {"id": 1}, "chat": {"id": 1, "type": "private"}}}),
        ];
        for update in none {
            assert_eq!(to_inbound("main", &me(), &update), None, "{update}");
        }
    }
}
