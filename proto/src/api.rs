//! JSON bodies of the control API: HTTP on the daemon's Unix socket, called by `gatewayctl`.
//! Field names are stable: `gatewayctl ... --json` prints these structures as they are.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Routes of the control API.
pub mod route {
    pub const STATUS: &str = "/v1/status";
    pub const HEALTH: &str = "/v1/health";
    pub const RELOAD: &str = "/v1/reload";
    pub const STOP: &str = "/v1/stop";
    /// Restart in place: the daemon drains and comes back with the same command line.
    pub const RESTART: &str = "/v1/restart";
    /// Re-reads secret references (a reload); and where each secret comes from.
    pub const SECRETS_RELOAD: &str = "/v1/secrets/reload";
    pub const SECRETS_AUDIT: &str = "/v1/secrets/audit";
    pub const LOGS: &str = "/v1/logs";
    pub const CONFIG: &str = "/v1/config";
    pub const TOKEN: &str = "/v1/token";
    pub const TOKEN_ROTATE: &str = "/v1/token/rotate";
    pub const PASSWORD: &str = "/v1/password";
    /// A one-time Control UI sign-in code (`gatewayctl dashboard`).
    pub const UI_CODE: &str = "/v1/ui/code";
    /// Chat channel accounts (`?probe=1` checks each first).
    pub const CHANNELS: &str = "/v1/channels";
    /// Chat channel pairing requests, and approving or rejecting one by its code.
    pub const PAIRING: &str = "/v1/pairing";
    pub const PAIRING_APPROVE: &str = "/v1/pairing/{channel}/{code}/approve";
    pub const PAIRING_REJECT: &str = "/v1/pairing/{channel}/{code}/reject";
    /// Sign-in sessions (password mode); not conversations.
    pub const SIGNINS: &str = "/v1/signins";
    pub const SIGNIN_REVOKE: &str = "/v1/signins/{id}/revoke";
    /// The old names of the two above, served for one more release.
    pub const SIGNINS_OLD: &str = "/v1/sessions";
    pub const SIGNIN_REVOKE_OLD: &str = "/v1/sessions/{id}/revoke";
    pub const DEVICES: &str = "/v1/devices";
    /// Scheduled jobs: the scheduler and its events block; the jobs (GET lists, POST adds);
    /// one job (GET, PATCH, DELETE) by id or name; running one now; the runs (`?job=&limit=`).
    pub const CRON_STATUS: &str = "/v1/cron/status";
    pub const CRON_JOBS: &str = "/v1/cron/jobs";
    pub const CRON_JOB: &str = "/v1/cron/jobs/{id}";
    pub const CRON_JOB_RUN: &str = "/v1/cron/jobs/{id}/run";
    pub const CRON_RUNS: &str = "/v1/cron/runs";
    /// Path patterns of the device actions (axum syntax); build paths with [`device_action`].
    pub const DEVICE_APPROVE: &str = "/v1/devices/{id}/approve";
    pub const DEVICE_REJECT: &str = "/v1/devices/{id}/reject";
    pub const DEVICE_REVOKE: &str = "/v1/devices/{id}/revoke";

    /// `/v1/devices/ID/ACTION`. `id` must be a request or device id (hex); anything else is
    /// percent-encoded so it cannot change the path, and the daemon answers 400.
    pub fn device_action(id: &str, action: &str) -> String {
        format!("{DEVICES}/{}/{action}", segment(id))
    }

    /// `/v1/cron/jobs/JOB` (a job id or name), with `tail` (`""` or `/run`) after it.
    pub fn cron_job(job: &str, tail: &str) -> String {
        format!("{CRON_JOBS}/{}{tail}", segment(job))
    }

    /// One path segment: letters, digits, '-' and '_' as they are, the rest percent-encoded,
    /// so an id cannot change the path.
    pub fn segment(id: &str) -> String {
        let mut encoded = String::with_capacity(id.len());
        for b in id.bytes() {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                encoded.push(b as char);
            } else {
                encoded.push_str(&format!("%{b:02X}"));
            }
        }
        encoded
    }
}

