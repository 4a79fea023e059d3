//! The agent runtime: runs (model turns) on sessions, one at a time per session and a global
//! cap across sessions, with streamed events, aborts, idempotent retries, and the
//! function-calling loop. Sessions, messages, memory notes and runs live in the state database.

pub mod history;
mod run;
mod trace;
pub mod types;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use gateway_config::{Config, ProviderKind, DEFAULT_AGENT};
use gateway_proto::time::now_ms;
use tokio::sync::{mpsc, watch, Notify, Semaphore};
use tokio::time::Instant;

pub use history::{History, MemoryNote, SessionInfo, StoredMessage};
pub use types::*;

use crate::core::metrics::Metrics;
use crate::core::store::{off_workers, CallError, Store, StoreError};
use crate::core::telemetry::spans;
use crate::runtime::providers::upstream::Clients;
use opentelemetry::Context;

/// Events a subscriber may have unread before the run waits for it (for a while: see
/// `run::SLOW_SUBSCRIBER`).
const EVENT_BUFFER: usize = 256;
/// How often ended runs are looked at for forgetting.
const PRUNE_INTERVAL: Duration = Duration::from_secs(1);
/// How long an ended run recorded in the store stays in memory too: after that `wait` and
/// an idempotent retry answer from the store.
const STORED_RUN_GRACE: Duration = Duration::from_secs(5);
/// At most this many ended runs are remembered in memory; past it the oldest are forgotten
/// first, whatever the idempotency window (which bounds them in time, not in number).
const MAX_ENDED_RUNS: usize = 10_000;

/// The runtime, shared by the WebSocket methods and the HTTP APIs.
#[derive(Clone)]
pub struct Agents {
    inner: Arc<Inner>,
}

struct Inner {
    /// Runs marked interrupted when this process started.
    interrupted_at_start: u64,
    history: History,
    config: ArcSwap<Config>,
    clients: Clients,
    metrics: Arc<Metrics>,
    permits: Arc<Semaphore>,
    sessions: Mutex<HashMap<String, SessionQueue>>,
    runs: Mutex<HashMap<String, Arc<Run>>>,
    /// Idempotency key -> run id.
    idempotency: Mutex<HashMap<String, String>>,
    closing: AtomicBool,
    last_prune: Mutex<Instant>,
    /// When old run records were last deleted (None: not yet in this process).
    /// Told of every event of every stateful run, in order, as it happens (WebSocket `chat`).
    observer: std::sync::OnceLock<Observer>,
}

/// What an observer is told: one event of a stateful run.
pub struct Observed<'a> {
    pub run_id: &'a str,
    pub session_key: &'a str,
    /// Counts the run's text, final, error and aborted events from 0.
    pub seq: u64,
    /// The assistant's text so far in this run.
    pub text: &'a str,
    pub event: &'a RunEvent,
}

