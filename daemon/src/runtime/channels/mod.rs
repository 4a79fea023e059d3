//! Chat channels: the assistant on chat networks. What every channel shares lives here: the
//! accounts and their supervised connection tasks (started, stopped and restarted by `configure`
//! on every config in effect, one account at a time, the others untouched), the normalized
//! inbound message, the status of each account, pairing, and probing. The networks themselves
//! are modules (`irc`, `matrix`, `telegram`) built on `lifecycle` (set-up retries, backoff, the
//! account's status); what happens to an accepted message is `dispatch`.

pub mod chunk;
mod dispatch;
pub mod irc;
mod lifecycle;
pub mod matrix;
pub mod policy;
pub mod state;
pub mod telegram;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use gateway_config::{Config, IrcAccount, MatrixAccount, TelegramAccount, TelegramMode};
use gateway_proto::time::now_ms;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, watch};

use crate::core::store::{Store, StoreError};
use crate::runtime::agent::Agents;
use state::{ChannelState, PairingRequest};

/// The channels this gateway knows, in the order status lists them, with their labels.
pub const KINDS: &[(&str, &str)] = &[("irc", "IRC"), ("matrix", "Matrix"), ("telegram", "Telegram")];

/// Where a message was said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chat {
    Dm,
    /// A group, by its name on the network (an IRC channel).
    Group(String),
}

/// A message from a network, in the same shape whatever the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    pub channel: &'static str,
    pub account: String,
    /// The network's id for the message (or one we made, where the network has none).
    pub message_id: String,
    /// The sender's id (IRC: the nick).
    pub peer: String,
    /// The sender's full address where the network has one (IRC: `nick!user@host`).
    pub peer_mask: String,
    pub display: String,
    pub chat: Chat,
    /// The text, with an address to the bot (`bot: `) removed.
    pub text: String,
    /// The message names the bot.
    pub mentioned: bool,
    /// Where replies go when that is not the sender (a DM) or the group (Matrix: the room).
    pub reply_target: Option<String>,
}

impl Inbound {
    /// The sender as allowlists and pairings store it (IRC nicks are case-insensitive).
    pub fn peer_key(&self) -> String {
        self.peer.to_lowercase()
    }

    /// The conversation this message belongs to: one session per direct-message peer and per
    /// group, `<channel>:<account>:dm:<peer>` or `<channel>:<account>:group:<group>`.
    pub fn session_key(&self) -> String {
        match &self.chat {
            Chat::Dm => format!("{}:{}:dm:{}", self.channel, self.account, self.peer_key()),
            Chat::Group(g) => format!("{}:{}:group:{}", self.channel, self.account, g.to_lowercase()),
        }
    }

    /// Where the answer goes: the sender for a direct message, else the group.
    pub fn reply_to(&self) -> String {
        if let Some(target) = &self.reply_target {
            return target.clone();
        }
        match &self.chat {
            Chat::Dm => self.peer.clone(),
            Chat::Group(g) => g.clone(),
        }
    }
}

/// A message for the network: the text (cut to size by the network's task) to a target; or,
/// with `typing`, the network's "typing..." indicator where it has one.
pub struct Outgoing {
    pub to: String,
    pub text: String,
    pub typing: bool,
    pub sent: oneshot::Sender<Result<(), String>>,
}

/// What one account's task reports about itself.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountStatus {
    pub account_id: String,
    pub name: String,
    pub enabled: bool,
    pub configured: bool,
    pub running: bool,
    pub connected: bool,
    pub last_error: Option<String>,
    pub reconnect_attempts: u32,
    pub last_connected_at: Option<u64>,
    pub last_inbound_at: Option<u64>,
    pub last_outbound_at: Option<u64>,
    /// Replies recorded and not yet sent (the network was unreachable).
    pub pending_replies: u32,
    pub probe: Option<ProbeResult>,
    pub last_probe_at: Option<u64>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ProbeResult {
    pub ok: bool,
    pub error: Option<String>,
    pub elapsed_ms: u64,
}

pub type SharedStatus = Arc<Mutex<AccountStatus>>;

