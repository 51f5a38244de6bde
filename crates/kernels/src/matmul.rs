//! The one entry point for products of a weight matrix with activations: `matmul`. Two
//! precisions: `Exact` multiplies f32 activations by the dequantized weights (as accurate as the
//! file allows), `Int8` quantizes the activations once per call into the weight format's
//! dot-product partner type and uses integer dot products (llama.cpp's numerics, much less
//! arithmetic). Either way the weight rows are split across the thread pool, and each output
//! value is computed the same way whatever the number of tokens, so results never depend on
//! what else is in the batch. Faster paths (SIMD, GPU) plug in below this function; callers
//! choose a precision, never a kernel.

use crate::pool::{share, ThreadPool};
use crate::ops::dot;
use crate::quant::{dequantize_row, quantize_row, vec_dot, vec_dot_type};
use crate::DType;

/// A weight matrix of `rows` × `cols`, row-major, each row `cols` elements in `dtype` blocks.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    pub dtype: DType,
    pub rows: usize,
    pub cols: usize,
    /// (rows, cols) in `dtype` blocks.
    pub data: &'a [u8],
}

impl<'a> MatRef<'a> {
    /// Bytes in one row.
    pub fn row_bytes(&self) -> usize {
        self.cols / self.dtype.block_len() * self.dtype.block_bytes()
    }

    pub fn row(&self, r: usize) -> &'a [u8] {
        let n = self.row_bytes();
        &self.data[r * n..(r + 1) * n]
    }
}

/// How activations meet the weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// f32 activations against dequantized weights.
    Exact,
    /// Activations quantized to 8 bits per block, integer dot products.
    Int8,
}

/// Reusable buffers for `matmul`, so a forward pass allocates nothing per op once warm.
#[derive(Default)]
pub struct MatmulScratch {
    /// (n, act_row_bytes): activations in the weight's `vec_dot_type`.
    act: Vec<u8>,
    /// (n_threads, cols): one dequantized weight row per thread.
    rows: Vec<f32>,
}

/// `out (n, rows) = x (n, cols) · wᵀ`: every row of `x` against every row of `w`.
///
/// Panics if the slices disagree with the shapes: shapes come from a validated model, so a
/// mismatch is a bug in the caller, not bad input.
pub fn matmul(pool: &ThreadPool, w: MatRef<'_>, x: &[f32], n: usize, out: &mut [f32], scratch: &mut MatmulScratch, precision: Precision) {
    assert_eq!(w.cols % w.dtype.block_len(), 0, "matmul: {} cols not a multiple of the {} block", w.cols, w.dtype);
    assert_eq!(w.data.len(), w.rows * w.row_bytes(), "matmul: weight bytes do not match {}x{} {}", w.rows, w.cols, w.dtype);
    assert_eq!(x.len(), n * w.cols, "matmul: activations are not (n, cols)");
    assert_eq!(out.len(), n * w.rows, "matmul: output is not (n, rows)");
    match precision {
        Precision::Exact => matmul_exact(pool, w, x, n, out, scratch),
        Precision::Int8 => matmul_int8(pool, w, x, n, out, scratch),
    }
}

/// Each thread dequantizes one weight row at a time and dots it with every token, so the
/// dequantization is paid once per row, not once per token.
fn matmul_exact(pool: &ThreadPool, w: MatRef<'_>, x: &[f32], n: usize, out: &mut [f32], scratch: &mut MatmulScratch) {
    scratch.rows.resize(pool.n_threads() * w.cols, 0.0);
    let rows = SharedSlice::new(&mut scratch.rows);
    let out = SharedSlice::new(out);
    pool.run(&|t, n_threads| {
        // SAFETY: thread t alone uses row buffer t.
        let row = unsafe { rows.range_mut(t * w.cols, w.cols) };
        for r in share(w.rows, t, n_threads, 16) {
            dequantize_row(w.dtype, w.row(r), row);
            for i in 0..n {
                // SAFETY: output column r belongs to this thread alone.
                unsafe { out.write(i * w.rows + r, dot(row, &x[i * w.cols..(i + 1) * w.cols])) };
            }
        }
    });
}

fn matmul_int8(pool: &ThreadPool, w: MatRef<'_>, x: &[f32], n: usize, out: &mut [f32], scratch: &mut MatmulScratch) {
    let act_type = vec_dot_type(w.dtype);
    let act_row_bytes = w.cols / act_type.block_len() * act_type.block_bytes();
    scratch.act.resize(n * act_row_bytes, 0);
    {
        let act = SharedSlice::new(&mut scratch.act);
        pool.run(&|t, n_threads| {
            for i in share(n, t, n_threads, 1) {
                // SAFETY: each thread writes only the rows of its own share.
                let dst = unsafe { act.range_mut(i * act_row_bytes, act_row_bytes) };
                quantize_row(act_type, &x[i * w.cols..(i + 1) * w.cols], dst)
                    .expect("every vec_dot_type can be quantized to");
            }
        });
    }
    let act = &scratch.act;
    let out = SharedSlice::new(out);
    pool.run(&|t, n_threads| {
        for r in share(w.rows, t, n_threads, 16) {
            let w_row = w.row(r);
            for i in 0..n {
                let v = vec_dot(w.dtype, w_row, &act[i * act_row_bytes..(i + 1) * act_row_bytes]);
                // SAFETY: output column r belongs to this thread alone.
                unsafe { out.write(i * w.rows + r, v) };
            }
        }
    });
}

