//! AVX2 quantization of activation rows to Q8_0, Q8_1 and Q8_K, and conversion to F16 and BF16:
//! byte for byte what the scalar `quantize_row` writes, rounding ties, NaN and infinities
//! included. Scales are computed with the same scalar expressions; only the per-element work
//! is vectorised.

use std::arch::x86_64::*;

use super::util::hsum_epi32;
use crate::quant::block::{as_blocks_mut, f32_to_f16};
use crate::quant::q8_0::BlockQ8_0;
use crate::quant::q8_1::BlockQ8_1;
use crate::quant::q8_k::{BlockQ8K, QK_K};
use crate::DType;

/// Quantizes `src` into `dst` as `dtype`; false for a type without a fast path here.
///
/// # Safety
/// The CPU must have this level's features; `dst` must hold exactly `src.len()` elements.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn quantize(dtype: DType, src: &[f32], dst: &mut [u8]) -> bool {
    match dtype {
        DType::Q8_0 => {
            for (x, b) in src.chunks_exact(32).zip(as_blocks_mut::<BlockQ8_0>(dst)) {
                let (d, q) = q8_block(x.try_into().expect("a whole block"));
                b.d = f32_to_f16(d);
                store_i8(&mut b.qs, q);
            }
        }
        DType::Q8_1 => {
            for (x, b) in src.chunks_exact(32).zip(as_blocks_mut::<BlockQ8_1>(dst)) {
                let (d, q) = q8_block(x.try_into().expect("a whole block"));
                b.d = f32_to_f16(d);
                let sum = hsum_epi32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
                b.s = f32_to_f16(sum as f32 * d);
                store_i8(&mut b.qs, q);
            }
        }
        DType::Q8_K => {
            for (x, b) in src.chunks_exact(QK_K).zip(as_blocks_mut::<BlockQ8K>(dst)) {
                q8_k_block(x.try_into().expect("a whole block"), b);
            }
        }
        DType::F16 => {
            for (x, d) in src.chunks(8).zip(dst.chunks_mut(16)) {
                let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(load8(x));
                store_u16(d, h);
            }
        }
        DType::BF16 => {
            for (x, d) in src.chunks(8).zip(dst.chunks_mut(16)) {
                let h = to_bf16(_mm256_castps_si256(load8(x)));
                // The eight u16 sit in 64-bit lanes 0 and 2 after the in-lane pack.
                let h = _mm256_permute4x64_epi64::<0b1000>(_mm256_packus_epi32(h, h));
                store_u16(d, _mm256_castsi256_si128(h));
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

/// Up to 8 floats, the missing lanes zero.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn load8(x: &[f32]) -> __m256 {
    let mut buf = [0.0f32; 8];
    buf[..x.len()].copy_from_slice(x);
    // SAFETY: `buf` holds 8 floats; the load is unaligned.
    unsafe { _mm256_loadu_ps(buf.as_ptr()) }
}

/// Stores the first `d.len() / 2` of eight u16.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn store_u16(d: &mut [u8], h: __m128i) {
    let mut buf = [0u8; 16];
    // SAFETY: `buf` is 16 bytes; the store is unaligned.
    unsafe { _mm_storeu_si128(buf.as_mut_ptr().cast(), h) };
    let n = d.len();
    d.copy_from_slice(&buf[..n]);
}

/// `f32_to_bf16_bits` on 8 lanes (in the low half of each u32): NaNs kept and made quiet, the
/// rest rounded to nearest even.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn to_bf16(u: __m256i) -> __m256i {
    // Unsigned `> 0x7f80_0000` on values below 2^31 is the signed comparison.
    let is_nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fff_ffff)), _mm256_set1_epi32(0x7f80_0000));
    let lsb = _mm256_and_si256(_mm256_srli_epi32::<16>(u), _mm256_set1_epi32(1));
    let rounded = _mm256_srli_epi32::<16>(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)), lsb));
    let quiet = _mm256_or_si256(_mm256_srli_epi32::<16>(u), _mm256_set1_epi32(0x40));
    _mm256_blendv_epi8(rounded, quiet, is_nan)
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn abs(v: __m256) -> __m256 {
    _mm256_castsi256_ps(_mm256_and_si256(_mm256_castps_si256(v), _mm256_set1_epi32(0x7fff_ffff)))
}

/// Largest lane (no NaNs may be present).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn hmax(v: __m256) -> f32 {
    let x = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let x = _mm_max_ps(x, _mm_movehl_ps(x, x));
    _mm_cvtss_f32(_mm_max_ss(x, _mm_movehdup_ps(x)))
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn load(x: &[f32; 8]) -> __m256 {
    // SAFETY: 8 floats; the load is unaligned.
    unsafe { _mm256_loadu_ps(x.as_ptr()) }
}

/// One Q8_0/Q8_1 block: `d = amax / 127`, `q = round(x / d)` (halves away from zero, NaN to 0,
/// saturated to i8 as Rust's `as` does), the 32 values as four vectors of i32.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn q8_block(x: &[f32; 32]) -> (f32, [__m256i; 4]) {
    let v = array_of!(4, _mm256_setzero_ps(), |i| load(x[8 * i..8 * i + 8].try_into().expect("8")));
    // `max_ps(a, b)` returns b when a is NaN, so NaNs drop out as in the scalar fold.
    let mut m = _mm256_setzero_ps();
    for v in v {
        m = _mm256_max_ps(abs(v), m);
    }
    let amax = hmax(m);
    let d = amax / 127.0;
    let id = _mm256_set1_ps(if d != 0.0 { 1.0 / d } else { 0.0 });
    (d, array_of!(4, _mm256_setzero_si256(), |i| round_away(_mm256_mul_ps(v[i], id))))
}

