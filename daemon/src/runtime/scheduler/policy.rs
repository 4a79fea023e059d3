//! The scheduler's decisions, as plain functions of the time: when a failed job tries again,
//! what becomes of runs missed while the daemon was down, and whether the rollout gate holds.
//! Nothing here reads a clock, so the tests give the time they want.

/// Waits after 1, 2, 3, 4 and 5+ failures in a row; a success resets the count.
pub const BACKOFF_MS: [u64; 5] = [30_000, 60_000, 300_000, 900_000, 3_600_000];

/// The wait before the next try after `streak` failures in a row (at least 1).
pub fn backoff_ms(streak: u32) -> u64 {
    BACKOFF_MS[(streak.max(1) as usize - 1).min(BACKOFF_MS.len() - 1)]
}

/// When a job runs next after a run ended at `now_ms`: its next slot, but after a failure no
/// sooner than the backoff allows.
pub fn next_after_run(next_slot: Option<u64>, streak: u32, now_ms: u64) -> Option<u64> {
    if streak == 0 {
        return next_slot;
    }
    next_slot.map(|slot| slot.max(now_ms + backoff_ms(streak)))
}

/// A job found overdue at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overdue {
    pub job_id: String,
    pub due_at_ms: u64,
    pub skip: bool,
}

/// What to do with a job that was overdue at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatchUp {
    /// Run it once at this time (staggered from the others).
    RunAt { job_id: String, at_ms: u64 },
    /// Record the missed slot as skipped and wait for the next one.
    Skip { job_id: String, missed_at_ms: u64 },
}

/// Each overdue job once, oldest first: those that run start `per_batch` at a time, batches
/// `stagger_ms` apart; those set to skip are skipped.
pub fn catch_up(mut overdue: Vec<Overdue>, now_ms: u64, per_batch: usize, stagger_ms: u64) -> Vec<CatchUp> {
    overdue.sort_by(|a, b| a.due_at_ms.cmp(&b.due_at_ms).then_with(|| a.job_id.cmp(&b.job_id)));
    let per_batch = per_batch.max(1);
    let mut running = 0usize;
    overdue
        .into_iter()
        .map(|o| {
            if o.skip {
                CatchUp::Skip { job_id: o.job_id, missed_at_ms: o.due_at_ms }
            } else {
                let at_ms = now_ms + (running / per_batch) as u64 * stagger_ms;
                running += 1;
                CatchUp::RunAt { job_id: o.job_id, at_ms }
            }
        })
        .collect()
}

/// What the rollout gate looks at.
#[derive(Debug, Clone, Copy, Default)]
pub struct GateInput {
    pub worst_streak: u32,
    pub retryable_since_success: u32,
    pub stopping: bool,
    pub failure_streak_threshold: u32,
    pub retryable_failure_threshold: u32,
}

/// `(holds, reason code)`.
pub fn gate(input: GateInput) -> (bool, &'static str) {
    if input.stopping {
        (true, "service_stopping")
    } else if input.worst_streak >= input.failure_streak_threshold {
        (true, "failure_streak_threshold")
    } else if input.retryable_since_success >= input.retryable_failure_threshold {
        (true, "retryable_failure_threshold")
    } else {
        (false, "events_healthy")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_and_a_success_resets() {
        assert_eq!(
            (1..=7).map(backoff_ms).collect::<Vec<_>>(),
            [30_000, 60_000, 300_000, 900_000, 3_600_000, 3_600_000, 3_600_000]
        );
        let now = 1_000_000;
        assert_eq!(
            next_after_run(Some(now + 10_000), 1, now),
            Some(now + 30_000),
            "backoff wins over an early slot"
        );
        assert_eq!(
            next_after_run(Some(now + 90_000), 1, now),
            Some(now + 90_000),
            "a later slot wins over the backoff"
        );
        assert_eq!(
            next_after_run(Some(now + 10_000), 0, now),
            Some(now + 10_000),
            "after a success: the slot"
        );
        assert_eq!(next_after_run(None, 3, now), None, "a one-shot does not come back");
    }

    fn overdue(id: &str, due: u64, skip: bool) -> Overdue {
        Overdue { job_id: id.into(), due_at_ms: due, skip }
    }

    #[test]
    fn missed_runs_run_once_each_oldest_first_a_few_at_a_time() {
        let now = 10_000_000;
        let plan = catch_up(
            vec![
                overdue("c", 300, false),
                overdue("a", 100, false),
                overdue("s", 150, true),
                overdue("b", 200, false),
            ],
            now,
            2,
            5_000,
        );
        assert_eq!(
            plan,
            [
                CatchUp::RunAt { job_id: "a".into(), at_ms: now },
                CatchUp::Skip { job_id: "s".into(), missed_at_ms: 150 },
                CatchUp::RunAt { job_id: "b".into(), at_ms: now },
                CatchUp::RunAt { job_id: "c".into(), at_ms: now + 5_000 },
            ]
        );
    }

    #[test]
    fn the_gate_holds_on_streaks_retryable_failures_and_shutdown() {
        let base =
            GateInput { failure_streak_threshold: 2, retryable_failure_threshold: 2, ..Default::default() };
        assert_eq!(gate(base), (false, "events_healthy"));
        assert_eq!(gate(GateInput { worst_streak: 1, ..base }), (false, "events_healthy"));
        assert_eq!(gate(GateInput { worst_streak: 2, ..base }), (true, "failure_streak_threshold"));
        assert_eq!(
            gate(GateInput { retryable_since_success: 2, ..base }),
            (true, "retryable_failure_threshold")
        );
        assert_eq!(gate(GateInput { stopping: true, ..base }), (true, "service_stopping"));
    }
}
