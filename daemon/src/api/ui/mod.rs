//! The Control UI door: the embedded browser app under `ui.path` (default `/ui`), the redirects
//! of `/` and `/webchat` to it, and its sign-in (`/gateway/ui/session`). The app itself talks to
//! the gateway as a WebSocket client with its own device identity, so pairing and scopes apply
//! to a browser exactly as to any other client; no route here serves data.

mod assets;
mod session;

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use crate::api::error::GatewayError;
use crate::core::gateway::Gateway;
pub use assets::Assets;

pub fn router(gw: &Gateway) -> Router<Arc<Gateway>> {
    let base = gw.active().config.ui.path.as_str().to_owned();
    let shell_path = format!("{base}/");
    let file_path = format!("{base}/{{*file}}");
    let (to_ui, to_chat, to_slash) = (shell_path.clone(), format!("{base}/chat"), shell_path.clone());
    Router::new()
        .route("/", get(move |State(gw): State<Arc<Gateway>>| redirect(gw, to_ui.clone())))
        .route("/webchat", get(move |State(gw): State<Arc<Gateway>>| redirect(gw, to_chat.clone())))
        .route(&base, get(move |State(gw): State<Arc<Gateway>>| redirect(gw, to_slash.clone())))
        .route(&shell_path, get(shell))
        .route(&file_path, get(file))
        .merge(session::router())
}

fn disabled(req_path: &str) -> Response {
    GatewayError::not_found(
        "not_found",
        format!("no route for GET {req_path}: the Control UI is turned off (ui.enabled = false)"),
    )
    .into_response()
}

async fn redirect(gw: Arc<Gateway>, to: String) -> Response {
    if !gw.active().config.ui.enabled {
        return disabled(&to);
    }
    Redirect::to(&to).into_response()
}

async fn shell(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let active = gw.active();
    if !active.config.ui.enabled {
        return disabled(req.uri().path());
    }
    assets::serve(Assets::get(active.config.ui.path.as_str()).shell(), req.headers())
}

/// A file of the app; a path that is no file and has no extension is one of the app's views
/// (`/ui/chat`, `/ui/sessions/main`): the shell, which routes it. A missing file is a 404.
async fn file(State(gw): State<Arc<Gateway>>, Path(file): Path<String>, req: Request) -> Response {
    let active = gw.active();
    if !active.config.ui.enabled {
        return disabled(req.uri().path());
    }
    let assets = Assets::get(active.config.ui.path.as_str());
    if let Some(asset) = assets.file(&file) {
        return assets::serve(asset, req.headers());
    }
    let last = file.rsplit('/').next().unwrap_or("");
    if last.contains('.') {
        let mut response = GatewayError::not_found(
            "not_found",
            format!("no UI file {}", gateway_proto::quote::short(req.uri().path())),
        )
        .into_response();
        assets::security_headers(response.headers_mut());
        return response;
    }
    assets::serve(assets.shell(), req.headers())
}
