//! The AVX-512 f32 GEMM microkernel: 32 weight rows (two vectors) by up to 12 tokens, one
//! fused multiply-add per (row, token) per step of k (the body, shared with `gemm_bf16`, is
//! `micro_kernels`), and the transpose that packs both operands.

use std::arch::x86_64::*;

use super::util::lane_mask;
use crate::simd::{Gemm, MicroKernel};

/// Weight rows per panel (two vectors) and tokens per tile, for both GEMMs.
pub(super) const MR: usize = 32;
pub(super) const NR: usize = 12;

/// Defines `micro::<T>` (see `MicroKernel`; `T` tokens) and the table `KERNELS` of its 12
/// token counts for a GEMM whose unit step is `$madd(acc, w, x)` on 16 lanes, compiled for
/// `$features`: the f32 and bf16 GEMMs differ only there. 24 accumulators stay in registers;
/// each output is a plain chain of unit steps over k, so a value does not depend on where its
/// tile falls, and edge tiles only mask their loads and stores of `c`.
macro_rules! micro_kernels {
    ($features:literal, $madd:ident) => {
        static KERNELS: [MicroKernel; NR] = [
            micro::<1>,
            micro::<2>,
            micro::<3>,
            micro::<4>,
            micro::<5>,
            micro::<6>,
            micro::<7>,
            micro::<8>,
            micro::<9>,
            micro::<10>,
            micro::<11>,
            micro::<12>,
        ];

        #[target_feature(enable = $features)]
        unsafe fn micro<const T: usize>(kc: usize, panel: *const f32, x: *const f32, c: *mut f32, c_stride: usize, n_rows: usize, accumulate: bool) {
            let m0 = lane_mask(n_rows.min(16));
            let m1 = lane_mask(n_rows.clamp(16, 32) - 16);
            let mut acc0 = [_mm512_setzero_ps(); T];
            let mut acc1 = [_mm512_setzero_ps(); T];
            // SAFETY (whole body): the caller guarantees `panel` holds kc * MR units, `x`
            // kc * NR, and `c` the first n_rows floats of T rows c_stride apart; masked lanes
            // are never touched.
            unsafe {
                if accumulate {
                    for t in 0..T {
                        acc0[t] = _mm512_maskz_loadu_ps(m0, c.add(t * c_stride));
                        acc1[t] = _mm512_maskz_loadu_ps(m1, c.wrapping_add(t * c_stride + 16));
                    }
                }
                let (mut p, mut xp) = (panel, x);
                for _ in 0..kc {
                    let w0 = _mm512_loadu_ps(p);
                    let w1 = _mm512_loadu_ps(p.add(16));
                    for t in 0..T {
                        // A unit's 4 bytes to every lane (an f32, or a pair of bf16).
                        let xb = _mm512_set1_ps(*xp.add(t));
                        acc0[t] = $madd(acc0[t], w0, xb);
                        acc1[t] = $madd(acc1[t], w1, xb);
                    }
                    p = p.add(MR);
                    xp = xp.add(NR);
                }
                for t in 0..T {
                    _mm512_mask_storeu_ps(c.add(t * c_stride), m0, acc0[t]);
                    _mm512_mask_storeu_ps(c.wrapping_add(t * c_stride + 16), m1, acc1[t]);
                }
            }
        }
    };
}
pub(super) use micro_kernels;

pub(super) static GEMM: Gemm = Gemm { mr: MR, nr: NR, kernels: &KERNELS, lanes: 16, k_per_unit: 1, transpose };

micro_kernels!("avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c", fmadd);

/// One step of k for 16 rows: `acc + w * x`, fused.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
fn fmadd(acc: __m512, w: __m512, x: __m512) -> __m512 {
    _mm512_fmadd_ps(w, x, acc)
}

/// See `Transpose`: 16 rows at a time, in 16x16 blocks through registers (four rounds of
/// shuffles), with masked loads and stores for the partial edges.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
unsafe fn transpose(src: *const f32, src_stride: usize, n_rows: usize, len: usize, dst: *mut f32, dst_stride: usize, n_lanes: usize) {
    let store_mask = lane_mask(n_lanes);
    let mut k = 0;
    while k < len {
        let n_k = (len - k).min(16);
        let load_mask = lane_mask(n_k);
        // SAFETY: rows below n_rows hold `len` floats from `src + i * src_stride`; masked lanes
        // are not read.
        let rows = array_of!(16, _mm512_setzero_ps(), |i| if i < n_rows { unsafe { _mm512_maskz_loadu_ps(load_mask, src.add(i * src_stride + k)) } } else { _mm512_setzero_ps() });
        let cols = transpose16(rows);
        for (j, col) in cols.iter().enumerate().take(n_k) {
            // SAFETY: output row k + j < len holds n_lanes floats at dst + (k + j) * dst_stride.
            unsafe { _mm512_mask_storeu_ps(dst.add((k + j) * dst_stride), store_mask, *col) };
        }
        k += 16;
    }
}

/// A 16x16 transpose: element j of row i becomes element i of row j.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
pub(super) fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
    // Round 1: interleave pairs of rows by 32-bit element.
    let a = array_of!(16, _mm512_setzero_ps(), |i| {
        let (x, y) = (r[i & !1], r[i | 1]);
        if i % 2 == 0 { _mm512_unpacklo_ps(x, y) } else { _mm512_unpackhi_ps(x, y) }
    });
    // Round 2: interleave by 64-bit element within each group of four rows, so that b[4g + j]
    // holds columns j, j + 4, j + 8, j + 12 (one per 128-bit lane) of rows 4g..4g + 4.
    let b = array_of!(16, _mm512_setzero_ps(), |i| {
        let (g, j) = (i & !3, i & 3);
        let (x, y) = (_mm512_castps_pd(a[g + (j >> 1)]), _mm512_castps_pd(a[g + (j >> 1) + 2]));
        _mm512_castpd_ps(if j & 1 == 0 { _mm512_unpacklo_pd(x, y) } else { _mm512_unpackhi_pd(x, y) })
    });
    // Rounds 3 and 4: move 128-bit lanes, rows i and i + 4, then i and i + 8.
    let c = array_of!(16, _mm512_setzero_ps(), |i| {
        let (x, y) = (b[i & !4], b[i | 4]);
        if i & 4 == 0 { _mm512_shuffle_f32x4::<0b10_00_10_00>(x, y) } else { _mm512_shuffle_f32x4::<0b11_01_11_01>(x, y) }
    });
    array_of!(16, _mm512_setzero_ps(), |i| {
        let (x, y) = (c[i & !8], c[i | 8]);
        if i & 8 == 0 { _mm512_shuffle_f32x4::<0b10_00_10_00>(x, y) } else { _mm512_shuffle_f32x4::<0b11_01_11_01>(x, y) }
    })
}
