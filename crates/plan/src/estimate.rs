//! The arithmetic of `herd plan`: from a model, a device and a workload to memory, speeds,
//! replicas and training cost. Each figure is computed once, here, and `Plan::explain` states
//! the formula beside the value it gave.
//!
//! The model of a device is the roofline: a step takes the longer of reading its bytes at the
//! memory bandwidth and doing its FLOPs at peak × MFU. Decoding a few sequences is bound by
//! the bytes (all weights per step, shared by the batch), prompts and large batches by FLOPs.
//! Not modelled: communication between the GPUs of a replica (tensor-parallel all-reduces),
//! queueing, and speculative decoding.

use serde_json::{json, Value};

use crate::hardware::Hardware;
use crate::model::{Format, Model};
use crate::PlanError;

/// Everything `herd plan` is asked.
#[derive(Clone, Debug)]
pub struct Inputs {
    pub model: Model,
    /// KV cache format name and its bytes per value.
    pub kv_format: String,
    pub kv_bytes_per_value: f64,
    pub hardware: Hardware,
    /// GPUs per replica (`--gpus N`); chosen to fit when `None`.
    pub gpus_per_replica: Option<usize>,
    /// GPUs in the whole fleet (`--fleet N`).
    pub fleet_gpus: Option<u64>,
    /// Context each sequence may reach (positions the KV cache holds per sequence).
    pub ctx: usize,
    /// Concurrent users (sequences decoding at once) the workload has.
    pub users: Option<u64>,
    pub prompt_len: usize,
    pub output_len: usize,
    /// A time-per-output-token target: batches stay small enough to meet it.
    pub tpot_ms: Option<f64>,
    pub train_tokens: Option<f64>,
    pub mfu: Option<f64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Training {
    pub tokens: f64,
    /// The N of 6ND: parameters a token uses (active ones for a mixture of experts).
    pub params: u64,
    pub flops: f64,
    pub gpu_hours: f64,
    pub n_gpus: u64,
    pub days: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Fleet {
    pub gpus: u64,
    pub replicas: u64,
    /// Sequences decoding at once across the fleet.
    pub concurrent_users: u64,
    pub requests_per_s: f64,
    pub decode_tokens_per_s: f64,
}

/// Every figure `herd plan` reports.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub model: String,
    pub format: String,
    pub kv_format: String,
    pub hardware: String,
    pub params_total: u64,
    pub params_active: u64,
    pub weights_bytes: f64,
    pub kv_bytes_per_token: f64,
    pub kv_bytes_per_sequence: f64,
    pub gpus_per_replica: usize,
    pub replica_memory_bytes: f64,
    pub max_sequences: u64,
    pub mfu: f64,
    /// Batch size at which a decoding step turns from bandwidth- to compute-bound.
    pub ridge_batch: f64,
    /// One sequence decoding alone (what `herd bench`'s tg measures).
    pub decode_tokens_per_s: f64,
    /// Sequences decoding at once on each replica.
    pub batch: u64,
    pub step_s: f64,
    pub decode_tokens_per_s_per_user: f64,
    pub decode_tokens_per_s_per_replica: f64,
    /// A prompt of `prompt_len` on an idle replica (what `herd bench`'s pp measures).
    pub prefill_tokens_per_s: f64,
    pub ttft_s: f64,
    pub request_latency_s: f64,
    pub latency_met: bool,
    pub requests_per_s_per_replica: f64,
    pub replicas: u64,
    pub fleet: Option<Fleet>,
    pub training: Option<Training>,
    pub explain: Vec<String>,
    pub probe: Option<Value>,
}

/// Replica sizes tried when `--gpus` is not given: one node's tensor-parallel degrees, then
/// whole nodes of 8 in a pipeline.
const REPLICA_SIZES: [usize; 7] = [1, 2, 4, 8, 16, 32, 64];

/// What one replica of `g` devices does for `inputs`.
struct Replica<'a> {
    i: &'a Inputs,
    g: usize,
    mfu: f64,
}

