//! Small AVX-512 helpers the kernels share: fixed-order horizontal sums (a fixed order is what
//! keeps results independent of the batch), the integer sums and running float sums of the
//! tiled integer dots, f16 scale conversion, unaligned field reads.

use std::arch::x86_64::*;

use crate::simd::Line;

/// The first `n` of 16 lanes (`n <= 16`).
pub fn lane_mask(n: usize) -> u16 {
    (((1u32 << n) - 1) & 0xffff) as u16
}

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

/// For each of `R` rows, `start` plus the dots of `levels[r][k]` (unsigned bytes) with line `k`
/// at `p` (signed bytes) over `k`, four products to an exact i32 lane (`vpdpbusd`). One row
/// alone gets two chains, which halves their latency; the split cannot change an integer sum.
///
/// # Safety
/// `p` must point at `K` lines.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
pub unsafe fn dot_lines<const K: usize, const R: usize>(levels: [&[__m512i; K]; R], start: __m512i, p: *const Line) -> [__m512i; R] {
    let mut isum = [[start, _mm512_setzero_si512()]; R];
    for k in 0..K {
        // SAFETY: the caller's promise; a `Line` is 64 bytes aligned to 64.
        let a = unsafe { _mm512_load_si512(p.add(k).cast()) };
        for (sums, levels) in isum.iter_mut().zip(levels) {
            let c = if R == 1 { k % 2 } else { 0 };
            sums[c] = _mm512_dpbusd_epi32(sums[c], levels[k], a);
        }
    }
    array_of!(R, _mm512_setzero_si512(), |r| if R == 1 && K > 1 { _mm512_add_epi32(isum[r][0], isum[r][1]) } else { isum[r][0] })
}

/// A token's running sums for `R` rows before one unit of those rows (a group, a super-block):
/// zero before the first.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
pub fn running<const R: usize>(acc: &[__m512; R], first: bool) -> [__m512; R] {
    if first {
        [_mm512_setzero_ps(); R]
    } else {
        *acc
    }
}

/// Settles a token's sums `v` for `R` rows after a unit: after the last one, each row's
/// horizontal sum goes to `out[r]`; before it, they wait in `acc`.
///
/// # Safety
/// On the last unit, `out` must be valid for `R` writes that no other thread touches.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
pub unsafe fn settle<const R: usize>(v: [__m512; R], acc: &mut [__m512; R], last: bool, out: *mut f32) {
    if last {
        for (r, v) in v.into_iter().enumerate() {
            // SAFETY: the caller's promise.
            unsafe { *out.add(r) = hsum(v) };
        }
    } else {
        *acc = v;
    }
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