/// `GET /v1/status`: what the running daemon says about itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReport {
    pub service: String,
    pub version: String,
    pub pid: u32,
    pub profile: Option<String>,
    /// `starting`, `running` or `draining`.
    pub state: String,
    /// `systemd`, `launchd` or `none`.
    pub supervisor: String,
    pub started_at_ms: u64,
    pub uptime_ms: u64,
    pub listen: ListenInfo,
    pub auth_mode: String,
    pub config: ConfigInfo,
    pub last_reload: Option<ReloadReport>,
    pub heartbeat: HeartbeatInfo,
    pub connections: Connections,
    pub counters: Counters,
    pub paths: PathsInfo,
    /// The Control UI (absent from daemons older than it).
    #[serde(default)]
    pub web_ui: Option<WebUiInfo>,
    /// Authentication, with the runbook's field names (absent from daemons older than it).
    #[serde(default)]
    pub auth: Option<AuthInfo>,
    /// The runbook's `gateway` blocks (absent from daemons older than it).
    #[serde(default)]
    pub gateway: Option<GatewayBlocks>,
    /// `healthy`, `degraded` or `failing` (absent from daemons older than it), the reason code
    /// that decided it and every reason found (docs/control-api.md).
    #[serde(default)]
    pub health_state: Option<String>,
    #[serde(default)]
    pub health_reason_code: Option<String>,
    #[serde(default)]
    pub health_reasons: Vec<String>,
    /// The heartbeat and its repairs, with the runbook's names (absent from daemons older than it).
    #[serde(default)]
    pub runtime_heartbeat: Option<RuntimeHeartbeatInfo>,
    /// Scheduled jobs and the rollout gate (absent from daemons older than the scheduler).
    #[serde(default)]
    pub events: Option<crate::cron::EventsInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuntimeHeartbeatInfo {
    /// `running`, or `stopped` when no tick came for two intervals.
    pub run_state: String,
    /// `healthy_cycle`, `heartbeat_late`, or the first of the last tick's repairs.
    pub reason_code: String,
    pub interval_ms: u64,
    pub tick_count: u64,
    /// Runs waiting for their turn.
    pub queue_depth: u64,
    /// Runs stopped as stuck (`runs.stuck_after_ms`) since start.
    pub stuck_jobs: u64,
    /// Every repair since start: interrupted runs marked, stuck runs stopped, temp files
    /// removed, sessions forgotten, records deleted past the retention.
    pub repair_actions: u64,
    pub temp_files_cleaned: u64,
    pub expired_sessions_cleaned: u64,
    /// Runs a previous process left queued or running, marked `interrupted` at start.
    #[serde(default)]
    pub interrupted_runs_marked: u64,
    /// Run records and stored responses deleted past `runs.retention_days`.
    #[serde(default)]
    pub runs_pruned: u64,
    #[serde(default)]
    pub responses_pruned: u64,
    /// Upstream requests retried, and model calls that failed after retrying.
    pub retries_queued: u64,
    pub retries_exhausted: u64,
    /// What the last tick found and did.
    pub reason_codes: Vec<String>,
    /// The latest repairs, for people, oldest first.
    pub diagnostics: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GatewayBlocks {
    pub openai_compat: OpenAiCompatInfo,
    /// The runbook's place for the Control UI's block (the same as the report's `web_ui`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_ui: Option<WebUiInfo>,
}

/// What the OpenAI-compatible APIs served since start.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OpenAiCompatInfo {
    pub chat_completions_endpoint: String,
    pub completions_endpoint: String,
    pub models_endpoint: String,
    pub responses_endpoint: String,
    /// Every request under `/v1/`, answered or refused (credentials apart).
    pub total_requests: u64,
    pub chat_completions_requests: u64,
    pub completions_requests: u64,
    pub models_requests: u64,
    pub responses_requests: u64,
    /// Answers sent as a stream of server-sent events.
    pub stream_requests: u64,
    /// Requests refused before a run (4xx other than 401, 403 and 429).
    pub translation_failures: u64,
    /// Requests that failed in the gateway or the model's provider (5xx before any streamed byte).
    pub execution_failures: u64,
    /// Error answers by the gateway's error code.
    pub reason_code_counts: std::collections::BTreeMap<String, u64>,
    /// Request fields the gateway ignored, by name.
    pub ignored_field_counts: std::collections::BTreeMap<String, u64>,
    /// The latest error codes, oldest first.
    pub last_reason_codes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthInfo {
    /// `token`, `password`, `trusted-proxy` or `none`.
    pub mode: String,
    /// How long a sign-in session lasts (`gateway.auth.session_ttl_ms`).
    pub session_ttl_seconds: u64,
    /// Bearer sign-in sessions (from `/gateway/auth/session`) live now.
    pub active_sessions: u64,
    /// Bearer sign-in sessions issued since start.
    pub total_sessions_issued: u64,
    pub auth_failures: u64,
    pub rate_limited_requests: u64,
    /// `gateway.http.rate_limit`: at most `rate_limit_max_requests` per client address in
    /// `rate_limit_window_seconds`; 0 requests: off.
    pub rate_limit_window_seconds: u64,
    pub rate_limit_max_requests: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebUiInfo {
    pub enabled: bool,
    /// Where it is served, like `/ui`.
    pub path: String,
    /// Browser sessions signed in and not expired.
    pub active_sessions: u64,
    /// Sign-ins since start, and those refused.
    pub sign_ins: u64,
    pub sign_in_failures: u64,
    /// Where a browser signs in (`gatewayctl dashboard`'s link leads there).
    #[serde(default)]
    pub sign_in_path: String,
    /// The policy gates of the admin routes the UI uses (`gateway.admin.*`).
    #[serde(default)]
    pub allow_session_write: bool,
    #[serde(default)]
    pub allow_memory_write: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListenInfo {
    /// The configured `gateway.bind` (`loopback`, `lan` or an address).
    pub bind: String,
    /// The socket address actually listened on.
    pub addr: String,
    pub port: u16,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigInfo {
    pub path: String,
    pub exists: bool,
    /// Starts at 1 and grows by one per applied reload.
    pub generation: u64,
    pub reload_mode: String,
    /// Restart-required keys changed in the file but not yet in effect (reload mode `hot`).
    pub pending_restart: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeartbeatInfo {
    pub ticks: u64,
    pub interval_ms: u64,
    pub last_tick_ms_ago: Option<u64>,
    /// Set when systemd's watchdog is on; the daemon pings at half of it.
    pub watchdog_usec: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Connections {
    pub http: u64,
    pub control: u64,
    /// WebSocket protocol sockets, authenticated or still in the handshake.
    #[serde(default)]
    pub websocket: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Counters {
    pub http_requests: u64,
    pub auth_failures: u64,
    /// HTTP API requests refused by the per-client rate limit (`gateway.http.rate_limit`).
    #[serde(default)]
    pub rate_limited_requests: u64,
    pub reloads_applied: u64,
    pub reloads_unchanged: u64,
    pub reloads_rejected: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PathsInfo {
    pub state_dir: String,
    pub runtime_dir: String,
    pub socket: String,
    pub log_file: String,
}

/// What started a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReloadTrigger {
    Watcher,
    Signal,
    Control,
    /// A WebSocket client (`config.apply`, `config.patch`, `secrets.reload`).
    Rpc,
}

impl fmt::Display for ReloadTrigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Watcher => "watcher",
            Self::Signal => "signal",
            Self::Control => "control",
            Self::Rpc => "rpc",
        })
    }
}

/// How a reload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReloadOutcome {
    /// The new config is in effect (hot keys swapped in).
    Applied,
    /// The file means the same as the config in effect: nothing to do.
    Unchanged,
    /// The file was refused; the old config keeps serving.
    Rejected,
    /// A restart-required key changed: the daemon restarts gracefully to apply it.
    Restarting,
}

impl fmt::Display for ReloadOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Applied => "applied",
            Self::Unchanged => "unchanged",
            Self::Rejected => "rejected",
            Self::Restarting => "restarting",
        })
    }
}

