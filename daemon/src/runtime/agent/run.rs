//! One run from queue to outcome: wait for the session and a global slot, call the model, run
//! the tools it asks for and call it again (up to the agent's cap), store the turn, and tell the
//! subscribers. An abort (or, for cancel-on-drop runs, the caller going away) drops the work in
//! progress, which closes any upstream request.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::{lock, Agents, Observed, Resolved, Run, RunRequest};
use crate::core::store::StoreError;
use crate::core::telemetry::spans::Traced;
use crate::runtime::agent::types::*;
use crate::runtime::providers::{self, Deltas, ModelCall, ProviderError};
use crate::runtime::tools;
use gateway_proto::time::now_ms;

/// How long a subscriber with a full buffer may take to make room before it is dropped: a
/// client that stops reading (but keeps its connection) must not hold the run, its session
/// and a global run slot forever.
const SLOW_SUBSCRIBER: Duration =
    if cfg!(test) { Duration::from_millis(300) } else { Duration::from_secs(30) };

pub(super) struct Job {
    pub agents: Agents,
    pub run: Arc<Run>,
    pub req: RunRequest,
    pub resolved: Resolved,
    /// The run's turn in its session (stateful runs).
    pub turn: Option<i64>,
    /// The creator's channel, watched when the run is cancelled on drop.
    pub cancel_watch: Option<mpsc::Sender<RunEvent>>,
    /// For the observer: events observed so far and the assistant's text.
    pub observed: std::sync::Mutex<(u64, String)>,
    /// When the job was spawned, and whether its first streamed text was seen (metrics).
    pub begun: std::time::Instant,
    pub first_text: std::sync::atomic::AtomicBool,
    /// Where the run was asked for: its span's parent.
    pub trace_parent: opentelemetry::Context,
}

/// How the work ended, before it becomes an outcome.
enum Ended {
    Done(Message, Usage, FinishReason),
    Failed(&'static str, String),
    Aborted,
}

impl Job {
    pub async fn execute(self) {
        let started_at_ms = now_ms();
        self.agents.inner.metrics.run_started();
        let mut abort = self.run.abort.subscribe();
        let cancel = self.cancel_watch.clone();
        let caller_gone = async move {
            match cancel {
                Some(tx) => tx.closed().await,
                None => std::future::pending().await,
            }
        };
        let span = super::trace::run(&self.trace_parent, &self.run, &self.resolved);
        let ended = tokio::select! {
            ended = self.work(&span) => ended,
            _ = abort.wait_for(|a| *a) => Ended::Aborted,
            _ = caller_gone => Ended::Aborted,
        };
        let mut outcome = match ended {
            Ended::Done(message, usage, finish_reason) => RunOutcome {
                status: RunStatus::Ok,
                message: Some(message),
                usage,
                finish_reason: Some(finish_reason),
                ..self.outcome(started_at_ms)
            },
            Ended::Failed(code, message) => {
                tracing::warn!(run = %self.run.id, code, error = %message, "run failed");
                RunOutcome {
                    status: RunStatus::Error,
                    error: Some(RunError { code: code.to_owned(), message }),
                    ..self.outcome(started_at_ms)
                }
            }
            Ended::Aborted if self.run.stuck.load(Ordering::Relaxed) => {
                let limit = self.agents.inner.config.load().runs.stuck_after_ms.get();
                let message = format!(
                    "the run made no progress for {} s (no text, tool call or result) and was stopped; \
                     check the model's provider, or raise runs.stuck_after_ms",
                    limit / 1000
                );
                tracing::warn!(run = %self.run.id, "{message}");
                RunOutcome {
                    status: RunStatus::Error,
                    error: Some(RunError { code: "stuck".into(), message }),
                    ..self.outcome(started_at_ms)
                }
            }
            Ended::Aborted => RunOutcome { status: RunStatus::Aborted, ..self.outcome(started_at_ms) },
        };
        if let (Some(key), Some(turn)) = (self.req.session_key.clone(), self.turn) {
            // The reply and the outcome land together.
            let history = self.agents.inner.history.clone();
            let record = outcome.clone();
            let last: Vec<Message> = record.message.iter().cloned().collect();
            let stored =
                tokio::task::spawn_blocking(move || history.end_run(&record, Some((&key, turn, &last))))
                    .await
                    .expect("store task");
            if let Err(e) = stored {
                tracing::warn!(run = %self.run.id, error = %e, "cannot store the end of a run");
                outcome = RunOutcome {
                    status: RunStatus::Error,
                    message: None,
                    error: Some(RunError {
                        code: "store".into(),
                        message: "the gateway's state database failed; see the gateway log".into(),
                    }),
                    ..outcome
                };
            }
        }
        // The outcome is published before the last event, so a client that saw the event and
        // then asks (agent.wait, chat.history) finds the run ended.
        *lock(&self.run.ended_at) = Some(tokio::time::Instant::now());
        self.run.outcome.send_replace(Some(outcome.clone()));
        self.emit(super::outcome_event(&outcome)).await;
        lock(&self.run.subscribers).clear();
        self.run.ended.send_replace(true);
        if let Some(key) = &self.req.session_key {
            self.agents.leave_session(key, &self.run.id);
        }
        self.agents.ended(&self.run);
        self.count(&outcome);
        super::trace::end_run(&span, &outcome);
    }

