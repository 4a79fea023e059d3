//! The connections of the WebSocket protocol: who is connected (presence), fan-out of events,
//! closing a class of sockets (token rotated, device revoked, shutdown), and the per-address
//! cap on sockets that have not completed the handshake.

use std::collections::HashMap;
use std::io::Write;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use gateway_proto::ws::{close, scope, StateVersion};
use serde::Serialize;
use serde_json::{json, Value};

use super::outbox::Outbox;

/// How a connection authenticated; decides which sockets a credential change closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthKind {
    SharedToken,
    DeviceToken,
    Password,
    Session(String),
    /// A Control UI browser session (its cookie), by id.
    Browser(String),
    TrustedProxy(String),
    None,
}

/// An authenticated connection, as the hub and the methods see it.
pub struct Conn {
    /// Shared with the hub's map, which is keyed by it.
    pub id: Arc<str>,
    pub client_id: String,
    pub client_mode: String,
    pub client_version: String,
    pub platform: String,
    pub display_name: Option<String>,
    pub instance_id: Option<String>,
    pub device_id: Option<String>,
    pub role: String,
    pub scopes: Vec<String>,
    pub auth: AuthKind,
    pub connected_at_ms: u64,
    pub outbox: Arc<Outbox>,
    /// Whether it asked for `sessions.changed` events (`sessions.subscribe`).
    pub sessions_subscribed: AtomicBool,
}

impl Conn {
    /// Presence is state about other clients: only readers get it.
    pub fn sees_presence(&self) -> bool {
        self.scopes.iter().any(|s| [scope::READ, scope::WRITE, scope::ADMIN].contains(&s.as_str()))
    }

    /// `sessions.changed` goes to readers that subscribed, as in the reference.
    pub fn sees_session_changes(&self) -> bool {
        self.sees_presence() && self.sessions_subscribed.load(Ordering::Relaxed)
    }

    /// This connection as presence lists show it.
    pub fn presence(&self) -> Presence<'_> {
        Presence {
            conn_id: &self.id,
            client_id: &self.client_id,
            mode: &self.client_mode,
            version: &self.client_version,
            platform: &self.platform,
            display_name: self.display_name.as_deref(),
            instance_id: self.instance_id.as_deref(),
            device_id: self.device_id.as_deref(),
            roles: [&self.role],
            scopes: &self.scopes,
            ts: self.connected_at_ms,
        }
    }
}

/// A presence entry, typed: presence lists are serialized on every join and leave of a reader.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Presence<'a> {
    conn_id: &'a str,
    client_id: &'a str,
    mode: &'a str,
    version: &'a str,
    platform: &'a str,
    display_name: Option<&'a str>,
    instance_id: Option<&'a str>,
    device_id: Option<&'a str>,
    roles: [&'a str; 1],
    scopes: &'a [String],
    ts: u64,
}

/// The `presence` event's payload.
#[derive(Serialize)]
struct PresenceList<'a> {
    presence: Vec<Presence<'a>>,
}

#[derive(Default)]
pub struct Hub {
    conns: Mutex<HashMap<Arc<str>, Arc<Conn>>>,
    unauthenticated: Mutex<HashMap<IpAddr, u32>>,
    presence_version: AtomicU64,
    health_version: AtomicU64,
}

/// A place among an address's unauthenticated sockets, given back on drop.
pub struct PreAuthSlot {
    hub: Arc<Hub>,
    ip: IpAddr,
}

