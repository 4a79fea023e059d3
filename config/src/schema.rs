//! The config file's structure. Values that can be wrong carry their own checks in their
//! `Deserialize`, so that every error comes out of the parser with its line and key.

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{de, Deserialize, Deserializer, Serialize};

use crate::secret::SecretRef;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub gateway: Gateway,
    pub logging: Logging,
    pub models: crate::agents::Models,
    /// Agents by id; `main` exists (with the defaults) even when not configured.
    pub agents: std::collections::BTreeMap<String, crate::agents::Agent>,
    pub tools: crate::agents::Tools,
    pub runs: crate::agents::Runs,
    pub hooks: crate::agents::Hooks,
    pub ui: Ui,
    pub metrics: Metrics,
    pub observability: crate::observability::Observability,
    pub channels: crate::channels::Channels,
    pub cron: crate::cron::Cron,
    pub remote: Remote,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Gateway {
    pub mode: GatewayMode,
    pub bind: Bind,
    /// Unset: the profile's default port (18789; 19001 for `dev`).
    pub port: Option<Port>,
    pub auth: Auth,
    pub http: Http,
    pub ws: Ws,
    pub reload: Reload,
    pub heartbeat: Heartbeat,
    pub shutdown: Shutdown,
    pub admin: Admin,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GatewayMode {
    #[default]
    Local,
    Remote,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Auth {
    pub mode: AuthMode,
    /// Unset: a token generated on first start and kept in the state dir.
    pub token: Option<SecretRef>,
    /// Mode `password`: the password (`env:NAME`, `file:/path` or, in a 0600 file, the value),
    /// hashed when loaded. Unset: `gatewayctl password set`'s, kept hashed in the state dir.
    pub password: Option<SecretRef>,
    /// How long a session token from `POST /gateway/auth/session` stays valid.
    pub session_ttl_ms: Bounded<60_000, 2_592_000_000>,
    /// A WebSocket client on this host (loopback, no proxy) that proves the gateway token or
    /// password keeps the operator scopes it asks for without a paired device.
    pub local_shared_secret_scopes: bool,
    pub trusted_proxy: TrustedProxy,
    pub rate_limit: RateLimit,
}

impl Default for Auth {
    fn default() -> Self {
        Self {
            mode: AuthMode::default(),
            token: None,
            password: None,
            session_ttl_ms: Bounded(86_400_000),
            local_shared_secret_scopes: true,
            trusted_proxy: TrustedProxy::default(),
            rate_limit: RateLimit::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    #[default]
    Token,
    Password,
    None,
    TrustedProxy,
}

impl AuthMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Password => "password",
            Self::None => "none",
            Self::TrustedProxy => "trusted-proxy",
        }
    }
}

/// Identity asserted by a reverse proxy, believed only from `gateway.http.trusted_proxies`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TrustedProxy {
    pub user_header: String,
}

impl Default for TrustedProxy {
    fn default() -> Self {
        Self { user_header: "x-forwarded-user".into() }
    }
}

/// Failed authentication attempts per client address, on every auth path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimit {
    pub max_failures: Bounded<1, 10_000>,
    pub window_ms: Bounded<1_000, 86_400_000>,
    pub lockout_ms: Bounded<1_000, 86_400_000>,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self { max_failures: Bounded(10), window_ms: Bounded(60_000), lockout_ms: Bounded(300_000) }
    }
}

/// What the HTTP listener accepts before any route runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Http {
    /// Browser origins (`scheme://host[:port]`) allowed besides the gateway's own.
    pub allowed_origins: Vec<String>,
    /// `Host` header values allowed besides loopback names and the bound address.
    pub allowed_hosts: Vec<String>,
    /// Proxies whose `X-Forwarded-For` (and trusted-proxy identity) is believed.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    pub max_body_bytes: Bounded<1_024, 268_435_456>,
    pub header_read_timeout_ms: Bounded<100, 120_000>,
    /// Connections the kernel queues before gatewayd accepts them (`listen(2)`'s backlog; the
    /// kernel caps it at `net.core.somaxconn`).
    pub listen_backlog: Bounded<16, 65_535>,
    /// Characters of text input one `/v1/*` request may carry (messages, prompt, input,
    /// instructions), whatever their size in bytes.
    pub max_input_chars: Bounded<1, 100_000_000>,
    pub rate_limit: RequestRateLimit,
}

impl Default for Http {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            trusted_proxies: Vec::new(),
            max_body_bytes: Bounded(1_048_576),
            header_read_timeout_ms: Bounded(10_000),
            listen_backlog: Bounded(1_024),
            max_input_chars: Bounded(262_144),
            rate_limit: RequestRateLimit::default(),
        }
    }
}

