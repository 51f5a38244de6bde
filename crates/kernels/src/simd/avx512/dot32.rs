//! AVX-512 integer dot tiles of the 32-element block formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0)
//! against their Q8_0/Q8_1 activations, two blocks per 512-bit vector.
//!
//! Per token, lane `j` of one f32 accumulator collects, block pair after block pair, the
//! scaled integer sum of lane `j` (lanes 0-7 the even block, 8-15 the odd one); an odd last
//! block runs as a pair with itself whose second half is scaled by zero. One fixed horizontal
//! sum ends it. The weights of a pair are decoded once and reused for every token of the tile.

use std::arch::x86_64::*;
use std::marker::PhantomData;

use super::util::{hsum, load128, load256};
use crate::quant::block::{as_blocks, Block};
use crate::quant::q4_0::BlockQ4_0;
use crate::quant::q4_1::BlockQ4_1;
use crate::quant::q5_0::BlockQ5_0;
use crate::quant::q5_1::BlockQ5_1;
use crate::quant::q8_0::BlockQ8_0;
use crate::quant::q8_1::BlockQ8_1;
use crate::simd::{act_rows, Acts, DotTile};

/// Signed weights (Q4_0, Q5_0, Q8_0) against Q8_0 activations.
pub(super) struct Signed<W>(PhantomData<W>);

/// Weights with an offset (Q4_1, Q5_1) against Q8_1 activations.
pub(super) struct Offset<W>(PhantomData<W>);

/// How a format turns two blocks into their 64 weights as bytes, block 0's 32 then block 1's,
/// each in element order: signed values for the formats dotted with Q8_0, unsigned levels for
/// those with an offset `m` (dotted with Q8_1).
trait Pair: Block {
    /// # Safety
    /// The CPU must have this level's features.
    unsafe fn weights(b0: &Self, b1: &Self) -> __m512i;
}

impl Pair for BlockQ4_0 {
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
    #[inline]
    unsafe fn weights(b0: &Self, b1: &Self) -> __m512i {
        _mm512_sub_epi8(nibbles(&b0.qs, &b1.qs), _mm512_set1_epi8(8))
    }
}

impl Pair for BlockQ5_0 {
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
    #[inline]
    unsafe fn weights(b0: &Self, b1: &Self) -> __m512i {
        let levels = fifth_bits(nibbles(&b0.qs, &b1.qs), b0.qh, b1.qh);
        _mm512_sub_epi8(levels, _mm512_set1_epi8(16))
    }
}

impl Pair for BlockQ8_0 {
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
    #[inline]
    unsafe fn weights(b0: &Self, b1: &Self) -> __m512i {
        pair_bytes(&b0.qs, &b1.qs)
    }
}

impl Pair for BlockQ4_1 {
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
    #[inline]
    unsafe fn weights(b0: &Self, b1: &Self) -> __m512i {
        nibbles(&b0.qs, &b1.qs)
    }
}

impl Pair for BlockQ5_1 {
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
    #[inline]
    unsafe fn weights(b0: &Self, b1: &Self) -> __m512i {
        fifth_bits(nibbles(&b0.qs, &b1.qs), b0.qh, b1.qh)
    }
}

/// The 4-bit levels of two blocks: per block its 16 low nibbles (elements 0-15), then its 16
/// high nibbles (elements 16-31).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
fn nibbles(q0: &[u8; 16], q1: &[u8; 16]) -> __m512i {
    let both = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(load128(q0)), load128(q1));
    // 128-bit lanes [q0, q0, q1, q1], the second copy of each shifted down by a nibble.
    let z = _mm512_permutexvar_epi64(_mm512_set_epi64(3, 2, 3, 2, 1, 0, 1, 0), _mm512_castsi256_si512(both));
    let z = _mm512_srlv_epi64(z, _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0));
    _mm512_and_si512(z, _mm512_set1_epi8(0x0f))
}

