//! The gateway's state database: SQLite at `STATE_DIR/gateway.db`, private to the daemon's user.
//!
//! Durability: WAL with `synchronous=FULL`, so a call that returns has committed and reached the
//! disk; a crash loses nothing acknowledged. The schema is versioned with `PRAGMA user_version`:
//! [`MIGRATIONS`] is applied in order, in one transaction, when the database is opened. To change
//! the schema, append a migration; never edit one that has shipped.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};

/// The database's name in the state dir.
pub const FILE_NAME: &str = "gateway.db";

/// How long a statement waits for a lock held by another connection before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema, one migration per version: the database is at version `n` once the first `n`
/// have been applied. Append only.
pub const MIGRATIONS: &[&str] = &[
    // 1: paired devices and pairing requests (see `devices::registry`).
    r#"
    CREATE TABLE devices (
        device_id          TEXT PRIMARY KEY NOT NULL,  -- lowercase hex SHA-256 of the public key
        public_key         TEXT NOT NULL,              -- base64url, no padding
        display_name       TEXT,
        client_id          TEXT NOT NULL,
        client_mode        TEXT NOT NULL,
        platform           TEXT NOT NULL,
        device_family      TEXT,
        role               TEXT NOT NULL,
        scopes             TEXT NOT NULL,              -- JSON array of granted scopes
        token_hash         BLOB,                       -- SHA-256 of the live device token
        prev_token_hash    BLOB,                       -- SHA-256 of the one issued before it
        token_issued_at_ms INTEGER,
        paired_at_ms       INTEGER NOT NULL,
        last_seen_ms       INTEGER,
        revoked_at_ms      INTEGER                     -- set: revoked, treated as unpaired
    ) STRICT;
    CREATE TABLE pairing_requests (
        request_id    TEXT PRIMARY KEY NOT NULL,       -- 8 lowercase hex characters
        device_id     TEXT NOT NULL UNIQUE,
        public_key    TEXT NOT NULL,
        display_name  TEXT,
        client_id     TEXT NOT NULL,
        client_mode   TEXT NOT NULL,
        platform      TEXT NOT NULL,
        device_family TEXT,
        role          TEXT NOT NULL,
        scopes        TEXT NOT NULL,                   -- JSON array of requested scopes
        created_at_ms INTEGER NOT NULL,
        last_seen_ms  INTEGER NOT NULL
    ) STRICT;
    "#,
    // 2: session tokens exchanged for the password (see `auth::sessions`).
    r#"
    CREATE TABLE auth_sessions (
        session_id    TEXT PRIMARY KEY NOT NULL,       -- 8 lowercase hex characters
        token_hash    BLOB NOT NULL UNIQUE,            -- SHA-256 of the session token
        client        TEXT NOT NULL,                   -- address and user agent at creation
        created_at_ms INTEGER NOT NULL,
        expires_at_ms INTEGER NOT NULL
    ) STRICT;
    "#,
    // 3: conversations (see `agent::history`): sessions, their messages, memory notes, runs, and
    // the Response objects of the OpenResponses API.
    r#"
    CREATE TABLE chat_sessions (
        session_key   TEXT PRIMARY KEY NOT NULL,
        agent         TEXT NOT NULL,
        label         TEXT,
        created_at_ms INTEGER NOT NULL,
        updated_at_ms INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE chat_messages (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        session_key   TEXT NOT NULL REFERENCES chat_sessions(session_key) ON DELETE CASCADE,
        run_id        TEXT NOT NULL,
        turn          INTEGER NOT NULL,                -- the run's place in the session: history order
        role          TEXT NOT NULL,                   -- system | user | assistant | tool
        content       TEXT NOT NULL,
        tool_calls    TEXT,                            -- JSON array, assistant messages asking for tools
        tool_call_id  TEXT,                            -- tool messages: the call answered
        created_at_ms INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX chat_messages_by_turn ON chat_messages(session_key, turn, id);
    CREATE TABLE memory_notes (
        session_key   TEXT NOT NULL,
        name          TEXT NOT NULL,
        value         TEXT NOT NULL,
        updated_at_ms INTEGER NOT NULL,
        PRIMARY KEY (session_key, name)
    ) STRICT;
    CREATE TABLE runs (
        run_id          TEXT PRIMARY KEY NOT NULL,
        session_key     TEXT,
        agent           TEXT NOT NULL,
        model           TEXT NOT NULL,
        origin          TEXT NOT NULL,             -- ws | http | hook | heartbeat
        status          TEXT NOT NULL,             -- queued | running | ok | error | aborted | interrupted
        error_code      TEXT,
        error_message   TEXT,
        finish_reason   TEXT,
        input_tokens    INTEGER NOT NULL DEFAULT 0,
        output_tokens   INTEGER NOT NULL DEFAULT 0,
        result          TEXT,                      -- JSON of the final message
        started_at_ms   INTEGER NOT NULL,
        ended_at_ms     INTEGER
    ) STRICT;
    CREATE INDEX runs_by_session ON runs(session_key, started_at_ms);
    CREATE TABLE responses (
        id            TEXT PRIMARY KEY NOT NULL,
        session_key   TEXT,
        created_at_ms INTEGER NOT NULL,
        body          TEXT NOT NULL                -- the Response object, JSON
    ) STRICT;
    "#,
    // 4: the items of stored responses (see `agent::history`): the input as it ran (references
    // resolved) and the output, so `item_reference` finds them by id and
    // `GET /v1/responses/{id}/input_items` lists them.
    r#"
    CREATE TABLE response_items (
        response_id   TEXT NOT NULL REFERENCES responses(id) ON DELETE CASCADE,
        side          TEXT NOT NULL,               -- 'input' or 'output'
        position      INTEGER NOT NULL,            -- order within its side
        item_id       TEXT NOT NULL,               -- the item's own id (a replayed item keeps it)
        body          TEXT NOT NULL,               -- the item, JSON
        PRIMARY KEY (response_id, side, position)
    ) STRICT;
    CREATE INDEX response_items_by_item ON response_items(item_id);
    "#,
    // 5: browser sign-ins (the Control UI's cookie) beside the password mode's bearer sessions.
    r#"
    ALTER TABLE auth_sessions ADD COLUMN kind TEXT NOT NULL DEFAULT 'bearer'; -- bearer | browser
    "#,
    // 6: chat channels (see `runtime::channels::state`): approved senders, pairing requests, and
    // the inbox that makes an accepted message answered exactly once, across restarts.
    r#"
    CREATE TABLE channel_allow (
        channel        TEXT NOT NULL,                  -- irc | matrix | telegram
        account        TEXT NOT NULL,
        peer           TEXT NOT NULL,                  -- the network's sender id
        approved_at_ms INTEGER NOT NULL,
        PRIMARY KEY (channel, account, peer)
    ) STRICT;
    CREATE TABLE channel_pairing (
        channel       TEXT NOT NULL,
        account       TEXT NOT NULL,
        peer          TEXT NOT NULL,
        display       TEXT NOT NULL,                   -- the sender's name as the network shows it
        code          TEXT NOT NULL,                   -- 8 characters, no look-alikes
        created_at_ms INTEGER NOT NULL,
        expires_at_ms INTEGER NOT NULL,
        PRIMARY KEY (channel, account, peer)
    ) STRICT;
    CREATE UNIQUE INDEX channel_pairing_by_code ON channel_pairing(channel, code);
    CREATE TABLE channel_inbox (
        channel        TEXT NOT NULL,
        account        TEXT NOT NULL,
        message_id     TEXT NOT NULL,                  -- the network's id: a replay is recognised
        chat           TEXT NOT NULL,                  -- where the reply goes (a nick, a #channel)
        session_key    TEXT NOT NULL,
        text           TEXT NOT NULL,
        state          TEXT NOT NULL,                  -- accepted | replying | done | failed
        reply          TEXT,                           -- the answer, kept until it is sent
        attempts       INTEGER NOT NULL DEFAULT 0,
        last_error     TEXT,
        received_at_ms INTEGER NOT NULL,
        updated_at_ms  INTEGER NOT NULL,
        PRIMARY KEY (channel, account, message_id)
    ) STRICT;
    CREATE INDEX channel_inbox_open ON channel_inbox(state) WHERE state IN ('accepted', 'replying');
    "#,
    // 7: where each channel account's stream of updates stands (Telegram's getUpdates offset).
    r#"
    CREATE TABLE channel_cursor (
        channel       TEXT NOT NULL,
        account       TEXT NOT NULL,
        cursor        TEXT NOT NULL,
        updated_at_ms INTEGER NOT NULL,
        PRIMARY KEY (channel, account)
    ) STRICT;
    "#,
    // 8: scheduled jobs and their runs (see `runtime::scheduler`).
    r#"
    CREATE TABLE cron_jobs (
        job_id          TEXT PRIMARY KEY NOT NULL,     -- 8 lowercase hex, or cfg:<name> for a config job
        name            TEXT NOT NULL UNIQUE,
        source          TEXT NOT NULL,                 -- 'api' or 'config'
        spec            TEXT NOT NULL,                 -- JSON: schedule, target, message, delivery, policy
        enabled         INTEGER NOT NULL,
        created_at_ms   INTEGER NOT NULL,
        updated_at_ms   INTEGER NOT NULL,
        next_run_at_ms  INTEGER,                       -- NULL: nothing more to run
        failure_streak  INTEGER NOT NULL DEFAULT 0,
        last_run_at_ms  INTEGER,
        last_outcome    TEXT,
        last_reason     TEXT
    ) STRICT;
    CREATE TABLE cron_runs (
        run_id          TEXT PRIMARY KEY NOT NULL,     -- 12 lowercase hex
        job_id          TEXT NOT NULL,
        trigger         TEXT NOT NULL,                 -- 'schedule', 'manual' or 'missed'
        scheduled_at_ms INTEGER NOT NULL,
        started_at_ms   INTEGER,
        finished_at_ms  INTEGER,
        outcome         TEXT NOT NULL,                 -- running, ok, error, skipped, interrupted
        reason_code     TEXT NOT NULL,
        error           TEXT,
        retryable       INTEGER NOT NULL DEFAULT 0,
        agent_run_id    TEXT,
        session_key     TEXT,
        summary         TEXT,                          -- the answer's first characters
        delivery        TEXT NOT NULL,                 -- none, delivered, failed
        delivery_error  TEXT
    ) STRICT;
    CREATE INDEX cron_runs_by_job ON cron_runs(job_id, scheduled_at_ms);
    CREATE INDEX cron_runs_running ON cron_runs(outcome) WHERE outcome = 'running';
    "#,
    // 9: device tokens derived from a salt and a key kept outside the database (see
    // `devices::token`); a device without a salt gets one at its next handshake.
    r#"
    ALTER TABLE devices ADD COLUMN token_salt BLOB;
    "#,
];

/// The state database. One connection behind a mutex: the daemon's writes are few and small.
pub struct Store {
    path: PathBuf,
    conn: Mutex<Connection>,
    /// Set when a write failed for want of space; the heartbeat clears it once a write works.
    full: AtomicBool,
}

/// What to do about a database that does not open: move it aside only when SQLite says it is
/// damaged; a full disk or a permission is fixed where it is.
fn open_hint(source: &rusqlite::Error) -> &'static str {
    match source.sqlite_error_code() {
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
            "it is damaged: stop gatewayd, move the file aside and start again (paired devices must then pair again)"
        }
        Some(ErrorCode::DiskFull) => "the disk is full: free some space, then start gatewayd again",
        _ => "check that the state dir is writable by this user and its disk has free space",
    }
}

/// At most this much WAL stays on disk after a checkpoint (SQLite truncates it to this).
const WAL_KEEP_BYTES: i64 = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the state database {file}: {source}; check that the state dir is writable by this user")]
    Create { file: String, source: io::Error },
    #[error("cannot open the state database {file}: {source}; {}", open_hint(source))]
    Open { file: String, source: rusqlite::Error },
    #[error("the state database {file} has schema version {found}, but this gatewayd knows only versions up to {known}: it was written by a newer gatewayd; run that version, or restore a backup of the file")]
    TooNew { file: String, found: i64, known: usize },
    #[error("cannot upgrade the state database {file} to schema version {version}: {source}; the file was left as it was, at version {from}")]
    Migrate { file: String, version: usize, from: i64, source: rusqlite::Error },
    #[error("state database {file}: {source}")]
    Sql { file: String, source: rusqlite::Error },
}