/// Requests per client address on the HTTP APIs, apart from the failed-auth lockout: at most
/// `max_requests` within `window_seconds`; 0 turns it off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RequestRateLimit {
    pub window_seconds: Bounded<1, 86_400>,
    pub max_requests: Bounded<0, 1_000_000_000>,
}

impl Default for RequestRateLimit {
    fn default() -> Self {
        Self { window_seconds: Bounded(60), max_requests: Bounded(0) }
    }
}

/// The WebSocket control protocol's limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Ws {
    /// Largest message after the handshake (before it: 64 KiB).
    pub max_payload_bytes: Bounded<65_536, 268_435_456>,
    /// Unsent bytes queued for one client before it is closed as a slow consumer (1008).
    pub max_buffered_bytes: Bounded<65_536, 1_073_741_824>,
    pub handshake_timeout_ms: Bounded<500, 120_000>,
    /// Sockets per client address that have not completed the handshake.
    pub max_unauthenticated_per_ip: Bounded<1, 10_000>,
}

impl Default for Ws {
    fn default() -> Self {
        Self {
            max_payload_bytes: Bounded(26_214_400),
            max_buffered_bytes: Bounded(52_428_800),
            handshake_timeout_ms: Bounded(10_000),
            max_unauthenticated_per_ip: Bounded(32),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Reload {
    pub mode: ReloadMode,
    pub debounce_ms: Bounded<10, 10_000>,
}

impl Default for Reload {
    fn default() -> Self {
        Self { mode: ReloadMode::default(), debounce_ms: Bounded(50) }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReloadMode {
    /// No file watching; `gatewayctl reload` and SIGHUP still apply changes.
    Off,
    /// Apply hot keys; restart-required changes wait for a manual restart.
    Hot,
    /// Restart on any change.
    Restart,
    /// Apply hot keys hot, restart for restart-required keys.
    #[default]
    Hybrid,
}

impl ReloadMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Hot => "hot",
            Self::Restart => "restart",
            Self::Hybrid => "hybrid",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Heartbeat {
    pub interval_ms: Bounded<100, 3_600_000>,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Self { interval_ms: Bounded(30_000) }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Shutdown {
    pub drain_timeout_ms: Bounded<0, 120_000>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self { drain_timeout_ms: Bounded(10_000) }
    }
}

/// Policy gates of the admin routes (`/gateway/sessions…`, `/gateway/memory…`): writes through
/// them can be turned off whatever the caller's credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Admin {
    pub allow_session_write: bool,
    pub allow_memory_write: bool,
}

impl Default for Admin {
    fn default() -> Self {
        Self { allow_session_write: true, allow_memory_write: true }
    }
}

/// The remote-access posture this instance is meant to have (`gatewayctl remote inspect`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Remote {
    pub profile: RemoteProfile,
}

/// How the gateway is meant to be reached from other machines (docs/runbook.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RemoteProfile {
    #[default]
    LocalOnly,
    PasswordRemote,
    ProxyRemote,
    TailscaleServe,
    TailscaleFunnel,
}

impl RemoteProfile {
    pub const ALL: [RemoteProfile; 5] = [
        Self::LocalOnly,
        Self::PasswordRemote,
        Self::ProxyRemote,
        Self::TailscaleServe,
        Self::TailscaleFunnel,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::LocalOnly => "local-only",
            Self::PasswordRemote => "password-remote",
            Self::ProxyRemote => "proxy-remote",
            Self::TailscaleServe => "tailscale-serve",
            Self::TailscaleFunnel => "tailscale-funnel",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// Prometheus metrics at `GET /gateway/metrics` (docs/observability.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Metrics {
    pub enabled: bool,
    /// A bearer token for scrapers (a secret reference), accepted on `/gateway/metrics` only,
    /// beside the gateway's own auth.
    pub token: Option<SecretRef>,
    /// A second, loopback-only listener serving the metrics alone (`/metrics`), with the same
    /// credentials; unset: none.
    pub listen: Option<std::net::SocketAddr>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self { enabled: true, token: None, listen: None }
    }
}

/// The browser Control UI, served on the main port (docs/ui.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Ui {
    pub enabled: bool,
    pub path: UiPath,
}

impl Default for Ui {
    fn default() -> Self {
        Self { enabled: true, path: UiPath("/ui".into()) }
    }
}

/// Where the UI is mounted: `/` and one segment of lower-case letters, digits, `-` or `_`, not
/// a path the HTTP APIs own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct UiPath(String);

impl UiPath {
    pub const RESERVED: &[&str] =
        &["/v1", "/gateway", "/hooks", "/tools", "/channels", "/healthz", "/readyz", "/webchat"];

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for UiPath {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let segment = s.strip_prefix('/').unwrap_or("");
        let valid = !segment.is_empty()
            && segment.len() <= 32
            && segment
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !valid {
            return Err(format!(
                "{} is not a UI path: write \"/\" and one segment of lower-case letters, digits, '-' or '_' (like \"/ui\")",
                gateway_proto::quote::short(s)
            ));
        }
        if Self::RESERVED.contains(&s) {
            return Err(format!("{s} belongs to the gateway's HTTP APIs: choose another UI path"));
        }
        Ok(Self(s.to_owned()))
    }
}

impl<'de> Deserialize<'de> for UiPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

impl JsonSchema for UiPath {
    fn schema_name() -> Cow<'static, str> {
        "UiPath".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "\"/\" and one segment of lower-case letters, digits, '-' or '_'",
            "type": "string",
            "pattern": "^/[a-z0-9_-]{1,32}$"
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Logging {
    pub level: LogLevel,
    pub file_max_bytes: Bounded<65_536, 1_073_741_824>,
}

impl Default for Logging {
    fn default() -> Self {
        Self { level: LogLevel::default(), file_max_bytes: Bounded(10 * 1024 * 1024) }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace => "trace",
        }
    }
}

/// Where the listener binds: `loopback` (127.0.0.1), `lan` (all IPv4 interfaces) or an address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Bind {
    #[default]
    Loopback,
    Lan,
    Addr(IpAddr),
}

