//! The Control UI's files, embedded from `daemon/ui/` at build time (no Node build step), served
//! with their content type, an ETag (a 304 when the browser has it), and the headers that keep a
//! page of the gateway's safe: a strict CSP, no sniffing, no referrer, no framing.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use include_dir::{include_dir, Dir};
use sha2::{Digest, Sha256};

static FILES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/ui");

/// No inline script or style, nothing from another origin, never in a frame.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The shell's placeholder for the UI's mount path (`/ui/`), filled in when it is served.
const BASE_PLACEHOLDER: &str = "{{BASE}}";

pub struct Asset {
    pub body: Vec<u8>,
    pub content_type: &'static str,
    etag: String,
}

/// The files, by path under the mount point; `index.html` with the mount path filled in.
pub struct Assets {
    files: HashMap<String, Asset>,
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" | "webmanifest" => "application/json",
        _ => "application/octet-stream",
    }
}

fn etag(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    format!("\"{}\"", digest[..12].iter().map(|b| format!("{b:02x}")).collect::<String>())
}

impl Assets {
    /// The files for a UI mounted at `base` (like `/ui`). Built once per process: the mount
    /// path is a restart-required key.
    pub fn get(base: &str) -> &'static Assets {
        static ASSETS: OnceLock<Assets> = OnceLock::new();
        ASSETS.get_or_init(|| Assets::build(base))
    }

    fn build(base: &str) -> Self {
        let mut files = HashMap::new();
        let mut stack = vec![&FILES];
        while let Some(dir) = stack.pop() {
            stack.extend(dir.dirs());
            for file in dir.files() {
                let path = file.path().to_string_lossy().replace('\\', "/");
                let mut body = file.contents().to_vec();
                if path == "index.html" {
                    let text = String::from_utf8_lossy(&body).replace(BASE_PLACEHOLDER, &format!("{base}/"));
                    body = text.into_bytes();
                }
                let asset = Asset { etag: etag(&body), content_type: content_type(&path), body };
                files.insert(path, asset);
            }
        }
        Self { files }
    }

    pub fn file(&self, path: &str) -> Option<&Asset> {
        self.files.get(path)
    }

    pub fn shell(&self) -> &Asset {
        self.files.get("index.html").expect("daemon/ui/index.html is embedded")
    }

    /// Bytes embedded, for the record (docs/ui.md).
    pub fn total_bytes(&self) -> usize {
        self.files.values().map(|a| a.body.len()).sum()
    }
}

/// Headers every UI answer carries, pages and files alike.
pub fn security_headers(headers: &mut HeaderMap) {
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
}

/// The asset, or 304 when the request's `If-None-Match` names its ETag. Files are not hashed
/// in their names, so every answer is `no-cache`: revalidated each time, cheaply.
pub fn serve(asset: &Asset, request: &HeaderMap) -> Response {
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == asset.etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, asset.content_type)], asset.body.clone()).into_response()
    };
    let headers = response.headers_mut();
    if let Ok(tag) = HeaderValue::from_str(&asset.etag) {
        headers.insert(header::ETAG, tag);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    security_headers(headers);
    response
}