pub fn update(status: &SharedStatus, f: impl FnOnce(&mut AccountStatus)) {
    f(&mut status.lock().unwrap_or_else(|e| e.into_inner()));
}

/// An account's settings and the secrets they resolved to: a change of any restarts it.
#[derive(Clone, PartialEq)]
enum Settings {
    Irc { account: IrcAccount, password: Option<String> },
    Matrix { account: MatrixAccount, password: Option<String>, access_token: Option<String> },
    Telegram { account: TelegramAccount, token: String, secret: Option<String> },
}

impl Settings {
    fn policy(&self) -> policy::Policy {
        let (dm, allow_from, group, require_mention) = match self {
            Self::Irc { account: a, .. } => (a.dm_policy, &a.allow_from, a.group_policy, a.require_mention),
            Self::Matrix { account: a, .. } => {
                (a.dm_policy, &a.allow_from, a.group_policy, a.require_mention)
            }
            Self::Telegram { account: a, .. } => {
                (a.dm_policy, &a.allow_from, a.group_policy, a.require_mention)
            }
        };
        policy::Policy { dm, allow_from: allow_from.clone(), group, require_mention }
    }

    fn agent(&self) -> Option<String> {
        match self {
            Self::Irc { account, .. } => account.agent.clone(),
            Self::Matrix { account, .. } => account.agent.clone(),
            Self::Telegram { account, .. } => account.agent.clone(),
        }
    }
}

/// The accounts `config` wants running, by (channel, id).
fn wanted(config: &Config) -> BTreeMap<(&'static str, String), Settings> {
    let resolve = |s: &Option<gateway_config::SecretRef>| s.as_ref().and_then(|s| s.resolve().ok());
    let irc = config.channels.irc.accounts.iter().filter(|(_, a)| a.enabled).map(|(id, a)| {
        (("irc", id.clone()), Settings::Irc { account: a.clone(), password: resolve(&a.password) })
    });
    let telegram =
        config.channels.telegram.accounts.iter().filter(|(_, a)| a.enabled).filter_map(|(id, a)| {
            let token = resolve(&a.bot_token)?;
            let settings =
                Settings::Telegram { account: a.clone(), token, secret: resolve(&a.webhook_secret) };
            Some((("telegram", id.clone()), settings))
        });
    let matrix = config.channels.matrix.accounts.iter().filter(|(_, a)| a.enabled).map(|(id, a)| {
        let settings = Settings::Matrix {
            account: a.clone(),
            password: resolve(&a.password),
            access_token: resolve(&a.access_token),
        };
        (("matrix", id.clone()), settings)
    });
    irc.chain(matrix).chain(telegram).collect()
}

/// A message from an account's task, and (when the network needs to know) a way to say it is
/// recorded: Telegram's offset, or a webhook's answer, waits for it.
pub struct Delivery {
    pub message: Inbound,
    pub recorded: Option<oneshot::Sender<()>>,
}

/// A Telegram webhook's way into its account: the secret, and the account's update queue.
pub type WebhookQueue = mpsc::Sender<(Value, oneshot::Sender<()>)>;

struct Running {
    settings: Settings,
    status: SharedStatus,
    stop: watch::Sender<bool>,
    /// Becomes true when the account's tasks have ended (its connection closed).
    ended: watch::Receiver<bool>,
    webhook: Option<(String, WebhookQueue)>,
    /// What the account says on the network (its dispatcher's replies, scheduled announcements).
    outgoing: mpsc::Sender<Outgoing>,
}

/// Why a webhook call was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum WebhookRefusal {
    /// No running account of that kind and id takes webhooks.
    NotFound,
    Unauthorized,
    /// The account did not take the update in time: the network will send it again.
    Busy,
}

#[derive(Clone)]
pub struct Channels {
    inner: Arc<Inner>,
}

struct Inner {
    agents: Agents,
    state: ChannelState,
    accounts: Mutex<BTreeMap<(&'static str, String), Running>>,
}

impl Channels {
    pub fn new(store: Arc<Store>, agents: Agents) -> Self {
        let inner = Inner { agents, state: ChannelState::new(store), accounts: Mutex::new(BTreeMap::new()) };
        Self { inner: Arc::new(inner) }
    }

