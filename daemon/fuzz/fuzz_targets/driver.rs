//! Shared by the route targets: one gateway per process, assembled as `gatewayd run` assembles
//! it (`gatewayd::startup::embedded`) in a directory on tmpfs when there is one, and a request
//! runner that checks what every answer must be, whatever the input.

use std::sync::OnceLock;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use gatewayd::api::listener::Peer;
use gatewayd::startup::Embedded;
use http_body_util::BodyExt;
use tower::ServiceExt;

/// How long one request may take before it counts as a hang.
const HANG: Duration = Duration::from_secs(10);
/// An error body quotes at most a short piece of the input: this much is plenty.
const MAX_ERROR_BODY: usize = 4_096;

pub const CONFIG: &str = r#"
[logging]
level = "error"

[hooks]
enabled = true
token = "fuzz-hooks-token-0123456789"

[runs]
max_concurrent = 1024
"#;

pub struct Fixture {
    pub runtime: tokio::runtime::Runtime,
    pub gateway: Embedded,
    _dir: tempfile::TempDir,
}

pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        // Each store write is fsynced: on tmpfs that costs nothing.
        let base = if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" };
        let dir = tempfile::Builder::new().prefix("gw-fuzz").tempdir_in(base).expect("a temp dir");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        let gateway = runtime
            .block_on(async { gatewayd::startup::embedded(dir.path(), CONFIG) })
            .expect("an embedded gateway");
        Fixture { runtime, gateway, _dir: dir }
    })
}

/// An answer, read whole.
pub struct Answer {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

/// Sends `req` to `router` from `peer` and reads the whole answer; panics on a hang.
pub fn send(router: &axum::Router, peer: Peer, mut req: Request<Body>) -> Answer {
    let fixture = fixture();
    req.extensions_mut().insert(peer);
    let what = format!("{} {}", req.method(), req.uri());
    fixture.runtime.block_on(async {
        let read = async {
            let response = router.clone().oneshot(req).await.expect("axum routers are infallible");
            let status = response.status();
            let body =
                response.into_body().collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
            Answer { status, body }
        };
        tokio::time::timeout(HANG, read).await.unwrap_or_else(|_| panic!("{what} hung for {HANG:?}"))
    })
}

/// What every refusal must be: never a 500, and the documented JSON error, short.
pub fn check_refusal(what: &str, answer: &Answer) {
    assert_ne!(
        answer.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{what}: 500: {}",
        String::from_utf8_lossy(&answer.body)
    );
    if answer.status.is_client_error() || answer.status.is_server_error() {
        let body: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_else(|e| {
            panic!(
                "{what}: {} with a body that is not JSON ({e}): {:?}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
            )
        });
        assert!(
            body["error"]["message"].is_string(),
            "{what}: {} without error.message: {body}",
            answer.status
        );
        assert!(answer.body.len() <= MAX_ERROR_BODY, "{what}: a {}-byte error body", answer.body.len());
    }
}

/// The first `n` bytes of `data` as a path segment: percent-encoded where a URI needs it.
pub fn segment(data: &[u8]) -> String {
    let mut out = String::new();
    for &b in data {
        if b.is_ascii_alphanumeric() || b"-._~:@!$&'()*+,;=".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.is_empty() {
        out.push('x');
    }
    out
}
