//! Counters and latency histograms the HTTP side keeps, and `GET /metrics` in the Prometheus
//! text format (written by hand: a few lines of formatting need no client library). The
//! engine's own gauges (queue, running, batch, KV blocks, token counters) are read from its
//! `EngineStats` at scrape time rather than copied here.
//!
//! Beside herd's own `herd_*` names, the page carries the gauges a Gateway API Inference
//! Extension endpoint picker reads from each pod, under the vLLM names it reads by default
//! (`vllm:num_requests_waiting`, `vllm:num_requests_running`, `vllm:kv_cache_usage_perc`,
//! `vllm:cache_config_info`), so a gateway routes between herd replicas as it does between
//! vLLM ones (deploy/README.md). They are the same numbers as the herd_* gauges, not new ones.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use herd_engine::kv_cache::BLOCK_SIZE;
use herd_engine::runner::EngineHandle;

/// How a chat or completion request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every choice finished.
    Ok,
    /// Refused as malformed or out of range (4xx other than 429).
    Invalid,
    /// Refused for capacity: queue full (429), loading, failed or shutting down (503).
    Rejected,
    /// Ran past the server's per-request timeout.
    Timeout,
    /// The client went away before the end.
    Cancelled,
    /// The engine failed it.
    Error,
}

impl Outcome {
    const ALL: [Outcome; 6] = [Outcome::Ok, Outcome::Invalid, Outcome::Rejected, Outcome::Timeout, Outcome::Cancelled, Outcome::Error];

    fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Invalid => "invalid",
            Outcome::Rejected => "rejected",
            Outcome::Timeout => "timeout",
            Outcome::Cancelled => "cancelled",
            Outcome::Error => "error",
        }
    }
}

/// Upper bounds (seconds) of the latency buckets: from one fast decode step to a long queue.
const LATENCY_BUCKETS: [f64; 14] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

/// A Prometheus histogram over `LATENCY_BUCKETS`, lock-free.
#[derive(Default)]
struct Histogram {
    /// Observations per bucket (not cumulative); the last slot is above every bound.
    counts: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let idx = LATENCY_BUCKETS.iter().position(|&b| secs <= b).unwrap_or(LATENCY_BUCKETS.len());
        self.counts[idx].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            match LATENCY_BUCKETS.get(i) {
                Some(bound) => _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}"),
                None => _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}"),
            }
        }
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {cumulative}");
    }
}

#[derive(Default)]
pub struct Metrics {
    outcomes: [AtomicU64; Outcome::ALL.len()],
    unauthorized: AtomicU64,
    ttft: Histogram,
    itl: Histogram,
}

