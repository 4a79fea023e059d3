//! The `connect` request, checked in the documented order: protocol, role, shared auth (rate
//! limited), device signature, device token, pairing; then `hello-ok`. Every refusal says what
//! failed and closes the socket with the code the protocol prescribes.

use std::sync::Arc;

use gateway_config::AuthMode;
use gateway_proto::ws::{
    auth_code, close, code, scope, ConnectParams, ErrorShape, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION,
};
use serde::Serialize;
use serde_json::json;
use serde_json::value::RawValue;

use super::conn::Context;
use super::hub::{AuthKind, Conn, Hub, Presence};
use super::methods;
use super::outbox::Outbox;
use crate::core::gateway::Gateway;
use crate::core::secrets::tokens_equal;
use crate::runtime::devices::proof::{self, Signed};
use crate::runtime::devices::{DeviceError, Pairing};
use gateway_proto::time::now_ms;
use gateway_proto::ws_methods::{Method, CAPABILITIES, EVENTS};

pub struct Attempt<'a> {
    pub id: &'a str,
    pub nonce: &'a str,
    pub context: &'a Context,
    pub outbox: &'a Arc<Outbox>,
    pub hub: &'a Arc<Hub>,
}

pub struct Accepted {
    pub conn: Arc<Conn>,
    pub hello: methods::Payload,
}

pub struct Refusal {
    pub error: ErrorShape,
    pub close: u16,
    pub reason: String,
}

impl Refusal {
    fn new(error: ErrorShape, close: u16) -> Self {
        let reason = error.message.clone();
        Self { error, close, reason }
    }

    /// An authentication failure: `INVALID_REQUEST` with `details.code`, then close 1008.
    pub fn auth_failure(detail: &str, message: impl Into<String>) -> Self {
        Self::auth(detail, message)
    }

    /// Credentials refused. The message starts with "unauthorized: ", the signature operators
    /// look for (docs/runbook.md); `details.code` says which check failed.
    fn auth(detail: &str, message: impl Into<String>) -> Self {
        let message = format!("unauthorized: {}", message.into());
        let error = ErrorShape::new(code::INVALID_REQUEST, message).with_details(json!({ "code": detail }));
        Self::new(error, close::POLICY)
    }
}