impl Bind {
    pub fn ip(self) -> IpAddr {
        match self {
            Self::Loopback => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Self::Lan => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            Self::Addr(ip) => ip,
        }
    }

    pub fn is_loopback(self) -> bool {
        self.ip().is_loopback()
    }
}

impl fmt::Display for Bind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Loopback => f.write_str("loopback"),
            Self::Lan => f.write_str("lan"),
            Self::Addr(ip) => write!(f, "{ip}"),
        }
    }
}

impl std::str::FromStr for Bind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "loopback" => Ok(Self::Loopback),
            "lan" => Ok(Self::Lan),
            other => other
                .parse()
                .map(Self::Addr)
                .map_err(|_| format!("invalid bind {other:?}: use \"loopback\", \"lan\" or an IP address")),
        }
    }
}

impl Serialize for Bind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Bind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

impl JsonSchema for Bind {
    fn schema_name() -> Cow<'static, str> {
        "Bind".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "\"loopback\", \"lan\" or an IP address",
            "type": "string"
        })
    }
}

/// A whole number checked against `MIN..=MAX` while parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Bounded<const MIN: u64, const MAX: u64>(pub(crate) u64);

impl<const MIN: u64, const MAX: u64> Bounded<MIN, MAX> {
    pub fn new(value: u64) -> Option<Self> {
        (MIN..=MAX).contains(&value).then_some(Self(value))
    }
    pub fn get(self) -> u64 {
        self.0
    }
}

impl<const MIN: u64, const MAX: u64> Bounded<MIN, MAX> {
    /// What a value must be, for errors: ports are called ports.
    fn wanted() -> String {
        if (MIN, MAX) == (1, 65_535) {
            "a port number 1-65535".to_owned()
        } else {
            format!("a whole number from {MIN} to {MAX}")
        }
    }
}

impl<'de, const MIN: u64, const MAX: u64> Deserialize<'de> for Bounded<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor<const MIN: u64, const MAX: u64>;
        impl<const MIN: u64, const MAX: u64> de::Visitor<'_> for Visitor<MIN, MAX> {
            type Value = Bounded<MIN, MAX>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(&Bounded::<MIN, MAX>::wanted())
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
                u64::try_from(value).ok().and_then(Bounded::new).ok_or_else(|| {
                    E::custom(format!("{value} is out of range: use {}", Bounded::<MIN, MAX>::wanted()))
                })
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
                Bounded::new(value).ok_or_else(|| {
                    E::custom(format!("{value} is out of range: use {}", Bounded::<MIN, MAX>::wanted()))
                })
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
                // The loader shortens a long value in the message.
                let hint = match value.trim().parse::<u64>() {
                    Ok(n) => format!(": write {n} without quotes"),
                    Err(_) => String::new(),
                };
                Err(E::custom(format!(
                    "expected {}, not the string {value:?}{hint}",
                    Bounded::<MIN, MAX>::wanted()
                )))
            }
        }
        d.deserialize_any(Visitor::<MIN, MAX>)
    }
}

impl<const MIN: u64, const MAX: u64> JsonSchema for Bounded<MIN, MAX> {
    fn schema_name() -> Cow<'static, str> {
        format!("Integer{MIN}to{MAX}").into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "integer", "minimum": MIN, "maximum": MAX })
    }
}

pub type Port = Bounded<1, 65_535>;

impl Port {
    pub fn port(self) -> u16 {
        self.0 as u16
    }
}
