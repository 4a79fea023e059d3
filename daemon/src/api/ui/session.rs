//! The Control UI's sign-in, `/gateway/ui/session`: `POST` exchanges a one-time code from
//! `gatewayctl dashboard`, the gateway token or the password for a browser session held in an
//! `HttpOnly; SameSite=Strict` cookie; `GET` says whether the browser is signed in; `DELETE`
//! signs out (the session ends, its WebSockets close). Every call must be the UI's own
//! (`auth::same_site_ui_request`), and failures count toward the per-address lockout.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use gateway_config::AuthMode;
use serde::Deserialize;
use serde_json::json;

use crate::api::auth::{
    self, browser_session, rate_limited, same_site_ui_request, ui_cookie_name, CSRF_HEADER,
};
use crate::api::error::{refuse, GatewayError};
use crate::api::listener::{client_ip, Peer};
use crate::core::events::{CoreEvent, Credential};
use crate::core::gateway::{Gateway, Stats};
use crate::core::secrets::tokens_equal;
use crate::core::signin_store::Kind;

pub fn router() -> Router<Arc<Gateway>> {
    Router::new().route("/gateway/ui/session", get(status).post(sign_in).delete(sign_out))
}

/// What a sign-in presents: exactly one of these.
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct SignIn {
    code: Option<String>,
    token: Option<String>,
    password: Option<String>,
}

/// Refuses what is not the UI's own request, or a UI that is turned off.
fn gate(gw: &Gateway, headers: &HeaderMap) -> Result<(), GatewayError> {
    if !gw.active().config.ui.enabled {
        return Err(GatewayError::not_found(
            "not_found",
            "the Control UI is turned off (ui.enabled = false)",
        ));
    }
    if !same_site_ui_request(headers) {
        return Err(GatewayError::new(
            StatusCode::FORBIDDEN,
            "csrf",
            format!("the UI's sign-in is for the gateway's own pages: send `{CSRF_HEADER}: 1` from the same origin"),
        ));
    }
    Ok(())
}

async fn status(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    if let Err(refusal) = gate(&gw, req.headers()) {
        return refusal.into_response();
    }
    let active = gw.active();
    let mode = active.config.gateway.auth.mode;
    let peer = req.extensions().get::<Peer>().copied().unwrap_or(Peer::Unix { uid: 0 });
    let signed_in = match mode {
        AuthMode::None => true,
        AuthMode::TrustedProxy => auth::proxy_user(&active, &peer, req.headers()).is_some(),
        AuthMode::Token | AuthMode::Password => browser_session(&gw, req.headers()).is_some(),
    };
    let body = json!({
        "signedIn": signed_in,
        "authMode": mode.as_str(),
        "version": gateway_proto::VERSION,
    });
    no_store(Json(body).into_response())
}

