//! `[cron]`: the scheduler's limits, the rollout gate's thresholds, and jobs declared in the
//! file (`[[cron.jobs]]`). A job's schedule and target are checked by the daemon when the
//! config is loaded (it owns the cron dialect); a bad entry is refused with its key.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::schema::Bounded;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Cron {
    /// Off: no job runs (they stay stored; `cron run` still works by hand).
    pub enabled: bool,
    /// Runs going at once across all jobs; more wait their turn.
    pub max_concurrent_runs: Bounded<1, 16>,
    /// Runs missed during downtime start this far apart, `max_concurrent_runs` at a time.
    pub catchup_stagger_ms: Bounded<0, 600_000>,
    /// The rollout gate holds when a job has failed this many times in a row.
    pub failure_streak_threshold: Bounded<1, 1_000>,
    /// The rollout gate holds when this many runs failed for reasons that may pass on their own
    /// (upstream down, busy, timeout) since the last success.
    pub retryable_failure_threshold: Bounded<1, 1_000>,
    /// Hosts a webhook delivery may reach although they are not public (loopback, private
    /// networks); every other non-public address is refused, as for the fetch tool.
    pub webhook_allow_hosts: Vec<String>,
    pub jobs: Vec<CronJob>,
}

impl Default for Cron {
    fn default() -> Self {
        Self {
            enabled: true,
            max_concurrent_runs: Bounded(2),
            catchup_stagger_ms: Bounded(5_000),
            failure_streak_threshold: Bounded(2),
            retryable_failure_threshold: Bounded(2),
            webhook_allow_hosts: Vec::new(),
            jobs: Vec::new(),
        }
    }
}

/// A `[[cron.jobs]]` entry: exactly one of `at`, `every`, `cron`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CronJob {
    /// Unique among all jobs; 1-64 letters, digits, '-', '_' or '.'.
    pub name: String,
    pub description: Option<String>,
    /// RFC 3339 time of a one-shot job.
    pub at: Option<String>,
    /// Interval: `30s`, `5m`, `1h`, `1d` (at least 1s).
    pub every: Option<String>,
    /// 5 fields, or 6 with seconds first; `tz` is an IANA zone (UTC when absent).
    pub cron: Option<String>,
    pub tz: Option<String>,
    pub message: String,
    /// `isolated` (a fresh session per run, the default), `main`, or a session key.
    pub session: Option<String>,
    pub agent: Option<String>,
    pub model: Option<String>,
    pub timeout_seconds: Option<u64>,
    /// `none` (default), `webhook:<url>`, or `<channel>[/<account>]:<peer or room>`.
    pub deliver: Option<String>,
    /// `run_once` (default) or `skip`.
    pub missed: Option<String>,
    pub keep_runs: Option<u32>,
    pub keep_days: Option<u32>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}
