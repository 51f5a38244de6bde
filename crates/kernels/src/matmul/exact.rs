//! `Precision::Exact` and `Precision::Bf16`: f32 activations against dequantized weights, in f32
//! or, where the level has a bf16 GEMM, both rounded to bf16 (Bf16 without one is Exact).
//!
//! With a SIMD level this is a cache-tiled GEMM. The activations are packed once per call,
//! token-interleaved in tiles of `nr` tokens, in the GEMM's units (an f32, or a pair of bf16).
//! Each thread owns a contiguous share of the weight rows and walks k in blocks of `KC`: for
//! each panel of `mr` rows it dequantizes the block and packs it into a (KC, mr) panel (128 KiB
//! in bf16, 256 KiB in f32: in L2 on the CPUs measured, while every token tile passes over
//! it), then runs the register-blocked microkernel over all token tiles. Every output is one chain of
//! multiply-adds over k in order, started from zero in the first k block and continued from the
//! stored partial sum in the next, so its value depends neither on the tile it falls in nor on
//! the number of tokens or threads.
//!
//! The scalar level keeps the reference: one dequantized row at a time, dotted with each token.

use super::{aligned, MatRef, MatmulScratch, SharedSlice};
use crate::pool::{share, ThreadPool};
use crate::simd::{Gemm, Kernels};

/// Columns (k) per block: a multiple of every block length, and small enough that a panel of
/// weights and a tile of activations stay in L2 (1 MiB per core on Zen 4, 2 MiB on Sapphire
/// Rapids; a smaller L2 costs panel reloads, not correctness). Each block beyond the first
/// re-reads and re-writes every output, which for a large matrix lives in L3 or DRAM: going
/// from 256 to 2048 took the 1B model's prompts from 145 to 195 tokens/s and SmolLM2's from
/// 1180 to 1330.
const KC: usize = 2048;

#[allow(clippy::too_many_arguments)]
pub(super) fn matmul(k: &Kernels, pool: &ThreadPool, w: MatRef<'_>, x: &[f32], n: usize, out: &mut [f32], scratch: &mut MatmulScratch, bf16: bool) {
    match k.gemm_bf16().filter(|_| bf16).or(k.gemm()) {
        Some(gemm) => tiled(k, gemm, pool, w, x, n, out, scratch),
        None => row_by_row(k, pool, w, x, n, out, scratch),
    }
}

/// The reference path: each thread dequantizes one weight row at a time and dots it with every
/// token, so the dequantization is paid once per row, not once per token.
fn row_by_row(k: &Kernels, pool: &ThreadPool, w: MatRef<'_>, x: &[f32], n: usize, out: &mut [f32], scratch: &mut MatmulScratch) {
    let cols = w.cols;
    let rows = SharedSlice::new(aligned(&mut scratch.panels, pool.n_threads() * cols));
    let out = SharedSlice::new(out);
    pool.run(&|t, n_threads| {
        // SAFETY: thread t alone uses row buffer t.
        let row = unsafe { rows.range_mut(t * cols, cols) };
        for r in share(w.rows, t, n_threads, 16) {
            k.dequantize_row(w.dtype, w.row(r), row);
            for i in 0..n {
                // SAFETY: output column r belongs to this thread alone.
                unsafe { out.write(i * w.rows + r, k.dot(row, &x[i * cols..(i + 1) * cols])) };
            }
        }
    });
}

