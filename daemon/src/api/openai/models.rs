//! `GET /v1/models` and `GET /v1/models/{id}`: the models the gateway's providers offer, by
//! their "provider/model" ids (the ids `model` takes in every other endpoint).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::api::error::GatewayError;
use crate::core::gateway::Gateway;
use crate::runtime::agent::ModelInfo;

fn model_json(m: &ModelInfo, created: u64) -> Value {
    json!({
        "id": m.id,
        "object": "model",
        "created": created,
        "owned_by": m.provider,
        "description": m.description,
    })
}

fn created(gw: &Gateway) -> u64 {
    gw.started_at_ms / 1000
}

pub async fn list(State(gw): State<Arc<Gateway>>) -> Json<Value> {
    let data: Vec<Value> = gw.agents.models().iter().map(|m| model_json(m, created(&gw))).collect();
    Json(json!({ "object": "list", "data": data }))
}

pub async fn get(State(gw): State<Arc<Gateway>>, Path(id): Path<String>) -> Response {
    match gw.agents.models().iter().find(|m| m.id == id) {
        Some(m) => Json(model_json(m, created(&gw))).into_response(),
        None => GatewayError::not_found(
            "model_not_found",
            format!(
                "no model {}: GET /v1/models lists the ids this gateway offers",
                gateway_proto::quote::short(&id)
            ),
        )
        .with_param("model")
        .into_response(),
    }
}
