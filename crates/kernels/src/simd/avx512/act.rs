//! AVX-512 quantization of activation rows to Q8_0, Q8_1 and Q8_K, and conversion to F16 and
//! BF16: byte for byte what the scalar `quantize_row` writes, rounding ties, NaN and
//! infinities included. Scales are computed with the same scalar expressions; only the
//! per-element work is vectorised.

use std::arch::x86_64::*;

use super::util::lane_mask;
use crate::quant::block::{as_blocks_mut, f32_to_f16};
use crate::quant::q8_0::BlockQ8_0;
use crate::quant::q8_1::BlockQ8_1;
use crate::quant::q8_k::{BlockQ8K, QK_K};
use crate::DType;

/// Quantizes `src` into `dst` as `dtype`; false for a type without a fast path here.
///
/// # Safety
/// The CPU must have this level's features; `dst` must hold exactly `src.len()` elements.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
pub(super) unsafe fn quantize(dtype: DType, src: &[f32], dst: &mut [u8]) -> bool {
    match dtype {
        DType::Q8_0 => {
            for (x, b) in src.chunks_exact(32).zip(as_blocks_mut::<BlockQ8_0>(dst)) {
                let (d, q0, q1) = q8_block(x);
                b.d = f32_to_f16(d);
                store_i8(&mut b.qs, q0, q1);
            }
        }
        DType::Q8_1 => {
            for (x, b) in src.chunks_exact(32).zip(as_blocks_mut::<BlockQ8_1>(dst)) {
                let (d, q0, q1) = q8_block(x);
                b.d = f32_to_f16(d);
                let sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
                b.s = f32_to_f16(sum as f32 * d);
                store_i8(&mut b.qs, q0, q1);
            }
        }
        DType::Q8_K => {
            for (x, b) in src.chunks_exact(QK_K).zip(as_blocks_mut::<BlockQ8K>(dst)) {
                q8_k_block(x.try_into().expect("a whole block"), b);
            }
        }
        DType::F16 => {
            for (x, d) in src.chunks(16).zip(dst.chunks_mut(32)) {
                let m = lane_mask(x.len());
                let h = _mm512_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(load(x, m));
                // SAFETY: `d` holds two bytes per element of `x`.
                unsafe { _mm256_mask_storeu_epi16(d.as_mut_ptr().cast(), m, h) };
            }
        }
        DType::BF16 => {
            for (x, d) in src.chunks(16).zip(dst.chunks_mut(32)) {
                let m = lane_mask(x.len());
                let h = _mm512_cvtepi32_epi16(to_bf16(_mm512_castps_si512(load(x, m))));
                // SAFETY: `d` holds two bytes per element of `x`.
                unsafe { _mm256_mask_storeu_epi16(d.as_mut_ptr().cast(), m, h) };
            }
        }
        DType::F32 => {
            for (x, d) in src.iter().zip(dst.chunks_exact_mut(4)) {
                d.copy_from_slice(&x.to_le_bytes());
            }
        }
        _ => return false,
    }
    true
}

/// Up to 16 floats, the missing lanes zero.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
fn load(x: &[f32], mask: u16) -> __m512 {
    debug_assert!(x.len() <= 16 && mask == lane_mask(x.len()));
    // SAFETY: the mask covers exactly `x`'s elements; masked-off lanes are not read.
    unsafe { _mm512_maskz_loadu_ps(mask, x.as_ptr()) }
}

/// `f32_to_bf16_bits` on 16 lanes: NaNs kept and made quiet, the rest rounded to nearest even.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
fn to_bf16(u: __m512i) -> __m512i {
    let is_nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fff_ffff)), _mm512_set1_epi32(0x7f80_0000));
    let lsb = _mm512_and_si512(_mm512_srli_epi32::<16>(u), _mm512_set1_epi32(1));
    let rounded = _mm512_srli_epi32::<16>(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), lsb));
    let quiet = _mm512_or_si512(_mm512_srli_epi32::<16>(u), _mm512_set1_epi32(0x40));
    _mm512_mask_blend_epi32(is_nan, rounded, quiet)
}

