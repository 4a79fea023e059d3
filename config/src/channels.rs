//! The `[channels]` section: the chat networks the assistant answers on, one table per account
//! (`[channels.irc.accounts.<id>]`), each with its own access policy. Checked whenever a config
//! is loaded, so a bad account is refused at start (or its reload rejected) with its key.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::schema::Port;
use crate::secret::SecretRef;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Channels {
    pub irc: IrcChannel,
    pub matrix: MatrixChannel,
    pub telegram: TelegramChannel,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MatrixChannel {
    /// Accounts by id (1-32 letters, digits, '-' or '_').
    pub accounts: BTreeMap<String, MatrixAccount>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MatrixAccount {
    pub enabled: bool,
    /// The homeserver's client-server API base, like "https://matrix.example.org".
    pub homeserver: String,
    /// The bot's full user id, like "@mybot:example.org".
    pub user_id: String,
    /// Log in with the password (a secret reference) ...
    pub password: Option<SecretRef>,
    /// ... or use an access token (a secret reference).
    pub access_token: Option<SecretRef>,
    /// The device name a password login shows in the account's session list.
    pub device_name: String,
    pub dm_policy: DmPolicy,
    /// Sender ids: full user ids ("@alice:example.org"), `*` and `?` allowed; `"*"` is everyone.
    pub allow_from: Vec<String>,
    pub group_policy: GroupPolicy,
    pub require_mention: bool,
    pub agent: Option<String>,
}

impl Default for MatrixAccount {
    fn default() -> Self {
        Self {
            enabled: true,
            homeserver: String::new(),
            user_id: String::new(),
            password: None,
            access_token: None,
            device_name: "gateway".into(),
            dm_policy: DmPolicy::default(),
            allow_from: Vec::new(),
            group_policy: GroupPolicy::default(),
            require_mention: true,
            agent: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TelegramChannel {
    /// Accounts (bots) by id (1-32 letters, digits, '-' or '_').
    pub accounts: BTreeMap<String, TelegramAccount>,
}

/// How a Telegram bot receives its messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TelegramMode {
    /// `getUpdates` long polling: works behind NAT, nothing to expose.
    #[default]
    Polling,
    /// Telegram calls `POST /channels/telegram/<id>` on this gateway's port.
    Webhook,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TelegramAccount {
    pub enabled: bool,
    /// The token @BotFather gave, as a secret reference.
    pub bot_token: Option<SecretRef>,
    pub mode: TelegramMode,
    /// The Bot API's address.
    pub base_url: String,
    /// Webhook mode: the public https URL Telegram posts to (it must reach this gateway's
    /// `/channels/telegram/<id>`, usually through a reverse proxy).
    pub webhook_url: Option<String>,
    /// Webhook mode: the secret Telegram sends in X-Telegram-Bot-Api-Secret-Token.
    pub webhook_secret: Option<SecretRef>,
    pub dm_policy: DmPolicy,
    /// Sender ids: a numeric user id or an @username; `"*"` is everyone.
    pub allow_from: Vec<String>,
    pub group_policy: GroupPolicy,
    pub require_mention: bool,
    pub agent: Option<String>,
}

impl Default for TelegramAccount {
    fn default() -> Self {
        Self {
            enabled: true,
            bot_token: None,
            mode: TelegramMode::default(),
            base_url: "https://api.telegram.org".into(),
            webhook_url: None,
            webhook_secret: None,
            dm_policy: DmPolicy::default(),
            allow_from: Vec::new(),
            group_policy: GroupPolicy::default(),
            require_mention: true,
            agent: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct IrcChannel {
    /// Accounts by id (1-32 letters, digits, '-' or '_').
    pub accounts: BTreeMap<String, IrcAccount>,
}

/// Who may talk to the assistant in direct messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DmPolicy {
    /// Unknown senders get a pairing code for the owner to approve.
    #[default]
    Pairing,
    /// Only senders in `allow_from` (and approved pairings).
    Allowlist,
    /// Anyone: must be spelled out with `"*"` in `allow_from`.
    Open,
    Disabled,
}

/// Who may talk to the assistant in groups (IRC channels).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GroupPolicy {
    /// Only senders in `allow_from` (and approved pairings).
    #[default]
    Allowlist,
    Open,
    Disabled,
}

impl DmPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pairing => "pairing",
            Self::Allowlist => "allowlist",
            Self::Open => "open",
            Self::Disabled => "disabled",
        }
    }
}

impl GroupPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowlist => "allowlist",
            Self::Open => "open",
            Self::Disabled => "disabled",
        }
    }
}

