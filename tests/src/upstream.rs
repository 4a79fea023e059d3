//! A fake model upstream for tests and benchmarks: a small tokio + hyper server on a free loopback
//! port that speaks the OpenAI chat API (`POST …/chat/completions`, `GET …/models`) and the
//! Anthropic Messages API (`POST …/messages`), streamed (SSE, each API's own framing) and not,
//! with tool calls. Routes match on the path's end, so a base URL with or without `/v1` works.
//! It records every request (method, path, headers, JSON body) and counts open connections, so a
//! test can assert what the gateway sent and that a cancelled request really closed.
//!
//! # Model-name grammar
//!
//! The behaviour is chosen per request by the `model` field: one or more directives joined by
//! `+`, e.g. `slow-first-byte-300+tool-time`. A name without any directive below (`echo`,
//! `llama3.2`, `gpt-4o`) just echoes.
//!
//! | directive | behaviour |
//! |---|---|
//! | `echo` | the reply is the text of the last user message, streamed word by word |
//! | `words-<n>` | the reply is `w1 w2 … w<n>` instead |
//! | `tool-<name>` | the model calls tool `<name>`: arguments are the last user message if it is a JSON object, else `{}`. When the last message is a tool result, the reply is `tool <name> returned: <result>` |
//! | `fault-<status>` | every request fails with HTTP `<status>` and the API's error body (`retry-after: 0` on 429 and 503) |
//! | `fault-<status>-then-ok` | the first request for this model name fails so, later ones succeed |
//! | `hangup` | the connection is closed without any response |
//! | `garbage` | HTTP 200 with a body in no API's shape: an HTML page where JSON belongs; streamed, event-stream lines that are not JSON |
//! | `slow-first-byte-<ms>` | waits `<ms>` before the response head |
//! | `chunk-delay-<ms>` | waits `<ms>` before each streamed event |
//! | `stall-after-<n>` | streams the opening event(s) and `<n>` content events, then sends nothing more and keeps the connection open until the client leaves; not streamed: the head, then nothing |
//! | `drop-after-<n>` | like `stall-after-<n>`, but then aborts the connection mid-body |
//!
//! `max_tokens` (or `max_completion_tokens`) cuts the reply to that many words with finish reason
//! `length` (`max_tokens` for Anthropic). A malformed directive (`fault-abc`) is a 400 that names
//! it. Usage counts words: input = words of every message's text, output = words (or argument
//! pieces) sent.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// One request as the upstream received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Lowercase names, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The JSON body (`Null` when there was none or it was not JSON).
    pub body: Value,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A running fake upstream; it stops when dropped.
pub struct Upstream {
    addr: SocketAddr,
    state: Arc<State>,
    runtime: Option<tokio::runtime::Runtime>,
}

/// Options for [`Upstream`].
pub struct Builder {
    threads: usize,
    record: bool,
    api_key: Option<String>,
    port: u16,
}

struct State {
    record: bool,
    api_key: Option<String>,
    requests: Mutex<Vec<Recorded>>,
    /// Requests served per model name, for `fault-…-then-ok`.
    seen_models: Mutex<HashMap<String, u32>>,
    open_connections: AtomicUsize,
    accepted_connections: AtomicUsize,
    open_streams: AtomicUsize,
    ids: AtomicUsize,
}

impl Builder {
    /// Runtime worker threads (default 1; the benchmark gives it more).
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n.max(1);
        self
    }

    /// Whether to keep every request (default true; a long benchmark turns it off).
    pub fn record(mut self, on: bool) -> Self {
        self.record = on;
        self
    }

    /// Requires `Authorization: Bearer KEY` (OpenAI) or `x-api-key: KEY` (Anthropic); else 401.
    pub fn api_key(mut self, key: &str) -> Self {
        self.api_key = Some(key.to_owned());
        self
    }

    /// A fixed port instead of a free one.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Binds 127.0.0.1 and serves on a runtime of its own, so it works from plain and async tests.
    pub fn start(self) -> io::Result<Upstream> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", self.port))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.threads)
            .thread_name("upstream")
            .enable_all()
            .build()?;
        let state = Arc::new(State {
            record: self.record,
            api_key: self.api_key,
            requests: Mutex::default(),
            seen_models: Mutex::default(),
            open_connections: AtomicUsize::new(0),
            accepted_connections: AtomicUsize::new(0),
            open_streams: AtomicUsize::new(0),
            ids: AtomicUsize::new(0),
        });
        let serving = state.clone();
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener on the runtime");
            accept_loop(listener, serving).await
        });
        Ok(Upstream { addr, state, runtime: Some(runtime) })
    }
}

