//! Jobs and their runs in the state database (`cron_jobs`, `cron_runs`). A job's definition is
//! stored as JSON (the wire's `JobSpec`); where it stands (next run, failures in a row, last
//! outcome) has columns of its own, written in the same transaction as the run that changed it.

use std::sync::Arc;

use gateway_proto::cron::{Job, JobSpec, JobState, RunRecord};
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::core::store::{Store, StoreError};

#[derive(Clone)]
pub struct JobStore {
    store: Arc<Store>,
}

/// A stored job, or the reason its stored definition no longer reads.
pub struct Stored {
    pub job: Job,
    pub malformed: Option<String>,
}

/// How a run ended, as recorded.
pub struct Finish<'a> {
    pub run_id: &'a str,
    pub job_id: &'a str,
    pub at_ms: u64,
    pub outcome: &'a str,
    pub reason_code: &'a str,
    pub error: Option<&'a str>,
    pub retryable: bool,
    pub agent_run_id: Option<&'a str>,
    pub summary: Option<&'a str>,
    pub delivery: &'a str,
    pub delivery_error: Option<&'a str>,
    /// The job's failures in a row after this run, and when it runs next.
    pub streak: u32,
    pub next_run_at_ms: Option<u64>,
}

/// The history as the events block counts it.
#[derive(Debug, Default)]
pub struct HistoryCounts {
    pub total: u64,
    pub ok: u64,
    pub failed: u64,
    pub skipped: u64,
    pub last: Option<(u64, String)>,
    pub retryable_since_success: u32,
}

const JOB_COLUMNS: &str = "j.job_id, j.name, j.source, j.spec, j.enabled, j.created_at_ms, j.updated_at_ms, \
     j.next_run_at_ms, j.failure_streak, j.last_run_at_ms, j.last_outcome, j.last_reason, \
     (SELECT MIN(r.started_at_ms) FROM cron_runs r WHERE r.job_id = j.job_id AND r.outcome = 'running')";

fn job_of(row: &Row) -> rusqlite::Result<Stored> {
    let spec_text: String = row.get(3)?;
    let name: String = row.get(1)?;
    let enabled: bool = row.get(4)?;
    let (spec, malformed) = match serde_json::from_str::<JobSpec>(&spec_text) {
        Ok(spec) => (spec, None),
        Err(e) => (placeholder(&name), Some(format!("its stored definition does not read: {e}"))),
    };
    let job = Job {
        id: row.get(0)?,
        source: row.get(2)?,
        spec: JobSpec { name, enabled, ..spec },
        created_at_ms: row.get(5)?,
        updated_at_ms: row.get(6)?,
        state: JobState {
            next_run_at_ms: row.get(7)?,
            running_since_ms: row.get(12)?,
            last_run_at_ms: row.get(9)?,
            last_status: row.get(10)?,
            last_reason_code: row.get(11)?,
            consecutive_errors: row.get(8)?,
        },
    };
    Ok(Stored { job, malformed })
}

/// What a job whose definition cannot be read shows in its place.
fn placeholder(name: &str) -> JobSpec {
    let nothing = gateway_proto::cron::Schedule::At { at: String::new() };
    JobSpec { enabled: false, ..JobSpec::agent_turn(name, nothing, "") }
}

const RUN_COLUMNS: &str = "r.run_id, r.job_id, COALESCE(j.name, r.job_id), r.trigger, r.scheduled_at_ms, \
     r.started_at_ms, r.finished_at_ms, r.outcome, r.reason_code, r.error, r.retryable, r.agent_run_id, \
     r.session_key, r.summary, r.delivery, r.delivery_error";

fn run_of(row: &Row) -> rusqlite::Result<RunRecord> {
    Ok(RunRecord {
        run_id: row.get(0)?,
        job_id: row.get(1)?,
        job_name: row.get(2)?,
        trigger: row.get(3)?,
        scheduled_at_ms: row.get(4)?,
        started_at_ms: row.get(5)?,
        finished_at_ms: row.get(6)?,
        status: row.get(7)?,
        reason_code: row.get(8)?,
        error: row.get(9)?,
        retryable: row.get(10)?,
        agent_run_id: row.get(11)?,
        session_key: row.get(12)?,
        summary: row.get(13)?,
        delivery: row.get(14)?,
        delivery_error: row.get(15)?,
    })
}

impl JobStore {
    pub fn new(store: Arc<Store>) -> Self {
        Self { store }
    }

