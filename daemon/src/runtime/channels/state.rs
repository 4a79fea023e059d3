//! What channels keep in SQLite: approved senders, pairing requests (a code per unknown sender,
//! an hour, at most three waiting per account), and the inbox. A message is recorded in the inbox
//! before anything else happens to it (keyed by the network's message id, so a replay is
//! recognised), its answer is recorded before it is sent, and it is marked done after: a restart
//! at any point answers it exactly once.

use std::sync::Arc;

use gateway_proto::time::now_ms;
use rusqlite::{params, OptionalExtension};

use crate::core::store::{Store, StoreError};

/// Pairing codes live this long.
pub const PAIRING_TTL_MS: u64 = 60 * 60 * 1000;
/// Pairing requests waiting at once per account; more unknown senders are ignored meanwhile.
pub const MAX_PENDING_PAIRINGS: usize = 3;
/// Letters and digits that cannot be mistaken for one another (no 0/O, 1/I/L).
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";

/// A pairing request as the control API and the WebSocket show it.
pub use gateway_proto::api::ChannelPairing as PairingRequest;

/// What asking for a pairing code gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pairing {
    /// A new code, to send to the sender.
    New(String),
    /// The sender's code, still waiting: not sent again.
    Waiting(String),
    /// Too many requests waiting on this account: nothing is sent.
    Full,
}

/// A message in the inbox that still needs work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    pub channel: String,
    pub account: String,
    pub message_id: String,
    pub chat: String,
    pub session_key: String,
    pub text: String,
    /// `Some`: the answer is known and only needs sending.
    pub reply: Option<String>,
    pub attempts: u32,
}

#[derive(Clone)]
pub struct ChannelState {
    store: Arc<Store>,
}

fn code() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the OS random source");
    bytes.iter().map(|b| CODE_ALPHABET[*b as usize % CODE_ALPHABET.len()] as char).collect()
}

impl ChannelState {
    pub fn new(store: Arc<Store>) -> Self {
        Self { store }
    }

    pub fn is_allowed(&self, channel: &str, account: &str, peer: &str) -> Result<bool, StoreError> {
        self.store.with(|c| {
            c.query_row(
                "SELECT 1 FROM channel_allow WHERE channel = ?1 AND account = ?2 AND peer = ?3",
                params![channel, account, peer],
                |_| Ok(()),
            )
            .optional()
            .map(|r| r.is_some())
        })
    }

    /// The sender's pairing code: a new one, the one still waiting, or none when the account
    /// has too many waiting.
    pub fn request_pairing(
        &self,
        channel: &str,
        account: &str,
        peer: &str,
        display: &str,
    ) -> Result<Pairing, StoreError> {
        let now = now_ms();
        self.store.transaction(|c| {
            let sql = |e| self.store.sql_error(e);
            c.execute("DELETE FROM channel_pairing WHERE expires_at_ms <= ?1", params![now as i64]).map_err(sql)?;
            let waiting: Option<String> = c
                .query_row(
                    "SELECT code FROM channel_pairing WHERE channel = ?1 AND account = ?2 AND peer = ?3",
                    params![channel, account, peer],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql)?;
            if let Some(code) = waiting {
                return Ok(Pairing::Waiting(code));
            }
            let pending: i64 = c
                .query_row(
                    "SELECT count(*) FROM channel_pairing WHERE channel = ?1 AND account = ?2",
                    params![channel, account],
                    |r| r.get(0),
                )
                .map_err(sql)?;
            if pending as usize >= MAX_PENDING_PAIRINGS {
                return Ok(Pairing::Full);
            }
            let code = code();
            let display: String = display.chars().filter(|c| !c.is_control()).take(100).collect();
            c.execute(
                "INSERT INTO channel_pairing (channel, account, peer, display, code, created_at_ms, expires_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![channel, account, peer, display, code, now as i64, (now + PAIRING_TTL_MS) as i64],
            )
            .map_err(sql)?;
            Ok::<_, StoreError>(Pairing::New(code))
        })
    }

