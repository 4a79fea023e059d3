//! The config methods of the WebSocket protocol (`config.get`, `config.apply`, `config.patch`).
//! Changing the config file from a client (`config.apply`, `config.patch`): an optimistic lock
//! on the hash of the file as the client read it, validation before anything is written, an
//! atomic write, then the same reload transaction as an edit by hand. Writes are rate limited.

use gateway_config::secret::write_private_file;
use gateway_config::{check_startable, parse_str, Loaded};
use gateway_proto::api::{ReloadOutcome, ReloadTrigger};
use gateway_proto::ws::{code, ErrorShape};
use gateway_proto::ws_methods::ConfigWriteParams;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::core::gateway::Gateway;
use crate::core::limiter::WRITES_PER_MINUTE;
use crate::core::reload;

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn read_file(gw: &Gateway) -> Result<Option<String>, ErrorShape> {
    match std::fs::read_to_string(gw.config_file()) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ErrorShape::new(
            code::UNAVAILABLE,
            format!("cannot read {}: {e}", gw.config_file().display()),
        )),
    }
}

/// `config.get`: the config in effect, secrets redacted; for an admin (who may change the file),
/// also the file as written (raw TOML, which may hold literal secrets) and its hash for
/// `config.patch`/`config.apply`.
pub fn get(gw: &Gateway, admin: bool) -> Result<Value, ErrorShape> {
    let raw = read_file(gw)?;
    let active = gw.active();
    let mut reply = json!({
        "path": gw.config_file().display().to_string(),
        "exists": raw.is_some(),
        "format": "toml",
        "generation": active.generation,
        "config": gateway_config::classify::redacted(&active.config),
    });
    if admin {
        let raw = raw.unwrap_or_default();
        reply["hash"] = sha256_hex(raw.as_bytes()).into();
        reply["raw"] = raw.into();
    }
    Ok(reply)
}

/// `config.apply` (`raw` is the whole file, TOML, or a JSON object) and `config.patch` (`raw` is
/// a JSON merge patch over the file's current contents).
pub async fn apply_rpc(gw: &Gateway, params: ConfigWriteParams, patch: bool) -> Result<Value, ErrorShape> {
    require_raw(&params)?;
    if let Err(retry) = gw.config_writes.take() {
        let mut error = ErrorShape::new(
            code::UNAVAILABLE,
            format!("too many config writes: at most {WRITES_PER_MINUTE} a minute"),
        );
        error.retryable = Some(true);
        error.retry_after_ms = Some(retry.as_millis() as u64);
        return Err(error);
    }
    let _serial = gw.config_write_lock.lock().await;
    let current = read_file(gw)?;
    let hash = sha256_hex(current.as_deref().unwrap_or("").as_bytes());
    if current.is_some() && params.base_hash.as_deref() != Some(hash.as_str()) {
        return Err(ErrorShape::new(
            code::INVALID_REQUEST,
            "the config file changed since it was read (baseHash does not match): config.get it again and redo the change",
        )
        .with_details(json!({ "hash": hash })));
    }
    let text =
        if patch { patched(current.as_deref().unwrap_or(""), &params.raw)? } else { as_toml(&params.raw)? };
    let file = gw.config_file();
    let config = parse_str(&text, file).map_err(rejected)?;
    let loaded = Loaded { config: config.clone(), exists: true, text: text.clone() };
    let effective = gw.overrides.apply(config);
    let addr = reload::listen_addr(&effective, &gw.profile);
    check_startable(&effective, &loaded, file, &gw.overrides, addr).map_err(rejected)?;
    write_private_file(file, text.as_bytes()).map_err(|e| {
        ErrorShape::new(code::UNAVAILABLE, format!("cannot write {}: {e}; nothing changed", file.display()))
    })?;
    let report = reload::reload(gw, ReloadTrigger::Rpc).await;
    if report.outcome == ReloadOutcome::Rejected {
        // Validated above, so only a secret that does not resolve gets here; the file is written.
        return Err(rejected(report.errors));
    }
    Ok(json!({
        "ok": true,
        "path": file.display().to_string(),
        "hash": sha256_hex(text.as_bytes()),
        "generation": report.generation,
        "reload": report,
    }))
}

fn require_raw(p: &ConfigWriteParams) -> Result<(), ErrorShape> {
    if p.raw.trim().is_empty() {
        return Err(ErrorShape::new(
            code::INVALID_REQUEST,
            "params.raw is empty: send the new config (or the patch) as a string",
        ));
    }
    Ok(())
}

fn rejected(errors: Vec<gateway_proto::api::ConfigIssue>) -> ErrorShape {
    let first = errors.first().map(ToString::to_string).unwrap_or_default();
    ErrorShape::new(code::INVALID_REQUEST, format!("config rejected, nothing written: {first}"))
        .with_details(json!({ "errors": errors }))
}

/// A JSON object is accepted too, and written as TOML.
fn as_toml(raw: &str) -> Result<String, ErrorShape> {
    match serde_json::from_str::<Value>(raw) {
        Ok(json @ Value::Object(_)) => to_toml(&json),
        _ => Ok(raw.to_owned()),
    }
}

fn patched(current: &str, patch: &str) -> Result<String, ErrorShape> {
    let patch: Value = serde_json::from_str(patch).map_err(|e| {
        ErrorShape::new(code::INVALID_REQUEST, format!("params.raw is not a JSON merge patch: {e}"))
    })?;
    let table: toml::Table = toml::from_str(current).map_err(|e| {
        ErrorShape::new(
            code::INVALID_REQUEST,
            format!("the current config does not parse, so it cannot be patched: {e}"),
        )
    })?;
    let mut doc = serde_json::to_value(table).expect("TOML converts to JSON");
    merge_patch(&mut doc, &patch);
    to_toml(&doc)
}

fn to_toml(json: &Value) -> Result<String, ErrorShape> {
    toml::to_string_pretty(json).map_err(|e| {
        ErrorShape::new(code::INVALID_REQUEST, format!("cannot express the config as TOML: {e}"))
    })
}

/// RFC 7396: objects merge, `null` deletes, anything else replaces.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(changes) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    let map = target.as_object_mut().expect("made an object above");
    for (key, value) in changes {
        if value.is_null() {
            map.remove(key);
        } else {
            merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut doc = json!({ "a": { "b": 1, "c": 2 }, "d": [1] });
        merge_patch(&mut doc, &json!({ "a": { "b": null, "e": 3 }, "d": [2, 3] }));
        assert_eq!(doc, json!({ "a": { "c": 2, "e": 3 }, "d": [2, 3] }));
    }

    #[test]
    fn patch_produces_toml() {
        let text = patched("[logging]\nlevel = \"info\"\n", r#"{"logging":{"level":"debug"}}"#).unwrap();
        assert!(text.contains("level = \"debug\""), "{text}");
    }
}
