//! Our spans: one type that is a real span when traces are exported and nothing otherwise, so
//! call sites stay one line and cost nothing when tracing is off. Attribute names follow the
//! OpenTelemetry semantic conventions (HTTP, RPC, GenAI); W3C `traceparent` is read from HTTP
//! requests and sent to model upstreams.

use std::borrow::Cow;
use std::future::Future;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
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

    pub fn is_recording(&self) -> bool {
        self.0.is_some()
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

    /// Runs `work` with this span as the current context (its spans become children).
    pub async fn scope<F: Future>(&self, work: F) -> F::Output {
        match &self.0 {
            Some(cx) => work.with_context(cx.clone()).await,
            None => work.await,
        }
    }
}

/// The current context, to parent work that continues on another task.
pub fn current() -> Context {
    Context::current()
}

/// Runs `work` in `cx` (captured with [`current`]).
pub async fn within<F: Future>(cx: Context, work: F) -> F::Output {
    work.with_context(cx).await
}

/// The `traceparent` (and `tracestate`) headers of the current span, for an outgoing request;
/// empty when traces are not exported.
pub fn outgoing_headers() -> Vec<(String, String)> {
    if tracer().is_none() {
        return Vec::new();
    }
    let mut headers = OutHeaders(Vec::new());
    TraceContextPropagator::new().inject_context(&Context::current(), &mut headers);
    headers.0
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

struct OutHeaders(Vec<(String, String)>);

impl Injector for OutHeaders {
    fn set(&mut self, key: &str, value: String) {
        self.0.push((key.to_owned(), value));
    }
}
