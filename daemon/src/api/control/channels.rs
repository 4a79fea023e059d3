//! The control API's chat channel routes: the accounts' status (probed on request) and the
//! pairing requests, approved or rejected by code. The WebSocket door serves the same through
//! `channels.status` and `channels.pairing.*`.

use std::sync::Arc;

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use gateway_proto::api::PairingReport;
use serde::Deserialize;

use crate::api::error::{refuse, GatewayError};
use crate::core::gateway::Gateway;
use crate::core::store::off_workers;
use crate::runtime::channels::{status_report, Channels};

#[derive(Deserialize)]
pub struct ProbeQuery {
    #[serde(default)]
    probe: Option<String>,
}

pub async fn status(State(gw): State<Arc<Gateway>>, Query(q): Query<ProbeQuery>) -> Response {
    let config = gw.active().config.clone();
    if q.probe.as_deref().is_some_and(|p| p == "1" || p == "true") {
        gw.channels.probe(&config).await;
    }
    Json(status_report(&gw.channels.accounts(&config))).into_response()
}

pub async fn pairing(State(gw): State<Arc<Gateway>>) -> Response {
    match off_workers(gw.channels.clone(), |c| c.pairings()).await {
        Ok(list) => Json(PairingReport { requests: list }).into_response(),
        Err(e) => GatewayError::store_failed("read the pairing requests", e).into_response(),
    }
}

pub async fn approve(state: State<Arc<Gateway>>, path: UrlPath<(String, String)>) -> Response {
    settle(state, path, true).await
}

pub async fn reject(state: State<Arc<Gateway>>, path: UrlPath<(String, String)>) -> Response {
    settle(state, path, false).await
}

async fn settle(
    State(gw): State<Arc<Gateway>>,
    UrlPath((channel, code)): UrlPath<(String, String)>,
    approve: bool,
) -> Response {
    let (ch, co) = (channel.clone(), code.clone());
    match off_workers(gw.channels.clone(), move |c: &Channels| c.settle_pairing(&ch, &co, approve)).await {
        Ok(Some(request)) => Json(request).into_response(),
        Ok(None) => refuse(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "no pairing code {} waits on channel {}: `gatewayctl pairing list` shows the waiting ones (codes expire after an hour)",
                gateway_proto::quote::short(&code),
                gateway_proto::quote::short(&channel)
            ),
        ),
        Err(e) => GatewayError::store_failed("settle the pairing request", e).into_response(),
    }
}
