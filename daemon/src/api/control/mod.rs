//! The control API: HTTP+JSON on a Unix socket, for `gatewayctl`. The socket is 0600 in a 0700
//! directory; on top of that, requests from another uid (root excepted) and requests carrying
//! `Origin` or `Referer` (a browser tricked into calling us) are refused.

mod channels;
mod cron;

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use gateway_proto::api::{
    self, route, ApproveBody, ConfigView, DevicesReport, ReloadTrigger, RevokeReport, TokenInfo,
};
use serde::Deserialize;
use tokio::net::UnixListener;

use crate::api::error::{refuse, GatewayError};
use crate::api::listener::{Door, Peer};
use crate::core::events::{CoreEvent, Credential};
use crate::core::gateway::{Active, ExitReason, Gateway, TokenSource};
use crate::core::secrets::RotateError;
use crate::core::store::{off_workers, CallError};
use crate::core::supervisor::Supervisor;
use crate::core::{fsutil, health, logtail, reload};
use crate::runtime::devices::{DeviceError, Devices};

/// Binds the control socket. A socket file left by a dead daemon is replaced; one that answers
/// belongs to a live daemon and is never touched.
pub fn bind(socket: &Path) -> Result<UnixListener, BindError> {
    let dir = socket.parent().unwrap_or(Path::new("/"));
    fsutil::ensure_private_dir(dir).map_err(|e| BindError::Dir(dir.display().to_string(), e))?;
    if socket.exists() {
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            return Err(BindError::Live(socket.display().to_string()));
        }
        std::fs::remove_file(socket).map_err(|e| BindError::Io(socket.display().to_string(), e))?;
        tracing::info!(socket = %socket.display(), "removed a stale control socket");
    }
    let listener = UnixListener::bind(socket).map_err(|e| BindError::Io(socket.display().to_string(), e))?;
    fsutil::make_private(socket).map_err(|e| BindError::Io(socket.display().to_string(), e))?;
    Ok(listener)
}

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("cannot prepare the control socket directory {0}: {1}")]
    Dir(String, io::Error),
    #[error("another gatewayd answers on the control socket {0}: stop it (`gatewayctl stop`) or run this one with another --profile")]
    Live(String),
    #[error("cannot bind the control socket {0}: {1}")]
    Io(String, io::Error),
}

pub async fn serve(gw: Arc<Gateway>, listener: UnixListener) {
    let app = router(gw.clone());
    crate::api::listener::serve(gw, app, Door::Control, || async {
        let (stream, _) = listener.accept().await?;
        let uid = stream.peer_cred()?.uid();
        Ok((stream, Peer::Unix { uid }))
    })
    .await;
}

/// The control API's routes (served on the Unix socket; in process by the fuzz targets).
pub fn router(gw: Arc<Gateway>) -> Router {
    Router::new()
        .route(route::STATUS, get(status))
        .route(route::HEALTH, get(health_check))
        .route(route::RELOAD, post(reload_now))
        .route(route::STOP, post(stop))
        .route(route::RESTART, post(restart))
        .route(route::SECRETS_RELOAD, post(reload_secrets))
        .route(route::SECRETS_AUDIT, get(audit_secrets))
        .route(route::LOGS, get(logs))
        .route(route::CONFIG, get(config))
        .route(route::TOKEN, get(token))
        .route(route::TOKEN_ROTATE, post(rotate_token))
        .route(route::DEVICES, get(devices))
        .route(route::DEVICE_APPROVE, post(approve_device))
        .route(route::DEVICE_REJECT, post(reject_device))
        .route(route::DEVICE_REVOKE, post(revoke_device))
        .route(route::PASSWORD, post(set_password))
        .route(route::UI_CODE, post(ui_code))
        .route(route::CHANNELS, get(channels::status))
        .route(route::PAIRING, get(channels::pairing))
        .route(route::PAIRING_APPROVE, post(channels::approve))
        .route(route::PAIRING_REJECT, post(channels::reject))
        .route(route::CRON_STATUS, get(cron::status))
        .route(route::CRON_JOBS, get(cron::list).post(cron::add))
        .route(route::CRON_JOB, get(cron::show).patch(cron::edit).delete(cron::remove))
        .route(route::CRON_JOB_RUN, post(cron::run))
        .route(route::CRON_RUNS, get(cron::runs))
        .route(route::SIGNINS, get(list_signins))
        .route(route::SIGNIN_REVOKE, post(revoke_signin))
        .route(route::SIGNINS_OLD, get(list_signins))
        .route(route::SIGNIN_REVOKE_OLD, post(revoke_signin))
        .fallback(|req: Request| async move {
            refuse(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no control route {} {}", req.method(), req.uri().path()),
            )
        })
        .layer(middleware::from_fn(crate::api::error::uniform_errors))
        .layer(middleware::from_fn(guard))
        .with_state(gw)
}