impl Replica<'_> {
    fn bandwidth(&self) -> f64 {
        self.g as f64 * self.i.hardware.bandwidth * self.i.hardware.bandwidth_eff
    }

    fn flops(&self) -> f64 {
        self.g as f64 * self.i.hardware.peak_flops(self.i.model.format.fp8_compute()) * self.mfu
    }

    fn memory(&self) -> f64 {
        self.g as f64 * self.i.hardware.mem_bytes * self.i.hardware.mem_usable
    }

    /// The fraction of experts a batch of `n_tokens` routes to (each token picks `n_used` of
    /// `n_experts`, independently): 1 - (1 - k/E)^n.
    fn frac_experts(&self, n_tokens: f64) -> f64 {
        self.i.model.shape.experts.map_or(1.0, |e| 1.0 - (1.0 - e.n_used as f64 / e.n_experts as f64).powf(n_tokens))
    }

    /// Average context a decoding token attends over.
    fn decode_ctx(&self) -> f64 {
        self.i.prompt_len as f64 + self.i.output_len as f64 / 2.0
    }

    fn kv_per_token(&self) -> f64 {
        let s = &self.i.model.shape;
        2.0 * (s.n_layers * s.n_kv_heads * s.head_dim) as f64 * self.i.kv_bytes_per_value
    }

    fn overhead(&self) -> f64 {
        self.i.model.shape.n_layers as f64 * self.i.hardware.step_overhead_per_layer
    }

    /// Seconds of one decoding step of `b` sequences: the longer of reading the weights (once
    /// for the batch) and every sequence's KV, and the batch's FLOPs; plus the fixed overhead.
    fn step(&self, b: f64) -> f64 {
        let s = &self.i.model.shape;
        let c = self.decode_ctx();
        let bytes = self.i.model.sizes.read_per_step(s.tied, self.frac_experts(b)) + b * c * self.kv_per_token();
        let flops = b * (2.0 * s.matmul_params(true) as f64 + s.attn_flops(c));
        (bytes / self.bandwidth()).max(flops / self.flops()) + self.overhead()
    }

    /// FLOPs of a prompt of `p` tokens: every token through the layers, causal attention over
    /// the tokens before it, and the head for the last one only.
    fn prefill_flops(&self, p: f64) -> f64 {
        let s = &self.i.model.shape;
        2.0 * s.matmul_params(false) as f64 * p + 2.0 * s.embedding_params() as f64 + s.attn_flops(p * (p - 1.0) / 2.0)
    }

    /// Seconds to process a prompt of `p` tokens on an idle replica.
    fn prefill(&self, p: f64) -> f64 {
        let s = &self.i.model.shape;
        let bytes = self.i.model.sizes.read_per_step(s.tied, self.frac_experts(p));
        (bytes / self.bandwidth()).max(self.prefill_flops(p) / self.flops()) + self.overhead()
    }
}

fn gb(bytes: f64) -> String {
    format!("{:.1} GB", bytes / 1e9)
}

/// Full-context sequences a replica chosen by `herd plan` holds at least (where any size
/// does): below the ridge a larger batch costs almost nothing per step, so a replica that
/// holds its weights and little else wastes its bandwidth.
const MIN_BATCH: f64 = 16.0;

/// Smallest replica of this hardware that holds the weights and `n_seqs` full-context
/// sequences.
fn smallest_fit(model: &Model, hw: &Hardware, kv_per_seq: f64, n_seqs: f64) -> Option<usize> {
    let sizes: &[usize] = if hw.name == "cpu" { &[1] } else { &REPLICA_SIZES };
    sizes.iter().copied().find(|&g| g as f64 * hw.mem_bytes * hw.mem_usable >= model.sizes.total + n_seqs * kv_per_seq)
}

/// What would hold a model that does not fit: more devices, a smaller format, other hardware.
fn what_would_fit(i: &Inputs, kv_per_seq: f64) -> String {
    let mut options = Vec::new();
    let hw = &i.hardware;
    if hw.name != "cpu" {
        if let Some(g) = smallest_fit(&i.model, hw, kv_per_seq, 1.0) {
            options.push(format!("{g} × {} (--gpus {g}x{})", hw.name, hw.name));
        }
    }
    let current = i.model.format.bytes_per_weight();
    for name in ["fp8", "q8_0", "q4_k"] {
        let f = Format::parse(name).expect("a known format");
        if f.bytes_per_weight() >= current {
            continue;
        }
        let smaller = i.model.in_format(f);
        match smallest_fit(&smaller, hw, kv_per_seq, 1.0) {
            Some(_) if hw.name == "cpu" => options.push(format!("--format {name} ({})", gb(smaller.sizes.total))),
            Some(g) => options.push(format!("--format {name} on {g} × {}", hw.name)),
            None => {}
        }
    }
    if hw.name == "cpu" {
        for gpu in crate::hardware::catalogue() {
            if let Some(g) = smallest_fit(&i.model, &gpu, kv_per_seq, 1.0) {
                options.push(format!("--gpus {g}x{}", gpu.name));
                break;
            }
        }
    }
    if options.is_empty() {
        "nothing in the catalogue holds it in 64 devices; try a smaller --ctx or format".into()
    } else {
        format!("it would fit with {}", options.join(", or "))
    }
}