/// Adds 16 to every level whose fifth bit is set (bit `j` of a block's `qh` is element `j`).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
fn fifth_bits(levels: __m512i, qh0: [u8; 4], qh1: [u8; 4]) -> __m512i {
    let mask = u64::from(u32::from_le_bytes(qh0)) | u64::from(u32::from_le_bytes(qh1)) << 32;
    _mm512_mask_add_epi8(levels, mask, levels, _mm512_set1_epi8(16))
}

/// Two blocks' 32 bytes of values, one after the other.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
fn pair_bytes(q0: &[i8; 32], q1: &[i8; 32]) -> __m512i {
    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(load256(q0)), load256(q1))
}

/// The first two f16 fields of two weight blocks as f32: [b0's d, b0's second field, b1's d,
/// b1's second field]. The second field is `m` (Q4_1, Q5_1); for the other formats it is the
/// start of the next field, read but never used.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
fn pair_scales<B: Block>(b0: &B, b1: &B) -> __m128 {
    const { assert!(std::mem::size_of::<B>() >= 4) };
    // SAFETY: every block is at least 4 bytes and has alignment 1 (the `Block` contract).
    let (h0, h1) = unsafe { (std::ptr::read((b0 as *const B).cast::<[u8; 4]>()), std::ptr::read((b1 as *const B).cast::<[u8; 4]>())) };
    let bits = u64::from(u32::from_le_bytes(h0)) | u64::from(u32::from_le_bytes(h1)) << 32;
    _mm_cvtph_ps(_mm_cvtsi64_si128(bits as i64))
}

/// Lanes 0-7 from lane 0 of `s`, lanes 8-15 from its lane 2 (the two blocks' scales).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
fn spread(s: __m128) -> __m512 {
    _mm512_permutexvar_ps(_mm512_set_epi32(2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0), _mm512_castps128_ps512(s))
}

/// Keeps both blocks' scales, or (for an odd last block paired with itself) only the first's.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
fn keep_mask(both: bool) -> __m128 {
    _mm_castsi128_ps(if both { _mm_set1_epi32(-1) } else { _mm_set_epi32(0, 0, -1, -1) })
}

/// The activation scales `[d, s]` of blocks `b` and `b + 1`, or of `b` alone (zeros after) at
/// the end of an odd row.
///
/// # Safety
/// `scales` holds `[d, s]` for blocks up to `b + 1` (`b` alone when `!both`).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
unsafe fn act_scales(scales: &[f32], b: usize, both: bool) -> __m128 {
    let p = scales.as_ptr().wrapping_add(2 * b);
    // SAFETY: the caller's promise.
    unsafe {
        if both {
            _mm_loadu_ps(p)
        } else {
            _mm_castpd_ps(_mm_load_sd(p.cast()))
        }
    }
}

