//! `POST /channels/telegram/<account>`: a Telegram bot's webhook (mode = "webhook"). Telegram
//! proves itself with the secret token header, never the gateway's credential; a wrong one counts
//! toward the per-address lockout. The update is answered 200 once it is recorded, so Telegram
//! sends it again if the gateway did not take it.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::Value;

use crate::api::auth::rate_limited;
use crate::api::error::refuse;
use crate::api::listener::{client_ip, Peer};
use crate::core::gateway::{Gateway, Stats};
use crate::runtime::channels::WebhookRefusal;

pub const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

pub fn router() -> Router<Arc<Gateway>> {
    Router::new().route("/channels/telegram/{account}", post(telegram))
}

async fn telegram(State(gw): State<Arc<Gateway>>, Path(account): Path<String>, req: Request) -> Response {
    let active = gw.active_owned();
    let peer = req.extensions().get::<Peer>().copied().unwrap_or(Peer::Unix { uid: 0 });
    let ip = client_ip(&peer, req.headers(), &active.config.gateway.http.trusted_proxies);
    if let Err(retry) = gw.limiter.check(ip) {
        return rate_limited(ip, retry).into_response();
    }
    let secret = req.headers().get(SECRET_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body: Bytes = match axum::body::to_bytes(req.into_body(), usize::MAX).await {
        Ok(b) => b,
        Err(_) => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "an update over gateway.http.max_body_bytes",
            )
        }
    };
    let Ok(update) = serde_json::from_slice::<Value>(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "bad_request", "a Telegram update is a JSON object");
    };
    match gw.channels.webhook("telegram", &account, secret.as_deref(), update).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(WebhookRefusal::NotFound) => refuse(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "no Telegram account {} takes webhooks here: it needs mode = \"webhook\" in [channels.telegram.accounts.<id>]",
                gateway_proto::quote::short(&account)
            ),
        ),
        Err(WebhookRefusal::Unauthorized) => {
            gw.limiter.failure(ip, &active.config.gateway.auth.rate_limit);
            Stats::bump(&gw.stats.auth_failures);
            refuse(StatusCode::UNAUTHORIZED, "unauthorized", format!("missing or wrong {SECRET_HEADER}"))
        }
        Err(WebhookRefusal::Busy) => {
            let mut response =
                refuse(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the account did not take the update in time; send it again");
            response.headers_mut().insert("retry-after", HeaderValue::from_static("5"));
            response
        }
    }
}