/// Plans `inputs`, or says why it cannot (the model does not fit, a nonsense value).
pub fn plan(i: &Inputs) -> Result<Plan, PlanError> {
    let bad = |m: String| Err(PlanError::Input(m));
    let mfu = i.mfu.unwrap_or(i.hardware.default_mfu);
    if !(mfu > 0.0 && mfu <= 1.0) {
        return bad(format!("--mfu is {mfu}: it must be in (0, 1]"));
    }
    if let Some(t) = i.tpot_ms.filter(|t| !(*t > 0.0 && t.is_finite())) {
        return bad(format!("--tpot-ms is {t}: it must be a positive number of milliseconds"));
    }
    if i.prompt_len + i.output_len > i.ctx {
        return bad(format!("--prompt-len {} + --output-len {} exceed --ctx {}", i.prompt_len, i.output_len, i.ctx));
    }
    if i.hardware.name == "cpu" && i.gpus_per_replica.is_some_and(|g| g > 1) {
        return bad("cpu is this one machine: a replica of several is not something herd plan can measure".into());
    }
    let s = &i.model.shape;
    let kv_per_token = 2.0 * (s.n_layers * s.n_kv_heads * s.head_dim) as f64 * i.kv_bytes_per_value;
    let kv_per_seq = kv_per_token * i.ctx as f64;
    let what =
        || format!("{} in {} ({} of weights, {} of KV cache for one {}-token sequence)", i.model.label(), i.model.format.name(), gb(i.model.sizes.total), gb(kv_per_seq), i.ctx);
    let g = match i.gpus_per_replica {
        Some(g) => {
            if (g as f64) * i.hardware.mem_bytes * i.hardware.mem_usable < i.model.sizes.total + kv_per_seq {
                let usable = g as f64 * i.hardware.mem_bytes * i.hardware.mem_usable;
                return Err(PlanError::DoesNotFit(format!("{} does not fit on {g} × {} ({} usable): {}", what(), i.hardware.name, gb(usable), what_would_fit(i, kv_per_seq))));
            }
            g
        }
        None => match smallest_fit(&i.model, &i.hardware, kv_per_seq, MIN_BATCH).or_else(|| smallest_fit(&i.model, &i.hardware, kv_per_seq, 1.0)) {
            Some(g) => g,
            None => {
                let most = if i.hardware.name == "cpu" { "this machine's memory".to_string() } else { format!("a replica of up to 64 × {}", i.hardware.name) };
                return Err(PlanError::DoesNotFit(format!("{} does not fit in {most}: {}", what(), what_would_fit(i, kv_per_seq))));
            }
        },
    };
    let r = Replica { i, g, mfu };
    let max_sequences = ((r.memory() - i.model.sizes.total) / kv_per_seq).floor() as u64;

    // The largest batch that meets the latency target (step time grows with the batch).
    let latency_ok = |b: u64| i.tpot_ms.is_none_or(|t| r.step(b as f64) * 1e3 <= t);
    let latency_met = latency_ok(1);
    let batch_cap = if !latency_met {
        1
    } else {
        let (mut lo, mut hi) = (1u64, max_sequences.max(1));
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if latency_ok(mid) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        lo
    };
    let users = i.users.unwrap_or(1);
    let replicas = users.div_ceil(batch_cap);
    let batch = users.div_ceil(replicas);

    let p = i.prompt_len as f64;
    let step = r.step(batch as f64);
    let ttft = r.prefill(p);
    // A busy replica folds prompts into decoding steps: a request costs its prompt's FLOPs
    // and its share of `output_len` steps.
    let replica_rps = |b: u64| 1.0 / (r.prefill_flops(p) / r.flops() + i.output_len as f64 * r.step(b as f64) / b as f64);
    let flops_per_token = 2.0 * s.matmul_params(true) as f64 + s.attn_flops(r.decode_ctx());
    let bytes_one = i.model.sizes.read_per_step(s.tied, r.frac_experts(1.0));
    let ridge = (bytes_one / r.bandwidth()) / (flops_per_token / r.flops());

    let fleet = i.fleet_gpus.map(|gpus| {
        let replicas = gpus / g as u64;
        // A fleet serves as many users as it holds within the latency target, unless the
        // workload names fewer.
        let b = match i.users {
            Some(u) if replicas > 0 => u.div_ceil(replicas).min(batch_cap).max(1),
            _ => batch_cap,
        };
        Fleet { gpus, replicas, concurrent_users: replicas * b, requests_per_s: replicas as f64 * replica_rps(b), decode_tokens_per_s: (replicas * b) as f64 / r.step(b as f64) }
    });
    if let Some(f) = &fleet {
        if f.replicas == 0 {
            return bad(format!("--fleet of {} × {} is smaller than one replica ({g} × {})", f.gpus, i.hardware.name, i.hardware.name));
        }
    }
    let training = i.train_tokens.map(|tokens| {
        let params = s.params_active();
        let flops = 6.0 * params as f64 * tokens;
        // Training runs in BF16 whatever format the model is served in.
        let gpu_hours = flops / (i.hardware.bf16_flops * mfu) / 3600.0;
        let n_gpus = i.fleet_gpus.or(i.gpus_per_replica.map(|g| g as u64)).unwrap_or(g as u64);
        Training { tokens, params, flops, gpu_hours, n_gpus, days: gpu_hours / n_gpus as f64 / 24.0 }
    });

    let mut plan = Plan {
        model: i.model.label(),
        format: i.model.format.name(),
        kv_format: i.kv_format.clone(),
        hardware: i.hardware.label.clone(),
        params_total: s.params_total(),
        params_active: s.params_active(),
        weights_bytes: i.model.sizes.total,
        kv_bytes_per_token: kv_per_token,
        kv_bytes_per_sequence: kv_per_seq,
        gpus_per_replica: g,
        replica_memory_bytes: r.memory(),
        max_sequences,
        mfu,
        ridge_batch: ridge,
        decode_tokens_per_s: 1.0 / r.step(1.0),
        batch,
        step_s: step,
        decode_tokens_per_s_per_user: 1.0 / step,
        decode_tokens_per_s_per_replica: batch as f64 / step,
        prefill_tokens_per_s: p / ttft,
        ttft_s: ttft,
        request_latency_s: ttft + i.output_len as f64 * step,
        latency_met,
        requests_per_s_per_replica: replica_rps(batch),
        replicas,
        fleet,
        training,
        explain: Vec::new(),
        probe: i.hardware.probe.map(|p| {
            json!({
                "threads": p.n_threads, "read_bandwidth_bytes_per_s": p.read_bandwidth, "decode_bandwidth_bytes_per_s": p.decode_bandwidth,
                "prompt_flops_per_s": p.prompt_flops, "call_overhead_s": p.call_overhead, "probe_type": p.dtype.name(), "probe_s": p.probe_seconds,
            })
        }),
    };
    plan.explain = explain(i, &r, &plan);
    Ok(plan)
}