/// `f32::round(v) as i8` for values the narrowing saturates: truncate, then step away from
/// zero when the dropped fraction is at least a half (exact, since `v - trunc(v)` is); clamp to
/// i8 range; NaN becomes 0, as `as` makes it.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn round_away(v: __m256) -> __m256i {
    let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(v);
    let step = _mm256_cmp_ps::<_CMP_GE_OQ>(abs(_mm256_sub_ps(v, t)), _mm256_set1_ps(0.5));
    let sign = _mm256_and_si256(_mm256_castps_si256(v), _mm256_set1_epi32(i32::MIN));
    let one = _mm256_castsi256_ps(_mm256_or_si256(_mm256_castps_si256(_mm256_set1_ps(1.0)), sign));
    let r = _mm256_add_ps(t, _mm256_and_ps(step, one));
    let r = _mm256_min_ps(_mm256_max_ps(r, _mm256_set1_ps(-128.0)), _mm256_set1_ps(127.0));
    let not_nan = _mm256_cmp_ps::<_CMP_ORD_Q>(v, v);
    _mm256_cvttps_epi32(_mm256_and_ps(r, not_nan))
}

/// Narrows four vectors of i32 already in i8 range to the 32 bytes of `qs`, in order.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn store_i8(qs: &mut [i8; 32], q: [__m256i; 4]) {
    let packed = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
    // The in-lane packs leave 32-bit word w holding elements 4 * (2 * (w % 4) + w / 4)..+4:
    // gather words 0 4 1 5 2 6 3 7.
    let ordered = _mm256_permutevar8x32_epi32(packed, _mm256_set_epi32(7, 3, 6, 2, 5, 1, 4, 0));
    // SAFETY: `qs` is 32 bytes; the store is unaligned.
    unsafe { _mm256_storeu_si256(qs.as_mut_ptr().cast(), ordered) };
}

/// ggml's Q8_K quantizer on one block (see `q8_k::quantize`).
#[target_feature(enable = "avx2,fma,f16c")]
fn q8_k_block(x: &[f32; QK_K], b: &mut BlockQ8K) {
    // The signed value of largest magnitude, the first one on ties: find the maximum
    // magnitude (NaNs dropped as above), then the first element that has it.
    let lanes = |i: usize| load(x[8 * i..8 * i + 8].try_into().expect("8"));
    let mut m = _mm256_setzero_ps();
    for i in 0..QK_K / 8 {
        m = _mm256_max_ps(abs(lanes(i)), m);
    }
    let amax = hmax(m);
    if amax == 0.0 {
        *b = BlockQ8K { d: [0; 4], qs: [0; QK_K], bsums: [[0; 2]; QK_K / 16] };
        return;
    }
    let target = _mm256_set1_ps(amax);
    let mut first = 0;
    for i in 0..QK_K / 8 {
        let hit = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(abs(lanes(i)), target));
        if hit != 0 {
            first = 8 * i + hit.trailing_zeros() as usize;
            break;
        }
    }
    let iscale = -127.0 / x[first];
    let scale = _mm256_set1_ps(iscale);
    for g in 0..QK_K / 16 {
        // nearest_int: add 1.5 * 2^23 and read the low mantissa bits, then `.min(127) as i8`,
        // which keeps the low byte.
        let n = array_of!(2, _mm256_setzero_si256(), |h| {
            let v = _mm256_add_ps(_mm256_mul_ps(lanes(2 * g + h), scale), _mm256_set1_ps(12_582_912.0));
            let n = _mm256_sub_epi32(_mm256_and_si256(_mm256_castps_si256(v), _mm256_set1_epi32(0x007f_ffff)), _mm256_set1_epi32(0x0040_0000));
            _mm256_min_epi32(n, _mm256_set1_epi32(127))
        });
        let low = |v: __m256i| _mm256_and_si256(v, _mm256_set1_epi32(0xff));
        let bytes = _mm256_packus_epi16(_mm256_packus_epi32(low(n[0]), low(n[1])), _mm256_setzero_si256());
        // After the in-lane packs, 32-bit words 0, 4, 1, 5 hold elements 0-3, 4-7, 8-11, 12-15.
        let bytes = _mm256_permutevar8x32_epi32(bytes, _mm256_set_epi32(7, 6, 3, 2, 5, 1, 4, 0));
        // SAFETY: 16 bytes at 16 * g lie inside the 256-byte `qs`; the store is unaligned.
        unsafe { _mm_storeu_si128(b.qs.as_mut_ptr().add(16 * g).cast(), _mm256_castsi256_si128(bytes)) };
        let signed = |v: __m256i| _mm256_srai_epi32::<24>(_mm256_slli_epi32::<24>(v));
        let sum = hsum_epi32(_mm256_add_epi32(signed(n[0]), signed(n[1])));
        b.bsums[g] = (sum as i16).to_le_bytes();
    }
    b.d = (1.0 / iscale).to_le_bytes();
}