/// Refuses browsers and other users before any handler runs.
async fn guard(req: Request, next: Next) -> Response {
    if req.headers().contains_key(header::ORIGIN) || req.headers().contains_key(header::REFERER) {
        return refuse(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the control socket refuses requests with Origin or Referer headers (browsers)",
        );
    }
    let me = nix::unistd::geteuid().as_raw();
    if let Some(Peer::Unix { uid }) = req.extensions().get::<Peer>().copied() {
        if uid != me && uid != 0 {
            return refuse(StatusCode::FORBIDDEN,
                "forbidden",
                format!("gatewayd runs as uid {me} and refuses control requests from uid {uid}: run gatewayctl as that user"),
            );
        }
    }
    next.run(req).await
}

async fn status(State(gw): State<Arc<Gateway>>) -> Json<api::StatusReport> {
    Json(crate::core::status::report(&gw))
}

async fn health_check(State(gw): State<Arc<Gateway>>) -> Response {
    let report = health::report(&gw);
    let code = if report.ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(report)).into_response()
}

async fn reload_now(State(gw): State<Arc<Gateway>>) -> Json<api::ReloadReport> {
    Json(reload::reload(&gw, ReloadTrigger::Control).await)
}

async fn stop(State(gw): State<Arc<Gateway>>) -> Response {
    tracing::info!("stop requested over the control socket");
    gw.request_exit(ExitReason::Stop);
    (StatusCode::ACCEPTED, Json(api::StopReport { stopping: true, pid: std::process::id() })).into_response()
}

/// `gatewayctl secrets reload`: a reload, which resolves every secret reference again.
async fn reload_secrets(State(gw): State<Arc<Gateway>>) -> Json<api::ReloadReport> {
    Json(reload::reload(&gw, ReloadTrigger::Control).await)
}

async fn audit_secrets(State(gw): State<Arc<Gateway>>) -> Json<api::SecretsAudit> {
    Json(crate::core::secrets_audit::audit(&gw))
}

async fn restart(State(gw): State<Arc<Gateway>>) -> Response {
    let supervisor = Supervisor::detect();
    tracing::info!(supervisor = supervisor.as_str(), "restart requested over the control socket");
    gw.request_exit(ExitReason::Restart);
    let report = api::RestartReport {
        restarting: true,
        pid: std::process::id(),
        supervisor: supervisor.as_str().into(),
    };
    (StatusCode::ACCEPTED, Json(report)).into_response()
}

#[derive(Deserialize)]
struct LogsQuery {
    cursor: Option<u64>,
    lines: Option<usize>,
    max_bytes: Option<u64>,
    wait_ms: Option<u64>,
}

/// A long poll when asked to wait: answers as soon as a line arrives, at the deadline, or when
/// the daemon begins to exit (so it never holds up a drain).
async fn logs(State(gw): State<Arc<Gateway>>, Query(q): Query<LogsQuery>) -> Response {
    let path = gw.logs.file_path().to_owned();
    let lines = q.lines.unwrap_or(logtail::DEFAULT_LINES).clamp(1, 10_000);
    let max_bytes = q.max_bytes.unwrap_or(logtail::DEFAULT_MAX_BYTES).clamp(1024, 16 * 1024 * 1024);
    let wait = Duration::from_millis(q.wait_ms.unwrap_or(0).min(30_000));
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        // Registered before reading, so a line written in between still wakes us.
        let appended = gw.logs.appended().notified();
        match logtail::read(&path, q.cursor, lines, max_bytes) {
            Ok(tail) if !tail.lines.is_empty() || tail.reset || q.cursor.is_none() => {
                return Json(tail).into_response()
            }
            Ok(tail) => {
                tokio::select! {
                    _ = appended => continue,
                    _ = tokio::time::sleep_until(deadline) => return Json(tail).into_response(),
                    _ = gw.exiting() => return Json(tail).into_response(),
                }
            }
            Err(e) => {
                return refuse(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    format!("cannot read {}: {e}", path.display()),
                )
            }
        }
    }
}

async fn config(State(gw): State<Arc<Gateway>>) -> Json<ConfigView> {
    let active = gw.active();
    Json(ConfigView {
        path: gw.config_file().display().to_string(),
        generation: active.generation,
        config: gateway_config::classify::redacted(&active.config),
    })
}

fn token_info(gw: &Gateway, active: &Active) -> TokenInfo {
    TokenInfo {
        token: active.token.clone(),
        source: active.token_source.as_str().into(),
        file: (active.token_source == TokenSource::File).then(|| gw.paths.token_file().display().to_string()),
    }
}

async fn token(State(gw): State<Arc<Gateway>>) -> Json<TokenInfo> {
    Json(token_info(&gw, &gw.active()))
}

/// A one-time sign-in link for the Control UI, on the address this gateway listens on (a
/// wildcard bind is reached through loopback).
async fn ui_code(State(gw): State<Arc<Gateway>>) -> Response {
    let active = gw.active();
    if !active.config.ui.enabled {
        return refuse(
            StatusCode::CONFLICT,
            "ui_disabled",
            "the Control UI is turned off: set ui.enabled = true in the config (it applies at once)",
        );
    }
    let mut addr = gw.listen_addr;
    if addr.ip().is_unspecified() {
        let loopback: std::net::IpAddr = if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        };
        addr.set_ip(loopback);
    }
    let ui_url = format!("http://{addr}{}/", active.config.ui.path.as_str());
    let (code, expires_at_ms) = gw.ui_codes.issue();
    tracing::info!(event = "ui_code_issued", "Control UI sign-in link issued");
    Json(gateway_proto::api::UiLink { url: format!("{ui_url}#code={code}"), ui_url, expires_at_ms })
        .into_response()
}