impl Drop for PreAuthSlot {
    fn drop(&mut self) {
        let mut map = self.hub.unauthenticated.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

impl Hub {
    /// Takes one of `ip`'s places for sockets that have not completed the handshake.
    pub fn reserve_pre_auth(self: &Arc<Self>, ip: IpAddr, limit: u32) -> Option<PreAuthSlot> {
        let mut map = self.unauthenticated.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(ip).or_insert(0);
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(PreAuthSlot { hub: self.clone(), ip })
    }

    pub fn authenticated(&self) -> usize {
        self.lock().len()
    }

    pub fn state_version(&self) -> StateVersion {
        StateVersion {
            presence: self.presence_version.load(Ordering::Relaxed),
            health: self.health_version.load(Ordering::Relaxed),
        }
    }

    /// Everyone connected, oldest first.
    /// The connections, oldest first: what presence lists show (see [`Conn::presence`]).
    pub fn presence(&self) -> Vec<Arc<Conn>> {
        let mut list: Vec<Arc<Conn>> = self.lock().values().cloned().collect();
        list.sort_by_key(|c| c.connected_at_ms);
        list
    }

    /// Adds an authenticated connection and tells the readers.
    pub fn join(&self, conn: Arc<Conn>, limit: usize) {
        self.lock().insert(conn.id.clone(), conn);
        self.presence_changed(limit);
    }

    pub fn leave(&self, id: &str, limit: usize) {
        if self.lock().remove(id).is_some() {
            self.presence_changed(limit);
        }
    }

    /// One list for all readers; clients without scopes (which may be many) get none of it, and
    /// with no reader connected the list is not even built.
    fn presence_changed(&self, limit: usize) {
        self.presence_version.fetch_add(1, Ordering::Relaxed);
        if self.lock().values().any(|c| c.sees_presence()) {
            let conns = self.presence();
            let payload = PresenceList { presence: conns.iter().map(|c| c.presence()).collect() };
            self.send("presence", &payload, true, limit, Conn::sees_presence);
        }
    }

    /// A new health state: bumps its version and sends a `health` event.
    pub fn health_changed(&self, health: &Value, limit: usize) {
        self.health_version.fetch_add(1, Ordering::Relaxed);
        self.broadcast("health", health, true, limit);
    }

    /// Sends an event to every authenticated connection; each gets its own `seq`.
    pub fn broadcast(&self, event: &str, payload: &Value, droppable: bool, limit: usize) {
        self.send(event, payload, droppable, limit, |_| true);
    }

    /// Sends an event to the connections `to` selects.
    pub fn send(
        &self,
        event: &str,
        payload: &(impl Serialize + ?Sized),
        droppable: bool,
        limit: usize,
        to: impl Fn(&Conn) -> bool,
    ) {
        let payload = serde_json::to_string(payload).expect("event payloads serialize");
        let version = serde_json::to_string(&self.state_version()).expect("plain JSON");
        let conns: Vec<Arc<Conn>> = self.lock().values().filter(|c| to(c)).cloned().collect();
        for conn in conns {
            let write = |seq, out: &mut Vec<u8>| event_json(out, event, &payload, seq, Some(&version));
            let _ = conn.outbox.push_event(write, droppable, limit);
        }
    }

    /// Closes the connections that match, e.g. those that used a credential that changed.
    pub fn close_where(&self, matches: impl Fn(&Conn) -> bool, code: u16, reason: &str) -> usize {
        let conns: Vec<Arc<Conn>> = self.lock().values().filter(|c| matches(c)).cloned().collect();
        for conn in &conns {
            conn.outbox.close(code, reason);
        }
        conns.len()
    }

    /// Graceful stop: a `shutdown` event, then close 1012 for everyone.
    pub fn shutdown(&self, reason: &str, restart_expected_ms: Option<u64>) {
        let mut payload = json!({ "reason": reason });
        if let Some(ms) = restart_expected_ms {
            payload["restartExpectedMs"] = ms.into();
        }
        self.broadcast("shutdown", &payload, false, usize::MAX);
        self.close_where(|_| true, close::RESTART, reason);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Appends an event frame's JSON, built around an already serialized payload.
pub fn event_json(out: &mut Vec<u8>, event: &str, payload: &str, seq: u64, state_version: Option<&str>) {
    out.extend_from_slice(br#"{"type":"event","event":"#);
    serde_json::to_writer(&mut *out, event).expect("a string");
    out.extend_from_slice(br#","payload":"#);
    out.extend_from_slice(payload.as_bytes());
    out.extend_from_slice(br#","seq":"#);
    let _ = write!(out, "{seq}");
    if let Some(v) = state_version {
        out.extend_from_slice(br#","stateVersion":"#);
        out.extend_from_slice(v.as_bytes());
    }
    out.push(b'}');
}