    pub fn pairings(&self) -> Result<Vec<PairingRequest>, StoreError> {
        self.store.with(|c| {
            let mut stmt = c.prepare(
                "SELECT channel, account, peer, display, code, created_at_ms, expires_at_ms FROM channel_pairing
                 WHERE expires_at_ms > ?1 ORDER BY created_at_ms",
            )?;
            let rows = stmt.query_map(params![now_ms() as i64], |r| {
                Ok(PairingRequest {
                    channel: r.get(0)?,
                    account: r.get(1)?,
                    peer: r.get(2)?,
                    display: r.get(3)?,
                    code: r.get(4)?,
                    created_at_ms: r.get::<_, i64>(5)? as u64,
                    expires_at_ms: r.get::<_, i64>(6)? as u64,
                })
            })?;
            rows.collect()
        })
    }

    /// Approves (the sender joins the allowlist) or rejects a waiting code; the request it was,
    /// or None for an unknown or expired code. Codes are matched without regard to case.
    pub fn settle(
        &self,
        channel: &str,
        code: &str,
        approve: bool,
    ) -> Result<Option<PairingRequest>, StoreError> {
        let code = code.trim().to_ascii_uppercase();
        let found = self.pairings()?.into_iter().find(|p| p.channel == channel && p.code == code);
        let Some(request) = found else { return Ok(None) };
        self.store.transaction(|c| {
            let sql = |e| self.store.sql_error(e);
            c.execute(
                "DELETE FROM channel_pairing WHERE channel = ?1 AND account = ?2 AND peer = ?3",
                params![request.channel, request.account, request.peer],
            )
            .map_err(sql)?;
            if approve {
                c.execute(
                    "INSERT OR REPLACE INTO channel_allow (channel, account, peer, approved_at_ms) VALUES (?1, ?2, ?3, ?4)",
                    params![request.channel, request.account, request.peer, now_ms() as i64],
                )
                .map_err(sql)?;
            }
            Ok::<_, StoreError>(())
        })?;
        Ok(Some(request))
    }

    /// Where the account's stream of updates stands (None: from the start).
    pub fn cursor(&self, channel: &str, account: &str) -> Result<Option<String>, StoreError> {
        self.store.with(|c| {
            c.query_row(
                "SELECT cursor FROM channel_cursor WHERE channel = ?1 AND account = ?2",
                params![channel, account],
                |r| r.get(0),
            )
            .optional()
        })
    }

    pub fn set_cursor(&self, channel: &str, account: &str, cursor: &str) -> Result<(), StoreError> {
        self.store.with(|c| {
            c.execute(
                "INSERT INTO channel_cursor (channel, account, cursor, updated_at_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (channel, account) DO UPDATE SET cursor = excluded.cursor, updated_at_ms = excluded.updated_at_ms",
                params![channel, account, cursor, now_ms() as i64],
            )
            .map(|_| ())
        })
    }

    /// Records an inbound message; false when this message id was seen before (a replay).
    #[allow(clippy::too_many_arguments)]
    pub fn accept(
        &self,
        channel: &str,
        account: &str,
        message_id: &str,
        chat: &str,
        session_key: &str,
        text: &str,
    ) -> Result<bool, StoreError> {
        let now = now_ms() as i64;
        self.store.with(|c| {
            c.execute(
                "INSERT OR IGNORE INTO channel_inbox (channel, account, message_id, chat, session_key, text, state, received_at_ms, updated_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'accepted', ?7, ?7)",
                params![channel, account, message_id, chat, session_key, text, now],
            )
            .map(|n| n == 1)
        })
    }

    /// The answer is known: kept until it is sent.
    pub fn answered(
        &self,
        channel: &str,
        account: &str,
        message_id: &str,
        reply: &str,
    ) -> Result<(), StoreError> {
        self.set(channel, account, message_id, "replying", Some(reply), None)
    }

    pub fn done(&self, channel: &str, account: &str, message_id: &str) -> Result<(), StoreError> {
        self.set(channel, account, message_id, "done", None, None)
    }

    /// Gave up on a message (the reply could not be sent after every retry).
    pub fn failed(
        &self,
        channel: &str,
        account: &str,
        message_id: &str,
        why: &str,
    ) -> Result<(), StoreError> {
        self.set(channel, account, message_id, "failed", None, Some(why))
    }

    /// One more failed attempt at sending the reply.
    pub fn attempt_failed(
        &self,
        channel: &str,
        account: &str,
        message_id: &str,
        why: &str,
    ) -> Result<u32, StoreError> {
        self.store.with(|c| {
            c.execute(
                "UPDATE channel_inbox SET attempts = attempts + 1, last_error = ?4, updated_at_ms = ?5
                 WHERE channel = ?1 AND account = ?2 AND message_id = ?3",
                params![channel, account, message_id, why, now_ms() as i64],
            )?;
            c.query_row(
                "SELECT attempts FROM channel_inbox WHERE channel = ?1 AND account = ?2 AND message_id = ?3",
                params![channel, account, message_id],
                |r| r.get::<_, i64>(0).map(|n| n as u32),
            )
        })
    }

