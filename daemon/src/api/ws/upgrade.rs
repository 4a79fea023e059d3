//! The HTTP side of the WebSocket handshake (RFC 6455 section 4.2): validate, take a pre-auth
//! place for the client's address, answer 101, then hand the raw socket to a connection task
//! (`api::handoff`, which sends the 101 with the connection's first frame where it can).

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha1::{Digest, Sha1};

use super::codec::Decoder;
use super::conn::{self, Context};
use super::hub::Hub;
use crate::api::error::refuse;
use crate::api::handoff::{self, Socket};
use crate::api::listener::client_ip;
use crate::api::listener::Peer;
use crate::core::gateway::Gateway;

const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

pub async fn upgrade(gw: Arc<Gateway>, hub: Arc<Hub>, mut req: Request) -> Response {
    let Some(peer @ Peer::Tcp(peer_addr)) = req.extensions().get::<Peer>().copied() else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "bad_upgrade",
            "WebSocket upgrades are served on the TCP port only",
        );
    };
    if req.method() != Method::GET {
        return refuse(StatusCode::METHOD_NOT_ALLOWED, "bad_upgrade", "a WebSocket upgrade must be a GET");
    }
    let headers = req.headers();
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|p| p.trim().eq_ignore_ascii_case("upgrade")));
    if !connection_upgrade {
        return refuse(
            StatusCode::BAD_REQUEST,
            "bad_upgrade",
            "a WebSocket upgrade needs `Connection: Upgrade`",
        );
    }
    if headers.get(header::SEC_WEBSOCKET_VERSION).and_then(|v| v.to_str().ok()) != Some("13") {
        let mut response =
            refuse(StatusCode::UPGRADE_REQUIRED, "bad_upgrade", "only WebSocket version 13 is supported");
        response.headers_mut().insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        return response;
    }
    let Some(key) = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .filter(|k| STANDARD.decode(k).is_ok_and(|raw| raw.len() == 16))
    else {
        return refuse(StatusCode::BAD_REQUEST, "bad_upgrade", "missing or malformed Sec-WebSocket-Key");
    };
    let accept = STANDARD.encode(Sha1::digest(format!("{key}{ACCEPT_GUID}").as_bytes()));

    let active = gw.active_owned();
    let trusted = &active.config.gateway.http.trusted_proxies;
    let ip = client_ip(&peer, headers, trusted);
    let limit = active.config.gateway.ws.max_unauthenticated_per_ip.get() as u32;
    let Some(slot) = hub.reserve_pre_auth(ip, limit) else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_connections",
            format!("{ip} has {limit} WebSocket connections that have not completed the handshake; finish or close those first"),
        );
    };
    let proxy_user = trusted
        .contains(&peer_addr.ip())
        .then(|| headers.get(active.config.gateway.auth.trusted_proxy.user_header.as_str()))
        .flatten()
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let direct_local = direct_local(peer_addr.ip(), headers, trusted);
    let browser_session = crate::api::auth::browser_session(&gw, headers);
    let context = Context { peer: peer_addr, client_ip: ip, proxy_user, direct_local, browser_session };

    let mut connection = conn::Connection::new(gw, hub, context, slot);
    handoff::on_upgrade(&mut req, move |Socket { mut stream, read_ahead, response_head }| {
        if let Some(head) = response_head {
            connection.send_first(head);
        }
        let mut decoder = Decoder::default();
        decoder.feed(&read_ahead);
        // The task holds the socket, the decoder and the connection once each.
        async move { connection.serve(&mut stream, &mut decoder).await }
    });
    (
        StatusCode::SWITCHING_PROTOCOLS,
        [
            (header::UPGRADE, "websocket"),
            (header::CONNECTION, "Upgrade"),
            (header::SEC_WEBSOCKET_ACCEPT, accept.as_str()),
        ],
    )
        .into_response()
}

/// Headers a proxy adds: with any of them, a loopback peer may be a proxy for someone else.
static FORWARDING_HEADERS: [HeaderName; 5] = [
    header::FORWARDED,
    HeaderName::from_static("x-forwarded-for"),
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("x-forwarded-proto"),
    HeaderName::from_static("x-real-ip"),
];

/// A client on this host talking straight to the port (the reference gateway's "local direct"
/// rule): a loopback peer that is not a trusted proxy, no forwarding header, and a Host naming
/// loopback.
fn direct_local(
    peer: std::net::IpAddr,
    headers: &axum::http::HeaderMap,
    trusted: &[std::net::IpAddr],
) -> bool {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    peer.is_loopback()
        && !trusted.contains(&peer)
        && !FORWARDING_HEADERS.iter().any(|h| headers.contains_key(h))
        && (name.eq_ignore_ascii_case("localhost")
            || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()))
}
