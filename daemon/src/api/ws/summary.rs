//! The `status` method: the daemon's own report (`core::status`), plus the fields of the
//! reference's status summary that OpenClaw clients read (`openclaw status` against a gateway it
//! does not run). What this gateway does not have is there empty, never invented: no agent
//! heartbeats (`heartbeat.agents[].enabled` false), no background tasks, no queued system
//! events; sessions are the stored conversations.

use std::sync::Arc;

use gateway_proto::time::now_ms;
use serde_json::json;

use super::methods::Pending;
use crate::api::error::GatewayError;
use crate::core::gateway::Gateway;

/// Sessions listed under `sessions.recent`.
const RECENT_SESSIONS: usize = 10;

pub fn status(gw: Arc<Gateway>) -> Pending {
    Box::pin(async move {
        let (recent, counts) = gw
            .agents
            .with_history(|h| Ok((h.list_sessions(RECENT_SESSIONS)?, h.count_sessions()?)))
            .await
            .map_err(|e| GatewayError::store_failed("read its sessions", e).ws_shape())?;
        let mut report = serde_json::to_value(crate::core::status::report(&gw))
            .expect("the status serializes to plain JSON");
        let agents = gw.agents.agents();
        let default_model = agents.iter().find(|a| a.default).map(|a| a.model.clone());
        let now = now_ms();

        report["runtimeVersion"] = gateway_proto::VERSION.into();
        report["heartbeat"]["defaultAgentId"] = gateway_config::DEFAULT_AGENT.into();
        report["heartbeat"]["agents"] = agents
            .iter()
            .map(|a| json!({ "agentId": a.id, "enabled": false, "every": "disabled", "everyMs": null }))
            .collect();
        report["channelSummary"] = json!([]);
        report["queuedSystemEvents"] = json!([]);
        report["degradedSecretOwners"] = json!([]);
        report["degradedPlugins"] = json!([]);
        report["tasks"] = json!({
            "total": 0, "active": 0, "terminal": 0, "failures": 0,
            "byStatus": { "queued": 0, "running": 0, "succeeded": 0, "failed": 0, "timed_out": 0, "cancelled": 0, "lost": 0 },
            "byRuntime": { "subagent": 0, "acp": 0, "cli": 0, "cron": 0 },
        });
        report["taskAudit"] = json!({ "total": 0, "warnings": 0, "errors": 0, "byCode": {} });
        let models: std::collections::HashMap<&str, &str> =
            agents.iter().map(|a| (a.id.as_str(), a.model.as_str())).collect();
        let rows: Vec<(&str, serde_json::Value)> = recent
            .iter()
            .map(|s| {
                let row = json!({
                    "agentId": s.agent,
                    "key": s.key,
                    "kind": "direct",
                    "label": s.label,
                    "updatedAt": s.updated_at_ms,
                    "age": now.saturating_sub(s.updated_at_ms),
                    "model": models.get(s.agent.as_str()),
                });
                (s.agent.as_str(), row)
            })
            .collect();
        let by_agent: Vec<_> = counts
            .iter()
            .map(|(agent, n)| {
                let recent: Vec<_> = rows.iter().filter(|(a, _)| a == agent).map(|(_, r)| r).collect();
                json!({ "agentId": agent, "count": n, "path": null, "recent": recent })
            })
            .collect();
        report["sessions"] = json!({
            "paths": [],
            "count": counts.iter().map(|(_, n)| n).sum::<u64>(),
            "defaults": { "model": default_model, "contextTokens": null },
            "recent": rows.iter().map(|(_, r)| r).collect::<Vec<_>>(),
            "byAgent": by_agent,
        });
        Ok(report)
    })
}