/// One Q8_0/Q8_1 block: `d = amax / 127`, `q = round(x / d)` (halves away from zero, NaN to 0,
/// saturated to i8 as Rust's `as` does), the 32 values as two vectors of i32.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
fn q8_block(x: &[f32]) -> (f32, __m512i, __m512i) {
    let x0 = load(&x[..16], 0xffff);
    let x1 = load(&x[16..32], 0xffff);
    // `max_ps(a, b)` returns b when a is NaN, so NaNs drop out as in the scalar fold.
    let m = _mm512_max_ps(_mm512_abs_ps(x0), _mm512_setzero_ps());
    let m = _mm512_max_ps(_mm512_abs_ps(x1), m);
    let amax = _mm512_reduce_max_ps(m);
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let id = _mm512_set1_ps(id);
    (d, round_away(_mm512_mul_ps(x0, id)), round_away(_mm512_mul_ps(x1, id)))
}

/// `f32::round(v) as i32` clamped to i8 range by the caller's saturating narrow: truncate,
/// then step away from zero when the dropped fraction is at least a half (exact, since
/// `v - trunc(v)` is). NaN becomes 0, as `as` makes it.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
fn round_away(v: __m512) -> __m512i {
    let t = _mm512_roundscale_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(v);
    let frac = _mm512_abs_ps(_mm512_sub_ps(v, t));
    let step = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(frac, _mm512_set1_ps(0.5));
    let sign = _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(i32::MIN));
    let one = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(_mm512_set1_ps(1.0)), sign));
    let r = _mm512_mask_add_ps(t, step, t, one);
    // Clamp before converting, so out-of-range values saturate as `as i8` does; NaN -> 0.
    let r = _mm512_min_ps(_mm512_max_ps(r, _mm512_set1_ps(-128.0)), _mm512_set1_ps(127.0));
    let not_nan = _mm512_cmp_ps_mask::<_CMP_ORD_Q>(v, v);
    _mm512_maskz_cvttps_epi32(not_nan, r)
}

/// Narrows two vectors of i32 already in i8 range to the 32 bytes of `qs`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
fn store_i8(qs: &mut [i8; 32], q0: __m512i, q1: __m512i) {
    let lo = _mm512_cvtepi32_epi8(q0);
    let hi = _mm512_cvtepi32_epi8(q1);
    let both = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(lo), hi);
    // SAFETY: `qs` is 32 bytes; the store is unaligned.
    unsafe { _mm256_storeu_si256(qs.as_mut_ptr().cast(), both) };
}

/// ggml's Q8_K quantizer on one block (see `q8_k::quantize`).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
fn q8_k_block(x: &[f32; QK_K], b: &mut BlockQ8K) {
    // The signed value of largest magnitude, the first one on ties: find the maximum
    // magnitude (NaNs dropped as above), then the first element that has it.
    let mut m = _mm512_setzero_ps();
    for c in x.chunks_exact(16) {
        m = _mm512_max_ps(_mm512_abs_ps(load(c, 0xffff)), m);
    }
    let amax = _mm512_reduce_max_ps(m);
    if amax == 0.0 {
        *b = BlockQ8K { d: [0; 4], qs: [0; QK_K], bsums: [[0; 2]; QK_K / 16] };
        return;
    }
    let target = _mm512_set1_ps(amax);
    let mut first = 0;
    for (i, c) in x.chunks_exact(16).enumerate() {
        let hit = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(_mm512_abs_ps(load(c, 0xffff)), target);
        if hit != 0 {
            first = 16 * i + hit.trailing_zeros() as usize;
            break;
        }
    }
    let max = x[first];
    let iscale = -127.0 / max;
    let scale = _mm512_set1_ps(iscale);
    for (g, c) in x.chunks_exact(16).enumerate() {
        // nearest_int: add 1.5 * 2^23 and read the low mantissa bits, then `.min(127) as i8`.
        let v = _mm512_add_ps(_mm512_mul_ps(load(c, 0xffff), scale), _mm512_set1_ps(12_582_912.0));
        let n = _mm512_sub_epi32(_mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(0x007f_ffff)), _mm512_set1_epi32(0x0040_0000));
        let n = _mm512_min_epi32(n, _mm512_set1_epi32(127));
        let q = _mm512_cvtepi32_epi8(n); // keeps the low byte, as `as i8` does
        // SAFETY: 16 bytes at 16 * g lie inside the 256-byte `qs`; the store is unaligned.
        unsafe { _mm_storeu_si128(b.qs.as_mut_ptr().add(16 * g).cast(), q) };
        let sum = _mm512_reduce_add_epi32(_mm512_cvtepi8_epi32(q));
        b.bsums[g] = (sum as i16).to_le_bytes();
    }
    b.d = (1.0 / iscale).to_le_bytes();
}
