//! Matrix: a bot account on a homeserver's client-server API (over the gateway's HTTP client).
//! It logs in with its password (or uses its access token), long-polls `/sync` with the
//! `next_batch` kept in SQLite (moved past a batch only after its messages are recorded; the
//! first sync of a new account only takes the position, so old history is not answered),
//! accepts invites its policy allows, answers `m.text` messages (event ids keep a replay from
//! being answered twice), shows typing, and sends `m.text` replies. Unencrypted rooms only:
//! end-to-end encryption needs an Olm/Megolm session store (vodozemac) and device verification.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gateway_config::{DmPolicy, GroupPolicy, MatrixAccount};
use gateway_proto::time::now_ms;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, watch};

use super::chunk::chunks;
use super::policy::glob;
use super::state::ChannelState;
use super::{lifecycle, Chat, Delivery, Inbound, Outgoing, SharedStatus};
use crate::core::store::off_workers;

/// Bytes per message: well under the 64 KiB event limit.
const MAX_TEXT_BYTES: usize = 16_000;
const SYNC_TIMEOUT_MS: u64 = 25_000;
const HTTP_TIMEOUT: Duration = Duration::from_secs(45);

#[derive(Clone)]
pub struct Account {
    pub id: String,
    pub config: MatrixAccount,
    pub password: Option<String>,
    pub access_token: Option<String>,
    pub status: SharedStatus,
    pub state: ChannelState,
}

#[derive(Clone)]
struct Session {
    client: reqwest::Client,
    base: String,
    token: String,
    user_id: String,
}

#[derive(Debug)]
enum ApiError {
    Network(String),
    /// 429 with the wait the server asks for.
    TooMany(u64),
    Refused(String),
}

impl ApiError {
    fn text(&self) -> String {
        match self {
            Self::Network(e) => format!("cannot reach the homeserver: {e}"),
            Self::TooMany(ms) => format!("the homeserver asks to wait {ms} ms (429)"),
            Self::Refused(e) => e.clone(),
        }
    }
}

