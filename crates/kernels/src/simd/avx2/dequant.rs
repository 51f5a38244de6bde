//! AVX2 row decoding for the f32 GEMM: Q4_0, Q4_1, Q8_0, Q4_K, Q6_K and the float types. Each
//! value is computed by the same operations as the scalar `dequantize_row` (a product, then a
//! sum where the format has an offset; never a fused multiply-add), so the results are
//! bit-identical.

use std::arch::x86_64::*;

use super::util::{f16, load128_at, load256_at};
use crate::quant::block::as_blocks;
use crate::quant::q4_0::BlockQ4_0;
use crate::quant::q4_1::BlockQ4_1;
use crate::quant::q4_k::BlockQ4K;
use crate::quant::q6_k::BlockQ6K;
use crate::quant::q8_0::BlockQ8_0;
use crate::DType;

/// Decodes `src` into `dst`; false for a format without a fast path here.
///
/// # Safety
/// The CPU must have this level's features; `src` must hold exactly `dst.len()` elements.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dequantize(dtype: DType, src: &[u8], dst: &mut [f32]) -> bool {
    match dtype {
        DType::F32 => {
            for (b, y) in src.chunks_exact(4).zip(dst) {
                *y = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        DType::F16 | DType::BF16 => {
            let (whole, tail) = (dst.len() / 8 * 8, dst.len() % 8);
            for (s, y) in src.chunks_exact(16).zip(dst[..whole].chunks_exact_mut(8)) {
                let h = load128_at(s, 0);
                let v = if dtype == DType::F16 { _mm256_cvtph_ps(h) } else { _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h))) };
                store(y, v);
            }
            if tail > 0 {
                crate::quant::dequantize_row(dtype, &src[2 * whole..], &mut dst[whole..]);
            }
        }
        DType::Q4_0 => {
            for (b, y) in as_blocks::<BlockQ4_0>(src).iter().zip(dst.chunks_exact_mut(32)) {
                let d = _mm256_set1_ps(f16(b.d));
                for (bytes, y) in nibbles8(&b.qs).into_iter().zip(y.chunks_exact_mut(8)) {
                    let v = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_cvtepu8_epi32(bytes), _mm256_set1_epi32(8)));
                    store(y, _mm256_mul_ps(v, d));
                }
            }
        }
        DType::Q4_1 => {
            for (b, y) in as_blocks::<BlockQ4_1>(src).iter().zip(dst.chunks_exact_mut(32)) {
                let (d, m) = (_mm256_set1_ps(f16(b.d)), _mm256_set1_ps(f16(b.m)));
                for (bytes, y) in nibbles8(&b.qs).into_iter().zip(y.chunks_exact_mut(8)) {
                    let v = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes));
                    store(y, _mm256_add_ps(_mm256_mul_ps(v, d), m));
                }
            }
        }
        DType::Q8_0 => {
            for (b, y) in as_blocks::<BlockQ8_0>(src).iter().zip(dst.chunks_exact_mut(32)) {
                let d = _mm256_set1_ps(f16(b.d));
                for (i, y) in y.chunks_exact_mut(8).enumerate() {
                    // SAFETY: 8 bytes at 8 * i lie inside the 32-byte `qs`.
                    let q = unsafe { _mm_loadl_epi64(b.qs.as_ptr().add(8 * i).cast()) };
                    store(y, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), d));
                }
            }
        }
        DType::Q4_K => {
            for (b, y) in as_blocks::<BlockQ4K>(src).iter().zip(dst.chunks_exact_mut(256)) {
                let (d, dmin) = (f16(b.d), f16(b.dmin));
                let (sc, m) = crate::quant::q4_k::unpack_scale_min(&b.scales);
                for (g, y) in y.chunks_exact_mut(32).enumerate() {
                    let dl = _mm256_set1_ps(d * f32::from(sc[g]));
                    let ml = _mm256_set1_ps(dmin * f32::from(m[g]));
                    // Group g is chunk g / 2's low (even g) or high (odd g) nibbles.
                    let q = load256_at(&b.qs[..], 32 * (g / 2));
                    let q = if g % 2 == 0 { q } else { _mm256_srli_epi16::<4>(q) };
                    let q = _mm256_and_si256(q, _mm256_set1_epi8(0x0f));
                    write_levels(q, y, |v, _| _mm256_sub_ps(_mm256_mul_ps(dl, v), ml));
                }
            }
        }
        DType::Q6_K => {
            for (b, y) in as_blocks::<BlockQ6K>(src).iter().zip(dst.chunks_exact_mut(256)) {
                let d = f16(b.d);
                for (quarter, y) in y.chunks_exact_mut(32).enumerate() {
                    let (h, k) = (quarter / 4, quarter % 4);
                    // See `dot_k`: quarter k of half h takes ql[64h + 32 (k % 2)..] nibble k / 2
                    // and qh[32h..] bits 2k..2k+2.
                    let ql = load256_at(&b.ql[..], 64 * h + 32 * (k % 2));
                    let ql = if k < 2 { ql } else { _mm256_srli_epi16::<4>(ql) };
                    let qh = _mm256_srl_epi16(load256_at(&b.qh[..], 32 * h), _mm_cvtsi32_si128(2 * k as i32));
                    let levels = _mm256_or_si256(_mm256_and_si256(ql, _mm256_set1_epi8(0x0f)), _mm256_slli_epi16::<4>(_mm256_and_si256(qh, _mm256_set1_epi8(3))));
                    let g0 = 8 * h + 2 * k;
                    let dl = [d * f32::from(b.scales[g0]), d * f32::from(b.scales[g0 + 1])];
                    write_levels(levels, y, |v, part| {
                        let q = _mm256_sub_ps(v, _mm256_set1_ps(32.0));
                        _mm256_mul_ps(_mm256_set1_ps(dl[part / 2]), q)
                    });
                }
            }
        }
        _ => return false,
    }
    true
}

/// A Q4 block's 32 levels as four groups of 8 bytes in element order (low nibbles 0-15, then
/// high nibbles 16-31).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn nibbles8(qs: &[u8; 16]) -> [__m128i; 4] {
    let q = load128_at(&qs[..], 0);
    let lo = _mm_and_si128(q, _mm_set1_epi8(0x0f));
    let hi = _mm_and_si128(_mm_srli_epi16::<4>(q), _mm_set1_epi8(0x0f));
    [lo, _mm_unpackhi_epi64(lo, lo), hi, _mm_unpackhi_epi64(hi, hi)]
}

/// Widens 32 unsigned levels to f32 eight at a time and stores `f(levels, part)` for parts
/// 0..4 of `y`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn write_levels(levels: __m256i, y: &mut [f32], f: impl Fn(__m256, usize) -> __m256) {
    let halves = [_mm256_castsi256_si128(levels), _mm256_extracti128_si256::<1>(levels)];
    for (part, y) in y.chunks_exact_mut(8).enumerate() {
        let h = halves[part / 2];
        let bytes = if part % 2 == 0 { h } else { _mm_unpackhi_epi64(h, h) };
        store(y, f(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes)), part));
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn store(y: &mut [f32], v: __m256) {
    assert_eq!(y.len(), 8);
    // SAFETY: `y` holds 8 floats; the store is unaligned.
    unsafe { _mm256_storeu_ps(y.as_mut_ptr(), v) };
}