pub type Observer = Box<dyn Fn(&Observed<'_>) + Send + Sync>;

/// One session's line of runs, in the order they were started: the front one runs.
struct SessionQueue {
    order: VecDeque<String>,
    /// Woken whenever a run leaves the line.
    moved: Arc<Notify>,
}

/// A run in this process: its subscribers, its abort switch and, once ended, its outcome.
struct Run {
    id: String,
    /// Who started it: a WebSocket run is not tied to a request, so a drain aborts it at once.
    origin: RunOrigin,
    session_key: Option<String>,
    model: String,
    idempotency_key: Option<String>,
    abort: watch::Sender<bool>,
    subscribers: Mutex<Vec<mpsc::Sender<RunEvent>>>,
    started: AtomicBool,
    outcome: watch::Sender<Option<RunOutcome>>,
    /// True once the run's last event has been observed and sent (after `outcome` is set).
    ended: watch::Sender<bool>,
    ended_at: Mutex<Option<Instant>>,
    /// When it last made progress (Unix ms): started, or an event. The heartbeat stops a run
    /// silent for longer than `runs.stuck_after_ms`, flagging it `stuck` first.
    last_progress_ms: AtomicU64,
    stuck: AtomicBool,
}

/// A started (or joined) run: its id and its events, ending with `Final`, `Error` or `Aborted`.
pub struct RunHandle {
    pub run_id: String,
    pub session_key: Option<String>,
    /// "provider/model".
    pub model: String,
    /// An idempotent retry that joined a run already started: its events from now on.
    pub joined: bool,
    pub events: mpsc::Receiver<RunEvent>,
}

/// The agent and model a request resolved to.
struct Resolved {
    agent_id: String,
    agent: gateway_config::Agent,
    model_id: String,
    provider: String,
    provider_config: gateway_config::Provider,
    upstream_model: String,
}

impl Agents {
    /// The runtime on `store`, configured by `config` (later changes: [`Agents::configure`]).
    pub fn new(store: Arc<Store>, config: &Config, metrics: Arc<Metrics>) -> Self {
        let history = History::new(store);
        let interrupted = match history.mark_interrupted() {
            Ok(0) => 0,
            Ok(n) => {
                tracing::info!(runs = n, "runs cut short by the last stop are marked interrupted");
                n as u64
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot mark interrupted runs");
                0
            }
        };
        Self {
            inner: Arc::new(Inner {
                history,
                interrupted_at_start: interrupted,
                config: ArcSwap::from_pointee(config.clone()),
                clients: Clients::new(metrics.clone()),
                metrics,
                permits: Arc::new(Semaphore::new(config.runs.max_concurrent.get() as usize)),
                sessions: Mutex::new(HashMap::new()),
                runs: Mutex::new(HashMap::new()),
                idempotency: Mutex::new(HashMap::new()),
                closing: AtomicBool::new(false),
                last_prune: Mutex::new(Instant::now()),
                observer: std::sync::OnceLock::new(),
            }),
        }
    }

    /// A new config in effect: later runs use its models, agents and tools.
    pub fn configure(&self, config: &Config) {
        self.inner.config.store(Arc::new(config.clone()));
    }

    /// Sets the function told of every event of every stateful run, synchronously and in
    /// order (a session's next run starts only after its last event was observed). Once.
    pub fn observe(&self, observer: Observer) {
        if self.inner.observer.set(observer).is_err() {
            tracing::warn!("a run observer was already set");
        }
    }

    /// Sessions, messages, memory notes and stored responses.
    pub fn history(&self) -> &History {
        &self.inner.history
    }

    /// Runs a call on the history off the async workers.
    pub async fn with_history<T: Send + 'static>(
        &self,
        call: impl FnOnce(&History) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, CallError<StoreError>> {
        off_workers(self.inner.history.clone(), call).await
    }

    /// Validates agent and model, stores the input (stateful runs) and queues the run behind
    /// the session's current one; returns at once. The input is on disk when this returns.
    /// A caller that goes away meanwhile (its future dropped) does not leave a half-started run:
    /// the work is its own task.
    pub async fn start(&self, req: RunRequest) -> Result<RunHandle, StartError> {
        let this = self.clone();
        // The caller's span (an HTTP request, a WebSocket call) parents the run's.
        let parent = spans::current();
        match tokio::spawn(async move { this.start_here(req, parent).await }).await {
            Ok(result) => result,
            Err(e) => {
                tracing::error!(error = %e, "starting a run failed");
                Err(StartError::Unavailable(format!(
                    "the run could not be started ({e}): retry; if it persists, see the gateway log"
                )))
            }
        }
    }

    async fn start_here(&self, req: RunRequest, trace_parent: Context) -> Result<RunHandle, StartError> {
        if self.inner.closing.load(Ordering::Relaxed) {
            return Err(StartError::Unavailable(
                "the gateway is shutting down: retry after it restarts".into(),
            ));
        }
        let config = self.inner.config.load_full();
        let resolved = resolve(&config, req.agent.as_deref(), req.model.as_deref())?;
        if let Some(key) = &req.session_key {
            history::check_key("session key", key).map_err(StartError::BadRequest)?;
        }
        if req.input.is_empty() {
            return Err(StartError::BadRequest(
                "the request has no input message: send at least one (e.g. the user's message)".into(),
            ));
        }
        self.prune(&config);
        if let Some(key) = &req.idempotency_key {
            if let Some(handle) = self.join(key) {
                return Ok(handle);
            }
        }
        // On the WebSocket protocol the idempotency key is the run id (clients match events by it).
        let keyed = req.origin == RunOrigin::Ws && req.idempotency_key.is_some();
        let run_id = match (&req.idempotency_key, keyed) {
            (Some(key), true) => {
                history::check_key("idempotency key", key).map_err(StartError::BadRequest)?;
                if let Some(handle) = self.replay_stored(key).await? {
                    return Ok(handle);
                }
                key.clone()
            }
            _ => format!("run_{}", uuid::Uuid::new_v4().simple()),
        };
        if let Some(key) = &req.session_key {
            self.enter_session(key, &run_id, config.runs.max_queued_per_session.get() as usize)?;
        }
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        let run = Arc::new(Run {
            id: run_id.clone(),
            origin: req.origin,
            session_key: req.session_key.clone(),
            model: resolved.model_id.clone(),
            idempotency_key: req.idempotency_key.clone(),
            abort: watch::channel(false).0,
            subscribers: Mutex::new(vec![tx.clone()]),
            started: AtomicBool::new(false),
            outcome: watch::channel(None).0,
            ended: watch::channel(false).0,
            ended_at: Mutex::new(None),
            last_progress_ms: AtomicU64::new(now_ms()),
            stuck: AtomicBool::new(false),
        });
        // Claimed at once with the key, so a concurrent retry joins this run.
        if let Err(existing) = self.register(&run) {
            if let Some(key) = &req.session_key {
                self.leave_session(key, &run_id);
            }
            return Ok(self.subscribe(&existing));
        }
        // Ephemeral runs store nothing (they are remembered in memory for the idempotency
        // window, within `MAX_ENDED_RUNS`); stateful ones are recorded with their input in one
        // transaction.
        let stored = match req.session_key.clone() {
            None => Ok(None),
            Some(key) => {
                let history = self.inner.history.clone();
                let (run_id, agent, model) =
                    (run_id.clone(), resolved.agent_id.clone(), resolved.model_id.clone());
                let input = req.input.clone();
                let origin = req.origin.as_str();
                tokio::task::spawn_blocking(move || {
                    history.begin_run(&run_id, &key, &agent, &model, origin, &input)
                })
                .await
                .expect("store task")
                .map(Some)
            }
        };
        let turn = match stored {
            Ok(turn) => turn,
            Err(e) => {
                tracing::warn!(error = %e, "cannot store a run");
                if let Some(key) = &req.session_key {
                    self.leave_session(key, &run_id);
                }
                // Whoever joined meanwhile learns that it failed.
                let failed = RunEvent::Error {
                    code: "store",
                    message: "the gateway's state database failed; see the gateway log".into(),
                };
                for sub in lock(&run.subscribers).drain(..) {
                    let _ = sub.try_send(failed.clone());
                }
                self.unregister(&run);
                return Err(e.into());
            }
        };
        let handle = RunHandle {
            run_id,
            session_key: req.session_key.clone(),
            model: resolved.model_id.clone(),
            joined: false,
            events: rx,
        };
        let cancel_watch = req.cancel_on_drop.then_some(tx);
        let job = run::Job {
            agents: self.clone(),
            run,
            req,
            resolved,
            turn,
            cancel_watch,
            observed: Mutex::new((0, String::new())),
            begun: std::time::Instant::now(),
            first_text: std::sync::atomic::AtomicBool::new(false),
            trace_parent,
        };
        tokio::spawn(job.execute());
        Ok(handle)
    }

    /// Aborts a queued or running run; false when there is none by that id (or it ended).
    pub fn abort(&self, run_id: &str) -> bool {
        let run = lock(&self.inner.runs).get(run_id).cloned();
        match run {
            Some(run) if run.outcome.borrow().is_none() => {
                run.abort.send_replace(true);
                true
            }
            _ => false,
        }
    }

    /// Runs waiting for their turn (behind their session's run or the concurrency cap).
    pub fn queued(&self) -> usize {
        lock(&self.inner.runs)
            .values()
            .filter(|r| !r.started.load(Ordering::Relaxed) && r.outcome.borrow().is_none())
            .count()
    }

    /// Stops every started, unfinished run that made no progress for `runs.stuck_after_ms`: it
    /// ends with error `stuck`. Returns their ids (the heartbeat's repair).
    pub fn stop_stuck(&self) -> Vec<String> {
        let limit = self.inner.config.load().runs.stuck_after_ms.get();
        let now = now_ms();
        let stuck: Vec<Arc<Run>> = lock(&self.inner.runs)
            .values()
            .filter(|r| {
                r.started.load(Ordering::Relaxed)
                    && r.outcome.borrow().is_none()
                    && !r.stuck.load(Ordering::Relaxed)
                    && now.saturating_sub(r.last_progress_ms.load(Ordering::Relaxed)) > limit
            })
            .cloned()
            .collect();
        stuck
            .iter()
            .map(|r| {
                tracing::warn!(run = %r.id, model = %r.model, silent_ms = limit, "run made no progress: stopping it as stuck");
                r.stuck.store(true, Ordering::Relaxed);
                r.abort.send_replace(true);
                r.id.clone()
            })
            .collect()
    }

    /// Aborts every unfinished run of a session; returns their ids.
    pub fn abort_session(&self, session_key: &str) -> Vec<String> {
        let runs: Vec<Arc<Run>> = lock(&self.inner.runs)
            .values()
            .filter(|r| r.session_key.as_deref() == Some(session_key) && r.outcome.borrow().is_none())
            .cloned()
            .collect();
        runs.iter()
            .map(|r| {
                r.abort.send_replace(true);
                r.id.clone()
            })
            .collect()
    }

    /// How the run ended, waiting up to `timeout`; None if it is unknown or still going.
    pub async fn wait(&self, run_id: &str, timeout: Duration) -> Option<RunOutcome> {
        let run = lock(&self.inner.runs).get(run_id).cloned();
        if let Some(run) = run {
            let mut rx = run.outcome.subscribe();
            let ended = tokio::time::timeout(timeout, rx.wait_for(Option::is_some)).await;
            return ended.ok().and_then(|r| r.ok()).and_then(|o| o.clone());
        }
        let history = self.inner.history.clone();
        let id = run_id.to_owned();
        let stored = tokio::task::spawn_blocking(move || history.run(&id)).await.ok()?;
        stored.ok().flatten().filter(|o| !matches!(o.status, RunStatus::Queued | RunStatus::Running))
    }

    /// Every model offered, "provider/model".
    pub fn models(&self) -> Vec<ModelInfo> {
        let config = self.inner.config.load();
        let mut list = Vec::new();
        for (name, p) in gateway_config::agents::effective_providers(&config.models) {
            let builtin = p.kind == ProviderKind::Echo && !config.models.providers.contains_key(&name);
            for model in gateway_config::agents::provider_models(&p) {
                let description = match p.kind {
                    ProviderKind::Echo => crate::runtime::providers::echo::DESCRIPTION.to_owned(),
                    kind => format!(
                        "{} via {}",
                        kind.as_str(),
                        p.base_url.as_deref().unwrap_or("api.anthropic.com")
                    ),
                };
                list.push(ModelInfo {
                    id: format!("{name}/{model}"),
                    name: model,
                    provider: name.clone(),
                    kind: p.kind.as_str(),
                    description,
                    builtin,
                });
            }
        }
        list
    }

    pub fn agents(&self) -> Vec<AgentInfo> {
        let config = self.inner.config.load();
        agent_ids(&config)
            .into_iter()
            .map(|id| {
                let agent = config.agents.get(&id).cloned().unwrap_or_default();
                AgentInfo {
                    model: agent.model.clone().unwrap_or_else(|| config.models.default.clone()),
                    default: id == DEFAULT_AGENT,
                    tools: crate::runtime::tools::specs(&config.tools, agent.tools.as_deref())
                        .into_iter()
                        .map(|t| t.name)
                        .collect(),
                    has_system_prompt: agent.system_prompt.is_some(),
                    id,
                }
            })
            .collect()
    }

    /// Whether `id` names an agent.
    pub fn has_agent(&self, id: &str) -> bool {
        agent_ids(&self.inner.config.load()).iter().any(|a| a == id)
    }

    /// The tools config in effect (for `tools.catalog` and `POST /tools/invoke`).
    pub fn tools_config(&self) -> gateway_config::Tools {
        self.inner.config.load().tools.clone()
    }

    /// Refuses new runs from now on (the daemon is draining); those in progress go on.
    pub fn refuse_new(&self) {
        self.inner.closing.store(true, Ordering::Relaxed);
    }

    /// Aborts every run still going and waits up to `timeout` for them to record how they
    /// ended. Returns how many did not in time.
    pub async fn abort_all(&self, timeout: Duration) -> usize {
        self.abort_where(|_| true, timeout).await
    }

    /// Aborts the runs going that `started_by` selects by origin, and waits up to `timeout` for
    /// them to record how they ended and to send their last event (observers included). Returns
    /// how many did not in time.
    pub async fn abort_where(&self, started_by: impl Fn(RunOrigin) -> bool, timeout: Duration) -> usize {
        let runs: Vec<Arc<Run>> = lock(&self.inner.runs)
            .values()
            .filter(|r| started_by(r.origin) && r.outcome.borrow().is_none())
            .cloned()
            .collect();
        for run in &runs {
            run.abort.send_replace(true);
        }
        let deadline = Instant::now() + timeout;
        let mut left = 0;
        for run in runs {
            let mut rx = run.ended.subscribe();
            if tokio::time::timeout_at(deadline, rx.wait_for(|ended| *ended)).await.is_err() {
                left += 1;
            }
        }
        left
    }

    /// The number of runs not yet ended.
    pub fn active_runs(&self) -> usize {
        lock(&self.inner.runs).values().filter(|r| r.outcome.borrow().is_none()).count()
    }

    /// A handle that replays how a run recorded in the store ended (its key was used before this
    /// process, or longer ago than the idempotency window).
    async fn replay_stored(&self, run_id: &str) -> Result<Option<RunHandle>, StartError> {
        let history = self.inner.history.clone();
        let id = run_id.to_owned();
        let stored = tokio::task::spawn_blocking(move || history.run(&id)).await.expect("store task")?;
        Ok(stored.map(|outcome| {
            let (tx, rx) = mpsc::channel(1);
            let _ = tx.try_send(outcome_event(&outcome));
            RunHandle {
                run_id: outcome.run_id.clone(),
                session_key: outcome.session_key.clone(),
                model: outcome.model.clone(),
                joined: true,
                events: rx,
            }
        }))
    }

    /// An ended run nobody can join or wait for (ephemeral, no idempotency key) is forgotten
    /// at once; the others stay for the idempotency window.
    fn ended(&self, run: &Run) {
        if run.session_key.is_none() && run.idempotency_key.is_none() {
            lock(&self.inner.runs).remove(&run.id);
        }
    }

    /// A handle on the run an idempotency key started, if it is still remembered.
    fn join(&self, key: &str) -> Option<RunHandle> {
        let run_id = lock(&self.inner.idempotency).get(key).cloned()?;
        let run = lock(&self.inner.runs).get(&run_id).cloned()?;
        Some(self.subscribe(&run))
    }

    /// Puts a new run in the map and claims its idempotency key; `Err` with the run that
    /// holds the key already.
    fn register(&self, run: &Arc<Run>) -> Result<(), Arc<Run>> {
        let mut keys = lock(&self.inner.idempotency);
        let mut runs = lock(&self.inner.runs);
        if let Some(key) = &run.idempotency_key {
            if let Some(existing) = keys.get(key).and_then(|id| runs.get(id)) {
                return Err(existing.clone());
            }
            keys.insert(key.clone(), run.id.clone());
        }
        runs.insert(run.id.clone(), run.clone());
        Ok(())
    }

    fn unregister(&self, run: &Run) {
        let mut keys = lock(&self.inner.idempotency);
        lock(&self.inner.runs).remove(&run.id);
        if let Some(key) = &run.idempotency_key {
            if keys.get(key) == Some(&run.id) {
                keys.remove(key);
            }
        }
    }

    /// A new subscriber to a run: its events from now on (with `Started` replayed), or how it
    /// ended.
    fn subscribe(&self, run: &Run) -> RunHandle {
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        // Under the subscriber lock, so no event falls between the replay and the subscription.
        {
            let mut subs = lock(&run.subscribers);
            if let Some(outcome) = run.outcome.borrow().clone() {
                let _ = tx.try_send(outcome_event(&outcome));
            } else {
                if run.started.load(Ordering::Relaxed) {
                    let _ = tx.try_send(RunEvent::Started {
                        run_id: run.id.clone(),
                        session_key: run.session_key.clone(),
                        model: run.model.clone(),
                    });
                }
                subs.push(tx);
            }
        }
        RunHandle {
            run_id: run.id.clone(),
            session_key: run.session_key.clone(),
            model: run.model.clone(),
            joined: true,
            events: rx,
        }
    }

    /// Takes a place at the end of the session's line; refused when the line is full.
    fn enter_session(&self, key: &str, run_id: &str, max_queued: usize) -> Result<(), StartError> {
        let mut sessions = lock(&self.inner.sessions);
        let queue = sessions
            .entry(key.to_owned())
            .or_insert_with(|| SessionQueue { order: VecDeque::new(), moved: Arc::new(Notify::new()) });
        if queue.order.len() > max_queued {
            return Err(StartError::Busy(format!(
                "session {} has {} runs waiting (runs.max_queued_per_session = {max_queued}): retry later",
                gateway_proto::quote::short(key),
                queue.order.len() - 1
            )));
        }
        queue.order.push_back(run_id.to_owned());
        Ok(())
    }

    /// Resolves when the run is at the front of its session's line.
    async fn my_turn(&self, key: &str, run_id: &str) {
        loop {
            let moved = match lock(&self.inner.sessions).get(key) {
                Some(q) if q.order.front().map(String::as_str) != Some(run_id) => q.moved.clone(),
                _ => return,
            };
            let notified = moved.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Looked at again once registered, so a move in between is not missed.
            match lock(&self.inner.sessions).get(key) {
                Some(q) if q.order.front().map(String::as_str) != Some(run_id) => {}
                _ => return,
            }
            notified.await;
        }
    }

    /// Leaves the session's line (at the front when done, anywhere when aborted while waiting).
    fn leave_session(&self, key: &str, run_id: &str) {
        let mut sessions = lock(&self.inner.sessions);
        if let Some(queue) = sessions.get_mut(key) {
            queue.order.retain(|r| r != run_id);
            queue.moved.notify_waiters();
            if queue.order.is_empty() {
                sessions.remove(key);
            }
        }
    }

    /// Forgets ended runs (and their idempotency keys): a run the store can answer for after
    /// `STORED_RUN_GRACE`, any other after the idempotency window, and
    /// the oldest first when more than `MAX_ENDED_RUNS` have ended. At most once a second, so a
    /// busy gateway does not scan its runs on every start.
    fn prune(&self, config: &Config) {
        {
            let mut last = lock(&self.inner.last_prune);
            if last.elapsed() < PRUNE_INTERVAL {
                return;
            }
            *last = Instant::now();
        }
        let ttl = Duration::from_millis(config.runs.idempotency_ttl_ms.get());
        // Lock order everywhere: idempotency keys, then runs.
        let mut keys = lock(&self.inner.idempotency);
        let mut runs = lock(&self.inner.runs);
        let mut ended: Vec<(Instant, Arc<Run>)> =
            runs.values().filter_map(|r| lock(&r.ended_at).map(|t| (t, r.clone()))).collect();
        ended.sort_by_key(|(t, _)| *t);
        // The store answers for a recorded run: `wait` by its id, and a retry with its key when
        // the key is its id (WebSocket runs); other keys are only known here.
        let ages: Vec<(Duration, bool)> = ended
            .iter()
            .map(|(t, r)| {
                let replayable =
                    r.session_key.is_some() && r.idempotency_key.as_ref().is_none_or(|k| *k == r.id);
                (t.elapsed(), replayable)
            })
            .collect();
        for i in to_forget(&ages, ttl) {
            let run = &ended[i].1;
            runs.remove(&run.id);
            if let Some(k) = &run.idempotency_key {
                if keys.get(k) == Some(&run.id) {
                    keys.remove(k);
                }
            }
        }
    }
}

/// Which ended runs to forget, given each one's (age, whether the store answers for it), oldest
/// first: the replayable ones after `STORED_RUN_GRACE`, the others after the idempotency window
/// `ttl`, and the oldest beyond `MAX_ENDED_RUNS` whatever their age.
fn to_forget(ended: &[(Duration, bool)], ttl: Duration) -> Vec<usize> {
    let over = ended.len().saturating_sub(MAX_ENDED_RUNS);
    ended
        .iter()
        .enumerate()
        .filter(|(i, (age, replayable))| {
            let keep_for = if *replayable { STORED_RUN_GRACE.min(ttl) } else { ttl };
            *i < over || *age > keep_for
        })
        .map(|(i, _)| i)
        .collect()
}

impl Agents {
    /// Runs a previous process left unfinished, marked interrupted at start.
    pub fn interrupted_at_start(&self) -> u64 {
        self.inner.interrupted_at_start
    }

    /// Deletes the records of runs that ended, and the stored responses made, more than
    /// `days` days ago (0: none); returns how many of each. Blocking: call it off the workers.
    pub fn delete_expired(&self, days: u64) -> Result<(usize, usize), StoreError> {
        if days == 0 {
            return Ok((0, 0));
        }
        let before = now_ms().saturating_sub(days * 86_400_000);
        let history = &self.inner.history;
        Ok((history.delete_runs_ended_before(before)?, history.delete_responses_before(before)?))
    }
}

fn agent_ids(config: &Config) -> Vec<String> {
    let mut ids: Vec<String> = config.agents.keys().cloned().collect();
    if !config.agents.contains_key(DEFAULT_AGENT) {
        ids.push(DEFAULT_AGENT.to_owned());
    }
    ids.sort();
    ids
}

/// The agent and model a request names (or the defaults).
fn resolve(config: &Config, agent: Option<&str>, model: Option<&str>) -> Result<Resolved, StartError> {
    let agent_id = agent.unwrap_or(DEFAULT_AGENT);
    let agent = match config.agents.get(agent_id) {
        Some(a) => a.clone(),
        None if agent_id == DEFAULT_AGENT => gateway_config::Agent::default(),
        None => {
            return Err(StartError::UnknownAgent(format!(
                "unknown agent {}: known agents are {}",
                gateway_proto::quote::short(agent_id),
                agent_ids(config).join(", ")
            )))
        }
    };
    let requested = model.or(agent.model.as_deref()).unwrap_or(&config.models.default);
    let model_id = canonical_model(config, requested)?;
    let (provider, upstream_model) = gateway_config::split_model_id(&model_id).expect("checked");
    let providers = gateway_config::agents::effective_providers(&config.models);
    Ok(Resolved {
        agent_id: agent_id.to_owned(),
        provider: provider.to_owned(),
        provider_config: providers[provider].clone(),
        upstream_model: upstream_model.to_owned(),
        model_id: model_id.clone(),
        agent,
    })
}

/// "provider/model" for an id given in full, or for a bare model name one provider offers.
fn canonical_model(config: &Config, requested: &str) -> Result<String, StartError> {
    if gateway_config::agents::check_model_id(&config.models, requested).is_ok() {
        return Ok(requested.to_owned());
    }
    let offering: Vec<String> = gateway_config::agents::effective_providers(&config.models)
        .iter()
        .filter(|(_, p)| gateway_config::agents::provider_models(p).iter().any(|m| m == requested))
        .map(|(name, _)| format!("{name}/{requested}"))
        .collect();
    match offering.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(StartError::UnknownModel(format!(
            "unknown model {}: use an id from models.list (GET /v1/models), e.g. {:?}",
            gateway_proto::quote::short(requested),
            config.models.default
        ))),
        many => Err(StartError::UnknownModel(format!(
            "model {} is offered by several providers: name one of {}",
            gateway_proto::quote::short(requested),
            many.join(", ")
        ))),
    }
}

