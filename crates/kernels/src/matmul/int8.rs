//! `Precision::Int8`: the activations are quantized once per call to the weight's
//! `vec_dot_type`, then each thread dots its share of the weight rows with every token (the
//! level's dot kernel keeps a row in L1 across the tokens, so weights are read once per call).

use super::{MatRef, MatmulScratch, SharedSlice};
use crate::pool::{share, ThreadPool};
use crate::simd::{act_scale_count, act_scales, Acts, Kernels};
use crate::vec_dot_type;

/// Below this many tokens the calling thread quantizes the activations itself: a row takes
/// less time than a round trip through the pool.
const SERIAL_QUANTIZE: usize = 4;

/// Rows per unit of work: a cache line of output for the single-token case, and enough rows
/// that the threads never share one.
const ROW_ALIGN: usize = 16;

pub(super) fn matmul(k: &Kernels, pool: &ThreadPool, w: MatRef<'_>, x: &[f32], n: usize, out: &mut [f32], scratch: &mut MatmulScratch) {
    let act_type = vec_dot_type(w.dtype);
    let act_row_bytes = w.cols / act_type.block_len() * act_type.block_bytes();
    if scratch.act.len() < n * act_row_bytes {
        scratch.act.resize(n * act_row_bytes, 0);
    }
    let act = &mut scratch.act[..n * act_row_bytes];
    if n <= SERIAL_QUANTIZE {
        for (xi, ai) in x.chunks_exact(w.cols).zip(act.chunks_exact_mut(act_row_bytes)) {
            k.quantize_row(act_type, xi, ai);
        }
    } else {
        let shared = SharedSlice::new(act);
        pool.run(&|t, n_threads| {
            for i in share(n, t, n_threads, 1) {
                // SAFETY: each thread writes only the rows of its own share.
                let dst = unsafe { shared.range_mut(i * act_row_bytes, act_row_bytes) };
                k.quantize_row(act_type, &x[i * w.cols..(i + 1) * w.cols], dst);
            }
        });
    }
    let per_row = act_scale_count(act_type, w.cols);
    if scratch.act_scales.len() < n * per_row {
        scratch.act_scales.resize(n * per_row, 0.0);
    }
    let scales = &mut scratch.act_scales[..n * per_row];
    if per_row > 0 {
        for (row, dst) in scratch.act[..n * act_row_bytes].chunks_exact(act_row_bytes).zip(scales.chunks_exact_mut(per_row)) {
            act_scales(act_type, row, dst);
        }
    }
    let act = Acts::new(&scratch.act[..n * act_row_bytes], act_row_bytes, scales, per_row);
    let out = SharedSlice::new(out);
    let row_bytes = w.row_bytes();
    pool.run(&|t, n_threads| {
        let rows = share(w.rows, t, n_threads, ROW_ALIGN);
        if rows.is_empty() {
            return;
        }
        let w_rows = &w.data[rows.start * row_bytes..rows.end * row_bytes];
        // SAFETY: this thread alone writes output columns `rows` (of every token), which lie
        // inside `out`: (n, w.rows).
        unsafe { k.vec_dot_rows_into(w.dtype, w.cols, w_rows, act, out.as_ptr().add(rows.start), w.rows) };
    });
}
