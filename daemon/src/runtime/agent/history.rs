//! Conversations in the state database: sessions, their messages in turn order, memory notes,
//! run records and stored Response objects. Every write commits (WAL, synchronous=FULL) before
//! it returns, so whatever a caller acknowledged survives a crash.

use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::types::{Message, Role, RunOutcome, RunStatus, ToolCall, Usage};
use crate::core::store::{Store, StoreError};
use gateway_proto::time::now_ms;

/// Longest session key, memory note name; largest memory note.
pub const MAX_KEY_LEN: usize = 256;
pub const MAX_NOTE_BYTES: usize = 65_536;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    pub key: String,
    pub agent: String,
    pub label: Option<String>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    pub message_count: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredMessage {
    pub id: i64,
    pub run_id: String,
    #[serde(flatten)]
    pub message: Message,
    pub created_at_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryNote {
    pub name: String,
    pub value: String,
    pub updated_at_ms: u64,
}

/// A session key or note name callers may use: 1-256 characters, no control characters.
pub fn check_key(what: &str, key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || key.chars().any(char::is_control) {
        return Err(format!(
            "invalid {what} {}: use 1-{MAX_KEY_LEN} characters without control characters",
            gateway_proto::quote::short(key)
        ));
    }
    Ok(())
}

#[derive(Clone)]
pub struct History {
    store: Arc<Store>,
}

impl History {
    pub fn new(store: Arc<Store>) -> Self {
        Self { store }
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Creates the session if it does not exist; returns whether it was created.
    pub fn create_session(&self, key: &str, agent: &str, label: Option<&str>) -> Result<bool, StoreError> {
        let now = now_ms() as i64;
        self.store.with(|c| {
            let n = c.execute(
                "INSERT INTO chat_sessions (session_key, agent, label, created_at_ms, updated_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (session_key) DO NOTHING",
                params![key, agent, label, now],
            )?;
            Ok(n == 1)
        })
    }

    pub fn session(&self, key: &str) -> Result<Option<SessionInfo>, StoreError> {
        self.store.with(|c| {
            c.query_row(&format!("{SESSION_SELECT} WHERE s.session_key = ?1"), [key], session_row).optional()
        })
    }

    /// Sessions, most recently active first.
    pub fn list_sessions(&self, limit: usize) -> Result<Vec<SessionInfo>, StoreError> {
        self.store.with(|c| {
            let mut stmt = c.prepare(&format!(
                "{SESSION_SELECT} ORDER BY s.updated_at_ms DESC, s.session_key LIMIT ?1"
            ))?;
            let rows = stmt.query_map([limit as i64], session_row)?;
            rows.collect()
        })
    }

    /// How many sessions there are, by agent.
    pub fn count_sessions(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.store.with(|c| {
            let mut stmt =
                c.prepare("SELECT agent, COUNT(*) FROM chat_sessions GROUP BY agent ORDER BY agent")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?;
            rows.collect()
        })
    }

    /// Stores the input of a run in one transaction (the session is created if needed) and
    /// returns the run's turn: its place in the session's history.
    pub fn begin_turn(
        &self,
        key: &str,
        agent: &str,
        run_id: &str,
        input: &[Message],
    ) -> Result<i64, StoreError> {
        self.store.transaction(|c| turn_in(c, key, agent, run_id, input).map_err(|e| self.store.sql_error(e)))
    }

    /// Records a stateful run and stores its input, in one transaction (one disk sync).
    pub fn begin_run(
        &self,
        run_id: &str,
        key: &str,
        agent: &str,
        model: &str,
        origin: &str,
        input: &[Message],
    ) -> Result<i64, StoreError> {
        self.store.transaction(|c| {
            run_in(c, run_id, Some(key), agent, model, origin)
                .and_then(|_| turn_in(c, key, agent, run_id, input))
                .map_err(|e| self.store.sql_error(e))
        })
    }

    /// Stores a run's last messages and how it ended, in one transaction.
    pub fn end_run(
        &self,
        outcome: &RunOutcome,
        turn: Option<(&str, i64, &[Message])>,
    ) -> Result<(), StoreError> {
        self.store.transaction(|c| {
            let sql = |e| self.store.sql_error(e);
            if let Some((key, turn, messages)) = turn {
                append_in(c, key, &outcome.run_id, turn, messages).map_err(sql)?;
            }
            finish_in(c, outcome).map_err(sql)
        })
    }

    /// Appends messages a run produced (assistant replies, tool results) to its turn.
    pub fn append(&self, key: &str, run_id: &str, turn: i64, messages: &[Message]) -> Result<(), StoreError> {
        self.store
            .transaction(|c| append_in(c, key, run_id, turn, messages).map_err(|e| self.store.sql_error(e)))
    }

    /// The newest `limit` messages of the session up to and including `through_turn`, oldest
    /// first.
    pub fn messages(
        &self,
        key: &str,
        limit: usize,
        through_turn: Option<i64>,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.store.with(|c| {
            let mut stmt = c.prepare(
                "SELECT id, run_id, role, content, tool_calls, tool_call_id, created_at_ms FROM chat_messages
                 WHERE session_key = ?1 AND turn <= ?2 ORDER BY turn DESC, id DESC LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![key, through_turn.unwrap_or(i64::MAX), limit as i64], |r| {
                let tool_calls: Option<String> = r.get(4)?;
                let role: String = r.get(2)?;
                Ok(StoredMessage {
                    id: r.get(0)?,
                    run_id: r.get(1)?,
                    message: Message {
                        role: Role::parse(&role).unwrap_or(Role::User),
                        content: r.get(3)?,
                        tool_calls: tool_calls
                            .and_then(|t| serde_json::from_str::<Vec<ToolCall>>(&t).ok())
                            .unwrap_or_default(),
                        tool_call_id: r.get(5)?,
                    },
                    created_at_ms: r.get::<_, i64>(6)? as u64,
                })
            })?;
            let mut list = rows.collect::<rusqlite::Result<Vec<_>>>()?;
            list.reverse();
            Ok(list)
        })
    }

    /// Forgets the conversation, keeps the session (and its memory notes). Returns whether the
    /// session existed.
    pub fn reset(&self, key: &str) -> Result<bool, StoreError> {
        let now = now_ms() as i64;
        self.store.transaction(|c| {
            let sql = |e| self.store.sql_error(e);
            c.execute("DELETE FROM chat_messages WHERE session_key = ?1", [key]).map_err(sql)?;
            let n = c
                .execute(
                    "UPDATE chat_sessions SET updated_at_ms = ?2 WHERE session_key = ?1",
                    params![key, now],
                )
                .map_err(sql)?;
            Ok::<_, StoreError>(n == 1)
        })
    }

    /// Deletes the session, its messages and its memory notes. Returns whether it existed.
    pub fn delete(&self, key: &str) -> Result<bool, StoreError> {
        self.store.transaction(|c| {
            let sql = |e| self.store.sql_error(e);
            c.execute("DELETE FROM memory_notes WHERE session_key = ?1", [key]).map_err(sql)?;
            let n = c.execute("DELETE FROM chat_sessions WHERE session_key = ?1", [key]).map_err(sql)?;
            Ok::<_, StoreError>(n == 1)
        })
    }

    pub fn notes(&self, key: &str) -> Result<Vec<MemoryNote>, StoreError> {
        self.store.with(|c| {
            let mut stmt = c.prepare(
                "SELECT name, value, updated_at_ms FROM memory_notes WHERE session_key = ?1 ORDER BY name",
            )?;
            let rows = stmt.query_map([key], |r| {
                Ok(MemoryNote {
                    name: r.get(0)?,
                    value: r.get(1)?,
                    updated_at_ms: r.get::<_, i64>(2)? as u64,
                })
            })?;
            rows.collect()
        })
    }

    pub fn put_note(&self, key: &str, name: &str, value: &str) -> Result<(), StoreError> {
        self.store.with(|c| {
            c.execute(
                "INSERT INTO memory_notes (session_key, name, value, updated_at_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (session_key, name) DO UPDATE SET value = excluded.value,
                 updated_at_ms = excluded.updated_at_ms",
                params![key, name, value, now_ms() as i64],
            )
            .map(|_| ())
        })
    }

    pub fn delete_note(&self, key: &str, name: &str) -> Result<bool, StoreError> {
        self.store.with(|c| {
            c.execute("DELETE FROM memory_notes WHERE session_key = ?1 AND name = ?2", params![key, name])
                .map(|n| n == 1)
        })
    }

    /// A run as recorded (for runs that ended before this process, or long ago).
    pub fn run(&self, run_id: &str) -> Result<Option<RunOutcome>, StoreError> {
        self.store.with(|c| {
            c.query_row(
                "SELECT run_id, session_key, status, model, result, input_tokens, output_tokens, finish_reason,
                 error_code, error_message, started_at_ms, ended_at_ms FROM runs WHERE run_id = ?1",
                [run_id],
                |r| {
                    let result: Option<String> = r.get(4)?;
                    let finish: Option<String> = r.get(7)?;
                    let code: Option<String> = r.get(8)?;
                    Ok(RunOutcome {
                        run_id: r.get(0)?,
                        session_key: r.get(1)?,
                        status: RunStatus::parse(&r.get::<_, String>(2)?),
                        model: r.get(3)?,
                        message: result.and_then(|m| serde_json::from_str(&m).ok()),
                        usage: Usage {
                            input_tokens: r.get::<_, i64>(5)? as u64,
                            output_tokens: r.get::<_, i64>(6)? as u64,
                        },
                        finish_reason: finish.and_then(|f| serde_json::from_value(f.into()).ok()),
                        error: code.map(|code| super::types::RunError {
                            code,
                            message: r.get::<_, Option<String>>(9).ok().flatten().unwrap_or_default(),
                        }),
                        started_at_ms: r.get::<_, i64>(10)? as u64,
                        ended_at_ms: r.get::<_, Option<i64>>(11)?.unwrap_or(0) as u64,
                    })
                },
            )
            .optional()
        })
    }

    /// Deletes the records of runs that ended before `ms` (their messages stay).
    pub fn delete_runs_ended_before(&self, ms: u64) -> Result<usize, StoreError> {
        self.store.with(|c| c.execute("DELETE FROM runs WHERE ended_at_ms < ?1", [ms as i64]))
    }

    /// Deletes the stored responses (and their items) made before `ms`.
    pub fn delete_responses_before(&self, ms: u64) -> Result<usize, StoreError> {
        self.store.transaction(|c| {
            let delete = || -> rusqlite::Result<usize> {
                c.execute(
                    "DELETE FROM response_items WHERE response_id IN (SELECT id FROM responses WHERE created_at_ms < ?1)",
                    [ms as i64],
                )?;
                c.execute("DELETE FROM responses WHERE created_at_ms < ?1", [ms as i64])
            };
            delete().map_err(|e| self.store.sql_error(e))
        })
    }

    /// Runs left queued or running by a previous process are marked interrupted.
    pub fn mark_interrupted(&self) -> Result<usize, StoreError> {
        self.store.with(|c| {
            c.execute(
                "UPDATE runs SET status = 'interrupted', ended_at_ms = ?1 WHERE status IN ('queued', 'running')",
                [now_ms() as i64],
            )
        })
    }

    /// Stores a Response object of the OpenResponses API.
    /// Stores a Response object and its items (input and output, each `(item id, JSON)`),
    /// replacing what was stored under its id; one transaction.
    pub fn put_response(
        &self,
        id: &str,
        session_key: Option<&str>,
        body: &str,
        input: &[(String, String)],
        output: &[(String, String)],
    ) -> Result<(), StoreError> {
        self.store.transaction(|c| {
            let put = || -> rusqlite::Result<()> {
                c.execute(
                    "INSERT INTO responses (id, session_key, created_at_ms, body) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                    params![id, session_key, now_ms() as i64, body],
                )?;
                c.execute("DELETE FROM response_items WHERE response_id = ?1", [id])?;
                let mut insert = c.prepare(
                    "INSERT INTO response_items (response_id, side, position, item_id, body)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for (side, items) in [("input", input), ("output", output)] {
                    for (position, (item_id, item)) in items.iter().enumerate() {
                        insert.execute(params![id, side, position as i64, item_id, item])?;
                    }
                }
                Ok(())
            };
            put().map_err(|e| self.store.sql_error(e))
        })
    }

    /// An item of a stored response by its id (an output item first, the newest first), JSON.
    pub fn response_item(&self, item_id: &str) -> Result<Option<String>, StoreError> {
        self.store.with(|c| {
            c.query_row(
                "SELECT body FROM response_items WHERE item_id = ?1
                 ORDER BY side = 'output' DESC, rowid DESC LIMIT 1",
                [item_id],
                |r| r.get(0),
            )
            .optional()
        })
    }

    /// The input items of a stored response, in order (JSON); None if it is not stored.
    pub fn response_input_items(&self, id: &str) -> Result<Option<Vec<String>>, StoreError> {
        self.store.with(|c| {
            let exists = c.query_row("SELECT 1 FROM responses WHERE id = ?1", [id], |_| Ok(())).optional()?;
            if exists.is_none() {
                return Ok(None);
            }
            let mut stmt = c.prepare(
                "SELECT body FROM response_items WHERE response_id = ?1 AND side = 'input' ORDER BY position",
            )?;
            let rows = stmt.query_map([id], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<Vec<String>>>().map(Some)
        })
    }

    /// A stored Response object: (session key, body).
    pub fn response(&self, id: &str) -> Result<Option<(Option<String>, String)>, StoreError> {
        self.store.with(|c| {
            c.query_row("SELECT session_key, body FROM responses WHERE id = ?1", [id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
        })
    }

    /// Forgets a stored Response object (its chain's session stays); false if there was none.
    pub fn delete_response(&self, id: &str) -> Result<bool, StoreError> {
        self.store.with(|c| c.execute("DELETE FROM responses WHERE id = ?1", [id])).map(|n| n > 0)
    }
}

const SESSION_SELECT: &str = "SELECT s.session_key, s.agent, s.label, s.created_at_ms, s.updated_at_ms,
    (SELECT count(*) FROM chat_messages m WHERE m.session_key = s.session_key) FROM chat_sessions s";

fn session_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SessionInfo> {
    Ok(SessionInfo {
        key: r.get(0)?,
        agent: r.get(1)?,
        label: r.get(2)?,
        created_at_ms: r.get::<_, i64>(3)? as u64,
        updated_at_ms: r.get::<_, i64>(4)? as u64,
        message_count: r.get::<_, i64>(5)? as u64,
    })
}

fn insert_message(
    c: &Connection,
    key: &str,
    run_id: &str,
    turn: i64,
    m: &Message,
    now: i64,
) -> rusqlite::Result<usize> {
    let tool_calls =
        (!m.tool_calls.is_empty()).then(|| serde_json::to_string(&m.tool_calls).expect("plain JSON"));
    c.execute(
        "INSERT INTO chat_messages (session_key, run_id, turn, role, content, tool_calls, tool_call_id, created_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![key, run_id, turn, m.role.as_str(), m.content, tool_calls, m.tool_call_id, now],
    )
}

fn run_in(
    c: &Connection,
    run_id: &str,
    session_key: Option<&str>,
    agent: &str,
    model: &str,
    origin: &str,
) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO runs (run_id, session_key, agent, model, origin, status, started_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, 'running', ?6)",
        params![run_id, session_key, agent, model, origin, now_ms() as i64],
    )
    .map(|_| ())
}

fn turn_in(c: &Connection, key: &str, agent: &str, run_id: &str, input: &[Message]) -> rusqlite::Result<i64> {
    let now = now_ms() as i64;
    c.execute(
        "INSERT INTO chat_sessions (session_key, agent, label, created_at_ms, updated_at_ms)
         VALUES (?1, ?2, NULL, ?3, ?3)
         ON CONFLICT (session_key) DO UPDATE SET updated_at_ms = excluded.updated_at_ms",
        params![key, agent, now],
    )?;
    let turn: i64 = c.query_row(
        "SELECT COALESCE(MAX(turn), 0) + 1 FROM chat_messages WHERE session_key = ?1",
        [key],
        |r| r.get(0),
    )?;
    for m in input {
        insert_message(c, key, run_id, turn, m, now)?;
    }
    Ok(turn)
}

fn append_in(
    c: &Connection,
    key: &str,
    run_id: &str,
    turn: i64,
    messages: &[Message],
) -> rusqlite::Result<()> {
    let now = now_ms() as i64;
    for m in messages {
        insert_message(c, key, run_id, turn, m, now)?;
    }
    c.execute("UPDATE chat_sessions SET updated_at_ms = ?2 WHERE session_key = ?1", params![key, now])?;
    Ok(())
}

fn finish_in(c: &Connection, outcome: &RunOutcome) -> rusqlite::Result<()> {
    let result = outcome.message.as_ref().map(|m| serde_json::to_string(m).expect("plain JSON"));
    c.execute(
        "UPDATE runs SET status = ?2, error_code = ?3, error_message = ?4, finish_reason = ?5,
         input_tokens = ?6, output_tokens = ?7, result = ?8, ended_at_ms = ?9 WHERE run_id = ?1",
        params![
            outcome.run_id,
            outcome.status.as_str(),
            outcome.error.as_ref().map(|e| e.code.as_str()),
            outcome.error.as_ref().map(|e| e.message.as_str()),
            outcome.finish_reason.map(|f| f.as_str()),
            outcome.usage.input_tokens as i64,
            outcome.usage.output_tokens as i64,
            result,
            outcome.ended_at_ms as i64,
        ],
    )
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history() -> (tempfile::TempDir, History) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("g.db")).unwrap());
        (dir, History::new(store))
    }

    #[test]
    fn a_queued_turn_sorts_after_the_reply_of_the_turn_before_it() {
        let (_dir, h) = history();
        let first = h.begin_turn("s", "main", "r1", &[Message::user("one")]).unwrap();
        let second = h.begin_turn("s", "main", "r2", &[Message::user("two")]).unwrap();
        h.append("s", "r1", first, &[Message::new(Role::Assistant, "one back")]).unwrap();
        let texts: Vec<String> =
            h.messages("s", 10, None).unwrap().into_iter().map(|m| m.message.content).collect();
        assert_eq!(texts, ["one", "one back", "two"]);
        // What the first run sees of the session: its own turn and before.
        assert_eq!(h.messages("s", 10, Some(first)).unwrap().len(), 2);
        assert_eq!(second, first + 1);
        assert_eq!(h.list_sessions(10).unwrap()[0].message_count, 3);
    }

    #[test]
    fn a_run_is_recorded_with_its_turn_and_old_records_go() {
        let (_dir, h) = history();
        let turn = h.begin_run("r1", "s", "main", "echo/echo", "ws", &[Message::user("hi")]).unwrap();
        assert_eq!(h.run("r1").unwrap().unwrap().status, RunStatus::Running);
        let outcome = RunOutcome {
            run_id: "r1".into(),
            session_key: Some("s".into()),
            status: RunStatus::Ok,
            model: "echo/echo".into(),
            message: Some(Message::new(Role::Assistant, "hi")),
            usage: Usage { input_tokens: 1, output_tokens: 1 },
            finish_reason: Some(super::super::types::FinishReason::Stop),
            error: None,
            started_at_ms: 1,
            ended_at_ms: 1_000,
        };
        h.end_run(&outcome, Some(("s", turn, std::slice::from_ref(outcome.message.as_ref().unwrap()))))
            .unwrap();
        let stored = h.run("r1").unwrap().unwrap();
        assert_eq!(RunOutcome { started_at_ms: 1, ..stored }, outcome, "as recorded (started: when stored)");
        assert_eq!(h.messages("s", 10, None).unwrap().len(), 2);
        assert_eq!(h.mark_interrupted().unwrap(), 0);
        assert_eq!(h.delete_runs_ended_before(999).unwrap(), 0);
        assert_eq!(h.delete_runs_ended_before(1_001).unwrap(), 1);
        assert!(h.run("r1").unwrap().is_none());
        assert_eq!(h.messages("s", 10, None).unwrap().len(), 2, "the messages stay");
    }

    #[test]
    fn reset_keeps_notes_and_delete_removes_everything() {
        let (_dir, h) = history();
        h.begin_turn("s", "main", "r1", &[Message::user("hi")]).unwrap();
        h.put_note("s", "k", "v").unwrap();
        assert!(h.reset("s").unwrap());
        assert!(h.messages("s", 10, None).unwrap().is_empty());
        assert_eq!(h.notes("s").unwrap().len(), 1);
        assert!(h.delete("s").unwrap());
        assert!(h.notes("s").unwrap().is_empty() && h.session("s").unwrap().is_none());
        assert!(!h.delete("s").unwrap());
    }
}
