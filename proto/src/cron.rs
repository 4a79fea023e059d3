//! Scheduled jobs on the wire: what `cron.add` (WebSocket) and `POST /cron/jobs` (control
//! socket) take, what `cron.list` and `gatewayctl cron list --json` give back, and the records
//! of their runs. The field names follow the other gateway family's `cron.*` methods.

use serde::{Deserialize, Serialize};

/// When a job runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", rename_all_fields = "camelCase")]
pub enum Schedule {
    /// Once, at an RFC 3339 time; on input also `+20m`, `+2s` (from now). Stored absolute.
    At { at: String },
    /// Every `every_ms`, counted from `anchor_ms` (the job's creation when absent).
    Every {
        every_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        anchor_ms: Option<u64>,
    },
    /// A cron expression: 5 fields, or 6 with seconds first; in `tz` (IANA), UTC when absent.
    Cron {
        expr: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tz: Option<String>,
    },
}

/// Which conversation a run joins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionTarget {
    /// A fresh session per run (`cron:<job id>:<run id>`).
    #[default]
    Isolated,
    /// The default agent's main conversation (`agent:main:main`).
    Main,
    /// The session named by `sessionKey`.
    Session,
}

/// What a run does: one agent turn with this message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    #[serde(default = "agent_turn")]
    pub kind: String,
    pub message: String,
    /// "provider/model"; the agent's model when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The turn is stopped after this long (default 600 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
}

fn agent_turn() -> String {
    "agentTurn".into()
}

/// Where the answer goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryMode {
    /// Kept in the run's history only.
    #[default]
    None,
    /// Said to `to` on a chat channel's account.
    Announce,
    /// POSTed as JSON to the URL in `to`.
    Webhook,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    #[serde(default)]
    pub mode: DeliveryMode,
    /// `announce`: the channel (`irc`, `matrix`, `telegram`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// `announce`: the channel account; the only one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// `announce`: the peer or room; `webhook`: the URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// What happens to a run missed while the daemon was down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Missed {
    /// Run once (not once per missed slot), soon after start.
    #[default]
    RunOnce,
    /// Record it as skipped and wait for the next slot.
    Skip,
}

/// How much of a job's history is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    pub keep_runs: u32,
    pub keep_days: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Self { keep_runs: 200, keep_days: 30 }
    }
}

/// A job as a client defines it (`cron.add`, `POST /cron/jobs`, a `[[cron.jobs]]` entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSpec {
    /// Unique; `job-<id>` when left empty.
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub schedule: Schedule,
    #[serde(default)]
    pub session_target: SessionTarget,
    /// With `sessionTarget = "session"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    pub payload: Payload,
    #[serde(default)]
    pub delivery: Delivery,
    #[serde(default)]
    pub missed: Missed,
    #[serde(default)]
    pub retention: Retention,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

impl JobSpec {
    /// A job that runs `message` as an agent turn on `schedule`, with every other choice at its
    /// default (a fresh session per run, no delivery, missed runs run once).
    pub fn agent_turn(name: &str, schedule: Schedule, message: &str) -> Self {
        Self {
            name: name.to_owned(),
            description: None,
            schedule,
            session_target: SessionTarget::default(),
            session_key: None,
            agent_id: None,
            payload: Payload {
                kind: agent_turn(),
                message: message.to_owned(),
                model: None,
                timeout_seconds: None,
            },
            delivery: Delivery::default(),
            missed: Missed::default(),
            retention: Retention::default(),
            enabled: true,
        }
    }
}

/// A change to a job (`cron.update`, `PATCH /cron/jobs/<id>`): absent fields stay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_target: Option<SessionTarget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Delivery>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed: Option<Missed>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// Where a job stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobState {
    /// None: nothing more to run (a one-shot that ran, or a disabled job).
    pub next_run_at_ms: Option<u64>,
    /// Set while a run is going.
    pub running_since_ms: Option<u64>,
    pub last_run_at_ms: Option<u64>,
    /// ok, error, skipped or interrupted.
    pub last_status: Option<String>,
    pub last_reason_code: Option<String>,
    /// Failed runs in a row; reset by a success.
    pub consecutive_errors: u32,
}

/// A job as the daemon holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub id: String,
    /// `api` (gatewayctl, WebSocket) or `config` (`[[cron.jobs]]`, changed only in the file).
    pub source: String,
    #[serde(flatten)]
    pub spec: JobSpec,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    pub state: JobState,
}

/// One run of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    pub run_id: String,
    pub job_id: String,
    pub job_name: String,
    /// `schedule`, `manual` (cron run) or `missed` (caught up after downtime).
    pub trigger: String,
    pub scheduled_at_ms: u64,
    pub started_at_ms: Option<u64>,
    pub finished_at_ms: Option<u64>,
    /// running, ok, error, skipped or interrupted.
    pub status: String,
    pub reason_code: String,
    pub error: Option<String>,
    /// The failure may pass on its own (upstream down, busy): it counts toward the rollout
    /// gate's retryable threshold.
    pub retryable: bool,
    pub agent_run_id: Option<String>,
    pub session_key: Option<String>,
    /// The answer's first 200 characters.
    pub summary: Option<String>,
    /// none, delivered or failed.
    pub delivery: String,
    pub delivery_error: Option<String>,
}

impl RunRecord {
    /// A run as it is about to start: `running`, nothing delivered, no outcome yet.
    pub fn starting(run_id: &str, job: &Job, trigger: &str, scheduled_at_ms: u64, reason_code: &str) -> Self {
        Self {
            run_id: run_id.to_owned(),
            job_id: job.id.clone(),
            job_name: job.spec.name.clone(),
            trigger: trigger.to_owned(),
            scheduled_at_ms,
            started_at_ms: None,
            finished_at_ms: None,
            status: "running".into(),
            reason_code: reason_code.to_owned(),
            error: None,
            retryable: false,
            agent_run_id: None,
            session_key: None,
            summary: None,
            delivery: "none".into(),
            delivery_error: None,
        }
    }
}

