//! AVX-512 versions of the elementwise primitives: `dot` and `scale_add` (attention over the KV
//! cache), the f64 sum of squares of RMSNorm, and SwiGLU with a vectorised `exp`. Tails use
//! masked loads, so every length runs the same code and a given length always sums in the
//! same order.

use std::arch::x86_64::*;

use super::util::hsum;
use crate::ops::{SoftmaxState, ATTN_BLOCK};

/// The first `n` of 16 lanes (`n <= 16`).
fn lane_mask(n: usize) -> u16 {
    (((1u32 << n) - 1) & 0xffff) as u16
}

/// Four accumulators over 64-element steps, the remaining whole vectors into the first three
/// in turn, a masked tail into the fourth, then `(acc0 + acc1) + (acc2 + acc3)`: a fixed order
/// for each length. Full vectors use plain loads (masked ones are slower, and defeat
/// store-to-load forwarding).
///
/// # Safety
/// The CPU must have this level's features; `a` and `b` have the same length.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
pub(super) unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    // SAFETY (whole body): every load covers elements below n, or is masked to them.
    unsafe {
        while i + 64 <= n {
            for (j, acc) in acc.iter_mut().enumerate() {
                *acc = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i + 16 * j)), _mm512_loadu_ps(pb.add(i + 16 * j)), *acc);
            }
            i += 64;
        }
        let mut j = 0;
        while i + 16 <= n {
            acc[j] = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), acc[j]);
            i += 16;
            j += 1;
        }
        if i < n {
            let m = lane_mask(n - i);
            acc[3] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, pa.add(i)), _mm512_maskz_loadu_ps(m, pb.add(i)), acc[3]);
        }
    }
    hsum(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])))
}

/// `y = y * a + x * b` with two rounded products and a rounded sum, as the scalar code.
///
/// # Safety
/// The CPU must have this level's features; `y` and `x` have the same length.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
pub(super) unsafe fn scale_add(y: &mut [f32], a: f32, x: &[f32], b: f32) {
    let n = y.len().min(x.len());
    let (va, vb) = (_mm512_set1_ps(a), _mm512_set1_ps(b));
    let (py, px) = (y.as_mut_ptr(), x.as_ptr());
    let mut i = 0;
    // SAFETY: every access covers elements below n, or is masked to them.
    unsafe {
        while i + 16 <= n {
            let v = _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(py.add(i)), va), _mm512_mul_ps(_mm512_loadu_ps(px.add(i)), vb));
            _mm512_storeu_ps(py.add(i), v);
            i += 16;
        }
        if i < n {
            let m = lane_mask(n - i);
            let v = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, py.add(i)), va), _mm512_mul_ps(_mm512_maskz_loadu_ps(m, px.add(i)), vb));
            _mm512_mask_storeu_ps(py.add(i), m, v);
        }
    }
}

/// Sum of squares in f64 (each square is exact in f64, so fusing changes nothing).
///
/// # Safety
/// The CPU must have this level's features.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
pub(super) unsafe fn sum_squares(x: &[f32]) -> f64 {
    let (n, p) = (x.len(), x.as_ptr());
    let mut acc = _mm512_setzero_pd();
    let mut i = 0;
    // SAFETY: every load covers elements below n, or is masked to them.
    unsafe {
        while i < n {
            let m = lane_mask((n - i).min(8)) as u8;
            let v = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, p.add(i)));
            acc = _mm512_fmadd_pd(v, v, acc);
            i += 8;
        }
    }
    _mm512_reduce_add_pd(acc)
}