    pub fn state(&self) -> &ChannelState {
        &self.inner.state
    }

    /// Brings the running accounts in line with `config`: new ones start, removed or disabled
    /// ones stop, changed ones restart; the others keep their connections. Call inside the runtime.
    pub fn configure(&self, config: &Config) {
        let mut accounts = self.inner.accounts.lock().unwrap_or_else(|e| e.into_inner());
        let wanted = wanted(config);
        // A restarted account waits for its old connection to end: the network frees its name.
        let mut ending: BTreeMap<(&'static str, String), watch::Receiver<bool>> = BTreeMap::new();
        accounts.retain(|key, running| {
            let keep = wanted.get(key) == Some(&running.settings);
            if !keep {
                let _ = running.stop.send(true);
                ending.insert(key.clone(), running.ended.clone());
                tracing::info!(channel = key.0, account = %key.1, "channel account stopped");
            }
            keep
        });
        for (key, settings) in wanted {
            if accounts.contains_key(&key) {
                continue;
            }
            let running = self.start(key.0, &key.1, settings, ending.remove(&key));
            tracing::info!(channel = key.0, account = %key.1, "channel account started");
            accounts.insert(key, running);
        }
    }

    fn start(
        &self,
        channel: &'static str,
        id: &str,
        settings: Settings,
        previous: Option<watch::Receiver<bool>>,
    ) -> Running {
        let name = match &settings {
            Settings::Irc { account, .. } => account.nick.clone(),
            Settings::Matrix { account, .. } => account.user_id.clone(),
            Settings::Telegram { .. } => String::new(),
        };
        let status: SharedStatus = Arc::new(Mutex::new(AccountStatus {
            account_id: id.to_owned(),
            name,
            enabled: true,
            configured: true,
            running: true,
            ..Default::default()
        }));
        let (stop, stopped) = watch::channel(false);
        let (outgoing_tx, outgoing_rx) = mpsc::channel::<Outgoing>(64);
        let (deliveries_tx, deliveries_rx) = mpsc::channel::<Delivery>(256);
        let mut webhook = None;
        let connection: tokio::task::JoinHandle<()>;
        match &settings {
            Settings::Irc { account, password } => {
                let account = irc::Account {
                    id: id.to_owned(),
                    config: account.clone(),
                    password: password.clone(),
                    status: status.clone(),
                };
                connection = tokio::spawn(after(
                    previous.clone(),
                    irc::run(account, deliveries_tx, outgoing_rx, stopped.clone()),
                ));
            }
            Settings::Matrix { account, password, access_token } => {
                let account = matrix::Account {
                    id: id.to_owned(),
                    config: account.clone(),
                    password: password.clone(),
                    access_token: access_token.clone(),
                    status: status.clone(),
                    state: self.inner.state.clone(),
                };
                connection = tokio::spawn(after(
                    previous.clone(),
                    matrix::run(account, deliveries_tx, outgoing_rx, stopped.clone()),
                ));
            }
            Settings::Telegram { account, token, secret } => {
                let (updates_tx, updates_rx) = mpsc::channel(64);
                if account.mode == TelegramMode::Webhook {
                    webhook = secret.clone().map(|s| (s, updates_tx));
                }
                let bot = telegram::Bot {
                    id: id.to_owned(),
                    config: account.clone(),
                    token: token.clone(),
                    secret: secret.clone(),
                    status: status.clone(),
                    state: self.inner.state.clone(),
                };
                connection = tokio::spawn(after(
                    previous.clone(),
                    telegram::run(bot, deliveries_tx, outgoing_rx, updates_rx, stopped.clone()),
                ));
            }
        }
        let dispatcher = dispatch::Dispatcher {
            channel,
            account: id.to_owned(),
            agent: settings.agent(),
            policy: settings.policy(),
            agents: self.inner.agents.clone(),
            state: self.inner.state.clone(),
            status: status.clone(),
            outgoing: outgoing_tx.clone(),
        };
        let dispatching = tokio::spawn(after(previous, dispatcher.run(deliveries_rx, stopped)));
        let (ended_tx, ended) = watch::channel(false);
        tokio::spawn(async move {
            let _ = connection.await;
            let _ = dispatching.await;
            let _ = ended_tx.send(true);
        });
        Running { settings, status, stop, ended, webhook, outgoing: outgoing_tx }
    }

    /// Says `text` to `to` (a peer or a room) on a running account of `channel`: the one named,
    /// or the only one. Resolves once the network took it.
    pub async fn announce(
        &self,
        channel: &str,
        account: Option<&str>,
        to: &str,
        text: &str,
    ) -> Result<(), String> {
        let outgoing = {
            let accounts = self.inner.accounts.lock().unwrap_or_else(|e| e.into_inner());
            let mut of_kind = accounts.iter().filter(|((kind, _), _)| *kind == channel);
            let found = match account {
                Some(id) => of_kind.find(|((_, a), _)| a == id),
                None => {
                    let first = of_kind.next();
                    if of_kind.next().is_some() {
                        return Err(format!(
                            "{channel} has several accounts: name one (deliver = \"{channel}/<account>:{to}\")"
                        ));
                    }
                    first
                }
            };
            let Some((_, running)) = found else {
                return Err(format!(
                    "no running {channel} account{}: configure and enable it under [channels.{channel}.accounts]",
                    account.map(|a| format!(" {a}")).unwrap_or_default()
                ));
            };
            running.outgoing.clone()
        };
        let (sent, done) = oneshot::channel();
        let message = Outgoing { to: to.to_owned(), text: text.to_owned(), typing: false, sent };
        let stopped = || format!("the {channel} account's connection has stopped");
        outgoing.send(message).await.map_err(|_| stopped())?;
        done.await.map_err(|_| stopped())?
    }

    /// An update a network posted to this gateway (`POST /channels/<kind>/<id>`): checked against
    /// the account's secret, handed to the account, answered once it is recorded.
    pub async fn webhook(
        &self,
        channel: &str,
        id: &str,
        secret: Option<&str>,
        update: Value,
    ) -> Result<(), WebhookRefusal> {
        let queue = {
            let accounts = self.inner.accounts.lock().unwrap_or_else(|e| e.into_inner());
            let running = accounts.iter().find(|((c, i), _)| *c == channel && i == id).map(|(_, r)| r);
            let Some((expected, queue)) = running.and_then(|r| r.webhook.clone()) else {
                return Err(WebhookRefusal::NotFound);
            };
            if !secret.is_some_and(|s| crate::core::secrets::tokens_equal(s, &expected)) {
                return Err(WebhookRefusal::Unauthorized);
            }
            queue
        };
        let (recorded, done) = oneshot::channel();
        queue.send((update, recorded)).await.map_err(|_| WebhookRefusal::Busy)?;
        tokio::time::timeout(std::time::Duration::from_secs(10), done)
            .await
            .map_err(|_| WebhookRefusal::Busy)?
            .map_err(|_| WebhookRefusal::Busy)
    }

    /// Every configured account's status (disabled ones too), by channel.
    pub fn accounts(&self, config: &Config) -> BTreeMap<&'static str, Vec<AccountStatus>> {
        let running = self.inner.accounts.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: BTreeMap<&'static str, Vec<AccountStatus>> = BTreeMap::new();
        let irc = config.channels.irc.accounts.iter().map(|(id, a)| ("irc", id, a.enabled, a.nick.clone()));
        let matrix = config
            .channels
            .matrix
            .accounts
            .iter()
            .map(|(id, a)| ("matrix", id, a.enabled, a.user_id.clone()));
        let telegram = config
            .channels
            .telegram
            .accounts
            .iter()
            .map(|(id, a)| ("telegram", id, a.enabled, String::new()));
        let configured = irc.chain(matrix).chain(telegram);
        for (channel, id, enabled, name) in configured {
            let status = match running.get(&(channel, id.clone())) {
                Some(r) => r.status.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                None => AccountStatus {
                    account_id: id.clone(),
                    name,
                    enabled,
                    configured: true,
                    last_error: enabled
                        .then(|| "its secret does not resolve: gatewayctl secrets audit".to_owned()),
                    ..Default::default()
                },
            };
            out.entry(channel).or_default().push(status);
        }
        out
    }