impl Upstream {
    /// A fake upstream on a free port with the defaults.
    pub fn start() -> Self {
        Self::builder().start().expect("start the fake upstream")
    }

    pub fn builder() -> Builder {
        Builder { threads: 1, record: true, api_key: None, port: 0 }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT` (the Anthropic base URL).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT/v1` (the OpenAI base URL).
    pub fn openai_base_url(&self) -> String {
        format!("{}/v1", self.url())
    }

    /// Every request so far (empty when recording is off).
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    /// The recorded requests to a path ending with `suffix` (e.g. `/chat/completions`).
    pub fn requests_to(&self, suffix: &str) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.path.ends_with(suffix)).collect()
    }

    /// TCP connections open right now.
    pub fn open_connections(&self) -> usize {
        self.state.open_connections.load(Ordering::SeqCst)
    }

    /// TCP connections accepted since start.
    pub fn accepted_connections(&self) -> usize {
        self.state.accepted_connections.load(Ordering::SeqCst)
    }

    /// Streamed (or stalled) response bodies still being sent.
    pub fn open_streams(&self) -> usize {
        self.state.open_streams.load(Ordering::SeqCst)
    }

    /// Waits until at most `n` connections are open; panics after `timeout`.
    pub fn wait_open_connections_at_most(&self, n: usize, timeout: Duration) {
        crate::wait_for(timeout, &format!("at most {n} open upstream connections"), || {
            (self.open_connections() <= n).then_some(())
        })
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Does not block, so an async test may drop it too.
            runtime.shutdown_background();
        }
    }
}

/// A `[models.providers.up]` section pointing at the fake upstream, no retries.
pub fn upstream_provider(up: &Upstream, models: &[&str]) -> String {
    let models: Vec<String> = models.iter().map(|m| format!("{m:?}")).collect();
    format!(
        "[models.providers.up]\nkind = \"openai\"\nbase_url = \"{}\"\nmodels = [{}]\nmax_retries = 0\n",
        up.openai_base_url(),
        models.join(", ")
    )
}

/// Decrements a counter when dropped.
struct Gauge<'a>(&'a AtomicUsize);

