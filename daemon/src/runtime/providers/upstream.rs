//! HTTP to upstream APIs: one pooled client per provider (rebuilt when its settings change),
//! POSTs with retries and backoff on refused connections, 429 and 5xx, and a body reader that
//! enforces the first-byte, idle and total timeouts. Dropping the reader closes the connection,
//! which is how a cancelled run stops the upstream's work.
//!
//! Servers that close a kept-alive connection after each response (llama.cpp's llama-server
//! does) are handled by the pool: a connection found closed is not reused, and a request that
//! failed on a reused connection before any response byte is sent again on a new one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use gateway_config::{Provider, SecretRef};
use reqwest::StatusCode;
use tokio::time::Instant;

use super::ProviderError;
use crate::core::metrics::Metrics;

/// Longest wait a Retry-After header may ask for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// How much of an upstream error body is quoted in the error.
const ERROR_BODY_QUOTE: usize = 500;
/// The largest answer read whole (not streamed): a reply, even with long tool calls, is far
/// smaller; an upstream sending more must not exhaust the gateway's memory.
pub const MAX_WHOLE_ANSWER_BYTES: usize = 32 << 20;

#[derive(Default)]
pub struct Clients {
    by_provider: Mutex<HashMap<String, (u64, reqwest::Client)>>,
    /// Where retries are counted.
    metrics: Arc<Metrics>,
}

impl Clients {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { by_provider: Mutex::default(), metrics }
    }

    /// The client for `name`, built for its connect timeout.
    fn get(&self, name: &str, config: &Provider) -> Result<reqwest::Client, ProviderError> {
        let connect = config.connect_timeout_ms.get();
        let mut map = self.by_provider.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((c, client)) = map.get(name) {
            if *c == connect {
                return Ok(client.clone());
            }
        }
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(connect))
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            // Redirects are not followed: an API that redirects a POST is misconfigured.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("gatewayd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ProviderError::Config(format!("cannot build an HTTP client: {e}")))?;
        map.insert(name.to_owned(), (connect, client.clone()));
        Ok(client)
    }
}

/// A configured upstream, ready for one call.
pub struct Upstream<'a> {
    pub name: &'a str,
    pub config: &'a Provider,
    pub base_url: String,
    pub api_key: Option<String>,
    client: reqwest::Client,
    metrics: Arc<Metrics>,
    /// Sent with every request (the model call's `traceparent`).
    pub trace_headers: Vec<(String, String)>,
}

impl<'a> Upstream<'a> {
    pub async fn new(clients: &Clients, name: &'a str, config: &'a Provider) -> Result<Self, ProviderError> {
        let base_url = match (&config.base_url, config.kind) {
            (Some(url), _) => url.trim_end_matches('/').to_owned(),
            (None, gateway_config::ProviderKind::Anthropic) => "https://api.anthropic.com".to_owned(),
            (None, _) => {
                return Err(ProviderError::Config(format!(
                    "provider {name:?} has no base_url: set models.providers.{name}.base_url"
                )))
            }
        };
        let api_key = read_api_key(name, config).await?;
        let metrics = clients.metrics.clone();
        let client = clients.get(name, config)?;
        Ok(Self { name, config, base_url, api_key, client, metrics, trace_headers: Vec::new() })
    }

