//! The bf16 GEMM microkernel of the AVX512_BF16 level: the f32 GEMM's tile (32 weight rows by
//! up to 12 tokens, 24 accumulators) with both operands rounded to bf16 and each step of the
//! kernel taking two values of k at once (`vdpbf16ps`: two bf16 products added to an f32 lane),
//! twice the multiply-adds per instruction of `vfmadd`. The products of two bf16 values are
//! exact in f32 and are summed in f32, so the loss is the rounding of the inputs (8 significant
//! bits), plus `vdpbf16ps` treating denormal inputs and results as zero.
//!
//! A unit is one pair (k, k + 1) of bf16 values in 4 bytes, the low half being k. The
//! microkernel's body is the f32 GEMM's (`gemm::micro_kernels`) with `vdpbf16ps` as its step.

use std::arch::x86_64::*;

use super::gemm::{micro_kernels, transpose16, MR, NR};
use super::util::lane_mask;
use crate::simd::{Gemm, MicroKernel};

pub(super) static GEMM: Gemm = Gemm { mr: MR, nr: NR, kernels: &KERNELS, lanes: 16, k_per_unit: 2, transpose: pack };

micro_kernels!("avx512f,avx512bw,avx512vl,avx512vnni,avx512bf16,fma,f16c", dpbf16);

/// One step (two values of k) for 16 rows: `acc + w[2i] * x[0] + w[2i + 1] * x[1]` per lane.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512bf16,fma,f16c")]
#[inline]
fn dpbf16(acc: __m512, w: __m512, x: __m512) -> __m512 {
    // SAFETY: both are 64 bytes of plain data; every bit pattern is valid for either.
    let (w, x) = unsafe { (std::mem::transmute::<__m512, __m512bh>(w), std::mem::transmute::<__m512, __m512bh>(x)) };
    _mm512_dpbf16_ps(acc, w, x)
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
            // SAFETY: both are 64 bytes of plain data; every bit pattern is valid for either.
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
