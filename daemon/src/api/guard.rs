//! Checks every request on the main port passes before any route runs: the Host allowlist
//! (DNS rebinding), the Origin allowlist (cross-site requests and WebSockets), no credentials in
//! the URL, and the body size limit.

use std::net::{IpAddr, SocketAddr};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderName, StatusCode, Version};
use axum::response::Response;
use gateway_proto::quote;
use http_body::Body as _;

use crate::api::error::refuse;
use crate::core::gateway::{Active, Gateway};
use crate::core::secrets::tokens_equal;

/// Query parameter names (lower-case, without `-`, `_` and `.`) that carry credentials; names
/// ending in `token`, `secret`, `password` or `apikey` count too.
const CREDENTIAL_PARAMS: &[&str] =
    &["token", "key", "apikey", "auth", "authorization", "bearer", "password", "passwd", "pwd", "secret"];
const CREDENTIAL_SUFFIXES: &[&str] = &["token", "secret", "password", "apikey"];

/// The checks on `req`: its refusal, or None and its body cut off at the size limit as it
/// streams.
pub fn check(gw: &Gateway, req: &mut Request) -> Option<Response> {
    let active = gw.active();
    let http = &active.config.gateway.http;
    let path = req.uri().path();
    if let Some(refusal) = host_refusal(req, &http.allowed_hosts) {
        return Some(refusal);
    }
    if let Some(refusal) = cross_site_refusal(req.headers(), gw.listen_addr, &http.allowed_origins) {
        return Some(refusal);
    }
    if let Some(refusal) = req.uri().query().and_then(|q| query_refusal(q, &active)) {
        return Some(refusal);
    }
    let max_body = http.max_body_bytes.get() as usize;
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_body as u64) {
        let message = format!("request body over {max_body} bytes (gateway.http.max_body_bytes)");
        // The OpenAI-compatible routes have their own code for it.
        let code = if path.starts_with("/v1/") { "request_too_large" } else { "body_too_large" };
        return Some(refuse(StatusCode::PAYLOAD_TOO_LARGE, code, message));
    }
    // A body without a declared length is cut off at the limit as it streams.
    if !req.body().is_end_stream() {
        let body = std::mem::take(req.body_mut());
        *req.body_mut() = Body::new(http_body_util::Limited::new(body, max_body));
    }
    None
}

/// One `Host` that names this gateway (DNS rebinding), and, for an absolute-form request target
/// (`GET http://host/path`), the same host in both.
fn host_refusal(req: &Request, allowed: &[String]) -> Option<Response> {
    let hosts = req.headers().get_all(header::HOST);
    let bad = |message: String| Some(refuse(StatusCode::BAD_REQUEST, "bad_host", message));
    let mut each = hosts.iter();
    let host = match (each.next(), each.next()) {
        (None, _) if req.version() == Version::HTTP_11 => {
            return bad("a request needs a Host header (HTTP/1.1)".into());
        }
        (None, _) => return None,
        (Some(one), None) => one.to_str().unwrap_or("").trim(),
        (Some(_), Some(_)) => {
            return bad(format!("{} Host headers: a request has exactly one", hosts.iter().count()))
        }
    };
    if host.is_empty() {
        return bad("the Host header is empty: name the gateway's address".into());
    }
    if let Some(target) = req.uri().authority() {
        if !target.as_str().eq_ignore_ascii_case(host) {
            return bad(format!(
                "the request target names {} but the Host header {}: they must agree",
                quote::short(target.as_str()),
                quote::short(host)
            ));
        }
    }
    if !host_allowed(host, allowed) {
        return Some(refuse(
            StatusCode::FORBIDDEN,
            "host_not_allowed",
            format!(
                "Host {} is not allowed: add it to gateway.http.allowed_hosts if clients use that name",
                quote::short(host)
            ),
        ));
    }
    None
}

/// A browser's request from another site: a foreign `Origin`; or, without one, a cross-site
/// `Sec-Fetch-Site` or a foreign `Referer` (what an `<img>` or a form on any web page sends).
/// Refused before authentication, so it never counts toward a lockout.
fn cross_site_refusal(headers: &HeaderMap, listen: SocketAddr, allowed: &[String]) -> Option<Response> {
    let value = |name| headers.get(name).and_then(|h| h.to_str().ok());
    if let Some(origin) = value(header::ORIGIN) {
        if origin_allowed(origin, listen, allowed) {
            return None;
        }
        return Some(refuse(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            format!(
                "Origin {} is not allowed: add it to gateway.http.allowed_origins to let that site call the gateway",
                quote::short(origin)
            ),
        ));
    }
    let cross_site = value(HeaderName::from_static("sec-fetch-site"))
        .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"));
    let foreign_referer =
        value(header::REFERER).map(referer_origin).is_some_and(|o| !origin_allowed(&o, listen, allowed));
    (cross_site || foreign_referer).then(|| {
        refuse(
            StatusCode::FORBIDDEN,
            "cross_site",
            "a request from another web site is refused: call the gateway from its own pages, or list that site in gateway.http.allowed_origins",
        )
    })
}

