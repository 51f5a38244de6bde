//! The hardware `herd plan` sizes for: a catalogue of data-centre GPUs with their published
//! peak figures, and `cpu`, this machine, measured at run time by short probes of herd's own
//! kernels. It knows nothing of models.

use std::time::{Duration, Instant};

use herd_kernels::{matmul, quantize_row, DType, MatRef, MatmulScratch, Precision, ThreadPool};

use crate::PlanError;

/// One device of a replica.
#[derive(Clone, Debug, PartialEq)]
pub struct Hardware {
    /// The name `--hardware` takes.
    pub name: &'static str,
    pub label: String,
    /// Memory of one device, bytes.
    pub mem_bytes: f64,
    /// The fraction of that memory weights and KV cache may take (the rest: activations,
    /// the runtime, fragmentation).
    pub mem_usable: f64,
    /// Memory bandwidth, bytes/s.
    pub bandwidth: f64,
    /// The fraction of `bandwidth` that streaming weights reaches.
    pub bandwidth_eff: f64,
    /// Peak dense BF16 FLOP/s (matrix units, no sparsity).
    pub bf16_flops: f64,
    /// Peak dense FP8 FLOP/s, where the device has FP8 matrix units.
    pub fp8_flops: Option<f64>,
    /// The MFU assumed when `--mfu` is not given.
    pub default_mfu: f64,
    /// Fixed time a decoding step costs beyond reading and multiplying (thread hand-offs per
    /// matrix product on a CPU), seconds per layer.
    pub step_overhead_per_layer: f64,
    /// What the probes measured (`cpu` only), for `--explain` and the JSON.
    pub probe: Option<CpuProbe>,
}

const GB: f64 = 1e9;
const T: f64 = 1e12;

fn gpu(name: &'static str, label: &str, mem_gb: f64, bandwidth_tb: f64, bf16_tflops: f64, fp8_tflops: Option<f64>) -> Hardware {
    Hardware {
        name,
        label: label.into(),
        mem_bytes: mem_gb * GB,
        mem_usable: 0.9,
        bandwidth: bandwidth_tb * T,
        bandwidth_eff: 0.8,
        bf16_flops: bf16_tflops * T,
        fp8_flops: fp8_tflops.map(|f| f * T),
        default_mfu: 0.4,
        step_overhead_per_layer: 0.0,
        probe: None,
    }
}

/// The catalogue: NVIDIA's datasheet figures, dense (the "with sparsity" figures are twice these).
pub fn catalogue() -> Vec<Hardware> {
    vec![
        gpu("h100", "NVIDIA H100 SXM 80GB", 80.0, 3.35, 989.4, Some(1978.9)),
        gpu("h200", "NVIDIA H200 SXM 141GB", 141.0, 4.8, 989.4, Some(1978.9)),
        gpu("a100", "NVIDIA A100 SXM 80GB", 80.0, 2.039, 312.0, None),
        gpu("l40s", "NVIDIA L40S 48GB", 48.0, 0.864, 362.05, Some(733.0)),
    ]
}

pub fn hardware_names() -> String {
    let mut names: Vec<&str> = catalogue().iter().map(|h| h.name).collect();
    names.push("cpu");
    names.join(", ")
}

/// A catalogue entry by name (`h100`, `H100-SXM`, `a100-80gb` ...); `cpu` is `probe_cpu`'s.
pub fn find_gpu(name: &str) -> Result<Hardware, PlanError> {
    let lower = name.to_ascii_lowercase();
    let base = lower.split(['-', '_']).next().unwrap_or("");
    catalogue().into_iter().find(|h| h.name == base).ok_or_else(|| PlanError::Input(format!("unknown hardware '{name}' (known: {})", hardware_names())))
}