/// How an IRC account proves its nick.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum IrcAuth {
    /// SASL PLAIN (the nick and the password) during registration.
    #[default]
    Sasl,
    /// The server password (`PASS`).
    Server,
    /// `PRIVMSG NickServ :IDENTIFY <password>` after registration.
    Nickserv,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct IrcAccount {
    pub enabled: bool,
    pub host: String,
    /// Unset: 6697 with TLS, 6667 without.
    pub port: Option<Port>,
    pub tls: bool,
    /// A PEM file of CA certificates trusted besides the web's roots, for a server whose
    /// certificate a private CA signed (or a self-signed one, given as its own CA). Read at each
    /// connect, so a renewed file needs no restart.
    pub tls_ca: Option<std::path::PathBuf>,
    pub nick: String,
    /// Unset: the nick.
    pub username: Option<String>,
    pub realname: String,
    pub password: Option<SecretRef>,
    pub auth: IrcAuth,
    /// Channels to join, like "#mychan".
    pub channels: Vec<String>,
    pub dm_policy: DmPolicy,
    /// Sender ids: a nick, or a `nick!user@host` mask with `*` and `?`; `"*"` is everyone.
    pub allow_from: Vec<String>,
    pub group_policy: GroupPolicy,
    /// In channels, answer only when the message names the bot's nick.
    pub require_mention: bool,
    /// The agent that answers; unset: the default agent.
    pub agent: Option<String>,
}

impl Default for IrcAccount {
    fn default() -> Self {
        Self {
            enabled: true,
            host: String::new(),
            port: None,
            tls: true,
            tls_ca: None,
            nick: String::new(),
            username: None,
            realname: "gateway assistant".into(),
            password: None,
            auth: IrcAuth::default(),
            channels: Vec::new(),
            dm_policy: DmPolicy::default(),
            allow_from: Vec::new(),
            group_policy: GroupPolicy::default(),
            require_mention: true,
            agent: None,
        }
    }
}

impl IrcAccount {
    pub fn port(&self) -> u16 {
        self.port.map_or(if self.tls { 6697 } else { 6667 }, Port::port)
    }
}

/// The first problem with the channel accounts, as (key, message).
pub fn check(channels: &Channels, agents: &BTreeMap<String, crate::Agent>) -> Result<(), (String, String)> {
    for (id, account) in &channels.irc.accounts {
        let key = |leaf: &str| format!("channels.irc.accounts.{id}.{leaf}");
        check_id("irc", id)?;
        if account.host.trim().is_empty() {
            return Err((key("host"), "an IRC account needs host, like \"irc.libera.chat\"".into()));
        }
        let nick_ok = !account.nick.is_empty()
            && account.nick.len() <= 30
            && !account.nick.starts_with(|c: char| c.is_ascii_digit() || c == '-')
            && account.nick.chars().all(|c| c.is_ascii_alphanumeric() || "-_[]\\`^{}|".contains(c));
        if !nick_ok {
            return Err((
                key("nick"),
                format!(
                    "nick {:?}: 1-30 letters, digits or -_[]\\`^{{}}|, not starting with a digit or '-'",
                    account.nick
                ),
            ));
        }
        if let Some(bad) = account.channels.iter().find(|c| {
            !(c.starts_with('#') || c.starts_with('&'))
                || c.len() < 2
                || c.len() > 50
                || c.chars().any(|ch| ch.is_whitespace() || ch == ',' || ch.is_control())
        }) {
            return Err((
                key("channels"),
                format!("channel {bad:?}: an IRC channel starts with '#' or '&' and has no spaces or commas"),
            ));
        }
        if let Some(ca) = &account.tls_ca {
            if !account.tls {
                return Err((
                    key("tls_ca"),
                    "tls_ca applies to TLS: set tls = true or leave tls_ca out".into(),
                ));
            }
            if !ca.is_absolute() {
                return Err((
                    key("tls_ca"),
                    format!("tls_ca {:?}: give an absolute path to a PEM file", ca.display().to_string()),
                ));
            }
        }
        if account.password.is_none() && account.auth != IrcAuth::Sasl {
            return Err((
                key("auth"),
                format!("auth = \"{:?}\" needs password", account.auth).to_lowercase(),
            ));
        }
        check_policy(&key, account.dm_policy, &account.allow_from)?;
        check_agent(&key, account.agent.as_deref(), agents)?;
    }
    for (id, account) in &channels.matrix.accounts {
        let key = |leaf: &str| format!("channels.matrix.accounts.{id}.{leaf}");
        check_id("matrix", id)?;
        if !(account.homeserver.starts_with("https://") || account.homeserver.starts_with("http://")) {
            return Err((
                key("homeserver"),
                format!(
                    "homeserver {:?}: give the client API's URL, like \"https://matrix.example.org\"",
                    account.homeserver
                ),
            ));
        }
        let user_ok = account.user_id.starts_with('@')
            && account.user_id.split_once(':').is_some_and(|(l, s)| l.len() > 1 && !s.is_empty());
        if !user_ok {
            return Err((
                key("user_id"),
                format!("user_id {:?}: a full user id, like \"@mybot:example.org\"", account.user_id),
            ));
        }
        match (&account.password, &account.access_token) {
            (None, None) => {
                return Err((
                    key("password"),
                    "a Matrix account needs password or access_token (a secret reference)".into(),
                ))
            }
            (Some(_), Some(_)) => {
                return Err((key("access_token"), "give password or access_token, not both".into()))
            }
            _ => {}
        }
        check_policy(&key, account.dm_policy, &account.allow_from)?;
        check_agent(&key, account.agent.as_deref(), agents)?;
    }
    for (id, account) in &channels.telegram.accounts {
        let key = |leaf: &str| format!("channels.telegram.accounts.{id}.{leaf}");
        check_id("telegram", id)?;
        if account.bot_token.is_none() {
            return Err((
                key("bot_token"),
                "a Telegram account needs bot_token (from @BotFather), as a secret reference like \"env:TELEGRAM_BOT_TOKEN\"".into(),
            ));
        }
        if !(account.base_url.starts_with("https://") || account.base_url.starts_with("http://")) {
            return Err((key("base_url"), format!("base_url {:?} is not an http(s) URL", account.base_url)));
        }
        if account.mode == TelegramMode::Webhook {
            if !account
                .webhook_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://") || u.starts_with("http://"))
            {
                return Err((
                    key("webhook_url"),
                    "mode = \"webhook\" needs webhook_url: the public URL that reaches /channels/telegram/<id> on this gateway".into(),
                ));
            }
            if account.webhook_secret.is_none() {
                return Err((
                    key("webhook_secret"),
                    "mode = \"webhook\" needs webhook_secret (a secret reference): Telegram sends it with every update".into(),
                ));
            }
        }
        check_policy(&key, account.dm_policy, &account.allow_from)?;
        check_agent(&key, account.agent.as_deref(), agents)?;
    }
    Ok(())
}

