//! The `fetch` tool: not yet wired.

use gateway_config::Fetch;
use serde_json::Value;

pub async fn get(_url: &str, _config: &Fetch) -> Result<Value, String> {
    Err("fetch is not available in this build".into())
}
