//! Paired devices as their last handshake left them, so that a reconnect that would write
//! nothing is answered without the database and without a hop to a blocking thread.
//!
//! Only [`super::Devices`] writes device rows, and it keeps this in step: a row it changes is
//! remembered again after the commit, or forgotten (revocation, approval). A handshake that read
//! the row before a revocation committed must not put it back afterwards: every forget bumps an
//! epoch, and an entry read under an older epoch is not remembered.

use std::collections::HashMap;
use std::sync::Mutex;

use ed25519_dalek::VerifyingKey;

/// Entries kept at most; beyond, new devices go to the database every time.
const MAX_ENTRIES: usize = 1024;

/// What a handshake needs of a paired device.
#[derive(Clone)]
pub struct Known<I> {
    pub public_key: String,
    /// `public_key` parsed, for the next signature check.
    pub verifying_key: Option<VerifyingKey>,
    pub role: String,
    pub granted: Vec<String>,
    pub token: String,
    pub issued_at_ms: u64,
    pub last_seen_ms: u64,
    pub info: I,
}

pub struct Recent<I> {
    inner: Mutex<Inner<I>>,
}

struct Inner<I> {
    epoch: u64,
    devices: HashMap<String, Known<I>>,
}

impl<I> Recent<I> {
    pub fn new() -> Self {
        Self { inner: Mutex::new(Inner { epoch: 0, devices: HashMap::new() }) }
    }

    /// Read before the database is: pass it to [`Recent::remember`].
    pub fn epoch(&self) -> u64 {
        self.lock().epoch
    }

    /// Keeps `known` for `device_id`, unless something was forgotten since `epoch` was read.
    pub fn remember(&self, epoch: u64, device_id: &str, known: Known<I>) {
        let mut inner = self.lock();
        if inner.epoch != epoch {
            return;
        }
        if inner.devices.len() < MAX_ENTRIES || inner.devices.contains_key(device_id) {
            inner.devices.insert(device_id.to_owned(), known);
        }
    }

    /// Drops what is known of `device_id`; called after its row changed under it.
    pub fn forget(&self, device_id: &str) {
        let mut inner = self.lock();
        inner.epoch += 1;
        inner.devices.remove(device_id);
    }

    /// Runs `f` on what is known of `device_id`, if anything.
    pub fn with<T>(&self, device_id: &str, f: impl FnOnce(&Known<I>) -> Option<T>) -> Option<T> {
        self.lock().devices.get(device_id).and_then(f)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<I>> {
        // The map holds no invariant a panic could break halfway.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(token: &str) -> Known<()> {
        Known {
            public_key: "k".into(),
            verifying_key: None,
            role: "operator".into(),
            granted: vec![],
            token: token.into(),
            issued_at_ms: 1,
            last_seen_ms: 1,
            info: (),
        }
    }

    fn token(recent: &Recent<()>, id: &str) -> Option<String> {
        recent.with(id, |k| Some(k.token.clone()))
    }

    #[test]
    fn an_entry_read_before_a_forget_is_not_remembered() {
        let recent = Recent::new();
        let epoch = recent.epoch();
        recent.remember(epoch, "a", known("t1"));
        assert_eq!(token(&recent, "a").as_deref(), Some("t1"));

        let stale = recent.epoch();
        recent.forget("a");
        recent.remember(stale, "a", known("t1"));
        assert_eq!(token(&recent, "a"), None, "a revoked device came back");
        recent.remember(recent.epoch(), "a", known("t2"));
        assert_eq!(token(&recent, "a").as_deref(), Some("t2"));
    }

    #[test]
    fn it_is_bounded() {
        let recent = Recent::new();
        for n in 0..MAX_ENTRIES + 10 {
            recent.remember(recent.epoch(), &n.to_string(), known("t"));
        }
        assert_eq!(recent.lock().devices.len(), MAX_ENTRIES);
        recent.remember(recent.epoch(), "0", known("t2"));
        assert_eq!(token(&recent, "0").as_deref(), Some("t2"), "a kept entry is still updated");
    }
}