/// A path segment with the characters Matrix ids carry (`!`, `@`, `:`, `#`) escaped.
fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<Value, ApiError> {
    let mut request = client.request(method, url);
    if let Some(token) = token {
        request = request.header(reqwest::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if let Some(body) = body {
        request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(body.to_string());
    }
    let response = request.send().await.map_err(|e| ApiError::Network(e.without_url().to_string()))?;
    let status = response.status();
    let bytes = response.bytes().await.map_err(|e| ApiError::Network(e.without_url().to_string()))?;
    let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(answer);
    }
    let code = answer["errcode"].as_str().unwrap_or("");
    let error = answer["error"].as_str().unwrap_or("no description");
    match status.as_u16() {
        429 => Err(ApiError::TooMany(answer["retry_after_ms"].as_u64().unwrap_or(5_000))),
        401 | 403 if code == "M_FORBIDDEN" || code == "M_UNKNOWN_TOKEN" => {
            Err(ApiError::Refused(format!("the homeserver refused the credentials ({code}: {error})")))
        }
        s => Err(ApiError::Refused(format!("{s} {code}: {error}"))),
    }
}

impl Session {
    fn url(&self, path: &str) -> String {
        format!("{}/_matrix/client/v3/{path}", self.base)
    }

    async fn get(&self, path: &str) -> Result<Value, ApiError> {
        call(&self.client, reqwest::Method::GET, self.url(path), Some(&self.token), None).await
    }

    async fn post(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        call(&self.client, reqwest::Method::POST, self.url(path), Some(&self.token), Some(body)).await
    }

    async fn put(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        call(&self.client, reqwest::Method::PUT, self.url(path), Some(&self.token), Some(body)).await
    }
}

/// Logs in (or takes the access token) and checks who the homeserver says we are.
async fn open(
    config: &MatrixAccount,
    password: Option<&str>,
    access_token: Option<&str>,
) -> Result<Session, String> {
    let client = reqwest::Client::builder().timeout(HTTP_TIMEOUT).build().map_err(|e| e.to_string())?;
    let base = config.homeserver.trim_end_matches('/').to_owned();
    let token = match (access_token, password) {
        (Some(token), _) => token.to_owned(),
        (None, Some(password)) => {
            let body = json!({
                "type": "m.login.password",
                "identifier": { "type": "m.id.user", "user": config.user_id },
                "password": password,
                "initial_device_display_name": config.device_name,
            });
            let answer = call(
                &client,
                reqwest::Method::POST,
                format!("{base}/_matrix/client/v3/login"),
                None,
                Some(&body),
            )
            .await
            .map_err(|e| e.text())?;
            answer["access_token"].as_str().ok_or("the login answer has no access_token")?.to_owned()
        }
        (None, None) => return Err("no password or access_token".into()),
    };
    let session = Session { client, base, token, user_id: config.user_id.clone() };
    let me = session.get("account/whoami").await.map_err(|e| e.text())?;
    let user = me["user_id"].as_str().unwrap_or("");
    if !user.eq_ignore_ascii_case(&config.user_id) {
        return Err(format!("the credentials belong to {user}, not to {}", config.user_id));
    }
    Ok(session)
}

/// Checks the credentials: a login (or the token) and `whoami`. A password login leaves a device
/// behind, so it is logged out again.
pub async fn probe(
    config: &MatrixAccount,
    password: Option<&str>,
    access_token: Option<&str>,
) -> Result<(), String> {
    let session = open(config, password, access_token).await?;
    if access_token.is_none() {
        let _ = session.post("logout", &json!({})).await;
    }
    Ok(())
}

pub async fn run(
    account: Account,
    deliveries: mpsc::Sender<Delivery>,
    mut outgoing: mpsc::Receiver<Outgoing>,
    mut stopped: watch::Receiver<bool>,
) {
    let open = || open(&account.config, account.password.as_deref(), account.access_token.as_deref());
    let Some(session) = lifecycle::set_up("matrix", &account.id, &account.status, &mut stopped, open).await
    else {
        return;
    };
    lifecycle::mark_ready(&account.status, session.user_id.clone());
    tracing::info!(channel = "matrix", account = %account.id, user = %session.user_id, "Matrix account syncing");
    let syncer = tokio::spawn(sync(session.clone(), account.clone(), deliveries, stopped.clone()));
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            Some(out) = outgoing.recv() => {
                let result = send(&session, &out).await;
                lifecycle::settle(&account.status, out, result);
            }
        }
    }
    syncer.abort();
    lifecycle::mark_stopped(&account.status);
}

static TXN: AtomicU64 = AtomicU64::new(0);

