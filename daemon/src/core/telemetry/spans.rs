//! Our spans: one type that is a real span when traces are exported and nothing otherwise, so
//! call sites stay one line and cost nothing when tracing is off. Attribute names follow the
//! OpenTelemetry semantic conventions (HTTP, RPC, GenAI); W3C `traceparent` is read from HTTP
//! requests and sent to model upstreams.

use std::borrow::Cow;
use std::future::Future;

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{FutureExt, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;

use super::tracer;

pub use opentelemetry::trace::SpanKind as Kind;
pub use opentelemetry::KeyValue as Attr;

/// A span of ours, or nothing when traces are not exported. Ended by [`Traced::end`] (or when
/// its last context is dropped).
#[derive(Clone, Default)]
pub struct Traced(Option<Context>);

impl Traced {
    /// A span under the current context (the caller's span, if it runs in one).
    pub fn start(
        name: impl FnOnce() -> Cow<'static, str>,
        kind: SpanKind,
        attributes: impl FnOnce() -> Vec<KeyValue>,
    ) -> Self {
        // Reading the current context is not free: not at all while tracing is off.
        if tracer().is_none() {
            return Self(None);
        }
        Self::start_under(&Context::current(), name, kind, attributes)
    }

    /// A span under `parent` (a context captured where the work was asked for).
    pub fn start_under(
        parent: &Context,
        name: impl FnOnce() -> Cow<'static, str>,
        kind: SpanKind,
        attributes: impl FnOnce() -> Vec<KeyValue>,
    ) -> Self {
        let Some(tracer) = tracer() else {
            return Self(None);
        };
        let span = tracer
            .span_builder(name())
            .with_kind(kind)
            .with_attributes(attributes())
            .start_with_context(tracer, parent);
        Self(Some(parent.with_span(span)))
    }

    /// A child of this span; nothing when this is nothing.
    pub fn child(
        &self,
        name: impl FnOnce() -> Cow<'static, str>,
        kind: SpanKind,
        attributes: impl FnOnce() -> Vec<KeyValue>,
    ) -> Self {
        match &self.0 {
            Some(cx) => Self::start_under(cx, name, kind, attributes),
            None => Self(None),
        }
    }

    /// The `traceparent` header naming this span (W3C trace context, version 00), and the
    /// `tracestate` it carries, for an outgoing request. Written here rather than by the
    /// propagator, which formats each part through `fmt` at several times the cost.
    pub fn outgoing_headers(&self) -> Vec<(String, String)> {
        let Some(cx) = &self.0 else {
            return Vec::new();
        };
        let span = cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return Vec::new();
        }
        let mut parent = String::with_capacity(55);
        parent.push_str("00-");
        push_hex(&mut parent, &sc.trace_id().to_bytes());
        parent.push('-');
        push_hex(&mut parent, &sc.span_id().to_bytes());
        parent.push('-');
        push_hex(&mut parent, &[sc.trace_flags().to_u8()]);
        let mut headers = vec![("traceparent".to_owned(), parent)];
        let state = sc.trace_state().header();
        if !state.is_empty() {
            headers.push(("tracestate".to_owned(), state));
        }
        headers
    }

    /// A server span for an HTTP request, continuing the trace its `traceparent` names.
    pub fn http_server(
        headers: &axum::http::HeaderMap,
        name: impl FnOnce() -> Cow<'static, str>,
        attributes: impl FnOnce() -> Vec<KeyValue>,
    ) -> Self {
        if tracer().is_none() {
            return Self(None);
        }
        let parent = TraceContextPropagator::new().extract(&Headers(headers));
        Self::start_under(&parent, name, SpanKind::Server, attributes)
    }

    pub fn set(&self, attributes: impl FnOnce() -> Vec<KeyValue>) {
        if let Some(cx) = &self.0 {
            cx.span().set_attributes(attributes());
        }
    }

    /// Marks the span failed: `error.type` and the status message.
    pub fn fail(&self, error_type: &str, message: impl FnOnce() -> String) {
        if let Some(cx) = &self.0 {
            let span = cx.span();
            span.set_attribute(KeyValue::new("error.type", error_type.to_owned()));
            span.set_status(Status::error(message()));
        }
    }

    pub fn rename(&self, name: &'static str) {
        if let Some(cx) = &self.0 {
            cx.span().update_name(name);
        }
    }

    /// Makes this span the current context until the guard drops (for synchronous work; the
    /// guard must not be held across an await).
    pub fn enter(&self) -> Option<opentelemetry::ContextGuard> {
        self.0.as_ref().map(|cx| cx.clone().attach())
    }

    /// Ends the span, failed with `error` as `error.type` when there is one.
    pub fn end_with(&self, error: Option<&str>) {
        if let Some(e) = error {
            self.fail(e, || e.to_owned());
        }
        self.end();
    }

    pub fn end(&self) {
        if let Some(cx) = &self.0 {
            cx.span().end();
        }
    }

    /// `work`, run with this span as the current context (its spans become children). Not an
    /// async fn: that would hold `work` twice in its state and copy it in, and a run's future
    /// is large; this one holds it once, in place.
    pub fn scope<F: Future>(&self, work: F) -> Scoped<F> {
        match &self.0 {
            Some(cx) => Scoped::Traced { work: work.with_context(cx.clone()) },
            None => Scoped::Plain { work },
        }
    }
}

pin_project_lite::pin_project! {
    /// A future run in a span's context, or as it is when tracing is off.
    #[project = ScopedProj]
    pub enum Scoped<F> {
        Traced { #[pin] work: opentelemetry::trace::WithContext<F> },
        Plain { #[pin] work: F },
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<F::Output> {
        match self.project() {
            ScopedProj::Traced { work } => work.poll(cx),
            ScopedProj::Plain { work } => work.poll(cx),
        }
    }
}

/// The current context, to parent work that continues on another task.
pub fn current() -> Context {
    Context::current()
}

struct Headers<'a>(&'a axum::http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    #[test]
    fn traceparent_is_what_the_w3c_propagator_writes() {
        let sc = SpanContext::new(
            TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap(),
            SpanId::from_hex("b7ad6b7169203331").unwrap(),
            TraceFlags::SAMPLED,
            false,
            TraceState::from_key_value([("vendor", "x")]).unwrap(),
        );
        let traced = Traced(Some(Context::new().with_remote_span_context(sc.clone())));
        let mut expected = std::collections::HashMap::new();
        TraceContextPropagator::new()
            .inject_context(&Context::new().with_remote_span_context(sc), &mut expected);
        let ours: std::collections::HashMap<String, String> = traced.outgoing_headers().into_iter().collect();
        assert_eq!(ours, expected);
        assert_eq!(ours["traceparent"], "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    }
}
