//! AVX2 integer dot tiles of the K-quants (Q2_K..Q6_K) against Q8_K activations.
//!
//! Each 32-element chunk of a super-block is decoded once into unsigned levels; per token,
//! `vpmaddubsw` forms pair sums of level * activation and `vpmaddwd` multiplies them by their
//! group's scale into exact i32 lanes. Offsets of the levels (Q3_K by 4, Q6_K by 32) go back
//! through the activations' group sums, in integers. Then, per token, lane `j` of an f32
//! accumulator gets `d_w * d_a * isum[j]` for each super-block in turn, the group mins (Q2_K,
//! Q4_K, Q5_K) go to a scalar running total, and one fixed horizontal sum ends it: the same
//! operations whatever the tile's token count.

use std::arch::x86_64::*;

use super::util::{f16, hsum, hsum_epi32, load256, load256_at};
use crate::quant::block::{as_blocks, Block};
use crate::quant::q2_k::BlockQ2K;
use crate::quant::q3_k::BlockQ3K;
use crate::quant::q4_k::BlockQ4K;
use crate::quant::q5_k::BlockQ5K;
use crate::quant::q6_k::BlockQ6K;
use crate::quant::q8_k::BlockQ8K;
use crate::simd::kscales::{q3_k_stored, scale_min_k4};
use crate::simd::{act_rows, Acts, DotTile};

/// A K-quant format `B` against Q8_K activations.
pub(super) struct DotK<B>(std::marker::PhantomData<B>);

/// One format's part of the dot: a super-block's contribution to every token's sums.
trait KBlock: Block {
    /// Whether the format has group mins, which `acc_min` collects.
    const HAS_MIN: bool;

    /// Adds this super-block (index `b` of its row) dotted with activation block `b` of each
    /// token: scaled integer sums into the lanes of `acc`, min terms into `acc_min`.
    ///
    /// # Safety
    /// The CPU must have AVX2, FMA and F16C.
    unsafe fn accumulate<const T: usize>(&self, a: &[&[BlockQ8K]; T], b: usize, acc: &mut [__m256; T], acc_min: &mut [f32; T]);
}

impl<B: KBlock> DotTile for DotK<B> {
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn tile<const T: usize>(w_rows: &[u8], row_bytes: usize, act: Acts<'_>, out: *mut f32, out_stride: usize) {
        let n_blocks = row_bytes / std::mem::size_of::<B>();
        let a: [&[BlockQ8K]; T] = act_rows(act, n_blocks);
        for (r, w) in w_rows.chunks_exact(row_bytes).enumerate() {
            let w: &[B] = as_blocks(w);
            let (mut acc, mut acc_min) = ([_mm256_setzero_ps(); T], [0.0f32; T]);
            for (b, x) in w.iter().enumerate() {
                // SAFETY: this function's features are the trait's requirement.
                unsafe { x.accumulate(&a, b, &mut acc, &mut acc_min) };
            }
            let mut res = [0.0f32; T];
            for t in 0..T {
                res[t] = if B::HAS_MIN { acc_min[t] + hsum(acc[t]) } else { hsum(acc[t]) };
            }
            for (t, v) in res.into_iter().enumerate() {
                // SAFETY: the `DotTile` contract: in bounds and written by this thread alone.
                unsafe { *out.add(t * out_stride + r) = v };
            }
        }
    }
}

/// `isum += scale * (levels * a)`, with the i16 scale of each pair lane.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn mul_add(isum: __m256i, levels: __m256i, a: __m256i, scale: __m256i) -> __m256i {
    _mm256_add_epi32(isum, _mm256_madd_epi16(_mm256_maddubs_epi16(levels, a), scale))
}

/// The i16 scales of a 32-element chunk made of two 16-element groups `g` and `g + 1`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn two_groups(sc: &[i16; 16], g: usize) -> __m256i {
    _mm256_set_m128i(_mm_set1_epi16(sc[g + 1]), _mm_set1_epi16(sc[g]))
}

/// `sum_g per_group[g] * bsums[g]` over an activation block's 16 group sums (exact).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn group_sum_dot(a: &BlockQ8K, per_group: __m256i) -> i32 {
    hsum_epi32(_mm256_madd_epi16(load256(&a.bsums), per_group))
}

/// The i16 vector of sixteen per-group values.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn as_vec(v: &[i16; 16]) -> __m256i {
    // SAFETY: 16 i16 are 32 bytes; the load is unaligned.
    unsafe { _mm256_loadu_si256(v.as_ptr().cast()) }
}