async fn send(session: &Session, out: &Outgoing) -> Result<(), String> {
    let room = segment(&out.to);
    if out.typing {
        let path = format!("rooms/{room}/typing/{}", segment(&session.user_id));
        return session
            .put(&path, &json!({ "typing": true, "timeout": 30_000 }))
            .await
            .map(|_| ())
            .map_err(|e| e.text());
    }
    for text in chunks(&out.text, MAX_TEXT_BYTES) {
        let txn = format!("gw{}-{}", now_ms(), TXN.fetch_add(1, Ordering::Relaxed));
        let path = format!("rooms/{room}/send/m.room.message/{txn}");
        let body = json!({ "msgtype": "m.text", "body": text });
        let mut waited = false;
        loop {
            match session.put(&path, &body).await {
                Ok(_) => break,
                Err(ApiError::TooMany(ms)) if !waited && ms <= 60_000 => {
                    waited = true;
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                Err(e) => return Err(e.text()),
            }
        }
    }
    Ok(())
}

/// True when the account's policy lets `inviter` bring the bot into a room.
fn accept_invite(config: &MatrixAccount, inviter: &str, direct: bool) -> bool {
    let listed =
        config.allow_from.iter().any(|a| a == "*" || a.eq_ignore_ascii_case(inviter) || glob(a, inviter));
    if direct {
        match config.dm_policy {
            DmPolicy::Disabled => false,
            DmPolicy::Allowlist => listed,
            // Pairing: join, so the stranger can be given a code.
            DmPolicy::Pairing | DmPolicy::Open => true,
        }
    } else {
        match config.group_policy {
            GroupPolicy::Disabled => false,
            GroupPolicy::Allowlist => listed,
            GroupPolicy::Open => true,
        }
    }
}

async fn sync(
    session: Session,
    account: Account,
    deliveries: mpsc::Sender<Delivery>,
    mut stopped: watch::Receiver<bool>,
) {
    let id = account.id.clone();
    let mut since: Option<String> =
        off_workers(account.state.clone(), move |s| s.cursor("matrix", &id)).await.ok().flatten();
    let filter = json!({
        "room": { "timeline": { "limit": 50 }, "state": { "lazy_load_members": true } },
        "presence": { "types": [] },
        "account_data": { "types": [] },
    })
    .to_string();
    let mut members: HashMap<String, u64> = HashMap::new();
    let mut streak = lifecycle::Streak::default();
    loop {
        let mut path = format!("sync?timeout={SYNC_TIMEOUT_MS}&filter={}", segment(&filter));
        if let Some(s) = &since {
            path.push_str(&format!("&since={}", segment(s)));
        }
        let answer = tokio::select! {
            r = session.get(&path) => r,
            _ = stopped.changed() => return,
        };
        let batch = match answer {
            Ok(batch) => {
                streak.succeeded(&account.status);
                batch
            }
            Err(e) => {
                let asked = match e {
                    ApiError::TooMany(ms) => Some(Duration::from_millis(ms.min(60_000))),
                    _ => None,
                };
                if !lifecycle::pause(streak.failed(&account.status, e.text(), asked), &mut stopped).await {
                    return;
                }
                continue;
            }
        };
        // Invites the policy allows are joined.
        for (room, invite) in batch["rooms"]["invite"].as_object().into_iter().flatten() {
            let me = invite["invite_state"]["events"].as_array().into_iter().flatten().find(|e| {
                e["type"] == "m.room.member"
                    && e["state_key"].as_str().is_some_and(|k| k.eq_ignore_ascii_case(&session.user_id))
            });
            let inviter = me.and_then(|e| e["sender"].as_str()).unwrap_or("");
            let direct = me.is_some_and(|e| e["content"]["is_direct"] == true);
            if accept_invite(&account.config, inviter, direct) {
                match session.post(&format!("join/{}", segment(room)), &json!({})).await {
                    Ok(_) => {
                        tracing::info!(channel = "matrix", account = %account.id, room, inviter, "joined a room on invite")
                    }
                    Err(e) => {
                        tracing::warn!(channel = "matrix", account = %account.id, room, error = %e.text(), "cannot join a room")
                    }
                }
            } else {
                tracing::debug!(channel = "matrix", account = %account.id, room, inviter, "invite declined by policy");
                let _ = session.post(&format!("rooms/{}/leave", segment(room)), &json!({})).await;
            }
        }
        // The first sync of a new account takes the position only: no old history is answered.
        if since.is_some() {
            for (room, joined) in batch["rooms"]["join"].as_object().into_iter().flatten() {
                if let Some(n) = joined["summary"]["m.joined_member_count"].as_u64() {
                    members.insert(room.clone(), n);
                }
                for event in joined["timeline"]["events"].as_array().into_iter().flatten() {
                    if event["type"] != "m.room.message" || event["content"]["msgtype"] != "m.text" {
                        continue;
                    }
                    let sender = event["sender"].as_str().unwrap_or("");
                    if sender.is_empty() || sender.eq_ignore_ascii_case(&session.user_id) {
                        continue;
                    }
                    let count = match members.get(room) {
                        Some(n) => *n,
                        None => {
                            let n = session
                                .get(&format!("rooms/{}/joined_members", segment(room)))
                                .await
                                .ok()
                                .and_then(|m| m["joined"].as_object().map(|o| o.len() as u64))
                                .unwrap_or(2);
                            members.insert(room.clone(), n);
                            n
                        }
                    };
                    let Some(message) = to_inbound(&account.id, &session.user_id, room, count, event) else {
                        continue;
                    };
                    let (recorded, done) = oneshot::channel();
                    if deliveries.send(Delivery { message, recorded: Some(recorded) }).await.is_err()
                        || done.await.is_err()
                    {
                        return;
                    }
                }
            }
        }
        if let Some(next) = batch["next_batch"].as_str() {
            since = Some(next.to_owned());
            let (id, cursor) = (account.id.clone(), next.to_owned());
            if let Err(e) =
                off_workers(account.state.clone(), move |s| s.set_cursor("matrix", &id, &cursor)).await
            {
                tracing::error!(channel = "matrix", account = %account.id, error = %e, "cannot keep the Matrix sync position");
            }
        }
    }
}

/// An `m.text` message as an inbound message. A room of two is a direct chat.
fn to_inbound(account: &str, me: &str, room: &str, members: u64, event: &Value) -> Option<Inbound> {
    let body = event["content"]["body"].as_str()?;
    let sender = event["sender"].as_str()?;
    let localpart = me.trim_start_matches('@').split(':').next().unwrap_or("");
    let mentioned = event["content"]["m.mentions"]["user_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|u| u.as_str() == Some(me))
        || body.to_lowercase().contains(&me.to_lowercase())
        || (!localpart.is_empty() && super::irc::line::mentions(body, localpart));
    let text = super::irc::line::strip_address(body, localpart).replace(me, "");
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let chat = if members <= 2 { Chat::Dm } else { Chat::Group(room.to_owned()) };
    Some(Inbound {
        channel: "matrix",
        account: account.to_owned(),
        message_id: event["event_id"].as_str()?.to_owned(),
        peer: sender.to_owned(),
        peer_mask: sender.to_owned(),
        display: sender.to_owned(),
        chat,
        text: text.to_owned(),
        mentioned,
        reply_target: Some(room.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_escaped_in_paths() {
        assert_eq!(segment("!room:example.org"), "%21room%3Aexample.org");
        assert_eq!(segment("@bot:ex"), "%40bot%3Aex");
    }

    #[test]
    fn a_room_of_two_is_direct_and_mentions_are_found() {
        let event = json!({"event_id": "$e1", "sender": "@alice:ex", "type": "m.room.message",
            "content": {"msgtype": "m.text", "body": "bot: hello"}});
        let dm = to_inbound("main", "@bot:ex", "!r:ex", 2, &event).unwrap();
        assert_eq!((dm.chat.clone(), dm.text.as_str(), dm.message_id.as_str()), (Chat::Dm, "hello", "$e1"));
        assert_eq!(dm.reply_to(), "!r:ex", "a reply goes to the room, direct or not");
        assert_eq!(dm.session_key(), "matrix:main:dm:@alice:ex");
        let group = to_inbound("main", "@bot:ex", "!r:ex", 5, &event).unwrap();
        assert!(group.mentioned);
        assert_eq!(group.reply_to(), "!r:ex");
    }

    #[test]
    fn invites_follow_the_policy() {
        let config = MatrixAccount { allow_from: vec!["@alice:*".into()], ..Default::default() };
        assert!(accept_invite(&config, "@stranger:ex", true), "pairing joins a DM to give the code");
        assert!(!accept_invite(&config, "@stranger:ex", false), "groups: allowlist");
        assert!(accept_invite(&config, "@alice:ex", false));
        let closed = MatrixAccount { dm_policy: DmPolicy::Disabled, ..config };
        assert!(!accept_invite(&closed, "@alice:ex", true));
    }
}
