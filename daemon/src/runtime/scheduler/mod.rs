//! Scheduled jobs: agent turns at a time, at an interval, or on a cron expression, stored in
//! SQLite with the history of their runs. One timer task sleeps until the earliest due job and
//! is woken when jobs change. A run is recorded `running` before its turn starts, so a crash
//! leaves a trace that the next start marks `interrupted`; runs missed while the daemon was down
//! run once each (or are skipped, per job), oldest first, a few at a time. Failures back off
//! (`policy::BACKOFF_MS`) and a success resets the count. The clock is a parameter, so the
//! policy's tests set the time they need.

pub mod deliver;
pub mod jobs;
pub mod policy;
pub mod schedule;
pub mod zone;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use gateway_config::Config;
use gateway_proto::cron::{
    CronStatus, Delivery, DeliveryMode, EventsInfo, Job, JobPatch, JobSpec, JobState, Missed, Payload,
    Retention, RunRecord, Schedule, SessionTarget,
};
use tokio::sync::{watch, Notify};

use self::jobs::{Finish, JobStore, Stored};
use self::schedule::Parsed;
use crate::core::metrics::Metrics;
use crate::core::store::{off_workers, CallError, Store, StoreError};
use crate::runtime::agent::{Agents, Message, RunEvent, RunOrigin, RunRequest, StartError};
use crate::runtime::channels::Channels;

/// The time, in Unix milliseconds; the system clock outside tests.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> u64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        gateway_proto::time::now_ms()
    }
}

/// A run's turn is stopped after this long unless its job says otherwise.
const DEFAULT_RUN_TIMEOUT_S: u64 = 600;
/// The timer looks again at least this often (a clock that jumped, a missed wake-up).
const MAX_SLEEP_MS: u64 = 60_000;
/// A summary keeps this many characters of the answer.
const SUMMARY_CHARS: usize = 200;

/// Why a request about jobs was refused.
#[derive(Debug, thiserror::Error)]
pub enum CronError {
    /// 400: the definition does not hold.
    #[error("{0}")]
    Invalid(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 409: a name taken, a job from the config file, a run already going.
    #[error("{0}")]
    Conflict(String),
    /// 500.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CronError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid_request",
            Self::NotFound(_) => "job_not_found",
            Self::Conflict(_) => "conflict",
            Self::Store(_) => "store",
        }
    }
}

impl From<CallError<CronError>> for CronError {
    fn from(e: CallError<CronError>) -> Self {
        match e {
            CallError::Failed(e) => e,
            CallError::Task(t) => CronError::Invalid(format!("internal: {t}")),
        }
    }
}

/// The `[cron]` settings in effect.
#[derive(Debug, Clone)]
struct Settings {
    enabled: bool,
    max_concurrent: usize,
    stagger_ms: u64,
    failure_streak_threshold: u32,
    retryable_failure_threshold: u32,
    webhook_allow_hosts: Vec<String>,
}