/// The result of one reload transaction (`POST /v1/reload`, and `last_reload` in the status).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReloadReport {
    pub trigger: ReloadTrigger,
    pub outcome: ReloadOutcome,
    /// The config generation in effect after the reload.
    pub generation: u64,
    pub at_ms: u64,
    /// Keys whose values changed (dotted paths).
    pub changed_keys: Vec<String>,
    /// Of those, the keys that need a restart to take effect.
    pub restart_keys: Vec<String>,
    /// Of the changed keys, those that went back to their built-in default because they
    /// vanished from the file (a line deleted, a file cut short).
    #[serde(default)]
    pub defaulted_keys: Vec<String>,
    pub errors: Vec<ConfigIssue>,
    /// One line for people.
    pub message: String,
}

/// One problem in a config file, located as precisely as the parser allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigIssue {
    pub file: String,
    pub line: Option<u32>,
    pub column: Option<u32>,
    /// Dotted key path, such as `gateway.reload.mode`.
    pub key: Option<String>,
    pub message: String,
}

impl ConfigIssue {
    /// An issue about the whole file, or about a key not located in it.
    pub fn new(file: &std::path::Path, key: Option<String>, message: String) -> Self {
        Self { file: file.display().to_string(), line: None, column: None, key, message }
    }
}

