//! Server-sent events: a response body fed by a run's event channel through an encoder that
//! turns each event into `data:` (and `event:`) frames. The body owns the channel, so a client
//! that disconnects drops it, which cancels the run (the engine's cancel-on-drop handle).

use std::any::Any;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

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

pub struct SseBody<E: Encoder> {
    events: Option<Receiver<E::Event>>,
    encoder: E,
    pending: Option<Bytes>,
    /// Dropped with the body: whatever else the run's handle holds.
    _keep: Box<dyn Any + Send>,
}

impl<E: Encoder> SseBody<E> {
    /// `first` is written before any event (e.g. `response.created`).
    pub fn new(events: Receiver<E::Event>, encoder: E, first: Frames, keep: Box<dyn Any + Send>) -> Self {
        let pending = (!first.0.is_empty()).then(|| Bytes::from(first.0));
        Self { events: Some(events), encoder, pending, _keep: keep }
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
                Poll::Pending => return Poll::Pending,
            }
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
        let text = collect(SseBody::new(rx, Numbers, first, Box::new(()))).await;
        assert_eq!(text, "event: start\ndata: {}\n\ndata: {\"n\":1}\n\ndata: {\"n\":2}\n\n");
    }

    #[tokio::test]
    async fn a_closed_channel_ends_cleanly() {
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        tx.send(1).await.unwrap();
        drop(tx);
        let text = collect(SseBody::new(rx, Numbers, Frames::default(), Box::new(()))).await;
        assert_eq!(text, "data: {\"n\":1}\n\nevent: error\ndata: {\"closed\":true}\n\n");
    }

    #[tokio::test]
    async fn dropping_the_body_drops_the_receiver() {
        let (tx, rx) = tokio::sync::mpsc::channel::<u32>(8);
        let body = SseBody::new(rx, Numbers, Frames::default(), Box::new(()));
        assert!(!tx.is_closed());
        drop(body);
        assert!(tx.is_closed());
    }
}
