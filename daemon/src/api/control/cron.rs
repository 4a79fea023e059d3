//! The control API's scheduled-job routes, for `gatewayctl cron`: they parse, call the
//! scheduler, and shape the answer. The WebSocket door serves the same as `cron.*`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use gateway_proto::cron::{JobPatch, JobSpec};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::api::error::GatewayError;
use crate::core::gateway::Gateway;

fn answer<T: serde::Serialize>(result: Result<T, crate::runtime::scheduler::CronError>) -> Response {
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => GatewayError::from(e).into_response(),
    }
}

/// The body as a `T`, or a 400 naming the field at fault.
fn body<T: DeserializeOwned>(bytes: &Bytes, what: &str) -> Result<T, GatewayError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let at = e.path().to_string();
        GatewayError::bad_request(format!("{what}: {} (at {at})", e.inner()))
    })
}

pub async fn status(State(gw): State<Arc<Gateway>>) -> Response {
    answer(gw.scheduler.status().await)
}

pub async fn list(State(gw): State<Arc<Gateway>>) -> Response {
    answer(gw.scheduler.list().await)
}

pub async fn add(State(gw): State<Arc<Gateway>>, bytes: Bytes) -> Response {
    let spec: JobSpec = match body(&bytes, "a job definition") {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    match gw.scheduler.add(spec).await {
        Ok(job) => (StatusCode::CREATED, Json(job)).into_response(),
        Err(e) => GatewayError::from(e).into_response(),
    }
}

pub async fn show(State(gw): State<Arc<Gateway>>, UrlPath(id): UrlPath<String>) -> Response {
    answer(gw.scheduler.get(&id).await)
}

pub async fn edit(State(gw): State<Arc<Gateway>>, UrlPath(id): UrlPath<String>, bytes: Bytes) -> Response {
    let patch: JobPatch = match body(&bytes, "a job change") {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    answer(gw.scheduler.update(&id, patch).await)
}

pub async fn remove(State(gw): State<Arc<Gateway>>, UrlPath(id): UrlPath<String>) -> Response {
    answer(gw.scheduler.remove(&id).await)
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RunBody {
    /// Answer once the run ended, waiting up to this long.
    #[serde(default)]
    wait_ms: Option<u64>,
}

pub async fn run(State(gw): State<Arc<Gateway>>, UrlPath(id): UrlPath<String>, bytes: Bytes) -> Response {
    let run: RunBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        RunBody::default()
    } else {
        match body(&bytes, "a run request") {
            Ok(r) => r,
            Err(e) => return e.into_response(),
        }
    };
    answer(gw.scheduler.run_now(&id, run.wait_ms.map(Duration::from_millis)).await)
}

#[derive(Deserialize)]
pub struct RunsQuery {
    #[serde(default)]
    job: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
}

pub async fn runs(State(gw): State<Arc<Gateway>>, Query(q): Query<RunsQuery>) -> Response {
    answer(gw.scheduler.runs(q.job.as_deref(), q.limit.unwrap_or(50)).await)
}