    /// POSTs `body` to `path` (joined to the base URL) and returns the reader of the answer.
    /// Refused connections, 429 and 5xx are retried with backoff (nothing has reached the
    /// caller yet); other statuses are errors that quote the upstream's message.
    pub async fn post(
        &self,
        path: &str,
        headers: &[(&str, String)],
        body: &serde_json::Value,
    ) -> Result<BodyReader, ProviderError> {
        let url = format!("{}{path}", self.base_url);
        // What errors and logs show: no password or query string, where a key may hide.
        let shown = shown_url(&url);
        let started = Instant::now();
        let total = Duration::from_millis(self.config.total_timeout_ms.get());
        let deadline = started + total;
        let first_byte = started + Duration::from_millis(self.config.first_byte_timeout_ms.get());
        let body = serde_json::to_vec(body).expect("plain JSON");
        let mut attempt = 0u64;
        // A kept-alive connection the server closed as we reused it fails without an answer:
        // one immediate resend on a fresh connection, not counted as a retry.
        let mut resent_stale = false;
        loop {
            let mut request = self
                .client
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
            for (name, value) in headers {
                request = request.header(*name, value);
            }
            for (name, value) in &self.trace_headers {
                request = request.header(name, value);
            }
            let limit = first_byte.min(deadline);
            let retry_after = match tokio::time::timeout_at(limit, request.send()).await {
                Err(_) => return Err(self.timeout("the first byte of the answer", started)),
                Ok(Ok(response)) if response.status().is_success() => {
                    return Ok(BodyReader {
                        response,
                        first_byte: limit,
                        idle: Duration::from_millis(self.config.idle_timeout_ms.get()),
                        deadline,
                        started,
                        received: false,
                        what: format!("upstream {} ({shown})", self.name),
                    });
                }
                Ok(Ok(response)) => {
                    let status = response.status();
                    let retryable = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
                    let after = retry_after(&response);
                    if !retryable || attempt >= self.config.max_retries.get() {
                        if attempt > 0 {
                            self.metrics.retries_exhausted.inc();
                        }
                        let text = error_body(response, deadline).await;
                        return Err(ProviderError::Upstream(format!(
                            "upstream {} answered {status} for {shown}{}: {}",
                            self.name,
                            if attempt > 0 { format!(" (after {attempt} retries)") } else { String::new() },
                            quote(&text)
                        )));
                    }
                    after
                }
                Ok(Err(e)) => {
                    let e = e.without_url();
                    if !resent_stale && !e.is_connect() && !e.is_timeout() {
                        resent_stale = true;
                        tracing::debug!(provider = self.name, error = %error_chain(&e), "resending on a new connection");
                        continue;
                    }
                    if attempt >= self.config.max_retries.get() {
                        if attempt > 0 {
                            self.metrics.retries_exhausted.inc();
                        }
                        return Err(ProviderError::Unavailable(format!(
                            "cannot reach upstream {} at {shown}{}: {}; check models.providers.{}.base_url and that the server runs",
                            self.name,
                            if attempt > 0 { format!(" (after {attempt} retries)") } else { String::new() },
                            error_chain(&e),
                            self.name
                        )));
                    }
                    None
                }
            };
            let backoff = retry_after.unwrap_or_else(|| {
                Duration::from_millis(self.config.retry_backoff_ms.get().saturating_mul(1 << attempt.min(16)))
            });
            attempt += 1;
            self.metrics.provider_retry(self.name);
            tracing::debug!(
                provider = self.name,
                attempt,
                backoff_ms = backoff.as_millis() as u64,
                "retrying upstream"
            );
            if Instant::now() + backoff >= deadline {
                return Err(self.timeout("a retry", started));
            }
            tokio::time::sleep(backoff).await;
        }
    }

    /// `error` with the API key, should the upstream have echoed it back, blotted out: errors
    /// reach the caller and the log.
    pub fn redact(&self, error: ProviderError) -> ProviderError {
        let Some(key) = self.api_key.as_deref().filter(|k| k.len() >= 4) else { return error };
        let blot = |text: String| text.replace(key, "[api_key redacted]");
        match error {
            ProviderError::Unavailable(t) => ProviderError::Unavailable(blot(t)),
            ProviderError::Upstream(t) => ProviderError::Upstream(blot(t)),
            ProviderError::Timeout(t) => ProviderError::Timeout(blot(t)),
            ProviderError::Config(t) => ProviderError::Config(blot(t)),
        }
    }