#[allow(clippy::too_many_arguments)]
fn tiled(k: &Kernels, gemm: &Gemm, pool: &ThreadPool, w: MatRef<'_>, x: &[f32], n: usize, out: &mut [f32], scratch: &mut MatmulScratch) {
    let (mr, nr, cols, kpu) = (gemm.mr, gemm.nr, w.cols, gemm.k_per_unit);
    let n_tiles = n.div_ceil(nr);
    // Units per row, and per (full) k block.
    let (units, kc_units) = (cols.div_ceil(kpu), KC / kpu);

    // (n_tiles, units, nr): token j of tile t at lane j of each unit step (zeros past the last
    // token, which no kernel reads).
    let packed = aligned(&mut scratch.packed, n_tiles * units * nr);
    let pack = |tile: usize, dst: &mut [f32]| {
        let n_tok = nr.min(n - tile * nr);
        let src = &x[tile * nr * cols..(tile * nr + n_tok) * cols];
        assert!(dst.len() >= units * nr && n_tok <= gemm.lanes && nr <= gemm.lanes);
        // SAFETY: the level's features are present (a `Gemm` comes only from the `Kernels` of a
        // supported level); `src` holds n_tok rows of `cols`, `dst` `units` rows of nr.
        unsafe { (gemm.transpose)(src.as_ptr(), cols, n_tok, cols, dst.as_mut_ptr(), nr, nr) };
    };
    if n_tiles == 1 {
        pack(0, packed);
    } else {
        let shared = SharedSlice::new(packed);
        pool.run(&|t, n_threads| {
            for tile in share(n_tiles, t, n_threads, 1) {
                // SAFETY: each thread writes only the tiles of its own share.
                pack(tile, unsafe { shared.range_mut(tile * units * nr, units * nr) });
            }
        });
    }
    let packed: &[f32] = packed;

    // Per thread: a (kc_units, mr) panel, then the (mr, KC) rows it is packed from; a multiple
    // of 16 floats keeps every panel 64-byte aligned.
    assert!(mr % gemm.lanes == 0 && KC.is_multiple_of(kpu), "a panel is a whole number of transposes");
    let per_thread = (kc_units * mr + KC * mr).next_multiple_of(16);
    let panels = SharedSlice::new(aligned(&mut scratch.panels, pool.n_threads() * per_thread));
    let out = SharedSlice::new(out);
    let (block_len, block_bytes) = (w.dtype.block_len(), w.dtype.block_bytes());
    pool.run(&|t, n_threads| {
        let rows = share(w.rows, t, n_threads, mr);
        if rows.is_empty() {
            return;
        }
        // SAFETY: thread t alone uses panel t.
        let (panel, row_buf) = unsafe { panels.range_mut(t * per_thread, per_thread) }.split_at_mut(kc_units * mr);
        for k0 in (0..cols).step_by(KC) {
            let kc = KC.min(cols - k0);
            let bytes = k0 / block_len * block_bytes..(k0 + kc) / block_len * block_bytes;
            for p0 in rows.clone().step_by(mr) {
                let n_rows = mr.min(rows.end - p0);
                for r in 0..n_rows {
                    k.dequantize_row(w.dtype, &w.row(p0 + r)[bytes.clone()], &mut row_buf[r * KC..r * KC + kc]);
                }
                for g in (0..mr).step_by(gemm.lanes) {
                    // Rows past n_rows come out as zeros: never stored, but finite.
                    let n_src = n_rows.saturating_sub(g).min(gemm.lanes);
                    // SAFETY: supported level (as above); `row_buf` holds n_src rows of kc floats
                    // KC apart from row g, and the panel kc.div_ceil(kpu) rows of mr units.
                    unsafe { (gemm.transpose)(row_buf[g * KC..].as_ptr(), KC, n_src, kc, panel[g..].as_mut_ptr(), mr, gemm.lanes) };
                }
                for tile in 0..n_tiles {
                    let n_tok = nr.min(n - tile * nr);
                    let kc_u = kc.div_ceil(kpu);
                    let xp = &packed[(tile * units + k0 / kpu) * nr..][..kc_u * nr];
                    let c_start = tile * nr * w.rows + p0;
                    assert!(c_start + (n_tok - 1) * w.rows + n_rows <= n * w.rows);
                    // SAFETY: the level's features are present (a `Gemm` comes only from the
                    // `Kernels` of a supported level); the panel holds kc_u * mr units, `xp`
                    // kc_u * nr; output rows p0..p0 + n_rows of tokens in this tile are in bounds
                    // (asserted) and written by this thread alone (its share of the rows).
                    unsafe { (gemm.kernels[n_tok - 1])(kc_u, panel.as_ptr(), xp.as_ptr(), out.as_ptr().add(c_start), w.rows, n_rows, k0 > 0) };
                }
            }
        }
    });
}