/// SwiGLU: `gate = gate / (1 + exp(-gate)) * up`, the scalar expression with a vector `exp`.
///
/// # Safety
/// The CPU must have this level's features; `gate` and `up` have the same length.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
pub(super) unsafe fn silu_mul(gate: &mut [f32], up: &[f32]) {
    let n = gate.len().min(up.len());
    let (pg, pu) = (gate.as_mut_ptr(), up.as_ptr());
    let one = _mm512_set1_ps(1.0);
    let mut i = 0;
    // SAFETY: every access covers elements below n, or is masked to them.
    unsafe {
        while i < n {
            let m = lane_mask((n - i).min(16));
            let g = _mm512_maskz_loadu_ps(m, pg.add(i));
            let e = exp(_mm512_sub_ps(_mm512_setzero_ps(), g));
            let v = _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(one, e)), _mm512_maskz_loadu_ps(m, pu.add(i)));
            _mm512_mask_storeu_ps(pg.add(i), m, v);
            i += 16;
        }
    }
}

/// One block of online-softmax attention (see `ops::attend_block`): the 16 scores are one
/// vector, built with one multiply-add per head dimension from the transposed keys.
///
/// # Safety
/// The CPU must have this level's features; the dispatcher checked the shapes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
pub(super) unsafe fn attend_block(q: &[f32], keys_t: &[f32], values: &[f32], n: usize, scale: f32, state: &mut SoftmaxState, out: &mut [f32]) {
    let hd = q.len();
    let m = lane_mask(n);
    let mut scores = _mm512_setzero_ps();
    // SAFETY (whole body): keys_t is (hd, 16), values (16, hd), out (hd); every access is
    // within those, or masked to them.
    unsafe {
        for (d, &qd) in q.iter().enumerate() {
            scores = _mm512_fmadd_ps(_mm512_set1_ps(qd), _mm512_loadu_ps(keys_t.as_ptr().add(d * ATTN_BLOCK)), scores);
        }
        scores = _mm512_mul_ps(scores, _mm512_set1_ps(scale));
        let new_max = state.max.max(_mm512_mask_reduce_max_ps(m, scores));
        let correction = (state.max - new_max).exp();
        let p = _mm512_maskz_mov_ps(m, exp(_mm512_sub_ps(scores, _mm512_set1_ps(new_max))));
        state.sum = state.sum * correction + _mm512_reduce_add_ps(p);
        state.max = new_max;
        let mut weights = [0.0f32; ATTN_BLOCK];
        _mm512_storeu_ps(weights.as_mut_ptr(), p);
        let (po, pv) = (out.as_mut_ptr(), values.as_ptr());
        let mut c = 0;
        while c < hd {
            let mc = lane_mask((hd - c).min(16));
            let mut acc = _mm512_mul_ps(_mm512_maskz_loadu_ps(mc, po.add(c)), _mm512_set1_ps(correction));
            for (j, &w) in weights[..n].iter().enumerate() {
                acc = _mm512_fmadd_ps(_mm512_set1_ps(w), _mm512_maskz_loadu_ps(mc, pv.add(j * hd + c)), acc);
            }
            _mm512_mask_storeu_ps(po.add(c), mc, acc);
            c += 16;
        }
    }
}

/// ln 2 rounded to 9 significant bits, so that `n * LN2_HI` is exact for every |n| < 2^15.
const LN2_HI: f32 = f32::from_bits(0x3f31_8000); // 0.693359375

/// `e^x` within about 1 ulp: `x = n ln 2 + r` with |r| <= ln 2 / 2 (ln 2 split in two for an
/// exact reduction), a degree-7 Taylor polynomial for `e^r` (truncation error below 1e-8), and
/// `vscalefps` for the `2^n`, which overflows to infinity and underflows through the subnormals
/// correctly. NaN stays NaN.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
fn exp(x: __m512) -> __m512 {
    // Beyond these e^x is infinite or zero in f32; the clamp keeps r finite. `max_ps(c, x)`
    // returns x when x is NaN, so NaN passes through.
    let x = _mm512_min_ps(_mm512_set1_ps(89.0), _mm512_max_ps(_mm512_set1_ps(-104.0), x));
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)));
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.121_944_4e-4), r);
    let mut p = _mm512_set1_ps(1.0 / 5040.0);
    for c in [1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    _mm512_scalef_ps(p, n)
}