/// Levels of quarter `k` (elements 32k..32k+32 of a 128-element half) from the half's 32 bytes
/// of 2-bit fields (Q2_K, Q3_K): bits 2k..2k+2 of each byte.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn two_bits(q: __m256i, k: usize) -> __m256i {
    _mm256_and_si256(_mm256_srl_epi16(q, _mm_cvtsi32_si128(2 * k as i32)), _mm256_set1_epi8(3))
}

/// `1 << SHIFT` in every byte whose bit `bit` is set in `mask`, else 0.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn bit_to<const SHIFT: i32>(mask: __m256i, bit: usize) -> __m256i {
    let set = _mm256_and_si256(_mm256_srl_epi16(mask, _mm_cvtsi32_si128(bit as i32)), _mm256_set1_epi8(1));
    _mm256_slli_epi16::<SHIFT>(set)
}

/// The Q4_K/Q5_K body: chunk c of qs holds group 2c in its low nibbles and 2c + 1 in its high
/// ones; `fifth` adds Q5_K's fifth bits to the levels of group g.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
#[allow(clippy::too_many_arguments)]
fn k4_body<const T: usize>(qs: &[u8; 128], scales: &[u8; 12], d: f32, dmin: f32, qh: Option<&[u8; 32]>, a: &[&[BlockQ8K]; T], b: usize, acc: &mut [__m256; T], acc_min: &mut [f32; T]) {
    let (sc, m) = scale_min_k4(scales);
    let (sc, m) = (sc.to_le_bytes(), m.to_le_bytes());
    // Not `Option::map`: a closure passed to it loses this function's target features.
    #[allow(clippy::manual_map)]
    let qh = match qh {
        Some(q) => Some(load256(q)),
        None => None,
    };
    let mut isum = [_mm256_setzero_si256(); T];
    for c in 0..4 {
        let q = load256_at(&qs[..], 32 * c);
        let mut lo = _mm256_and_si256(q, _mm256_set1_epi8(0x0f));
        let mut hi = _mm256_and_si256(_mm256_srli_epi16::<4>(q), _mm256_set1_epi8(0x0f));
        if let Some(qh) = qh {
            lo = _mm256_or_si256(lo, bit_to::<4>(qh, 2 * c));
            hi = _mm256_or_si256(hi, bit_to::<4>(qh, 2 * c + 1));
        }
        let (s_lo, s_hi) = (_mm256_set1_epi16(i16::from(sc[2 * c])), _mm256_set1_epi16(i16::from(sc[2 * c + 1])));
        for t in 0..T {
            let y = &a[t][b];
            isum[t] = mul_add(isum[t], lo, load256_at(&y.qs[..], 64 * c), s_lo);
            isum[t] = mul_add(isum[t], hi, load256_at(&y.qs[..], 64 * c + 32), s_hi);
        }
    }
    // Each min serves two 16-element group sums.
    let mins = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(_mm_cvtsi64_si128(i64::from_le_bytes(m)), _mm_cvtsi64_si128(i64::from_le_bytes(m))));
    for t in 0..T {
        let y = &a[t][b];
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), _mm256_set1_ps(d * y.d()), acc[t]);
        acc_min[t] -= dmin * y.d() * group_sum_dot(y, mins) as f32;
    }
}

impl KBlock for BlockQ4K {
    const HAS_MIN: bool = true;

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn accumulate<const T: usize>(&self, a: &[&[BlockQ8K]; T], b: usize, acc: &mut [__m256; T], acc_min: &mut [f32; T]) {
        k4_body(&self.qs, &self.scales, f16(self.d), f16(self.dmin), None, a, b, acc, acc_min);
    }
}

impl KBlock for BlockQ5K {
    const HAS_MIN: bool = true;

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn accumulate<const T: usize>(&self, a: &[&[BlockQ8K]; T], b: usize, acc: &mut [__m256; T], acc_min: &mut [f32; T]) {
        k4_body(&self.qs, &self.scales, f16(self.d), f16(self.dmin), Some(&self.qh), a, b, acc, acc_min);
    }
}

