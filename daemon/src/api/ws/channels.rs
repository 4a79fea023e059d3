//! `channels.status` (the accounts, in the reference's shape; `probe` checks each first) and
//! `channels.pairing.list|approve|reject`: what the control socket's channel routes serve.

use std::sync::Arc;

use gateway_proto::ws::{code, ErrorShape};
use gateway_proto::ws_methods::{ChannelPairingParams, ChannelsStatusParams};
use serde_json::json;

use super::methods::Pending;
use crate::api::error::GatewayError;
use crate::core::gateway::Gateway;
use crate::core::store::off_workers;
use crate::runtime::channels::{status_report, Channels};

pub fn status(gw: Arc<Gateway>, p: ChannelsStatusParams) -> Pending {
    Box::pin(async move {
        let config = gw.active().config.clone();
        if p.probe {
            gw.channels.probe(&config).await;
        }
        Ok(status_report(&gw.channels.accounts(&config)))
    })
}

pub fn pairing_list(gw: Arc<Gateway>) -> Pending {
    Box::pin(async move {
        let list = off_workers(gw.channels.clone(), |c| c.pairings())
            .await
            .map_err(|e| GatewayError::store_failed("read the pairing requests", e).ws_shape())?;
        Ok(json!({ "requests": list }))
    })
}

pub fn settle(gw: Arc<Gateway>, p: ChannelPairingParams, approve: bool) -> Pending {
    Box::pin(async move {
        let (channel, code) = (p.channel.clone(), p.code.clone());
        let settled =
            off_workers(gw.channels.clone(), move |c: &Channels| c.settle_pairing(&channel, &code, approve))
                .await
                .map_err(|e| GatewayError::store_failed("settle the pairing request", e).ws_shape())?;
        match settled {
            Some(request) => Ok(json!({ "approved": approve, "request": request })),
            None => Err(ErrorShape::new(
                code::INVALID_REQUEST,
                format!(
                    "no pairing code {} waits on channel {}: channels.pairing.list shows the waiting ones",
                    gateway_proto::quote::short(&p.code),
                    gateway_proto::quote::short(&p.channel)
                ),
            )),
        }
    })
}