    /// Checks each enabled account's credentials and connectivity with a connection of its own,
    /// all at once; the results are kept in the accounts' status.
    pub async fn probe(&self, config: &Config) {
        let mut probes = tokio::task::JoinSet::new();
        for ((channel, id), settings) in wanted(config) {
            let status = self.status_of(channel, &id);
            probes.spawn(async move {
                let started = std::time::Instant::now();
                let outcome = match &settings {
                    Settings::Irc { account, password } => irc::probe(account, password.as_deref()).await,
                    Settings::Matrix { account, password, access_token } => {
                        matrix::probe(account, password.as_deref(), access_token.as_deref()).await
                    }
                    Settings::Telegram { account, token, .. } => telegram::probe(account, token).await,
                };
                let result = ProbeResult {
                    ok: outcome.is_ok(),
                    error: outcome.err(),
                    elapsed_ms: started.elapsed().as_millis() as u64,
                };
                if let Some(status) = status {
                    update(&status, |s| {
                        s.probe = Some(result);
                        s.last_probe_at = Some(now_ms());
                    });
                }
            });
        }
        while probes.join_next().await.is_some() {}
    }

    fn status_of(&self, channel: &'static str, id: &str) -> Option<SharedStatus> {
        let running = self.inner.accounts.lock().unwrap_or_else(|e| e.into_inner());
        running.get(&(channel, id.to_owned())).map(|r| r.status.clone())
    }

