//! The metrics exported over OTLP: the same events the Prometheus families count (the
//! recording methods of [`crate::core::metrics::Metrics`] feed both), under the OpenTelemetry
//! semantic conventions' names where one exists (`http.server.request.duration`,
//! `gen_ai.client.token.usage`, ...), and the core's counters and gauges read at each export.

use std::sync::{Arc, OnceLock, Weak};

use opentelemetry::metrics::{Counter, Histogram, Meter};
use opentelemetry::KeyValue;

use crate::core::gateway::Gateway;
use crate::core::metrics;

/// Tokens: the GenAI conventions' advised boundaries.
const TOKENS: [f64; 14] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];

pub struct Instruments {
    pub http_duration: Histogram<f64>,
    pub rpc_duration: Histogram<f64>,
    pub ws_handshakes: Counter<u64>,
    pub run_duration: Histogram<f64>,
    pub first_token: Histogram<f64>,
    pub token_usage: Histogram<u64>,
    pub provider_errors: Counter<u64>,
    pub provider_retries: Counter<u64>,
}

static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();
static METER: OnceLock<Meter> = OnceLock::new();

/// The instruments, when metrics are exported.
pub fn get() -> Option<&'static Instruments> {
    INSTRUMENTS.get()
}

pub(super) fn install(meter: &Meter) {
    let seconds = |name: &'static str, description: &'static str| {
        meter
            .f64_histogram(name)
            .with_unit("s")
            .with_description(description)
            .with_boundaries(metrics::BUCKETS.to_vec())
            .build()
    };
    let instruments = Instruments {
        http_duration: seconds("http.server.request.duration", "HTTP request time to the response head"),
        rpc_duration: seconds("rpc.server.call.duration", "WebSocket RPC time to the response"),
        ws_handshakes: meter
            .u64_counter("gateway.ws.handshakes")
            .with_description("WebSocket connect handshakes by outcome")
            .build(),
        run_duration: seconds("gateway.run.duration", "Agent run time, start to end"),
        first_token: seconds(
            "gen_ai.server.time_to_first_token",
            "Time from a run's start to its first streamed text",
        ),
        token_usage: meter
            .u64_histogram("gen_ai.client.token.usage")
            .with_unit("{token}")
            .with_description("Model tokens per run, by provider, model and type")
            .with_boundaries(TOKENS.to_vec())
            .build(),
        provider_errors: meter
            .u64_counter("gateway.provider.errors")
            .with_description("Model calls that failed, by provider and kind (after their retries)")
            .build(),
        provider_retries: meter
            .u64_counter("gateway.provider.retries")
            .with_description("Upstream requests retried, by provider")
            .build(),
    };
    let _ = INSTRUMENTS.set(instruments);
    let _ = METER.set(meter.clone());
}

/// Registers the readings of `gw` (connections, reloads, repairs, process figures) as
/// observable instruments, read at each export. Does nothing when metrics are not exported.
pub fn observe(gw: &Arc<Gateway>) {
    let Some(meter) = METER.get() else {
        return;
    };
    let weak: Weak<Gateway> = Arc::downgrade(gw);
    for (name, description, _) in metrics::stat_counters(&gw.stats) {
        let gw = weak.clone();
        meter
            .u64_observable_counter(format!("gateway.{name}"))
            .with_description(description)
            .with_callback(move |o| {
                if let Some(gw) = gw.upgrade() {
                    if let Some((_, _, v)) =
                        metrics::stat_counters(&gw.stats).into_iter().find(|(n, _, _)| *n == name)
                    {
                        o.observe(v, &[]);
                    }
                }
            })
            .build();
    }
    for (name, description, label, _) in
        metrics::labelled_counters(&gw.stats, gw.agents.interrupted_at_start())
    {
        let gw = weak.clone();
        meter
            .u64_observable_counter(format!("gateway.{name}"))
            .with_description(description)
            .with_callback(move |o| {
                let Some(gw) = gw.upgrade() else { return };
                if let Some((_, _, _, values)) =
                    metrics::labelled_counters(&gw.stats, gw.agents.interrupted_at_start())
                        .into_iter()
                        .find(|(n, ..)| *n == name)
                {
                    for (value, count) in values {
                        o.observe(count, &[KeyValue::new(label, value)]);
                    }
                }
            })
            .build();
    }
    for (name, description, _) in metrics::gauges(gw) {
        let gw = weak.clone();
        meter
            .i64_observable_gauge(format!("gateway.{name}"))
            .with_description(description)
            .with_callback(move |o| {
                let Some(gw) = gw.upgrade() else { return };
                if let Some((_, _, v)) = metrics::gauges(&gw).into_iter().find(|(n, _, _)| *n == name) {
                    o.observe(v, &[]);
                }
            })
            .build();
    }
    meter
        .i64_observable_gauge("process.memory.usage")
        .with_unit("By")
        .with_description("Resident memory size")
        .with_callback(|o| {
            if let Some(v) = metrics::resident_bytes() {
                o.observe(v, &[]);
            }
        })
        .build();
    meter
        .f64_observable_counter("process.cpu.time")
        .with_unit("s")
        .with_description("User and system CPU time spent")
        .with_callback(|o| {
            if let Some(v) = metrics::cpu_seconds() {
                o.observe(v, &[]);
            }
        })
        .build();
    meter
        .i64_observable_gauge("process.unix.file_descriptor.count")
        .with_description("Open file descriptors")
        .with_callback(|o| {
            if let Some(v) = metrics::open_fds() {
                o.observe(v, &[]);
            }
        })
        .build();
}
