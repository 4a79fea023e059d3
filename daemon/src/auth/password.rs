//! Password auth (`gateway.auth.mode = "password"`).

use std::sync::Arc;

use gateway_proto::ws::{auth_code, ConnectAuth, DeviceProof};

use crate::gateway::Gateway;
use crate::ws::handshake::Refusal;
use crate::ws::hub::AuthKind;

pub async fn verify_connect(
    _gw: &Arc<Gateway>,
    _auth: &ConnectAuth,
    _device: Option<&DeviceProof>,
) -> Result<AuthKind, Refusal> {
    Err(Refusal::auth_failure(
        auth_code::PASSWORD_MISMATCH,
        "password auth is not available yet",
    ))
}