impl Hardware {
    /// Peak FLOP/s for products of weights in `fp8` (FP8 units where present) or not.
    pub fn peak_flops(&self, fp8: bool) -> f64 {
        if fp8 {
            self.fp8_flops.unwrap_or(self.bf16_flops)
        } else {
            self.bf16_flops
        }
    }
}

/// What the `cpu` probes measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CpuProbe {
    pub n_threads: usize,
    /// Plain memory read bandwidth (all threads summing a 256 MiB buffer), bytes/s.
    pub read_bandwidth: f64,
    /// Bytes/s herd's decoding product (8-bit activations, one token) streams weights of
    /// `dtype` at, from a matrix far larger than the caches.
    pub decode_bandwidth: f64,
    /// FLOP/s herd's prompt product reaches (bf16, or f32 for F32/F16 weights) at 512 tokens.
    pub prompt_flops: f64,
    /// Seconds one small product costs beyond its arithmetic (the pool's hand-off).
    pub call_overhead: f64,
    pub dtype: DType,
    pub probe_seconds: f64,
}

/// Work per layer of a decoding step beyond its matrix products, in the probe's units of one
/// small product's hand-off: attention, and the norms, rotary embeddings and activations.
const CALLS_PER_LAYER: f64 = 2.0;

/// What the probes imitate: the model's weight type, the bytes a decoding step reads, and its
/// layers' matrix shapes, so that caches, matrix sizes and the hand-offs between products help
/// or hinder the probe as they do the model.
#[derive(Clone, Copy, Debug)]
pub struct ProbeShape {
    pub dtype: DType,
    pub bytes_per_step: f64,
    pub d_model: usize,
    /// Width of the feed-forward matrices a token uses (an expert's, for a mixture).
    pub d_ff: usize,
    /// Feed-forward blocks a token runs per layer (experts used, or 1).
    pub n_ffn: usize,
    /// Rows of q (heads × head_dim) and of k and v (kv_heads × head_dim).
    pub q_dim: usize,
    pub kv_dim: usize,
}

/// Measures this machine for a model like `shape`, in about a second: memory read bandwidth,
/// herd's decoding and prompt products, and the cost of one small product.
pub fn probe_cpu(shape: ProbeShape) -> Hardware {
    let start = Instant::now();
    let n_threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pool = ThreadPool::new(n_threads);
    let read_bandwidth = read_bandwidth(n_threads);
    // Types herd cannot quantize activations against in 8 bits (the float ones) still decode
    // through `Int8`'s path or its fallback: either way this is what decoding runs.
    let dtype = shape.dtype;
    let (decode_bandwidth, call_overhead) = decode_probe(&pool, &shape);
    let prompt_flops = prompt_probe(&pool, dtype, shape.d_model, shape.d_ff);
    let probe = CpuProbe { n_threads, read_bandwidth, decode_bandwidth, prompt_flops, call_overhead, dtype, probe_seconds: start.elapsed().as_secs_f64() };
    let mem_bytes = mem_available().unwrap_or(8.0 * GB);
    Hardware {
        name: "cpu",
        label: format!("this machine's CPU ({n_threads} threads, measured)"),
        mem_bytes,
        mem_usable: 0.9,
        // What decoding reaches is herd's product streaming weights, which the plain read
        // bandwidth bounds from above.
        bandwidth: decode_bandwidth,
        bandwidth_eff: 1.0,
        bf16_flops: prompt_flops,
        fp8_flops: None,
        // The probe is herd's own product at full speed; the prompt also runs attention,
        // norms and rotary embeddings around it.
        default_mfu: 0.85,
        step_overhead_per_layer: CALLS_PER_LAYER * call_overhead,
        probe: Some(probe),
    }
}

/// Memory the system would give a new process (`MemAvailable`), bytes.
fn mem_available() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024.0)
}

