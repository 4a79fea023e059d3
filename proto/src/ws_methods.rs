//! The methods of the WebSocket protocol as types: one table gives each method its wire name and
//! the scope it needs, and `hello-ok` advertises exactly that table. The daemon dispatches on
//! [`Method`] with an exhaustive `match`, so a method in the table without a handler does not
//! compile. Params are typed here, with the wire's camelCase names and aliases; so are the
//! results whose shape is the gateway's own (runs and conversations answer with stored records).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::ws::{code, ErrorShape};

/// What a method needs of the connection's scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Any authenticated connection, even one without scopes.
    Nothing,
    /// operator.read (or write, or admin).
    Read,
    /// Runs and session changes: operator.write (or admin).
    Write,
    /// Device pairing: operator.pairing (or admin).
    Pairing,
    /// operator.admin.
    Admin,
}

macro_rules! methods {
    ($( $variant:ident = $name:literal, $need:ident; )*) => {
        /// A method of the protocol.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Method {
            $( $variant, )*
        }

        impl Method {
            /// Every method, in the order `hello-ok` lists them.
            pub const ALL: &'static [Method] = &[ $( Method::$variant, )* ];

            /// The name on the wire.
            pub fn name(self) -> &'static str {
                match self {
                    $( Method::$variant => $name, )*
                }
            }

            /// The scope the method needs.
            pub fn need(self) -> Need {
                match self {
                    $( Method::$variant => Need::$need, )*
                }
            }
        }
    };
}

methods! {
    Health = "health", Nothing;
    Status = "status", Read;
    SystemPresence = "system-presence", Read;
    LastHeartbeat = "last-heartbeat", Read;
    LogsTail = "logs.tail", Read;
    ModelsList = "models.list", Read;
    AgentsList = "agents.list", Read;
    ToolsCatalog = "tools.catalog", Read;
    ChatSend = "chat.send", Write;
    ChatHistory = "chat.history", Read;
    ChatAbort = "chat.abort", Write;
    Agent = "agent", Write;
    AgentWait = "agent.wait", Read;
    SessionsList = "sessions.list", Read;
    SessionsSubscribe = "sessions.subscribe", Read;
    SessionsUnsubscribe = "sessions.unsubscribe", Read;
    SessionsPreview = "sessions.preview", Read;
    SessionsCreate = "sessions.create", Write;
    SessionsReset = "sessions.reset", Write;
    SessionsDelete = "sessions.delete", Write;
    MemoryList = "memory.list", Read;
    MemoryPut = "memory.put", Write;
    MemoryDelete = "memory.delete", Write;
    ToolsInvoke = "tools.invoke", Write;
    ChannelsStatus = "channels.status", Read;
    ChannelsPairingList = "channels.pairing.list", Pairing;
    ChannelsPairingApprove = "channels.pairing.approve", Pairing;
    ChannelsPairingReject = "channels.pairing.reject", Pairing;
    DevicePairList = "device.pair.list", Pairing;
    DevicePairApprove = "device.pair.approve", Pairing;
    DevicePairReject = "device.pair.reject", Pairing;
    DevicePairRemove = "device.pair.remove", Pairing;
    ConfigGet = "config.get", Read;
    ConfigSchema = "config.schema", Read;
    ConfigPatch = "config.patch", Admin;
    ConfigApply = "config.apply", Admin;
    SecretsReload = "secrets.reload", Admin;
    CronList = "cron.list", Read;
    CronStatus = "cron.status", Read;
    CronAdd = "cron.add", Admin;
    CronUpdate = "cron.update", Admin;
    CronRemove = "cron.remove", Admin;
    CronRun = "cron.run", Admin;
    CronRuns = "cron.runs", Read;
}

impl Method {
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|m| m.name() == name)
    }

    /// The names `hello-ok.features.methods` lists.
    pub fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|m| m.name()).collect()
    }
}

/// What the server supports beyond its method list (`hello-ok.features.capabilities`), in the
/// reference's names; clients check them before calling. `published-model-catalog`: `models.list`
/// takes `view`, `provider`, `agentId`, `includeDetails` and `refresh`.
pub const CAPABILITIES: &[&str] = &["published-model-catalog"];