    fn timeout(&self, waiting_for: &str, started: Instant) -> ProviderError {
        ProviderError::Timeout(format!(
            "upstream {} timed out waiting for {waiting_for} after {} ms (see models.providers.{}.*_timeout_ms)",
            self.name,
            started.elapsed().as_millis(),
            self.name
        ))
    }
}

/// An upstream answer's body, read under the timeouts.
pub struct BodyReader {
    response: reqwest::Response,
    first_byte: Instant,
    idle: Duration,
    deadline: Instant,
    started: Instant,
    received: bool,
    what: String,
}

impl BodyReader {
    /// The next piece of the body; `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, ProviderError> {
        let limit = if self.received { Instant::now() + self.idle } else { self.first_byte };
        let limit = limit.min(self.deadline);
        match tokio::time::timeout_at(limit, self.response.chunk()).await {
            Err(_) => {
                let phase = if Instant::now() >= self.deadline {
                    "the end of the answer (total timeout)"
                } else if self.received {
                    "more of a streamed answer (idle timeout)"
                } else {
                    "the first byte of the answer"
                };
                Err(ProviderError::Timeout(format!(
                    "{} timed out waiting for {phase} after {} ms",
                    self.what,
                    self.started.elapsed().as_millis()
                )))
            }
            Ok(Err(e)) => Err(ProviderError::Upstream(format!(
                "{} broke off its answer: {}",
                self.what,
                error_chain(&e.without_url())
            ))),
            Ok(Ok(chunk)) => {
                self.received = true;
                Ok(chunk)
            }
        }
    }

    /// The whole body as JSON.
    pub async fn json(mut self) -> Result<serde_json::Value, ProviderError> {
        let mut body = Vec::new();
        while let Some(chunk) = self.chunk().await? {
            if body.len() + chunk.len() > MAX_WHOLE_ANSWER_BYTES {
                return Err(ProviderError::Upstream(format!(
                    "{} sent an answer over {} MiB; the gateway reads no more (is base_url the model API?)",
                    self.what,
                    MAX_WHOLE_ANSWER_BYTES >> 20
                )));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| {
            ProviderError::Upstream(format!(
                "{} answered with something that is not JSON ({e}): {}",
                self.what,
                quote(&String::from_utf8_lossy(&body))
            ))
        })
    }

    pub fn what(&self) -> &str {
        &self.what
    }

    /// Whether the answer is a stream of server-sent events (some servers and proxies answer
    /// a streaming request with one JSON document).
    pub fn is_event_stream(&self) -> bool {
        self.response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("text/event-stream"))
    }
}

