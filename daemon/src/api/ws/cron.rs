//! `cron.list|status|add|update|remove|run|runs`: the scheduled jobs, as the control socket's
//! cron routes serve them, with the other gateway family's method names and result shapes.

use std::sync::Arc;
use std::time::Duration;

use gateway_proto::cron::JobSpec;
use gateway_proto::ws::{code, ErrorShape};
use gateway_proto::ws_methods::{CronJobParams, CronListParams, CronRunsParams, CronUpdateParams};
use serde_json::{json, Value};

use super::methods::Pending;
use crate::api::error::GatewayError;
use crate::core::gateway::Gateway;
use crate::runtime::scheduler::CronError;

fn shape(e: CronError) -> ErrorShape {
    GatewayError::from(e).ws_shape()
}

fn value<T: serde::Serialize>(v: T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

pub fn list(gw: Arc<Gateway>, p: CronListParams) -> Pending {
    Box::pin(async move {
        let mut jobs = gw.scheduler.list().await.map_err(shape)?;
        if p.include_disabled == Some(false) {
            jobs.retain(|j| j.spec.enabled);
        }
        Ok(json!({ "jobs": jobs }))
    })
}

pub fn status(gw: Arc<Gateway>) -> Pending {
    Box::pin(async move { gw.scheduler.status().await.map(value).map_err(shape) })
}

pub fn add(gw: Arc<Gateway>, spec: JobSpec) -> Pending {
    Box::pin(async move { gw.scheduler.add(spec).await.map(value).map_err(shape) })
}

pub fn update(gw: Arc<Gateway>, p: CronUpdateParams) -> Pending {
    Box::pin(async move { gw.scheduler.update(&p.id, p.patch).await.map(value).map_err(shape) })
}

pub fn remove(gw: Arc<Gateway>, p: CronJobParams) -> Pending {
    Box::pin(async move {
        let job = gw.scheduler.remove(&p.id).await.map_err(shape)?;
        Ok(json!({ "ok": true, "removed": true, "job": job }))
    })
}

pub fn run(gw: Arc<Gateway>, p: CronJobParams) -> Pending {
    Box::pin(async move {
        match p.mode.as_deref() {
            None | Some("force") => {}
            Some("due") => {
                let job = gw.scheduler.get(&p.id).await.map_err(shape)?;
                let due = job.state.next_run_at_ms.is_some_and(|t| t <= gateway_proto::time::now_ms());
                if !due {
                    return Ok(json!({ "ok": true, "ran": false, "reason": "not-due" }));
                }
            }
            Some(other) => {
                return Err(ErrorShape::new(
                    code::INVALID_REQUEST,
                    format!(
                        "invalid cron.run params: mode {}: use \"force\" or \"due\"",
                        gateway_proto::quote::short(other)
                    ),
                ))
            }
        }
        let run = gw.scheduler.run_now(&p.id, p.wait_ms.map(Duration::from_millis)).await.map_err(shape)?;
        Ok(json!({ "ok": true, "ran": true, "run": run }))
    })
}

pub fn runs(gw: Arc<Gateway>, p: CronRunsParams) -> Pending {
    Box::pin(async move {
        let entries = gw.scheduler.runs(p.id.as_deref(), p.limit.unwrap_or(50)).await.map_err(shape)?;
        Ok(json!({ "entries": entries }))
    })
}