impl Settings {
    fn of(config: &Config) -> Self {
        let c = &config.cron;
        Self {
            enabled: c.enabled,
            max_concurrent: c.max_concurrent_runs.get() as usize,
            stagger_ms: c.catchup_stagger_ms.get(),
            failure_streak_threshold: c.failure_streak_threshold.get() as u32,
            retryable_failure_threshold: c.retryable_failure_threshold.get() as u32,
            webhook_allow_hosts: c.webhook_allow_hosts.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

struct Inner {
    jobs: JobStore,
    agents: Agents,
    channels: Channels,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    settings: ArcSwap<Settings>,
    /// Wakes the timer: a job changed, a run ended, the settings changed.
    wake: Notify,
    /// Jobs with a run going.
    running: Mutex<HashSet<String>>,
    /// Jobs whose next run catches up a slot missed during downtime.
    catching_up: Mutex<HashSet<String>>,
    /// Diagnostics for people: what the last changes of config jobs could not apply.
    config_problems: Mutex<Vec<String>>,
    stopping: AtomicBool,
    stop: watch::Sender<bool>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn new_id(hex_chars: usize) -> String {
    uuid::Uuid::new_v4().simple().to_string()[..hex_chars].to_owned()
}

/// The id of a job declared in the config file.
fn config_job_id(name: &str) -> String {
    format!("cfg:{name}")
}

/// Names are shown in lists and typed on command lines.
fn check_name(name: &str) -> Result<(), String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty() || name.len() > 64 || !name.chars().all(ok) {
        return Err(format!(
            "job name {}: use 1-64 letters, digits, '-', '_' or '.'",
            gateway_proto::quote::short(name)
        ));
    }
    Ok(())
}

/// Checks a definition; with `now_ms`, a one-shot time must still be ahead.
pub fn check_spec(
    spec: &JobSpec,
    known_agent: impl Fn(&str) -> bool,
    now_ms: Option<u64>,
) -> Result<Parsed, String> {
    check_name(&spec.name)?;
    let parsed = Parsed::new(&spec.schedule, now_ms.unwrap_or(0))?;
    if let (Parsed::At(at), Some(now)) = (&parsed, now_ms) {
        if *at <= now {
            return Err(format!(
                "the time {} has passed: give a time ahead, or +20m",
                schedule::rfc3339(*at)
            ));
        }
    }
    if spec.payload.message.trim().is_empty() {
        return Err("the message is empty: say what the agent should do".into());
    }
    if spec.payload.kind != "agentTurn" {
        return Err(format!("payload kind {:?}: only \"agentTurn\" is supported", spec.payload.kind));
    }
    match (spec.session_target, &spec.session_key) {
        (SessionTarget::Session, None) => {
            return Err("sessionTarget \"session\" needs a sessionKey".into());
        }
        (SessionTarget::Session, Some(key)) => crate::runtime::agent::history::check_key("session key", key)?,
        _ => {}
    }
    if let Some(agent) = &spec.agent_id {
        if !known_agent(agent) {
            return Err(format!(
                "no agent {}: add [agents.{agent}] or leave the agent out",
                gateway_proto::quote::short(agent)
            ));
        }
    }
    match spec.delivery.mode {
        DeliveryMode::None => {}
        DeliveryMode::Webhook => {
            let to = spec.delivery.to.as_deref().unwrap_or("");
            reqwest::Url::parse(to).ok().filter(|u| matches!(u.scheme(), "http" | "https")).ok_or_else(
                || {
                    format!(
                        "webhook delivery {}: give an http:// or https:// URL",
                        gateway_proto::quote::short(to)
                    )
                },
            )?;
        }
        DeliveryMode::Announce => {
            if spec.delivery.channel.is_none() || spec.delivery.to.as_deref().is_none_or(str::is_empty) {
                return Err("announce delivery needs a channel and a peer: e.g. --deliver irc:alice".into());
            }
        }
    }
    Ok(parsed)
}

/// A `[[cron.jobs]]` entry as a job definition, or (key, message).
pub fn spec_from_config(i: usize, j: &gateway_config::cron::CronJob) -> Result<JobSpec, (String, String)> {
    let key = |leaf: &str| format!("cron.jobs[{i}].{leaf}");
    let schedule = match (&j.at, &j.every, &j.cron) {
        (Some(at), None, None) => Schedule::At { at: at.clone() },
        (None, Some(every), None) => Schedule::Every {
            every_ms: schedule::parse_duration(every).map_err(|e| (key("every"), e))?,
            anchor_ms: None,
        },
        (None, None, Some(expr)) => Schedule::Cron { expr: expr.clone(), tz: j.tz.clone() },
        _ => return Err((key("name"), format!("job {:?}: give exactly one of at, every, cron", j.name))),
    };
    if j.tz.is_some() && j.cron.is_none() {
        return Err((key("tz"), "tz goes with cron; at takes an offset in its RFC 3339 time".into()));
    }
    let (session_target, session_key) = match j.session.as_deref() {
        None | Some("isolated") => (SessionTarget::Isolated, None),
        Some("main") => (SessionTarget::Main, None),
        Some(k) => (SessionTarget::Session, Some(k.to_owned())),
    };
    let missed = match j.missed.as_deref() {
        None | Some("run_once") => Missed::RunOnce,
        Some("skip") => Missed::Skip,
        Some(other) => {
            return Err((key("missed"), format!("missed {other:?}: use \"run_once\" or \"skip\"")))
        }
    };
    let defaults = Retention::default();
    Ok(JobSpec {
        name: j.name.clone(),
        description: j.description.clone(),
        schedule,
        session_target,
        session_key,
        agent_id: j.agent.clone(),
        payload: Payload {
            kind: "agentTurn".into(),
            message: j.message.clone(),
            model: j.model.clone(),
            timeout_seconds: j.timeout_seconds,
        },
        delivery: Delivery::parse(j.deliver.as_deref().unwrap_or("none")).map_err(|e| (key("deliver"), e))?,
        missed,
        retention: Retention {
            keep_runs: j.keep_runs.unwrap_or(defaults.keep_runs),
            keep_days: j.keep_days.unwrap_or(defaults.keep_days),
        },
        enabled: j.enabled,
    })
}

/// Checks `[cron]` when a config is loaded: (key, message) for the first bad job.
pub fn check_config(config: &Config) -> Result<(), (String, String)> {
    let known = |a: &str| a == gateway_config::DEFAULT_AGENT || config.agents.contains_key(a);
    let mut names = HashSet::new();
    for (i, j) in config.cron.jobs.iter().enumerate() {
        let spec = spec_from_config(i, j)?;
        let which = if j.at.is_some() {
            "at"
        } else if j.every.is_some() {
            "every"
        } else {
            "cron"
        };
        check_spec(&spec, known, None).map_err(|e| {
            let leaf = if e.starts_with("job name") {
                "name"
            } else if e.contains("time zone") {
                "tz"
            } else if e.contains("message") {
                "message"
            } else if e.contains("agent") {
                "agent"
            } else if e.contains("delivery") {
                "deliver"
            } else if e.contains("session") {
                "session"
            } else {
                which
            };
            (format!("cron.jobs[{i}].{leaf}"), e)
        })?;
        if !names.insert(j.name.as_str()) {
            return Err((format!("cron.jobs[{i}].name"), format!("job name {:?} is given twice", j.name)));
        }
    }
    Ok(())
}

/// What a run came to.
struct Ended {
    outcome: &'static str,
    reason_code: String,
    error: Option<String>,
    retryable: bool,
    agent_run_id: Option<String>,
    answer: Option<String>,
}

impl Ended {
    fn failed(reason_code: &str, error: String, retryable: bool, agent_run_id: Option<String>) -> Self {
        Ended {
            outcome: "error",
            reason_code: reason_code.to_owned(),
            error: Some(error),
            retryable,
            agent_run_id,
            answer: None,
        }
    }
}

/// Failures that may pass on their own.
fn retryable_code(code: &str) -> bool {
    matches!(code, "upstream_unavailable" | "upstream_error" | "timeout" | "busy" | "unavailable")
}

impl Scheduler {
    pub fn new(
        store: Arc<Store>,
        agents: Agents,
        channels: Channels,
        metrics: Arc<Metrics>,
        config: &Config,
    ) -> Self {
        Self::with_clock(store, agents, channels, metrics, config, Arc::new(SystemClock))
    }

    pub fn with_clock(
        store: Arc<Store>,
        agents: Agents,
        channels: Channels,
        metrics: Arc<Metrics>,
        config: &Config,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let inner = Inner {
            jobs: JobStore::new(store),
            agents,
            channels,
            metrics,
            clock,
            settings: ArcSwap::from_pointee(Settings::of(config)),
            wake: Notify::new(),
            running: Mutex::new(HashSet::new()),
            catching_up: Mutex::new(HashSet::new()),
            config_problems: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
            stop: watch::channel(false).0,
        };
        Self { inner: Arc::new(inner) }
    }

    fn now(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    async fn blocking<T: Send + 'static>(
        &self,
        call: impl FnOnce(&Scheduler) -> Result<T, CronError> + Send + 'static,
    ) -> Result<T, CronError> {
        Ok(off_workers(self.clone(), move |s| call(s)).await?)
    }

    /// Applies `[cron]`: the settings, and the jobs the file declares (added, changed, removed;
    /// a job whose definition did not change keeps its standing). Checked beforehand by
    /// [`check_config`].
    pub fn configure(&self, config: &Config) {
        self.inner.settings.store(Arc::new(Settings::of(config)));
        let now = self.now();
        let mut problems = Vec::new();
        let mut declared = HashSet::new();
        for (i, entry) in config.cron.jobs.iter().enumerate() {
            let spec = match spec_from_config(i, entry) {
                Ok(s) => s,
                Err((key, e)) => {
                    problems.push(format!("{key}: {e}"));
                    continue;
                }
            };
            let id = config_job_id(&spec.name);
            declared.insert(id.clone());
            if let Err(e) = self.apply_config_job(&id, spec, now) {
                problems.push(format!("config job {}: {e}", entry.name));
            }
        }
        match self.inner.jobs.list() {
            Ok(all) => {
                for gone in all.iter().filter(|s| s.job.source == "config" && !declared.contains(&s.job.id)) {
                    match self.inner.jobs.remove(&gone.job.id) {
                        Ok(_) => {
                            tracing::info!(job = %gone.job.spec.name, "scheduled job removed from the config")
                        }
                        Err(e) => {
                            problems.push(format!("cannot remove config job {}: {e}", gone.job.spec.name))
                        }
                    }
                }
            }
            Err(e) => problems.push(format!("cannot read the jobs: {e}")),
        }
        for p in &problems {
            tracing::error!(problem = %p, "a [[cron.jobs]] entry was not applied");
        }
        *lock(&self.inner.config_problems) = problems;
        self.inner.wake.notify_one();
    }

    fn apply_config_job(&self, id: &str, spec: JobSpec, now: u64) -> Result<(), CronError> {
        let existing = self.inner.jobs.find(id)?;
        let created = existing.as_ref().map_or(now, |s| s.job.created_at_ms);
        // Stored as it is run: an interval anchored, a one-shot time in UTC.
        let schedule = schedule::absolute(&spec.schedule, created).map_err(CronError::Invalid)?;
        let spec = JobSpec { schedule, ..spec };
        if let Some(stored) = &existing {
            // `cron enable|disable` on a config job lasts until its entry in the file changes.
            let same = JobSpec { enabled: stored.job.spec.enabled, ..spec.clone() } == stored.job.spec;
            if stored.malformed.is_none() && same {
                return Ok(());
            }
        }
        if let Some(other) = self.inner.jobs.find(&spec.name)?.filter(|s| s.job.id != id) {
            return Err(CronError::Conflict(format!(
                "the name is taken by job {} (added with gatewayctl): rename one of them",
                other.job.id
            )));
        }
        let parsed = Parsed::new(&spec.schedule, created).map_err(CronError::Invalid)?;
        let job = Job {
            id: id.to_owned(),
            source: "config".into(),
            created_at_ms: created,
            updated_at_ms: now,
            state: JobState { next_run_at_ms: next_of(&spec, &parsed, now), ..Default::default() },
            spec,
        };
        self.inner.jobs.upsert(&job, true)?;
        tracing::info!(job = %job.spec.name, "scheduled job applied from the config");
        Ok(())
    }

    /// Starts the timer: the config's jobs are applied, runs left going by a previous process
    /// are marked interrupted, missed runs are planned, then jobs run as they fall due until [`Scheduler::stop`].
    pub fn start(&self, config: &Config) {
        self.configure(config);
        let me = self.clone();
        tokio::spawn(async move {
            let prepared = me.blocking(|s| s.recover().map_err(CronError::from)).await;
            if let Err(e) = prepared {
                tracing::error!(error = %e, "the scheduler cannot read its jobs; scheduled jobs will not run");
                return;
            }
            me.timer().await;
        });
    }

    /// Marks runs a previous process left going as interrupted, then plans the missed runs.
    fn recover(&self) -> Result<(), StoreError> {
        let now = self.now();
        let interrupted = self.inner.jobs.interrupt_leftovers(now)?;
        if interrupted > 0 {
            tracing::warn!(
                runs = interrupted,
                "scheduled runs were going when the daemon stopped: marked interrupted"
            );
        }
        let settings = self.inner.settings.load();
        let overdue: Vec<policy::Overdue> = self
            .inner
            .jobs
            .list()?
            .into_iter()
            .filter(|s| s.malformed.is_none() && s.job.spec.enabled)
            .filter_map(|s| {
                let due = s.job.state.next_run_at_ms.filter(|t| *t <= now)?;
                Some(policy::Overdue {
                    job_id: s.job.id,
                    due_at_ms: due,
                    skip: s.job.spec.missed == Missed::Skip,
                })
            })
            .collect();
        if overdue.is_empty() || !settings.enabled {
            return Ok(());
        }
        tracing::info!(jobs = overdue.len(), "scheduled jobs missed runs while the daemon was down");
        for step in policy::catch_up(overdue, now, settings.max_concurrent, settings.stagger_ms) {
            match step {
                policy::CatchUp::RunAt { job_id, at_ms } => {
                    self.inner.jobs.set_next(&job_id, Some(at_ms))?;
                    lock(&self.inner.catching_up).insert(job_id);
                }
                policy::CatchUp::Skip { job_id, missed_at_ms } => {
                    let Some(stored) = self.inner.jobs.find(&job_id)? else { continue };
                    let next = Parsed::new(&stored.job.spec.schedule, stored.job.created_at_ms)
                        .ok()
                        .and_then(|p| p.next_after(now));
                    let run = self.record("missed", &stored.job, missed_at_ms, "missed_skipped");
                    self.inner.jobs.skip(&RunRecord { finished_at_ms: Some(now), ..run }, next)?;
                    self.inner.metrics.cron_run("skipped", "missed");
                }
            }
        }
        Ok(())
    }

    pub fn stop(&self) {
        self.inner.stopping.store(true, Ordering::Relaxed);
        self.inner.stop.send_replace(true);
    }

    async fn timer(&self) {
        let mut stop = self.inner.stop.subscribe();
        loop {
            if *stop.borrow() {
                return;
            }
            let woken = self.inner.wake.notified();
            let sleep_ms = match self.blocking(|s| s.fire_due().map_err(CronError::from)).await {
                Ok(ms) => ms,
                Err(e) => {
                    tracing::error!(error = %e, "the scheduler cannot read its jobs; trying again in a minute");
                    MAX_SLEEP_MS
                }
            };
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep(Duration::from_millis(sleep_ms)) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// Starts the runs that are due (as slots allow) and says how long to sleep.
    fn fire_due(&self) -> Result<u64, StoreError> {
        let settings = self.inner.settings.load_full();
        if !settings.enabled || self.inner.stopping.load(Ordering::Relaxed) {
            return Ok(MAX_SLEEP_MS);
        }
        let now = self.now();
        let mut due: Vec<Stored> = Vec::new();
        let mut earliest = now + MAX_SLEEP_MS;
        for stored in self.inner.jobs.list()? {
            if stored.malformed.is_some() || !stored.job.spec.enabled {
                continue;
            }
            match stored.job.state.next_run_at_ms {
                Some(t) if t <= now => due.push(stored),
                Some(t) => earliest = earliest.min(t),
                None => {}
            }
        }
        due.sort_by_key(|s| s.job.state.next_run_at_ms);
        for stored in due {
            let job = stored.job;
            let scheduled = job.state.next_run_at_ms.unwrap_or(now);
            let parsed = match Parsed::new(&job.spec.schedule, job.created_at_ms) {
                Ok(p) => p,
                Err(_) => continue,
            };
            // A one-shot runs once: nothing comes after it.
            let next_slot = if parsed.recurring() { next_of(&job.spec, &parsed, now) } else { None };
            if lock(&self.inner.running).contains(&job.id) {
                // The previous run is still going: this slot is skipped, not queued behind it.
                let run = self.record("schedule", &job, scheduled, "previous_run_going");
                self.inner.jobs.skip(&RunRecord { finished_at_ms: Some(now), ..run }, next_slot)?;
                self.inner.metrics.cron_run("skipped", "schedule");
                continue;
            }
            if lock(&self.inner.running).len() >= settings.max_concurrent {
                // Waits for a slot; a run's end wakes the timer.
                return Ok(MAX_SLEEP_MS);
            }
            let caught_up = lock(&self.inner.catching_up).remove(&job.id);
            let (trigger, reason) =
                if caught_up { ("missed", "missed_run_once") } else { ("schedule", "scheduled") };
            self.launch(job, trigger, reason, scheduled, next_slot)?;
        }
        Ok(earliest.saturating_sub(now).clamp(1, MAX_SLEEP_MS))
    }

    /// The run's record as it starts.
    fn record(&self, trigger: &str, job: &Job, scheduled_at_ms: u64, reason: &str) -> RunRecord {
        RunRecord::starting(&new_id(12), job, trigger, scheduled_at_ms, reason)
    }

    /// Records the run as started, with the job's next run moved on, and starts its turn.
    fn launch(
        &self,
        job: Job,
        trigger: &str,
        reason: &str,
        scheduled: u64,
        next_run_at_ms: Option<u64>,
    ) -> Result<(RunRecord, tokio::task::JoinHandle<RunRecord>), StoreError> {
        let now = self.now();
        let mut run = self.record(trigger, &job, scheduled, reason);
        run.started_at_ms = Some(now);
        run.session_key = Some(session_for(&job, &run.run_id));
        self.inner.jobs.begin(&run, next_run_at_ms)?;
        lock(&self.inner.running).insert(job.id.clone());
        tracing::info!(job = %job.spec.name, run = %run.run_id, trigger, "scheduled job started");
        let me = self.clone();
        let started = run.clone();
        Ok((started, tokio::spawn(async move { me.execute(job, run, next_run_at_ms).await })))
    }

    async fn execute(&self, job: Job, mut run: RunRecord, next_slot: Option<u64>) -> RunRecord {
        let ended = self.turn(&job, &run).await;
        let (delivery, delivery_error) = match (&ended.answer, job.spec.delivery.mode) {
            (_, DeliveryMode::None) | (None, _) => ("none", None),
            (Some(answer), _) => {
                let allow = self.inner.settings.load().webhook_allow_hosts.clone();
                let sent = deliver::send(&job, &run, answer, &self.inner.channels, &allow).await;
                self.inner.metrics.cron_delivery(if sent.is_ok() { "delivered" } else { "failed" });
                match sent {
                    Ok(()) => ("delivered", None),
                    Err(e) => {
                        tracing::warn!(job = %job.spec.name, run = %run.run_id, error = %e, "a scheduled job's answer was not delivered");
                        ("failed", Some(e))
                    }
                }
            }
        };
        let now = self.now();
        let streak = match ended.outcome {
            "ok" => 0,
            _ => job.state.consecutive_errors + 1,
        };
        let manual = run.trigger == "manual";
        let next =
            if manual { job.state.next_run_at_ms } else { policy::next_after_run(next_slot, streak, now) };
        let summary = ended.answer.as_deref().map(|a| a.chars().take(SUMMARY_CHARS).collect::<String>());
        run.finished_at_ms = Some(now);
        run.status = ended.outcome.into();
        run.reason_code = ended.reason_code.clone();
        run.error = ended.error.clone();
        run.retryable = ended.retryable;
        run.agent_run_id = ended.agent_run_id.clone();
        run.summary = summary;
        run.delivery = delivery.into();
        run.delivery_error = delivery_error;
        let finish_run = run.clone();
        let retention = job.spec.retention;
        let written = self
            .blocking(move |s| {
                let f = &finish_run;
                s.inner.jobs.finish(&Finish {
                    run_id: &f.run_id,
                    job_id: &f.job_id,
                    at_ms: now,
                    outcome: &f.status,
                    reason_code: &f.reason_code,
                    error: f.error.as_deref(),
                    retryable: f.retryable,
                    agent_run_id: f.agent_run_id.as_deref(),
                    summary: f.summary.as_deref(),
                    delivery: &f.delivery,
                    delivery_error: f.delivery_error.as_deref(),
                    streak,
                    next_run_at_ms: next,
                })?;
                s.inner.jobs.prune(&f.job_id, retention.keep_runs.max(1), retention.keep_days.max(1), now)?;
                Ok(())
            })
            .await;
        if let Err(e) = written {
            tracing::error!(job = %job.spec.name, run = %run.run_id, error = %e, "cannot record the end of a scheduled run");
        }
        lock(&self.inner.running).remove(&job.id);
        self.inner.metrics.cron_run(ended.outcome, trigger_label(&run.trigger));
        self.inner.wake.notify_one();
        match ended.outcome {
            "ok" => tracing::info!(job = %job.spec.name, run = %run.run_id, delivery, "scheduled job ran"),
            _ => tracing::warn!(
                job = %job.spec.name, run = %run.run_id, reason = %run.reason_code, streak,
                error = run.error.as_deref().unwrap_or(""), "scheduled job failed"
            ),
        }
        run
    }

    /// The agent turn of a run.
    async fn turn(&self, job: &Job, run: &RunRecord) -> Ended {
        let req = RunRequest {
            session_key: run.session_key.clone(),
            agent: job.spec.agent_id.clone(),
            model: job.spec.payload.model.clone(),
            input: vec![Message::user(job.spec.payload.message.clone())],
            origin: RunOrigin::Cron,
            ..Default::default()
        };
        let mut handle = match self.inner.agents.start(req).await {
            Ok(h) => h,
            Err(e) => {
                let retryable = matches!(e, StartError::Busy(_) | StartError::Unavailable(_));
                let code =
                    if self.inner.stopping.load(Ordering::Relaxed) { "service_stopping" } else { e.code() };
                return Ended::failed(code, e.to_string(), retryable, None);
            }
        };
        let run_id = handle.run_id.clone();
        let limit =
            Duration::from_secs(job.spec.payload.timeout_seconds.unwrap_or(DEFAULT_RUN_TIMEOUT_S).max(1));
        let waited = tokio::time::timeout(limit, async {
            while let Some(event) = handle.events.recv().await {
                if event.is_terminal() {
                    return Some(event);
                }
            }
            None
        })
        .await;
        let id = Some(run_id.clone());
        match waited {
            Err(_) => {
                self.inner.agents.abort(&run_id);
                Ended::failed("timeout", format!("the turn took longer than {} s", limit.as_secs()), true, id)
            }
            Ok(Some(RunEvent::Final { message, .. })) => Ended {
                outcome: "ok",
                reason_code: "completed".into(),
                error: None,
                retryable: false,
                agent_run_id: id,
                answer: Some(message.content),
            },
            Ok(Some(RunEvent::Error { code, message })) => {
                Ended::failed(code, message, retryable_code(code), id)
            }
            Ok(_) if self.inner.stopping.load(Ordering::Relaxed) => Ended {
                outcome: "interrupted",
                ..Ended::failed("service_stopping", "the daemon stopped during the run".into(), false, id)
            },
            Ok(_) => Ended::failed("aborted", "the run was aborted".into(), false, id),
        }
    }

    // ---- what the doors call ----

    pub async fn list(&self) -> Result<Vec<Job>, CronError> {
        self.blocking(|s| Ok(s.inner.jobs.list()?.into_iter().map(|st| st.job).collect())).await
    }

    pub async fn get(&self, id_or_name: &str) -> Result<Job, CronError> {
        let key = id_or_name.to_owned();
        self.blocking(move |s| s.find(&key).map(|st| st.job)).await
    }

    fn find(&self, id_or_name: &str) -> Result<Stored, CronError> {
        self.inner.jobs.find(id_or_name)?.ok_or_else(|| {
            CronError::NotFound(format!(
                "no scheduled job {}: see `gatewayctl cron list`",
                gateway_proto::quote::short(id_or_name)
            ))
        })
    }

    /// Adds a job; a relative one-shot time is made absolute.
    pub async fn add(&self, spec: JobSpec) -> Result<Job, CronError> {
        let agents = self.inner.agents.clone();
        let job = self
            .blocking(move |s| {
                let now = s.now();
                let id = new_id(8);
                let spec =
                    if spec.name.is_empty() { JobSpec { name: format!("job-{id}"), ..spec } } else { spec };
                let spec = JobSpec { delivery: without_last_route(spec.delivery), ..spec };
                let parsed =
                    check_spec(&spec, |a| agents.has_agent(a), Some(now)).map_err(CronError::Invalid)?;
                if s.inner.jobs.find(&spec.name)?.is_some() {
                    return Err(CronError::Conflict(format!(
                        "a job named {} exists: pick another name, or change it with `gatewayctl cron edit`",
                        spec.name
                    )));
                }
                let schedule = schedule::absolute(&spec.schedule, now).map_err(CronError::Invalid)?;
                let spec = JobSpec { schedule, ..spec };
                let job = Job {
                    id,
                    source: "api".into(),
                    created_at_ms: now,
                    updated_at_ms: now,
                    state: JobState { next_run_at_ms: next_of(&spec, &parsed, now), ..Default::default() },
                    spec,
                };
                s.inner.jobs.upsert(&job, true)?;
                Ok(job)
            })
            .await?;
        tracing::info!(job = %job.spec.name, id = %job.id, "scheduled job added");
        self.inner.wake.notify_one();
        Ok(job)
    }

    /// Changes a job added at run time; a job from the config file is changed in the file.
    pub async fn update(&self, id_or_name: &str, patch: JobPatch) -> Result<Job, CronError> {
        let key = id_or_name.to_owned();
        let agents = self.inner.agents.clone();
        let job = self
            .blocking(move |s| {
                let stored = s.find(&key)?;
                let old = stored.job;
                let only_enabled = patch == JobPatch { enabled: patch.enabled, ..Default::default() };
                if old.source == "config" && !only_enabled {
                    return Err(CronError::Conflict(format!(
                        "job {} is declared in the config file: change its [[cron.jobs]] entry there",
                        old.spec.name
                    )));
                }
                let now = s.now();
                let mut spec = old.spec.clone();
                let rescheduled =
                    patch.schedule.is_some() || patch.enabled == Some(true) && !old.spec.enabled;
                if let Some(v) = patch.name {
                    spec.name = v;
                }
                if let Some(v) = patch.description {
                    spec.description = Some(v);
                }
                if let Some(v) = patch.schedule {
                    spec.schedule = v;
                }
                if let Some(v) = patch.session_target {
                    spec.session_target = v;
                }
                if let Some(v) = patch.session_key {
                    spec.session_key = Some(v);
                }
                if let Some(v) = patch.agent_id {
                    spec.agent_id = Some(v);
                }
                if let Some(v) = patch.message {
                    spec.payload.message = v;
                }
                if let Some(v) = patch.model {
                    spec.payload.model = Some(v);
                }
                if let Some(v) = patch.delivery {
                    spec.delivery = without_last_route(v);
                }
                if let Some(v) = patch.missed {
                    spec.missed = v;
                }
                if let Some(v) = patch.retention {
                    spec.retention = v;
                }
                if let Some(v) = patch.enabled {
                    spec.enabled = v;
                }
                let check_now = (rescheduled && matches!(spec.schedule, Schedule::At { .. })).then_some(now);
                let parsed =
                    check_spec(&spec, |a| agents.has_agent(a), check_now).map_err(CronError::Invalid)?;
                if spec.name != old.spec.name && s.inner.jobs.find(&spec.name)?.is_some() {
                    return Err(CronError::Conflict(format!(
                        "a job named {} exists: pick another name",
                        spec.name
                    )));
                }
                let schedule = schedule::absolute(&spec.schedule, now).map_err(CronError::Invalid)?;
                let spec = JobSpec { schedule, ..spec };
                let next = if rescheduled { next_of(&spec, &parsed, now) } else { old.state.next_run_at_ms };
                let job = Job {
                    updated_at_ms: now,
                    state: JobState { next_run_at_ms: if spec.enabled { next } else { None }, ..old.state },
                    spec,
                    ..old
                };
                s.inner.jobs.upsert(&job, rescheduled)?;
                Ok(job)
            })
            .await?;
        tracing::info!(job = %job.spec.name, id = %job.id, "scheduled job changed");
        self.inner.wake.notify_one();
        Ok(job)
    }

    pub async fn remove(&self, id_or_name: &str) -> Result<Job, CronError> {
        let key = id_or_name.to_owned();
        let job = self
            .blocking(move |s| {
                let job = s.find(&key)?.job;
                if job.source == "config" {
                    return Err(CronError::Conflict(format!(
                        "job {} is declared in the config file: remove its [[cron.jobs]] entry there",
                        job.spec.name
                    )));
                }
                s.inner.jobs.remove(&job.id)?;
                Ok(job)
            })
            .await?;
        tracing::info!(job = %job.spec.name, id = %job.id, "scheduled job removed");
        self.inner.wake.notify_one();
        Ok(job)
    }

    /// Runs a job now, whatever its schedule; with `wait`, answers once the run ended (up to
    /// `wait`), else at once with the run as it started.
    pub async fn run_now(&self, id_or_name: &str, wait: Option<Duration>) -> Result<RunRecord, CronError> {
        let key = id_or_name.to_owned();
        let (started, handle) = self
            .blocking(move |s| {
                let stored = s.find(&key)?;
                if let Some(why) = stored.malformed {
                    return Err(CronError::Invalid(format!(
                        "job {} cannot run: {why}",
                        stored.job.spec.name
                    )));
                }
                if lock(&s.inner.running).contains(&stored.job.id) {
                    return Err(CronError::Conflict(format!(
                        "job {} has a run going: wait for it (`gatewayctl cron runs {}`)",
                        stored.job.spec.name, stored.job.spec.name
                    )));
                }
                let next = stored.job.state.next_run_at_ms;
                Ok(s.launch(stored.job, "manual", "manual", s.now(), next)?)
            })
            .await?;
        // Without a wait, or when the wait runs out, the run as it started (still going).
        match wait {
            Some(limit) => match tokio::time::timeout(limit, handle).await {
                Ok(Ok(ended)) => Ok(ended),
                _ => Ok(started),
            },
            None => Ok(started),
        }
    }

    /// Runs newest first, of one job or all; at most `limit`.
    pub async fn runs(&self, id_or_name: Option<&str>, limit: u32) -> Result<Vec<RunRecord>, CronError> {
        let key = id_or_name.map(str::to_owned);
        self.blocking(move |s| {
            let job_id = match key {
                Some(k) => Some(s.find(&k)?.job.id),
                None => None,
            };
            Ok(s.inner.jobs.runs(job_id.as_deref(), limit.clamp(1, 1000))?)
        })
        .await
    }

    pub async fn status(&self) -> Result<CronStatus, CronError> {
        self.blocking(|s| s.status_now()).await
    }

    /// The scheduler now, with the events block (reads the database: call off the workers, or
    /// where a short blocking read is acceptable).
    pub fn status_now(&self) -> Result<CronStatus, CronError> {
        let all = self.inner.jobs.list()?;
        let events = self.events(&all)?;
        Ok(CronStatus {
            enabled: self.inner.settings.load().enabled,
            jobs: all.len() as u64,
            enabled_jobs: all.iter().filter(|s| s.job.spec.enabled && s.malformed.is_none()).count() as u64,
            running: lock(&self.inner.running).len() as u64,
            next_run_at_ms: all
                .iter()
                .filter(|s| s.job.spec.enabled && s.malformed.is_none())
                .filter_map(|s| s.job.state.next_run_at_ms)
                .min(),
            events,
        })
    }

    fn events(&self, all: &[Stored]) -> Result<EventsInfo, CronError> {
        let settings = self.inner.settings.load();
        let now = self.now();
        let counts = self.inner.jobs.counts()?;
        let running = lock(&self.inner.running).clone();
        let usable: Vec<&Stored> = all.iter().filter(|s| s.malformed.is_none()).collect();
        let enabled: Vec<&&Stored> = usable.iter().filter(|s| s.job.spec.enabled).collect();
        let due = |s: &&&Stored| s.job.state.next_run_at_ms.is_some_and(|t| t <= now);
        let due_now = enabled.iter().filter(|s| due(s) && !running.contains(&s.job.id)).count();
        let not_due = enabled.iter().filter(|s| !due(s) && !running.contains(&s.job.id)).count();
        let worst = enabled.iter().map(|s| s.job.state.consecutive_errors).max().unwrap_or(0);
        let stopping = self.inner.stopping.load(Ordering::Relaxed);
        let (holds, reason) = policy::gate(policy::GateInput {
            worst_streak: worst,
            retryable_since_success: counts.retryable_since_success,
            stopping,
            failure_streak_threshold: settings.failure_streak_threshold,
            retryable_failure_threshold: settings.retryable_failure_threshold,
        });
        let mut diagnostics: Vec<String> = all
            .iter()
            .filter_map(|s| s.malformed.as_ref().map(|m| format!("job {} is not run: {m}", s.job.spec.name)))
            .collect();
        for s in &enabled {
            let st = &s.job.state;
            if st.consecutive_errors > 0 {
                diagnostics.push(format!(
                    "job {} failed {} time(s) in a row ({}); next try {}",
                    s.job.spec.name,
                    st.consecutive_errors,
                    st.last_reason_code.as_deref().unwrap_or("error"),
                    st.next_run_at_ms.map(schedule::rfc3339).unwrap_or_else(|| "none".into())
                ));
            }
        }
        diagnostics.extend(lock(&self.inner.config_problems).iter().cloned());
        let (health_state, health_reason) = if !settings.enabled {
            ("disabled", "cron.enabled is false: no job runs on its own".to_owned())
        } else if stopping {
            ("stopping", "the daemon is stopping: no new run starts".to_owned())
        } else if holds {
            let why = match reason {
                "failure_streak_threshold" => format!(
                    "a job failed {worst} times in a row (threshold {}): see gatewayctl cron runs",
                    settings.failure_streak_threshold
                ),
                _ => format!(
                    "{} runs failed for reasons that may pass (threshold {}) since the last success",
                    counts.retryable_since_success, settings.retryable_failure_threshold
                ),
            };
            ("degraded", why)
        } else {
            ("healthy", "scheduled jobs run as planned".to_owned())
        };
        Ok(EventsInfo {
            health_state: health_state.into(),
            rollout_gate: if holds { "hold" } else { "pass" }.into(),
            reason_code: if settings.enabled { reason } else { "scheduler_disabled" }.into(),
            health_reason,
            discovered_events: all.len() as u64,
            enabled_events: enabled.len() as u64,
            malformed_events: (all.len() - usable.len()) as u64,
            due_now_events: due_now as u64,
            queued_now_events: running.len() as u64,
            not_due_events: not_due as u64,
            execution_history_entries: counts.total,
            executed_history_entries: counts.ok,
            failed_history_entries: counts.failed,
            skipped_history_entries: counts.skipped,
            last_execution_unix_ms: counts.last.as_ref().map(|l| l.0),
            last_execution_reason_code: counts.last.map(|l| l.1),
            failure_streak_threshold: settings.failure_streak_threshold,
            retryable_failure_threshold: settings.retryable_failure_threshold,
            diagnostics,
        })
    }
}

/// When a job runs next from `now_ms`: None for a disabled job or a one-shot whose time passed.
fn next_of(spec: &JobSpec, parsed: &Parsed, now_ms: u64) -> Option<u64> {
    if !spec.enabled {
        return None;
    }
    match parsed {
        // A one-shot's time, even just past (it runs at once), but only once.
        Parsed::At(at) => Some(*at),
        _ => parsed.next_after(now_ms),
    }
}

/// `announce` with no peer (or channel `last`) means, in the other gateway family, "where the
/// main session last talked"; this gateway keeps no such route, so the answer stays in the
/// run's history (`none`) rather than failing every run.
fn without_last_route(d: Delivery) -> Delivery {
    let no_peer = d.to.as_deref().is_none_or(str::is_empty);
    if d.mode == DeliveryMode::Announce && no_peer && d.channel.as_deref().is_none_or(|c| c == "last") {
        return Delivery::default();
    }
    d
}

/// A run's trigger as a metrics label.
fn trigger_label(trigger: &str) -> &'static str {
    match trigger {
        "manual" => "manual",
        "missed" => "missed",
        _ => "schedule",
    }
}

/// The conversation a run joins.
fn session_for(job: &Job, run_id: &str) -> String {
    match job.spec.session_target {
        SessionTarget::Isolated => format!("cron:{}:{run_id}", job.id.trim_start_matches("cfg:")),
        SessionTarget::Main => {
            format!("agent:{}:main", job.spec.agent_id.as_deref().unwrap_or(gateway_config::DEFAULT_AGENT))
        }
        SessionTarget::Session => job.spec.session_key.clone().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;

    struct FakeClock(AtomicU64);

    impl Clock for FakeClock {
        fn now_ms(&self) -> u64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    const MINUTE: u64 = 60_000;
    const T0: u64 = 1_800_000_000_000;

    fn scheduler() -> (tempfile::TempDir, Scheduler, Arc<FakeClock>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("gateway.db")).unwrap());
        let config = Config::default();
        let agents = Agents::new(store.clone(), &config, Default::default());
        let channels = Channels::new(store.clone(), agents.clone());
        let clock = Arc::new(FakeClock(AtomicU64::new(T0)));
        let s = Scheduler::with_clock(store, agents, channels, Default::default(), &config, clock.clone());
        (dir, s, clock)
    }

    fn every_minute(s: &Scheduler, name: &str, missed: Missed) -> Job {
        let every = Schedule::Every { every_ms: MINUTE, anchor_ms: Some(T0) };
        let spec = JobSpec { missed, ..JobSpec::agent_turn(name, every, "hi") };
        let parsed = Parsed::new(&spec.schedule, T0).unwrap();
        let job = Job {
            id: name.into(),
            source: "api".into(),
            created_at_ms: T0,
            updated_at_ms: T0,
            state: JobState { next_run_at_ms: next_of(&spec, &parsed, T0), ..Default::default() },
            spec,
        };
        s.inner.jobs.upsert(&job, true).unwrap();
        job
    }

    #[test]
    fn after_downtime_each_overdue_job_runs_once_or_is_skipped() {
        let (_dir, s, clock) = scheduler();
        every_minute(&s, "catch", Missed::RunOnce);
        every_minute(&s, "skip", Missed::Skip);
        // Ten slots pass while the daemon is down.
        let now = T0 + 10 * MINUTE + 5_000;
        clock.0.store(now, Ordering::SeqCst);
        s.recover().unwrap();

        let catch = s.inner.jobs.find("catch").unwrap().unwrap().job;
        assert_eq!(catch.state.next_run_at_ms, Some(now), "due now, once");
        assert!(lock(&s.inner.catching_up).contains("catch"));
        assert!(s.inner.jobs.runs(Some("catch"), 100).unwrap().is_empty(), "no run per missed slot");

        let skip = s.inner.jobs.find("skip").unwrap().unwrap().job;
        assert_eq!(skip.state.next_run_at_ms, Some(T0 + 11 * MINUTE), "the next slot");
        let skipped = s.inner.jobs.runs(Some("skip"), 100).unwrap();
        assert_eq!(skipped.len(), 1);
        assert_eq!(
            (skipped[0].status.as_str(), skipped[0].reason_code.as_str()),
            ("skipped", "missed_skipped")
        );
        assert_eq!(skipped[0].scheduled_at_ms, T0 + MINUTE, "the missed slot is named");
    }

    #[test]
    fn a_disabled_scheduler_plans_no_catch_up() {
        let (_dir, s, clock) = scheduler();
        every_minute(&s, "catch", Missed::RunOnce);
        let mut config = Config::default();
        config.cron.enabled = false;
        s.configure(&config);
        clock.0.store(T0 + 10 * MINUTE, Ordering::SeqCst);
        s.recover().unwrap();
        assert!(lock(&s.inner.catching_up).is_empty());
        assert_eq!(s.status_now().unwrap().events.reason_code, "scheduler_disabled");
    }
}
