//! Prometheus metrics, in the OpenMetrics text format (`prometheus-client`, the Prometheus
//! project's own Rust client: typed label sets, no global registry, no macros). Two kinds:
//! - counted where it happens, on the hot paths, by the doors and the runtime: the families in
//!   [`Metrics`], each an atomic counter or histogram behind a label set whose values are bounded
//!   (route and method names from fixed tables, outcomes, configured provider names, at most
//!   [`MAX_MODELS`] model ids, then `other`); WebSocket calls, the hottest path, are counted
//!   per thread and summed at the scrape ([`CallCounts`]);
//! - read at each scrape from what the core keeps anyway: [`Stats`], the config generation,
//!   connections, and the process's own figures from `/proc`.
//!
//! The HTTP door serves [`render`] at `GET /gateway/metrics`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gateway_proto::time::now_ms;
use gateway_proto::ws_methods::Method;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use opentelemetry::KeyValue;

use super::call_counts::CallCounts;
use super::gateway::{Gateway, Stats};
use super::telemetry::instruments;

/// Distinct (provider, model) pairs with series of their own; later ones count as `other`.
pub const MAX_MODELS: usize = 64;

/// Seconds: 0.5 ms to 2 min, about 2.5x apart (the OTLP histograms use them too).
pub const BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 120.0];

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: &'static str,
    /// `1xx` (WebSocket upgrades), `2xx`, `3xx`, `4xx` or `5xx`.
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CronRunLabels {
    /// `ok`, `error`, `skipped` or `interrupted`.
    pub outcome: &'static str,
    /// `schedule`, `manual` or `missed`.
    pub trigger: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabel {
    pub action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub method: &'static str,
    /// `ok` or `error`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabel {
    pub method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    pub provider: String,
    /// `ok`, `error` or `aborted`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabel {
    pub provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderErrorLabels {
    pub provider: String,
    /// `upstream_unavailable`, `upstream_error`, `timeout` or `provider_config`.
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub provider: String,
    pub model: String,
    /// `in` (prompt) or `out` (completion).
    pub direction: &'static str,
}

/// The method label of calls to a method this gateway does not serve.
pub const UNKNOWN_METHOD: &str = "unknown";

pub struct Metrics {
    registry: Registry,
    /// Upstream requests retried, and failed calls that had retried (the status report's
    /// `runtime_heartbeat.retries_queued` and `retries_exhausted`).
    pub retries_queued: Counter,
    pub retries_exhausted: Counter,
    http_requests: Family<HttpLabels, Counter>,
    http_seconds: Histograms<RouteLabel>,
    ws_handshakes: Family<OutcomeLabel, Counter>,
    /// WebSocket RPC calls and their durations, counted per thread (see [`CallCounts`]).
    ws_calls: Arc<CallCounts>,
    runs_started: Counter,
    runs_ended: Family<RunLabels, Counter>,
    run_seconds: Histograms<ProviderLabel>,
    first_token_seconds: Histograms<ProviderLabel>,
    tokens: Family<TokenLabels, Counter>,
    provider_errors: Family<ProviderErrorLabels, Counter>,
    provider_retries: Family<ProviderLabel, Counter>,
    cron_runs: Family<CronRunLabels, Counter>,
    cron_deliveries: Family<OutcomeLabel, Counter>,
    models: Mutex<HashSet<(String, String)>>,
    dropped_series: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut m = Self {
            registry: Registry::default(),
            retries_queued: Counter::default(),
            retries_exhausted: Counter::default(),
            http_requests: Family::default(),
            http_seconds: Family::new_with_constructor(histogram),
            ws_handshakes: Family::default(),
            ws_calls: Arc::default(),
            runs_started: Counter::default(),
            runs_ended: Family::default(),
            run_seconds: Family::new_with_constructor(histogram),
            first_token_seconds: Family::new_with_constructor(histogram),
            tokens: Family::default(),
            provider_errors: Family::default(),
            provider_retries: Family::default(),
            cron_runs: Family::default(),
            cron_deliveries: Family::default(),
            models: Mutex::new(HashSet::new()),
            dropped_series: Counter::default(),
        };
        let r = &mut m.registry;
        r.register(
            "gateway_http_requests",
            "HTTP requests by route and status class",
            m.http_requests.clone(),
        );
        r.register_with_unit(
            "gateway_http_request_duration",
            "HTTP request time to the response head, by route",
            Unit::Seconds,
            m.http_seconds.clone(),
        );
        r.register(
            "gateway_ws_handshakes",
            "WebSocket connect handshakes by outcome",
            m.ws_handshakes.clone(),
        );
        r.register_collector(Box::new(m.ws_calls.clone()));
        r.register("gateway_runs_started", "Agent runs started", m.runs_started.clone());
        r.register("gateway_runs_ended", "Agent runs ended, by provider and outcome", m.runs_ended.clone());
        r.register_with_unit(
            "gateway_run_duration",
            "Agent run time, start to end, by provider",
            Unit::Seconds,
            m.run_seconds.clone(),
        );
        r.register_with_unit(
            "gateway_run_first_token",
            "Time from a run's start to its first streamed text, by provider",
            Unit::Seconds,
            m.first_token_seconds.clone(),
        );
        r.register("gateway_tokens", "Model tokens by provider, model and direction", m.tokens.clone());
        r.register(
            "gateway_provider_errors",
            "Model calls that failed, by provider and kind (after their retries)",
            m.provider_errors.clone(),
        );
        r.register(
            "gateway_provider_retries",
            "Upstream requests retried (refused connections, 429, 5xx), by provider",
            m.provider_retries.clone(),
        );
        r.register(
            "gateway_cron_runs",
            "Scheduled job runs ended (or skipped), by outcome and trigger",
            m.cron_runs.clone(),
        );
        r.register(
            "gateway_cron_deliveries",
            "Scheduled runs' answers sent to a webhook or a channel, by outcome (delivered, failed)",
            m.cron_deliveries.clone(),
        );
        r.register(
            "gateway_metrics_dropped_series",
            "Model ids counted as `other` because the series cap was reached",
            m.dropped_series.clone(),
        );
        m
    }
}

impl Metrics {
    pub fn http(&self, method: &'static str, route: &'static str, status: u16, took: Duration) {
        if let Some(otel) = instruments::get() {
            let attributes = [
                KeyValue::new("http.request.method", method),
                KeyValue::new("http.route", route),
                KeyValue::new("http.response.status_code", status as i64),
            ];
            otel.http_duration.record(took.as_secs_f64(), &attributes);
        }
        let status = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.http_requests.get_or_create(&HttpLabels { route, status }).inc();
        self.http_seconds.get_or_create(&RouteLabel { route }).observe(took.as_secs_f64());
    }

    pub fn ws_handshake(&self, accepted: bool) {
        let outcome = if accepted { "accepted" } else { "refused" };
        self.ws_handshakes.get_or_create(&OutcomeLabel { outcome }).inc();
        if let Some(otel) = instruments::get() {
            otel.ws_handshakes.add(1, &[KeyValue::new("outcome", outcome)]);
        }
    }

    /// A WebSocket call answered; `None`: a method this gateway does not serve.
    pub fn ws_call(&self, method: Option<Method>, ok: bool, took: Duration) {
        self.ws_calls.record(method, ok, took);
        if let Some(otel) = instruments::get() {
            let attributes = [
                KeyValue::new("rpc.system", "openclaw"),
                KeyValue::new("rpc.method", method.map_or(UNKNOWN_METHOD, Method::name)),
                KeyValue::new("outcome", if ok { "ok" } else { "error" }),
            ];
            otel.rpc_duration.record(took.as_secs_f64(), &attributes);
        }
    }

    pub fn run_started(&self) {
        self.runs_started.inc();
    }

    /// A run's end: `outcome` is `ok`, `error` or `aborted`.
    pub fn run_ended(&self, provider: &str, outcome: &'static str, took: Duration) {
        self.runs_ended.get_or_create(&RunLabels { provider: provider.to_owned(), outcome }).inc();
        self.run_seconds
            .get_or_create(&ProviderLabel { provider: provider.to_owned() })
            .observe(took.as_secs_f64());
        if let Some(otel) = instruments::get() {
            let attributes = [
                KeyValue::new("gen_ai.provider.name", provider.to_owned()),
                KeyValue::new("outcome", outcome),
            ];
            otel.run_duration.record(took.as_secs_f64(), &attributes);
        }
    }

    /// Time from a run's start to its first streamed text.
    pub fn first_token(&self, provider: &str, took: Duration) {
        self.first_token_seconds
            .get_or_create(&ProviderLabel { provider: provider.to_owned() })
            .observe(took.as_secs_f64());
        if let Some(otel) = instruments::get() {
            otel.first_token
                .record(took.as_secs_f64(), &[KeyValue::new("gen_ai.provider.name", provider.to_owned())]);
        }
    }

    pub fn provider_error(&self, provider: &str, kind: &'static str) {
        self.provider_errors
            .get_or_create(&ProviderErrorLabels { provider: provider.to_owned(), kind })
            .inc();
        if let Some(otel) = instruments::get() {
            let attributes = [
                KeyValue::new("gen_ai.provider.name", provider.to_owned()),
                KeyValue::new("error.type", kind),
            ];
            otel.provider_errors.add(1, &attributes);
        }
    }

    pub fn provider_retry(&self, provider: &str) {
        self.retries_queued.inc();
        self.provider_retries.get_or_create(&ProviderLabel { provider: provider.to_owned() }).inc();
        if let Some(otel) = instruments::get() {
            otel.provider_retries.add(1, &[KeyValue::new("gen_ai.provider.name", provider.to_owned())]);
        }
    }

    /// A scheduled run recorded as ended or skipped.
    pub fn cron_run(&self, outcome: &'static str, trigger: &'static str) {
        self.cron_runs.get_or_create(&CronRunLabels { outcome, trigger }).inc();
    }

    /// A scheduled run's answer delivered (`delivered`) or not (`failed`).
    pub fn cron_delivery(&self, outcome: &'static str) {
        self.cron_deliveries.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    /// Tokens of one run; the model id gets its own series while fewer than [`MAX_MODELS`] have one.
    pub fn tokens(&self, provider: &str, model: &str, prompt: u64, completion: u64) {
        let model = {
            let mut seen = self.models.lock().unwrap_or_else(|e| e.into_inner());
            let key = (provider.to_owned(), model.to_owned());
            if seen.contains(&key) || seen.len() < MAX_MODELS {
                seen.insert(key);
                model.to_owned()
            } else {
                self.dropped_series.inc();
                "other".to_owned()
            }
        };
        for (direction, n) in [("in", prompt), ("out", completion)] {
            let labels = TokenLabels { provider: provider.to_owned(), model: model.clone(), direction };
            self.tokens.get_or_create(&labels).inc_by(n);
        }
        if let Some(otel) = instruments::get() {
            for (kind, n) in [("input", prompt), ("output", completion)] {
                let attributes = [
                    KeyValue::new("gen_ai.provider.name", provider.to_owned()),
                    KeyValue::new("gen_ai.request.model", model.clone()),
                    KeyValue::new("gen_ai.token.type", kind),
                ];
                otel.token_usage.record(n, &attributes);
            }
        }
    }
}

/// The whole exposition: the hot-path families, then what is read now.
pub fn render(gw: &Gateway) -> String {
    let mut out = String::with_capacity(16 * 1024);
    // Writing to a String cannot fail.
    let _ = encode_registry(&mut out, &gw.metrics.registry);
    let _ = encode_registry(&mut out, &scrape_time(gw));
    let _ = encode_eof(&mut out);
    out
}

/// The core's own counters, read when asked: (name after `gateway_`, help, value).
pub fn stat_counters(s: &Stats) -> [(&'static str, &'static str, u64); 5] {
    [
        ("auth_failures", "Refused credentials on every door", Stats::get(&s.auth_failures)),
        (
            "rate_limited_requests",
            "HTTP API requests refused by gateway.http.rate_limit",
            Stats::get(&s.rate_limited_requests),
        ),
        ("heartbeat_ticks", "Heartbeat ticks since start", Stats::get(&s.heartbeat_ticks)),
        ("ui_sign_ins", "Control UI sign-ins that opened a browser session", Stats::get(&s.ui_sign_ins)),
        ("ui_sign_in_failures", "Control UI sign-ins refused", Stats::get(&s.ui_sign_in_failures)),
    ]
}

/// Counters with one label: (name after `gateway_`, help, label, [(value, count)]).
pub type Labelled = (&'static str, &'static str, &'static str, Vec<(&'static str, u64)>);

/// `interrupted`: runs marked interrupted at start.
pub fn labelled_counters(s: &Stats, interrupted: u64) -> [Labelled; 2] {
    [
        (
            "reloads",
            "Config reloads by outcome (rejected: the previous config kept serving)",
            "outcome",
            vec![
                ("applied", Stats::get(&s.reloads_applied)),
                ("unchanged", Stats::get(&s.reloads_unchanged)),
                ("rejected", Stats::get(&s.reloads_rejected)),
            ],
        ),
        (
            "heartbeat_repairs",
            "The heartbeat's repairs, by action",
            "action",
            vec![
                ("interrupted_run_marked", interrupted),
                ("stuck_run_stopped", Stats::get(&s.stuck_runs)),
                ("temp_file_removed", Stats::get(&s.temp_files_cleaned)),
                ("expired_session_forgotten", Stats::get(&s.sessions_expired)),
                ("run_pruned", Stats::get(&s.runs_pruned)),
                ("response_pruned", Stats::get(&s.responses_pruned)),
            ],
        ),
    ]
}

/// Gauges: (name after `gateway_`, help, value).
pub fn gauges(gw: &Gateway) -> [(&'static str, &'static str, i64); 4] {
    let s = &gw.stats;
    [
        ("config_generation", "The config generation in effect", gw.active().generation as i64),
        ("http_connections", "HTTP connections open", Stats::get(&s.http_connections) as i64),
        ("ws_connections", "WebSocket connections open", Stats::get(&s.websocket_connections) as i64),
        ("control_connections", "Control socket connections open", Stats::get(&s.control_connections) as i64),
    ]
}

fn scrape_time(gw: &Gateway) -> Registry {
    let mut r = Registry::default();
    let s = &gw.stats;
    for (name, help, value) in stat_counters(s) {
        r.register(format!("gateway_{name}"), help, ConstCounter::new(value));
    }
    for (name, help, label, values) in labelled_counters(s, gw.agents.interrupted_at_start()) {
        let family = Family::<Vec<(&'static str, &'static str)>, Counter>::default();
        for (value, count) in values {
            family.get_or_create(&vec![(label, value)]).inc_by(count);
        }
        r.register(format!("gateway_{name}"), help, family);
    }
    for (name, help, value) in gauges(gw) {
        r.register(format!("gateway_{name}"), help, ConstGauge::new(value));
    }
    let uptime = now_ms().saturating_sub(gw.started_at_ms) as f64 / 1e3;
    r.register_with_unit(
        "gateway_uptime",
        "Time since the daemon started",
        Unit::Seconds,
        ConstGauge::new(uptime),
    );
    process(&mut r, gw.started_at_ms);
    r
}

/// The process's own figures, under the names every Prometheus client library uses.
fn process(r: &mut Registry, started_at_ms: u64) {
    r.register_with_unit(
        "process_start_time",
        "Start time of the process since the Unix epoch",
        Unit::Seconds,
        ConstGauge::new(started_at_ms as f64 / 1e3),
    );
    if let Some(rss) = resident_bytes() {
        r.register_with_unit(
            "process_resident_memory",
            "Resident memory size",
            Unit::Bytes,
            ConstGauge::new(rss),
        );
    }
    if let Some(fds) = open_fds() {
        r.register("process_open_fds", "Open file descriptors", ConstGauge::new(fds));
    }
    if let Some(cpu) = cpu_seconds() {
        r.register_with_unit(
            "process_cpu",
            "User and system CPU time spent",
            Unit::Seconds,
            ConstCounter::new(cpu),
        );
    }
}

/// Resident memory, from /proc/self/status.
pub fn resident_bytes() -> Option<i64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<i64>().ok()? * 1024)
}

