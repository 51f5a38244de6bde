//! AVX-512 integer dot tiles of the K-quants (Q2_K..Q6_K) against Q8_K activations.
//!
//! A super-block's 256 levels are decoded once into four vectors of 64 unsigned bytes, with
//! one vector of 16-bit group scales each; per token, `vpmaddubsw` forms pair sums of level *
//! activation and `vpdpwssd` multiplies them by the group scale into exact i32 lanes. Formats
//! whose levels are offset (Q3_K by 4, Q6_K by 32) take the offset back through the
//! activations' group sums, in integers. Then, per token, lane `j` of an f32 accumulator gets
//! `d_w * d_a * isum[j]` for each super-block in turn, the group mins (Q2_K, Q4_K, Q5_K) go to a
//! scalar running total, and one fixed horizontal sum ends it: the same operations whatever
//! the tile's token count.

use std::arch::x86_64::*;

use super::util::{f16, hsum, hsum_epi32_256, load128, load256, load256_at, load512_at};
use crate::quant::block::as_blocks;
use crate::quant::q2_k::BlockQ2K;
use crate::quant::q3_k::BlockQ3K;
use crate::quant::q4_k::BlockQ4K;
use crate::quant::q5_k::BlockQ5K;
use crate::quant::q6_k::BlockQ6K;
use crate::quant::q8_k::BlockQ8K;
use crate::simd::kscales::{q3_k_stored, scale_min_k4};
use crate::simd::{act_rows, Acts, DotTile};

/// The K-quants against Q8_K activations.
pub(super) struct Q2K;
pub(super) struct Q3K;
pub(super) struct Q4K;
pub(super) struct Q5K;
pub(super) struct Q6K;

/// A super-block decoded for the integer dot: 4 chunks of 64 levels (element order) and, per
/// chunk, the 16-bit scale of each level pair's group.
struct Decoded {
    levels: [__m512i; 4],
    scales: [__m512i; 4],
}

/// `sum_chunks scale * (level * a)` over a super-block, in 16 exact i32 lanes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
fn int_dot(dec: &Decoded, a: &BlockQ8K) -> __m512i {
    let mut isum = _mm512_setzero_si512();
    for c in 0..4 {
        let pairs = _mm512_maddubs_epi16(dec.levels[c], load512_at(&a.qs, 64 * c));
        isum = _mm512_dpwssd_epi32(isum, pairs, dec.scales[c]);
    }
    isum
}

/// Per chunk `c` of 64 levels, the scale of each 16-bit pair lane for groups of 32 (Q4_K,
/// Q5_K: chunk `c` holds groups 2c and 2c+1) from eight 16-bit scales in the low lanes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
fn scales_32(sc: __m128i) -> [__m512i; 4] {
    let sc = _mm512_castsi128_si512(sc);
    array_of!(4, _mm512_setzero_si512(), |c| {
        let (g0, g1) = (2 * c as i16, 2 * c as i16 + 1);
        _mm512_permutexvar_epi16(_mm512_inserti64x4::<1>(_mm512_set1_epi16(g0), _mm256_set1_epi16(g1)), sc)
    })
}

/// The same for groups of 16 (Q2_K, Q3_K, Q6_K: chunk `c` holds groups 4c..4c+4), from
/// sixteen 16-bit scales.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
fn scales_16(sc: __m256i) -> [__m512i; 4] {
    let sc = _mm512_castsi256_si512(sc);
    array_of!(4, _mm512_setzero_si512(), |c| {
        let g = 4 * c as i16;
        let idx = _mm512_set_epi16(
            g + 3,
            g + 3,
            g + 3,
            g + 3,
            g + 3,
            g + 3,
            g + 3,
            g + 3,
            g + 2,
            g + 2,
            g + 2,
            g + 2,
            g + 2,
            g + 2,
            g + 2,
            g + 2,
            g + 1,
            g + 1,
            g + 1,
            g + 1,
            g + 1,
            g + 1,
            g + 1,
            g + 1,
            g,
            g,
            g,
            g,
            g,
            g,
            g,
            g,
        );
        _mm512_permutexvar_epi16(idx, sc)
    })
}