/// Answers a `connect` whose params, `params`, are the JSON text the client sent.
pub async fn connect(
    gw: &Arc<Gateway>,
    attempt: Attempt<'_>,
    params: Option<&RawValue>,
) -> Result<Accepted, Refusal> {
    let params: ConnectParams = serde_json::from_str(params.map_or("null", RawValue::get)).map_err(|e| {
        Refusal::new(
            ErrorShape::new(code::INVALID_REQUEST, format!("invalid connect params: {e}")),
            close::POLICY,
        )
    })?;

    // 1. Protocol.
    let protocol = [PROTOCOL_VERSION, MIN_PROTOCOL_VERSION]
        .into_iter()
        .find(|v| params.min_protocol <= *v && *v <= params.max_protocol)
        .ok_or_else(|| {
            let error = ErrorShape::new(code::INVALID_REQUEST, "protocol mismatch").with_details(
                json!({ "expectedProtocol": PROTOCOL_VERSION, "minProtocol": MIN_PROTOCOL_VERSION }),
            );
            Refusal::new(error, close::PROTOCOL_ERROR)
        })?;

    // 2. Role: this gateway serves operators; it hosts no node capabilities.
    let role = params.role.clone().unwrap_or_else(|| "operator".into());
    if role != "operator" {
        let error = ErrorShape::new(
            code::INVALID_REQUEST,
            format!(
                "role {} is not served here: connect as \"operator\"",
                gateway_proto::quote::short(&role)
            ),
        );
        return Err(Refusal::new(error, close::POLICY));
    }

    // 3. Origin was checked before the upgrade (guard). 4. Shared auth, rate limited.
    // A lockout holds back guessing, never the owner: while this address is locked out, a
    // password is not even tried, but a correct token (long and random: not guessable) passes.
    let active = gw.active_owned();
    let ip = attempt.context.client_ip;
    let locked = gw.limiter.check(ip).err();
    let rate_limited = |retry: std::time::Duration| {
        let mut error = ErrorShape::new(
            code::INVALID_REQUEST,
            "unauthorized: too many failed authentication attempts from this address",
        )
        .with_details(json!({ "code": auth_code::RATE_LIMITED }));
        error.retryable = Some(true);
        error.retry_after_ms = Some(retry.as_millis() as u64);
        Refusal::new(error, close::POLICY)
    };
    let auth = params.auth.clone().unwrap_or_default();
    let presented = auth.token.clone().or(auth.device_token.clone()).unwrap_or_default();
    let password_given = auth.password.as_deref().is_some_and(|p| !p.is_empty());
    if let Some(retry) = locked.filter(|_| password_given || presented.is_empty()) {
        return Err(rate_limited(retry));
    }
    let device = params.device.as_ref();
    let browser = attempt.context.browser_session.clone().filter(|_| presented.is_empty() && !password_given);
    let verified = match active.config.gateway.auth.mode {
        AuthMode::None => Ok(AuthKind::None),
        AuthMode::Token | AuthMode::Password if browser.is_some() => Ok(AuthKind::Browser(browser.unwrap_or_default())),
        AuthMode::Token if presented.is_empty() => {
            Err(Refusal::auth(auth_code::TOKEN_MISSING, "gateway token missing: send it in connect auth.token (gatewayctl token show)"))
        }
        AuthMode::Token if tokens_equal(&presented, &active.token) => Ok(AuthKind::SharedToken),
        AuthMode::Token if device.is_some_and(|d| gw.devices.verify_token(&d.id, &presented)) => Ok(AuthKind::DeviceToken),
        AuthMode::Token => Err(Refusal::auth(auth_code::TOKEN_MISMATCH, "gateway token mismatch")),
        AuthMode::Password => super::password_auth::verify_connect(gw, &auth, device).await,
        AuthMode::TrustedProxy => match &attempt.context.proxy_user {
            Some(user) => Ok(AuthKind::TrustedProxy(user.clone())),
            None => Err(Refusal::auth(
                auth_code::TOKEN_MISSING,
                "no identity from a trusted proxy: connect through a proxy listed in gateway.http.trusted_proxies",
            )),
        },
    };
    let auth_kind = match verified {
        Ok(kind) => kind,
        Err(refusal) => {
            if let Some(retry) = locked {
                return Err(rate_limited(retry));
            }
            // Only a wrong credential counts; a connect that presents none does not.
            if password_given || !presented.is_empty() {
                gw.limiter.failure(ip, &active.config.gateway.auth.rate_limit);
                crate::core::gateway::Stats::bump(&gw.stats.auth_failures);
            }
            return Err(refusal);
        }
    };

    // 5. Device signature, over what the client asked for and the credential it presented.
    let scopes = match device {
        None => Vec::new(),
        Some(device) => {
            let signed = Signed {
                client: &params.client,
                role: &role,
                scopes: &params.scopes,
                token: &presented,
                challenge: attempt.nonce,
                now_ms: now_ms() as i64,
                known_key: gw.devices.known_key(&device.id, &device.public_key),
            };
            if let Err(why) = proof::verify(device, &signed) {
                gw.limiter.failure(ip, &active.config.gateway.auth.rate_limit);
                return Err(Refusal::auth(auth_code::DEVICE_SIGNATURE, why));
            }
            gw.limiter.success(ip);
            // 6-7. Pairing: loopback devices pair themselves; others wait for approval.
            let loopback = attempt.context.client_ip.is_loopback();
            // A reconnect that changes nothing is answered from memory; anything else may commit
            // to SQLite (an fsync): off the async workers.
            let known =
                gw.devices.pair_known(&device.id, &device.public_key, &params.client, &role, &params.scopes);
            let pairing = if let Some(known) = known {
                Ok(known)
            } else {
                let (devices, id, key, client, role, scopes) = (
                    gw.devices.clone(),
                    device.id.clone(),
                    device.public_key.clone(),
                    params.client.clone(),
                    role.clone(),
                    params.scopes.clone(),
                );
                crate::core::store::off_workers(devices, move |d| {
                    d.pair(&id, &key, &client, &role, &scopes, loopback)
                })
                .await
                .map_err(|e| match e {
                    crate::core::store::CallError::Failed(e) => e,
                    task => DeviceError::Invalid(task.to_string()),
                })
            };
            match pairing {
                Ok(Pairing::Paired { scopes, device_token, issued_at_ms }) => {
                    return Ok(accept(
                        gw,
                        &attempt,
                        &params,
                        protocol,
                        role,
                        scopes,
                        auth_kind,
                        Some((device.id.clone(), device_token, issued_at_ms)),
                    ));
                }
                Ok(Pairing::Pending { request_id }) => {
                    let reason = format!("pairing required: device not approved (requestId: {request_id})");
                    let error = ErrorShape::new(
                        code::NOT_PAIRED,
                        format!(
                            "{reason}; approve it with `gatewayctl{} devices approve {request_id}`",
                            profile_flag(gw)
                        ),
                    )
                    .with_details(json!({ "code": auth_code::PAIRING_REQUIRED, "requestId": request_id }));
                    return Err(Refusal { error, close: close::POLICY, reason });
                }
                Err(DeviceError::Store(e)) => {
                    // The cause names files on this host: the log gets it, the client does not.
                    tracing::error!(error = %e, "cannot record a device pairing");
                    let mut error = ErrorShape::new(
                        code::UNAVAILABLE,
                        "the gateway cannot record the pairing right now; try again",
                    );
                    error.retryable = Some(true);
                    return Err(Refusal::new(error, close::POLICY));
                }
                Err(e) => return Err(Refusal::auth(auth_code::DEVICE_SIGNATURE, e.to_string())),
            }
        }
    };
    if !matches!(auth_kind, AuthKind::None) && locked.is_none() {
        gw.limiter.success(ip);
    }
    // A client without a device identity gets no scopes (it can ask for `health` only), unless
    // it is on this host and proved the shared secret: then it keeps the known operator scopes
    // it asked for, as the reference gateway does for its CLI (gateway.auth.local_shared_secret_scopes).
    let local_secret = matches!(auth_kind, AuthKind::SharedToken | AuthKind::Password)
        && attempt.context.direct_local
        && active.config.gateway.auth.local_shared_secret_scopes;
    let scopes = if device.is_none() && local_secret {
        let mut asked: Vec<String> =
            params.scopes.iter().filter(|s| scope::ALL.contains(&s.as_str())).cloned().collect();
        asked.sort();
        asked.dedup();
        asked
    } else {
        scopes
    };
    Ok(accept(gw, &attempt, &params, protocol, role, scopes, auth_kind, None))
}

