//! Kernel benchmarks on the default model's shapes (SmolLM2-135M: d_model 576, d_ff 1536, 3 KV
//! heads of 64, a 49152-row Q8_0 output head), at every SIMD level this CPU runs and at 1 and 2
//! threads: Int8 products for one token (GB/s of weights read) and for 16 (a batch of decode
//! steps), Exact products for a 512-token prompt (GFLOP/s), and the pool's per-op overhead.
//!
//! K-quant rows hold whole 256-element blocks, so for Q4_K and Q6_K the 576 columns become 512
//! (a K-quant SmolLM2 file stores those tensors in other formats for the same reason).
//!
//! `cargo bench -p herd-kernels --bench kernels [-- LEVEL... FORMAT... 1t|2t --quick]`: levels
//! (`scalar`, `avx2`, `avx512`), formats (`q4_1`, ...) and thread counts restrict the run;
//! `--quick` times one repetition of each (a fixed amount of work, for `perf stat`).

use std::time::{Duration, Instant};

use herd_kernels::{matmul_with, quantize_row, DType, Kernels, Level, MatRef, MatmulScratch, Precision, ThreadPool};

/// (rows, cols, formats): every projection of a layer, and the output head.
const SHAPES: [(usize, usize, &[DType]); 5] = [
    (576, 576, &[DType::Q4_1, DType::Q8_0, DType::Q4_K, DType::Q6_K]),
    (192, 576, &[DType::Q4_1, DType::Q8_0, DType::Q4_K, DType::Q6_K]),
    (1536, 576, &[DType::Q4_1, DType::Q8_0, DType::Q4_K, DType::Q6_K]),
    (576, 1536, &[DType::Q4_1, DType::Q8_0, DType::Q4_K, DType::Q6_K]),
    (49152, 576, &[DType::Q8_0]),
];

/// Median seconds per call of `f`, over repetitions that together take about `budget`.
fn time_it(budget: Duration, quick: bool, mut f: impl FnMut()) -> f64 {
    f(); // warm-up: grows scratch buffers, faults in pages, wakes the pool
    let start = Instant::now();
    f();
    let once = start.elapsed().as_secs_f64().max(1e-9);
    let reps = if quick { 1 } else { ((budget.as_secs_f64() / once) as usize).clamp(3, 2001) };
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn random_weights(dtype: DType, rows: usize, cols: usize) -> Vec<u8> {
    let row_bytes = cols / dtype.block_len() * dtype.block_bytes();
    let mut seed = 0x1234_5678u64;
    let mut row = vec![0.0f32; cols];
    let mut data = vec![0u8; rows * row_bytes];
    for r in 0..rows {
        for v in &mut row {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            *v = ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1;
        }
        quantize_row(dtype, &row, &mut data[r * row_bytes..(r + 1) * row_bytes]).expect("quantizable");
    }
    data
}

fn pool_overhead(pools: &[ThreadPool]) {
    println!("\nThreadPool::run with an empty job (median of 20000 runs, after warm-up):");
    for pool in pools {
        let mut times: Vec<f64> = Vec::with_capacity(20000);
        for i in 0..21000 {
            let t = Instant::now();
            pool.run(&|_, _| {});
            if i >= 1000 {
                times.push(t.elapsed().as_secs_f64());
            }
        }
        times.sort_by(f64::total_cmp);
        println!("  {} thread(s): {:.2} us (p90 {:.2} us)", pool.n_threads(), times[times.len() / 2] * 1e6, times[times.len() * 9 / 10] * 1e6);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let quick = args.iter().any(|a| a == "--quick");
    let wanted: Vec<Level> = args.iter().filter_map(|a| Level::from_name(a)).collect();
    let levels: Vec<Level> = Level::available().filter(|l| wanted.is_empty() || wanted.contains(l)).collect();
    let wanted_formats: Vec<DType> = args.iter().filter_map(|a| DType::from_name(a)).collect();
    let threads: Vec<usize> = args.iter().filter_map(|a| a.strip_suffix('t')?.parse().ok()).collect();
    let pools: Vec<ThreadPool> = [1, 2].into_iter().filter(|t| threads.is_empty() || threads.contains(t)).map(ThreadPool::new).collect();
    let budget = Duration::from_millis(if quick { 0 } else { 300 });

    println!("| level | format | rows x cols | threads | Int8 n=1 GB/s | Int8 n=16 GB/s | Exact n=512 GFLOP/s |");
    println!("| --- | --- | --- | ---: | ---: | ---: | ---: |");
    for &level in &levels {
        let k = Kernels::for_level(level).expect("available");
        for &(rows, cols, formats) in &SHAPES {
            for &dtype in formats.iter().filter(|&&t| wanted_formats.is_empty() || wanted_formats.contains(&t)) {
                let cols = cols / dtype.block_len() * dtype.block_len();
                let data = random_weights(dtype, rows, cols);
                let w = MatRef { dtype, rows, cols, data: &data };
                let x: Vec<f32> = (0..512 * cols).map(|i| ((i * 7919) % 1000) as f32 * 1e-3 - 0.5).collect();
                let mut out = vec![0.0f32; 512 * rows];
                let mut scratch = MatmulScratch::default();
                for pool in &pools {
                    let mut run = |n: usize, precision| time_it(budget, quick, || matmul_with(k, pool, w, &x[..n * cols], n, &mut out[..n * rows], &mut scratch, precision));
                    let gbs = |secs: f64| data.len() as f64 / secs / 1e9;
                    let int8_1 = gbs(run(1, Precision::Int8));
                    let int8_16 = gbs(run(16, Precision::Int8));
                    // The scalar head at 512 tokens would take a minute; it adds nothing.
                    let exact = if level == Level::Scalar && rows > 4096 {
                        "-".to_string()
                    } else {
                        format!("{:.1}", 2.0 * (rows * cols * 512) as f64 / run(512, Precision::Exact) / 1e9)
                    };
                    println!("| {} | {dtype} | {rows} x {cols} | {} | {int8_1:.1} | {int8_16:.1} | {exact} |", level.name(), pool.n_threads());
                }
            }
        }
    }
    pool_overhead(&pools);
}