/// The 2-bit fields of Q2_K and Q3_K: chunk `c` (elements 64c..64c+64) is half `c / 2`'s 32
/// bytes, at bit pairs `2k` (first 32 elements) and `2k + 2` (the next 32), `k = 2 * (c % 2)`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
fn two_bit_levels(qs: &[u8; 64]) -> [__m512i; 4] {
    array_of!(4, _mm512_setzero_si512(), |c| {
        let half = _mm512_broadcast_i64x4(load256_at(&qs[..], 32 * (c / 2)));
        let k = 4 * (c % 2) as i64;
        let shifted = _mm512_srlv_epi64(half, _mm512_set_epi64(k + 2, k + 2, k + 2, k + 2, k, k, k, k));
        _mm512_and_si512(shifted, _mm512_set1_epi8(3))
    })
}

/// Q4_K and Q5_K: the eight mins, each repeated for its two 16-element group sums, as i16.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
fn mins_per_group16(m: u64) -> __m256i {
    let m = _mm_cvtsi64_si128(m as i64);
    _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m, m))
}

/// `sum_g mins[g] * bsums[g]` over the 16 group sums of an activation block (exact).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
fn group_sum_dot(a: &BlockQ8K, per_group: __m256i) -> i32 {
    let bsums = load256(&a.bsums);
    hsum_epi32_256(_mm256_madd_epi16(bsums, per_group))
}

impl DotTile for Q4K {
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
    #[inline]
    unsafe fn tile<const T: usize>(w_rows: &[u8], row_bytes: usize, act: Acts<'_>, out: *mut f32, out_stride: usize) {
        let n_blocks = row_bytes / std::mem::size_of::<BlockQ4K>();
        let a: [&[BlockQ8K]; T] = act_rows(act, n_blocks);
        for (r, w) in w_rows.chunks_exact(row_bytes).enumerate() {
            let w: &[BlockQ4K] = as_blocks(w);
            let mut res = [0.0f32; T];
            let (mut acc, mut acc_min) = ([_mm512_setzero_ps(); T], [0.0f32; T]);
            for (b, x) in w.iter().enumerate() {
                let (sc, m) = scale_min_k4(&x.scales);
                let dec = Decoded {
                    levels: nibble_levels(&x.qs),
                    scales: scales_32(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(sc as i64))),
                };
                let mins = mins_per_group16(m);
                let (d, dmin) = (f16(x.d), f16(x.dmin));
                for t in 0..T {
                    let y = &a[t][b];
                    let isum = int_dot(&dec, y);
                    acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(d * y.d()), acc[t]);
                    acc_min[t] -= dmin * y.d() * group_sum_dot(y, mins) as f32;
                }
            }
            for t in 0..T {
                res[t] = acc_min[t] + hsum(acc[t]);
            }
            for (t, v) in res.into_iter().enumerate() {
                // SAFETY: the `DotTile` contract: in bounds and written by this thread alone.
                unsafe { *out.add(t * out_stride + r) = v };
            }
        }
    }
}

/// Q4_K/Q5_K low nibbles: 32-byte chunk `c` holds group 2c in its low nibbles and group 2c+1
/// in its high ones, which is element order 64c..64c+64.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
fn nibble_levels(qs: &[u8; 128]) -> [__m512i; 4] {
    array_of!(4, _mm512_setzero_si512(), |c| {
        let q = _mm512_broadcast_i64x4(load256_at(&qs[..], 32 * c));
        let q = _mm512_srlv_epi64(q, _mm512_set_epi64(4, 4, 4, 4, 0, 0, 0, 0));
        _mm512_and_si512(q, _mm512_set1_epi8(0x0f))
    })
}