pub fn open_fds() -> Option<i64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as i64)
}

/// User and system CPU time: utime and stime, fields 14 and 15 of /proc/self/stat, in USER_HZ
/// (100 on Linux) ticks; counted after the command name, which may hold spaces but ends at the
/// last ')'.
pub fn cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ws_calls_count_by_method_and_outcome() {
        let m = Metrics::default();
        let ms = Duration::from_millis(1);
        m.ws_call(Some(Method::Health), true, ms);
        m.ws_call(Some(Method::Health), true, ms);
        m.ws_call(Some(Method::Health), false, ms);
        m.ws_call(None, false, ms);
        let mut out = String::new();
        encode_registry(&mut out, &m.registry).unwrap();
        for line in [
            r#"gateway_ws_rpc_calls_total{method="health",outcome="ok"} 2"#,
            r#"gateway_ws_rpc_calls_total{method="health",outcome="error"} 1"#,
            r#"gateway_ws_rpc_calls_total{method="unknown",outcome="error"} 1"#,
            r#"gateway_ws_rpc_duration_seconds_count{method="health"} 3"#,
        ] {
            assert!(out.contains(line), "{line} missing from\n{out}");
        }
    }

    #[test]
    fn model_ids_past_the_cap_count_as_other_and_as_dropped() {
        let m = Metrics::default();
        for i in 0..MAX_MODELS + 3 {
            m.tokens("up", &format!("model-{i}"), 1, 2);
        }
        m.tokens("up", "model-0", 1, 1);
        let mut out = String::new();
        encode_registry(&mut out, &m.registry).unwrap();
        assert!(out.contains("gateway_metrics_dropped_series_total 3"), "{out}");
        assert!(
            out.contains(r#"gateway_tokens_total{provider="up",model="other",direction="out"} 6"#),
            "{out}"
        );
        assert!(
            out.contains(r#"gateway_tokens_total{provider="up",model="model-0",direction="in"} 2"#),
            "{out}"
        );
    }
}
