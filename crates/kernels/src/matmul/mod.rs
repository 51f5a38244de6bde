//! The one entry point for products of a weight matrix with activations: `matmul`. Two
//! precisions: `Exact` multiplies f32 activations by the dequantized weights (as accurate as the
//! file allows), `Int8` quantizes the activations once per call into the weight format's
//! dot-product partner type and uses integer dot products (llama.cpp's numerics, much less
//! arithmetic). Either way the weight rows are split across the thread pool, and each output
//! value is computed by the same operations whatever the number of tokens, its place in the
//! batch or the number of threads, so results never depend on what else is in the batch.
//! Callers choose a precision, never a kernel: the SIMD level comes from `simd::best()`.

mod exact;
mod int8;
#[cfg(test)]
mod tests;

use crate::pool::ThreadPool;
use crate::simd::{self, Kernels, Line};
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
    /// As Exact, but with both rounded to bf16 (products still summed in f32) where the CPU
    /// has bf16 dot products, which do twice the multiply-adds per instruction; elsewhere the
    /// same as Exact.
    Bf16,
    /// Activations quantized to 8 bits per block, integer dot products.
    Int8,
}

/// Reusable buffers for `matmul`, so a forward pass allocates nothing per op once warm.
#[derive(Default)]
pub struct MatmulScratch {
    /// (n, act_row_bytes): activations in the weight's `vec_dot_type` (Int8).
    act: Vec<u8>,
    /// (n, lines per row): the SIMD level's prepared form of those rows (Int8).
    act_prep: Vec<Line>,
    /// Exact and Bf16, tiled: (n_tiles, units, nr) activations packed token-interleaved for the
    /// GEMM.
    packed: Vec<f32>,
    /// Exact and Bf16: per thread, a (KC units, mr) weight panel and the (mr, KC) dequantized
    /// rows it is packed from (tiled), or one dequantized weight row (scalar level).
    panels: Vec<f32>,
}

/// `out (n, rows) = x (n, cols) · wᵀ`: every row of `x` against every row of `w`.
///
/// Panics if the slices disagree with the shapes: shapes come from a validated model, so a
/// mismatch is a bug in the caller, not bad input.
pub fn matmul(pool: &ThreadPool, w: MatRef<'_>, x: &[f32], n: usize, out: &mut [f32], scratch: &mut MatmulScratch, precision: Precision) {
    matmul_with(simd::best(), pool, w, x, n, out, scratch, precision);
}

/// `matmul` on the kernels of a chosen SIMD level (for tests and benchmarks).
#[allow(clippy::too_many_arguments)]
pub fn matmul_with(kernels: &Kernels, pool: &ThreadPool, w: MatRef<'_>, x: &[f32], n: usize, out: &mut [f32], scratch: &mut MatmulScratch, precision: Precision) {
    assert_eq!(w.cols % w.dtype.block_len(), 0, "matmul: {} cols not a multiple of the {} block", w.cols, w.dtype);
    assert_eq!(w.data.len(), w.rows * w.row_bytes(), "matmul: weight bytes do not match {}x{} {}", w.rows, w.cols, w.dtype);
    assert_eq!(x.len(), n * w.cols, "matmul: activations are not (n, cols)");
    assert_eq!(out.len(), n * w.rows, "matmul: output is not (n, rows)");
    if n == 0 || w.rows == 0 {
        return;
    }
    if w.cols == 0 {
        out.fill(0.0);
        return;
    }
    match precision {
        Precision::Exact => exact::matmul(kernels, pool, w, x, n, out, scratch, false),
        Precision::Bf16 => exact::matmul(kernels, pool, w, x, n, out, scratch, true),
        Precision::Int8 => int8::matmul(kernels, pool, w, x, n, out, scratch),
    }
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
        // SAFETY: in bounds (checked); exclusivity is the caller's promise.
        unsafe { self.ptr.add(idx).write(value) };
    }

    /// # Safety
    /// No other thread may access `start..start + len` while the returned slice lives.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn range_mut(&self, start: usize, len: usize) -> &mut [T] {
        assert!(start + len <= self.len);
        // SAFETY: in bounds (checked); exclusivity is the caller's promise.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), len) }
    }

    /// The base pointer, for kernels that write strided tiles. Writing through it carries the
    /// same promise as `write`: only elements no other thread touches, and only below `len`.
    pub(crate) fn as_ptr(&self) -> *mut T {
        self.ptr
    }
}

/// A 64-byte aligned window of `len` floats inside `buf`, growing `buf` if needed (never
/// shrinking, so a warm scratch allocates nothing).
fn aligned(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    const ALIGN: usize = 64 / std::mem::size_of::<f32>();
    if buf.len() < len + ALIGN {
        buf.resize(len + ALIGN, 0.0);
    }
    let skip = buf.as_ptr().align_offset(64).min(ALIGN);
    &mut buf[skip..skip + len]
}