async fn sign_in(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    if let Err(refusal) = gate(&gw, req.headers()) {
        return refusal.into_response();
    }
    let active = gw.active_owned();
    let mode = active.config.gateway.auth.mode;
    if matches!(mode, AuthMode::None | AuthMode::TrustedProxy) {
        let how = if mode == AuthMode::None { "needs no sign-in" } else { "signs in through its proxy" };
        return refuse(
            StatusCode::CONFLICT,
            "wrong_auth_mode",
            format!("this gateway {how} (gateway.auth.mode = \"{}\")", mode.as_str()),
        );
    }
    let peer = req.extensions().get::<Peer>().copied().unwrap_or(Peer::Unix { uid: 0 });
    let trusted = &active.config.gateway.http.trusted_proxies;
    let ip = client_ip(&peer, req.headers(), trusted);
    let secure = behind_https_proxy(&peer, req.headers(), trusted);
    let agent = req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    if let Err(retry) = gw.limiter.check(ip) {
        return rate_limited(ip, retry).into_response();
    }
    let Ok(body) = axum::body::to_bytes(req.into_body(), 64 * 1024).await else {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "a sign-in body is a few bytes of JSON",
        );
    };
    let example = r#"{"code": "…"}, {"token": "…"} or {"password": "…"}"#;
    let Ok(given) = serde_json::from_slice::<SignIn>(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "bad_request", format!("send a JSON body {example}"));
    };
    let valid = match (&given.code, &given.token, &given.password) {
        (Some(code), None, None) => gw.ui_codes.redeem(code),
        (None, Some(token), None) if mode == AuthMode::Token => tokens_equal(token, &active.token),
        (None, None, Some(password)) if mode == AuthMode::Password => gw.password.verify(password).await,
        (None, Some(_), None) | (None, None, Some(_)) => {
            let wanted = if mode == AuthMode::Token { "token" } else { "password" };
            return refuse(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!(
                    "this gateway signs in with its {wanted} (gateway.auth.mode = \"{}\")",
                    mode.as_str()
                ),
            );
        }
        _ => return refuse(StatusCode::BAD_REQUEST, "bad_request", format!("send one of {example}")),
    };
    if !valid {
        gw.limiter.failure(ip, &active.config.gateway.auth.rate_limit);
        Stats::bump(&gw.stats.auth_failures);
        Stats::bump(&gw.stats.ui_sign_in_failures);
        let what = if given.code.is_some() {
            "the sign-in code is wrong, used or expired: run `gatewayctl dashboard` for a new link"
        } else if given.token.is_some() {
            "wrong gateway token (gatewayctl token show prints it)"
        } else {
            "wrong password"
        };
        tracing::info!(event = "ui_sign_in_refused", client = %ip, "Control UI sign-in refused");
        return refuse(StatusCode::UNAUTHORIZED, "unauthorized", what);
    }
    gw.limiter.success(ip);
    let ttl = active.config.gateway.auth.session_ttl_ms.get();
    let client = format!("{ip} {agent}").trim().to_owned();
    let created =
        crate::core::store::off_workers(gw.signins.clone(), move |s| s.create(Kind::Browser, ttl, &client))
            .await;
    match created {
        Ok((info, token)) => {
            Stats::bump(&gw.stats.ui_sign_ins);
            tracing::info!(event = "ui_signed_in", session = %info.id, client = %ip, "Control UI signed in");
            let cookie = format!(
                "{}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
                ui_cookie_name(&gw),
                ttl / 1000,
                if secure { "; Secure" } else { "" }
            );
            let body = json!({ "signedIn": true, "authMode": mode.as_str(), "session": info.id, "expiresAtMs": info.expires_at_ms });
            let mut response = (StatusCode::CREATED, Json(body)).into_response();
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            no_store(response)
        }
        Err(e) => GatewayError::store_failed("record the browser session", e).into_response(),
    }
}

async fn sign_out(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    if let Err(refusal) = gate(&gw, req.headers()) {
        return refusal.into_response();
    }
    let mut ended = false;
    if let Some(id) = browser_session(&gw, req.headers()) {
        match gw.signins.revoke(&id) {
            Ok(_) => {
                ended = true;
                tracing::info!(event = "ui_signed_out", session = %id, "Control UI signed out");
                gw.events.publish(&CoreEvent::CredentialRevoked(Credential::SignIn(id)));
            }
            Err(e) => return GatewayError::store_failed("end the browser session", e).into_response(),
        }
    }
    let mut response = Json(json!({ "signedIn": false, "ended": ended })).into_response();
    let clear = format!("{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0", ui_cookie_name(&gw));
    if let Ok(value) = HeaderValue::from_str(&clear) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    no_store(response)
}

/// A trusted proxy that says the browser reached it over TLS: the cookie is then `Secure`.
fn behind_https_proxy(peer: &Peer, headers: &HeaderMap, trusted: &[std::net::IpAddr]) -> bool {
    matches!(peer, Peer::Tcp(addr) if trusted.contains(&addr.ip()))
        && headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