/// Best of three passes of every thread summing its share of a 256 MiB buffer.
fn read_bandwidth(n_threads: usize) -> f64 {
    let words = (256usize << 20) / 8;
    let buf: Vec<u64> = (0..words as u64).collect();
    let chunk = words.div_ceil(n_threads);
    let mut best = f64::INFINITY;
    let mut keep = 0u64;
    for _ in 0..3 {
        let t0 = Instant::now();
        let sum: u64 = std::thread::scope(|s| {
            let handles: Vec<_> = buf.chunks(chunk).map(|c| s.spawn(move || sum_words(c))).collect();
            handles.into_iter().map(|h| h.join().unwrap()).fold(0u64, u64::wrapping_add)
        });
        best = best.min(t0.elapsed().as_secs_f64());
        keep = keep.wrapping_add(sum);
    }
    std::hint::black_box(keep);
    (words * 8) as f64 / best
}

/// Eight independent lanes so the compiler vectorises the loop.
fn sum_words(c: &[u64]) -> u64 {
    let mut acc = [0u64; 8];
    let mut chunks = c.chunks_exact(8);
    for w in &mut chunks {
        for (a, x) in acc.iter_mut().zip(w) {
            *a = a.wrapping_add(*x);
        }
    }
    acc.iter().chain(chunks.remainder()).fold(0u64, |a, &x| a.wrapping_add(x))
}

/// A (rows, cols) matrix of `dtype` made of one quantized random row repeated: the values do
/// not change the speed, and quantizing one row is quick.
fn matrix(dtype: DType, rows: usize, cols: usize) -> Vec<u8> {
    let values: Vec<f32> = (0..cols).map(|i| ((i * 7919 % 1000) as f32 / 1000.0 - 0.5) * 0.05).collect();
    let row_bytes = dtype.bytes_for(cols as u64).expect("probe widths are whole blocks") as usize;
    let mut row = vec![0u8; row_bytes];
    quantize_row(dtype, &values, &mut row).expect("a probe row quantizes");
    row.repeat(rows)
}

fn best_of(n: usize, mut f: impl FnMut()) -> Duration {
    f();
    (0..n)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed()
        })
        .min()
        .unwrap()
}

/// Bytes/s at which herd decodes a model of `shape`: one token through layers of the model's
/// own matrix shapes (q, k, v, o, then gate, up, down per feed-forward block), each layer its
/// own memory, as many layers as the model reads per step (16 to 512 MiB of them); and the
/// time of one tiny product (a hand-off of the pool).
fn decode_probe(pool: &ThreadPool, shape: &ProbeShape) -> (f64, f64) {
    let dtype = shape.dtype;
    // Widths rounded up to whole blocks (576 is not a whole number of Q4_K's 256).
    let cols = |n: usize| n.max(1).next_multiple_of(dtype.block_len());
    let (d, ff) = (cols(shape.d_model), cols(shape.d_ff));
    let mut mats: Vec<(usize, usize)> = vec![(shape.q_dim.max(1), d), (shape.kv_dim.max(1), d), (shape.kv_dim.max(1), d), (shape.d_model.max(1), cols(shape.q_dim))];
    for _ in 0..shape.n_ffn.max(1) {
        mats.extend([(shape.d_ff.max(1), d), (shape.d_ff.max(1), d), (shape.d_model.max(1), ff)]);
    }
    let row_bytes = |c: usize| dtype.bytes_for(c as u64).expect("whole blocks") as usize;
    let layer_bytes: usize = mats.iter().map(|&(r, c)| r * row_bytes(c)).sum();
    let budget = shape.bytes_per_step.clamp(16.0 * (1 << 20) as f64, 512.0 * (1 << 20) as f64) as usize;
    let n_layers = budget.div_ceil(layer_bytes).max(1);
    let layers: Vec<Vec<Vec<u8>>> = (0..n_layers).map(|_| mats.iter().map(|&(r, c)| matrix(dtype, r, c)).collect()).collect();
    let widest = mats.iter().map(|&(r, c)| r.max(c)).max().unwrap_or(1).max(256);
    let x = vec![0.01f32; widest];
    let mut out = vec![0f32; widest];
    let mut scratch = MatmulScratch::default();
    let t = best_of(3, || {
        for layer in &layers {
            for (&(rows, c), data) in mats.iter().zip(layer) {
                let w = MatRef { dtype, rows, cols: c, data };
                matmul(pool, w, &x[..c], 1, &mut out[..rows], &mut scratch, Precision::Int8);
            }
        }
    });
    let bandwidth = (n_layers * layer_bytes) as f64 / t.as_secs_f64();

    let small = matrix(dtype, 64, 256);
    let w = MatRef { dtype, rows: 64, cols: 256, data: &small };
    let reps = 200;
    let t = best_of(3, || {
        for _ in 0..reps {
            matmul(pool, w, &x[..256], 1, &mut out[..64], &mut scratch, Precision::Int8);
        }
    });
    (bandwidth, t.as_secs_f64() / reps as f64)
}

