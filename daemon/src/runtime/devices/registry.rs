//! Paired devices and pairing requests, kept in the state database.
//!
//! A device is known by its id, the SHA-256 of its Ed25519 public key (checked by
//! [`super::proof`] before anything here is called). A device from loopback pairs itself; any
//! other waits in `pairing_requests` until `gatewayctl devices approve` moves it to `devices`.
//!
//! Device tokens: only their SHA-256 is stored, with the salt they are derived from (see
//! [`super::token`]): [`Devices::pair`] hands a paired device the same token on every handshake
//! until it is revoked or pairs again, and writes nothing for that. When a new token replaces a
//! live one (the key file was lost), the one before stays valid until the next replacement, so
//! a client that missed the `hello-ok` is not locked out.

use std::sync::Arc;

use gateway_config::secret::generate_token;
use gateway_proto::ws::{scope, ClientInfo};
use rusqlite::{params, Connection, OptionalExtension, Row};
use subtle::ConstantTimeEq;

use super::recent::{Known, Recent};
use super::token::{self, Issued, TokenKey};

pub use gateway_proto::api::{DeviceRecord, PairingRequest};

use gateway_proto::time::now_ms;

use crate::core::store::{Store, StoreError};

/// Pending requests kept at most; beyond, the least recently seen is dropped.
pub const MAX_PENDING: i64 = 100;
/// Length of a request id, in hex characters.
pub const REQUEST_ID_LEN: usize = 8;
/// Length of a device id, in hex characters.
pub const DEVICE_ID_LEN: usize = 64;
/// A device may be named by a prefix of its id this long or longer.
pub const MIN_PREFIX_LEN: usize = 8;
const MAX_SCOPES: usize = 32;
const MAX_SCOPE_LEN: usize = 64;
const MAX_TEXT_LEN: usize = 128;
const MAX_TOKEN_LEN: usize = 256;
/// A paired device's `last_seen_ms` is written when it is older than this (or the client's
/// description changed): a reconnect within it writes nothing.
pub const LAST_SEEN_STEP_MS: u64 = 60_000;