/// ` --profile NAME` when this gateway runs a named profile, for commands we suggest.
fn profile_flag(gw: &Gateway) -> String {
    gw.profile.name().map(|p| format!(" --profile {p}")).unwrap_or_default()
}

#[allow(clippy::too_many_arguments)]
fn accept(
    gw: &Arc<Gateway>,
    attempt: &Attempt<'_>,
    params: &ConnectParams,
    protocol: u32,
    role: String,
    scopes: Vec<String>,
    auth: AuthKind,
    device: Option<(String, String, u64)>,
) -> Accepted {
    let active = gw.active();
    let client = &params.client;
    let conn = Arc::new(Conn {
        id: attempt.id.into(),
        client_id: client.id.clone(),
        client_mode: client.mode.clone(),
        client_version: client.version.clone(),
        platform: client.platform.clone(),
        display_name: client.display_name.clone(),
        instance_id: client.instance_id.clone(),
        device_id: device.as_ref().map(|d| d.0.clone()),
        role: role.clone(),
        scopes: scopes.clone(),
        auth,
        connected_at_ms: now_ms(),
        outbox: attempt.outbox.clone(),
        sessions_subscribed: Default::default(),
    });
    let ws = &active.config.gateway.ws;
    // The snapshot includes this client (it joins the hub once hello-ok is on its way); like
    // presence events, it is for readers only.
    let others = if conn.sees_presence() { attempt.hub.presence() } else { Vec::new() };
    let mut presence: Vec<Presence<'_>> = others.iter().map(|c| c.presence()).collect();
    if conn.sees_presence() {
        presence.push(conn.presence());
    }
    let now = std::time::Instant::now();
    let hello = crate::core::health::with_checks(gw, now, |checks| {
        methods::payload(&HelloOk {
            kind: "hello-ok",
            protocol,
            server: Server { version: gateway_proto::VERSION, conn_id: attempt.id },
            features: features(),
            snapshot: Snapshot {
                presence,
                health: methods::HealthAnswer {
                    ok: checks.ok,
                    ts: now_ms(),
                    duration_ms: None,
                    uptime_ms: gw.uptime_ms_at(now),
                    checks: &checks.json,
                },
                state_version: attempt.hub.state_version(),
                uptime_ms: gw.uptime_ms_at(now),
                config_path: gw.config_file().to_string_lossy(),
                state_dir: gw.paths.state_dir.to_string_lossy(),
                auth_mode: active.config.gateway.auth.mode.as_str(),
            },
            policy: Policy {
                max_payload: ws.max_payload_bytes.get(),
                max_buffered_bytes: ws.max_buffered_bytes.get(),
                tick_interval_ms: active.config.gateway.heartbeat.interval_ms.get(),
            },
            auth: HelloAuth {
                role: &role,
                scopes: &scopes,
                device_token: device.as_ref().map(|(_, token, _)| token.as_str()),
                issued_at_ms: device.as_ref().map(|(_, _, issued)| *issued),
            },
        })
    });
    Accepted { conn, hello }
}

/// `hello-ok`, typed: serialized once, without a `Value` tree.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HelloOk<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    protocol: u32,
    server: Server<'a>,
    features: &'static RawValue,
    snapshot: Snapshot<'a>,
    policy: Policy,
    auth: HelloAuth<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Server<'a> {
    version: &'static str,
    conn_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Snapshot<'a> {
    presence: Vec<Presence<'a>>,
    health: methods::HealthAnswer<'a>,
    state_version: gateway_proto::ws::StateVersion,
    uptime_ms: u64,
    config_path: std::borrow::Cow<'a, str>,
    state_dir: std::borrow::Cow<'a, str>,
    auth_mode: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Policy {
    max_payload: u64,
    max_buffered_bytes: u64,
    tick_interval_ms: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HelloAuth<'a> {
    role: &'a str,
    scopes: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    device_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    issued_at_ms: Option<u64>,
}

/// What this gateway serves (`hello-ok.features`): the same for every client, serialized once.
fn features() -> &'static RawValue {
    static FEATURES: std::sync::OnceLock<Box<RawValue>> = std::sync::OnceLock::new();
    FEATURES.get_or_init(|| {
        methods::payload(
            &json!({ "methods": Method::names(), "events": EVENTS, "capabilities": CAPABILITIES }),
        )
    })
}