    fn count(&self, outcome: &RunOutcome) {
        let metrics = &self.agents.inner.metrics;
        let status = match outcome.status {
            RunStatus::Ok => "ok",
            RunStatus::Aborted => "aborted",
            _ => "error",
        };
        metrics.run_ended(&self.resolved.provider, status, self.begun.elapsed());
        let usage = &outcome.usage;
        if usage.input_tokens + usage.output_tokens > 0 {
            metrics.tokens(
                &self.resolved.provider,
                &self.resolved.upstream_model,
                usage.input_tokens,
                usage.output_tokens,
            );
        }
    }

    fn outcome(&self, started_at_ms: u64) -> RunOutcome {
        RunOutcome {
            run_id: self.run.id.clone(),
            session_key: self.req.session_key.clone(),
            status: RunStatus::Error,
            model: self.resolved.model_id.clone(),
            message: None,
            usage: Usage::default(),
            finish_reason: None,
            error: None,
            started_at_ms,
            ended_at_ms: now_ms(),
        }
    }

    /// Tells the observer, then sends the event to every subscriber; those gone are forgotten.
    async fn emit(&self, event: RunEvent) {
        self.run.last_progress_ms.store(now_ms(), Ordering::Relaxed);
        if let (Some(observer), Some(key)) = (self.agents.inner.observer.get(), &self.req.session_key) {
            let mut observed = lock(&self.observed);
            let (seq, text) = &mut *observed;
            if let RunEvent::Delta { text: delta } = &event {
                text.push_str(delta);
            }
            observer(&Observed { run_id: &self.run.id, session_key: key, seq: *seq, text, event: &event });
            if !matches!(
                event,
                RunEvent::Started { .. } | RunEvent::ToolStart { .. } | RunEvent::ToolResult { .. }
            ) {
                *seq += 1;
            }
        }
        let subscribers: Vec<mpsc::Sender<RunEvent>> = lock(&self.run.subscribers).clone();
        for tx in subscribers {
            let kept = match tx.try_send(event.clone()) {
                Ok(()) => true,
                Err(TrySendError::Closed(_)) => false,
                Err(TrySendError::Full(event)) => {
                    let sent = tokio::time::timeout(SLOW_SUBSCRIBER, tx.send(event)).await;
                    if sent.is_err() {
                        tracing::warn!(
                            run = %self.run.id,
                            waited_ms = SLOW_SUBSCRIBER.as_millis() as u64,
                            "a client stopped reading this run's events; it gets no more of them"
                        );
                    }
                    matches!(sent, Ok(Ok(())))
                }
            };
            if !kept {
                lock(&self.run.subscribers).retain(|s| !s.same_channel(&tx));
            }
        }
    }

    async fn work(&self, span: &Traced) -> Ended {
        // Queue: the session first (one run at a time, in order), then a global slot.
        if let Some(key) = &self.req.session_key {
            self.agents.my_turn(key, &self.run.id).await;
        }
        let _permit = self.agents.inner.permits.acquire().await.expect("the semaphore is never closed");
        self.run.last_progress_ms.store(now_ms(), Ordering::Relaxed);
        self.run.started.store(true, Ordering::Relaxed);
        self.emit(RunEvent::Started {
            run_id: self.run.id.clone(),
            session_key: self.req.session_key.clone(),
            model: self.resolved.model_id.clone(),
        })
        .await;
        match self.turns(span).await {
            Ok(ended) => ended,
            Err(e) => {
                tracing::warn!(run = %self.run.id, error = %e, "run store failure");
                Ended::Failed("store", "the gateway's state database failed; see the gateway log".into())
            }
        }
    }