/// The outcome of [`Devices::pair`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pairing {
    /// Paired: `scopes` are the ones usable on this connection.
    Paired { scopes: Vec<String>, device_token: String, issued_at_ms: u64 },
    /// Waiting for `gatewayctl devices approve REQUEST_ID`.
    Pending { request_id: String },
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("invalid id {0:?}: give a request id (8 hex characters) or a device id (64 hex characters, or at least its first 8); see `gatewayctl devices list`")]
    InvalidId(String),
    #[error("no {what} matches {id:?}: see `gatewayctl devices list`")]
    NotFound { what: &'static str, id: String },
    #[error("{id:?} matches several {what}s: give more characters of the device id")]
    Ambiguous { what: &'static str, id: String },
    #[error("device {0} is paired with another public key")]
    KeyMismatch(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The registry. Cheap to clone (the store is shared); calls block on SQLite (a commit is an
/// fsync, a few milliseconds), so async code may want `spawn_blocking` for the control routes.
#[derive(Clone)]
pub struct Devices {
    store: Arc<Store>,
    key: Arc<TokenKey>,
    recent: Arc<Recent<Info>>,
}

impl Devices {
    pub fn new(store: Arc<Store>, key: TokenKey) -> Self {
        Self { store, key: Arc::new(key), recent: Arc::new(Recent::new()) }
    }

    /// The parsed key of a device this process has seen, if `public_key` is still its key.
    pub fn known_key(&self, device_id: &str, public_key: &str) -> Option<ed25519_dalek::VerifyingKey> {
        let public_key = public_key.trim_end_matches('=');
        self.recent.with(device_id, |known| known.verifying_key.filter(|_| known.public_key == public_key))
    }

    /// [`Devices::pair`] for a paired device whose reconnect would write nothing (same key,
    /// role and description, seen less than [`LAST_SEEN_STEP_MS`] ago), answered from memory:
    /// no database, so callers need not leave the async workers. `None`: call `pair`.
    pub fn pair_known(
        &self,
        device_id: &str,
        public_key: &str,
        client: &ClientInfo,
        role: &str,
        requested_scopes: &[String],
    ) -> Option<Pairing> {
        let requested = scopes_arg(requested_scopes).ok()?;
        let now = now_ms();
        self.recent.with(device_id, |known| {
            let same = known.public_key == public_key.trim_end_matches('=')
                && known.role == role
                && now.saturating_sub(known.last_seen_ms) < LAST_SEEN_STEP_MS
                && known.info == Info::from(client);
            same.then(|| Pairing::Paired {
                scopes: usable_scopes(&known.granted, &requested),
                device_token: known.token.clone(),
                issued_at_ms: known.issued_at_ms,
            })
        })
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Called after the device's Ed25519 proof verified. A paired device gets its device token
    /// and the scopes it may use now: the requested ones that its granted scopes allow
    /// (operator.admin allows every scope, operator.write allows operator.read), or all granted
    /// ones if it requested none. An unpaired device from loopback (`loopback == true`) is paired
    /// automatically with the scopes it requested. Otherwise a pairing request is recorded (or
    /// the existing pending one for that device refreshed) and `Pending { request_id }` returned.
    /// A device whose public key differs from the one paired under that id is refused
    /// (DeviceError). A revoked device is treated as unpaired, and so is a paired device asking
    /// for another role than the one it was paired with. The reconnect of a paired device writes
    /// only when its description changed or its `last_seen_ms` is [`LAST_SEEN_STEP_MS`] old.
    pub fn pair(
        &self,
        device_id: &str,
        public_key: &str,
        client: &ClientInfo,
        role: &str,
        requested_scopes: &[String],
        loopback: bool,
    ) -> Result<Pairing, DeviceError> {
        let device_id = device_id_arg(device_id)?;
        let public_key = public_key_arg(public_key)?;
        let role = role_arg(role)?;
        let requested = scopes_arg(requested_scopes)?;
        let info = Info::from(client);
        let now = now_ms();
        let store = &*self.store;
        let epoch = self.recent.epoch();
        let mut known = None;
        let pairing = store.transaction(|c| {
            let paired = c
                .query_row(&format!("SELECT {PAIRED_COLUMNS} FROM devices WHERE device_id = ?1 AND revoked_at_ms IS NULL"), [&device_id], paired_row)
                .optional()
                .or_store(store)?;
            if paired.as_ref().is_some_and(|p| p.public_key != public_key) {
                return Err(DeviceError::KeyMismatch(device_id.clone()));
            }
            match paired {
                Some(p) if p.role == role => {
                    let live = match (&p.token_salt, &p.token_hash) {
                        (Some(salt), Some(hash)) => self.key.current(&device_id, salt, hash),
                        _ => None,
                    };
                    let (token, issued_at_ms) = match (live, p.token_issued_at_ms) {
                        (Some(token), Some(issued)) => (token, issued),
                        _ => {
                            let issued = self.key.issue(&device_id);
                            c.execute(
                                "UPDATE devices SET prev_token_hash = token_hash, token_hash = ?2, token_salt = ?3,
                                     token_issued_at_ms = ?4
                                 WHERE device_id = ?1",
                                params![device_id, issued.hash, issued.salt, now as i64],
                            )
                            .or_store(store)?;
                            (issued.token, now)
                        }
                    };
                    let seen_lately = p.last_seen_ms.filter(|seen| now.saturating_sub(*seen) < LAST_SEEN_STEP_MS);
                    let (last_seen_ms, stale) = match seen_lately {
                        Some(seen) if p.info == info => (seen, false),
                        _ => (now, true),
                    };
                    if stale {
                        c.execute(
                            "UPDATE devices SET last_seen_ms = ?2, display_name = ?3, client_id = ?4, client_mode = ?5,
                                 platform = ?6, device_family = ?7
                             WHERE device_id = ?1",
                            params![device_id, now as i64, info.display_name, info.client_id, info.mode, info.platform, info.device_family],
                        )
                        .or_store(store)?;
                    }
                    let scopes = usable_scopes(&p.scopes, &requested);
                    let pairing = Pairing::Paired { scopes, device_token: token.clone(), issued_at_ms };
                    let verifying_key = super::proof::parse_key(&public_key).ok();
                    known = Some(Known { public_key, verifying_key, role, granted: p.scopes, token, issued_at_ms, last_seen_ms, info });
                    Ok(pairing)
                }
                _ if loopback => {
                    let issued = self.key.issue(&device_id);
                    let record = Pairable { device_id: &device_id, public_key: &public_key, info: &info, role: &role, scopes: &requested };
                    record.insert(c, now, Some(&issued)).or_store(store)?;
                    c.execute("DELETE FROM pairing_requests WHERE device_id = ?1", [&device_id]).or_store(store)?;
                    tracing::info!(device_id, role, scopes = requested.join(","), "device paired automatically (loopback)");
                    let pairing = Pairing::Paired { scopes: requested.clone(), device_token: issued.token.clone(), issued_at_ms: now };
                    let verifying_key = super::proof::parse_key(&public_key).ok();
                    known = Some(Known { public_key, verifying_key, role, granted: requested, token: issued.token, issued_at_ms: now, last_seen_ms: now, info });
                    Ok(pairing)
                }
                _ => {
                    let request_id = record_request(c, &device_id, &public_key, &info, &role, &requested, now).or_store(store)?;
                    Ok(Pairing::Pending { request_id })
                }
            }
        })?;
        if let Some(known) = known {
            self.recent.remember(epoch, &device_id, known);
        }
        Ok(pairing)
    }

    /// True when `token` is the live device token issued to `device_id` (constant-time compare
    /// of SHA-256 digests). The token issued just before the live one is accepted as well (see
    /// the module's comment). Any error is a `false`.
    pub fn verify_token(&self, device_id: &str, token: &str) -> bool {
        let Ok(device_id) = device_id_arg(device_id) else {
            return false;
        };
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return false;
        }
        let live =
            |known: &Known<Info>| crate::core::secrets::tokens_equal(token, &known.token).then_some(());
        if self.recent.with(&device_id, live).is_some() {
            return true;
        }
        let hashes = self.store.with(|c| {
            c.query_row(
                "SELECT token_hash, prev_token_hash FROM devices WHERE device_id = ?1 AND revoked_at_ms IS NULL",
                [&device_id],
                |row| Ok((row.get::<_, Option<Vec<u8>>>(0)?, row.get::<_, Option<Vec<u8>>>(1)?)),
            )
            .optional()
        });
        let Ok(Some((live, previous))) = hashes else {
            return false;
        };
        let presented = token::digest(token);
        let matches = |stored: &Option<Vec<u8>>| match stored {
            Some(h) if h.len() == presented.len() => h.as_slice().ct_eq(presented.as_slice()),
            _ => 0u8.ct_eq(&1u8),
        };
        (matches(&live) | matches(&previous)).into()
    }

    /// Paired devices, revoked ones included (marked), oldest pairing first.
    pub fn list(&self) -> Result<Vec<DeviceRecord>, DeviceError> {
        Ok(self.store.with(|c| {
            let mut stmt =
                c.prepare(&format!("SELECT {DEVICE_COLUMNS} FROM devices ORDER BY paired_at_ms, device_id"))?;
            let rows = stmt.query_map([], device_row)?;
            rows.collect()
        })?)
    }

    /// Pending pairing requests, oldest first.
    pub fn pending(&self) -> Result<Vec<PairingRequest>, DeviceError> {
        Ok(self.store.with(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {REQUEST_COLUMNS} FROM pairing_requests ORDER BY created_at_ms, request_id"
            ))?;
            let rows = stmt.query_map([], request_row)?;
            rows.collect()
        })?)
    }

    /// Approves a pending request (by request id or device id); scopes None = the requested
    /// ones. The device gets its token at its next handshake.
    pub fn approve(&self, id: &str, scopes: Option<Vec<String>>) -> Result<DeviceRecord, DeviceError> {
        let id = lookup_arg(id)?;
        let scopes = scopes.map(|s| scopes_arg(&s)).transpose()?;
        let now = now_ms();
        let store = &*self.store;
        let record = store.transaction(|c| {
            let (request, public_key, family) = find_request(c, store, &id)?;
            let scopes = scopes.unwrap_or_else(|| request.scopes.clone());
            let info = Info {
                display_name: request.display_name.clone(),
                client_id: request.client_id.clone(),
                mode: request.mode.clone(),
                platform: request.platform.clone(),
                device_family: family,
            };
            let record = Pairable {
                device_id: &request.device_id,
                public_key: &public_key,
                info: &info,
                role: &request.role,
                scopes: &scopes,
            };
            record.insert(c, now, None).or_store(store)?;
            self.recent.forget(&request.device_id);
            c.execute("DELETE FROM pairing_requests WHERE request_id = ?1", [&request.request_id])
                .or_store(store)?;
            c.query_row(
                &format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE device_id = ?1"),
                [&request.device_id],
                device_row,
            )
            .or_store(store)
        })?;
        tracing::info!(
            device_id = record.device_id,
            scopes = record.scopes.join(","),
            "device pairing approved"
        );
        Ok(record)
    }

    /// Removes a pending request (by request id or device id).
    pub fn reject(&self, id: &str) -> Result<(), DeviceError> {
        self.reject_request(id).map(|_| ())
    }

    /// [`Devices::reject`], answering the request removed.
    pub fn reject_request(&self, id: &str) -> Result<PairingRequest, DeviceError> {
        let id = lookup_arg(id)?;
        let store = &*self.store;
        let request = store.transaction(|c| {
            let (request, _, _) = find_request(c, store, &id)?;
            c.execute("DELETE FROM pairing_requests WHERE request_id = ?1", [&request.request_id])
                .or_store(store)?;
            Ok::<_, DeviceError>(request)
        })?;
        tracing::info!(
            device_id = request.device_id,
            request_id = request.request_id,
            "device pairing rejected"
        );
        Ok(request)
    }

    /// Revokes a paired device (by device id, or a prefix of 8 or more characters): its device
    /// token stops working and it must pair again. Returns the device id. Revoking a revoked
    /// device changes nothing.
    pub fn revoke(&self, id: &str) -> Result<String, DeviceError> {
        let id = lookup_arg(id)?;
        let now = now_ms();
        let store = &*self.store;
        let device_id = store.transaction(|c| {
            let ids =
                matching(c, "SELECT device_id FROM devices WHERE substr(device_id, 1, length(?1)) = ?1", &id)
                    .or_store(store)?;
            let device_id = one(ids, "paired device", &id)?;
            c.execute(
                "UPDATE devices SET token_hash = NULL, prev_token_hash = NULL, token_salt = NULL,
                     revoked_at_ms = coalesce(revoked_at_ms, ?2)
                 WHERE device_id = ?1",
                params![device_id, now as i64],
            )
            .or_store(store)?;
            // Under the store's lock, before the commit: no handshake sees the row revoked
            // while memory still says paired.
            self.recent.forget(&device_id);
            Ok::<_, DeviceError>(device_id)
        })?;
        tracing::info!(device_id, "device revoked");
        Ok(device_id)
    }
}

/// The scopes usable now: of the requested ones, those the granted ones allow; all granted ones
/// when none were requested.
pub fn usable_scopes(granted: &[String], requested: &[String]) -> Vec<String> {
    if requested.is_empty() {
        return granted.to_vec();
    }
    let mut usable: Vec<String> = Vec::new();
    for s in requested {
        if allows(granted, s) && !usable.contains(s) {
            usable.push(s.clone());
        }
    }
    usable
}

/// Whether `granted` covers `wanted`: itself, or `operator.admin` (everything), or
/// `operator.write` (which implies `operator.read`).
pub fn allows(granted: &[String], wanted: &str) -> bool {
    granted.iter().any(|g| g == wanted || g == scope::ADMIN || (g == scope::WRITE && wanted == scope::READ))
}

/// What a device says about itself, cleaned for storage and display.
#[derive(PartialEq, Eq)]
struct Info {
    display_name: Option<String>,
    client_id: String,
    mode: String,
    platform: String,
    device_family: Option<String>,
}

impl From<&ClientInfo> for Info {
    fn from(c: &ClientInfo) -> Self {
        Self {
            display_name: c.display_name.as_deref().map(clean).filter(|s| !s.is_empty()),
            client_id: clean(&c.id),
            mode: clean(&c.mode),
            platform: clean(&c.platform),
            device_family: c.device_family.as_deref().map(clean).filter(|s| !s.is_empty()),
        }
    }
}

/// Client-supplied text is shown in terminals: no control characters (escape sequences), and
/// bounded.
fn clean(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(MAX_TEXT_LEN).collect::<String>().trim().to_owned()
}

/// A row of `devices` to write.
struct Pairable<'a> {
    device_id: &'a str,
    public_key: &'a str,
    info: &'a Info,
    role: &'a str,
    scopes: &'a [String],
}

