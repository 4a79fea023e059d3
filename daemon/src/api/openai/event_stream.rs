//! Server-sent events: a response body fed by a run's event channel through an encoder that
//! turns each event into `data:` (and `event:`) frames. The body owns the channel, so a client
//! that disconnects drops it, which cancels the run (the engine's cancel-on-drop handle).
//! While nothing comes (a run queued behind another, a slow model), a comment line goes out
//! every [`KEEP_ALIVE`] so proxies do not take the stream for dead; SSE readers skip comments.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body::Frame;
use serde_json::Value;
use tokio::sync::mpsc::Receiver;

/// Turns a run's events into SSE frames.
pub trait Encoder: Send + Unpin + 'static {
    type Event: Send + 'static;
    /// Writes the frames for one event; returns true when the stream is complete.
    fn event(&mut self, event: Self::Event, out: &mut Frames) -> bool;
    /// The channel closed before a terminal event: write whatever ends the stream cleanly.
    fn closed(&mut self, out: &mut Frames);
}

/// The text of the frames written for one event.
#[derive(Default)]
pub struct Frames(String);

impl Frames {
    /// `data: <json>` (the chat-completions style, no event name).
    pub fn data(&mut self, json: &Value) {
        self.0.push_str("data: ");
        self.0.push_str(&json.to_string());
        self.0.push_str("\n\n");
    }

    /// `event: <name>` then `data: <json>` (the Responses style).
    pub fn named(&mut self, name: &str, json: &Value) {
        self.0.push_str("event: ");
        self.0.push_str(name);
        self.0.push('\n');
        self.data(json);
    }

    /// `data: [DONE]`, the end marker of the chat-completions stream.
    pub fn done(&mut self) {
        self.0.push_str("data: [DONE]\n\n");
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// For bodies fed with frames already written (by a task that does more than encode).
pub struct Written;

impl Encoder for Written {
    type Event = String;
    fn event(&mut self, frames: String, out: &mut Frames) -> bool {
        out.0.push_str(&frames);
        false
    }
    fn closed(&mut self, _: &mut Frames) {}
}

/// How long a stream may be silent before a keep-alive comment.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub struct SseBody<E: Encoder> {
    events: Option<Receiver<E::Event>>,
    encoder: E,
    pending: Option<Bytes>,
    keep_alive: Duration,
    silence: Pin<Box<tokio::time::Sleep>>,
}

impl<E: Encoder> SseBody<E> {
    /// `first` is written before any event (e.g. `response.created`).
    pub fn new(events: Receiver<E::Event>, encoder: E, first: Frames) -> Self {
        Self::with_keep_alive(events, encoder, first, KEEP_ALIVE)
    }

    pub fn with_keep_alive(
        events: Receiver<E::Event>,
        encoder: E,
        first: Frames,
        keep_alive: Duration,
    ) -> Self {
        let pending = (!first.0.is_empty()).then(|| Bytes::from(first.0));
        let silence = Box::pin(tokio::time::sleep(keep_alive));
        Self { events: Some(events), encoder, pending, keep_alive, silence }
    }

    pub fn into_response(self) -> Response {
        let mut response = axum::body::Body::new(self).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
        response
    }
}

impl<E: Encoder> http_body::Body for SseBody<E> {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        loop {
            if let Some(bytes) = this.pending.take() {
                return Poll::Ready(Some(Ok(Frame::data(bytes))));
            }
            let Some(events) = this.events.as_mut() else { return Poll::Ready(None) };
            let mut out = Frames::default();
            match events.poll_recv(cx) {
                Poll::Ready(Some(event)) => {
                    if this.encoder.event(event, &mut out) {
                        this.events = None;
                    }
                }
                Poll::Ready(None) => {
                    this.encoder.closed(&mut out);
                    this.events = None;
                }
                Poll::Pending => {
                    if this.silence.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    out.0.push_str(": keep-alive\n\n");
                }
            }
            let deadline = tokio::time::Instant::now() + this.keep_alive;
            this.silence.as_mut().reset(deadline);
            if !out.0.is_empty() {
                this.pending = Some(Bytes::from(out.0));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Numbers;
    impl Encoder for Numbers {
        type Event = u32;
        fn event(&mut self, n: u32, out: &mut Frames) -> bool {
            out.data(&json!({ "n": n }));
            n == 2
        }
        fn closed(&mut self, out: &mut Frames) {
            out.named("error", &json!({"closed": true}));
        }
    }

    async fn collect(body: SseBody<Numbers>) -> String {
        let bytes = axum::body::to_bytes(axum::body::Body::new(body), usize::MAX).await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn frames_in_order_and_stop_at_the_terminal_event() {
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        for n in [1, 2, 3] {
            tx.send(n).await.unwrap();
        }
        let mut first = Frames::default();
        first.named("start", &json!({}));
        let text = collect(SseBody::new(rx, Numbers, first)).await;
        assert_eq!(text, "event: start\ndata: {}\n\ndata: {\"n\":1}\n\ndata: {\"n\":2}\n\n");
    }

    #[tokio::test]
    async fn a_closed_channel_ends_cleanly() {
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        tx.send(1).await.unwrap();
        drop(tx);
        let text = collect(SseBody::new(rx, Numbers, Frames::default())).await;
        assert_eq!(text, "data: {\"n\":1}\n\nevent: error\ndata: {\"closed\":true}\n\n");
    }

    #[tokio::test]
    async fn silence_is_broken_by_comments() {
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let body = SseBody::with_keep_alive(rx, Numbers, Frames::default(), Duration::from_millis(20));
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            tx.send(2).await.unwrap();
        });
        let text = collect(body).await;
        sender.await.unwrap();
        assert!(text.starts_with(": keep-alive\n\n"), "{text}");
        assert!(text.ends_with("data: {\"n\":2}\n\n"), "{text}");
    }

    #[tokio::test]
    async fn dropping_the_body_drops_the_receiver() {
        let (tx, rx) = tokio::sync::mpsc::channel::<u32>(8);
        let body = SseBody::new(rx, Numbers, Frames::default());
        assert!(!tx.is_closed());
        drop(body);
        assert!(tx.is_closed());
    }
}