impl<'a> Gauge<'a> {
    fn up(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, state: Arc<State>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        state.accepted_connections.fetch_add(1, Ordering::SeqCst);
        let state = state.clone();
        tokio::spawn(async move {
            let _open = Gauge::up(&state.open_connections);
            let service = service_fn(|req| handle(state.clone(), req));
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A response body: all at once, or events from a producer task (an `Err` aborts the connection).
pub struct Out {
    full: Option<Bytes>,
    events: Option<mpsc::Receiver<io::Result<Bytes>>>,
}

impl Out {
    fn full(bytes: impl Into<Bytes>) -> Self {
        Self { full: Some(bytes.into()), events: None }
    }
}

impl Body for Out {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        let this = self.get_mut();
        if let Some(bytes) = this.full.take() {
            return Poll::Ready(Some(Ok(Frame::data(bytes))));
        }
        match &mut this.events {
            Some(rx) => rx.poll_recv(cx).map(|event| event.map(|r| r.map(Frame::data))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.full.is_none() && self.events.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.full, &self.events) {
            (Some(bytes), None) => SizeHint::with_exact(bytes.len() as u64),
            (None, None) => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Api {
    OpenAi,
    Anthropic,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Cut {
    Stall,
    Drop,
}

/// What a model name asks for (see the module doc).
#[derive(Default, Debug, PartialEq)]
struct Behaviour {
    fault: Option<u16>,
    fault_then_ok: bool,
    hangup: bool,
    garbage: bool,
    first_byte_delay: Duration,
    chunk_delay: Duration,
    cut: Option<(usize, Cut)>,
    tool: Option<String>,
    words: Option<usize>,
}

fn number<T: std::str::FromStr>(directive: &str, digits: &str) -> Result<T, String> {
    digits.parse().map_err(|_| format!("model directive {directive:?}: {digits:?} is not a number"))
}

impl Behaviour {
    fn parse(model: &str) -> Result<Self, String> {
        let mut b = Behaviour::default();
        for d in model.split('+') {
            if d == "hangup" {
                b.hangup = true;
            } else if d == "garbage" {
                b.garbage = true;
            } else if let Some(rest) = d.strip_prefix("fault-") {
                let (status, then_ok) =
                    rest.strip_suffix("-then-ok").map_or((rest, false), |status| (status, true));
                let status: u16 = number(d, status)?;
                if !(400..=599).contains(&status) {
                    return Err(format!("model directive {d:?}: the status must be 400-599"));
                }
                b.fault = Some(status);
                b.fault_then_ok = then_ok;
            } else if let Some(ms) = d.strip_prefix("slow-first-byte-") {
                b.first_byte_delay = Duration::from_millis(number(d, ms)?);
            } else if let Some(ms) = d.strip_prefix("chunk-delay-") {
                b.chunk_delay = Duration::from_millis(number(d, ms)?);
            } else if let Some(n) = d.strip_prefix("stall-after-") {
                b.cut = Some((number(d, n)?, Cut::Stall));
            } else if let Some(n) = d.strip_prefix("drop-after-") {
                b.cut = Some((number(d, n)?, Cut::Drop));
            } else if let Some(name) = d.strip_prefix("tool-") {
                if name.is_empty() {
                    return Err(format!("model directive {d:?}: name the tool"));
                }
                b.tool = Some(name.to_owned());
            } else if let Some(n) = d.strip_prefix("words-") {
                b.words = Some(number(d, n)?);
            }
        }
        Ok(b)
    }
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> io::Result<Response<Out>> {
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let raw = req.into_body().collect().await.map_err(io::Error::other)?.to_bytes();
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let recorded = Recorded { method, path, headers, body };
    let response = respond(&state, &recorded).await;
    if state.record {
        state.requests.lock().unwrap().push(recorded);
    }
    response
}

async fn respond(state: &Arc<State>, req: &Recorded) -> io::Result<Response<Out>> {
    let api = match (req.method.as_str(), req.path.as_str()) {
        ("GET", p) if p.ends_with("/models") => return Ok(json_response(StatusCode::OK, models_list())),
        ("POST", p) if p.ends_with("/chat/completions") => Api::OpenAi,
        ("POST", p) if p.ends_with("/messages") => Api::Anthropic,
        (m, p) => return Ok(error(Api::OpenAi, 404, &format!("no route for {m} {p}"))),
    };
    if let Some(key) = &state.api_key {
        let given = match api {
            Api::OpenAi => req.header("authorization").and_then(|v| v.strip_prefix("Bearer ")),
            Api::Anthropic => req.header("x-api-key"),
        };
        if given != Some(key.as_str()) {
            // Echoes the key it was given, as some servers and proxies do: the gateway must
            // not pass it on.
            return Ok(error(api, 401, &format!("wrong API key provided: {}", given.unwrap_or("(none)"))));
        }
    }
    if !req.body.is_object() {
        return Ok(error(api, 400, "the body must be a JSON object"));
    }
    let Some(model) = req.body["model"].as_str() else {
        return Ok(error(api, 400, "`model` is required"));
    };
    let behaviour = match Behaviour::parse(model) {
        Ok(b) => b,
        Err(message) => return Ok(error(api, 400, &message)),
    };
    let served_before = {
        let mut seen = state.seen_models.lock().unwrap();
        let n = seen.entry(model.to_owned()).or_default();
        *n += 1;
        *n - 1
    };
    if behaviour.hangup {
        // An error from the service makes hyper close the connection without a response.
        return Err(io::Error::other("hangup requested by the model name"));
    }
    if !behaviour.first_byte_delay.is_zero() {
        // Even a zero sleep waits for the timer's next millisecond tick.
        tokio::time::sleep(behaviour.first_byte_delay).await;
    }
    if let Some(status) = behaviour.fault {
        if !behaviour.fault_then_ok || served_before == 0 {
            return Ok(error(api, status, &format!("injected fault: HTTP {status} for model {model}")));
        }
    }
    let stream = req.body["stream"].as_bool().unwrap_or(false);
    if behaviour.garbage {
        let (content_type, body) = if stream {
            ("text/event-stream", "data: {\"id\": chatcmpl garbage\n\ndata: \u{1}\u{2} not an event\n\n")
        } else {
            ("application/json", "<html><body>502 Bad Gateway</body></html>")
        };
        return Ok(Response::builder()
            .header("content-type", content_type)
            .body(Out::full(body.to_owned()))
            .expect("valid response"));
    }
    let reply = Reply::build(state, api, &req.body, &behaviour);
    if !stream && behaviour.cut.is_none() {
        return Ok(json_response(StatusCode::OK, reply.whole(api, model)));
    }
    let events = if stream {
        let usage = api == Api::Anthropic || req.body["stream_options"]["include_usage"] == true;
        reply.events(api, model, usage)
    } else {
        Vec::new()
    };
    let (tx, rx) = mpsc::channel(4);
    let state = state.clone();
    tokio::spawn(async move {
        let _open = Gauge::up(&state.open_streams);
        produce(tx, events, behaviour.cut, behaviour.chunk_delay).await
    });
    let content_type = if stream { "text/event-stream" } else { "application/json" };
    Ok(Response::builder()
        .header("content-type", content_type)
        .header("cache-control", "no-cache")
        .body(Out { full: None, events: Some(rx) })
        .expect("valid response"))
}

/// Sends the events, cutting after the n-th content event if asked.
async fn produce(
    tx: mpsc::Sender<io::Result<Bytes>>,
    events: Vec<Event>,
    cut: Option<(usize, Cut)>,
    delay: Duration,
) {
    let mut content_sent = 0;
    for event in events {
        if let Some((n, how)) = cut {
            if event.content && content_sent == n {
                return cut_off(tx, how).await;
            }
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        content_sent += usize::from(event.content);
        if tx.send(Ok(event.bytes)).await.is_err() {
            return; // the client left
        }
    }
    if let Some((_, how)) = cut {
        cut_off(tx, how).await;
    }
}

async fn cut_off(tx: mpsc::Sender<io::Result<Bytes>>, how: Cut) {
    match how {
        // Hold the body open until hyper drops it (the client closed the connection).
        Cut::Stall => tx.closed().await,
        Cut::Drop => {
            let _ = tx.send(Err(io::Error::other("drop requested by the model name"))).await;
        }
    }
}

struct Event {
    bytes: Bytes,
    /// Carries reply text or tool arguments (what `stall-after-<n>` counts).
    content: bool,
}

impl Event {
    fn openai(data: Value, content: bool) -> Self {
        Self { bytes: format!("data: {data}\n\n").into(), content }
    }

    fn anthropic(data: Value, content: bool) -> Self {
        let kind = data["type"].as_str().unwrap_or("unknown").to_owned();
        Self { bytes: format!("event: {kind}\ndata: {data}\n\n").into(), content }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Finish {
    Stop,
    Length,
    Tool,
}

struct ToolCall {
    id: String,
    name: String,
    arguments: String,
}

/// The answer to one request, before it is framed for an API.
struct Reply {
    id: String,
    pieces: Vec<String>,
    tool: Option<ToolCall>,
    finish: Finish,
    input_tokens: u64,
}

impl Reply {
    fn build(state: &State, api: Api, body: &Value, b: &Behaviour) -> Self {
        let n = state.ids.fetch_add(1, Ordering::Relaxed);
        let id = match api {
            Api::OpenAi => format!("chatcmpl-{n}"),
            Api::Anthropic => format!("msg_{n}"),
        };
        let messages = body["messages"].as_array().map(Vec::as_slice).unwrap_or_default();
        let input_tokens = words_in(messages) + body["system"].as_str().map_or(0, word_count);
        let mut reply = Reply { id, pieces: Vec::new(), tool: None, finish: Finish::Stop, input_tokens };
        let text = match (&b.tool, tool_result(api, messages)) {
            (Some(name), Some(result)) => format!("tool {name} returned: {result}"),
            (Some(name), None) => {
                let last = last_user_text(messages);
                let args = serde_json::from_str::<Value>(&last)
                    .ok()
                    .filter(Value::is_object)
                    .map_or("{}".to_owned(), |v| v.to_string());
                let prefix = if api == Api::OpenAi { "call" } else { "toolu" };
                reply.tool =
                    Some(ToolCall { id: format!("{prefix}_{n}"), name: name.clone(), arguments: args });
                reply.finish = Finish::Tool;
                return reply;
            }
            (None, _) => match b.words {
                Some(count) => (1..=count).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" "),
                None => last_user_text(messages),
            },
        };
        let max = body["max_completion_tokens"].as_u64().or_else(|| body["max_tokens"].as_u64());
        for (i, word) in text.split(' ').enumerate() {
            if max.is_some_and(|max| i as u64 >= max) {
                reply.finish = Finish::Length;
                break;
            }
            reply.pieces.push(if i == 0 { word.to_owned() } else { format!(" {word}") });
        }
        reply
    }

    fn text(&self) -> String {
        self.pieces.concat()
    }

    /// Argument text in two pieces, as models stream it.
    fn argument_pieces(call: &ToolCall) -> [&str; 2] {
        let mid = call.arguments.char_indices().nth(call.arguments.chars().count() / 2).map_or(0, |(i, _)| i);
        [&call.arguments[..mid], &call.arguments[mid..]]
    }

    fn output_tokens(&self) -> u64 {
        if self.tool.is_some() {
            2
        } else {
            self.pieces.len() as u64
        }
    }

    fn finish_reason(&self, api: Api) -> &'static str {
        match (api, self.finish) {
            (Api::OpenAi, Finish::Stop) => "stop",
            (Api::OpenAi, Finish::Length) => "length",
            (Api::OpenAi, Finish::Tool) => "tool_calls",
            (Api::Anthropic, Finish::Stop) => "end_turn",
            (Api::Anthropic, Finish::Length) => "max_tokens",
            (Api::Anthropic, Finish::Tool) => "tool_use",
        }
    }

    fn whole(&self, api: Api, model: &str) -> Value {
        let (input, output) = (self.input_tokens, self.output_tokens());
        match api {
            Api::OpenAi => {
                let mut message = json!({ "role": "assistant", "content": self.text() });
                if let Some(call) = &self.tool {
                    message["content"] = Value::Null;
                    message["tool_calls"] = json!([{ "id": call.id, "type": "function",
                        "function": { "name": call.name, "arguments": call.arguments } }]);
                }
                json!({
                    "id": self.id, "object": "chat.completion", "created": now_secs(), "model": model,
                    "choices": [{ "index": 0, "message": message, "logprobs": null,
                        "finish_reason": self.finish_reason(api) }],
                    "usage": { "prompt_tokens": input, "completion_tokens": output,
                        "total_tokens": input + output },
                })
            }
            Api::Anthropic => {
                let content = match &self.tool {
                    Some(call) => json!([{ "type": "tool_use", "id": call.id, "name": call.name,
                        "input": serde_json::from_str::<Value>(&call.arguments).unwrap_or(json!({})) }]),
                    None => json!([{ "type": "text", "text": self.text() }]),
                };
                json!({
                    "id": self.id, "type": "message", "role": "assistant", "model": model,
                    "content": content, "stop_reason": self.finish_reason(api), "stop_sequence": null,
                    "usage": { "input_tokens": input, "output_tokens": output },
                })
            }
        }
    }

    fn events(&self, api: Api, model: &str, usage: bool) -> Vec<Event> {
        match api {
            Api::OpenAi => self.openai_events(model, usage),
            Api::Anthropic => self.anthropic_events(model),
        }
    }

    fn openai_events(&self, model: &str, usage: bool) -> Vec<Event> {
        let created = now_secs();
        let chunk = |delta: Value, finish: Option<&str>| {
            json!({ "id": self.id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }] })
        };
        let mut events =
            vec![Event::openai(chunk(json!({ "role": "assistant", "content": "" }), None), false)];
        if let Some(call) = &self.tool {
            let start = json!({ "tool_calls": [{ "index": 0, "id": call.id, "type": "function",
                "function": { "name": call.name, "arguments": "" } }] });
            events.push(Event::openai(chunk(start, None), false));
            for piece in Self::argument_pieces(call) {
                let delta = json!({ "tool_calls": [{ "index": 0, "function": { "arguments": piece } }] });
                events.push(Event::openai(chunk(delta, None), true));
            }
        }
        for piece in &self.pieces {
            events.push(Event::openai(chunk(json!({ "content": piece }), None), true));
        }
        events.push(Event::openai(chunk(json!({}), Some(self.finish_reason(Api::OpenAi))), false));
        if usage {
            let (input, output) = (self.input_tokens, self.output_tokens());
            let last = json!({ "id": self.id, "object": "chat.completion.chunk", "created": created,
                "model": model, "choices": [], "usage": { "prompt_tokens": input,
                "completion_tokens": output, "total_tokens": input + output } });
            events.push(Event::openai(last, false));
        }
        events.push(Event { bytes: Bytes::from_static(b"data: [DONE]\n\n"), content: false });
        events
    }

    fn anthropic_events(&self, model: &str) -> Vec<Event> {
        let start = json!({ "type": "message_start", "message": { "id": self.id, "type": "message",
            "role": "assistant", "model": model, "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": { "input_tokens": self.input_tokens, "output_tokens": 1 } } });
        let mut events = vec![Event::anthropic(start, false)];
        let (block, deltas): (Value, Vec<Value>) = match &self.tool {
            Some(call) => (
                json!({ "type": "tool_use", "id": call.id, "name": call.name, "input": {} }),
                Self::argument_pieces(call)
                    .iter()
                    .map(|p| json!({ "type": "input_json_delta", "partial_json": p }))
                    .collect(),
            ),
            None => (
                json!({ "type": "text", "text": "" }),
                self.pieces.iter().map(|p| json!({ "type": "text_delta", "text": p })).collect(),
            ),
        };
        events.push(Event::anthropic(
            json!({ "type": "content_block_start", "index": 0, "content_block": block }),
            false,
        ));
        events.push(Event::anthropic(json!({ "type": "ping" }), false));
        for delta in deltas {
            events.push(Event::anthropic(
                json!({ "type": "content_block_delta", "index": 0, "delta": delta }),
                true,
            ));
        }
        events.push(Event::anthropic(json!({ "type": "content_block_stop", "index": 0 }), false));
        events.push(Event::anthropic(
            json!({ "type": "message_delta",
                "delta": { "stop_reason": self.finish_reason(Api::Anthropic), "stop_sequence": null },
                "usage": { "output_tokens": self.output_tokens() } }),
            false,
        ));
        events.push(Event::anthropic(json!({ "type": "message_stop" }), false));
        events
    }
}

/// The text of a message's content: a string, or the text parts/blocks of an array.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter(|p| p["type"] == "text" || p["type"] == "input_text")
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

fn last_user_text(messages: &[Value]) -> String {
    messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .map(|m| content_text(&m["content"]))
        .unwrap_or_default()
}

/// The result text if the conversation ends with a tool result.
fn tool_result(api: Api, messages: &[Value]) -> Option<String> {
    let last = messages.last()?;
    match api {
        Api::OpenAi => (last["role"] == "tool").then(|| content_text(&last["content"])),
        Api::Anthropic => {
            let block = last["content"].as_array()?.iter().find(|b| b["type"] == "tool_result")?;
            Some(content_text(&block["content"]))
        }
    }
}

fn word_count(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

fn words_in(messages: &[Value]) -> u64 {
    messages.iter().map(|m| word_count(&content_text(&m["content"]))).sum()
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn models_list() -> Value {
    let ids = ["echo", "words-50", "tool-time", "fault-500", "fault-429-then-ok", "slow-first-byte-500"];
    let data: Vec<Value> = ids
        .iter()
        .map(|id| json!({ "id": id, "object": "model", "created": 0, "owned_by": "gateway-upstream" }))
        .collect();
    json!({ "object": "list", "data": data })
}

fn json_response(status: StatusCode, body: Value) -> Response<Out> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Out::full(body.to_string()))
        .expect("valid response")
}

/// An error in the API's own shape.
fn error(api: Api, status: u16, message: &str) -> Response<Out> {
    let kind = match (api, status) {
        (_, 400) => "invalid_request_error",
        (_, 401) => "authentication_error",
        (_, 403) => "permission_error",
        (_, 404) => "not_found_error",
        (_, 429) => "rate_limit_error",
        (Api::Anthropic, 529) => "overloaded_error",
        (Api::OpenAi, 500..) => "server_error",
        (Api::Anthropic, 500..) => "api_error",
        _ => "invalid_request_error",
    };
    let body = match api {
        Api::OpenAi => json!({ "error": { "message": message, "type": kind, "param": null, "code": null } }),
        Api::Anthropic => json!({ "type": "error", "error": { "type": kind, "message": message } }),
    };
    let mut response = json_response(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY), body);
    if status == 429 || status == 503 {
        response.headers_mut().insert("retry-after", "0".parse().expect("header value"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::{request, sse};

    fn post(up: &Upstream, path: &str, body: Value) -> crate::http1::Reply {
        request(up.port(), "POST", path, &[("content-type", "application/json")], Some(&body.to_string()))
            .expect("the upstream answers")
    }

    #[test]
    fn grammar() {
        let b = Behaviour::parse("slow-first-byte-300+tool-time+fault-429-then-ok").unwrap();
        assert_eq!(b.first_byte_delay, Duration::from_millis(300));
        assert_eq!(b.tool.as_deref(), Some("time"));
        assert_eq!((b.fault, b.fault_then_ok), (Some(429), true));
        assert_eq!(Behaviour::parse("llama3.2").unwrap(), Behaviour::default());
        assert_eq!(Behaviour::parse("stall-after-2").unwrap().cut, Some((2, Cut::Stall)));
        assert!(Behaviour::parse("fault-abc").unwrap_err().contains("fault-abc"));
        assert!(Behaviour::parse("fault-200").is_err());
        assert!(Behaviour::parse("tool-").is_err());
    }

    #[test]
    fn openai_echo_whole_and_streamed() {
        let up = Upstream::start();
        let messages = json!([{ "role": "system", "content": "be brief" },
            { "role": "user", "content": "hello there world" }]);
        let r = post(&up, "/v1/chat/completions", json!({ "model": "echo", "messages": messages }));
        assert_eq!(r.status, 200, "{}", r.body);
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "hello there world");
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert_eq!(v["usage"]["prompt_tokens"], 5);
        assert_eq!(v["usage"]["completion_tokens"], 3);

        let body = json!({ "model": "echo", "messages": messages, "stream": true,
            "stream_options": { "include_usage": true } });
        let r = post(&up, "/v1/chat/completions", body);
        assert_eq!(r.header("content-type"), Some("text/event-stream"));
        let events = sse(&r.body);
        assert_eq!(events.last().unwrap().1, "[DONE]");
        let chunks: Vec<Value> =
            events[..events.len() - 1].iter().map(|(_, d)| serde_json::from_str(d).unwrap()).collect();
        let text: String =
            chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
        assert_eq!(text, "hello there world");
        assert_eq!(chunks[chunks.len() - 2]["choices"][0]["finish_reason"], "stop");
        assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 3);

        let recorded = up.requests_to("/chat/completions");
        assert_eq!(recorded.len(), 2);
        assert_eq!(recorded[0].body["messages"], messages);
        assert_eq!(recorded[0].header("content-type"), Some("application/json"));
    }

    #[test]
    fn anthropic_streamed_events_and_tool_use() {
        let up = Upstream::start();
        let body = json!({ "model": "words-3", "max_tokens": 100, "stream": true,
            "messages": [{ "role": "user", "content": [{ "type": "text", "text": "hi" }] }] });
        let r = post(&up, "/v1/messages", body);
        assert_eq!(r.status, 200);
        let events = sse(&r.body);
        let kinds: Vec<&str> = events.iter().map(|(e, _)| e.as_deref().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "message_start",
                "content_block_start",
                "ping",
                "content_block_delta",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        let data: Vec<Value> = events.iter().map(|(_, d)| serde_json::from_str(d).unwrap()).collect();
        let text: String = data.iter().filter_map(|d| d["delta"]["text"].as_str()).collect();
        assert_eq!(text, "w1 w2 w3");
        assert_eq!(data[7]["delta"]["stop_reason"], "end_turn");

        let ask = json!({ "model": "tool-memory_write", "max_tokens": 100,
            "messages": [{ "role": "user", "content": "{\"key\":\"k\"}" }] });
        let v: Value = serde_json::from_str(&post(&up, "/v1/messages", ask).body).unwrap();
        assert_eq!(v["stop_reason"], "tool_use");
        assert_eq!(v["content"][0]["name"], "memory_write");
        assert_eq!(v["content"][0]["input"], json!({ "key": "k" }));
        let id = v["content"][0]["id"].clone();
        let answer = json!({ "model": "tool-memory_write", "max_tokens": 100, "messages": [
            { "role": "user", "content": "go" },
            { "role": "assistant", "content": v["content"] },
            { "role": "user", "content": [{ "type": "tool_result", "tool_use_id": id, "content": "saved" }] }] });
        let v: Value = serde_json::from_str(&post(&up, "/v1/messages", answer).body).unwrap();
        assert_eq!(v["content"][0]["text"], "tool memory_write returned: saved");
        assert_eq!(v["stop_reason"], "end_turn");
    }

    #[test]
    fn openai_tool_call_streamed() {
        let up = Upstream::start();
        let body = json!({ "model": "tool-time", "stream": true,
            "messages": [{ "role": "user", "content": "what time is it" }] });
        let events = sse(&post(&up, "/v1/chat/completions", body).body);
        let chunks: Vec<Value> =
            events[..events.len() - 1].iter().map(|(_, d)| serde_json::from_str(d).unwrap()).collect();
        let calls: Vec<&Value> =
            chunks.iter().filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0)).collect();
        assert_eq!(calls[0]["function"]["name"], "time");
        let args: String = calls.iter().filter_map(|c| c["function"]["arguments"].as_str()).collect();
        assert_eq!(args, "{}");
        assert_eq!(chunks.last().unwrap()["choices"][0]["finish_reason"], "tool_calls");

        let body = json!({ "model": "tool-time", "messages": [
            { "role": "user", "content": "what time is it" },
            { "role": "assistant", "content": null, "tool_calls": [{ "id": "call_0", "type": "function",
                "function": { "name": "time", "arguments": "{}" } }] },
            { "role": "tool", "tool_call_id": "call_0", "content": "noon" }] });
        let v: Value = serde_json::from_str(&post(&up, "/v1/chat/completions", body).body).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "tool time returned: noon");
    }

    #[test]
    fn faults_auth_and_limits() {
        let up = Upstream::builder().api_key("sk-test").start().unwrap();
        let ask = |model: &str, key: &str| {
            let auth = format!("Bearer {key}");
            let body = json!({ "model": model, "messages": [{ "role": "user", "content": "a b c" }] });
            request(
                up.port(),
                "POST",
                "/v1/chat/completions",
                &[("authorization", &auth)],
                Some(&body.to_string()),
            )
            .unwrap()
        };
        let r = ask("echo", "wrong");
        assert_eq!(r.status, 401);
        assert!(r.body.contains("API key"), "{}", r.body);
        let r = ask("fault-503", "sk-test");
        assert_eq!((r.status, r.header("retry-after")), (503, Some("0")));
        assert_eq!(serde_json::from_str::<Value>(&r.body).unwrap()["error"]["type"], "server_error");
        assert_eq!(ask("fault-429-then-ok", "sk-test").status, 429);
        assert_eq!(ask("fault-429-then-ok", "sk-test").status, 200);
        assert_eq!(ask("fault-x", "sk-test").status, 400);
        let anthropic = request(
            up.port(),
            "POST",
            "/v1/messages",
            &[("x-api-key", "sk-test")],
            Some(&json!({ "model": "fault-529", "messages": [] }).to_string()),
        )
        .unwrap();
        assert_eq!(anthropic.status, 529);
        let v: Value = serde_json::from_str(&anthropic.body).unwrap();
        assert_eq!(
            (v["type"].as_str(), v["error"]["type"].as_str()),
            (Some("error"), Some("overloaded_error"))
        );

        let body = json!({ "model": "words-10", "max_tokens": 4, "messages": [] }).to_string();
        let auth = [("authorization", "Bearer sk-test")];
        let r = request(up.port(), "POST", "/chat/completions", &auth, Some(&body)).unwrap();
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "w1 w2 w3 w4");
        assert_eq!(v["choices"][0]["finish_reason"], "length");
        let models = request(up.port(), "GET", "/v1/models", &[], None).unwrap();
        assert!(models.body.contains("\"echo\""));
    }

    #[test]
    fn stall_holds_the_connection_until_the_client_leaves() {
        use std::io::{Read, Write};
        let up = Upstream::start();
        let body = json!({ "model": "stall-after-1+words-5", "stream": true,
            "messages": [{ "role": "user", "content": "x" }] })
        .to_string();
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", up.port())).unwrap();
        write!(
            conn,
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut got = String::new();
        let mut buf = [0u8; 4096];
        while !got.contains("\"w1\"") {
            let n = conn.read(&mut buf).unwrap();
            assert!(n > 0, "closed early: {got}");
            got.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        assert_eq!((up.open_connections(), up.open_streams()), (1, 1));
        conn.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        assert!(conn.read(&mut buf).is_err(), "nothing more comes after the stall");
        drop(conn);
        crate::wait_for(Duration::from_secs(10), "the stalled stream to end", || {
            (up.open_connections() == 0 && up.open_streams() == 0).then_some(())
        });
    }

    #[test]
    fn drop_and_hangup_abort_the_connection() {
        let up = Upstream::start();
        let body = json!({ "model": "drop-after-2+words-5", "stream": true, "messages": [] }).to_string();
        let r = request(up.port(), "POST", "/v1/chat/completions", &[], Some(&body));
        assert!(r.is_err(), "a dropped stream is an incomplete response: {r:?}");
        let body = json!({ "model": "hangup", "messages": [] }).to_string();
        let r = request(up.port(), "POST", "/v1/chat/completions", &[], Some(&body));
        assert!(r.is_err(), "a hangup has no response: {r:?}");
        let slow = json!({ "model": "slow-first-byte-100", "messages": [] }).to_string();
        let start = std::time::Instant::now();
        assert_eq!(request(up.port(), "POST", "/v1/chat/completions", &[], Some(&slow)).unwrap().status, 200);
        assert!(start.elapsed() >= Duration::from_millis(100));
        up.wait_open_connections_at_most(0, Duration::from_secs(10));
        assert_eq!(up.accepted_connections(), 3);
    }
}