/// Events a client may receive (`hello-ok.features.events`).
pub const EVENTS: &[&str] = &[
    "connect.challenge",
    "tick",
    "heartbeat",
    "presence",
    "health",
    "shutdown",
    "config.changed",
    "chat",
    "agent",
    "sessions.changed",
];

/// A method's params: absent (`null`) params are an empty object, so a missing field is named;
/// params of the wrong shape are the client's error, named as such.
pub fn parse_params<T: DeserializeOwned>(params: Value) -> Result<T, ErrorShape> {
    let params = if params.is_null() { json!({}) } else { params };
    serde_json::from_value(params)
        .map_err(|e| ErrorShape::new(code::INVALID_REQUEST, format!("invalid params: {e}")))
}

/// `models.list`: the published catalog view. `provider` keeps one provider's models; `view`
/// (`default` or `all`), `agentId`, `includeDetails` and `refresh` are accepted and change nothing
/// here: every configured model is in the catalog, with its details, and there is nothing to
/// discover.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ModelsListParams {
    pub provider: Option<String>,
    pub view: Option<String>,
    pub agent_id: Option<String>,
    pub include_details: Option<bool>,
    pub refresh: Option<bool>,
}

/// `logs.tail`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LogsTailParams {
    pub cursor: Option<u64>,
    pub limit: Option<usize>,
    pub max_bytes: Option<u64>,
}

/// What a run takes besides its message, in `chat.send` and `agent`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunOptions {
    #[serde(alias = "agent")]
    pub agent_id: Option<String>,
    /// A model other than the agent's.
    pub model: Option<String>,
    /// Instructions added to the agent's system prompt for this run.
    #[serde(alias = "extraSystemPrompt")]
    pub instructions: Option<String>,
}

/// `chat.send`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatSendParams {
    pub session_key: String,
    pub message: String,
    pub idempotency_key: Option<String>,
    #[serde(flatten)]
    pub run: RunOptions,
}

/// `chat.send`: the run, new or joined (the same idempotency key).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatSendResult {
    pub run_id: String,
    /// `started`, or `in_flight` for a run this idempotency key started before.
    pub status: String,
}

/// `chat.history`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatHistoryParams {
    #[serde(alias = "key")]
    pub session_key: String,
    pub limit: Option<usize>,
}

/// `chat.abort`: one run, or every run of a session.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatAbortParams {
    #[serde(alias = "key")]
    pub session_key: Option<String>,
    pub run_id: Option<String>,
}

/// `chat.abort`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatAbortResult {
    pub ok: bool,
    pub aborted: bool,
    pub run_ids: Vec<String>,
}

/// `agent`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentParams {
    pub message: String,
    pub idempotency_key: String,
    pub session_key: Option<String>,
    #[serde(flatten)]
    pub run: RunOptions,
}

/// `device.pair.approve`, `device.pair.reject`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PairRequestParams {
    pub request_id: String,
}

/// `device.pair.remove`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PairRemoveParams {
    pub device_id: String,
}

/// `agent.wait`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentWaitParams {
    pub run_id: String,
    pub timeout_ms: Option<u64>,
}

/// `sessions.list`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SessionsListParams {
    pub limit: Option<usize>,
}

/// `sessions.create`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SessionsCreateParams {
    #[serde(alias = "sessionKey")]
    pub key: Option<String>,
    #[serde(alias = "agent")]
    pub agent_id: Option<String>,
    pub label: Option<String>,
}

/// `sessions.create`: `created` is false when the session existed already.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionsCreateResult {
    pub key: String,
    pub created: bool,
}

/// `sessions.preview`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionsPreviewParams {
    pub keys: Vec<String>,
    pub limit: Option<usize>,
}

/// `sessions.reset` and `sessions.delete`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionKeyParams {
    #[serde(alias = "sessionKey")]
    pub key: String,
}