impl DotTile for Q5K {
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
    #[inline]
    unsafe fn tile<const T: usize>(w_rows: &[u8], row_bytes: usize, act: Acts<'_>, out: *mut f32, out_stride: usize) {
        let n_blocks = row_bytes / std::mem::size_of::<BlockQ5K>();
        let a: [&[BlockQ8K]; T] = act_rows(act, n_blocks);
        for (r, w) in w_rows.chunks_exact(row_bytes).enumerate() {
            let w: &[BlockQ5K] = as_blocks(w);
            let mut res = [0.0f32; T];
            let (mut acc, mut acc_min) = ([_mm512_setzero_ps(); T], [0.0f32; T]);
            for (b, x) in w.iter().enumerate() {
                let (sc, m) = scale_min_k4(&x.scales);
                let mut levels = nibble_levels(&x.qs);
                // The fifth bit of element i is bit i / 32 of qh[i % 32]: chunk c uses bits 2c, 2c+1.
                let qh = _mm512_broadcast_i64x4(load256(&x.qh));
                for (c, l) in levels.iter_mut().enumerate() {
                    let bits = _mm512_inserti64x4::<1>(_mm512_set1_epi8(1 << (2 * c)), _mm256_set1_epi8(1 << (2 * c + 1)));
                    *l = _mm512_mask_add_epi8(*l, _mm512_test_epi8_mask(qh, bits), *l, _mm512_set1_epi8(16));
                }
                let dec = Decoded {
                    levels,
                    scales: scales_32(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(sc as i64))),
                };
                let mins = mins_per_group16(m);
                let (d, dmin) = (f16(x.d), f16(x.dmin));
                for t in 0..T {
                    let y = &a[t][b];
                    let isum = int_dot(&dec, y);
                    acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(d * y.d()), acc[t]);
                    acc_min[t] -= dmin * y.d() * group_sum_dot(y, mins) as f32;
                }
            }
            for t in 0..T {
                res[t] = acc_min[t] + hsum(acc[t]);
            }
            for (t, v) in res.into_iter().enumerate() {
                // SAFETY: the `DotTile` contract: in bounds and written by this thread alone.
                unsafe { *out.add(t * out_stride + r) = v };
            }
        }
    }
}

impl DotTile for Q6K {
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
    #[inline]
    unsafe fn tile<const T: usize>(w_rows: &[u8], row_bytes: usize, act: Acts<'_>, out: *mut f32, out_stride: usize) {
        let n_blocks = row_bytes / std::mem::size_of::<BlockQ6K>();
        let a: [&[BlockQ8K]; T] = act_rows(act, n_blocks);
        for (r, w) in w_rows.chunks_exact(row_bytes).enumerate() {
            let w: &[BlockQ6K] = as_blocks(w);
            let mut res = [0.0f32; T];
            let mut acc = [_mm512_setzero_ps(); T];
            for (b, x) in w.iter().enumerate() {
                let sc16 = _mm256_cvtepi8_epi16(load128(&x.scales));
                let dec = Decoded {
                    levels: q6_levels(x),
                    scales: scales_16(sc16),
                };
                let d = f16(x.d);
                for t in 0..T {
                    let y = &a[t][b];
                    // Levels are stored +32: take 32 * sum_g sc[g] * bsum[g] back.
                    let offset = _mm256_slli_epi32::<5>(_mm256_madd_epi16(load256(&y.bsums), sc16));
                    let isum = _mm512_sub_epi32(int_dot(&dec, y), _mm512_zextsi256_si512(offset));
                    acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(d * y.d()), acc[t]);
                }
            }
            for t in 0..T {
                res[t] = hsum(acc[t]);
            }
            for (t, v) in res.into_iter().enumerate() {
                // SAFETY: the `DotTile` contract: in bounds and written by this thread alone.
                unsafe { *out.add(t * out_stride + r) = v };
            }
        }
    }
}

/// Q6_K's 256 levels as stored (0..=63, the signed level plus 32), in element order. Half h:
/// the low nibbles of ql[64h..64h+64] are elements 0..64 of the half, the high nibbles 64..128;
/// qh[32h..32h+32] holds their top two bits at bit pairs 0, 2 (low) and 4, 6 (high).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
pub(super) fn q6_levels(x: &BlockQ6K) -> [__m512i; 4] {
    let (m4, m30) = (_mm512_set1_epi8(0x0f), _mm512_set1_epi8(0x30));
    let mut levels = [_mm512_setzero_si512(); 4];
    for h in 0..2 {
        let ql = load512_at(&x.ql, 64 * h);
        let qh = _mm512_broadcast_i64x4(load256_at(&x.qh[..], 32 * h));
        let top_lo = _mm512_and_si512(_mm512_sllv_epi64(qh, _mm512_set_epi64(2, 2, 2, 2, 4, 4, 4, 4)), m30);
        let top_hi = _mm512_and_si512(_mm512_srlv_epi64(qh, _mm512_set_epi64(2, 2, 2, 2, 0, 0, 0, 0)), m30);
        levels[2 * h] = _mm512_or_si512(_mm512_and_si512(ql, m4), top_lo);
        levels[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16::<4>(ql), m4), top_hi);
    }
    levels
}

