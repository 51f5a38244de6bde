//! AVX-512 dot tiles of float weights (F32, F16, BF16) against activations of the same type:
//! both sides widened to f32, lane `j` of a token's accumulator fusing the products of
//! elements `16i + j` in order, a zero-filled masked load for the tail, one fixed horizontal
//! sum. (The scalar reference sums f32 products in f64; this is as ggml's SIMD path does.)

use std::arch::x86_64::*;
use std::marker::PhantomData;

use super::util::{hsum, lane_mask};
use crate::simd::{Acts, DotTile};

/// Float weights against activations of the same type.
pub(super) struct Float<E>(PhantomData<E>);

/// A float element type: its size, and how 16 elements (or the first `n`, the rest zero)
/// widen to f32.
pub(super) trait Widen {
    const BYTES: usize;
    /// # Safety
    /// The CPU must have this level's features; `p` must be valid for `BYTES * n` bytes
    /// (`n <= 16`).
    unsafe fn load(p: *const u8, n: usize) -> __m512;
}

pub(super) struct F32W;
pub(super) struct F16W;
pub(super) struct Bf16W;

impl Widen for F32W {
    const BYTES: usize = 4;
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
    #[inline]
    unsafe fn load(p: *const u8, n: usize) -> __m512 {
        _mm512_maskz_loadu_ps(lane_mask(n), p.cast())
    }
}

impl Widen for F16W {
    const BYTES: usize = 2;
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
    #[inline]
    unsafe fn load(p: *const u8, n: usize) -> __m512 {
        _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(lane_mask(n), p.cast()))
    }
}

impl Widen for Bf16W {
    const BYTES: usize = 2;
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
    #[inline]
    unsafe fn load(p: *const u8, n: usize) -> __m512 {
        let bits = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(lane_mask(n), p.cast()));
        _mm512_castsi512_ps(_mm512_slli_epi32::<16>(bits))
    }
}

impl<E: Widen> DotTile for Float<E> {
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
    #[inline]
    unsafe fn tile<const T: usize>(w_rows: &[u8], row_bytes: usize, act: Acts<'_>, out: *mut f32, out_stride: usize) {
        let n = row_bytes / E::BYTES;
        assert!(row_bytes == n * E::BYTES && act.row_bytes() == row_bytes && act.n() >= T);
        let rows: [*const u8; T] = std::array::from_fn(|t| act.row(t).as_ptr());
        for (r, w) in w_rows.chunks_exact(row_bytes).enumerate() {
            let mut acc = [_mm512_setzero_ps(); T];
            let mut i = 0;
            while i < n {
                let m = (n - i).min(16);
                // SAFETY: elements i..i + m lie inside the weight row and inside each activation row.
                unsafe {
                    let wv = E::load(w.as_ptr().add(i * E::BYTES), m);
                    for (t, acc) in acc.iter_mut().enumerate() {
                        let av = E::load(rows[t].add(i * E::BYTES), m);
                        *acc = _mm512_fmadd_ps(wv, av, *acc);
                    }
                }
                i += 16;
            }
            for (t, acc) in acc.into_iter().enumerate() {
                // SAFETY: the `DotTile` contract: in bounds and written by this thread alone.
                unsafe { *out.add(t * out_stride + r) = hsum(acc) };
            }
        }
    }
}
