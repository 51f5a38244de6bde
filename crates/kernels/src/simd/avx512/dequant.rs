//! AVX-512 row decoding for the f32 GEMM: the formats real models use most (Q4_0, Q4_1, Q5_0,
//! Q5_1, Q8_0, Q4_K, Q6_K and the float types). Each value is computed by the same operations as the
//! scalar `dequantize_row` (a product, then a sum where the format has an offset; never a
//! fused multiply-add), so the results are bit-identical.

use std::arch::x86_64::*;

use super::dot_k::q6_levels;
use super::util::{f16, load128, load256, load256_at};
use crate::quant::block::as_blocks;
use crate::quant::q4_0::BlockQ4_0;
use crate::quant::q4_1::BlockQ4_1;
use crate::quant::q4_k::BlockQ4K;
use crate::quant::q5_0::BlockQ5_0;
use crate::quant::q5_1::BlockQ5_1;
use crate::quant::q6_k::BlockQ6K;
use crate::quant::q8_0::BlockQ8_0;
use crate::DType;

/// Decodes `src` into `dst`; false for a format without a fast path here.
///
/// # Safety
/// The CPU must have this level's features; `src` must hold exactly `dst.len()` elements.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
pub(super) unsafe fn dequantize(dtype: DType, src: &[u8], dst: &mut [f32]) -> bool {
    match dtype {
        DType::F32 => {
            for (b, y) in src.chunks_exact(4).zip(dst) {
                *y = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        DType::F16 | DType::BF16 => {
            for (s, y) in src.chunks(32).zip(dst.chunks_mut(16)) {
                let m = (((1u32 << y.len()) - 1) & 0xffff) as u16;
                // SAFETY: `s` holds 2 bytes per lane the mask enables, `y` one float.
                unsafe {
                    let h = _mm256_maskz_loadu_epi16(m, s.as_ptr().cast());
                    let v = if dtype == DType::F16 {
                        _mm512_cvtph_ps(h)
                    } else {
                        _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
                    };
                    _mm512_mask_storeu_ps(y.as_mut_ptr(), m, v);
                }
            }
        }
        DType::Q4_0 => {
            for (b, y) in as_blocks::<BlockQ4_0>(src).iter().zip(dst.chunks_exact_mut(32)) {
                let d = _mm512_set1_ps(f16(b.d));
                let q = load128(&b.qs);
                let eight = _mm512_set1_epi32(8);
                for (half, y) in [_mm_and_si128(q, _mm_set1_epi8(0x0f)), nibble_hi(q)].into_iter().zip(y.chunks_exact_mut(16)) {
                    let v = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_cvtepu8_epi32(half), eight));
                    store16(y, _mm512_mul_ps(v, d));
                }
            }
        }
        DType::Q4_1 => {
            for (b, y) in as_blocks::<BlockQ4_1>(src).iter().zip(dst.chunks_exact_mut(32)) {
                let (d, m) = (_mm512_set1_ps(f16(b.d)), _mm512_set1_ps(f16(b.m)));
                let q = load128(&b.qs);
                for (half, y) in [_mm_and_si128(q, _mm_set1_epi8(0x0f)), nibble_hi(q)].into_iter().zip(y.chunks_exact_mut(16)) {
                    let v = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(half));
                    store16(y, _mm512_add_ps(_mm512_mul_ps(v, d), m));
                }
            }
        }
        DType::Q5_0 => {
            for (b, y) in as_blocks::<BlockQ5_0>(src).iter().zip(dst.chunks_exact_mut(32)) {
                let d = _mm512_set1_ps(f16(b.d));
                for (q, y) in q5_levels(&b.qs, b.qh).into_iter().zip(y.chunks_exact_mut(16)) {
                    let v = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_cvtepu8_epi32(q), _mm512_set1_epi32(16)));
                    store16(y, _mm512_mul_ps(v, d));
                }
            }
        }
        DType::Q5_1 => {
            for (b, y) in as_blocks::<BlockQ5_1>(src).iter().zip(dst.chunks_exact_mut(32)) {
                let (d, m) = (_mm512_set1_ps(f16(b.d)), _mm512_set1_ps(f16(b.m)));
                for (q, y) in q5_levels(&b.qs, b.qh).into_iter().zip(y.chunks_exact_mut(16)) {
                    let v = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(q));
                    store16(y, _mm512_add_ps(_mm512_mul_ps(v, d), m));
                }
            }
        }
        DType::Q8_0 => {
            for (b, y) in as_blocks::<BlockQ8_0>(src).iter().zip(dst.chunks_exact_mut(32)) {
                let d = _mm512_set1_ps(f16(b.d));
                let q = load256(&b.qs);
                for (half, y) in [_mm256_castsi256_si128(q), _mm256_extracti128_si256::<1>(q)].into_iter().zip(y.chunks_exact_mut(16)) {
                    store16(y, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(half)), d));
                }
            }
        }
        DType::Q4_K => {
            for (b, y) in as_blocks::<BlockQ4K>(src).iter().zip(dst.chunks_exact_mut(256)) {
                let (d, dmin) = (f16(b.d), f16(b.dmin));
                let (sc, m) = crate::quant::q4_k::unpack_scale_min(&b.scales);
                for (g, y) in y.chunks_exact_mut(32).enumerate() {
                    let dl = _mm512_set1_ps(d * f32::from(sc[g]));
                    let ml = _mm512_set1_ps(dmin * f32::from(m[g]));
                    // Group g is chunk g / 2's low (even g) or high (odd g) nibbles.
                    let q = load256_at(&b.qs[..], 32 * (g / 2));
                    let q = if g % 2 == 0 { q } else { _mm256_srli_epi16::<4>(q) };
                    let q = _mm256_and_si256(q, _mm256_set1_epi8(0x0f));
                    for (part, y) in [_mm256_castsi256_si128(q), _mm256_extracti128_si256::<1>(q)].into_iter().zip(y.chunks_exact_mut(16)) {
                        let v = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(part));
                        store16(y, _mm512_sub_ps(_mm512_mul_ps(dl, v), ml));
                    }
                }
            }
        }
        DType::Q6_K => {
            for (b, y) in as_blocks::<BlockQ6K>(src).iter().zip(dst.chunks_exact_mut(256)) {
                let d = f16(b.d);
                let mut levels = [0u8; 256];
                for (c, l) in q6_levels(b).into_iter().enumerate() {
                    // SAFETY: 64 bytes at 64 * c lie inside `levels`; the store is unaligned.
                    unsafe { _mm512_storeu_si512(levels.as_mut_ptr().add(64 * c).cast(), l) };
                }
                for (g, (y, q)) in y.chunks_exact_mut(16).zip(levels.chunks_exact(16)).enumerate() {
                    let dl = _mm512_set1_ps(d * f32::from(b.scales[g]));
                    let q = _mm512_sub_epi32(_mm512_cvtepu8_epi32(load128(<&[u8; 16]>::try_from(q).expect("16 levels"))), _mm512_set1_epi32(32));
                    store16(y, _mm512_mul_ps(dl, _mm512_cvtepi32_ps(q)));
                }
            }
        }
        _ => return false,
    }
    true
}

/// A Q5 block's 5-bit levels (0..32), elements 0-15 then 16-31: the nibbles of `qs`, plus 16
/// where bit `e` of `qh` is set for element `e`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
fn q5_levels(qs: &[u8; 16], qh: [u8; 4]) -> [__m128i; 2] {
    let q = load128(qs);
    let nibbles = _mm256_set_m128i(nibble_hi(q), _mm_and_si128(q, _mm_set1_epi8(0x0f)));
    let levels = _mm256_mask_add_epi8(nibbles, u32::from_le_bytes(qh), nibbles, _mm256_set1_epi8(16));
    [_mm256_castsi256_si128(levels), _mm256_extracti128_si256::<1>(levels)]
}

/// The high nibbles of 16 bytes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
fn nibble_hi(q: __m128i) -> __m128i {
    _mm_and_si128(_mm_srli_epi16::<4>(q), _mm_set1_epi8(0x0f))
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
fn store16(y: &mut [f32], v: __m512) {
    assert_eq!(y.len(), 16);
    // SAFETY: `y` holds 16 floats; the store is unaligned.
    unsafe { _mm512_storeu_ps(y.as_mut_ptr(), v) };
}