/// A mutable slice shared by the pool's threads, each writing a disjoint part of it.
pub struct SharedSlice<T> {
    ptr: *mut T,
    len: usize,
}

// SAFETY: callers guarantee disjoint writes (see each `unsafe` use).
unsafe impl<T: Send> Sync for SharedSlice<T> {}

impl<T> SharedSlice<T> {
    pub fn new(slice: &mut [T]) -> SharedSlice<T> {
        SharedSlice { ptr: slice.as_mut_ptr(), len: slice.len() }
    }

    /// # Safety
    /// No other thread may access `idx` while this write happens.
    pub unsafe fn write(&self, idx: usize, value: T) {
        assert!(idx < self.len);
        self.ptr.add(idx).write(value);
    }

    /// # Safety
    /// No other thread may access `start..start + len` while the returned slice lives.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn range_mut(&self, start: usize, len: usize) -> &mut [T] {
        assert!(start + len <= self.len);
        std::slice::from_raw_parts_mut(self.ptr.add(start), len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::dot_f32;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// Every format through the threaded entry point equals the scalar row dot, for odd
    /// numbers of rows and tokens.
    #[test]
    fn matmul_matches_row_by_row_reference() {
        let mut seed = 7;
        for dtype in [DType::F32, DType::F16, DType::BF16, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0, DType::Q4_K, DType::Q6_K] {
            let (rows, cols, n) = (37, 512, 5);
            let wf: Vec<f32> = (0..rows * cols).map(|_| lcg(&mut seed)).collect();
            let mut wq = vec![0u8; rows * cols / dtype.block_len() * dtype.block_bytes()];
            let row_bytes = wq.len() / rows;
            for r in 0..rows {
                quantize_row(dtype, &wf[r * cols..(r + 1) * cols], &mut wq[r * row_bytes..(r + 1) * row_bytes]).unwrap();
            }
            let x: Vec<f32> = (0..n * cols).map(|_| lcg(&mut seed)).collect();
            let w = MatRef { dtype, rows, cols, data: &wq };
            for (n_threads, precision) in [(1, Precision::Int8), (3, Precision::Int8), (1, Precision::Exact), (3, Precision::Exact)] {
                let pool = ThreadPool::new(n_threads);
                let mut out = vec![0.0; n * rows];
                matmul(&pool, w, &x, n, &mut out, &mut MatmulScratch::default(), precision);
                for i in 0..n {
                    for r in 0..rows {
                        let exact = dot_f32(dtype, w.row(r), &x[i * cols..(i + 1) * cols]);
                        let got = out[i * rows + r];
                        let mut deq = vec![0.0; cols];
                        dequantize_row(dtype, w.row(r), &mut deq);
                        let scale: f32 = deq.iter().zip(&x[i * cols..]).map(|(a, b)| (a * b).abs()).sum();
                        let budget = match precision {
                            Precision::Int8 => 0.02 * scale + 1e-4,
                            Precision::Exact => 1e-5 * scale + 1e-6,
                        };
                        assert!((got - exact).abs() <= budget, "{dtype} {precision:?} row {r} tok {i}: {got} vs {exact}");
                    }
                }
            }
        }
    }

    /// A token's outputs are bit-identical whether it is multiplied alone or inside a batch.
    #[test]
    fn results_do_not_depend_on_the_batch() {
        let mut seed = 11;
        let pool = ThreadPool::new(2);
        for dtype in [DType::Q4_1, DType::Q8_0, DType::Q4_K, DType::F16] {
            let (rows, cols, n) = (20, 256, 6);
            let wf: Vec<f32> = (0..rows * cols).map(|_| lcg(&mut seed)).collect();
            let row_bytes = cols / dtype.block_len() * dtype.block_bytes();
            let mut wq = vec![0u8; rows * row_bytes];
            for r in 0..rows {
                quantize_row(dtype, &wf[r * cols..(r + 1) * cols], &mut wq[r * row_bytes..(r + 1) * row_bytes]).unwrap();
            }
            let w = MatRef { dtype, rows, cols, data: &wq };
            let x: Vec<f32> = (0..n * cols).map(|_| lcg(&mut seed)).collect();
            for precision in [Precision::Exact, Precision::Int8] {
                let mut batched = vec![0.0; n * rows];
                matmul(&pool, w, &x, n, &mut batched, &mut MatmulScratch::default(), precision);
                for i in 0..n {
                    let mut alone = vec![0.0; rows];
                    matmul(&pool, w, &x[i * cols..(i + 1) * cols], 1, &mut alone, &mut MatmulScratch::default(), precision);
                    assert_eq!(alone, batched[i * rows..(i + 1) * rows], "{dtype} {precision:?} token {i}");
                }
            }
        }
    }
}