/// Q3_K's sixteen signed 6-bit scales, as i16.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
fn q3_scales(scales: &[u8; 12]) -> __m256i {
    let [w0, w1, w2, w3] = q3_k_stored(scales);
    let stored = _mm_set_epi32(w3 as i32, w2 as i32, w1 as i32, w0 as i32);
    _mm256_cvtepi8_epi16(_mm_sub_epi8(stored, _mm_set1_epi8(32)))
}

impl DotTile for Q3K {
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
    #[inline]
    unsafe fn tile<const T: usize>(w_rows: &[u8], row_bytes: usize, act: Acts<'_>, out: *mut f32, out_stride: usize) {
        let n_blocks = row_bytes / std::mem::size_of::<BlockQ3K>();
        let a: [&[BlockQ8K]; T] = act_rows(act, n_blocks);
        for (r, w) in w_rows.chunks_exact(row_bytes).enumerate() {
            let w: &[BlockQ3K] = as_blocks(w);
            let mut res = [0.0f32; T];
            let mut acc = [_mm512_setzero_ps(); T];
            for (b, x) in w.iter().enumerate() {
                let sc16 = q3_scales(&x.scales);
                let mut levels = two_bit_levels(&x.qs);
                // Stored level = low bits + 4 * high bit (0..=7), the signed level minus 4. Element i's
                // high bit is bit i / 32 of hmask[i % 32]: chunk c uses bits 2c and 2c + 1.
                let hmask = _mm512_broadcast_i64x4(load256(&x.hmask));
                for (c, l) in levels.iter_mut().enumerate() {
                    let bits = _mm512_inserti64x4::<1>(_mm512_set1_epi8(1 << (2 * c)), _mm256_set1_epi8(1 << (2 * c + 1)));
                    *l = _mm512_mask_add_epi8(*l, _mm512_test_epi8_mask(hmask, bits), *l, _mm512_set1_epi8(4));
                }
                let dec = Decoded { levels, scales: scales_16(sc16) };
                let d = f16(x.d);
                for t in 0..T {
                    let y = &a[t][b];
                    let offset = _mm256_slli_epi32::<2>(_mm256_madd_epi16(load256(&y.bsums), sc16));
                    let isum = _mm512_sub_epi32(int_dot(&dec, y), _mm512_zextsi256_si512(offset));
                    acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(d * y.d()), acc[t]);
                }
            }
            for t in 0..T {
                res[t] = hsum(acc[t]);
            }
            for (t, v) in res.into_iter().enumerate() {
                // SAFETY: the `DotTile` contract: in bounds and written by this thread alone.
                unsafe { *out.add(t * out_stride + r) = v };
            }
        }
    }
}

impl DotTile for Q2K {
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
    #[inline]
    unsafe fn tile<const T: usize>(w_rows: &[u8], row_bytes: usize, act: Acts<'_>, out: *mut f32, out_stride: usize) {
        let n_blocks = row_bytes / std::mem::size_of::<BlockQ2K>();
        let a: [&[BlockQ8K]; T] = act_rows(act, n_blocks);
        for (r, w) in w_rows.chunks_exact(row_bytes).enumerate() {
            let w: &[BlockQ2K] = as_blocks(w);
            let mut res = [0.0f32; T];
            let (mut acc, mut acc_min) = ([_mm512_setzero_ps(); T], [0.0f32; T]);
            for (b, x) in w.iter().enumerate() {
                let packed = load128(&x.scales);
                let sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(packed, _mm_set1_epi8(0x0f)));
                let mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16::<4>(packed), _mm_set1_epi8(0x0f)));
                let dec = Decoded {
                    levels: two_bit_levels(&x.qs),
                    scales: scales_16(sc16),
                };
                let (d, dmin) = (f16(x.d), f16(x.dmin));
                for t in 0..T {
                    let y = &a[t][b];
                    let isum = int_dot(&dec, y);
                    acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(d * y.d()), acc[t]);
                    acc_min[t] -= dmin * y.d() * group_sum_dot(y, mins) as f32;
                }
            }
            for t in 0..T {
                res[t] = acc_min[t] + hsum(acc[t]);
            }
            for (t, v) in res.into_iter().enumerate() {
                // SAFETY: the `DotTile` contract: in bounds and written by this thread alone.
                unsafe { *out.add(t * out_stride + r) = v };
            }
        }
    }
}