impl Pairable<'_> {
    /// Pairs (or re-pairs a revoked or re-roled device): fresh grant, tokens replaced.
    fn insert(&self, c: &Connection, now: u64, token: Option<&Issued>) -> rusqlite::Result<()> {
        let scopes = serde_json::to_string(self.scopes).expect("strings serialize");
        let issued = token.map(|_| now as i64);
        c.execute(
            "INSERT INTO devices (device_id, public_key, display_name, client_id, client_mode, platform, device_family,
                                  role, scopes, token_hash, token_salt, prev_token_hash, token_issued_at_ms,
                                  paired_at_ms, last_seen_ms, revoked_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, NULL, ?12, ?13, ?12, NULL)
             ON CONFLICT (device_id) DO UPDATE SET
                 public_key = excluded.public_key, display_name = excluded.display_name,
                 client_id = excluded.client_id, client_mode = excluded.client_mode,
                 platform = excluded.platform, device_family = excluded.device_family, role = excluded.role,
                 scopes = excluded.scopes, token_hash = excluded.token_hash, token_salt = excluded.token_salt,
                 prev_token_hash = NULL, token_issued_at_ms = excluded.token_issued_at_ms,
                 paired_at_ms = excluded.paired_at_ms, last_seen_ms = excluded.last_seen_ms, revoked_at_ms = NULL",
            params![
                self.device_id,
                self.public_key,
                self.info.display_name,
                self.info.client_id,
                self.info.mode,
                self.info.platform,
                self.info.device_family,
                self.role,
                scopes,
                token.map(|t| &t.hash),
                token.map(|t| &t.salt),
                issued,
                now as i64,
            ],
        )?;
        Ok(())
    }
}