/// `scheme://host[:port]` of a Referer URL.
fn referer_origin(referer: &str) -> String {
    let Some((scheme, rest)) = referer.split_once("://") else { return referer.to_owned() };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    format!("{scheme}://{authority}")
}

/// Credentials in the query string: a parameter named like one, or any value that is one of the
/// gateway's secrets. URLs end up in logs, histories and Referer headers.
fn query_refusal(query: &str, active: &Active) -> Option<Response> {
    let secrets: Vec<&str> = std::iter::once(active.token.as_str())
        .chain(active.hooks_token.as_deref())
        .chain(active.provider_keys.iter().map(String::as_str))
        .collect();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = percent_decode(raw_name);
        if credential_name(&name) {
            return Some(refuse(
                StatusCode::BAD_REQUEST,
                "credentials_in_url",
                format!(
                    "credentials in the URL ({}=) are refused: send them in the Authorization header or the connect frame",
                    quote::short(&name)
                ),
            ));
        }
        let value = percent_decode(raw_value);
        if !value.is_empty() && secrets.iter().any(|s| tokens_equal(&value, s)) {
            return Some(refuse(
                StatusCode::BAD_REQUEST,
                "credentials_in_url",
                format!(
                    "the query parameter {} holds one of the gateway's secrets: never put it in a URL (rotate it if this URL was shared), send it in the Authorization header",
                    quote::short(&name)
                ),
            ));
        }
    }
    None
}

fn credential_name(name: &str) -> bool {
    let normal: String =
        name.chars().filter(|c| !matches!(c, '-' | '_' | '.' | ' ')).flat_map(char::to_lowercase).collect();
    CREDENTIAL_PARAMS.contains(&normal.as_str()) || CREDENTIAL_SUFFIXES.iter().any(|s| normal.ends_with(s))
}

/// `application/x-www-form-urlencoded` decoding: `%XX` and `+`; bytes that are not UTF-8 are
/// replaced.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(b) = hex {
                    out.push(b);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// IP literals and loopback names are always fine (DNS rebinding needs a name); other names
/// must be listed.
fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let name = strip_port(host);
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().is_ok()
        || bare.eq_ignore_ascii_case("localhost")
        || allowed.iter().any(|a| a.eq_ignore_ascii_case(host) || a.eq_ignore_ascii_case(name))
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_once(']').map_or(host, |(h, _)| &host[..h.len() + 1]);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// The gateway's own origins (loopback names on its port, and its bound address), plus the
/// configured ones, compared exactly.
pub fn origin_allowed(origin: &str, listen: SocketAddr, allowed: &[String]) -> bool {
    let port = listen.port();
    let own = [
        format!("http://127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
        format!("http://[::1]:{port}"),
        format!("http://{listen}"),
    ];
    own.iter().chain(allowed).any(|o| o.eq_ignore_ascii_case(origin.trim_end_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        for ok in
            ["127.0.0.1:18789", "localhost:1", "LOCALHOST", "[::1]:80", "192.168.1.9:18789", "[fe80::1]"]
        {
            assert!(host_allowed(ok, &[]), "{ok}");
        }
        for bad in ["evil.example", "evil.example:18789", "localhost.evil.example"] {
            assert!(!host_allowed(bad, &[]), "{bad}");
        }
        assert!(host_allowed("gw.lan:18789", &["gw.lan".into()]));
    }

    #[test]
    fn credential_names_in_any_spelling() {
        for name in [
            "token",
            "TOKEN",
            "api-key",
            "api_key",
            "apiKey",
            "key",
            "authorization",
            "Bearer",
            "password",
            "client_secret",
            "access_token",
            "hooks.token",
            "x-api-key",
        ] {
            assert!(credential_name(name), "{name}");
        }
        for name in ["limit", "cursor", "keys", "monkey_business", "session"] {
            assert!(!credential_name(name), "{name}");
        }
        assert_eq!(percent_decode("%74%6Fken"), "token");
        assert_eq!(percent_decode("a+b%2"), "a b%2");
        assert_eq!(referer_origin("https://evil.example:8443/page?x=1"), "https://evil.example:8443");
    }

    #[test]
    fn origins() {
        let listen: SocketAddr = "127.0.0.1:18789".parse().unwrap();
        assert!(origin_allowed("http://127.0.0.1:18789", listen, &[]));
        assert!(origin_allowed("http://localhost:18789/", listen, &[]));
        assert!(!origin_allowed("http://localhost:18790", listen, &[]));
        assert!(!origin_allowed("https://evil.example", listen, &[]));
        assert!(origin_allowed("https://ui.example", listen, &["https://ui.example".into()]));
    }
}
