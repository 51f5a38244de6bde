//! AVX-512 integer dots of the 32-element block formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) against
//! their Q8_0/Q8_1 activations, prepared by `prep` in the layout of `group`.
//!
//! Weights are decoded to unsigned levels, sixteen blocks (a group) at a time, once per tile
//! of tokens (see `Tiled`). Per token, eight `vpdpbusd` then leave each block's exact integer
//! sum in its own lane, and lane `l` of one f32 accumulator takes `isum * (d_w * d_a)` for
//! group after group, then the pairs of the row's last blocks the same way (8 lanes a block);
//! one fixed horizontal sum ends it. So the float work of a (token, row) is one fixed sequence
//! that depends on the row's length alone, never on the batch: the integer sums are exact
//! however they are formed, and rows taken two at a time compute each the same way as one
//! alone. Compared with decoding two blocks per vector, a token pays one conversion, multiply
//! and fused add per sixteen blocks instead of per two.

use std::arch::x86_64::*;
use std::marker::PhantomData;

use super::fields::{scales, words_at};
use super::group::{bytes, fifth_bits, nibbles, pair_bytes, pair_fifth_bits, pair_nibbles, pair_scales, quads, row_lines, GROUP_LINES, PAIR_LINES};
use super::util::{dot_lines, running, settle};
use super::{Tiled, TILE};
use crate::quant::block::{as_blocks, Block};
use crate::quant::q4_0::BlockQ4_0;
use crate::quant::q4_1::BlockQ4_1;
use crate::quant::q5_0::BlockQ5_0;
use crate::quant::q5_1::BlockQ5_1;
use crate::quant::q8_0::BlockQ8_0;
use crate::simd::{Acts, Line};

/// A weight format as unsigned levels: `w = d * (level - 128)` for the signed formats (see
/// `group`), or `w = d * level + m` for those with a min (Q4_1, Q5_1), whose `m` meets the
/// activations' `s`.
pub(super) trait Format: Block {
    const HAS_MIN: bool;

    /// A group's levels (see `group`).
    ///
    /// # Safety
    /// The CPU must have this level's features.
    unsafe fn group(blocks: &[Self; 16]) -> [__m512i; 8];

    /// Two blocks' levels in element order.
    ///
    /// # Safety
    /// The CPU must have this level's features.
    unsafe fn pair(b0: &Self, b1: &Self) -> __m512i;
}

/// Levels 0..=15 stand for `w + 8`: 120 more makes them `w + 128`.
impl Format for BlockQ4_0 {
    const HAS_MIN: bool = false;

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
    #[inline]
    unsafe fn group(blocks: &[Self; 16]) -> [__m512i; 8] {
        // SAFETY: 16 blocks, each with its 16 bytes `qs`.
        add_to_all(nibbles(unsafe { quads(blocks[0].qs.as_ptr(), size_of::<Self>()) }), 120)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
    #[inline]
    unsafe fn pair(b0: &Self, b1: &Self) -> __m512i {
        _mm512_add_epi8(pair_nibbles(&b0.qs, &b1.qs), _mm512_set1_epi8(120))
    }
}

/// Levels 0..=31 stand for `w + 16`: 112 more makes them `w + 128`.
impl Format for BlockQ5_0 {
    const HAS_MIN: bool = false;

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
    #[inline]
    unsafe fn group(blocks: &[Self; 16]) -> [__m512i; 8] {
        // SAFETY: 16 blocks, each with its 16 bytes `qs` and 4 bytes `qh`.
        let mut levels = nibbles(unsafe { quads(blocks[0].qs.as_ptr(), size_of::<Self>()) });
        fifth_bits(&mut levels, words_at::<Self, { std::mem::offset_of!(BlockQ5_0, qh) }>(blocks));
        add_to_all(levels, 112)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
    #[inline]
    unsafe fn pair(b0: &Self, b1: &Self) -> __m512i {
        _mm512_add_epi8(pair_fifth_bits(pair_nibbles(&b0.qs, &b1.qs), b0.qh, b1.qh), _mm512_set1_epi8(112))
    }
}

impl Format for BlockQ8_0 {
    const HAS_MIN: bool = false;