/// The formula behind each figure, with the numbers that went into it.
fn explain(i: &Inputs, r: &Replica<'_>, p: &Plan) -> Vec<String> {
    let s = &i.model.shape;
    let hw = &i.hardware;
    let mut e = vec![
        format!("weights_bytes = params × bytes/weight ({}: {:.4}) = {} (a file: the sum of its tensors' bytes)", i.model.format.name(), i.model.format.bytes_per_weight(), gb(p.weights_bytes)),
        format!("kv_bytes_per_token = 2 (K and V) × layers {} × kv_heads {} × head_dim {} × {} bytes ({}) = {:.0}", s.n_layers, s.n_kv_heads, s.head_dim, i.kv_bytes_per_value, i.kv_format, p.kv_bytes_per_token),
        format!("kv_bytes_per_sequence = kv_bytes_per_token × ctx {} = {}", i.ctx, gb(p.kv_bytes_per_sequence)),
        format!("gpus_per_replica = --gpus, else the fewest devices (1, 2, 4, 8, then nodes of 8) with memory × {} ≥ weights + {MIN_BATCH} sequences' KV (or one, where nothing holds 16) = {}", hw.mem_usable, p.gpus_per_replica),
        format!("max_sequences = floor((gpus × memory × {} − weights) / kv_bytes_per_sequence) = floor(({} − {}) / {}) = {}", hw.mem_usable, gb(p.replica_memory_bytes), gb(p.weights_bytes), gb(p.kv_bytes_per_sequence), p.max_sequences),
        format!(
            "bandwidth = gpus × {:.0} GB/s × {} efficiency = {:.0} GB/s; compute = gpus × peak {:.1} TFLOP/s ({}) × MFU {} = {:.1} TFLOP/s",
            hw.bandwidth / 1e9,
            hw.bandwidth_eff,
            r.bandwidth() / 1e9,
            hw.peak_flops(i.model.format.fp8_compute()) / 1e12,
            if i.model.format.fp8_compute() && hw.fp8_flops.is_some() { "fp8" } else { "bf16" },
            p.mfu,
            r.flops() / 1e12
        ),
        format!(
            "decode step(b) = max((weights read + b × ctx_avg × kv_bytes_per_token) / bandwidth, b × (2 × matmul params {:.3}B + 4 × layers × heads × head_dim × ctx_avg) / compute){}; ctx_avg = prompt_len + output_len/2 = {}",
            s.matmul_params(true) as f64 / 1e9,
            if hw.step_overhead_per_layer > 0.0 { format!(" + layers × {:.1} µs (measured per-step overhead)", hw.step_overhead_per_layer * 1e6) } else { String::new() },
            r.decode_ctx()
        ),
        format!("weights read per step = all weights − the embedding table (looked up, not read){}{} = {}", if s.tied { " + the tied head" } else { "" }, if s.experts.is_some() { " with only the experts the batch routes to: experts × (1 − (1 − used/experts)^b)" } else { "" }, gb(i.model.sizes.read_per_step(s.tied, r.frac_experts(1.0)))),
        format!("ridge_batch = (weights read / bandwidth) / (FLOPs per token / compute) = {:.0}: below it decoding is bandwidth-bound, above it compute-bound", p.ridge_batch),
        format!("decode_tokens_per_s (one sequence) = 1 / step(1) = {:.1}", p.decode_tokens_per_s),
        format!("batch = the largest ≤ max_sequences with step(b) ≤ --tpot-ms{}, users spread over replicas = {}; per user 1/step(b) = {:.1} tokens/s, per replica b/step(b) = {:.0}", i.tpot_ms.map_or(" (none given)".into(), |t| format!(" {t} ms")), p.batch, p.decode_tokens_per_s_per_user, p.decode_tokens_per_s_per_replica),
        format!("prefill time = max(weights read / bandwidth, (2 × params × prompt_len + causal attention 4 × layers × heads × head_dim × prompt_len²/2) / compute) = {:.3} s; prefill_tokens_per_s = prompt_len / that = {:.0}", p.ttft_s, p.prefill_tokens_per_s),
        format!("ttft = prefill time on an idle replica = {:.3} s; request latency = ttft + output_len × step(batch) = {:.2} s", p.ttft_s, p.request_latency_s),
        format!("requests_per_s per replica = 1 / (prompt FLOPs / compute + output_len × step(b) / b) = {:.2}", p.requests_per_s_per_replica),
        format!("replicas = ceil(users {} / batch cap) = {}", i.users.unwrap_or(1), p.replicas),
    ];
    if let Some(f) = &p.fleet {
        e.push(format!(
            "fleet: replicas = floor({} GPUs / {}) = {}; users = replicas × batch = {}; requests/s = replicas × requests_per_s(batch) = {:.0}",
            f.gpus, p.gpus_per_replica, f.replicas, f.concurrent_users, f.requests_per_s
        ));
    }
    if let Some(t) = &p.training {
        e.push(format!("train_flops = 6 × N (active params {:.2}B) × D (tokens {:.3e}) = {:.3e}", t.params as f64 / 1e9, t.tokens, t.flops));
        e.push(format!("gpu_hours = train_flops / (peak bf16 {:.1} TFLOP/s × MFU {}) / 3600 = {:.4e}", hw.bf16_flops / 1e12, p.mfu, t.gpu_hours));
        e.push(format!("train_days = gpu_hours / {} GPUs / 24 = {:.1}", t.n_gpus, t.days));
    }
    e.push("not modelled: communication between a replica's GPUs, queueing, speculative decoding; sliding-window layers are counted at full context, as herd keeps them".into());
    e
}