fn check_id(kind: &str, id: &str) -> Result<(), (String, String)> {
    let ok = !id.is_empty()
        && id.len() <= 32
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err((
            format!("channels.{kind}.accounts.{id}"),
            format!("account id {id:?}: use 1-32 letters, digits, '-' or '_'"),
        ))
    }
}

fn check_agent(
    key: &dyn Fn(&str) -> String,
    agent: Option<&str>,
    agents: &BTreeMap<String, crate::Agent>,
) -> Result<(), (String, String)> {
    match agent {
        Some(agent) if agent != crate::DEFAULT_AGENT && !agents.contains_key(agent) => {
            Err((key("agent"), format!("no agent {agent:?}: add [agents.{agent}] or leave agent out")))
        }
        _ => Ok(()),
    }
}

/// `open` must be meant: it needs `"*"` in `allow_from`.
fn check_policy(
    key: &dyn Fn(&str) -> String,
    dm: DmPolicy,
    allow_from: &[String],
) -> Result<(), (String, String)> {
    if dm == DmPolicy::Open && !allow_from.iter().any(|a| a == "*") {
        return Err((
            key("dm_policy"),
            "dm_policy = \"open\" lets anyone talk to the assistant: say so with allow_from = [\"*\"], or use \"pairing\"".into(),
        ));
    }
    if let Some(empty) = allow_from.iter().find(|a| a.trim().is_empty()) {
        return Err((key("allow_from"), format!("an empty sender id {empty:?}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(account: IrcAccount) -> Channels {
        let mut c = Channels::default();
        c.irc.accounts.insert("main".into(), account);
        c
    }

    fn valid() -> IrcAccount {
        IrcAccount { host: "irc.example".into(), nick: "bot".into(), ..Default::default() }
    }

    #[test]
    fn a_plain_account_passes_and_defaults_to_pairing_and_tls() {
        assert_eq!(check(&with(valid()), &BTreeMap::new()), Ok(()));
        assert_eq!((valid().dm_policy, valid().port()), (DmPolicy::Pairing, 6697));
    }

    #[test]
    fn open_without_a_star_is_refused_by_its_key() {
        let account = IrcAccount { dm_policy: DmPolicy::Open, ..valid() };
        let (key, message) = check(&with(account), &BTreeMap::new()).unwrap_err();
        assert_eq!(key, "channels.irc.accounts.main.dm_policy");
        assert!(message.contains("allow_from = [\"*\"]"), "{message}");
        let open = IrcAccount { dm_policy: DmPolicy::Open, allow_from: vec!["*".into()], ..valid() };
        assert_eq!(check(&with(open), &BTreeMap::new()), Ok(()));
    }

    #[test]
    fn bad_nicks_channels_and_agents_are_named() {
        let cases = [
            (IrcAccount { nick: "9lives".into(), ..valid() }, "nick"),
            (IrcAccount { channels: vec!["nohash".into()], ..valid() }, "channels"),
            (IrcAccount { host: " ".into(), ..valid() }, "host"),
            (IrcAccount { agent: Some("ghost".into()), ..valid() }, "agent"),
            (IrcAccount { auth: IrcAuth::Nickserv, ..valid() }, "auth"),
            (IrcAccount { tls: false, tls_ca: Some("/ca.pem".into()), ..valid() }, "tls_ca"),
            (IrcAccount { tls_ca: Some("ca.pem".into()), ..valid() }, "tls_ca"),
        ];
        for (account, leaf) in cases {
            let (key, _) = check(&with(account), &BTreeMap::new()).unwrap_err();
            assert_eq!(key, format!("channels.irc.accounts.main.{leaf}"));
        }
    }
}