    /// The values plus 128: flipping the sign bit.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
    #[inline]
    unsafe fn group(blocks: &[Self; 16]) -> [__m512i; 8] {
        // SAFETY: 16 blocks, each with its 32 bytes `qs`.
        let mut levels = unsafe { bytes(blocks[0].qs.as_ptr().cast(), size_of::<Self>()) };
        for l in &mut levels {
            *l = _mm512_xor_si512(*l, _mm512_set1_epi8(-128));
        }
        levels
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
    #[inline]
    unsafe fn pair(b0: &Self, b1: &Self) -> __m512i {
        _mm512_xor_si512(pair_bytes(&b0.qs, &b1.qs), _mm512_set1_epi8(-128))
    }
}

impl Format for BlockQ4_1 {
    const HAS_MIN: bool = true;

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
    #[inline]
    unsafe fn group(blocks: &[Self; 16]) -> [__m512i; 8] {
        // SAFETY: 16 blocks, each with its 16 bytes `qs`.
        nibbles(unsafe { quads(blocks[0].qs.as_ptr(), size_of::<Self>()) })
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
    #[inline]
    unsafe fn pair(b0: &Self, b1: &Self) -> __m512i {
        pair_nibbles(&b0.qs, &b1.qs)
    }
}

impl Format for BlockQ5_1 {
    const HAS_MIN: bool = true;

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
    #[inline]
    unsafe fn group(blocks: &[Self; 16]) -> [__m512i; 8] {
        // SAFETY: 16 blocks, each with its 16 bytes `qs` and 4 bytes `qh`.
        let mut levels = nibbles(unsafe { quads(blocks[0].qs.as_ptr(), size_of::<Self>()) });
        fifth_bits(&mut levels, words_at::<Self, { std::mem::offset_of!(BlockQ5_1, qh) }>(blocks));
        levels
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
    #[inline]
    unsafe fn pair(b0: &Self, b1: &Self) -> __m512i {
        pair_fifth_bits(pair_nibbles(&b0.qs, &b1.qs), b0.qh, b1.qh)
    }
}

/// Every level plus `by` (wrapping, which no format reaches).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
fn add_to_all(mut levels: [__m512i; 8], by: i8) -> [__m512i; 8] {
    for l in &mut levels {
        *l = _mm512_add_epi8(*l, _mm512_set1_epi8(by));
    }
    levels
}

/// The dots of a 32-element format `W`.
pub(super) struct Dot32<W>(PhantomData<W>);

impl<W: Format> Tiled for Dot32<W> {
    const PAIRS_FROM: usize = 2;

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
    #[inline]
    unsafe fn tile<const R: usize>(w_rows: &[u8], row_bytes: usize, act: Acts<'_>, out: *mut f32, out_stride: usize) {
        let n_blocks = row_bytes / size_of::<W>();
        let (n_groups, n_pairs) = (n_blocks / 16, (n_blocks % 16).div_ceil(2));
        let n_tok = act.n();
        assert!(n_tok <= TILE && act.prep_per_row() == row_lines(n_blocks), "activations not prepared for {n_blocks} blocks");
        let mut prep = [std::ptr::null::<Line>(); TILE];
        for (t, p) in prep.iter_mut().enumerate().take(n_tok) {
            *p = act.row_prep(t).as_ptr();
        }
        let last = n_groups + n_pairs - 1;
        let mut acc = [[_mm512_setzero_ps(); R]; TILE];
        for (rb, w) in w_rows.chunks_exact(R * row_bytes).enumerate() {
            let w: [&[W]; R] = array_of!(R, &[][..], |r| as_blocks(&w[r * row_bytes..(r + 1) * row_bytes]));
            let out = out.wrapping_add(R * rb);
            for g in 0..n_groups {
                let (mut levels, mut dw, mut mw) = ([[_mm512_setzero_si512(); 8]; R], [_mm512_setzero_ps(); R], [_mm512_setzero_ps(); R]);
                for r in 0..R {
                    let blocks: &[W; 16] = w[r][16 * g..16 * g + 16].try_into().expect("16 blocks");
                    // SAFETY: the features are present.
                    levels[r] = unsafe { W::group(blocks) };
                    (dw[r], mw[r]) = scales(blocks);
                }
                for t in 0..n_tok {
                    // SAFETY: group g's lines lie inside the token's prepared row (asserted length);
                    // `out` is the caller's promise.
                    unsafe {
                        let v = step::<W, 8, R>(&levels, &dw, &mw, prep[t].add(g * GROUP_LINES), running(&acc[t], g == 0));
                        settle(v, &mut acc[t], g == last, out.wrapping_add(t * out_stride));
                    }
                }
            }
            for q in 0..n_pairs {
                let b = 16 * n_groups + 2 * q;
                let both = b + 1 < n_blocks;
                let (mut levels, mut dw, mut mw) = ([[_mm512_setzero_si512(); 1]; R], [_mm512_setzero_ps(); R], [_mm512_setzero_ps(); R]);
                for r in 0..R {
                    let (w0, w1) = (&w[r][b], &w[r][if both { b + 1 } else { b }]);
                    // SAFETY: the features are present.
                    levels[r] = [unsafe { W::pair(w0, w1) }];
                    (dw[r], mw[r]) = pair_scales(w0, w1, both);
                }
                let u = n_groups + q;
                for t in 0..n_tok {
                    // SAFETY: pair q's lines lie inside the token's prepared row (asserted length);
                    // `out` is the caller's promise.
                    unsafe {
                        let v = step::<W, 1, R>(&levels, &dw, &mw, prep[t].add(n_groups * GROUP_LINES + q * PAIR_LINES), running(&acc[t], u == 0));
                        settle(v, &mut acc[t], u == last, out.wrapping_add(t * out_stride));
                    }
                }
            }
        }
    }
}

/// One token's integer sums and float update for `R` rows: `acc + isum * (dw * da)`, plus
/// `m * s` for the formats with a min. Signed formats start `isum` from the activations'
/// offset sums, so it ends as the exact sum of `w * a` (see `group`).
///
/// # Safety
/// `p` must point at `K + 2` prepared lines.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
unsafe fn step<W: Format, const K: usize, const R: usize>(levels: &[[__m512i; K]; R], dw: &[__m512; R], mw: &[__m512; R], p: *const Line, mut acc: [__m512; R]) -> [__m512; R] {
    // SAFETY (both): lines 0..K + 2 are readable, and a `Line` is 64 bytes aligned to 64.
    let line = |i: usize| unsafe { _mm512_load_si512(p.add(i).cast()) };
    let extra = line(K + 1);
    let start = if W::HAS_MIN { _mm512_setzero_si512() } else { extra };
    let isum = unsafe { dot_lines(array_of!(R, &levels[0], |r| &levels[r]), start, p) };
    let da = _mm512_castsi512_ps(line(K));
    for r in 0..R {
        acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[r]), _mm512_mul_ps(dw[r], da), acc[r]);
        if W::HAS_MIN {
            acc[r] = _mm512_fmadd_ps(mw[r], _mm512_castsi512_ps(extra), acc[r]);
        }
    }
    acc
}