/// `channels.status`: `probe` checks each account first.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ChannelsStatusParams {
    pub probe: bool,
    /// Accepted for the reference's clients; each probe has its own 20 s limit.
    pub timeout_ms: Option<u64>,
}

/// `channels.pairing.approve` and `channels.pairing.reject`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelPairingParams {
    pub channel: String,
    pub code: String,
}

/// `memory.list`: a session's memory notes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryListParams {
    #[serde(alias = "key")]
    pub session_key: String,
}

/// `memory.put` (creates or replaces a note; the session is created if missing) and
/// `memory.delete` (`value` unused).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryNoteParams {
    #[serde(alias = "key")]
    pub session_key: String,
    pub name: String,
    #[serde(default)]
    pub value: Option<String>,
}

/// `tools.invoke`: calls a tool directly, as `POST /tools/invoke` does; `dryRun` only checks
/// that the call would be allowed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ToolsInvokeParams {
    pub tool: String,
    pub args: Value,
    pub session_key: Option<String>,
    pub dry_run: bool,
}

/// `config.apply` (`raw` is the whole file, TOML, or a JSON object) and `config.patch` (`raw` is
/// a JSON merge patch over the file's current contents); `baseHash` is the hash `config.get`
/// gave, so a write over someone else's edit is refused.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ConfigWriteParams {
    pub raw: String,
    pub base_hash: Option<String>,
}

/// `health` (and the `health` event, and `hello-ok`'s snapshot).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthResult {
    pub ok: bool,
    pub ts: u64,
    /// How long the checks took, in the `health` method's answer (clients show it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    pub uptime_ms: u64,
    pub checks: Vec<crate::api::HealthCheck>,
}

/// `last-heartbeat`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastHeartbeatResult {
    pub ts: Option<u64>,
    pub age_ms: Option<u64>,
    pub ticks: u64,
    pub interval_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_has_one_name_and_is_found_by_it() {
        let mut names = Method::names();
        for m in Method::ALL {
            assert_eq!(Method::from_name(m.name()), Some(*m));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Method::ALL.len(), "a name is given twice");
        assert_eq!(Method::from_name("connect"), None);
    }

    #[test]
    fn params_name_what_is_missing_and_take_the_aliases() {
        let e = parse_params::<ChatSendParams>(Value::Null).unwrap_err();
        assert!(e.message.contains("missing field `sessionKey`"), "{}", e.message);
        let p: ChatSendParams = parse_params(
            json!({ "sessionKey": "s", "message": "m", "agent": "a", "extraSystemPrompt": "x" }),
        )
        .unwrap();
        assert_eq!((p.run.agent_id.as_deref(), p.run.instructions.as_deref()), (Some("a"), Some("x")));
        let p: ChatAbortParams = parse_params(json!({ "key": "main" })).unwrap();
        assert_eq!(p.session_key.as_deref(), Some("main"));
        let p: ConfigWriteParams = parse_params(Value::Null).unwrap();
        assert!(p.raw.is_empty());
    }
}

/// `cron.list`: every job, or only the enabled ones.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CronListParams {
    /// Disabled jobs too (the default).
    pub include_disabled: Option<bool>,
}

/// `cron.update`: a job by `id` (or `jobId`; a name works too) and what changes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CronUpdateParams {
    #[serde(alias = "jobId")]
    pub id: String,
    pub patch: crate::cron::JobPatch,
}

/// `cron.remove`, `cron.run`: a job by `id` (or `jobId`, or its name).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CronJobParams {
    #[serde(alias = "jobId")]
    pub id: String,
    /// `cron.run`: `force` (the default) runs now whatever the schedule; `due` runs only a job
    /// whose time has come.
    #[serde(default)]
    pub mode: Option<String>,
    /// `cron.run`: answer once the run ended, waiting up to this long.
    #[serde(default)]
    pub wait_ms: Option<u64>,
}

/// `cron.runs`: the runs of one job (`id`/`jobId`), or of all, newest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CronRunsParams {
    #[serde(alias = "jobId")]
    pub id: Option<String>,
    pub limit: Option<u32>,
}
