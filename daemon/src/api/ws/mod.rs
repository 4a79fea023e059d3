//! The WebSocket control protocol on the main port (OpenClaw gateway protocol v4 on the wire):
//! framing, the upgrade, one task per connection, the hub that fans events out, the handshake
//! and the methods. The door keeps its own connections: it learns what happened in the gateway
//! from the core's events and the runs' events, and decides what that means for its sockets.

mod channels;
pub mod codec;
pub mod config;
mod conn;
pub mod conversation;
mod cron;
pub mod devices;
pub mod handshake;
pub mod hub;
pub mod methods;
mod notes;
pub mod outbox;
pub mod password_auth;
mod summary;
pub mod upgrade;

use std::sync::Arc;

use gateway_proto::ws::close;
use serde_json::json;

use crate::core::events::{CoreEvent, Credential, SessionChange};
use crate::core::gateway::Gateway;
use hub::AuthKind;
pub use hub::Hub;

/// Opens the door: a hub for its connections, subscribed to the core's events and to the runs'.
pub fn open(gw: &Arc<Gateway>) -> Arc<Hub> {
    let hub = Arc::new(Hub::default());
    conversation::observe_runs(gw, &hub);
    let weak = Arc::downgrade(gw);
    let subscriber = hub.clone();
    gw.events.subscribe(Box::new(move |event| {
        let limit = weak.upgrade().map_or(usize::MAX, |gw| gw.ws_buffer_limit());
        on_event(&subscriber, event, limit)
    }));
    hub
}

/// What a core event means for the sockets; answers how many it closed.
fn on_event(hub: &Hub, event: &CoreEvent, limit: usize) -> usize {
    match event {
        CoreEvent::ConfigApplied { generation, changed_keys, trigger } => {
            let payload =
                json!({ "generation": generation, "changedKeys": changed_keys, "trigger": trigger });
            hub.broadcast("config.changed", &payload, false, limit);
            0
        }
        CoreEvent::TokenRotated => hub.close_where(
            |c| matches!(c.auth, AuthKind::SharedToken | AuthKind::Browser(_)),
            close::AUTH_CHANGED,
            "the gateway token changed: reconnect with the new one",
        ),
        CoreEvent::CredentialRevoked(Credential::Device(id)) => hub.close_where(
            |c| c.device_id.as_deref().is_some_and(|d| d.eq_ignore_ascii_case(id)),
            close::AUTH_CHANGED,
            "device revoked",
        ),
        CoreEvent::CredentialRevoked(Credential::SignIn(id)) => hub.close_where(
            |c| matches!(&c.auth, AuthKind::Session(s) | AuthKind::Browser(s) if s == id),
            close::AUTH_CHANGED,
            "session ended",
        ),
        CoreEvent::CredentialRevoked(Credential::Password) => hub.close_where(
            |c| matches!(c.auth, AuthKind::Password | AuthKind::Session(_) | AuthKind::Browser(_)),
            close::AUTH_CHANGED,
            "the gateway password changed: sign in again",
        ),
        CoreEvent::SessionsChanged { key, change, at_ms } => {
            // `sessionKey` and `reason` are the reference's names (`new`, `reset`, `delete`).
            let reason = match change {
                SessionChange::Created => "new",
                SessionChange::Reset => "reset",
                SessionChange::Deleted => "delete",
            };
            let payload = json!({
                "key": key, "change": change.as_str(), "ts": at_ms, "sessionKey": key, "reason": reason,
            });
            hub.send("sessions.changed", &payload, true, limit, hub::Conn::sees_session_changes);
            0
        }
        CoreEvent::Tick { at_ms, ticks, interval_ms } => {
            hub.broadcast("tick", &json!({ "ts": at_ms }), true, limit);
            // The reference's heartbeat event reports an agent heartbeat turn; ours reports the
            // gateway's heartbeat loop, which runs no turn: "ok-empty", the reference's "it ran,
            // with nothing to say". Readers only, as the reference sends it.
            let heartbeat = json!({
                "ts": at_ms, "status": "ok-empty", "indicatorType": "ok", "source": "gateway",
                "ticks": ticks, "intervalMs": interval_ms,
            });
            hub.send("heartbeat", &heartbeat, true, limit, hub::Conn::sees_presence);
            0
        }
        CoreEvent::HealthChanged { report, at_ms, uptime_ms } => {
            let health =
                serde_json::to_value(methods::health_result(report, *at_ms, *uptime_ms)).expect("plain JSON");
            hub.health_changed(&health, limit);
            0
        }
        CoreEvent::Shutdown { reason, restart_expected_ms } => {
            hub.shutdown(reason, *restart_expected_ms);
            0
        }
    }
}
