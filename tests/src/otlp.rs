//! A real OTLP/HTTP receiver for the telemetry tests: tests/python/otlp_receiver.py, built on
//! the official `opentelemetry-proto` definitions from PyPI, decodes what the gateway exports.
//! Its records are read back here as spans and metric names.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::python::{repo, venv_python};

pub struct Receiver {
    child: Child,
    pub port: u16,
    records: PathBuf,
    _dir: tempfile::TempDir,
}

/// One decoded span, with what the tests look at.
#[derive(Debug, Clone)]
pub struct Span {
    pub service: String,
    pub name: String,
    pub kind: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub attributes: Value,
    pub status: Value,
}

impl Span {
    /// An attribute's value, as a string whatever its type.
    pub fn attr(&self, key: &str) -> Option<String> {
        let v = self.attributes.get(key)?;
        Some(v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string()))
    }
}

impl Receiver {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let records = dir.path().join("records.jsonl");
        let mut child = Command::new(venv_python())
            .arg(repo().join("tests/python/otlp_receiver.py"))
            .arg(&records)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tests/python/otlp_receiver.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port =
            line.trim().parse().unwrap_or_else(|_| panic!("otlp_receiver.py printed {line:?}, not its port"));
        Self { child, port, records, _dir: dir }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every request received so far, decoded.
    pub fn records(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.records).unwrap_or_default();
        let records: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        for r in &records {
            assert!(r.get("error").is_none(), "the receiver could not decode an export: {r}");
            assert_eq!(r["content_type"], "application/x-protobuf", "{r}");
        }
        records
    }

    pub fn spans(&self) -> Vec<Span> {
        let mut spans = Vec::new();
        for r in self.records().iter().filter(|r| r["path"] == "/v1/traces") {
            for rs in r["body"]["resourceSpans"].as_array().into_iter().flatten() {
                let service = attributes(&rs["resource"]["attributes"])["service.name"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned();
                for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                    for s in ss["spans"].as_array().into_iter().flatten() {
                        spans.push(Span {
                            service: service.clone(),
                            name: s["name"].as_str().unwrap().to_owned(),
                            kind: s["kind"].as_str().unwrap_or("").to_owned(),
                            trace_id: id(&s["traceId"]),
                            span_id: id(&s["spanId"]),
                            parent_span_id: s.get("parentSpanId").map(id).filter(|p| !p.is_empty()),
                            attributes: attributes(&s["attributes"]),
                            status: s["status"].clone(),
                        });
                    }
                }
            }
        }
        spans
    }

    /// Waits until a span passes `found`, and returns every span then.
    pub fn wait_spans(&self, what: &str, found: impl Fn(&Span) -> bool) -> Vec<Span> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let spans = self.spans();
            if spans.iter().any(&found) {
                return spans;
            }
            assert!(Instant::now() < deadline, "no {what} span reached the receiver; spans: {spans:#?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Names of the metrics received so far.
    pub fn metric_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for r in self.records().iter().filter(|r| r["path"] == "/v1/metrics") {
            for rm in r["body"]["resourceMetrics"].as_array().into_iter().flatten() {
                for sm in rm["scopeMetrics"].as_array().into_iter().flatten() {
                    for m in sm["metrics"].as_array().into_iter().flatten() {
                        let name = m["name"].as_str().unwrap().to_owned();
                        if !names.contains(&name) {
                            names.push(name);
                        }
                    }
                }
            }
        }
        names
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Protobuf JSON writes ids in base64; the W3C headers and our logs use hex.
fn id(v: &Value) -> String {
    use base64::Engine;
    let bytes =
        base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or("")).unwrap_or_default();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// OTLP's `[{key, value: {stringValue|intValue|…}}]` as a flat object.
fn attributes(list: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for kv in list.as_array().into_iter().flatten() {
        let value = kv["value"].as_object().and_then(|o| o.values().next().cloned()).unwrap_or(Value::Null);
        out.insert(kv["key"].as_str().unwrap_or("").to_owned(), value);
    }
    Value::Object(out)
}

/// A collector that takes every OTLP/HTTP export and answers 200 with an empty (valid)
/// response, for the benchmarks' "OTLP on" runs: the gateway pays for building, batching and
/// sending, not for a slow receiver. Counts the requests and bytes it took.
pub struct Sink {
    pub port: u16,
    pub requests: std::sync::Arc<std::sync::atomic::AtomicU64>,
    pub bytes: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Sink {
    pub fn start() -> std::io::Result<Self> {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let (requests, bytes) = (std::sync::Arc::default(), std::sync::Arc::default());
        let (r, b): (
            std::sync::Arc<std::sync::atomic::AtomicU64>,
            std::sync::Arc<std::sync::atomic::AtomicU64>,
        ) = (std::sync::Arc::clone(&requests), std::sync::Arc::clone(&bytes));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (r, b) = (r.clone(), b.clone());
                std::thread::spawn(move || {
                    let mut stream = BufReader::new(stream);
                    loop {
                        let mut length = 0usize;
                        loop {
                            let mut line = String::new();
                            if stream.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            if line == "\r\n" {
                                break;
                            }
                            let lower = line.to_ascii_lowercase();
                            if let Some(v) = lower.strip_prefix("content-length:") {
                                length = v.trim().parse().unwrap_or(0);
                            }
                        }
                        let mut body = vec![0; length];
                        if stream.read_exact(&mut body).is_err() {
                            return;
                        }
                        r.fetch_add(1, Ordering::Relaxed);
                        b.fetch_add(length as u64, Ordering::Relaxed);
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
                        if stream.get_mut().write_all(answer).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Ok(Self { port, requests, bytes })
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Sets the variables that point a gatewayd's export here.
    pub fn point(&self, cmd: &mut Command) {
        cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", self.endpoint());
    }
}