    /// Every job, by name.
    pub fn list(&self) -> Result<Vec<Stored>, StoreError> {
        self.store.with(|c| {
            let sql = format!("SELECT {JOB_COLUMNS} FROM cron_jobs j ORDER BY j.name");
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map([], job_of)?;
            rows.collect()
        })
    }

    /// A job by id, or by name.
    pub fn find(&self, id_or_name: &str) -> Result<Option<Stored>, StoreError> {
        self.store.with(|c| {
            let sql = format!("SELECT {JOB_COLUMNS} FROM cron_jobs j WHERE j.job_id = ?1 OR j.name = ?1");
            c.query_row(&sql, [id_or_name], job_of).optional()
        })
    }

    /// Adds a job, or replaces the definition of the one with its id (keeping its history and
    /// standing unless `reset`).
    pub fn upsert(&self, job: &Job, reset: bool) -> Result<(), StoreError> {
        let spec = serde_json::to_string(&job.spec).unwrap_or_default();
        self.store.with(|c| {
            c.execute(
                "INSERT INTO cron_jobs (job_id, name, source, spec, enabled, created_at_ms, updated_at_ms, next_run_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (job_id) DO UPDATE SET name = ?2, source = ?3, spec = ?4, enabled = ?5,
                    updated_at_ms = ?7, next_run_at_ms = ?8,
                    failure_streak = CASE WHEN ?9 THEN 0 ELSE failure_streak END",
                params![
                    job.id,
                    job.spec.name,
                    job.source,
                    spec,
                    job.spec.enabled,
                    job.created_at_ms,
                    job.updated_at_ms,
                    job.state.next_run_at_ms,
                    reset
                ],
            )
            .map(drop)
        })
    }

    /// Removes a job and its history; false if there was none.
    pub fn remove(&self, job_id: &str) -> Result<bool, StoreError> {
        self.store.transaction(|c: &Connection| {
            c.execute("DELETE FROM cron_runs WHERE job_id = ?1", [job_id])
                .map_err(|e| self.store.sql_error(e))?;
            let n = c
                .execute("DELETE FROM cron_jobs WHERE job_id = ?1", [job_id])
                .map_err(|e| self.store.sql_error(e))?;
            Ok::<_, StoreError>(n > 0)
        })
    }

    pub fn set_next(&self, job_id: &str, next_run_at_ms: Option<u64>) -> Result<(), StoreError> {
        self.store.with(|c| {
            c.execute(
                "UPDATE cron_jobs SET next_run_at_ms = ?2 WHERE job_id = ?1",
                params![job_id, next_run_at_ms],
            )
            .map(drop)
        })
    }

    /// Records a run as started (`running`) and moves the job's next run on, in one write: a
    /// crash after this finds the run and marks it interrupted.
    pub fn begin(&self, run: &RunRecord, next_run_at_ms: Option<u64>) -> Result<(), StoreError> {
        self.store.transaction(|c: &Connection| {
            c.execute(
                "INSERT INTO cron_runs (run_id, job_id, trigger, scheduled_at_ms, started_at_ms, outcome, reason_code, session_key, delivery)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'running', ?6, ?7, 'none')",
                params![run.run_id, run.job_id, run.trigger, run.scheduled_at_ms, run.started_at_ms, run.reason_code, run.session_key],
            )
            .and_then(|_| {
                c.execute(
                    "UPDATE cron_jobs SET next_run_at_ms = ?2, last_run_at_ms = ?3 WHERE job_id = ?1",
                    params![run.job_id, next_run_at_ms, run.started_at_ms],
                )
            })
            .map_err(|e| self.store.sql_error(e))?;
            Ok::<_, StoreError>(())
        })
    }

    /// Records how a run ended and where its job stands now.
    pub fn finish(&self, f: &Finish) -> Result<(), StoreError> {
        self.store.transaction(|c: &Connection| {
            c.execute(
                "UPDATE cron_runs SET finished_at_ms = ?2, outcome = ?3, reason_code = ?4, error = ?5, retryable = ?6,
                    agent_run_id = ?7, summary = ?8, delivery = ?9, delivery_error = ?10 WHERE run_id = ?1",
                params![
                    f.run_id,
                    f.at_ms,
                    f.outcome,
                    f.reason_code,
                    f.error,
                    f.retryable,
                    f.agent_run_id,
                    f.summary,
                    f.delivery,
                    f.delivery_error
                ],
            )
            .and_then(|_| {
                c.execute(
                    "UPDATE cron_jobs SET failure_streak = ?2, last_outcome = ?3, last_reason = ?4, next_run_at_ms = ?5
                     WHERE job_id = ?1",
                    params![f.job_id, f.streak, f.outcome, f.reason_code, f.next_run_at_ms],
                )
            })
            .map_err(|e| self.store.sql_error(e))?;
            Ok::<_, StoreError>(())
        })
    }

