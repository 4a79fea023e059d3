//! Where a run's answer goes: said on a chat channel, or POSTed as JSON to a webhook. The
//! webhook's URL passes the fetch tool's guard (no loopback, private or link-local address
//! unless `cron.webhook_allow_hosts` names the host), is connected to at the address checked,
//! and redirects are not followed.

use std::time::Duration;

use gateway_proto::cron::{DeliveryMode, Job, RunRecord};
use serde_json::json;

use crate::runtime::channels::Channels;
use crate::runtime::tools::fetch;

/// A webhook that has not answered by then has failed.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(15);

pub async fn send(
    job: &Job,
    run: &RunRecord,
    answer: &str,
    channels: &Channels,
    allow_hosts: &[String],
) -> Result<(), String> {
    let d = &job.spec.delivery;
    let to = d.to.as_deref().unwrap_or("");
    match d.mode {
        DeliveryMode::None => Ok(()),
        DeliveryMode::Announce => {
            let channel = d.channel.as_deref().unwrap_or("");
            channels.announce(channel, d.account_id.as_deref(), to, answer).await
        }
        DeliveryMode::Webhook => {
            let body = json!({
                "jobId": job.id,
                "jobName": job.spec.name,
                "runId": run.run_id,
                "trigger": run.trigger,
                "scheduledAtMs": run.scheduled_at_ms,
                "agentRunId": run.agent_run_id,
                "sessionKey": run.session_key,
                "status": "ok",
                "answer": answer,
            });
            tokio::time::timeout(WEBHOOK_TIMEOUT, post(to, &body, allow_hosts))
                .await
                .map_err(|_| format!("webhook {to}: no answer within {} s", WEBHOOK_TIMEOUT.as_secs()))?
        }
    }
}

async fn post(to: &str, body: &serde_json::Value, allow_hosts: &[String]) -> Result<(), String> {
    let url = reqwest::Url::parse(to)
        .map_err(|e| format!("webhook {}: not a URL: {e}", gateway_proto::quote::short(to)))?;
    let (host, addr) = fetch::guard(&url, allow_hosts, "cron.webhook_allow_hosts", "cron delivery").await?;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve(&host, addr)
        .user_agent(concat!("gatewayd/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("webhook: cannot build a client: {e}"))?;
    let response = client
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| format!("webhook {url}: {}", crate::runtime::providers::upstream::error_chain(&e)))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("webhook {url} answered {status}: it must answer 2xx"))
    }
}
