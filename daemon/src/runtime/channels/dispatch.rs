//! What happens to a message from a channel account: the access policy first (no model call
//! for a sender who is not allowed; a pairing code for an unknown one), then the inbox (recorded
//! before anything else, a replay recognised by its id), then an agent run on the conversation's
//! session, the answer recorded, sent, and marked done. One worker per session keeps a burst of
//! messages in order; a reply the network refuses is retried with backoff, then reported.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use gateway_proto::time::now_ms;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

use super::policy::{pairing_message, Decision, Policy};
use super::state::{ChannelState, Open};
use super::{update, Delivery, Inbound, Outgoing, SharedStatus};
use crate::core::store::{off_workers, CallError, StoreError};
use crate::runtime::agent::{Agents, Message, Role, RunOrigin, RunRequest, RunStatus};

/// Sending a reply is tried this many times (the waits between: `RETRY_BACKOFF`).
const MAX_ATTEMPTS: u32 = 6;
const RETRY_BACKOFF: [u64; 5] = [1, 5, 15, 60, 300];
/// How long a run may take before the message is answered with an apology.
const RUN_TIMEOUT: Duration = Duration::from_secs(900);

pub struct Dispatcher {
    pub channel: &'static str,
    pub account: String,
    pub agent: Option<String>,
    pub policy: Policy,
    pub agents: Agents,
    pub state: ChannelState,
    pub status: SharedStatus,
    pub outgoing: mpsc::Sender<Outgoing>,
}

async fn store<T: Send + 'static>(
    state: &ChannelState,
    call: impl FnOnce(&ChannelState) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, String> {
    off_workers(state.clone(), call).await.map_err(|e| match e {
        CallError::Failed(e) => e.to_string(),
        task => task.to_string(),
    })
}

impl Dispatcher {
    /// Runs until the account stops; what a restart left open is taken up first.
    pub async fn run(self, mut inbound: mpsc::Receiver<Delivery>, mut stopped: watch::Receiver<bool>) {
        let me = Arc::new(self);
        let mut sessions: HashMap<String, mpsc::UnboundedSender<Open>> = HashMap::new();
        let mut workers = JoinSet::new();
        let (channel, account) = (me.channel, me.account.clone());
        match store(&me.state, move |s| s.open(channel, &account)).await {
            Ok(open) => {
                if !open.is_empty() {
                    tracing::info!(channel, account = %me.account, messages = open.len(), "answering channel messages left open");
                }
                for item in open {
                    me.queue(item, &mut sessions, &mut workers);
                }
            }
            Err(e) => {
                tracing::error!(channel, account = %me.account, error = %e, "cannot read the channel inbox")
            }
        }
        loop {
            tokio::select! {
                _ = stopped.changed() => break,
                delivery = inbound.recv() => match delivery {
                    Some(Delivery { message, recorded }) => {
                        me.receive(message, &mut sessions, &mut workers).await;
                        if let Some(recorded) = recorded {
                            let _ = recorded.send(());
                        }
                    }
                    None => break,
                },
            }
        }
        // The inbox keeps what is unfinished; the account's next start takes it up.
        workers.abort_all();
    }

    fn queue(
        self: &Arc<Self>,
        item: Open,
        sessions: &mut HashMap<String, mpsc::UnboundedSender<Open>>,
        workers: &mut JoinSet<()>,
    ) {
        let key = item.session_key.clone();
        let sender = sessions.entry(key).or_insert_with(|| {
            let (tx, mut rx) = mpsc::unbounded_channel::<Open>();
            let me = self.clone();
            workers.spawn(async move {
                while let Some(item) = rx.recv().await {
                    me.answer(item).await;
                }
            });
            tx
        });
        let _ = sender.send(item);
    }