impl Plan {
    /// The JSON `herd plan --json` prints (field names are the interface scripts rely on).
    pub fn to_json(&self, with_explain: bool) -> Value {
        let mut v = json!({
            "model": self.model, "format": self.format, "kv_format": self.kv_format, "hardware": self.hardware,
            "params_total": self.params_total, "params_active": self.params_active,
            "weights_bytes": self.weights_bytes.round(), "kv_bytes_per_token": self.kv_bytes_per_token, "kv_bytes_per_sequence": self.kv_bytes_per_sequence.round(),
            "gpus_per_replica": self.gpus_per_replica, "max_sequences": self.max_sequences, "mfu": self.mfu, "ridge_batch": self.ridge_batch,
            "decode_tokens_per_s": self.decode_tokens_per_s, "batch": self.batch, "step_s": self.step_s,
            "decode_tokens_per_s_per_user": self.decode_tokens_per_s_per_user, "decode_tokens_per_s_per_replica": self.decode_tokens_per_s_per_replica,
            "prefill_tokens_per_s": self.prefill_tokens_per_s, "ttft_s": self.ttft_s, "request_latency_s": self.request_latency_s, "latency_met": self.latency_met,
            "requests_per_s_per_replica": self.requests_per_s_per_replica, "replicas": self.replicas,
        });
        let o = v.as_object_mut().expect("an object");
        if let Some(f) = &self.fleet {
            o.insert("fleet".into(), json!({ "gpus": f.gpus, "replicas": f.replicas, "concurrent_users": f.concurrent_users, "requests_per_s": f.requests_per_s, "decode_tokens_per_s": f.decode_tokens_per_s }));
        }
        if let Some(t) = &self.training {
            for (k, x) in [
                ("train_tokens", t.tokens),
                ("train_params", t.params as f64),
                ("train_flops", t.flops),
                ("gpu_hours", t.gpu_hours),
                ("train_gpus", t.n_gpus as f64),
                ("train_days", t.days),
            ] {
                o.insert(k.into(), json!(x));
            }
        }
        if let Some(p) = &self.probe {
            o.insert("cpu_probe".into(), p.clone());
        }
        if with_explain {
            o.insert("explain".into(), json!(self.explain));
        }
        v
    }