impl fmt::Display for ConfigIssue {
    /// `file:line:column: key `gateway.port`: message`, the form editors and terminals link.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        f.write_str(": ")?;
        if let Some(key) = &self.key {
            write!(f, "key `{key}`: ")?;
        }
        f.write_str(&self.message)
    }
}

/// `GET /v1/health`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HealthReport {
    pub ok: bool,
    pub checks: Vec<HealthCheck>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HealthCheck {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// `GET /v1/logs?cursor=&lines=&max_bytes=&wait_ms=`: lines of the daemon's JSONL log after
/// `cursor` (a byte offset in the current file). `reset` says the file was rotated since the cursor
/// and reading started over; `truncated` says more lines were there than returned.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogTail {
    pub file: String,
    pub cursor: u64,
    pub size: u64,
    pub lines: Vec<String>,
    pub truncated: bool,
    pub reset: bool,
}

/// `GET /v1/token` and `POST /v1/token/rotate`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenInfo {
    pub token: String,
    /// Where it comes from: `file`, `env` or `config`.
    pub source: String,
    /// The token file, when the source is `file`.
    pub file: Option<String>,
}

/// `POST /v1/ui/code`: a link that signs a browser in to the Control UI, once, within two
/// minutes. The code rides in the fragment, which browsers never send to a server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UiLink {
    /// The link with the code: `http://127.0.0.1:18789/ui/#code=…`.
    pub url: String,
    /// The UI's address without the code.
    pub ui_url: String,
    pub expires_at_ms: u64,
}

/// A chat channel's pairing request: an unknown sender's code, waiting for the owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelPairing {
    pub channel: String,
    pub account: String,
    /// The sender's id on the network (IRC: the nick, lower-case).
    pub peer: String,
    pub display: String,
    pub code: String,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
}

/// `GET /v1/pairing`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PairingReport {
    pub requests: Vec<ChannelPairing>,
}

/// `POST /v1/password`: the new gateway password.
#[derive(Clone, Serialize, Deserialize)]
pub struct PasswordBody {
    pub password: String,
}

/// A sign-in session (password mode) as listed (`GET /v1/signins`); its token is never shown again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignInInfo {
    pub id: String,
    /// `bearer` (a password-mode session token) or `browser` (a Control UI cookie).
    #[serde(default = "bearer_kind")]
    pub kind: String,
    /// The address and user agent that created it.
    pub client: String,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
}

fn bearer_kind() -> String {
    "bearer".into()
}

/// `GET /v1/signins`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignInsReport {
    pub sessions: Vec<SignInInfo>,
}

/// `POST /v1/password` and `POST /v1/signins/{id}/revoke`: what the change ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RevokedReport {
    /// Sign-in sessions ended.
    pub sessions: usize,
    /// WebSocket connections closed (4001).
    pub closed_connections: usize,
}

/// `POST /v1/stop`: accepted; the daemon drains and exits 0.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StopReport {
    pub stopping: bool,
    pub pid: u32,
}