/// The start of an error answer's body, enough to quote: the rest is not read.
async fn error_body(mut response: reqwest::Response, deadline: Instant) -> String {
    let mut body = Vec::new();
    while body.len() < ERROR_BODY_QUOTE * 4 {
        match tokio::time::timeout_at(deadline, response.chunk()).await {
            Ok(Ok(Some(chunk))) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let secs: u64 =
        response.headers().get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// The provider's key, read on every call so that a `file:` key can be replaced without a
/// reload; a file is read off the async workers.
async fn read_api_key(name: &str, config: &Provider) -> Result<Option<String>, ProviderError> {
    let Some(secret) = config.api_key.clone() else { return Ok(None) };
    let resolved = match secret {
        SecretRef::File(_) => tokio::task::spawn_blocking(move || secret.resolve()).await.map_err(|e| {
            ProviderError::Config(format!("provider {name:?}: reading the api_key failed: {e}"))
        })?,
        _ => secret.resolve(),
    };
    resolved.map(Some).map_err(|e| {
        ProviderError::Config(format!(
            "provider {name:?}: cannot read the api_key: {e}; fix models.providers.{name}.api_key"
        ))
    })
}

/// `url` without a password or query string (either may hold a key), for errors and logs.
fn shown_url(url: &str) -> String {
    let Ok(mut parsed) = reqwest::Url::parse(url) else { return url.to_owned() };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("redacted"));
    }
    if parsed.query().is_some() {
        parsed.set_query(Some("redacted"));
    }
    parsed.to_string()
}

/// An error with its causes, which reqwest keeps apart ("error sending request" says little).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The start of an upstream's error body, on one line.
pub fn quote(text: &str) -> String {
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".to_owned();
    }
    let mut end = text.len().min(ERROR_BODY_QUOTE);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::agent::{Message, Role};
    use crate::runtime::providers::{Deltas, ModelCall};
    use gateway_config::ProviderKind;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    #[test]
    fn shown_urls_hide_passwords_and_queries() {
        assert_eq!(shown_url("http://127.0.0.1:8/v1/chat"), "http://127.0.0.1:8/v1/chat");
        assert_eq!(
            shown_url("https://me:sk-123@example.com/v1/chat?key=sk-456"),
            "https://me:redacted@example.com/v1/chat?redacted"
        );
    }

    /// A call of the model `m` with one user message.
    fn call_m() -> ModelCall {
        ModelCall {
            model: "m".into(),
            messages: vec![Message::user("x")],
            tools: vec![],
            max_output_tokens: None,
            temperature: None,
            trace_headers: Vec::new(),
        }
    }

    /// Reads one request head and body (by Content-Length).
    async fn read_request(stream: &mut tokio::net::TcpStream) -> bool {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = stream.read(&mut chunk).await.unwrap_or(0);
            if n == 0 {
                return false;
            }
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf);
            if let Some(end) = text.find("\r\n\r\n") {
                let len = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    return true;
                }
            }
        }
    }

    /// A server that ignores `stream: true` and answers with one JSON document.
    #[tokio::test]
    async fn a_json_answer_to_a_streaming_request_is_read_as_one() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            assert!(read_request(&mut stream).await);
            let body =
                r#"{"choices":[{"message":{"role":"assistant","content":"whole"},"finish_reason":"stop"}]}"#;
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            stream.write_all(format!("{head}{body}").as_bytes()).await.unwrap();
        });
        let config = Provider {
            kind: ProviderKind::Openai,
            base_url: Some(format!("http://{addr}/v1")),
            models: vec!["m".into()],
            ..Provider::default()
        };
        assert!(config.stream);
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        let reply = crate::runtime::providers::call(
            &Clients::default(),
            "p",
            &config,
            call_m(),
            &mut Deltas::new(&tx),
        )
        .await
        .unwrap();
        assert_eq!(reply.message.content, "whole");
        assert_eq!(rx.recv().await.as_deref(), Some("whole"));
    }

    /// Like llama-server: says keep-alive, streams one answer, then closes the connection.
    #[tokio::test]
    async fn an_upstream_that_closes_after_each_streamed_answer_causes_no_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    if !read_request(&mut stream).await {
                        return;
                    }
                    let events = "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n\
                                  data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: keep-alive\r\nContent-Length: {}\r\n\r\n",
                        events.len()
                    );
                    let _ = stream.write_all(format!("{head}{events}").as_bytes()).await;
                    // Close a moment later, unread: the client has taken the connection back
                    // into its pool and may have sent the next request on it already.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        let config = Provider {
            kind: ProviderKind::Openai,
            base_url: Some(format!("http://{addr}/v1")),
            models: vec!["m".into()],
            max_retries: gateway_config::Bounded::new(0).unwrap(),
            ..Provider::default()
        };
        let clients = Clients::default();
        for round in 0..20 {
            let (tx, mut rx) = tokio::sync::mpsc::channel(16);
            let reply =
                crate::runtime::providers::call(&clients, "llama", &config, call_m(), &mut Deltas::new(&tx))
                    .await;
            let reply = reply.unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert_eq!((reply.message.role, reply.message.content.as_str()), (Role::Assistant, "hi"));
            assert_eq!(rx.recv().await.as_deref(), Some("hi"));
        }
    }
}