/// Records a pairing request, or refreshes the device's pending one; answers its id.
fn record_request(
    c: &Connection,
    device_id: &str,
    public_key: &str,
    info: &Info,
    role: &str,
    scopes: &[String],
    now: u64,
) -> rusqlite::Result<String> {
    let scopes = serde_json::to_string(scopes).expect("strings serialize");
    let existing: Option<String> = c
        .query_row("SELECT request_id FROM pairing_requests WHERE device_id = ?1", [device_id], |row| {
            row.get(0)
        })
        .optional()?;
    if let Some(request_id) = existing {
        c.execute(
            "UPDATE pairing_requests SET public_key = ?2, display_name = ?3, client_id = ?4, client_mode = ?5,
                 platform = ?6, device_family = ?7, role = ?8, scopes = ?9, last_seen_ms = ?10
             WHERE request_id = ?1",
            params![request_id, public_key, info.display_name, info.client_id, info.mode, info.platform, info.device_family, role, scopes, now as i64],
        )?;
        return Ok(request_id);
    }
    // Bounded: without a shared secret (auth mode `none`), anyone can knock.
    c.execute(
        "DELETE FROM pairing_requests WHERE request_id IN (
             SELECT request_id FROM pairing_requests ORDER BY last_seen_ms, created_at_ms
             LIMIT max(0, (SELECT count(*) FROM pairing_requests) - ?1 + 1))",
        [MAX_PENDING],
    )?;
    let request_id = loop {
        let candidate = generate_token()[..REQUEST_ID_LEN].to_owned();
        let taken: bool = c.query_row(
            "SELECT EXISTS (SELECT 1 FROM pairing_requests WHERE request_id = ?1)",
            [&candidate],
            |row| row.get(0),
        )?;
        if !taken {
            break candidate;
        }
    };
    c.execute(
        "INSERT INTO pairing_requests (request_id, device_id, public_key, display_name, client_id, client_mode,
                                       platform, device_family, role, scopes, created_at_ms, last_seen_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)",
        params![request_id, device_id, public_key, info.display_name, info.client_id, info.mode, info.platform, info.device_family, role, scopes, now as i64],
    )?;
    tracing::info!(device_id, request_id, role, "device pairing requested");
    Ok(request_id)
}

