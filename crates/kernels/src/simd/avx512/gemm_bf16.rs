//! The bf16 GEMM microkernel of the AVX512_BF16 level: the f32 GEMM's tile (32 weight rows by
//! up to 12 tokens, 24 accumulators) with both operands rounded to bf16 and each step of the
//! kernel taking two values of k at once (`vdpbf16ps`: two bf16 products added to an f32 lane),
//! twice the multiply-adds per instruction of `vfmadd`. The products of two bf16 values are
//! exact in f32, so the only loss is the rounding of the inputs (8 significant bits).
//!
//! A unit is one pair (k, k + 1) of bf16 values in 4 bytes, the low half being k. Each output
//! is one chain of `vdpbf16ps` over the pairs, so it does not depend on its tile.

use std::arch::x86_64::*;

use super::gemm::transpose16;
use super::util::lane_mask;
use crate::simd::{Gemm, MicroKernel};

const MR: usize = 32;
const NR: usize = 12;

pub(super) static GEMM: Gemm = Gemm { mr: MR, nr: NR, kernels: &KERNELS, lanes: 16, k_per_unit: 2, transpose: pack };

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

/// Eight f32 as sixteen bf16, as `vdpbf16ps` takes them (same 64 bytes).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512bf16,fma,f16c")]
#[inline]
fn as_bh(v: __m512) -> __m512bh {
    // SAFETY: both are 64 bytes of plain data; every bit pattern is valid for either.
    unsafe { std::mem::transmute::<__m512, __m512bh>(v) }
}

/// See `MicroKernel` for the contract; `T` tokens, `kc` units (pairs of k).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512bf16,fma,f16c")]
unsafe fn micro<const T: usize>(kc: usize, panel: *const f32, x: *const f32, c: *mut f32, c_stride: usize, n_rows: usize, accumulate: bool) {
    let m0 = lane_mask(n_rows.min(16));
    let m1 = lane_mask(n_rows.clamp(16, 32) - 16);
    let mut acc0 = [_mm512_setzero_ps(); T];
    let mut acc1 = [_mm512_setzero_ps(); T];
    // SAFETY (whole body): the caller guarantees `panel` holds kc * MR units, `x` kc * NR, and
    // `c` the first n_rows floats of T rows c_stride apart; masked lanes are never touched.
    unsafe {
        if accumulate {
            for t in 0..T {
                acc0[t] = _mm512_maskz_loadu_ps(m0, c.add(t * c_stride));
                acc1[t] = _mm512_maskz_loadu_ps(m1, c.wrapping_add(t * c_stride + 16));
            }
        }
        let (mut p, mut xp) = (panel, x);
        for _ in 0..kc {
            let w0 = as_bh(_mm512_loadu_ps(p));
            let w1 = as_bh(_mm512_loadu_ps(p.add(16)));
            for t in 0..T {
                let xb = as_bh(_mm512_set1_ps(*xp.add(t)));
                acc0[t] = _mm512_dpbf16_ps(acc0[t], w0, xb);
                acc1[t] = _mm512_dpbf16_ps(acc1[t], w1, xb);
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

/// See `Transpose`: 16 rows at a time, 32 values of k each, rounded to bf16 (to nearest even)
/// into 16 pair units and transposed as the f32 GEMM's 16x16 blocks; an odd last value of k
/// pairs with zero.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512bf16,fma,f16c")]
unsafe fn pack(src: *const f32, src_stride: usize, n_rows: usize, len: usize, dst: *mut f32, dst_stride: usize, n_lanes: usize) {
    let store_mask = lane_mask(n_lanes);
    let mut k = 0;
    while k < len {
        let (lo_mask, hi_mask) = (lane_mask((len - k).min(16)), lane_mask((len - k).clamp(16, 32) - 16));
        let units = array_of!(16, _mm512_setzero_ps(), |i| if i < n_rows {
            // SAFETY: rows below n_rows hold `len` floats from `src + i * src_stride`; masked
            // lanes are not read.
            let (lo, hi) = unsafe { (_mm512_maskz_loadu_ps(lo_mask, src.add(i * src_stride + k)), _mm512_maskz_loadu_ps(hi_mask, src.wrapping_add(i * src_stride + k + 16))) };
            // bf16 element j is k + j: the low 16 from `lo`, the high 16 from `hi`.
            // SAFETY: as `as_bh`, the other way.
            unsafe { std::mem::transmute::<__m512bh, __m512>(_mm512_cvtne2ps_pbh(hi, lo)) }
        } else {
            _mm512_setzero_ps()
        });
        let cols = transpose16(units);
        for (j, col) in cols.iter().enumerate().take((len - k).min(32).div_ceil(2)) {
            // SAFETY: output row k / 2 + j < len.div_ceil(2) holds n_lanes units at
            // dst + (k / 2 + j) * dst_stride.
            unsafe { _mm512_mask_storeu_ps(dst.add((k / 2 + j) * dst_stride), store_mask, *col) };
        }
        k += 32;
    }
}