impl Store {
    /// Opens (creating if needed) the database at `path`, mode 0600, and brings its schema up to
    /// date. The parent directory must exist.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let file = path.display().to_string();
        // Create the file ourselves so it is never, even briefly, readable by others. O_NOFOLLOW:
        // a symlink planted in the state dir must not redirect our writes.
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(path)
            .and_then(|f| f.set_permissions(std::fs::Permissions::from_mode(0o600)))
            .map_err(|source| StoreError::Create { file: file.clone(), source })?;
        let open = |source| StoreError::Open { file: file.clone(), source };
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW;
        let mut conn = Connection::open_with_flags(path, flags).map_err(open)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open)?;
        // journal_mode answers with the mode in effect: insist on WAL.
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0)).map_err(open)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(open(rusqlite::Error::InvalidParameterName(format!(
                "journal_mode is {mode}, WAL could not be enabled"
            ))));
        }
        conn.pragma_update(None, "synchronous", "FULL").map_err(open)?;
        // The WAL is checkpointed every 1000 pages (SQLite's default, set here so it is ours)
        // and by the heartbeat; after a checkpoint it shrinks back to WAL_KEEP_BYTES.
        conn.pragma_update(None, "wal_autocheckpoint", 1000).map_err(open)?;
        conn.pragma_update(None, "journal_size_limit", WAL_KEEP_BYTES).map_err(open)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(open)?;
        migrate(&mut conn, &file)?;
        Ok(Store { path: path.to_owned(), conn: Mutex::new(conn), full: AtomicBool::new(false) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.with(|c| c.query_row("PRAGMA user_version", [], |row| row.get(0)))
    }

    /// Runs `f` with the connection. Each statement outside an explicit transaction commits on
    /// its own before returning; use [`Store::transaction`] for writes that must land together.
    pub fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        f(&self.lock()).map_err(|source| self.sql_error(source))
    }

    /// Runs `f` in an immediate (write-locked) transaction, committed when `f` returns `Ok` and
    /// rolled back when it returns `Err`. The result is returned only after the commit.
    pub fn transaction<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|source| self.sql_error(source))?;
        let value = f(&tx)?;
        tx.commit().map_err(|source| self.sql_error(source))?;
        Ok(value)
    }

    /// The error for a failed statement, naming the file. A write refused for want of space
    /// marks the store full, which health and readiness report until a write works again.
    pub fn sql_error(&self, source: rusqlite::Error) -> StoreError {
        if source.sqlite_error_code() == Some(ErrorCode::DiskFull) {
            self.full.store(true, Ordering::Relaxed);
        }
        StoreError::Sql { file: self.path.display().to_string(), source }
    }

    /// Whether the last writes failed for want of space (and no probe has written since).
    pub fn full(&self) -> bool {
        self.full.load(Ordering::Relaxed)
    }

    /// Called by the heartbeat after its own write to the state dir worked.
    pub fn space_returned(&self) {
        self.full.store(false, Ordering::Relaxed);
    }

    /// Moves the WAL's pages into the database and truncates the WAL (the heartbeat does it, off
    /// the async workers), so the WAL alone never fills a small disk.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.with(|c| c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())))
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic inside a closure cannot leave a transaction open (Transaction rolls back on
        // drop), so the connection stays usable.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Applies the migrations the database lacks, all in one transaction.
fn migrate(conn: &mut Connection, file: &str) -> Result<(), StoreError> {
    let sql = |source| StoreError::Sql { file: file.to_owned(), source };
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql)?;
    let from: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0)).map_err(sql)?;
    let known = MIGRATIONS.len();
    if from > known as i64 || from < 0 {
        return Err(StoreError::TooNew { file: file.to_owned(), found: from, known });
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(from as usize) {
        let version = index + 1;
        tx.execute_batch(migration)
            .and_then(|()| tx.pragma_update(None, "user_version", version as i64))
            .map_err(|source| StoreError::Migrate { file: file.to_owned(), version, from, source })?;
    }
    tx.commit().map_err(sql)?;
    if from < known as i64 {
        tracing::info!(file, from, to = known, "state database schema upgraded");
    }
    Ok(())
}

