//! WebSocket RPC calls by method and outcome, and their durations: counted per thread and summed
//! at each scrape. A call writes only to its own thread's counters, so the workers share no
//! cache line for it and take no lock; shared counters and a histogram's lock would pass their
//! lines from one CPU to the other on every call (about a twentieth of a busy gateway's CPU time
//! per `health` request, measured).

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gateway_proto::ws_methods::Method;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use super::metrics::{CallLabels, MethodLabel, BUCKETS, UNKNOWN_METHOD};

/// The rows of a shard: one per method, then one for methods this gateway does not serve.
const ROWS: usize = Method::ALL.len() + 1;

/// Every thread's counts for one gateway.
#[derive(Debug)]
pub struct CallCounts {
    /// Tells this gateway's shards from another's in a thread (tests run several gateways).
    id: usize,
    shards: Mutex<Vec<Arc<Shard>>>,
}

/// One thread's counts.
#[derive(Debug)]
struct Shard {
    rows: Vec<Row>,
}

#[derive(Debug, Default)]
struct Row {
    ok: AtomicU64,
    error: AtomicU64,
    nanos: AtomicU64,
    /// Calls per bucket of [`BUCKETS`] (not cumulative), then those over the last bound.
    buckets: [AtomicU64; BUCKETS.len() + 1],
}

thread_local! {
    /// This thread's shard of each gateway it has counted calls for.
    static SHARDS: RefCell<Vec<(usize, Arc<Shard>)>> = const { RefCell::new(Vec::new()) };
}

/// Adds to a counter only this thread writes: a load and a store, not a read-modify-write
/// (which would lock the bus for nothing). A scrape on another thread reads a recent value.
fn add(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

impl Default for CallCounts {
    fn default() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        Self { id: NEXT.fetch_add(1, Ordering::Relaxed), shards: Mutex::default() }
    }
}

impl CallCounts {
    /// A call to `method` (`None`: one this gateway does not serve) answered after `took`.
    pub fn record(&self, method: Option<Method>, ok: bool, took: Duration) {
        let row = method.map_or(ROWS - 1, |m| m as usize);
        SHARDS.with(|shards| {
            let mut shards = shards.borrow_mut();
            let shard = match shards.iter().find(|(id, _)| *id == self.id) {
                Some((_, shard)) => shard,
                None => {
                    let shard = Arc::new(Shard { rows: (0..ROWS).map(|_| Row::default()).collect() });
                    self.shards.lock().unwrap_or_else(|e| e.into_inner()).push(shard.clone());
                    shards.push((self.id, shard));
                    &shards.last().expect("just pushed").1
                }
            };
            let row = &shard.rows[row];
            add(if ok { &row.ok } else { &row.error }, 1);
            add(&row.nanos, took.as_nanos().min(u128::from(u64::MAX)) as u64);
            let seconds = took.as_secs_f64();
            let bucket = BUCKETS.iter().position(|bound| seconds <= *bound).unwrap_or(BUCKETS.len());
            add(&row.buckets[bucket], 1);
        });
    }

    /// Every thread's counts added up, per row.
    fn totals(&self) -> Vec<Totals> {
        let shards = self.shards.lock().unwrap_or_else(|e| e.into_inner());
        (0..ROWS)
            .map(|i| {
                let mut total = Totals::default();
                for shard in shards.iter() {
                    let row = &shard.rows[i];
                    total.ok += row.ok.load(Ordering::Relaxed);
                    total.error += row.error.load(Ordering::Relaxed);
                    total.nanos += row.nanos.load(Ordering::Relaxed);
                    for (sum, count) in total.buckets.iter_mut().zip(&row.buckets) {
                        *sum += count.load(Ordering::Relaxed);
                    }
                }
                total
            })
            .collect()
    }
}

#[derive(Default)]
struct Totals {
    ok: u64,
    error: u64,
    nanos: u64,
    buckets: [u64; BUCKETS.len() + 1],
}