impl KBlock for BlockQ6K {
    const HAS_MIN: bool = false;

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn accumulate<const T: usize>(&self, a: &[&[BlockQ8K]; T], b: usize, acc: &mut [__m256; T], _: &mut [f32; T]) {
        let sc: [i16; 16] = std::array::from_fn(|g| i16::from(self.scales[g]));
        let mut isum = [_mm256_setzero_si256(); T];
        for h in 0..2 {
            // Half h: ql[64h..64h+32] low nibbles are quarter 0, high nibbles quarter 2;
            // ql[64h+32..64h+64] likewise quarters 1 and 3; qh[32h..] holds the top two
            // bits of quarter k at bits 2k..2k+2.
            let ql = [load256_at(&self.ql[..], 64 * h), load256_at(&self.ql[..], 64 * h + 32)];
            let qh = load256_at(&self.qh[..], 32 * h);
            let m30 = _mm256_set1_epi8(0x30);
            let tops = [
                _mm256_and_si256(_mm256_slli_epi16::<4>(qh), m30),
                _mm256_and_si256(_mm256_slli_epi16::<2>(qh), m30),
                _mm256_and_si256(qh, m30),
                _mm256_and_si256(_mm256_srli_epi16::<2>(qh), m30),
            ];
            for (k, top) in tops.into_iter().enumerate() {
                let low = if k < 2 { ql[k] } else { _mm256_srli_epi16::<4>(ql[k - 2]) };
                let levels = _mm256_or_si256(_mm256_and_si256(low, _mm256_set1_epi8(0x0f)), top);
                let scale = two_groups(&sc, 8 * h + 2 * k);
                for t in 0..T {
                    isum[t] = mul_add(isum[t], levels, load256_at(&a[t][b].qs[..], 128 * h + 32 * k), scale);
                }
            }
        }
        let d = f16(self.d);
        for t in 0..T {
            let y = &a[t][b];
            // Levels are stored +32: take 32 * sum_g sc[g] * bsum[g] back.
            let offset = _mm256_slli_epi32::<5>(_mm256_madd_epi16(load256(&y.bsums), as_vec(&sc)));
            let isum = _mm256_sub_epi32(isum[t], offset);
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(d * y.d()), acc[t]);
        }
    }
}

impl KBlock for BlockQ3K {
    const HAS_MIN: bool = false;

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn accumulate<const T: usize>(&self, a: &[&[BlockQ8K]; T], b: usize, acc: &mut [__m256; T], _: &mut [f32; T]) {
        let stored: [u8; 16] = bytemuck_words(q3_k_stored(&self.scales));
        let sc: [i16; 16] = std::array::from_fn(|g| i16::from(stored[g]) - 32);
        let hmask = load256(&self.hmask);
        let mut isum = [_mm256_setzero_si256(); T];
        for h in 0..2 {
            let q = load256_at(&self.qs[..], 32 * h);
            for k in 0..4 {
                // Stored level = low bits + 4 * high bit (0..=7), the signed level minus 4.
                // Element i's high bit is bit i / 32 of hmask[i % 32].
                let levels = _mm256_or_si256(two_bits(q, k), bit_to::<2>(hmask, 4 * h + k));
                let scale = two_groups(&sc, 8 * h + 2 * k);
                for t in 0..T {
                    isum[t] = mul_add(isum[t], levels, load256_at(&a[t][b].qs[..], 128 * h + 32 * k), scale);
                }
            }
        }
        let d = f16(self.d);
        for t in 0..T {
            let y = &a[t][b];
            let offset = _mm256_slli_epi32::<2>(_mm256_madd_epi16(load256(&y.bsums), as_vec(&sc)));
            let isum = _mm256_sub_epi32(isum[t], offset);
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(d * y.d()), acc[t]);
        }
    }
}

impl KBlock for BlockQ2K {
    const HAS_MIN: bool = true;

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn accumulate<const T: usize>(&self, a: &[&[BlockQ8K]; T], b: usize, acc: &mut [__m256; T], acc_min: &mut [f32; T]) {
        let sc: [i16; 16] = std::array::from_fn(|g| i16::from(self.scales[g] & 0x0f));
        let mins: [i16; 16] = std::array::from_fn(|g| i16::from(self.scales[g] >> 4));
        let mut isum = [_mm256_setzero_si256(); T];
        for h in 0..2 {
            let q = load256_at(&self.qs[..], 32 * h);
            for k in 0..4 {
                let levels = two_bits(q, k);
                let scale = two_groups(&sc, 8 * h + 2 * k);
                for t in 0..T {
                    isum[t] = mul_add(isum[t], levels, load256_at(&a[t][b].qs[..], 128 * h + 32 * k), scale);
                }
            }
        }
        let (d, dmin) = (f16(self.d), f16(self.dmin));
        let mins = as_vec(&mins);
        for t in 0..T {
            let y = &a[t][b];
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), _mm256_set1_ps(d * y.d()), acc[t]);
            acc_min[t] -= dmin * y.d() * group_sum_dot(y, mins) as f32;
        }
    }
}

/// Four little-endian words as their 16 bytes.
fn bytemuck_words(w: [u32; 4]) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (o, w) in out.chunks_exact_mut(4).zip(w) {
        o.copy_from_slice(&w.to_le_bytes());
    }
    out
}