/// Signed weights (Q4_0, Q5_0, Q8_0) against Q8_0: `sum_blocks d_w * d_a * sum(w * a)`. VNNI
/// multiplies unsigned by signed bytes, so it takes `|w|` and `a` with `w`'s sign. Activations
/// never hold -128 (the quantizer's range is -127..=127), so the negation cannot overflow.
///
/// One weight row at a time: interleaving two rows measured up to twice slower when the
/// weights stream from DRAM (Q8_0 rows, 2 threads), for no gain from cache.
impl<W: Pair> DotTile for Signed<W> {
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
    #[inline]
    unsafe fn tile<const T: usize>(w_rows: &[u8], row_bytes: usize, act: Acts<'_>, out: *mut f32, out_stride: usize) {
        let n_blocks = row_bytes / std::mem::size_of::<W>();
        let a: [&[BlockQ8_0]; T] = act_rows(act, n_blocks);
        let sc: [&[f32]; T] = std::array::from_fn(|t| act.row_scales(t));
        assert!(sc.iter().all(|s| s.len() == 2 * n_blocks));
        for (r, w) in w_rows.chunks_exact(row_bytes).enumerate() {
            let w: &[W] = as_blocks(w);
            let mut acc = [_mm512_setzero_ps(); T];
            let mut b = 0;
            while b < n_blocks {
                let both = b + 1 < n_blocks;
                let b1 = if both { b + 1 } else { b };
                // SAFETY (every unchecked access below): b and b1 are below n_blocks, the length
                // of the weight row and of every activation row (checked by `act_rows`), whose
                // scales hold 2 * n_blocks floats (asserted).
                let (w0, w1) = unsafe { (w.get_unchecked(b), w.get_unchecked(b1)) };
                let wv = W::weights(w0, w1);
                let (w_abs, w_neg) = (_mm512_abs_epi8(wv), _mm512_movepi8_mask(wv));
                let ws = _mm_and_ps(pair_scales(w0, w1), keep_mask(both));
                for t in 0..T {
                    let (a0, a1) = unsafe { (a[t].get_unchecked(b), a[t].get_unchecked(b1)) };
                    let av = pair_bytes(&a0.qs, &a1.qs);
                    let av = _mm512_mask_sub_epi8(av, w_neg, _mm512_setzero_si512(), av);
                    let isum = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w_abs, av);
                    let s = _mm_mul_ps(ws, unsafe { act_scales(sc[t], b, both) });
                    acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), spread(s), acc[t]);
                }
                b += 2;
            }
            for (t, acc) in acc.into_iter().enumerate() {
                // SAFETY: the `DotTile` contract: in bounds and written by this thread alone.
                unsafe { *out.add(t * out_stride + r) = hsum(acc) };
            }
        }
    }
}

/// Offset weights (Q4_1, Q5_1: `w = d * q + m`) against Q8_1:
/// `sum_blocks d_w * d_a * sum(q * a) + m * s_a`. The `m * s` terms gather in lanes 1 and 3 of a
/// second accumulator and are added after the horizontal sum.
impl<W: Pair> DotTile for Offset<W> {
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
    #[inline]
    unsafe fn tile<const T: usize>(w_rows: &[u8], row_bytes: usize, act: Acts<'_>, out: *mut f32, out_stride: usize) {
        let n_blocks = row_bytes / std::mem::size_of::<W>();
        let a: [&[BlockQ8_1]; T] = act_rows(act, n_blocks);
        let sc: [&[f32]; T] = std::array::from_fn(|t| act.row_scales(t));
        assert!(sc.iter().all(|s| s.len() == 2 * n_blocks));
        for (r, w) in w_rows.chunks_exact(row_bytes).enumerate() {
            let w: &[W] = as_blocks(w);
            let mut acc = [_mm512_setzero_ps(); T];
            let mut acc_m = [_mm_setzero_ps(); T];
            let mut b = 0;
            while b < n_blocks {
                let both = b + 1 < n_blocks;
                let b1 = if both { b + 1 } else { b };
                // SAFETY (every unchecked access below): as in `Signed`.
                let (w0, w1) = unsafe { (w.get_unchecked(b), w.get_unchecked(b1)) };
                let wv = W::weights(w0, w1);
                let ws = _mm_and_ps(pair_scales(w0, w1), keep_mask(both));
                for t in 0..T {
                    let (a0, a1) = unsafe { (a[t].get_unchecked(b), a[t].get_unchecked(b1)) };
                    let isum = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv, pair_bytes(&a0.qs, &a1.qs));
                    let s = _mm_mul_ps(ws, unsafe { act_scales(sc[t], b, both) });
                    acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), spread(s), acc[t]);
                    acc_m[t] = _mm_add_ps(acc_m[t], s);
                }
                b += 2;
            }
            for t in 0..T {
                let m = acc_m[t];
                let m_sum = _mm_cvtss_f32(_mm_movehdup_ps(m)) + _mm_cvtss_f32(_mm_shuffle_ps::<3>(m, m));
                // SAFETY: the `DotTile` contract: in bounds and written by this thread alone.
                unsafe { *out.add(t * out_stride + r) = hsum(acc[t]) + m_sum };
            }
        }
    }
}