/// The terminal event that stands for an outcome (for subscribers that join late).
fn outcome_event(outcome: &RunOutcome) -> RunEvent {
    match (&outcome.status, &outcome.message, &outcome.error) {
        (RunStatus::Ok, Some(message), _) => RunEvent::Final {
            message: message.clone(),
            usage: outcome.usage,
            finish_reason: outcome.finish_reason.unwrap_or(FinishReason::Stop),
        },
        (RunStatus::Aborted, _, _) => RunEvent::Aborted,
        (_, _, Some(e)) => RunEvent::Error { code: static_code(&e.code), message: e.message.clone() },
        _ => RunEvent::Error { code: "interrupted", message: "the run was interrupted".into() },
    }
}

/// Error codes are a closed set; map a stored one back to its static name.
fn static_code(code: &str) -> &'static str {
    const CODES: &[&str] = &[
        "upstream_unavailable",
        "upstream_error",
        "timeout",
        "provider_config",
        "store",
        "interrupted",
        "stuck",
    ];
    CODES.iter().find(|c| **c == code).copied().unwrap_or("internal")
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    #[test]
    fn ended_runs_are_forgotten_by_kind_and_beyond_the_cap() {
        let ttl = Duration::from_secs(600);
        let s = Duration::from_secs;
        // Oldest first: an in-memory-only run past the window, one within it, a replayable run
        // past its grace, and one within it.
        let ended = [(s(700), false), (s(300), false), (s(6), true), (s(4), true)];
        assert_eq!(to_forget(&ended, ttl), [0, 2]);
        // Past the cap, the oldest go whatever their age.
        let many = vec![(s(1), false); MAX_ENDED_RUNS + 3];
        assert_eq!(to_forget(&many, ttl), [0, 1, 2]);
        // A window shorter than the grace bounds the replayable ones too.
        assert_eq!(to_forget(&[(s(3), true)], s(2)), [0]);
    }

    /// An upstream that takes requests and never answers; reports each connection's close.
    async fn silent_upstream() -> (String, mpsc::Receiver<&'static str>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::channel(8);
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _ = tx.send("open").await;
                    let mut buf = [0u8; 4096];
                    while stream.read(&mut buf).await.unwrap_or(0) > 0 {}
                    let _ = tx.send("closed").await;
                });
            }
        });
        (url, rx)
    }

    fn agents_for(url: &str) -> (tempfile::TempDir, Agents) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("g.db")).unwrap());
        let text = format!(
            "[models]\ndefault = \"up/m\"\n[models.providers.up]\nkind = \"openai\"\nbase_url = \"{url}\"\nmodels = [\"m\"]\n"
        );
        let config = gateway_config::parse_str(&text, std::path::Path::new("t.toml")).unwrap();
        (dir, Agents::new(store, &config, Default::default()))
    }

    fn request(cancel_on_drop: bool) -> RunRequest {
        RunRequest {
            session_key: Some("s".into()),
            input: vec![Message::user("hi")],
            cancel_on_drop,
            ..RunRequest::default()
        }
    }

    #[tokio::test]
    async fn dropping_a_cancel_on_drop_handle_aborts_the_run_and_closes_the_upstream_request() {
        let (url, mut upstream) = silent_upstream().await;
        let (_dir, agents) = agents_for(&url);
        let mut handle = agents.start(request(true)).await.unwrap();
        assert!(matches!(handle.events.recv().await, Some(RunEvent::Started { .. })));
        assert_eq!(upstream.recv().await, Some("open"));
        let run_id = handle.run_id.clone();
        drop(handle);
        let closed = tokio::time::timeout(Duration::from_secs(10), upstream.recv()).await;
        assert_eq!(closed.unwrap(), Some("closed"));
        let outcome = agents.wait(&run_id, Duration::from_secs(10)).await.unwrap();
        assert_eq!(outcome.status, RunStatus::Aborted);
        assert_eq!(agents.active_runs(), 0);
    }

    /// A subscriber that stops reading is dropped after a while; the run ends and frees its
    /// session instead of waiting for it forever.
    #[tokio::test]
    async fn a_subscriber_that_stops_reading_does_not_hold_the_run() {
        let (url, mut upstream) = silent_upstream().await;
        let (_dir, agents) = agents_for(&url);
        // The first run holds the session, so the second is queued while it gets a subscriber
        // with room for one event that never reads.
        let first = agents.start(request(false)).await.unwrap();
        assert_eq!(upstream.recv().await, Some("open"));
        let echo = RunRequest { model: Some("echo/echo".into()), ..request(false) };
        let mut second = agents.start(echo).await.unwrap();
        let (stalled_tx, _stalled_rx) = mpsc::channel(1);
        let run = lock(&agents.inner.runs).get(&second.run_id).cloned().unwrap();
        lock(&run.subscribers).push(stalled_tx);
        assert!(agents.abort(&first.run_id));
        let outcome = agents.wait(&second.run_id, Duration::from_secs(20)).await.expect("the run ended");
        assert_eq!(outcome.status, RunStatus::Ok);
        assert_eq!(outcome.message.unwrap().content, "hi");
        // The subscriber that reads got every event.
        let mut last = None;
        while let Some(event) = second.events.recv().await {
            last = Some(event);
        }
        assert!(matches!(last, Some(RunEvent::Final { .. })), "{last:?}");
        let third =
            agents.start(RunRequest { model: Some("echo/echo".into()), ..request(false) }).await.unwrap();
        let outcome = agents.wait(&third.run_id, Duration::from_secs(20)).await.expect("the session is free");
        assert_eq!(outcome.status, RunStatus::Ok);
    }

    #[tokio::test]
    async fn a_detached_run_outlives_its_handle_until_aborted() {
        let (url, mut upstream) = silent_upstream().await;
        let (_dir, agents) = agents_for(&url);
        let handle = agents.start(request(false)).await.unwrap();
        assert_eq!(upstream.recv().await, Some("open"));
        let run_id = handle.run_id.clone();
        drop(handle);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(agents.active_runs(), 1, "not tied to the handle");
        assert!(agents.abort(&run_id));
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(10), upstream.recv()).await.unwrap(),
            Some("closed")
        );
        assert_eq!(agents.wait(&run_id, Duration::from_secs(10)).await.unwrap().status, RunStatus::Aborted);
        assert!(!agents.abort(&run_id), "an ended run cannot be aborted");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn runs_of_a_session_execute_in_the_order_they_were_started() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("g.db")).unwrap());
        let agents = Agents::new(store, &Config::default(), Default::default());
        let mut ids = Vec::new();
        for i in 0..20 {
            let req = RunRequest {
                session_key: Some("s".into()),
                input: vec![Message::user(format!("m{i}"))],
                ..RunRequest::default()
            };
            ids.push(agents.start(req).await.unwrap().run_id);
        }
        for (i, id) in ids.iter().enumerate() {
            let outcome = agents.wait(id, Duration::from_secs(20)).await.unwrap();
            // The echo model counts the words it was sent: every earlier turn, complete.
            assert_eq!(outcome.usage.input_tokens, 2 * i as u64 + 1, "run {i} ran out of turn");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_starts_with_one_idempotency_key_make_one_run() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("g.db")).unwrap());
        let agents = Agents::new(store, &Config::default(), Default::default());
        for origin in [RunOrigin::Http, RunOrigin::Ws] {
            let key = format!("key-{}", origin.as_str());
            let starts: Vec<_> = (0..16)
                .map(|_| {
                    let agents = agents.clone();
                    let req = RunRequest {
                        session_key: Some(format!("s-{}", origin.as_str())),
                        input: vec![Message::user("once")],
                        idempotency_key: Some(key.clone()),
                        origin,
                        ..RunRequest::default()
                    };
                    tokio::spawn(async move { agents.start(req).await.map(|h| (h.run_id, h.joined)) })
                })
                .collect();
            let mut ids = Vec::new();
            for s in starts {
                ids.push(s.await.unwrap().unwrap());
            }
            assert!(ids.iter().all(|(id, _)| *id == ids[0].0), "{ids:?}");
            assert_eq!(ids.iter().filter(|(_, joined)| !joined).count(), 1, "{ids:?}");
            agents.wait(&ids[0].0, Duration::from_secs(10)).await.unwrap();
            let stored = agents.history().messages(&format!("s-{}", origin.as_str()), 100, None).unwrap();
            assert_eq!(stored.len(), 2, "one user message and one reply");
        }
    }

    #[tokio::test]
    async fn the_observer_sees_stateful_runs_in_order_and_not_ephemeral_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("g.db")).unwrap());
        let agents = Agents::new(store, &Config::default(), Default::default());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        agents.observe(Box::new(move |o| {
            let kind = match o.event {
                RunEvent::Delta { .. } => "delta",
                RunEvent::Final { .. } => "final",
                RunEvent::Started { .. } => "started",
                _ => "other",
            };
            lock(&sink).push((o.session_key.to_owned(), o.seq, kind, o.text.to_owned()));
        }));
        let ephemeral = RunRequest { input: vec![Message::user("not seen")], ..RunRequest::default() };
        let id = agents.start(ephemeral).await.unwrap().run_id;
        let req = RunRequest {
            session_key: Some("h".into()),
            input: vec![Message::user("one two three")],
            origin: RunOrigin::Hook,
            ..RunRequest::default()
        };
        let stateful = agents.start(req).await.unwrap().run_id;
        agents.wait(&stateful, Duration::from_secs(10)).await.unwrap();
        let _ = agents.wait(&id, Duration::from_secs(1)).await;
        let seen = lock(&seen).clone();
        let kinds: Vec<(u64, &str)> = seen.iter().map(|(_, seq, kind, _)| (*seq, *kind)).collect();
        assert_eq!(
            kinds,
            [(0, "started"), (0, "delta"), (1, "delta"), (2, "delta"), (3, "final")],
            "{seen:?}"
        );
        assert!(seen.iter().all(|(key, ..)| key == "h"));
        assert_eq!(seen[3].3, "one two three", "the text so far");
    }

    #[tokio::test]
    async fn unknown_agents_and_models_are_refused_with_their_kind() {
        let (url, _upstream) = silent_upstream().await;
        let (_dir, agents) = agents_for(&url);
        let err = agents
            .start(RunRequest { model: Some("up/other".into()), ..request(false) })
            .await
            .err()
            .unwrap();
        assert_eq!(err.code(), "model_not_found", "{err}");
        let err =
            agents.start(RunRequest { agent: Some("ghost".into()), ..request(false) }).await.err().unwrap();
        assert_eq!(err.code(), "agent_not_found", "{err}");
        let err = agents.start(RunRequest { input: vec![], ..request(false) }).await.err().unwrap();
        assert_eq!(err.code(), "invalid_request", "{err}");
        // A bare model name one provider offers is accepted.
        let handle = agents.start(RunRequest { model: Some("m".into()), ..request(true) }).await.unwrap();
        assert_eq!(handle.model, "up/m");
        // An ephemeral run without an idempotency key is forgotten once it ended.
        drop(handle);
        let ephemeral = RunRequest { session_key: None, ..request(true) };
        let handle = agents.start(ephemeral).await.unwrap();
        let id = handle.run_id.clone();
        drop(handle);
        tokio::time::timeout(Duration::from_secs(10), async {
            while agents.active_runs() > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap();
        assert!(agents.wait(&id, Duration::from_millis(10)).await.is_none());
        assert!(lock(&agents.inner.runs).get(&id).is_none());
    }
}