/// The pending request named by `id` (request id, device id, or device id prefix), with the
/// columns the API does not show (public key, device family).
fn find_request(
    c: &Connection,
    store: &Store,
    id: &str,
) -> Result<(PairingRequest, String, Option<String>), DeviceError> {
    let ids = matching(
        c,
        "SELECT request_id FROM pairing_requests WHERE request_id = ?1 OR substr(device_id, 1, length(?1)) = ?1",
        id,
    )
    .or_store(store)?;
    // An exact request id wins over a device id prefix that happens to look the same.
    let request_id =
        if ids.iter().any(|r| r == id) { id.to_owned() } else { one(ids, "pending pairing request", id)? };
    c.query_row(
        &format!(
            "SELECT {REQUEST_COLUMNS}, public_key, device_family FROM pairing_requests WHERE request_id = ?1"
        ),
        [&request_id],
        |row| Ok((request_row(row)?, row.get(10)?, row.get(11)?)),
    )
    .or_store(store)
}

fn matching(c: &Connection, sql: &str, id: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = c.prepare(sql)?;
    let rows = stmt.query_map([id], |row| row.get(0))?;
    rows.collect()
}

fn one(mut ids: Vec<String>, what: &'static str, id: &str) -> Result<String, DeviceError> {
    match ids.len() {
        0 => Err(DeviceError::NotFound { what, id: id.to_owned() }),
        1 => Ok(ids.remove(0)),
        _ => Err(DeviceError::Ambiguous { what, id: id.to_owned() }),
    }
}

const DEVICE_COLUMNS: &str =
    "device_id, display_name, client_id, client_mode, platform, role, scopes, paired_at_ms, last_seen_ms, revoked_at_ms";

fn device_row(row: &Row<'_>) -> rusqlite::Result<DeviceRecord> {
    let revoked_at_ms = row.get::<_, Option<i64>>(9)?.map(|t| t as u64);
    Ok(DeviceRecord {
        device_id: row.get(0)?,
        display_name: row.get(1)?,
        client_id: row.get(2)?,
        mode: row.get(3)?,
        platform: row.get(4)?,
        role: row.get(5)?,
        scopes: scopes_col(row, 6)?,
        paired_at_ms: row.get::<_, i64>(7)? as u64,
        last_seen_ms: row.get::<_, Option<i64>>(8)?.map(|t| t as u64),
        revoked: revoked_at_ms.is_some(),
        revoked_at_ms,
    })
}

const REQUEST_COLUMNS: &str =
    "request_id, device_id, display_name, client_id, client_mode, platform, role, scopes, created_at_ms, last_seen_ms";

fn request_row(row: &Row<'_>) -> rusqlite::Result<PairingRequest> {
    Ok(PairingRequest {
        request_id: row.get(0)?,
        device_id: row.get(1)?,
        display_name: row.get(2)?,
        client_id: row.get(3)?,
        mode: row.get(4)?,
        platform: row.get(5)?,
        role: row.get(6)?,
        scopes: scopes_col(row, 7)?,
        created_at_ms: row.get::<_, i64>(8)? as u64,
        last_seen_ms: row.get::<_, i64>(9)? as u64,
    })
}

fn scopes_col(row: &Row<'_>, index: usize) -> rusqlite::Result<Vec<String>> {
    let text: String = row.get(index)?;
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// A paired device as [`Devices::pair`] needs it.
struct Paired {
    public_key: String,
    role: String,
    scopes: Vec<String>,
    token_hash: Option<Vec<u8>>,
    token_salt: Option<Vec<u8>>,
    token_issued_at_ms: Option<u64>,
    last_seen_ms: Option<u64>,
    info: Info,
}

const PAIRED_COLUMNS: &str =
    "public_key, role, scopes, token_hash, token_salt, token_issued_at_ms, last_seen_ms,
     display_name, client_id, client_mode, platform, device_family";

fn paired_row(row: &Row<'_>) -> rusqlite::Result<Paired> {
    Ok(Paired {
        public_key: row.get(0)?,
        role: row.get(1)?,
        scopes: scopes_col(row, 2)?,
        token_hash: row.get(3)?,
        token_salt: row.get(4)?,
        token_issued_at_ms: row.get::<_, Option<i64>>(5)?.map(|t| t as u64),
        last_seen_ms: row.get::<_, Option<i64>>(6)?.map(|t| t as u64),
        info: Info {
            display_name: row.get(7)?,
            client_id: row.get(8)?,
            mode: row.get(9)?,
            platform: row.get(10)?,
            device_family: row.get(11)?,
        },
    })
}

fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn device_id_arg(id: &str) -> Result<String, DeviceError> {
    let id = id.to_ascii_lowercase();
    if id.len() == DEVICE_ID_LEN && is_hex(&id) {
        Ok(id)
    } else {
        Err(DeviceError::Invalid(
            "device.id must be 64 hex characters (the SHA-256 of device.publicKey)".into(),
        ))
    }
}

/// A request id, a device id, or a device id prefix: hex only, so it is safe anywhere.
fn lookup_arg(id: &str) -> Result<String, DeviceError> {
    let lower = id.trim().to_ascii_lowercase();
    if (MIN_PREFIX_LEN..=DEVICE_ID_LEN).contains(&lower.len()) && is_hex(&lower) {
        Ok(lower)
    } else {
        Err(DeviceError::InvalidId(id.chars().take(80).collect()))
    }
}

/// Base64url without padding, the size of an Ed25519 key or so.
fn public_key_arg(key: &str) -> Result<String, DeviceError> {
    let key = key.trim_end_matches('=');
    if !key.is_empty()
        && key.len() <= 128
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(key.to_owned())
    } else {
        Err(DeviceError::Invalid("device.publicKey must be base64url".into()))
    }
}