    /// A run recorded as skipped (a missed slot, a run still going), with the job's next run.
    pub fn skip(&self, run: &RunRecord, next_run_at_ms: Option<u64>) -> Result<(), StoreError> {
        self.store.transaction(|c: &Connection| {
            c.execute(
                "INSERT INTO cron_runs (run_id, job_id, trigger, scheduled_at_ms, finished_at_ms, outcome, reason_code, delivery)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'skipped', ?6, 'none')",
                params![run.run_id, run.job_id, run.trigger, run.scheduled_at_ms, run.finished_at_ms, run.reason_code],
            )
            .and_then(|_| {
                c.execute(
                    "UPDATE cron_jobs SET next_run_at_ms = ?2, last_outcome = 'skipped', last_reason = ?3 WHERE job_id = ?1",
                    params![run.job_id, next_run_at_ms, run.reason_code],
                )
            })
            .map_err(|e| self.store.sql_error(e))?;
            Ok::<_, StoreError>(())
        })
    }

    /// Runs a previous process left going: marked `interrupted`; their jobs keep their next run.
    pub fn interrupt_leftovers(&self, now_ms: u64) -> Result<usize, StoreError> {
        self.store.transaction(|c: &Connection| {
            c.execute(
                "UPDATE cron_jobs SET last_outcome = 'interrupted', last_reason = 'interrupted_by_restart'
                 WHERE job_id IN (SELECT job_id FROM cron_runs WHERE outcome = 'running')",
                [],
            )
            .and_then(|_| {
                c.execute(
                    "UPDATE cron_runs SET outcome = 'interrupted', reason_code = 'interrupted_by_restart', finished_at_ms = ?1,
                        error = 'the daemon stopped while this run was going' WHERE outcome = 'running'",
                    [now_ms],
                )
            })
            .map_err(|e| self.store.sql_error(e))
        })
    }

    /// Runs newest first: of one job, or of all.
    pub fn runs(&self, job_id: Option<&str>, limit: u32) -> Result<Vec<RunRecord>, StoreError> {
        self.store.with(|c| {
            let sql = format!(
                "SELECT {RUN_COLUMNS} FROM cron_runs r LEFT JOIN cron_jobs j ON j.job_id = r.job_id
                 WHERE ?1 IS NULL OR r.job_id = ?1 ORDER BY r.scheduled_at_ms DESC, r.rowid DESC LIMIT ?2"
            );
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map(params![job_id, limit], run_of)?;
            rows.collect()
        })
    }

