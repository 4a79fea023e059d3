//! The WebSocket control protocol's frames (OpenClaw gateway protocol v4 on the wire): what the
//! daemon sends and accepts, and what tests and clients build. Fields are camelCase on the wire.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

/// The protocol version we speak; v3 clients are accepted too.
pub const PROTOCOL_VERSION: u32 = 4;
pub const MIN_PROTOCOL_VERSION: u32 = 3;
/// Before the handshake completes, no frame may exceed this.
pub const PRE_AUTH_MAX_FRAME: usize = 64 * 1024;

/// A frame from client to server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ClientFrame {
    Req(Request),
    Cancel { id: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    pub id: String,
    pub method: String,
    #[serde(default)]
    pub params: Value,
}

/// A response as written: `ok` with a payload (already serialized JSON), or not with an error.
#[derive(Debug, Serialize)]
pub struct Response<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    pub id: &'a str,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a ErrorShape>,
}

impl<'a> Response<'a> {
    pub fn ok(id: &'a str, payload: &'a RawValue) -> Self {
        Self { kind: "res", id, ok: true, payload: Some(payload), error: None }
    }
    pub fn err(id: &'a str, error: &'a ErrorShape) -> Self {
        Self { kind: "res", id, ok: false, payload: None, error: Some(error) }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorShape {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl ErrorShape {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            details: None,
            retryable: None,
            retry_after_ms: None,
        }
    }
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }
}

/// An event from server to client. `seq` grows by one per event sent on a connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: String,
    pub event: String,
    #[serde(default)]
    pub payload: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_version: Option<StateVersion>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateVersion {
    pub presence: u64,
    pub health: u64,
}

/// Error codes of the protocol.
pub mod code {
    pub const INVALID_REQUEST: &str = "INVALID_REQUEST";
    pub const FORBIDDEN: &str = "FORBIDDEN";
    pub const NOT_PAIRED: &str = "NOT_PAIRED";
    pub const UNAVAILABLE: &str = "UNAVAILABLE";
    pub const AGENT_TIMEOUT: &str = "AGENT_TIMEOUT";
    pub const NOT_LINKED: &str = "NOT_LINKED";
}

/// `details.code` values of auth failures.
pub mod auth_code {
    pub const TOKEN_MISSING: &str = "AUTH_TOKEN_MISSING";
    pub const TOKEN_MISMATCH: &str = "AUTH_TOKEN_MISMATCH";
    pub const PASSWORD_MISSING: &str = "AUTH_PASSWORD_MISSING";
    pub const PASSWORD_MISMATCH: &str = "AUTH_PASSWORD_MISMATCH";
    pub const RATE_LIMITED: &str = "AUTH_RATE_LIMITED";
    pub const DEVICE_SIGNATURE: &str = "DEVICE_SIGNATURE_INVALID";
    pub const PAIRING_REQUIRED: &str = "PAIRING_REQUIRED";
    pub const MISSING_SCOPE: &str = "MISSING_SCOPE";
}

/// WebSocket close codes the server uses.
pub mod close {
    pub const NORMAL: u16 = 1000;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const INVALID_DATA: u16 = 1007;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    pub const RESTART: u16 = 1012;
    /// The shared token was rotated: sockets authenticated with the old one are closed.
    pub const AUTH_CHANGED: u16 = 4001;
}

/// Parameters of the `connect` request (unknown fields are ignored).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectParams {
    pub min_protocol: u32,
    pub max_protocol: u32,
    pub client: ClientInfo,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub caps: Vec<String>,
    #[serde(default)]
    pub auth: Option<ConnectAuth>,
    #[serde(default)]
    pub device: Option<DeviceProof>,
    #[serde(default)]
    pub locale: Option<String>,
    #[serde(default)]
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientInfo {
    pub id: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub platform: String,
    pub mode: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub device_family: Option<String>,
    #[serde(default)]
    pub instance_id: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectAuth {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub device_token: Option<String>,
}

/// A device's signed proof of identity (Ed25519; base64url without padding).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceProof {
    pub id: String,
    pub public_key: String,
    pub signature: String,
    pub signed_at: i64,
    pub nonce: String,
}

/// Scopes of the operator role.
pub mod scope {
    pub const READ: &str = "operator.read";
    pub const WRITE: &str = "operator.write";
    pub const ADMIN: &str = "operator.admin";
    pub const APPROVALS: &str = "operator.approvals";
    pub const PAIRING: &str = "operator.pairing";
    pub const ALL: [&str; 5] = [READ, WRITE, ADMIN, APPROVALS, PAIRING];
}
