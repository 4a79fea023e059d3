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
use crate::core::signin_store::Kind;

/// The bearer token of a request, if it has one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// What a request's credential turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    Valid,
    /// A credential was presented and is wrong: it counts toward the lockout.
    Invalid,
    /// None was presented (what an `<img>` tag on any web page sends): refused, never counted.
    Missing,
}

impl Checked {
    /// `Valid` when `given` (if any) equals `expected`, in constant time.
    pub fn secret(given: Option<&str>, expected: &str) -> Self {
        match given {
            None => Self::Missing,
            Some(g) if tokens_equal(g, expected) => Self::Valid,
            Some(_) => Self::Invalid,
        }
    }
}

/// The gateway's own auth for a request: auth off, the gateway token (token mode), a live
/// sign-in session token (password mode), or a trusted proxy naming a user.
pub fn check_gateway_auth(gw: &Gateway, active: &Active, peer: &Peer, headers: &HeaderMap) -> Checked {
    match active.config.gateway.auth.mode {
        AuthMode::None => Checked::Valid,
        AuthMode::Token => Checked::secret(bearer(headers), &active.token),
        AuthMode::Password => match bearer(headers) {
            None => Checked::Missing,
            Some(t) if gw.signins.verify(Kind::Bearer, t).is_some() => Checked::Valid,
            Some(_) => Checked::Invalid,
        },
        AuthMode::TrustedProxy if proxy_user(active, peer, headers).is_some() => Checked::Valid,
        AuthMode::TrustedProxy => Checked::Missing,
    }
}

/// True when the request may pass the gateway's auth.
pub fn authorized(gw: &Gateway, active: &Active, peer: &Peer, headers: &HeaderMap) -> bool {
    check_gateway_auth(gw, active, peer, headers) == Checked::Valid
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
/// the hooks token for webhooks). Only a wrong credential counts toward the per-address lockout:
/// a request that presents none does not. And the lockout holds back guessing, never the owner:
/// while an address is locked out, a correct credential (a long random token, which cannot be
/// guessed) still passes, and everything else gets 429.
pub fn authenticate(
    gw: &Gateway,
    req: &Request,
    check: impl FnOnce(&Active, &Peer, &HeaderMap) -> Checked,
) -> Result<(), Refusal> {
    let active = gw.active();
    let peer = req.extensions().get::<Peer>().copied().unwrap_or(Peer::Unix { uid: 0 });
    let ip = client_ip(&peer, req.headers(), &active.config.gateway.http.trusted_proxies);
    let locked = gw.limiter.check(ip).err();
    match (check(&active, &peer, req.headers()), locked) {
        (Checked::Valid, None) => {
            gw.limiter.success(ip);
            Ok(())
        }
        (Checked::Valid, Some(_)) => Ok(()),
        (_, Some(retry)) => Err(Refusal::RateLimited(ip, retry)),
        (Checked::Invalid, None) => {
            gw.limiter.failure(ip, &active.config.gateway.auth.rate_limit);
            Stats::bump(&gw.stats.auth_failures);
            Err(Refusal::Unauthorized)
        }
        (Checked::Missing, None) => Err(Refusal::Unauthorized),
    }
}

/// Middleware: lets a request pass with the gateway's credential (or with auth off); otherwise
/// a 401 that says what to send (with `WWW-Authenticate: Bearer`), or a 429 in lockout.
pub async fn require_gateway_auth(State(gw): State<Arc<Gateway>>, req: Request, next: Next) -> Response {
    match authenticate(&gw, &req, |active, peer, headers| check_gateway_auth(&gw, active, peer, headers)) {
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

/// The header a browser request authenticated by the UI's cookie must carry. A page on another
/// site cannot set it without a CORS preflight, which the gateway never grants: with the Origin
/// allowlist (guard), it is the CSRF check.
pub const CSRF_HEADER: &str = "x-gateway-csrf";

/// The UI session cookie's name: per port, since browsers share cookies across the ports of a
/// host and several gateways may run on one.
pub fn ui_cookie_name(gw: &Gateway) -> String {
    format!("gateway_ui_{}", gw.listen_addr.port())
}

/// The value of the UI session cookie, if the request carries one.
pub fn ui_cookie<'a>(gw: &Gateway, headers: &'a HeaderMap) -> Option<&'a str> {
    let name = ui_cookie_name(gw);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

/// True when a request is the UI's own: the CSRF header, and either an Origin (the guard already
/// refused foreign ones) or the browser's word that it came from this site.
pub fn same_site_ui_request(headers: &HeaderMap) -> bool {
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    value(CSRF_HEADER) == Some("1")
        && (headers.contains_key(header::ORIGIN)
            || value("sec-fetch-site").is_some_and(|v| v.eq_ignore_ascii_case("same-origin")))
}

/// The browser session a request's cookie opens, by id. Only for a request that carries an
/// Origin (every WebSocket upgrade and every cross-checked fetch from a browser does): a cookie
/// alone proves nothing about who sent the request.
pub fn browser_session(gw: &Gateway, headers: &HeaderMap) -> Option<String> {
    if !headers.contains_key(header::ORIGIN) && !same_site_ui_request(headers) {
        return None;
    }
    gw.signins.verify(Kind::Browser, ui_cookie(gw, headers)?)
}