/// `cron.status`, `GET /cron/status`: the scheduler as a whole.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CronStatus {
    pub enabled: bool,
    pub jobs: u64,
    pub enabled_jobs: u64,
    pub running: u64,
    pub next_run_at_ms: Option<u64>,
    pub events: EventsInfo,
}

/// The runbook's `events` block of the status report: scheduled jobs and the rollout gate.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EventsInfo {
    /// `healthy`, `degraded` (the gate holds), `stopping`, or `disabled` (cron.enabled = false).
    pub health_state: String,
    /// `pass` or `hold`.
    pub rollout_gate: String,
    /// Why the gate is where it is: `events_healthy`, `failure_streak_threshold`,
    /// `retryable_failure_threshold`, `service_stopping`, `scheduler_disabled`.
    pub reason_code: String,
    pub health_reason: String,
    pub discovered_events: u64,
    pub enabled_events: u64,
    /// Stored jobs whose definition no longer parses (they are not run).
    pub malformed_events: u64,
    pub due_now_events: u64,
    pub queued_now_events: u64,
    pub not_due_events: u64,
    pub execution_history_entries: u64,
    pub executed_history_entries: u64,
    pub failed_history_entries: u64,
    pub skipped_history_entries: u64,
    pub last_execution_unix_ms: Option<u64>,
    pub last_execution_reason_code: Option<String>,
    pub failure_streak_threshold: u32,
    pub retryable_failure_threshold: u32,
    pub diagnostics: Vec<String>,
}

/// A duration as people write it: `90s`, `20m`, `1h`, `2d`, `500ms`, or several (`1h30m`).
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "{} is not a duration: write a number and a unit, e.g. 30s, 5m, 1h, 1d",
            crate::quote::short(text)
        )
    };
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(bad()),
        };
        total = n.checked_mul(unit).and_then(|v| total.checked_add(v)).ok_or_else(bad)?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

impl Delivery {
    /// Reads a delivery target as people write it (`gatewayctl cron add --deliver`, a
    /// `[[cron.jobs]]` entry's `deliver`): `none`, `webhook:<http(s) URL>`, or
    /// `<channel>[/<account>]:<peer or room>` (`irc:alice`, `matrix/bot:!room:example.org`).
    pub fn parse(text: &str) -> Result<Delivery, String> {
        let text = text.trim();
        if text.is_empty() || text == "none" {
            return Ok(Delivery::default());
        }
        let hint = "write none, webhook:<URL>, or <channel>[/<account>]:<peer>, e.g. irc:alice";
        let Some((head, rest)) = text.split_once(':') else {
            return Err(format!("delivery {}: {hint}", crate::quote::short(text)));
        };
        if head == "webhook" {
            if !(rest.starts_with("http://") || rest.starts_with("https://")) {
                return Err(format!(
                    "webhook delivery {}: give an http:// or https:// URL",
                    crate::quote::short(rest)
                ));
            }
            return Ok(Delivery {
                mode: DeliveryMode::Webhook,
                to: Some(rest.to_owned()),
                ..Default::default()
            });
        }
        let (channel, account) = match head.split_once('/') {
            Some((c, a)) => (c, Some(a.to_owned())),
            None => (head, None),
        };
        if !matches!(channel, "irc" | "matrix" | "telegram") || rest.is_empty() {
            return Err(format!(
                "delivery {}: {hint} (channels: irc, matrix, telegram)",
                crate::quote::short(text)
            ));
        }
        Ok(Delivery {
            mode: DeliveryMode::Announce,
            channel: Some(channel.to_owned()),
            account_id: account,
            to: Some(rest.to_owned()),
        })
    }

    /// The form [`Delivery::parse`] reads.
    pub fn describe(&self) -> String {
        match self.mode {
            DeliveryMode::None => "none".into(),
            DeliveryMode::Webhook => format!("webhook:{}", self.to.as_deref().unwrap_or("")),
            DeliveryMode::Announce => format!(
                "{}{}:{}",
                self.channel.as_deref().unwrap_or(""),
                self.account_id.as_deref().map(|a| format!("/{a}")).unwrap_or_default(),
                self.to.as_deref().unwrap_or("")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_targets_read_and_print_the_same() {
        for text in ["none", "webhook:http://127.0.0.1:9/hook", "irc:alice", "matrix/bot:!room:example.org"] {
            assert_eq!(Delivery::parse(text).unwrap().describe(), text);
        }
        assert!(Delivery::parse("webhook:ftp://x").is_err());
        assert!(Delivery::parse("slack:general").is_err());
        assert!(Delivery::parse("alice").is_err());
    }

    #[test]
    fn a_job_reads_the_other_gateway_familys_shape() {
        let job: JobSpec = serde_json::from_str(
            r#"{"name":"brief","schedule":{"kind":"cron","expr":"0 7 * * *","tz":"Europe/Paris"},
                "sessionTarget":"isolated","payload":{"kind":"agentTurn","message":"hi"},
                "delivery":{"mode":"webhook","to":"https://example.org/h"}}"#,
        )
        .unwrap();
        assert_eq!(
            job.schedule,
            Schedule::Cron { expr: "0 7 * * *".into(), tz: Some("Europe/Paris".into()) }
        );
        assert!(job.enabled);
        assert_eq!(job.delivery.mode, DeliveryMode::Webhook);
        let every: Schedule = serde_json::from_str(r#"{"kind":"every","everyMs":60000}"#).unwrap();
        assert_eq!(every, Schedule::Every { every_ms: 60_000, anchor_ms: None });
    }
}
