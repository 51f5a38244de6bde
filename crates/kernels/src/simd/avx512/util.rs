//! Small AVX-512 helpers the kernels share: fixed-order horizontal sums (a fixed order is what
//! keeps results independent of the batch), f16 scale conversion, unaligned field reads.

use std::arch::x86_64::*;

/// Sum of the 16 lanes, always in the same tree: halves, then quarters, then pairs.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
pub fn hsum(v: __m512) -> f32 {
    let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
    let x = _mm256_add_ps(_mm512_castps512_ps256(v), hi);
    let x = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps::<1>(x));
    let x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    _mm_cvtss_f32(_mm_add_ss(x, _mm_movehdup_ps(x)))
}

/// Sum of the 8 lanes of a vector of i32 (exact, so the order does not matter).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
pub fn hsum_epi32_256(v: __m256i) -> i32 {
    let x = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let x = _mm_add_epi32(x, _mm_unpackhi_epi64(x, x));
    let x = _mm_add_epi32(x, _mm_shuffle_epi32::<0b01>(x));
    _mm_cvtsi128_si32(x)
}

/// An f16 scale field as f32 (exact).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
pub fn f16(bits: [u8; 2]) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(u16::from_le_bytes(bits)))))
}

/// Loads the first 32 bytes of a byte array field (`u8` or `i8`).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
pub fn load256<T: Copy, const N: usize>(bytes: &[T; N]) -> __m256i {
    const { assert!(N * std::mem::size_of::<T>() >= 32) };
    // SAFETY: the array holds at least 32 bytes; the load is unaligned.
    unsafe { _mm256_loadu_si256(bytes.as_ptr().cast()) }
}

/// Loads 64 bytes starting at `bytes[at]` (`u8` or `i8`). Panics past the end.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
pub fn load512_at<T: Copy>(bytes: &[T], at: usize) -> __m512i {
    const { assert!(std::mem::size_of::<T>() == 1) };
    let s = &bytes[at..at + 64];
    // SAFETY: `s` holds 64 bytes; the load is unaligned.
    unsafe { _mm512_loadu_si512(s.as_ptr().cast()) }
}

/// Loads 32 bytes starting at `bytes[at]` (`u8` or `i8`). Panics past the end.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
pub fn load256_at<T: Copy>(bytes: &[T], at: usize) -> __m256i {
    const { assert!(std::mem::size_of::<T>() == 1) };
    let s = &bytes[at..at + 32];
    // SAFETY: `s` holds 32 bytes; the load is unaligned.
    unsafe { _mm256_loadu_si256(s.as_ptr().cast()) }
}

/// Loads the first 16 bytes of a byte array field (`u8` or `i8`).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
pub fn load128<T: Copy, const N: usize>(bytes: &[T; N]) -> __m128i {
    const { assert!(N * std::mem::size_of::<T>() >= 16) };
    // SAFETY: the array holds at least 16 bytes; the load is unaligned.
    unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) }
}
