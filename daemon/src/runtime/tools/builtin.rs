//! The built-in tools.

use gateway_config::Tools;
use serde_json::{json, Value};

use super::Context;
use crate::runtime::agent::history::{check_key, MAX_NOTE_BYTES};
use gateway_proto::time::now_ms;

pub struct Builtin {
    pub name: &'static str,
    pub description: &'static str,
    pub parameters: fn() -> Value,
    pub needs_session: bool,
}

pub const ALL: &[Builtin] = &[
    Builtin {
        name: "time",
        description: "The current date and time (UTC, RFC 3339) and Unix time in milliseconds.",
        parameters: || json!({ "type": "object", "properties": {} }),
        needs_session: false,
    },
    Builtin {
        name: "memory_read",
        description: "Read this conversation's memory notes: one note by name, or all of them.",
        parameters: || {
            json!({ "type": "object", "properties": {
                "name": { "type": "string", "description": "the note; omit to list all notes" } } })
        },
        needs_session: true,
    },
    Builtin {
        name: "memory_write",
        description: "Write (or, with an empty value, delete) a memory note of this conversation.",
        parameters: || {
            json!({ "type": "object", "required": ["name", "value"], "properties": {
                "name": { "type": "string" }, "value": { "type": "string" } } })
        },
        needs_session: true,
    },
    Builtin {
        name: "sessions_list",
        description: "The most recently active conversations: key, agent, message count.",
        parameters: || {
            json!({ "type": "object", "properties": {
                "limit": { "type": "integer", "minimum": 1, "maximum": 100 } } })
        },
        needs_session: false,
    },
    Builtin {
        name: "fetch",
        description: "HTTP GET a public URL and return the status and the start of the body.",
        parameters: || {
            json!({ "type": "object", "required": ["url"], "properties": {
                "url": { "type": "string", "description": "http:// or https:// URL" } } })
        },
        needs_session: false,
    },
];

pub fn enabled(name: &str, config: &Tools) -> bool {
    match name {
        "time" => config.time,
        "memory_read" | "memory_write" => config.memory,
        "sessions_list" => config.sessions_list,
        "fetch" => config.fetch.enabled,
        _ => false,
    }
}

pub async fn run(tool: &Builtin, ctx: &Context<'_>, args: &Value) -> Result<String, String> {
    let session = match (tool.needs_session, ctx.session_key) {
        (true, None) => return Err(format!("{} needs a stored session: give a session key", tool.name)),
        (_, key) => key.unwrap_or_default().to_owned(),
    };
    let history = ctx.history.clone();
    let tool_name = tool.name;
    let store_failed = move |e: crate::core::store::StoreError| {
        tracing::warn!(error = %e, tool = tool_name, "tool store access failed");
        "the gateway's state database failed; see the gateway log".to_owned()
    };
    let blocking = |f: Box<dyn FnOnce() -> Result<Value, String> + Send>| async move {
        tokio::task::spawn_blocking(f).await.map_err(|e| format!("tool task failed: {e}"))?
    };
    let value = match tool.name {
        "time" => {
            let ms = now_ms();
            Ok(json!({ "utc": gateway_proto::time::rfc3339_millis(ms), "unixMs": ms }))
        }
        "memory_read" => {
            let name = args["name"].as_str().map(str::to_owned);
            blocking(Box::new(move || {
                let notes = history.notes(&session).map_err(store_failed)?;
                Ok(match name {
                    Some(n) => match notes.into_iter().find(|x| x.name == n) {
                        Some(note) => json!({ "name": note.name, "value": note.value }),
                        None => json!({ "name": n, "value": null, "note": "no such note" }),
                    },
                    None => json!({ "notes": notes }),
                })
            }))
            .await
        }
        "memory_write" => {
            let name = args["name"].as_str().ok_or("memory_write needs \"name\" (a string)")?.to_owned();
            let value = args["value"].as_str().ok_or("memory_write needs \"value\" (a string)")?.to_owned();
            check_key("note name", &name)?;
            if value.len() > MAX_NOTE_BYTES {
                return Err(format!(
                    "the value is {} bytes; a note holds at most {MAX_NOTE_BYTES}",
                    value.len()
                ));
            }
            blocking(Box::new(move || {
                if value.is_empty() {
                    let deleted = history.delete_note(&session, &name).map_err(store_failed)?;
                    Ok(json!({ "name": name, "deleted": deleted }))
                } else {
                    history.put_note(&session, &name, &value).map_err(store_failed)?;
                    Ok(json!({ "name": name, "saved": true }))
                }
            }))
            .await
        }
        "sessions_list" => {
            let limit = args["limit"].as_u64().unwrap_or(20).clamp(1, 100) as usize;
            blocking(Box::new(move || {
                let list = history.list_sessions(limit).map_err(store_failed)?;
                Ok(json!({ "sessions": list }))
            }))
            .await
        }
        "fetch" => {
            let url = args["url"].as_str().ok_or("fetch needs \"url\" (a string)")?;
            super::fetch::get(url, &ctx.config.fetch).await
        }
        other => Err(format!("unknown tool {other:?}")),
    }?;
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_config_knows_every_tool() {
        let names: Vec<&str> = super::ALL.iter().map(|t| t.name).collect();
        assert_eq!(names, gateway_config::agents::TOOL_NAMES);
    }
}