fn name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SCOPE_LEN
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'))
}

fn role_arg(role: &str) -> Result<String, DeviceError> {
    if name_ok(role) {
        Ok(role.to_owned())
    } else {
        Err(DeviceError::Invalid(format!("invalid role {:?}", role.chars().take(80).collect::<String>())))
    }
}

/// Scopes: at most 32 names of letters, digits and `._-:`; duplicates dropped.
fn scopes_arg(scopes: &[String]) -> Result<Vec<String>, DeviceError> {
    if scopes.len() > MAX_SCOPES {
        return Err(DeviceError::Invalid(format!(
            "too many scopes ({}, at most {MAX_SCOPES})",
            scopes.len()
        )));
    }
    let mut out: Vec<String> = Vec::new();
    for s in scopes {
        if !name_ok(s) {
            return Err(DeviceError::Invalid(format!(
                "invalid scope {:?}: known scopes are {}",
                s.chars().take(80).collect::<String>(),
                scope::ALL.join(", ")
            )));
        }
        if !out.contains(s) {
            out.push(s.clone());
        }
    }
    Ok(out)
}

/// `rusqlite::Result` to `DeviceError`, naming the database file.
trait OrStore<T> {
    fn or_store(self, store: &Store) -> Result<T, DeviceError>;
}

impl<T> OrStore<T> for rusqlite::Result<T> {
    fn or_store(self, store: &Store) -> Result<T, DeviceError> {
        self.map_err(|e| DeviceError::Store(store.sql_error(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        _dir: tempfile::TempDir,
        devices: Devices,
        client: ClientInfo,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join(crate::core::store::FILE_NAME)).unwrap());
        let client = ClientInfo {
            id: "gatewayctl".into(),
            mode: "cli".into(),
            platform: "linux".into(),
            display_name: Some("laptop\u{1b}[31m".into()),
            ..Default::default()
        };
        Fixture { _dir: dir, devices: Devices::new(store, TokenKey::ephemeral()), client }
    }

    fn id(n: u8) -> String {
        format!("{n:02x}").repeat(32)
    }

    fn key(n: u8) -> String {
        format!("key{n}")
    }

    fn s(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    impl Fixture {
        fn pair(&self, n: u8, scopes: &[&str], loopback: bool) -> Pairing {
            self.devices.pair(&id(n), &key(n), &self.client, "operator", &s(scopes), loopback).unwrap()
        }
    }

    fn paired(p: Pairing) -> (Vec<String>, String) {
        match p {
            Pairing::Paired { scopes, device_token, .. } => (scopes, device_token),
            other => panic!("not paired: {other:?}"),
        }
    }

    fn pending(p: Pairing) -> String {
        match p {
            Pairing::Pending { request_id } => request_id,
            other => panic!("not pending: {other:?}"),
        }
    }

    #[test]
    fn loopback_pairs_itself_with_the_requested_scopes() {
        let f = fixture();
        let (scopes, token) = paired(f.pair(1, &["operator.read", "operator.write"], true));
        assert_eq!(scopes, s(&["operator.read", "operator.write"]));
        assert_eq!(token.len(), 64);
        assert!(f.devices.verify_token(&id(1), &token));
        assert!(!f.devices.verify_token(&id(1), &"0".repeat(64)));
        assert!(!f.devices.verify_token(&id(2), &token));
        let list = f.devices.list().unwrap();
        assert_eq!(list.len(), 1);
        let d = &list[0];
        assert_eq!((d.device_id.as_str(), d.role.as_str(), d.revoked), (id(1).as_str(), "operator", false));
        assert_eq!(d.display_name.as_deref(), Some("laptop[31m"), "control characters are dropped");
        assert!(d.last_seen_ms.is_some());
        assert!(f.devices.pending().unwrap().is_empty());
        // The listing never carries a token.
        assert!(!serde_json::to_string(&list).unwrap().contains(&token));
    }

    #[test]
    fn remote_devices_wait_for_approval_then_pair() {
        let f = fixture();
        let request_id = pending(f.pair(1, &["operator.read"], false));
        assert_eq!(request_id.len(), REQUEST_ID_LEN);
        // Knocking again refreshes the same request.
        assert_eq!(pending(f.pair(1, &["operator.read", "operator.write"], false)), request_id);
        let requests = f.devices.pending().unwrap();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].scopes, s(&["operator.read", "operator.write"]));
        assert!(f.devices.list().unwrap().is_empty());

        let record = f.devices.approve(&request_id, None).unwrap();
        assert_eq!(record.scopes, s(&["operator.read", "operator.write"]));
        assert!(f.devices.pending().unwrap().is_empty());
        assert_eq!(record.last_seen_ms, None, "not seen since its approval");
        let (scopes, token) = paired(f.pair(1, &["operator.read"], false));
        assert_eq!(scopes, s(&["operator.read"]));
        assert!(f.devices.verify_token(&id(1), &token));
        assert!(last_seen(&f, 1) > 0, "its first handshake is recorded");

        // Approval by device id, with other scopes than requested.
        pending(f.pair(2, &["operator.admin"], false));
        let record = f.devices.approve(&id(2).to_uppercase(), Some(s(&["operator.read"]))).unwrap();
        assert_eq!(record.scopes, s(&["operator.read"]));
        assert_eq!(paired(f.pair(2, &[], false)).0, s(&["operator.read"]));
    }

