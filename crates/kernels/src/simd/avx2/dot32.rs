//! AVX2 integer dot tiles of the 32-element block formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0)
//! against their Q8_0/Q8_1 activations, one block per 256-bit vector.
//!
//! Per token, lane `j` of one f32 accumulator collects, block after block, the scaled integer
//! sum of lane `j`, and one fixed horizontal sum ends it. A block's weights are decoded once
//! and reused for every token of the tile.

use std::arch::x86_64::*;
use std::marker::PhantomData;

use super::util::{dot_u8_i8, f16, hsum, load256};
use crate::quant::block::{as_blocks, Block};
use crate::quant::q4_0::BlockQ4_0;
use crate::quant::q4_1::BlockQ4_1;
use crate::quant::q5_0::BlockQ5_0;
use crate::quant::q5_1::BlockQ5_1;
use crate::quant::q8_0::BlockQ8_0;
use crate::quant::q8_1::BlockQ8_1;
use crate::simd::acts::as_floats;
use crate::simd::{act_rows, Acts, DotTile};

/// Signed weights (Q4_0, Q5_0, Q8_0) against Q8_0 activations.
pub(super) struct Signed<W>(PhantomData<W>);

/// Weights with an offset (Q4_1, Q5_1) against Q8_1 activations.
pub(super) struct Offset<W>(PhantomData<W>);

/// How a format turns a block into its 32 weights as bytes in element order: signed values for
/// the formats dotted with Q8_0, unsigned levels for those with an offset `m` (with Q8_1).
pub(super) trait Block32: Block {
    /// # Safety
    /// The CPU must have this level's features.
    unsafe fn weights(b: &Self) -> __m256i;
}

impl Block32 for BlockQ4_0 {
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn weights(b: &Self) -> __m256i {
        _mm256_sub_epi8(nibbles(&b.qs), _mm256_set1_epi8(8))
    }
}

impl Block32 for BlockQ5_0 {
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn weights(b: &Self) -> __m256i {
        let levels = _mm256_or_si256(nibbles(&b.qs), fifth_bits(b.qh));
        _mm256_sub_epi8(levels, _mm256_set1_epi8(16))
    }
}

impl Block32 for BlockQ8_0 {
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn weights(b: &Self) -> __m256i {
        load256(&b.qs)
    }
}

impl Block32 for BlockQ4_1 {
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn weights(b: &Self) -> __m256i {
        nibbles(&b.qs)
    }
}

impl Block32 for BlockQ5_1 {
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn weights(b: &Self) -> __m256i {
        _mm256_or_si256(nibbles(&b.qs), fifth_bits(b.qh))
    }
}

/// A block's 4-bit levels: its 16 low nibbles (elements 0-15), then its 16 high nibbles.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn nibbles(qs: &[u8; 16]) -> __m256i {
    // SAFETY: `qs` is 16 bytes; the load is unaligned.
    let q = unsafe { _mm_loadu_si128(qs.as_ptr().cast()) };
    _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16::<4>(q), q), _mm256_set1_epi8(0x0f))
}

/// 16 in every byte whose bit in `qh` is set (bit `j` is element `j`), else 0.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn fifth_bits(qh: [u8; 4]) -> __m256i {
    let v = _mm256_set1_epi32(i32::from_le_bytes(qh));
    // Byte j takes byte j / 8 of qh, then keeps bit j % 8.
    let spread = _mm256_shuffle_epi8(v, _mm256_set_epi64x(0x0303_0303_0303_0303, 0x0202_0202_0202_0202, 0x0101_0101_0101_0101, 0));
    let bits = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
    let set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bits), bits);
    _mm256_and_si256(set, _mm256_set1_epi8(16))
}

/// A weight block's first two f16 fields as f32: `d`, then `m` (Q4_1, Q5_1); for the other
/// formats the second is the start of the next field, read but never used.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn scales<B: Block>(b: &B) -> (f32, f32) {
    const { assert!(std::mem::size_of::<B>() >= 4) };
    // SAFETY: every block is at least 4 bytes and has alignment 1 (the `Block` contract).
    let h = unsafe { std::ptr::read((b as *const B).cast::<[u8; 4]>()) };
    (f16([h[0], h[1]]), f16([h[2], h[3]]))
}

