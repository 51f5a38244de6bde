//! AVX2 dot tiles of float weights (F32, F16, BF16) against activations of the same type:
//! both sides widened to f32, lane `j` of a token's accumulator fusing the products of
//! elements `8i + j` in order, zero-filled tails, one fixed horizontal sum. (The scalar
//! reference sums f32 products in f64; this is as ggml's SIMD path does.)

use std::arch::x86_64::*;
use std::marker::PhantomData;

use super::util::{hsum, lane_mask};
use crate::simd::{Acts, DotTile};

/// Float weights against activations of the same type.
pub(super) struct Float<E>(PhantomData<E>);

/// A float element type: its size, and how 8 elements (or the first `n`, the rest zero)
/// widen to f32.
pub(super) trait Widen {
    const BYTES: usize;
    /// # Safety
    /// The CPU must have this level's features; `p` must be valid for `BYTES * n` bytes
    /// (`n <= 8`).
    unsafe fn load(p: *const u8, n: usize) -> __m256;
}

pub(super) struct F32W;
pub(super) struct F16W;
pub(super) struct Bf16W;

/// `n <= 8` 16-bit values from `p`, the rest zero.
///
/// # Safety
/// `p` must be valid for `2 * n` bytes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn load_u16(p: *const u8, n: usize) -> __m128i {
    if n == 8 {
        // SAFETY: 16 bytes readable (the caller's promise).
        unsafe { _mm_loadu_si128(p.cast()) }
    } else {
        let mut buf = [0u8; 16];
        // SAFETY: 2 * n bytes readable (the caller's promise), and 2 * n < 16.
        unsafe { std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), 2 * n) };
        // SAFETY: `buf` is 16 bytes.
        unsafe { _mm_loadu_si128(buf.as_ptr().cast()) }
    }
}

impl Widen for F32W {
    const BYTES: usize = 4;
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn load(p: *const u8, n: usize) -> __m256 {
        // SAFETY: the mask enables exactly the n readable lanes.
        unsafe { _mm256_maskload_ps(p.cast(), lane_mask(n)) }
    }
}

impl Widen for F16W {
    const BYTES: usize = 2;
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn load(p: *const u8, n: usize) -> __m256 {
        // SAFETY: forwarded from the caller.
        _mm256_cvtph_ps(unsafe { load_u16(p, n) })
    }
}

impl Widen for Bf16W {
    const BYTES: usize = 2;
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn load(p: *const u8, n: usize) -> __m256 {
        // SAFETY: forwarded from the caller.
        let bits = _mm256_cvtepu16_epi32(unsafe { load_u16(p, n) });
        _mm256_castsi256_ps(_mm256_slli_epi32::<16>(bits))
    }
}

impl<E: Widen> DotTile for Float<E> {
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn tile<const T: usize>(w_rows: &[u8], row_bytes: usize, act: Acts<'_>, out: *mut f32, out_stride: usize) {
        let n = row_bytes / E::BYTES;
        assert!(row_bytes == n * E::BYTES && act.row_bytes() == row_bytes && act.n() >= T);
        let rows: [*const u8; T] = std::array::from_fn(|t| act.row(t).as_ptr());
        for (r, w) in w_rows.chunks_exact(row_bytes).enumerate() {
            let mut acc = [_mm256_setzero_ps(); T];
            let mut i = 0;
            while i < n {
                let m = (n - i).min(8);
                // SAFETY: elements i..i + m lie inside the weight row and inside each activation row.
                unsafe {
                    let wv = E::load(w.as_ptr().add(i * E::BYTES), m);
                    for (t, acc) in acc.iter_mut().enumerate() {
                        let av = E::load(rows[t].add(i * E::BYTES), m);
                        *acc = _mm256_fmadd_ps(wv, av, *acc);
                    }
                }
                i += 8;
            }
            for (t, acc) in acc.into_iter().enumerate() {
                // SAFETY: the `DotTile` contract: in bounds and written by this thread alone.
                unsafe { *out.add(t * out_stride + r) = hsum(acc) };
            }
        }
    }
}