/// Runs a call on a store handle off the async workers (a commit waits for an fsync). Every
/// door and runtime part goes through here rather than writing its own `spawn_blocking`.
pub async fn off_workers<H, T, E>(
    handle: H,
    call: impl FnOnce(&H) -> Result<T, E> + Send + 'static,
) -> Result<T, CallError<E>>
where
    H: Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    match tokio::task::spawn_blocking(move || call(&handle)).await {
        Ok(result) => result.map_err(CallError::Failed),
        Err(e) => Err(CallError::Task(e.to_string())),
    }
}

/// Why a store call off the workers did not succeed.
#[derive(Debug)]
pub enum CallError<E> {
    /// The store said no (I/O, a full disk, a constraint).
    Failed(E),
    /// The task running it panicked or was cancelled.
    Task(String),
}

impl<E: std::fmt::Display> std::fmt::Display for CallError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Failed(e) => e.fmt(f),
            Self::Task(e) => write!(f, "the store task failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn the_wal_stays_bounded_and_the_heartbeat_checkpoint_empties_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let store = Store::open(&path).unwrap();
        store.with(|c| c.execute_batch("CREATE TABLE t (x BLOB)")).unwrap();
        let wal = dir.path().join(format!("{FILE_NAME}-wal"));
        let mut largest = 0;
        // About 20 MB of acknowledged writes, one commit each.
        for _ in 0..2_500 {
            store.with(|c| c.execute("INSERT INTO t VALUES (zeroblob(8000))", [])).unwrap();
            largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        }
        assert!(largest < 6 * 1024 * 1024, "the WAL grew to {largest} bytes");
        store.checkpoint().unwrap();
        assert_eq!(std::fs::metadata(&wal).map_or(0, |m| m.len()), 0, "TRUNCATE empties it");
        let limit: i64 = store.with(|c| c.query_row("PRAGMA journal_size_limit", [], |r| r.get(0))).unwrap();
        assert_eq!(limit, WAL_KEEP_BYTES);
    }

    #[test]
    fn opens_private_with_the_schema_and_reopens_idempotently() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        let (mode, sync, fk): (String, i64, i64) = store
            .with(|c| {
                Ok((
                    c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?,
                    c.query_row("PRAGMA synchronous", [], |r| r.get(0))?,
                    c.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?,
                ))
            })
            .unwrap();
        assert_eq!((mode.as_str(), sync, fk), ("wal", 2, 1));
        store
            .with(|c| c.execute("INSERT INTO pairing_requests VALUES ('0123abcd', 'd', 'k', NULL, 'c', 'cli', 'linux', NULL, 'operator', '[]', 1, 2)", []))
            .unwrap();
        // The WAL's companion files are private too.
        for suffix in ["-wal", "-shm"] {
            let companion = dir.path().join(format!("{FILE_NAME}{suffix}"));
            if let Ok(meta) = std::fs::metadata(&companion) {
                assert_eq!(meta.mode() & 0o077, 0, "{}", companion.display());
            }
        }
        drop(store);

        // Reopening applies nothing twice and keeps the data.
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let count: i64 =
            store.with(|c| c.query_row("SELECT count(*) FROM pairing_requests", [], |r| r.get(0))).unwrap();
        assert_eq!(count, 1);
    }

    #[test]
    fn permissions_are_fixed_on_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, b"").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        Store::open(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_newer_database_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let store = Store::open(&path).unwrap();
        store.with(|c| c.pragma_update(None, "user_version", 999)).unwrap();
        drop(store);
        let err = Store::open(&path).err().expect("refused");
        assert!(matches!(err, StoreError::TooNew { found: 999, .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()) && text.contains("newer gatewayd"), "{text}");
    }

    #[test]
    fn a_file_that_is_not_a_database_is_refused_with_the_way_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, vec![b'x'; 4096]).unwrap();
        let text = Store::open(&path).err().expect("refused").to_string();
        assert!(text.contains("it is damaged") && text.contains("move the file aside"), "{text}");
    }

    #[test]
    fn a_failed_transaction_rolls_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join(FILE_NAME)).unwrap();
        let result: Result<(), StoreError> = store.transaction(|c| {
            c.execute("INSERT INTO pairing_requests VALUES ('0123abcd', 'd', 'k', NULL, 'c', 'cli', 'linux', NULL, 'operator', '[]', 1, 2)", [])
                .map_err(|e| store.sql_error(e))?;
            Err(store.sql_error(rusqlite::Error::QueryReturnedNoRows))
        });
        assert!(result.is_err());
        let count: i64 =
            store.with(|c| c.query_row("SELECT count(*) FROM pairing_requests", [], |r| r.get(0))).unwrap();
        assert_eq!(count, 0);
    }
}