impl Metrics {
    pub fn record(&self, outcome: Outcome) {
        self.outcomes[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_unauthorized(&self) {
        self.unauthorized.fetch_add(1, Ordering::Relaxed);
    }

    /// From the request's arrival to a choice's first token.
    pub fn observe_ttft(&self, d: Duration) {
        self.ttft.observe(d);
    }

    /// Between two consecutive tokens of one choice.
    pub fn observe_itl(&self, d: Duration) {
        self.itl.observe(d);
    }

    /// The whole `/metrics` page; the engine's gauges only once it is running.
    pub fn render(&self, engine: Option<&EngineHandle>, ready: bool) -> String {
        let mut out = String::with_capacity(4096);
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        };
        metric("herd_ready", "gauge", "1 when the model is loaded and the engine runs.", u64::from(ready));
        metric("herd_unauthorized_total", "counter", "Requests refused for a missing or wrong API key.", self.unauthorized.load(Ordering::Relaxed));
        if let Some(engine) = engine {
            let s = engine.stats();
            let gauge = |a: &std::sync::atomic::AtomicUsize| a.load(Ordering::Relaxed) as u64;
            let counter = |a: &AtomicU64| a.load(Ordering::Relaxed);
            // Each gauge is read once: the vLLM-named copies below must agree with these.
            let (waiting, running) = (gauge(&s.waiting), gauge(&s.running));
            let (in_use, total) = (gauge(&s.kv_blocks_in_use), gauge(&s.kv_blocks_total));
            metric("herd_queue_depth", "gauge", "Requests waiting for a sequence slot.", waiting);
            metric("herd_running_sequences", "gauge", "Sequences the engine is working on.", running);
            metric("herd_batch_tokens", "gauge", "Tokens computed in the engine's last step.", gauge(&s.last_batch_tokens));
            metric("herd_kv_blocks_in_use", "gauge", "KV cache blocks held by sequences.", in_use);
            metric("herd_kv_blocks_total", "gauge", "KV cache blocks in all.", total);
            metric("herd_prompt_tokens_total", "counter", "Prompt tokens computed.", counter(&s.prompt_tokens));
            metric("herd_prompt_tokens_cached_total", "counter", "Prompt tokens reused from the prefix cache.", counter(&s.cached_prompt_tokens));
            metric("herd_generated_tokens_total", "counter", "Tokens generated.", counter(&s.generated_tokens));
            metric("herd_engine_steps_total", "counter", "Batched forward passes.", counter(&s.steps));
            metric("herd_preemptions_total", "counter", "Sequences preempted for lack of KV blocks.", counter(&s.preemptions));
            render_gateway_gauges(&mut out, waiting, running, in_use, total);
        }
        let _ = writeln!(out, "# HELP herd_requests_total Chat and completion requests, by how they ended.\n# TYPE herd_requests_total counter");
        for outcome in Outcome::ALL {
            let _ = writeln!(out, "herd_requests_total{{outcome=\"{}\"}} {}", outcome.label(), self.outcomes[outcome as usize].load(Ordering::Relaxed));
        }
        self.ttft.render(&mut out, "herd_time_to_first_token_seconds", "From a request's arrival to a choice's first token.");
        self.itl.render(&mut out, "herd_inter_token_latency_seconds", "Between consecutive tokens of a choice.");
        out
    }
}

/// The endpoint picker's model-server protocol, in vLLM's names: queue depth, running requests,
/// the fraction of KV blocks in use (0..1), and the cache's shape as labels of a constant 1
/// (`block_size` in tokens, the prefix cache's block too; `num_gpu_blocks`, whatever the device).
fn render_gateway_gauges(out: &mut String, waiting: u64, running: u64, blocks_in_use: u64, blocks_total: u64) {
    let usage = if blocks_total == 0 { 0.0 } else { (blocks_in_use as f64 / blocks_total as f64).min(1.0) };
    let mut gauge = |name: &str, help: &str, value: &dyn std::fmt::Display| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
    };
    gauge("vllm:num_requests_waiting", "Requests waiting for a sequence slot (herd_queue_depth).", &waiting);
    gauge("vllm:num_requests_running", "Sequences the engine is working on (herd_running_sequences).", &running);
    gauge("vllm:kv_cache_usage_perc", "Fraction of KV cache blocks in use, 0 to 1.", &usage);
    let _ = writeln!(
        out,
        "# HELP vllm:cache_config_info KV cache shape: tokens per block and blocks in all.\n# TYPE vllm:cache_config_info gauge\nvllm:cache_config_info{{block_size=\"{BLOCK_SIZE}\",num_gpu_blocks=\"{blocks_total}\"}} 1"
    );
}

/// Records a request's outcome exactly once: the one set with `finish`, or `Cancelled` when it
/// is dropped unfinished (the client went away and the handler or stream was dropped).
pub struct Tracker {
    metrics: Arc<Metrics>,
    done: bool,
}

impl Tracker {
    pub fn new(metrics: Arc<Metrics>) -> Tracker {
        Tracker { metrics, done: false }
    }

    /// A tracker that takes over recording (for a stream that outlives its handler); this
    /// one will record nothing.
    pub fn hand_over(&mut self) -> Tracker {
        let done = std::mem::replace(&mut self.done, true);
        Tracker { metrics: Arc::clone(&self.metrics), done }
    }

    pub fn finish(&mut self, outcome: Outcome) {
        if !self.done {
            self.done = true;
            self.metrics.record(outcome);
        }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.finish(Outcome::Cancelled);
    }
}
