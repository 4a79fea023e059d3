//! Who may use the main port over HTTP, by `gateway.auth.mode`: the gateway token (constant-time
//! compare), a sign-in session token (password mode), or a trusted proxy's word; failures count
//! toward the per-address lockout. Every HTTP door authenticates through here. The WebSocket
//! handshake has its own order of checks (`ws::handshake`).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gateway_config::AuthMode;

use crate::api::error::GatewayError;
use crate::api::listener::{client_ip, Peer};
use crate::core::gateway::{Active, Gateway, Stats};
use crate::core::secrets::tokens_equal;

/// The bearer token of a request, if it has one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// True when the request may pass: auth is off, it carries the gateway token (token mode) or a
/// live session token (password mode), or it comes from a trusted proxy naming a user.
pub fn authorized(gw: &Gateway, active: &Active, peer: &Peer, headers: &HeaderMap) -> bool {
    match active.config.gateway.auth.mode {
        AuthMode::None => true,
        AuthMode::Token => bearer(headers).is_some_and(|t| tokens_equal(t, &active.token)),
        AuthMode::Password => bearer(headers).is_some_and(|t| gw.signins.verify(t).is_some()),
        AuthMode::TrustedProxy => proxy_user(active, peer, headers).is_some(),
    }
}

/// The user a trusted proxy names; `None` from anyone else, or without the header.
pub fn proxy_user<'a>(active: &Active, peer: &Peer, headers: &'a HeaderMap) -> Option<&'a str> {
    let Peer::Tcp(addr) = peer else { return None };
    let http = &active.config.gateway.http;
    if !http.trusted_proxies.contains(&addr.ip()) {
        return None;
    }
    headers
        .get(active.config.gateway.auth.trusted_proxy.user_header.as_str())
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|u| !u.is_empty())
}

/// Why a request was refused at authentication.
pub enum Refusal {
    /// Too many failures from this address: retry after the duration.
    RateLimited(IpAddr, Duration),
    Unauthorized,
}

impl Refusal {
    /// The answer to a refused request; `hint` says which credential to send.
    pub fn into_error(self, hint: &str) -> GatewayError {
        match self {
            Self::RateLimited(ip, retry) => rate_limited(ip, retry),
            Self::Unauthorized => GatewayError::unauthorized(hint),
        }
    }
}

/// 429 with `Retry-After` for an address in lockout.
pub fn rate_limited(ip: IpAddr, retry: Duration) -> GatewayError {
    let secs = retry.as_secs() + 1;
    GatewayError::rate_limited(
        format!("too many failed authentication attempts from {ip}: retry in {secs} s"),
        secs,
    )
}

/// What a client without the right bearer is told.
pub const UNAUTHORIZED_HINT: &str =
    "missing or wrong bearer token: send `Authorization: Bearer <token>` (the token: `gatewayctl token show`)";

/// The port's authentication for a request: `check` decides (the gateway's auth by default,
/// the hooks token for webhooks); failures count toward the per-address lockout.
pub fn authenticate(
    gw: &Gateway,
    req: &Request,
    check: impl FnOnce(&Active, &Peer, &HeaderMap) -> bool,
) -> Result<(), Refusal> {
    let active = gw.active();
    let peer = req.extensions().get::<Peer>().copied().unwrap_or(Peer::Unix { uid: 0 });
    let ip = client_ip(&peer, req.headers(), &active.config.gateway.http.trusted_proxies);
    if let Err(retry) = gw.limiter.check(ip) {
        return Err(Refusal::RateLimited(ip, retry));
    }
    if check(&active, &peer, req.headers()) {
        gw.limiter.success(ip);
        return Ok(());
    }
    gw.limiter.failure(ip, &active.config.gateway.auth.rate_limit);
    Stats::bump(&gw.stats.auth_failures);
    Err(Refusal::Unauthorized)
}

/// Middleware: lets a request pass with the gateway's credential (or with auth off); otherwise
/// a 401 that says what to send (with `WWW-Authenticate: Bearer`), or a 429 in lockout.
pub async fn require_gateway_auth(State(gw): State<Arc<Gateway>>, req: Request, next: Next) -> Response {
    match authenticate(&gw, &req, |active, peer, headers| authorized(&gw, active, peer, headers)) {
        Ok(()) => next.run(req).await,
        Err(refusal) => {
            let challenge = matches!(refusal, Refusal::Unauthorized);
            let mut response = refusal.into_error(UNAUTHORIZED_HINT).into_response();
            if challenge {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            response
        }
    }
}