fn method_name(row: usize) -> &'static str {
    Method::ALL.get(row).map_or(UNKNOWN_METHOD, |m| m.name())
}

/// `gateway_ws_rpc_calls_total{method,outcome}` and `gateway_ws_rpc_duration_seconds{method}`,
/// for each method called at least once.
impl Collector for CallCounts {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let totals = self.totals();
        let called = || totals.iter().enumerate().filter(|(_, t)| t.ok + t.error > 0);
        let mut calls = encoder.encode_descriptor(
            "gateway_ws_rpc_calls",
            "WebSocket RPC calls by method and outcome",
            None,
            MetricType::Counter,
        )?;
        for (row, total) in called() {
            for (outcome, n) in [("ok", total.ok), ("error", total.error)] {
                let labels = CallLabels { method: method_name(row), outcome };
                calls.encode_family(&labels)?.encode_counter::<NoLabelSet, _, u64>(&n, None)?;
            }
        }
        let mut seconds = encoder.encode_descriptor(
            "gateway_ws_rpc_duration",
            "WebSocket RPC time to the response, by method",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for (row, total) in called() {
            // The last bucket's bound is `+Inf` to the encoder.
            let bounds = BUCKETS.iter().copied().chain([f64::MAX]);
            let buckets: Vec<(f64, u64)> = bounds.zip(total.buckets).collect();
            let sum = Duration::from_nanos(total.nanos).as_secs_f64();
            seconds
                .encode_family(&MethodLabel { method: method_name(row) })?
                .encode_histogram::<NoLabelSet>(sum, total.ok + total.error, &buckets, None)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(counts: CallCounts) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(counts));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        out
    }

    #[test]
    fn calls_from_several_threads_add_up_per_method_and_outcome() {
        let counts = Arc::new(CallCounts::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let counts = counts.clone();
                std::thread::spawn(move || {
                    for _ in 0..10 {
                        counts.record(Some(Method::Health), true, Duration::from_micros(300));
                    }
                    counts.record(Some(Method::Health), false, Duration::from_millis(30));
                    counts.record(None, true, Duration::from_secs(200));
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let out = render(Arc::into_inner(counts).unwrap());
        assert!(out.contains("gateway_ws_rpc_calls_total{method=\"health\",outcome=\"ok\"} 40\n"), "{out}");
        assert!(out.contains("gateway_ws_rpc_calls_total{method=\"health\",outcome=\"error\"} 4\n"), "{out}");
        assert!(out.contains("gateway_ws_rpc_calls_total{method=\"unknown\",outcome=\"ok\"} 4\n"), "{out}");
        assert!(!out.contains("method=\"status\""), "a method never called has no series: {out}");
        let health = "gateway_ws_rpc_duration_seconds_bucket{le=";
        assert!(out.contains(&format!("{health}\"0.0005\",method=\"health\"}} 40\n")), "{out}");
        assert!(out.contains(&format!("{health}\"0.05\",method=\"health\"}} 44\n")), "{out}");
        assert!(out.contains(&format!("{health}\"+Inf\",method=\"unknown\"}} 4\n")), "{out}");
        assert!(out.contains(&format!("{health}\"120.0\",method=\"unknown\"}} 0\n")), "{out}");
        assert!(out.contains("gateway_ws_rpc_duration_seconds_count{method=\"health\"} 44\n"), "{out}");
        assert!(out.contains("gateway_ws_rpc_duration_seconds_sum{method=\"health\"} 0.132\n"), "{out}");
    }

    #[test]
    fn two_gateways_in_one_thread_count_apart() {
        let (a, b) = (CallCounts::default(), CallCounts::default());
        a.record(Some(Method::Health), true, Duration::ZERO);
        b.record(Some(Method::Status), true, Duration::ZERO);
        let (a, b) = (render(a), render(b));
        assert!(a.contains("method=\"health\"") && !a.contains("method=\"status\""), "{a}");
        assert!(b.contains("method=\"status\"") && !b.contains("method=\"health\""), "{b}");
    }
}