    #[test]
    fn usable_scopes_follow_the_grant() {
        let g = |list: &[&str]| s(list);
        assert_eq!(
            usable_scopes(&g(&["operator.admin"]), &g(&["operator.pairing", "operator.read"])),
            g(&["operator.pairing", "operator.read"])
        );
        assert_eq!(
            usable_scopes(&g(&["operator.write"]), &g(&["operator.read", "operator.admin"])),
            g(&["operator.read"])
        );
        assert_eq!(usable_scopes(&g(&["operator.read"]), &g(&["operator.write"])), Vec::<String>::new());
        assert_eq!(
            usable_scopes(&g(&["operator.read", "operator.approvals"]), &[]),
            g(&["operator.read", "operator.approvals"])
        );
        assert_eq!(usable_scopes(&[], &g(&["operator.read"])), Vec::<String>::new());

        let f = fixture();
        paired(f.pair(1, &["operator.write"], true));
        assert_eq!(paired(f.pair(1, &["operator.read", "operator.admin"], true)).0, s(&["operator.read"]));
        assert_eq!(paired(f.pair(1, &[], true)).0, s(&["operator.write"]));
    }

    #[test]
    fn reject_removes_the_request() {
        let f = fixture();
        let request_id = pending(f.pair(1, &["operator.read"], false));
        f.devices.reject(&request_id).unwrap();
        assert!(f.devices.pending().unwrap().is_empty());
        assert!(matches!(f.devices.reject(&request_id), Err(DeviceError::NotFound { .. })));
        assert!(matches!(f.devices.approve(&request_id, None), Err(DeviceError::NotFound { .. })));
        // It may knock again, and gets a new request.
        pending(f.pair(1, &["operator.read"], false));
        assert_eq!(f.devices.pending().unwrap().len(), 1);
    }

    #[test]
    fn revoked_devices_lose_their_token_and_pair_again() {
        let f = fixture();
        let (_, loopback_token) = paired(f.pair(1, &["operator.read"], true));
        let request_id = pending(f.pair(2, &["operator.read"], false));
        f.devices.approve(&request_id, None).unwrap();
        let (_, remote_token) = paired(f.pair(2, &["operator.read"], false));

        // By a prefix of the device id.
        assert_eq!(f.devices.revoke(&id(2)[..12]).unwrap(), id(2));
        assert!(!f.devices.verify_token(&id(2), &remote_token));
        let list = f.devices.list().unwrap();
        assert!(list.iter().any(|d| d.device_id == id(2) && d.revoked && d.revoked_at_ms.is_some()));
        pending(f.pair(2, &["operator.read"], false));
        assert_eq!(f.devices.revoke(&id(2)).unwrap(), id(2), "revoking twice is harmless");

        f.devices.revoke(&id(1)).unwrap();
        assert!(!f.devices.verify_token(&id(1), &loopback_token));
        let (scopes, token) = paired(f.pair(1, &["operator.admin"], true));
        assert_eq!(scopes, s(&["operator.admin"]), "re-paired with what it asked now");
        assert!(f.devices.verify_token(&id(1), &token));
        assert!(!f.devices.list().unwrap().iter().any(|d| d.device_id == id(1) && d.revoked));
    }

    fn issued_at(p: &Pairing) -> u64 {
        match p {
            Pairing::Paired { issued_at_ms, .. } => *issued_at_ms,
            other => panic!("not paired: {other:?}"),
        }
    }

    fn last_seen(f: &Fixture, n: u8) -> u64 {
        f.devices.list().unwrap().into_iter().find(|d| d.device_id == id(n)).unwrap().last_seen_ms.unwrap()
    }

