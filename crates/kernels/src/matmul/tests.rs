//! `matmul` at every SIMD level this machine runs: against the plain f32 reference, and bit for
//! bit independent of the batch (size, position, threads).

use super::*;
use crate::quant::{dequantize_row, dot_f32, quantize_row};
use crate::simd::{Kernels, Level};

fn lcg(seed: &mut u64) -> f32 {
    *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
}

fn levels() -> Vec<&'static Kernels> {
    Level::available().map(|l| Kernels::for_level(l).expect("available")).collect()
}

/// A random (rows, cols) matrix quantized to `dtype`.
fn weights(dtype: DType, rows: usize, cols: usize, seed: &mut u64) -> Vec<u8> {
    let row_bytes = cols / dtype.block_len() * dtype.block_bytes();
    let mut wq = vec![0u8; rows * row_bytes];
    for r in 0..rows {
        let wf: Vec<f32> = (0..cols).map(|_| lcg(seed)).collect();
        quantize_row(dtype, &wf, &mut wq[r * row_bytes..(r + 1) * row_bytes]).unwrap();
    }
    wq
}

const FORMATS: [DType; 13] = DType::WEIGHTS;

/// Every format through the threaded entry point equals the plain f32 reference, within the
/// activation quantization error (Int8), the rounding of both operands to bf16 (Bf16) or f32
/// rounding (Exact), for odd numbers of rows and tokens and more columns than one k block.
#[test]
fn matmul_matches_row_by_row_reference() {
    let mut seed = 7;
    for k in levels() {
        for dtype in FORMATS {
            let (rows, cols, n) = (37, 512, 5);
            let wq = weights(dtype, rows, cols, &mut seed);
            let x: Vec<f32> = (0..n * cols).map(|_| lcg(&mut seed)).collect();
            let w = MatRef { dtype, rows, cols, data: &wq };
            for (n_threads, precision) in [Precision::Int8, Precision::Exact, Precision::Bf16].into_iter().flat_map(|p| [(1, p), (3, p)]) {
                let pool = ThreadPool::new(n_threads);
                let mut out = vec![0.0; n * rows];
                matmul_with(k, &pool, w, &x, n, &mut out, &mut MatmulScratch::default(), precision);
                let mut deq = vec![0.0; cols];
                for r in 0..rows {
                    dequantize_row(dtype, w.row(r), &mut deq);
                    for i in 0..n {
                        let xi = &x[i * cols..(i + 1) * cols];
                        let exact = dot_f32(dtype, w.row(r), xi);
                        let got = out[i * rows + r];
                        let scale: f32 = deq.iter().zip(xi).map(|(a, b)| (a * b).abs()).sum();
                        let budget = match precision {
                            Precision::Int8 => 0.02 * scale + 1e-4,
                            Precision::Exact => 1e-5 * scale + 1e-6,
                            // Two roundings of 2^-9 at most per product.
                            Precision::Bf16 => 4e-3 * scale + 1e-6,
                        };
                        assert!((got - exact).abs() <= budget, "{:?} {dtype} {precision:?} row {r} tok {i}: {got} vs {exact}", k.level());
                    }
                }
            }
        }
    }
}

/// A token's outputs are bit-identical whether it is multiplied alone on one thread or inside
/// any batch of 1..=9, 17 or 20 tokens on 1, 2 or 3 threads, for every format and both
/// precisions (17 and 20 tokens span two of the AVX-512 integer dots' 16-token tiles). The
/// shapes leave edge tiles everywhere: 70 rows is two full 32-row panels and a 6-row one, the
/// 2304 columns of the 256-element formats span two of the GEMM's k blocks, and the 35 blocks
/// of the 32-element formats are two groups of 16, a pair and an odd block for the AVX-512
/// dots.
#[test]
fn results_do_not_depend_on_the_batch() {
    let mut seed = 11;
    let pools: Vec<ThreadPool> = (1..=3).map(ThreadPool::new).collect();
    for k in levels() {
        for dtype in FORMATS {
            let rows = 70;
            let cols = if dtype.block_len() == 256 { 9 * 256 } else { 35 * 32 };
            let wq = weights(dtype, rows, cols, &mut seed);
            let w = MatRef { dtype, rows, cols, data: &wq };
            let x: Vec<f32> = (0..20 * cols).map(|_| lcg(&mut seed)).collect();
            for precision in [Precision::Exact, Precision::Bf16, Precision::Int8] {
                let alone: Vec<Vec<f32>> = (0..20)
                    .map(|i| {
                        let mut out = vec![0.0; rows];
                        matmul_with(k, &pools[0], w, &x[i * cols..(i + 1) * cols], 1, &mut out, &mut MatmulScratch::default(), precision);
                        out
                    })
                    .collect();
                let mut scratch = MatmulScratch::default();
                for pool in &pools {
                    for n in (1..=9).chain([17, 20]) {
                        // Tokens start at different offsets so each one lands at several positions.
                        let first = if n < 10 { (n * 5) % (10 - n) } else { 20 - n };
                        let mut batched = vec![0.0; n * rows];
                        matmul_with(k, pool, w, &x[first * cols..(first + n) * cols], n, &mut batched, &mut scratch, precision);
                        for j in 0..n {
                            let got: Vec<u32> = batched[j * rows..(j + 1) * rows].iter().map(|v| v.to_bits()).collect();
                            let want: Vec<u32> = alone[first + j].iter().map(|v| v.to_bits()).collect();
                            assert_eq!(got, want, "{:?} {dtype} {precision:?}: token {} at {j} of {n} on {} threads", k.level(), first + j, pool.n_threads());
                        }
                    }
                }
            }
        }
    }
}

