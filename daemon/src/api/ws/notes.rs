//! `memory.list`, `memory.put`, `memory.delete` (a session's memory notes) and `tools.invoke`
//! (a direct tool call): what the admin routes and `POST /tools/invoke` do, for WebSocket
//! clients such as the Control UI, under the connection's scopes and the same policy gates.

use std::sync::Arc;

use gateway_config::DEFAULT_AGENT;
use gateway_proto::ws::{code, ErrorShape};
use gateway_proto::ws_methods::{MemoryListParams, MemoryNoteParams, ToolsInvokeParams};
use serde_json::json;

use super::conversation::blocking;
use super::methods::Pending;
use crate::core::admin_policy::Gate;
use crate::core::gateway::Gateway;
use crate::runtime::agent::history::{check_key, MAX_NOTE_BYTES};
use crate::runtime::tools;

fn invalid(message: impl Into<String>) -> ErrorShape {
    ErrorShape::new(code::INVALID_REQUEST, message)
}

/// The policy gate's refusal as the protocol's error.
pub fn gate(gw: &Gateway, gate: Gate) -> Result<(), ErrorShape> {
    gate.check(&gw.active().config)
        .map_err(|m| invalid(m).with_details(json!({ "code": "policy_gate_disabled" })))
}

fn check_keys(key: &str, name: Option<&str>) -> Result<(), ErrorShape> {
    check_key("session key", key).map_err(invalid)?;
    if let Some(name) = name {
        check_key("note name", name).map_err(invalid)?;
    }
    Ok(())
}

pub fn list(gw: Arc<Gateway>, p: MemoryListParams) -> Pending {
    Box::pin(async move {
        check_keys(&p.session_key, None)?;
        let key = p.session_key.clone();
        let notes = blocking(&gw, move |h| h.notes(&key)).await?;
        Ok(json!({ "sessionKey": p.session_key, "notes": notes }))
    })
}

pub fn put(gw: Arc<Gateway>, p: MemoryNoteParams) -> Pending {
    Box::pin(async move {
        gate(&gw, Gate::MemoryWrite)?;
        check_keys(&p.session_key, Some(&p.name))?;
        let value = p.value.ok_or_else(|| invalid("memory.put needs \"value\": the note's text"))?;
        if value.len() > MAX_NOTE_BYTES {
            return Err(invalid(format!(
                "a memory note holds at most {MAX_NOTE_BYTES} bytes; this one has {}",
                value.len()
            )));
        }
        let (key, name) = (p.session_key.clone(), p.name.clone());
        blocking(&gw, move |h| {
            h.create_session(&key, DEFAULT_AGENT, None)?;
            h.put_note(&key, &name, &value)
        })
        .await?;
        Ok(json!({ "sessionKey": p.session_key, "name": p.name, "saved": true }))
    })
}

pub fn delete(gw: Arc<Gateway>, p: MemoryNoteParams) -> Pending {
    Box::pin(async move {
        gate(&gw, Gate::MemoryWrite)?;
        check_keys(&p.session_key, Some(&p.name))?;
        let (key, name) = (p.session_key.clone(), p.name.clone());
        let existed = blocking(&gw, move |h| h.delete_note(&key, &name)).await?;
        Ok(json!({ "sessionKey": p.session_key, "name": p.name, "deleted": existed }))
    })
}

pub fn invoke_tool(gw: Arc<Gateway>, p: ToolsInvokeParams) -> Pending {
    Box::pin(async move {
        let config = gw.agents.tools_config();
        tools::check_call(&config, &p.tool, p.session_key.as_deref())
            .map_err(|(refused, message)| invalid(message).with_details(json!({ "code": refused.code() })))?;
        if p.dry_run {
            return Ok(json!({ "ok": true, "tool": p.tool, "dryRun": true }));
        }
        match tools::call_direct(gw.agents.history(), &config, &p.tool, p.session_key.as_deref(), p.args)
            .await
        {
            Ok(result) => Ok(json!({ "ok": true, "tool": p.tool, "result": result })),
            Err(message) => Err(invalid(message).with_details(json!({ "code": "tool_error" }))),
        }
    })
}