    #[test]
    fn a_reconnect_gets_the_same_token_and_writes_only_what_changed() {
        let f = fixture();
        let first = f.pair(1, &["operator.read"], true);
        let (t1_at, seen) = (issued_at(&first), last_seen(&f, 1));
        let (_, t1) = paired(first);
        let again = f.pair(1, &["operator.read"], true);
        assert_eq!(issued_at(&again), t1_at);
        assert_eq!(paired(again).1, t1, "the same token, handed out again");
        assert!(f.devices.verify_token(&id(1), &t1));
        assert!(!f.devices.verify_token(&id(1), ""));

        // Within LAST_SEEN_STEP_MS and described the same: nothing written.
        let changes = || {
            f.devices
                .store
                .with(|c| c.query_row("SELECT total_changes()", [], |r| r.get::<_, i64>(0)))
                .unwrap()
        };
        let before = changes();
        paired(f.pair(1, &["operator.read"], true));
        assert_eq!(changes(), before, "a reconnect wrote to the database");
        assert_eq!(last_seen(&f, 1), seen);

        // A new description is written at once, and last_seen with it.
        let renamed = ClientInfo { display_name: Some("desk".into()), ..f.client.clone() };
        std::thread::sleep(std::time::Duration::from_millis(2));
        f.devices.pair(&id(1), &key(1), &renamed, "operator", &[], true).unwrap();
        assert!(last_seen(&f, 1) > seen);
        assert_eq!(f.devices.list().unwrap()[0].display_name.as_deref(), Some("desk"));

        // An old last_seen is brought up to date.
        f.devices.store.with(|c| c.execute("UPDATE devices SET last_seen_ms = 1", [])).unwrap();
        f.devices.pair(&id(1), &key(1), &renamed, "operator", &[], true).unwrap();
        assert!(last_seen(&f, 1) > LAST_SEEN_STEP_MS);
    }

    #[test]
    fn a_stale_token_is_replaced_and_the_one_before_stays_valid() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join(crate::core::store::FILE_NAME)).unwrap());
        let f = fixture();
        let old = Devices::new(store.clone(), TokenKey::ephemeral());
        let (_, t1) = paired(old.pair(&id(1), &key(1), &f.client, "operator", &[], true).unwrap());
        // The key file was lost: the same database, another key.
        let new = Devices::new(store, TokenKey::ephemeral());
        let (_, t2) = paired(new.pair(&id(1), &key(1), &f.client, "operator", &[], true).unwrap());
        assert_ne!(t1, t2);
        assert!(new.verify_token(&id(1), &t1) && new.verify_token(&id(1), &t2));
        assert_eq!(paired(new.pair(&id(1), &key(1), &f.client, "operator", &[], true).unwrap()).1, t2);
    }

    #[test]
    fn another_key_under_a_paired_id_is_refused() {
        let f = fixture();
        paired(f.pair(1, &["operator.read"], true));
        let err = f.devices.pair(&id(1), "otherkey", &f.client, "operator", &[], true).unwrap_err();
        assert!(matches!(err, DeviceError::KeyMismatch(_)), "{err}");
        // Padding is not a different key.
        paired(f.devices.pair(&id(1), "key1==", &f.client, "operator", &[], true).unwrap());
    }

    #[test]
    fn another_role_needs_pairing_again() {
        let f = fixture();
        let request_id = pending(f.pair(1, &["operator.read"], false));
        f.devices.approve(&request_id, None).unwrap();
        let p = f.devices.pair(&id(1), &key(1), &f.client, "node", &[], false).unwrap();
        pending(p);
    }

    #[test]
    fn bad_input_is_refused_before_the_database() {
        let f = fixture();
        for bad in ["../etc/passwd", "abc", "0123456z", "'; DROP TABLE devices; --", "a".repeat(65).as_str()]
        {
            assert!(matches!(f.devices.approve(bad, None), Err(DeviceError::InvalidId(_))), "{bad}");
            assert!(matches!(f.devices.revoke(bad), Err(DeviceError::InvalidId(_))), "{bad}");
        }
        assert!(f.devices.pair("xyz", &key(1), &f.client, "operator", &[], true).is_err());
        assert!(f.devices.pair(&id(1), "not base64!", &f.client, "operator", &[], true).is_err());
        assert!(f.devices.pair(&id(1), &key(1), &f.client, "operator", &s(&["a b"]), true).is_err());
        assert!(!f.devices.verify_token("../x", "t"));
        let request_id = pending(f.pair(1, &["operator.read"], false));
        assert!(matches!(
            f.devices.approve(&request_id, Some(s(&["bad scope"]))),
            Err(DeviceError::Invalid(_))
        ));
        assert!(matches!(f.devices.approve("deadbeef", None), Err(DeviceError::NotFound { .. })));
    }

    #[test]
    fn pending_requests_are_bounded() {
        let f = fixture();
        for n in 0..(MAX_PENDING as u8 + 5) {
            pending(f.pair(n, &[], false));
        }
        let requests = f.devices.pending().unwrap();
        assert_eq!(requests.len(), MAX_PENDING as usize);
    }
}