/// `POST /v1/restart`: the daemon drains, then comes back with the command line it was started
/// with: in place (the same pid) when it runs on its own, through its supervisor (exit 75) when
/// one runs it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RestartReport {
    pub restarting: bool,
    pub pid: u32,
    /// The supervisor that brings it back, or "none" (it re-executes itself).
    pub supervisor: String,
}

/// `GET /v1/secrets/audit`: where each secret the gateway uses comes from, whether it resolves,
/// and what is wrong with how it is kept. Values are never included.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretsAudit {
    pub config_file: String,
    /// The config file's permission bits (`0600`), when it exists.
    pub config_mode: Option<String>,
    pub secrets: Vec<SecretEntry>,
    /// How many entries have a `problem`.
    pub problems: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretEntry {
    /// The config key (`gateway.auth.token`, `models.providers.NAME.api_key`).
    pub key: String,
    /// `literal` (written in the config), `env` or `file` (a reference in the config),
    /// `environment` (GATEWAY_TOKEN, GATEWAY_PASSWORD), `state` (generated or set with
    /// gatewayctl, kept in the state dir).
    pub source: String,
    /// The reference or variable as written (`env:NAME`, `file:/path`), never a value.
    pub reference: Option<String>,
    pub resolves: bool,
    /// Why it does not resolve.
    pub error: Option<String>,
    /// The file holding it (a `file:` reference, the state dir's file) and its permission bits.
    pub file: Option<String>,
    pub file_mode: Option<String>,
    /// What is wrong and what to do, if anything.
    pub problem: Option<String>,
}

/// `STATE_DIR/launch.json`, written by each gatewayd once it serves: the `gatewayd` arguments
/// that bring this instance back as it runs (flags and the environment variables they stand
/// for, paths made absolute), so that `gatewayctl start` after a `stop` starts the same one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchRecord {
    /// Arguments after the program name, starting with `run`.
    pub args: Vec<String>,
}

impl LaunchRecord {
    pub const FILE: &'static str = "launch.json";

    /// The flags after `run`, for people (`--port 45649 --verbose`); empty when there are none.
    pub fn flags(&self) -> String {
        self.args.iter().skip(1).map(String::as_str).collect::<Vec<_>>().join(" ")
    }
}

/// `GET /v1/config`: the config in effect, secrets redacted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigView {
    pub path: String,
    pub generation: u64,
    pub config: serde_json::Value,
}

/// `GET /v1/devices`: paired devices (revoked ones too, marked) and pending pairing requests.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DevicesReport {
    pub devices: Vec<DeviceRecord>,
    pub pending: Vec<PairingRequest>,
}

/// A paired device. Its device token is never shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// Lowercase hex SHA-256 of the device's Ed25519 public key.
    pub device_id: String,
    pub display_name: Option<String>,
    pub client_id: String,
    /// The client's mode (`cli`, `ui`, ...).
    pub mode: String,
    pub platform: String,
    pub role: String,
    /// The scopes granted at pairing.
    pub scopes: Vec<String>,
    pub paired_at_ms: u64,
    /// The last successful handshake, if any since pairing.
    pub last_seen_ms: Option<u64>,
    /// A revoked device's token no longer works; it must pair again.
    pub revoked: bool,
    pub revoked_at_ms: Option<u64>,
}

/// A device waiting for approval (`gatewayctl devices approve REQUEST_ID`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairingRequest {
    /// 8 hex characters, to type in `gatewayctl devices approve`.
    pub request_id: String,
    pub device_id: String,
    pub display_name: Option<String>,
    pub client_id: String,
    pub mode: String,
    pub platform: String,
    pub role: String,
    /// The scopes the device asked for; approval grants these unless told otherwise.
    pub scopes: Vec<String>,
    pub created_at_ms: u64,
    /// The device's last attempt to connect.
    pub last_seen_ms: u64,
}

/// Optional body of `POST /v1/devices/{id}/approve`: the scopes to grant instead of the
/// requested ones.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ApproveBody {
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
}

/// `POST /v1/devices/{id}/revoke`. (`approve` answers the new [`DeviceRecord`], `reject` the
/// removed [`PairingRequest`].)
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RevokeReport {
    pub device_id: String,
    /// How many of its WebSocket connections were closed.
    pub closed_connections: usize,
}

/// The body of every non-2xx answer of the control API.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}