/// Replaces a generated token; one from the environment or the config is changed there instead.
async fn rotate_token(State(gw): State<Arc<Gateway>>) -> Response {
    match crate::core::secrets::rotate_token(&gw).await {
        Ok(()) => Json(token_info(&gw, &gw.active())).into_response(),
        Err(e @ RotateError::Write(..)) => {
            refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        }
        Err(e) => refuse(StatusCode::CONFLICT, "conflict", e.to_string()),
    }
}

/// Runs a registry call off the async threads (a commit waits for an fsync) and answers its
/// result as JSON, or its error with the matching status.
async fn registry<T: serde::Serialize + Send + 'static>(
    gw: &Gateway,
    call: impl FnOnce(&Devices) -> Result<T, DeviceError> + Send + 'static,
) -> Result<T, Response> {
    match off_workers(gw.devices.clone(), call).await {
        Ok(value) => Ok(value),
        Err(CallError::Failed(e)) => Err(device_error(&e)),
        Err(e @ CallError::Task(_)) => {
            Err(GatewayError::store_failed("use its device registry", e).into_response())
        }
    }
}

fn device_error(e: &DeviceError) -> Response {
    let (status, code) = match e {
        DeviceError::InvalidId(_) | DeviceError::Invalid(_) | DeviceError::Ambiguous { .. } => {
            (StatusCode::BAD_REQUEST, "bad_request")
        }
        DeviceError::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
        DeviceError::KeyMismatch(_) => (StatusCode::CONFLICT, "conflict"),
        DeviceError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    };
    if status.is_server_error() {
        tracing::error!(error = %e, "device registry");
    }
    refuse(status, code, e.to_string())
}

async fn devices(State(gw): State<Arc<Gateway>>) -> Response {
    match registry(&gw, |d| Ok(DevicesReport { devices: d.list()?, pending: d.pending()? })).await {
        Ok(report) => Json(report).into_response(),
        Err(response) => response,
    }
}

/// The body is optional: none (or `{}`) grants the requested scopes.
async fn approve_device(
    State(gw): State<Arc<Gateway>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> Response {
    let body: ApproveBody = if body.iter().all(u8::is_ascii_whitespace) {
        ApproveBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(body) => body,
            Err(e) => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("the body must be {{\"scopes\": [\"operator.read\", ...]}} or empty: {e}"),
                )
            }
        }
    };
    match registry(&gw, move |d| d.approve(&id, body.scopes)).await {
        Ok(record) => Json(record).into_response(),
        Err(response) => response,
    }
}

async fn reject_device(State(gw): State<Arc<Gateway>>, UrlPath(id): UrlPath<String>) -> Response {
    match registry(&gw, move |d| d.reject_request(&id)).await {
        Ok(request) => Json(request).into_response(),
        Err(response) => response,
    }
}

/// Revokes the device and closes its open WebSocket connections.
async fn revoke_device(State(gw): State<Arc<Gateway>>, UrlPath(id): UrlPath<String>) -> Response {
    let device_id = match registry(&gw, move |d| d.revoke(&id)).await {
        Ok(device_id) => device_id,
        Err(response) => return response,
    };
    let closed_connections =
        gw.events.publish(&CoreEvent::CredentialRevoked(Credential::Device(device_id.clone())));
    Json(RevokeReport { device_id, closed_connections }).into_response()
}

/// Replaces the gateway password; every session and password socket it granted ends.
async fn set_password(State(gw): State<Arc<Gateway>>, Json(body): Json<api::PasswordBody>) -> Response {
    if let Err(message) = gw.password.set(&body.password).await {
        let status =
            if gw.password.source() != "state" { StatusCode::CONFLICT } else { StatusCode::BAD_REQUEST };
        return refuse(status, "refused", message);
    }
    let (sessions, closed_connections) = reload::end_password_grants(&gw, "gatewayctl password set");
    Json(api::RevokedReport { sessions, closed_connections }).into_response()
}

async fn list_signins(State(gw): State<Arc<Gateway>>) -> Response {
    match gw.signins.list() {
        Ok(sessions) => Json(api::SignInsReport { sessions }).into_response(),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}

async fn revoke_signin(State(gw): State<Arc<Gateway>>, UrlPath(id): UrlPath<String>) -> Response {
    match gw.signins.revoke(&id) {
        Ok(true) => {
            let closed_connections =
                gw.events.publish(&CoreEvent::CredentialRevoked(Credential::SignIn(id.clone())));
            Json(api::RevokedReport { sessions: 1, closed_connections }).into_response()
        }
        Ok(false) => refuse(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no sign-in session {}: see `gatewayctl signins list`", gateway_proto::quote::short(&id)),
        ),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}