    pub fn pairings(&self) -> Result<Vec<PairingRequest>, StoreError> {
        self.inner.state.pairings()
    }

    /// Approves or rejects a pairing code; the request it was, or None for an unknown code.
    pub fn settle_pairing(
        &self,
        channel: &str,
        code: &str,
        approve: bool,
    ) -> Result<Option<PairingRequest>, StoreError> {
        let settled = self.inner.state.settle(channel, code, approve)?;
        if let Some(request) = &settled {
            let verb = if approve { "approved" } else { "rejected" };
            tracing::info!(channel, account = %request.account, peer = %request.peer, "channel pairing {verb}");
        }
        Ok(settled)
    }
}

/// Runs `task` once the account's previous incarnation (if any) has ended, waiting at most 10 s.
async fn after(previous: Option<watch::Receiver<bool>>, task: impl std::future::Future<Output = ()>) {
    if let Some(mut previous) = previous {
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(10), previous.wait_for(|ended| *ended)).await;
    }
    task.await
}

/// The `channels.status` answer, in the shape OpenClaw's clients read.
pub fn status_report(accounts: &BTreeMap<&'static str, Vec<AccountStatus>>) -> Value {
    let mut channels = serde_json::Map::new();
    let mut channel_accounts = serde_json::Map::new();
    let mut defaults = serde_json::Map::new();
    let mut order = Vec::new();
    let mut labels = serde_json::Map::new();
    for (kind, label) in KINDS {
        let list = accounts.get(kind).cloned().unwrap_or_default();
        order.push(*kind);
        labels.insert((*kind).into(), (*label).into());
        channels.insert(
            (*kind).into(),
            json!({
                "configured": !list.is_empty(),
                "running": list.iter().any(|a| a.running),
                "connected": list.iter().any(|a| a.connected),
                "accountCount": list.len(),
            }),
        );
        if let Some(first) = list.first() {
            defaults.insert((*kind).into(), first.account_id.clone().into());
        }
        channel_accounts.insert((*kind).into(), serde_json::to_value(&list).expect("plain JSON"));
    }
    json!({
        "ts": now_ms(),
        "channelOrder": order,
        "channelLabels": labels,
        "channels": channels,
        "channelAccounts": channel_accounts,
        "channelDefaultAccountId": defaults,
    })
}