/// The tiled GEMM agrees with the scalar level's row-by-row Exact path to f32 rounding, for
/// token counts around the tile width, row counts around the panel height, and columns over
/// one k block.
#[test]
fn tiled_exact_matches_the_scalar_level() {
    let scalar = Kernels::for_level(Level::Scalar).expect("always");
    let pool = ThreadPool::new(2);
    let mut seed = 13;
    for k in levels().into_iter().filter(|k| k.gemm().is_some()) {
        for (dtype, rows, cols, n) in [(DType::Q4_K, 33, 768, 13), (DType::Q8_0, 1, 64, 25), (DType::F16, 95, 288, 12), (DType::Q6_K, 16, 256, 1), (DType::F32, 7, 37, 3), (DType::BF16, 40, 301, 7), (DType::Q4_K, 33, 2304, 13), (DType::F32, 5, 2085, 3)] {
            let wq = weights(dtype, rows, cols, &mut seed);
            let w = MatRef { dtype, rows, cols, data: &wq };
            let x: Vec<f32> = (0..n * cols).map(|_| lcg(&mut seed)).collect();
            let (mut got, mut want) = (vec![0.0; n * rows], vec![0.0; n * rows]);
            matmul_with(k, &pool, w, &x, n, &mut got, &mut MatmulScratch::default(), Precision::Exact);
            matmul_with(scalar, &pool, w, &x, n, &mut want, &mut MatmulScratch::default(), Precision::Exact);
            let mut deq = vec![0.0; cols];
            for r in 0..rows {
                dequantize_row(dtype, w.row(r), &mut deq);
                for i in 0..n {
                    let scale: f32 = deq.iter().zip(&x[i * cols..]).map(|(a, b)| (a * b).abs()).sum();
                    let (g, e) = (got[i * rows + r], want[i * rows + r]);
                    assert!((g - e).abs() <= 1e-5 * scale, "{:?} {dtype} {rows}x{cols} n {n}: row {r} tok {i}: {g} vs {e}", k.level());
                }
            }
        }
    }
}

/// The bf16 GEMM equals a float64 dot of the operands rounded to bf16 (to nearest even), to f32
/// rounding: the rounding of the inputs is its only other loss. Odd column counts pair the last
/// value of k with zero.
#[test]
fn bf16_gemm_matches_the_rounded_reference() {
    let pool = ThreadPool::new(2);
    let mut seed = 17;
    let round = |v: f32| f64::from(half::bf16::from_f32(v).to_f32());
    for k in levels().into_iter().filter(|k| k.gemm_bf16().is_some()) {
        for (dtype, rows, cols, n) in [(DType::Q4_K, 33, 768, 13), (DType::Q5_0, 70, 320, 25), (DType::F16, 95, 288, 12), (DType::F32, 7, 37, 3), (DType::BF16, 40, 301, 7), (DType::Q4_0, 35, 2080, 13), (DType::F32, 5, 2085, 3)] {
            let wq = weights(dtype, rows, cols, &mut seed);
            let w = MatRef { dtype, rows, cols, data: &wq };
            let x: Vec<f32> = (0..n * cols).map(|_| lcg(&mut seed)).collect();
            let mut got = vec![0.0; n * rows];
            matmul_with(k, &pool, w, &x, n, &mut got, &mut MatmulScratch::default(), Precision::Bf16);
            let mut deq = vec![0.0; cols];
            for r in 0..rows {
                dequantize_row(dtype, w.row(r), &mut deq);
                for i in 0..n {
                    let xi = &x[i * cols..(i + 1) * cols];
                    let want: f64 = deq.iter().zip(xi).map(|(&a, &b)| round(a) * round(b)).sum();
                    let scale: f64 = deq.iter().zip(xi).map(|(&a, &b)| (round(a) * round(b)).abs()).sum();
                    let g = f64::from(got[i * rows + r]);
                    assert!((g - want).abs() <= 1e-5 * scale + 1e-7, "{:?} {dtype} {rows}x{cols} n {n}: row {r} tok {i}: {g} vs {want}", k.level());
                }
            }
        }
    }
}