/// FLOP/s of the prompt product: 512 tokens against the model's (d_ff, d_model) matrix
/// (at most 4096 rows), widths rounded up to whole blocks.
fn prompt_probe(pool: &ThreadPool, dtype: DType, d_model: usize, d_ff: usize) -> f64 {
    let block = dtype.block_len();
    let (rows, cols, n) = (d_ff.clamp(64, 4096), d_model.clamp(64, 1 << 14).next_multiple_of(block), 512);
    let data = matrix(dtype, rows, cols);
    let w = MatRef { dtype, rows, cols, data: &data };
    let x: Vec<f32> = (0..n * cols).map(|i| (i % 13) as f32 * 0.01).collect();
    let mut out = vec![0f32; n * rows];
    let mut scratch = MatmulScratch::default();
    // As the engine multiplies prompts: f32 products for F32 and F16 weights, bf16 otherwise.
    let precision = if matches!(dtype, DType::F32 | DType::F16) { Precision::Exact } else { Precision::Bf16 };
    let t = best_of(3, || matmul(pool, w, &x, n, &mut out, &mut scratch, precision));
    2.0 * (rows * cols * n) as f64 / t.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_and_unknown_ones_list_the_known() {
        assert_eq!(find_gpu("H100").unwrap().name, "h100");
        assert_eq!(find_gpu("h100-sxm").unwrap().name, "h100");
        assert_eq!(find_gpu("a100-80gb").unwrap().name, "a100");
        let e = find_gpu("tpu-v5").unwrap_err().to_string();
        assert!(e.contains("unknown hardware 'tpu-v5'") && e.contains("h200") && e.contains("cpu"), "{e}");
    }

    #[test]
    fn fp8_runs_at_bf16_speed_where_there_are_no_fp8_units() {
        let a100 = find_gpu("a100").unwrap();
        assert_eq!(a100.peak_flops(true), a100.peak_flops(false));
        let h100 = find_gpu("h100").unwrap();
        assert_eq!((h100.peak_flops(true), h100.peak_flops(false)), (1978.9e12, 989.4e12));
    }

    /// The probes measure something finite and positive, and quickly (timings themselves are
    /// benchmarks: scripts/plan-vs-bench).
    #[test]
    fn the_cpu_probe_is_finite_positive_and_short() {
        let cpu = probe_cpu(ProbeShape { dtype: DType::Q4_1, bytes_per_step: 1e8, d_model: 576, d_ff: 1536, n_ffn: 1, q_dim: 576, kv_dim: 192 });
        let p = cpu.probe.unwrap();
        for v in [p.read_bandwidth, p.decode_bandwidth, p.prompt_flops, p.call_overhead, cpu.mem_bytes, cpu.bandwidth] {
            assert!(v.is_finite() && v > 0.0, "{p:?}");
        }
        assert!(p.probe_seconds < 10.0, "the probe took {:.1} s", p.probe_seconds);
    }
}