    /// Model calls and tool rounds until the model answers (or the cap is reached).
    async fn turns(&self, span: &Traced) -> Result<Ended, StoreError> {
        let config = self.agents.inner.config.load_full();
        let agent = &self.resolved.agent;
        let gateway_tools = tools::specs(&config.tools, agent.tools.as_deref());
        let mut offered = gateway_tools.clone();
        for t in &self.req.client_tools {
            if !offered.iter().any(|o| o.name == t.name) {
                offered.push(t.clone());
            }
        }
        // Ephemeral runs keep their conversation here; stateful ones re-read the store.
        let mut produced: Vec<Message> = Vec::new();
        let mut usage = Usage::default();
        let max_iterations = agent.max_tool_iterations.get();
        for iteration in 1..=max_iterations {
            let call = ModelCall {
                model: self.resolved.upstream_model.clone(),
                messages: self.context(&produced).await?,
                tools: offered.clone(),
                max_output_tokens: self.req.max_output_tokens,
                temperature: self.req.temperature,
                trace_headers: Vec::new(),
            };
            let reply = match self.call_model(call, span).await {
                Ok(reply) => reply,
                Err(e) => return Ok(Ended::Failed(e.code(), e.to_string())),
            };
            usage.add(reply.usage);
            let message = reply.message;
            let wants_tools = !message.tool_calls.is_empty();
            let all_ours = message.tool_calls.iter().all(|c| gateway_tools.iter().any(|t| t.name == c.name));
            if !wants_tools || !all_ours || iteration == max_iterations {
                // Client tools end the run: the caller runs them and comes back.
                let finish = if wants_tools { FinishReason::ToolCalls } else { reply.finish_reason };
                // Stored with the outcome, in one transaction.
                return Ok(Ended::Done(message, usage, finish));
            }
            let mut round = vec![message.clone()];
            for call in &message.tool_calls {
                let tool_span = super::trace::tool(span, call);
                self.emit(RunEvent::ToolStart { call: call.clone() }).await;
                let ctx = tools::Context {
                    history: &self.agents.inner.history,
                    session_key: self.req.session_key.as_deref(),
                    config: &config.tools,
                };
                let (output, is_error) = match tools::invoke(&ctx, &call.name, &call.arguments).await {
                    Ok(out) => (out, false),
                    Err(e) => {
                        tool_span.fail("tool_error", || e.clone());
                        (serde_json::json!({ "error": e }).to_string(), true)
                    }
                };
                tool_span.end();
                self.emit(RunEvent::ToolResult {
                    call_id: call.id.clone(),
                    name: call.name.clone(),
                    output: output.clone(),
                    is_error,
                })
                .await;
                round.push(Message::tool_result(&call.id, output));
            }
            self.store(&round).await?;
            produced.extend(round);
        }
        unreachable!("the last iteration returns")
    }

    /// One model call, its streamed text passed on as `Delta` events.
    async fn call_model(
        &self,
        mut call: ModelCall,
        run_span: &Traced,
    ) -> Result<providers::Reply, ProviderError> {
        let (tx, mut rx) = mpsc::channel::<String>(64);
        let inner = &self.agents.inner;
        let r = &self.resolved;
        let span = super::trace::model_call(run_span, r, &call);
        // The upstream continues the model call's trace.
        call.trace_headers = span.outgoing_headers();
        let model = async move {
            let mut deltas = Deltas::new(&tx);
            providers::call(&inner.clients, &r.provider, &r.provider_config, call, &mut deltas).await
        };
        let forward = async {
            while let Some(text) = rx.recv().await {
                if !self.first_text.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    inner.metrics.first_token(&r.provider, self.begun.elapsed());
                }
                self.emit(RunEvent::Delta { text }).await;
            }
        };
        // `model` drops its sender when done, which ends `forward`.
        let (reply, ()) = tokio::join!(model, forward);
        super::trace::end_model_call(&span, &reply);
        if let Err(e) = &reply {
            inner.metrics.provider_error(&r.provider, e.code());
        }
        reply
    }

    /// What the model sees: system text, then the conversation (stored history of this turn
    /// and before, or the ephemeral input plus what this run produced).
    async fn context(&self, produced: &[Message]) -> Result<Vec<Message>, StoreError> {
        let mut messages = Vec::new();
        if let Some(prompt) = &self.resolved.agent.system_prompt {
            messages.push(Message::new(Role::System, prompt.clone()));
        }
        if let Some(extra) = &self.req.instructions {
            messages.push(Message::new(Role::System, extra.clone()));
        }
        match (&self.req.session_key, self.turn) {
            (Some(key), Some(turn)) => {
                let history = self.agents.inner.history.clone();
                let (key, limit) = (key.clone(), self.resolved.agent.history_limit.get() as usize);
                let stored = tokio::task::spawn_blocking(move || history.messages(&key, limit, Some(turn)))
                    .await
                    .expect("store task")?;
                // The limit may cut a tool round in two: start at a user message, as APIs require.
                let start = stored.iter().position(|m| m.message.role == Role::User).unwrap_or(stored.len());
                messages.extend(stored.into_iter().skip(start).map(|m| m.message));
            }
            _ => {
                messages.extend(self.req.input.iter().cloned());
                messages.extend(produced.iter().cloned());
            }
        }
        Ok(messages)
    }

    /// Appends messages to the session's turn (nothing for ephemeral runs).
    async fn store(&self, messages: &[Message]) -> Result<(), StoreError> {
        let (Some(key), Some(turn)) = (&self.req.session_key, self.turn) else {
            return Ok(());
        };
        let history = self.agents.inner.history.clone();
        let (key, run_id, messages) = (key.clone(), self.run.id.clone(), messages.to_vec());
        tokio::task::spawn_blocking(move || history.append(&key, &run_id, turn, &messages))
            .await
            .expect("store task")
    }
}