/// Signed weights against Q8_0: `sum_blocks d_w * d_a * sum(w * a)`. `vpmaddubsw` multiplies
/// unsigned by signed bytes, so it takes `|w|` (at most 128) and `a` with `w`'s sign;
/// activations never hold -128, so neither the negation nor the pair sums overflow.
impl<W: Block32> DotTile for Signed<W> {
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn tile<const T: usize>(w_rows: &[u8], row_bytes: usize, act: Acts<'_>, out: *mut f32, out_stride: usize) {
        let n_blocks = row_bytes / std::mem::size_of::<W>();
        let a: [&[BlockQ8_0]; T] = act_rows(act, n_blocks);
        let sc: [&[f32]; T] = std::array::from_fn(|t| as_floats(act.row_prep(t)));
        assert!(sc.iter().all(|s| s.len() >= 2 * n_blocks));
        for (r, w) in w_rows.chunks_exact(row_bytes).enumerate() {
            let w: &[W] = as_blocks(w);
            let mut res = [0.0f32; T];
            let mut acc = [_mm256_setzero_ps(); T];
            for (b, x) in w.iter().enumerate() {
                let wv = W::weights(x);
                let w_abs = _mm256_abs_epi8(wv);
                let dw = scales(x).0;
                for t in 0..T {
                    // SAFETY: b < n_blocks, the length of every activation row, whose scales hold
                    // at least 2 * n_blocks floats (asserted).
                    let (y, da) = unsafe { (a[t].get_unchecked(b), *sc[t].get_unchecked(2 * b)) };
                    let isum = dot_u8_i8(w_abs, _mm256_sign_epi8(load256(&y.qs), wv));
                    acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(dw * da), acc[t]);
                }
            }
            for (o, acc) in res.iter_mut().zip(acc) {
                *o = hsum(acc);
            }
            for (t, v) in res.into_iter().enumerate() {
                // SAFETY: the `DotTile` contract: in bounds and written by this thread alone.
                unsafe { *out.add(t * out_stride + r) = v };
            }
        }
    }
}

/// Offset weights (`w = d * q + m`) against Q8_1: `sum_blocks d_w * d_a * sum(q * a) + m * s_a`,
/// the `m * s` terms in a scalar running total added after the horizontal sum.
impl<W: Block32> DotTile for Offset<W> {
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn tile<const T: usize>(w_rows: &[u8], row_bytes: usize, act: Acts<'_>, out: *mut f32, out_stride: usize) {
        let n_blocks = row_bytes / std::mem::size_of::<W>();
        let a: [&[BlockQ8_1]; T] = act_rows(act, n_blocks);
        let sc: [&[f32]; T] = std::array::from_fn(|t| as_floats(act.row_prep(t)));
        assert!(sc.iter().all(|s| s.len() >= 2 * n_blocks));
        for (r, w) in w_rows.chunks_exact(row_bytes).enumerate() {
            let w: &[W] = as_blocks(w);
            let mut res = [0.0f32; T];
            let mut acc = [_mm256_setzero_ps(); T];
            let mut acc_m = [0.0f32; T];
            for (b, x) in w.iter().enumerate() {
                let wv = W::weights(x);
                let (dw, mw) = scales(x);
                for t in 0..T {
                    // SAFETY: as in `Signed`.
                    let (y, da, sa) = unsafe { (a[t].get_unchecked(b), *sc[t].get_unchecked(2 * b), *sc[t].get_unchecked(2 * b + 1)) };
                    let isum = dot_u8_i8(wv, load256(&y.qs));
                    acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(dw * da), acc[t]);
                    acc_m[t] += mw * sa;
                }
            }
            for ((o, acc), m) in res.iter_mut().zip(acc).zip(acc_m) {
                *o = hsum(acc) + m;
            }
            for (t, v) in res.into_iter().enumerate() {
                // SAFETY: the `DotTile` contract: in bounds and written by this thread alone.
                unsafe { *out.add(t * out_stride + r) = v };
            }
        }
    }
}