    /// The human-readable report.
    pub fn to_text(&self, with_explain: bool) -> String {
        let mut out = vec![
            format!(
                "model       {} in {} ({:.2}B parameters, {:.2}B active), KV cache {}",
                self.model,
                self.format,
                self.params_total as f64 / 1e9,
                self.params_active as f64 / 1e9,
                self.kv_format
            ),
            format!("hardware    {}", self.hardware),
            format!("memory      weights {}, KV {:.0} KiB/token, {} per sequence", gb(self.weights_bytes), self.kv_bytes_per_token / 1024.0, gb(self.kv_bytes_per_sequence)),
            format!("replica     {} device(s), {} usable, up to {} sequences at full context", self.gpus_per_replica, gb(self.replica_memory_bytes), self.max_sequences),
            format!(
                "decode      {:.1} tokens/s for one sequence; at batch {}: {:.1} tokens/s per user, {:.0} per replica (ridge at batch {:.0})",
                self.decode_tokens_per_s, self.batch, self.decode_tokens_per_s_per_user, self.decode_tokens_per_s_per_replica, self.ridge_batch
            ),
            format!(
                "prefill     {:.0} tokens/s, time to first token {:.3} s, request latency {:.2} s{}",
                self.prefill_tokens_per_s,
                self.ttft_s,
                self.request_latency_s,
                if self.latency_met { "" } else { " (the latency target is not met even at batch 1)" }
            ),
            format!("workload    {} replica(s), {:.2} requests/s each", self.replicas, self.requests_per_s_per_replica),
        ];
        if let Some(f) = &self.fleet {
            out.push(format!(
                "fleet       {} GPUs = {} replicas, {} users at once, {:.0} requests/s, {:.3e} tokens/s",
                f.gpus, f.replicas, f.concurrent_users, f.requests_per_s, f.decode_tokens_per_s
            ));
        }
        if let Some(t) = &self.training {
            out.push(format!(
                "training    {:.3e} tokens: {:.3e} FLOPs, {:.3}M GPU-hours, {:.1} days on {} GPUs (MFU {})",
                t.tokens,
                t.flops,
                t.gpu_hours / 1e6,
                t.days,
                t.n_gpus,
                self.mfu
            ));
        }
        if with_explain {
            out.push(String::new());
            out.extend(self.explain.iter().map(|l| format!("  {l}")));
        }
        out.join("\n") + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::find_gpu;
    use crate::model::{find_shape, kv_bytes_per_value};

    fn inputs(model: &str, format: &str, hardware: &str) -> Inputs {
        Inputs {
            model: Model::named(find_shape(model).unwrap(), Format::parse(format).unwrap()),
            kv_format: "f16".into(),
            kv_bytes_per_value: kv_bytes_per_value("f16").unwrap(),
            hardware: find_gpu(hardware).unwrap(),
            gpus_per_replica: None,
            fleet_gpus: None,
            ctx: 8192,
            users: None,
            prompt_len: 1000,
            output_len: 200,
            tpot_ms: None,
            train_tokens: None,
            mfu: None,
        }
    }

    fn within(what: &str, got: f64, want: f64, tolerance: f64) {
        assert!((got / want - 1.0).abs() <= tolerance, "{what}: {got:.4e} vs {want:.4e} ({:+.1}%, allowed ±{:.0}%)", (got / want - 1.0) * 100.0, tolerance * 100.0);
    }

    /// The Llama 3 paper (Dubey et al. 2024, §3.3.2 and Table 4): 405B pre-trained on 15.6T
    /// tokens with 3.8e25 FLOPs on 16,384 H100s at 380-430 TFLOPS/GPU (400 for the bulk: 8K
    /// sequences on 16K GPUs; 380 for the long-context stage). The Llama 3.1 model card: 30.84M
    /// H100-hours. At 400 TFLOPS (MFU 400/989.4) 15.6T tokens take 26.4M hours, 14.5% short
    /// of the card: the card's hours equal 18.2T tokens' worth at that rate, i.e. they include
    /// more than the 15.6T-token run's compute (restarts after the 466 interruptions the paper
    /// counts, the long-context stage at 380 TFLOPS, annealing).
    #[test]
    fn llama_3_405b_pretraining_matches_the_paper_and_the_model_card() {
        for tflops in [380.0, 400.0] {
            let i = Inputs { train_tokens: Some(15.6e12), fleet_gpus: Some(16_384), mfu: Some(tflops / 989.4), ..inputs("llama-3.1-405b", "bf16", "h100") };
            let t = plan(&i).unwrap().training.unwrap();
            within("405B training FLOPs", t.flops, 3.8e25, 0.05);
            within(&format!("405B H100-hours at {tflops} TFLOPS"), t.gpu_hours, 30.84e6, 0.15);
            assert_eq!(t.n_gpus, 16_384);
            // 54 days of the paper's snapshot period covered most of the run.
            assert!(t.days > 60.0 && t.days < 75.0, "{} days", t.days);
        }
        let i = Inputs { train_tokens: Some(18.2e12), mfu: Some(400.0 / 989.4), ..inputs("llama-3.1-405b", "bf16", "h100") };
        within("405B H100-hours at 18.2T tokens", plan(&i).unwrap().training.unwrap().gpu_hours, 30.84e6, 0.02);
    }

    /// The Llama 3.1 model card's H100-hours for 8B and 70B, at 15.6T tokens (the same data
    /// as 405B). Meta reported MFU only for 405B; the card's hours imply 14.6% (8B) and 26.5%
    /// (70B) of the BF16 peak: smaller models use a large cluster less well. At those MFUs, the
    /// check is of the parameter counts, 6ND and the hours arithmetic.
    #[test]
    fn llama_3_1_model_card_gpu_hours() {
        for (model, mfu, card_hours) in [("llama-3.1-8b", 0.146, 1.46e6), ("llama-3.1-70b", 0.265, 7.0e6), ("llama-3.1-405b", 400.0 / 989.4, 30.84e6)] {
            let i = Inputs { train_tokens: Some(15.6e12), mfu: Some(mfu), ..inputs(model, "bf16", "h100") };
            let t = plan(&i).unwrap().training.unwrap();
            within(&format!("{model} H100-hours"), t.gpu_hours, card_hours, 0.15);
            within(&format!("{model} 6ND"), t.flops, 6.0 * t.params as f64 * 15.6e12, 1e-12);
        }
    }

    /// A mixture of experts trains on its active parameters.
    #[test]
    fn moe_training_counts_active_parameters() {
        let i = Inputs { train_tokens: Some(1e12), ..inputs("qwen3-30b-a3b", "bf16", "h100") };
        let t = plan(&i).unwrap().training.unwrap();
        within("qwen3-30b-a3b N", t.params as f64, 3.3e9, 0.02);
    }

    #[test]
    fn kv_cache_bytes_per_token_are_the_known_ones() {
        // Llama 3.1 8B: 128 KiB a token in f16; 70B: 320 KiB; 405B: 504 KiB.
        for (model, kib) in [("llama-3.1-8b", 128.0), ("llama-3.1-70b", 320.0), ("llama-3.1-405b", 504.0)] {
            let p = plan(&inputs(model, "fp8", "h200")).unwrap();
            assert_eq!(p.kv_bytes_per_token, kib * 1024.0, "{model}");
        }
        let i = Inputs { kv_format: "fp8".into(), kv_bytes_per_value: 1.0, ..inputs("llama-3.1-8b", "bf16", "h100") };
        assert_eq!(plan(&i).unwrap().kv_bytes_per_token, 64.0 * 1024.0);
    }

    #[test]
    fn replicas_grow_until_the_model_fits() {
        // 405B in BF16 (812 GB) needs two nodes of H100s, in FP8 one node, in Q4_K four GPUs
        // for its weights but eight for 16 sequences of 8192 tokens beside them.
        for (format, gpus) in [("bf16", 16), ("fp8", 8), ("q4_k", 8)] {
            assert_eq!(plan(&inputs("llama-3.1-405b", format, "h100")).unwrap().gpus_per_replica, gpus, "{format}");
        }
        assert_eq!(plan(&inputs("llama-3.1-8b", "bf16", "l40s")).unwrap().gpus_per_replica, 1);
        assert_eq!(plan(&inputs("llama-3.1-70b", "bf16", "h200")).unwrap().gpus_per_replica, 2);
        // 70B in FP8 fits one H100 with two sequences beside it: two GPUs hold a real batch.
        let p = plan(&inputs("llama-3.1-70b", "fp8", "h100")).unwrap();
        assert!(p.gpus_per_replica == 2 && p.max_sequences >= 16, "{} {}", p.gpus_per_replica, p.max_sequences);
        let p = plan(&Inputs { gpus_per_replica: Some(1), ctx: 2048, ..inputs("llama-3.1-70b", "fp8", "h100") }).unwrap();
        assert_eq!((p.gpus_per_replica, p.max_sequences), (1, 2));
    }

    #[test]
    fn a_model_that_does_not_fit_says_what_would() {
        let i = Inputs { gpus_per_replica: Some(1), ..inputs("llama-3.1-405b", "bf16", "h100") };
        let e = plan(&i).unwrap_err().to_string();
        assert!(matches!(plan(&i), Err(PlanError::DoesNotFit(_))));
        for want in ["does not fit on 1 × h100", "--gpus 16xh100", "--format fp8 on 8 × h100", "--format q4_k on 4 × h100"] {
            assert!(e.contains(want), "{want:?} in {e}");
        }
        let mut cpu = find_gpu("h100").unwrap();
        cpu.name = "cpu";
        cpu.mem_bytes = 12e9;
        let i = Inputs { hardware: cpu, ..inputs("llama-3.1-8b", "bf16", "h100") };
        let e = plan(&i).unwrap_err().to_string();
        for want in ["does not fit in this machine's memory", "--format q8_0", "--format q4_k", "--gpus 1xh100"] {
            assert!(e.contains(want), "{want:?} in {e}");
        }
    }

    /// Decoding one sequence reads every weight per token: bandwidth-bound. Far past the
    /// ridge the step is the batch's FLOPs at peak × MFU.
    #[test]
    fn decode_is_bandwidth_bound_below_the_ridge_and_compute_bound_above() {
        let i = Inputs { prompt_len: 1, output_len: 1, ..inputs("llama-3.1-8b", "bf16", "h100") };
        let p = plan(&i).unwrap();
        let m = Model::named(find_shape("llama-3.1-8b").unwrap(), Format::parse("bf16").unwrap());
        let bytes = m.sizes.read_per_step(false, 1.0);
        within("8B decode", p.decode_tokens_per_s, 3.35e12 * 0.8 / bytes, 0.01);
        assert!(p.ridge_batch > 100.0 && p.ridge_batch < 400.0, "ridge at {}", p.ridge_batch);
        let r = Replica { i: &i, g: 1, mfu: 0.4 };
        let b = 4096.0;
        within("8B step at batch 4096", r.step(b), b * 2.0 * m.shape.matmul_params(true) as f64 / (989.4e12 * 0.4), 0.01);
        // FP8 halves the bytes: nearly twice the speed.
        let fp8 = plan(&Inputs { model: m.in_format(Format::Fp8), ..i.clone() }).unwrap();
        within("fp8 / bf16 decode", fp8.decode_tokens_per_s / p.decode_tokens_per_s, 2.0, 0.02);
    }

    /// One token of a mixture of experts reads only the experts it routes to.
    #[test]
    fn moe_decoding_reads_the_active_experts() {
        let moe = plan(&inputs("qwen3-30b-a3b", "bf16", "h100")).unwrap();
        let dense = plan(&inputs("qwen3-32b", "bf16", "h100")).unwrap();
        assert!(moe.decode_tokens_per_s > 5.0 * dense.decode_tokens_per_s, "{} vs {}", moe.decode_tokens_per_s, dense.decode_tokens_per_s);
        assert!(moe.weights_bytes > 0.9 * dense.weights_bytes);
    }

    #[test]
    fn a_latency_target_caps_the_batch_and_users_set_the_replicas() {
        let base = Inputs { ctx: 4096, prompt_len: 1000, output_len: 500, ..inputs("llama-3.1-8b", "fp8", "h100") };
        let free = plan(&Inputs { users: Some(100_000), ..base.clone() }).unwrap();
        let capped = plan(&Inputs { users: Some(100_000), tpot_ms: Some(8.0), ..base.clone() }).unwrap();
        assert!(capped.batch < free.batch && capped.replicas > free.replicas, "{} {} / {} {}", capped.batch, capped.replicas, free.batch, free.replicas);
        assert!(capped.step_s <= 0.008 && capped.latency_met);
        assert!(free.batch <= free.max_sequences);
        let impossible = plan(&Inputs { tpot_ms: Some(0.1), ..base.clone() }).unwrap();
        assert!(!impossible.latency_met && impossible.batch == 1);
        let one = plan(&base).unwrap();
        assert_eq!((one.batch, one.replicas), (1, 1));
    }

    /// The README's worked example: a fleet of 600,000 H100s.
    #[test]
    fn a_fleet_serves_replicas_times_each_replicas_rate() {
        let i = Inputs { fleet_gpus: Some(600_000), tpot_ms: Some(50.0), ..inputs("llama-3.1-405b", "fp8", "h100") };
        let p = plan(&i).unwrap();
        let f = p.fleet.unwrap();
        assert_eq!((p.gpus_per_replica, f.replicas), (8, 75_000));
        assert!(f.requests_per_s > 0.0 && f.requests_per_s.is_finite());
        let small = Inputs { fleet_gpus: Some(4), ..i.clone() };
        assert!(plan(&small).unwrap_err().to_string().contains("smaller than one replica"));
    }

    #[test]
    fn nonsense_is_refused() {
        let e = |i: Inputs| plan(&i).unwrap_err().to_string();
        assert!(e(Inputs { mfu: Some(1.5), ..inputs("llama-3.1-8b", "bf16", "h100") }).contains("--mfu"));
        assert!(e(Inputs { prompt_len: 9000, ..inputs("llama-3.1-8b", "bf16", "h100") }).contains("exceed --ctx"));
        assert!(e(Inputs { tpot_ms: Some(-1.0), ..inputs("llama-3.1-8b", "bf16", "h100") }).contains("--tpot-ms"));
    }

    /// A GGUF file: its shape as herd's loader reads it, its bytes from its tensors.
    #[test]
    fn a_gguf_file_plans_from_its_own_tensors() {
        use herd_engine::synth::{find_shape as synth_shape, write, SynthOptions};
        use herd_kernels::DType;
        let path = std::env::temp_dir().join(format!("herd-plan-{}-tiny.gguf", std::process::id()));
        write(&SynthOptions { shape: synth_shape("tiny").unwrap(), dtype: DType::Q8_0, seed: 1, chat_template: false }, &path).unwrap();
        let m = Model::from_gguf(&path).unwrap();
        let file = herd_gguf::Gguf::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!((m.shape.n_layers, m.shape.d_model, m.shape.n_heads, m.shape.n_kv_heads, m.shape.d_ff, m.shape.tied), (2, 64, 4, 2, 128, false));
        assert_eq!(m.sizes.total, file.tensors().iter().map(|t| t.n_bytes as f64).sum::<f64>());
        assert_eq!(m.format, Format::Ggml(DType::Q8_0));
        let p = plan(&Inputs { model: m, ctx: 256, prompt_len: 16, output_len: 16, ..inputs("llama-3.1-8b", "bf16", "h100") }).unwrap();
        assert!(p.decode_tokens_per_s > 0.0 && p.prefill_tokens_per_s > 0.0);
        let missing = Model::from_gguf(std::path::Path::new("/nonexistent/model.gguf")).unwrap_err().to_string();
        assert!(missing.contains("/nonexistent/model.gguf"), "{missing}");
    }
}
