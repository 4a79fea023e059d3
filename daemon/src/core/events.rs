//! What the core tells the doors: typed events, published by the core and by the doors that
//! change shared state, delivered to every subscriber. The core never reaches into a door (to
//! close a WebSocket, say): it publishes, and each door decides what the event means for its own
//! connections.
//!
//! Delivery is synchronous, in the publisher's thread, so a subscriber must only do quick,
//! non-blocking work (queue a frame, mark a socket for closing). That keeps the order of events
//! and lets a publisher report what the event ended: `publish` returns how many connections the
//! subscribers closed because of it (a revoked device's sockets, say).

use std::sync::RwLock;

use gateway_proto::api::{HealthReport, ReloadTrigger};

/// Something that happened in the gateway.
#[derive(Debug, Clone)]
pub enum CoreEvent {
    /// A reload put a new config generation in effect.
    ConfigApplied { generation: u64, changed_keys: Vec<String>, trigger: ReloadTrigger },
    /// The shared gateway token changed: what the old one granted ends.
    TokenRotated,
    /// A credential was revoked: what it granted ends.
    CredentialRevoked(Credential),
    /// A conversation session was created, reset or deleted.
    SessionsChanged { key: String, change: SessionChange, at_ms: u64 },
    /// The heartbeat ticked: the `ticks`th time since start, every `interval_ms`.
    Tick { at_ms: u64, ticks: u64, interval_ms: u64 },
    /// The health checks' outcome changed.
    HealthChanged { report: HealthReport, at_ms: u64, uptime_ms: u64 },
    /// The daemon is leaving; `restart_expected_ms` when it comes back at once.
    Shutdown { reason: &'static str, restart_expected_ms: Option<u64> },
}

/// A credential that no longer opens the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A paired device (its id, lower-case hex).
    Device(String),
    /// One sign-in session (its id).
    SignIn(String),
    /// The gateway password, and every sign-in session it granted.
    Password,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionChange {
    Created,
    Reset,
    Deleted,
}

impl SessionChange {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Reset => "reset",
            Self::Deleted => "deleted",
        }
    }
}

/// A subscriber: handles an event and answers how many of its connections the event closed.
pub type Subscriber = Box<dyn Fn(&CoreEvent) -> usize + Send + Sync>;

/// The subscribers, in the order they subscribed.
#[derive(Default)]
pub struct Events {
    subscribers: RwLock<Vec<Subscriber>>,
}

impl Events {
    pub fn subscribe(&self, subscriber: Subscriber) {
        self.subscribers.write().unwrap_or_else(|e| e.into_inner()).push(subscriber);
    }

    /// Delivers `event` to every subscriber; returns the connections they closed because of it.
    pub fn publish(&self, event: &CoreEvent) -> usize {
        self.subscribers.read().unwrap_or_else(|e| e.into_inner()).iter().map(|s| s(event)).sum()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    #[test]
    fn every_subscriber_sees_each_event_and_the_closed_counts_add_up() {
        let events = Events::default();
        let seen = Arc::new(AtomicUsize::new(0));
        for closes in [1, 2] {
            let seen = seen.clone();
            events.subscribe(Box::new(move |e| {
                seen.fetch_add(1, Ordering::Relaxed);
                if matches!(e, CoreEvent::CredentialRevoked(_)) {
                    closes
                } else {
                    0
                }
            }));
        }
        assert_eq!(events.publish(&CoreEvent::CredentialRevoked(Credential::Password)), 3);
        assert_eq!(events.publish(&CoreEvent::Tick { at_ms: 1, ticks: 1, interval_ms: 1 }), 0);
        assert_eq!(seen.load(Ordering::Relaxed), 4);
    }
}
