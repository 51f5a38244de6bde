//! `Precision::Int8`: the activations are quantized once per call to the weight's
//! `vec_dot_type` and prepared for the SIMD level's kernels, then each thread dots its share of
//! the weight rows with every token (the level's dot kernel keeps a row in L1 across the
//! tokens, so weights are read once per call).

use super::{MatRef, MatmulScratch, SharedSlice};
use crate::pool::{share, ThreadPool};
use crate::simd::{Acts, Kernels, Line};
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
    let per_row = k.prep_lines(act_type, w.cols);
    if scratch.act.len() < n * act_row_bytes {
        scratch.act.resize(n * act_row_bytes, 0);
    }
    if scratch.act_prep.len() < n * per_row {
        scratch.act_prep.resize(n * per_row, Line::ZERO);
    }
    let act = &mut scratch.act[..n * act_row_bytes];
    let prep = &mut scratch.act_prep[..n * per_row];
    let quantize = |i: usize, dst: &mut [u8], dst_prep: &mut [Line]| {
        k.quantize_row(act_type, &x[i * w.cols..(i + 1) * w.cols], dst);
        k.prepare_row(act_type, w.cols, dst, dst_prep);
    };
    if n <= SERIAL_QUANTIZE {
        for i in 0..n {
            quantize(i, &mut act[i * act_row_bytes..(i + 1) * act_row_bytes], &mut prep[i * per_row..(i + 1) * per_row]);
        }
    } else {
        let (shared, shared_prep) = (SharedSlice::new(act), SharedSlice::new(prep));
        pool.run(&|t, n_threads| {
            for i in share(n, t, n_threads, 1) {
                // SAFETY: each thread writes only the rows of its own share.
                let (dst, dst_prep) = unsafe { (shared.range_mut(i * act_row_bytes, act_row_bytes), shared_prep.range_mut(i * per_row, per_row)) };
                quantize(i, dst, dst_prep);
            }
        });
    }
    let act = Acts::new(&scratch.act[..n * act_row_bytes], act_row_bytes, &scratch.act_prep[..n * per_row], per_row);
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
