//! `connect` in password mode: the password, a sign-in session token, or this device's token.

use std::sync::Arc;

use gateway_proto::ws::{auth_code, ConnectAuth, DeviceProof};

use super::handshake::Refusal;
use super::hub::AuthKind;
use crate::core::gateway::Gateway;
use crate::core::signin_store::Kind;

/// `connect` in password mode: the password, a session token, or this device's token.
pub async fn verify_connect(
    gw: &Arc<Gateway>,
    auth: &ConnectAuth,
    device: Option<&DeviceProof>,
) -> Result<AuthKind, Refusal> {
    if let Some(password) = auth.password.as_deref().filter(|p| !p.is_empty()) {
        return if gw.password.verify(password).await {
            Ok(AuthKind::Password)
        } else {
            Err(Refusal::auth_failure(auth_code::PASSWORD_MISMATCH, "gateway password mismatch"))
        };
    }
    let token = auth.token.as_deref().or(auth.device_token.as_deref()).unwrap_or("");
    if !token.is_empty() {
        if let Some(id) = gw.signins.verify(Kind::Bearer, token) {
            return Ok(AuthKind::Session(id));
        }
        if device.is_some_and(|d| gw.devices.verify_token(&d.id, token)) {
            return Ok(AuthKind::DeviceToken);
        }
        return Err(Refusal::auth_failure(
            auth_code::PASSWORD_MISMATCH,
            "session or device token not valid: sign in again",
        ));
    }
    Err(Refusal::auth_failure(
        auth_code::PASSWORD_MISSING,
        "gateway password missing: send it in connect auth.password, or a session token in auth.token",
    ))
}
