//! The `device.pair.*` methods, in the reference gateway's shapes, over the same pairing
//! registry as the control API (`gatewayctl devices`): list, approve, reject, remove.

use std::sync::Arc;

use gateway_proto::api::{DeviceRecord, PairingRequest};
use gateway_proto::time::now_ms;
use gateway_proto::ws::{code, ErrorShape};
use gateway_proto::ws_methods::{PairRemoveParams, PairRequestParams};
use serde_json::{json, Value};

use super::methods::Pending;
use crate::core::events::{CoreEvent, Credential};
use crate::core::gateway::Gateway;
use crate::core::store::{off_workers, CallError};
use crate::runtime::devices::{DeviceError, Devices};

/// `{pending, paired}`: requests waiting for approval, and the devices paired now (a removed,
/// that is revoked, device is no longer listed).
pub fn list(gw: Arc<Gateway>) -> Pending {
    Box::pin(async move {
        let (paired, pending) = registry(&gw, |d| Ok((d.list()?, d.pending()?))).await?;
        Ok(json!({
            "pending": pending.iter().map(pending_shape).collect::<Vec<_>>(),
            "paired": paired.iter().filter(|d| !d.revoked).map(device_shape).collect::<Vec<_>>(),
        }))
    })
}

/// Approves a pairing request with the scopes it asked for: `{requestId, device}`.
pub fn approve(gw: Arc<Gateway>, p: PairRequestParams) -> Pending {
    Box::pin(async move {
        let id = p.request_id.clone();
        let device = registry(&gw, move |d| d.approve(&id, None)).await?;
        Ok(json!({ "requestId": p.request_id, "device": device_shape(&device) }))
    })
}

/// Rejects a pairing request: `{requestId, deviceId}`.
pub fn reject(gw: Arc<Gateway>, p: PairRequestParams) -> Pending {
    Box::pin(async move {
        let id = p.request_id.clone();
        let request = registry(&gw, move |d| d.reject_request(&id)).await?;
        Ok(json!({ "requestId": request.request_id, "deviceId": request.device_id }))
    })
}

/// Removes a paired device: its token stops working and its connections close.
/// `{deviceId, removedAtMs}`.
pub fn remove(gw: Arc<Gateway>, p: PairRemoveParams) -> Pending {
    Box::pin(async move {
        let id = p.device_id;
        let device_id = registry(&gw, move |d| d.revoke(&id)).await?;
        gw.events.publish(&CoreEvent::CredentialRevoked(Credential::Device(device_id.clone())));
        Ok(json!({ "deviceId": device_id, "removedAtMs": now_ms() }))
    })
}

async fn registry<T: Send + 'static>(
    gw: &Gateway,
    call: impl FnOnce(&Devices) -> Result<T, DeviceError> + Send + 'static,
) -> Result<T, ErrorShape> {
    off_workers(gw.devices.clone(), call).await.map_err(|e| match e {
        CallError::Failed(DeviceError::Store(e)) => {
            tracing::error!(error = %e, "the device registry failed");
            let mut error = ErrorShape::new(
                code::UNAVAILABLE,
                "the gateway cannot use its device registry right now; try again",
            );
            error.retryable = Some(true);
            error
        }
        CallError::Failed(e) => ErrorShape::new(code::INVALID_REQUEST, e.to_string()),
        task => ErrorShape::new(code::UNAVAILABLE, task.to_string()),
    })
}

fn device_shape(d: &DeviceRecord) -> Value {
    json!({
        "deviceId": d.device_id,
        "displayName": d.display_name,
        "platform": d.platform,
        "clientId": d.client_id,
        "clientMode": d.mode,
        "role": d.role,
        "roles": [d.role],
        "scopes": d.scopes,
        "createdAtMs": d.paired_at_ms,
        "approvedAtMs": d.paired_at_ms,
        "lastSeenAtMs": d.last_seen_ms,
    })
}

fn pending_shape(r: &PairingRequest) -> Value {
    json!({
        "requestId": r.request_id,
        "deviceId": r.device_id,
        "displayName": r.display_name,
        "platform": r.platform,
        "clientId": r.client_id,
        "clientMode": r.mode,
        "role": r.role,
        "roles": [r.role],
        "scopes": r.scopes,
        "ts": r.created_at_ms,
    })
}
