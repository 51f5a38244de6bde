//! Small AVX2 helpers the kernels share: fixed-order horizontal sums (a fixed order is what
//! keeps results independent of the batch), f16 scale conversion, unaligned field reads, and
//! the unsigned-by-signed byte dot that VNNI would do in one instruction.

use std::arch::x86_64::*;

/// Sum of the 8 lanes, always in the same tree: halves, then pairs, then the last two.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub fn hsum(v: __m256) -> f32 {
    let x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    _mm_cvtss_f32(_mm_add_ss(x, _mm_movehdup_ps(x)))
}

/// Sum of the 8 lanes of a vector of i32 (exact, so the order does not matter).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub fn hsum_epi32(v: __m256i) -> i32 {
    let x = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let x = _mm_add_epi32(x, _mm_unpackhi_epi64(x, x));
    let x = _mm_add_epi32(x, _mm_shuffle_epi32::<0b01>(x));
    _mm_cvtsi128_si32(x)
}

/// An f16 scale field as f32 (exact).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub fn f16(bits: [u8; 2]) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(u16::from_le_bytes(bits)))))
}

/// `sum of 4 adjacent u8 * i8 products` in 8 i32 lanes. The intermediate pair sums are i16
/// and saturate above 32767, which no caller reaches: their unsigned side is at most 128 and
/// the signed side is never -128 when the unsigned one is 128 (see each caller).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub fn dot_u8_i8(u: __m256i, s: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
}

/// Loads the first 32 bytes of a byte array field (`u8` or `i8`).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub fn load256<T: Copy, const N: usize>(bytes: &[T; N]) -> __m256i {
    const { assert!(N * std::mem::size_of::<T>() >= 32) };
    // SAFETY: the array holds at least 32 bytes; the load is unaligned.
    unsafe { _mm256_loadu_si256(bytes.as_ptr().cast()) }
}

/// Loads 32 bytes starting at `bytes[at]` (`u8` or `i8`). Panics past the end.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub fn load256_at<T: Copy>(bytes: &[T], at: usize) -> __m256i {
    const { assert!(std::mem::size_of::<T>() == 1) };
    let s = &bytes[at..at + 32];
    // SAFETY: `s` holds 32 bytes; the load is unaligned.
    unsafe { _mm256_loadu_si256(s.as_ptr().cast()) }
}

/// Loads 16 bytes starting at `bytes[at]` (`u8` or `i8`). Panics past the end.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub fn load128_at<T: Copy>(bytes: &[T], at: usize) -> __m128i {
    const { assert!(std::mem::size_of::<T>() == 1) };
    let s = &bytes[at..at + 16];
    // SAFETY: `s` holds 16 bytes; the load is unaligned.
    unsafe { _mm_loadu_si128(s.as_ptr().cast()) }
}

/// The first `n` of 8 lanes as a mask vector for `maskload`/`maskstore` (`n <= 8`).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub fn lane_mask(n: usize) -> __m256i {
    _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), _mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0))
}