    async fn receive(
        self: &Arc<Self>,
        message: Inbound,
        sessions: &mut HashMap<String, mpsc::UnboundedSender<Open>>,
        workers: &mut JoinSet<()>,
    ) {
        update(&self.status, |s| s.last_inbound_at = Some(now_ms()));
        let (policy, checked) = (self.policy.clone(), message.clone());
        let decision = match store(&self.state, move |s| policy.decide(s, &checked)).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(channel = self.channel, account = %self.account, error = %e, "cannot check a channel sender");
                return;
            }
        };
        match decision {
            Decision::Ignore(why) => {
                tracing::debug!(channel = self.channel, account = %self.account, peer = %message.peer, why, "channel message not answered");
            }
            Decision::SendPairingCode(code) => {
                tracing::info!(
                    event = "channel_pairing_requested",
                    channel = self.channel,
                    account = %self.account,
                    peer = %message.peer,
                    "an unknown sender asked to pair: gatewayctl pairing list"
                );
                if let Err(e) = self.send(&message.reply_to(), &pairing_message(self.channel, &code)).await {
                    tracing::warn!(channel = self.channel, account = %self.account, error = %e, "cannot send a pairing code");
                }
            }
            Decision::Answer => {
                let item = Open {
                    channel: self.channel.to_owned(),
                    account: self.account.clone(),
                    message_id: message.message_id.clone(),
                    chat: message.reply_to(),
                    session_key: message.session_key(),
                    text: message.text.clone(),
                    reply: None,
                    attempts: 0,
                };
                let recorded = item.clone();
                let accepted = store(&self.state, move |s| {
                    s.accept(
                        &recorded.channel,
                        &recorded.account,
                        &recorded.message_id,
                        &recorded.chat,
                        &recorded.session_key,
                        &recorded.text,
                    )
                })
                .await;
                match accepted {
                    Ok(true) => self.queue(item, sessions, workers),
                    Ok(false) => {
                        tracing::debug!(channel = self.channel, message = %message.message_id, "a replayed message is not answered twice")
                    }
                    Err(e) => {
                        tracing::error!(channel = self.channel, account = %self.account, error = %e, "cannot record a channel message; it is not answered")
                    }
                }
            }
        }
    }

    /// Answers one message: the run (unless the answer is already recorded), then the reply.
    async fn answer(&self, item: Open) {
        let reply = match &item.reply {
            Some(reply) => reply.clone(),
            None => {
                let reply = match self.ask(&item).await {
                    Ok(text) => text,
                    Err(why) => format!("Sorry, I could not answer that: {why}"),
                };
                let (c, a, m, r) =
                    (item.channel.clone(), item.account.clone(), item.message_id.clone(), reply.clone());
                if let Err(e) = store(&self.state, move |s| s.answered(&c, &a, &m, &r)).await {
                    tracing::error!(channel = self.channel, account = %self.account, error = %e, "cannot record a channel reply");
                }
                // Waiting to be sent from now on, as the status says.
                self.count_pending().await;
                reply
            }
        };
        let mut attempts = item.attempts;
        loop {
            match self.send(&item.chat, &reply).await {
                Ok(()) => {
                    update(&self.status, |s| s.last_outbound_at = Some(now_ms()));
                    let (c, a, m) = (item.channel.clone(), item.account.clone(), item.message_id.clone());
                    if let Err(e) = store(&self.state, move |s| s.done(&c, &a, &m)).await {
                        tracing::error!(channel = self.channel, error = %e, "cannot mark a channel reply sent");
                    }
                    self.count_pending().await;
                    return;
                }
                Err(why) => {
                    let (c, a, m, w) =
                        (item.channel.clone(), item.account.clone(), item.message_id.clone(), why.clone());
                    attempts = store(&self.state, move |s| s.attempt_failed(&c, &a, &m, &w))
                        .await
                        .unwrap_or(attempts + 1);
                    self.count_pending().await;
                    if attempts >= MAX_ATTEMPTS {
                        tracing::error!(
                            event = "channel_reply_failed",
                            channel = self.channel,
                            account = %self.account,
                            to = %item.chat,
                            error = %why,
                            "a channel reply could not be sent after {MAX_ATTEMPTS} attempts"
                        );
                        update(&self.status, |s| {
                            s.last_error = Some(format!("a reply to {} could not be sent: {why}", item.chat))
                        });
                        let (c, a, m) = (item.channel.clone(), item.account.clone(), item.message_id.clone());
                        let _ = store(&self.state, move |s| s.failed(&c, &a, &m, &why)).await;
                        self.count_pending().await;
                        return;
                    }
                    let wait = RETRY_BACKOFF[(attempts as usize - 1).min(RETRY_BACKOFF.len() - 1)];
                    tracing::warn!(channel = self.channel, account = %self.account, to = %item.chat, error = %why, retry_in_s = wait, "a channel reply was not sent; retrying");
                    tokio::time::sleep(Duration::from_secs(wait)).await;
                }
            }
        }
    }

    /// An agent turn on the message's session; the answer's text.
    async fn ask(&self, item: &Open) -> Result<String, String> {
        let request = RunRequest {
            session_key: Some(item.session_key.clone()),
            agent: self.agent.clone(),
            input: vec![Message::new(Role::User, item.text.clone())],
            idempotency_key: Some(format!("{}:{}:{}", item.channel, item.account, item.message_id)),
            origin: RunOrigin::Channel,
            ..Default::default()
        };
        let handle = self.agents.start(request).await.map_err(|e| e.to_string())?;
        // Only the outcome matters here: a receiver left unread would hold the run back.
        let run_id = handle.run_id.clone();
        drop(handle);
        // Best effort: a network without the indicator, or a failure, changes nothing.
        let _ = self.deliver(&item.chat, "", true).await;
        let outcome = self.agents.wait(&run_id, RUN_TIMEOUT).await.ok_or("the model took too long")?;
        match outcome.status {
            RunStatus::Ok => Ok(outcome.message.map(|m| m.content).unwrap_or_default()),
            status => {
                Err(outcome.error.map_or_else(|| format!("the run ended {}", status.as_str()), |e| e.message))
            }
        }
    }

    async fn send(&self, to: &str, text: &str) -> Result<(), String> {
        self.deliver(to, text, false).await
    }

    async fn deliver(&self, to: &str, text: &str, typing: bool) -> Result<(), String> {
        let (sent, done) = oneshot::channel();
        let outgoing = Outgoing { to: to.to_owned(), text: text.to_owned(), typing, sent };
        self.outgoing.send(outgoing).await.map_err(|_| "the account's connection has stopped".to_owned())?;
        done.await.map_err(|_| "the account's connection has stopped".to_owned())?
    }

    async fn count_pending(&self) {
        let (channel, account) = (self.channel, self.account.clone());
        if let Ok(open) = store(&self.state, move |s| s.open(channel, &account)).await {
            let pending = open.iter().filter(|o| o.reply.is_some()).count() as u32;
            update(&self.status, |s| s.pending_replies = pending);
        }
    }
}