    pub fn counts(&self) -> Result<HistoryCounts, StoreError> {
        self.store.with(|c| {
            let (total, ok, failed, skipped) = c.query_row(
                "SELECT COUNT(*), COALESCE(SUM(outcome = 'ok'), 0), COALESCE(SUM(outcome IN ('error', 'interrupted')), 0),
                        COALESCE(SUM(outcome = 'skipped'), 0) FROM cron_runs",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )?;
            let last = c
                .query_row(
                    "SELECT COALESCE(finished_at_ms, started_at_ms, scheduled_at_ms), reason_code FROM cron_runs
                     WHERE outcome != 'running' ORDER BY COALESCE(finished_at_ms, scheduled_at_ms) DESC, rowid DESC LIMIT 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let retryable_since_success = c.query_row(
                "SELECT COUNT(*) FROM cron_runs WHERE outcome = 'error' AND retryable = 1
                 AND finished_at_ms > COALESCE((SELECT MAX(finished_at_ms) FROM cron_runs WHERE outcome = 'ok'), 0)",
                [],
                |r| r.get(0),
            )?;
            Ok(HistoryCounts { total, ok, failed, skipped, last, retryable_since_success })
        })
    }

    /// Keeps a job's newest `keep_runs` runs and those younger than `keep_days`, counting what
    /// it deleted. Runs still going are kept.
    pub fn prune(
        &self,
        job_id: &str,
        keep_runs: u32,
        keep_days: u32,
        now_ms: u64,
    ) -> Result<usize, StoreError> {
        let cutoff = now_ms.saturating_sub(u64::from(keep_days) * 86_400_000);
        self.store.with(|c| {
            c.execute(
                "DELETE FROM cron_runs WHERE job_id = ?1 AND outcome != 'running' AND (
                    scheduled_at_ms < ?3 OR run_id NOT IN (
                        SELECT run_id FROM cron_runs WHERE job_id = ?1 ORDER BY scheduled_at_ms DESC, rowid DESC LIMIT ?2))",
                params![job_id, keep_runs, cutoff],
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_proto::cron::Schedule;

    fn store() -> (tempfile::TempDir, JobStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("gateway.db")).unwrap();
        (dir, JobStore::new(Arc::new(store)))
    }

    fn job(id: &str, name: &str) -> Job {
        Job {
            id: id.into(),
            source: "api".into(),
            spec: JobSpec::agent_turn(name, Schedule::Every { every_ms: 60_000, anchor_ms: Some(0) }, "hi"),
            created_at_ms: 1,
            updated_at_ms: 1,
            state: JobState { next_run_at_ms: Some(60_000), ..Default::default() },
        }
    }

    fn run(id: &str, job_id: &str, at: u64) -> RunRecord {
        let run = RunRecord::starting(id, &job(job_id, "one"), "schedule", at, "scheduled");
        RunRecord { started_at_ms: Some(at), finished_at_ms: Some(at), ..run }
    }

    fn finish<'a>(run_id: &'a str, outcome: &'a str, retryable: bool, at: u64) -> Finish<'a> {
        Finish {
            run_id,
            job_id: "j1",
            at_ms: at,
            outcome,
            reason_code: if outcome == "ok" { "completed" } else { "upstream_unavailable" },
            error: None,
            retryable,
            agent_run_id: None,
            summary: None,
            delivery: "none",
            delivery_error: None,
            streak: u32::from(outcome != "ok"),
            next_run_at_ms: Some(at + 60_000),
        }
    }

    #[test]
    fn a_run_left_going_by_a_crash_is_marked_interrupted() {
        let (_d, jobs) = store();
        jobs.upsert(&job("j1", "one"), false).unwrap();
        jobs.begin(&run("r1", "j1", 60_000), Some(120_000)).unwrap();
        assert_eq!(jobs.find("one").unwrap().unwrap().job.state.running_since_ms, Some(60_000));
        assert_eq!(jobs.interrupt_leftovers(70_000).unwrap(), 1);
        let runs = jobs.runs(Some("j1"), 10).unwrap();
        assert_eq!(
            (runs[0].status.as_str(), runs[0].reason_code.as_str()),
            ("interrupted", "interrupted_by_restart")
        );
        let j = jobs.find("j1").unwrap().unwrap().job;
        assert_eq!((j.state.running_since_ms, j.state.next_run_at_ms), (None, Some(120_000)));
    }

    #[test]
    fn the_history_counts_retryable_failures_since_the_last_success() {
        let (_d, jobs) = store();
        jobs.upsert(&job("j1", "one"), false).unwrap();
        for (i, (outcome, retryable)) in
            [("error", true), ("ok", false), ("error", true), ("error", true)].iter().enumerate()
        {
            let id = format!("r{i}");
            let at = 1_000 * (i as u64 + 1);
            jobs.begin(&run(&id, "j1", at), None).unwrap();
            jobs.finish(&finish(&id, outcome, *retryable, at)).unwrap();
        }
        let c = jobs.counts().unwrap();
        assert_eq!((c.total, c.ok, c.failed, c.skipped, c.retryable_since_success), (4, 1, 3, 0, 2));
        assert_eq!(c.last, Some((4_000, "upstream_unavailable".into())));
    }

    #[test]
    fn history_is_kept_by_count_and_by_age() {
        let (_d, jobs) = store();
        jobs.upsert(&job("j1", "one"), false).unwrap();
        let day = 86_400_000;
        for i in 0..5u64 {
            let id = format!("r{i}");
            jobs.begin(&run(&id, "j1", (i + 1) * day), None).unwrap();
            jobs.finish(&finish(&id, "ok", false, (i + 1) * day)).unwrap();
        }
        assert_eq!(jobs.prune("j1", 3, 365, 6 * day).unwrap(), 2, "the two oldest beyond the count");
        assert_eq!(jobs.prune("j1", 100, 2, 6 * day).unwrap(), 1, "older than two days");
        let left: Vec<_> = jobs.runs(Some("j1"), 10).unwrap().into_iter().map(|r| r.run_id).collect();
        assert_eq!(left, ["r4", "r3"]);
        assert!(jobs.remove("j1").unwrap());
        assert!(jobs.runs(Some("j1"), 10).unwrap().is_empty(), "a removed job takes its history along");
    }
}