    fn set(
        &self,
        channel: &str,
        account: &str,
        message_id: &str,
        state: &str,
        reply: Option<&str>,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        self.store.with(|c| {
            c.execute(
                "UPDATE channel_inbox SET state = ?4, reply = COALESCE(?5, reply), last_error = COALESCE(?6, last_error), updated_at_ms = ?7
                 WHERE channel = ?1 AND account = ?2 AND message_id = ?3",
                params![channel, account, message_id, state, reply, error, now_ms() as i64],
            )
            .map(|_| ())
        })
    }

    /// Messages of one account still to be answered or sent, oldest first.
    pub fn open(&self, channel: &str, account: &str) -> Result<Vec<Open>, StoreError> {
        self.store.with(|c| {
            let mut stmt = c.prepare(
                "SELECT channel, account, message_id, chat, session_key, text, reply, attempts FROM channel_inbox
                 WHERE channel = ?1 AND account = ?2 AND state IN ('accepted', 'replying') ORDER BY received_at_ms, rowid",
            )?;
            let rows = stmt.query_map(params![channel, account], |r| {
                Ok(Open {
                    channel: r.get(0)?,
                    account: r.get(1)?,
                    message_id: r.get(2)?,
                    chat: r.get(3)?,
                    session_key: r.get(4)?,
                    text: r.get(5)?,
                    reply: r.get(6)?,
                    attempts: r.get::<_, i64>(7)? as u32,
                })
            })?;
            rows.collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> (tempfile::TempDir, ChannelState) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("g.db")).unwrap());
        (dir, ChannelState::new(store))
    }

    #[test]
    fn a_pairing_code_is_given_once_per_sender_and_at_most_three_wait() {
        let (_d, s) = state();
        let Pairing::New(code) = s.request_pairing("irc", "main", "alice", "alice").unwrap() else {
            panic!()
        };
        assert_eq!(code.len(), 8);
        assert!(code.bytes().all(|b| CODE_ALPHABET.contains(&b)), "{code}");
        assert_eq!(
            s.request_pairing("irc", "main", "alice", "alice").unwrap(),
            Pairing::Waiting(code.clone())
        );
        for peer in ["bob", "carol"] {
            assert!(matches!(s.request_pairing("irc", "main", peer, peer).unwrap(), Pairing::New(_)));
        }
        assert_eq!(s.request_pairing("irc", "main", "dave", "dave").unwrap(), Pairing::Full);
        assert!(matches!(s.request_pairing("irc", "other", "dave", "dave").unwrap(), Pairing::New(_)));

        assert!(!s.is_allowed("irc", "main", "alice").unwrap());
        let approved = s.settle("irc", &code.to_lowercase(), true).unwrap().unwrap();
        assert_eq!(approved.peer, "alice");
        assert!(s.is_allowed("irc", "main", "alice").unwrap());
        assert_eq!(s.settle("irc", &code, true).unwrap(), None, "a code is used once");
        assert_eq!(s.pairings().unwrap().len(), 3);
    }

    #[test]
    fn the_inbox_recognises_a_replay_and_keeps_what_is_open() {
        let (_d, s) = state();
        assert!(s.accept("irc", "main", "m1", "alice", "irc:main:dm:alice", "hi").unwrap());
        assert!(!s.accept("irc", "main", "m1", "alice", "irc:main:dm:alice", "hi").unwrap());
        assert!(s.accept("irc", "main", "m2", "alice", "irc:main:dm:alice", "again").unwrap());
        s.answered("irc", "main", "m1", "hello").unwrap();
        let open = s.open("irc", "main").unwrap();
        assert_eq!(
            open.iter().map(|o| (o.message_id.as_str(), o.reply.as_deref())).collect::<Vec<_>>(),
            [("m1", Some("hello")), ("m2", None)]
        );
        assert_eq!(s.attempt_failed("irc", "main", "m1", "offline").unwrap(), 1);
        s.done("irc", "main", "m1").unwrap();
        s.failed("irc", "main", "m2", "gave up").unwrap();
        assert!(s.open("irc", "main").unwrap().is_empty());
    }
}
