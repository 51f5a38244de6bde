//! AVX2 versions of the elementwise primitives: `dot` and `scale_add` (attention over the KV
//! cache), the f64 sum of squares of RMSNorm, and SwiGLU with a vectorised `exp`. Tails use
//! masked loads, so every length runs the same code and a given length always sums in the
//! same order.

use std::arch::x86_64::*;

use half::f16;

use super::util::{hsum, lane_mask};
use crate::ops::{KeySlots, Scoring, SoftmaxState, ATTN_BLOCK};

/// Four accumulators over 32-element steps, the remaining whole vectors into the first three
/// in turn, a masked tail into the fourth, then `(acc0 + acc1) + (acc2 + acc3)`: a fixed order
/// for each length. Full vectors use plain loads (masked ones are slower, and defeat
/// store-to-load forwarding).
///
/// # Safety
/// The CPU must have this level's features; `a` and `b` have the same length.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    // SAFETY (whole body): every load covers elements below n, or is masked to them.
    unsafe {
        while i + 32 <= n {
            for (j, acc) in acc.iter_mut().enumerate() {
                *acc = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i + 8 * j)), _mm256_loadu_ps(pb.add(i + 8 * j)), *acc);
            }
            i += 32;
        }
        let mut j = 0;
        while i + 8 <= n {
            acc[j] = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc[j]);
            i += 8;
            j += 1;
        }
        if i < n {
            let m = lane_mask(n - i);
            acc[3] = _mm256_fmadd_ps(_mm256_maskload_ps(pa.add(i), m), _mm256_maskload_ps(pb.add(i), m), acc[3]);
        }
    }
    hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])))
}

/// `y = y * a + x * b` with two rounded products and a rounded sum, as the scalar code.
///
/// # Safety
/// The CPU must have this level's features; `y` and `x` have the same length.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn scale_add(y: &mut [f32], a: f32, x: &[f32], b: f32) {
    let n = y.len().min(x.len());
    let (va, vb) = (_mm256_set1_ps(a), _mm256_set1_ps(b));
    let (py, px) = (y.as_mut_ptr(), x.as_ptr());
    let mut i = 0;
    // SAFETY: every access covers elements below n, or is masked to them.
    unsafe {
        while i + 8 <= n {
            let v = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(py.add(i)), va), _mm256_mul_ps(_mm256_loadu_ps(px.add(i)), vb));
            _mm256_storeu_ps(py.add(i), v);
            i += 8;
        }
        if i < n {
            let m = lane_mask(n - i);
            let v = _mm256_add_ps(_mm256_mul_ps(_mm256_maskload_ps(py.add(i), m), va), _mm256_mul_ps(_mm256_maskload_ps(px.add(i), m), vb));
            _mm256_maskstore_ps(py.add(i), m, v);
        }
    }
}

/// Sum of squares in f64 (each square is exact in f64, so fusing changes nothing).
///
/// # Safety
/// The CPU must have this level's features.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn sum_squares(x: &[f32]) -> f64 {
    let (n, p) = (x.len(), x.as_ptr());
    let (mut acc0, mut acc1) = (_mm256_setzero_pd(), _mm256_setzero_pd());
    let mut i = 0;
    // SAFETY: every load covers elements below n, or is masked to them.
    unsafe {
        while i < n {
            let v = _mm256_maskload_ps(p.add(i), lane_mask((n - i).min(8)));
            let (lo, hi) = (_mm256_cvtps_pd(_mm256_castps256_ps128(v)), _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(v)));
            acc0 = _mm256_fmadd_pd(lo, lo, acc0);
            acc1 = _mm256_fmadd_pd(hi, hi, acc1);
            i += 8;
        }
    }
    let s = _mm256_add_pd(acc0, acc1);
    let s = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd::<1>(s));
    _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)))
}

/// SwiGLU: `gate = gate / (1 + exp(-gate)) * up`, the scalar expression with a vector `exp`.
///
/// # Safety
/// The CPU must have this level's features; `gate` and `up` have the same length.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn silu_mul(gate: &mut [f32], up: &[f32]) {
    // SAFETY: the caller's promise.
    unsafe { sigmoid_glu::<false>(gate, up) }
}

/// GeGLU: `gate = gelu_tanh(gate) * up`, as the scalar code computes it (`x / (1 + e^-z)`).
///
/// # Safety
/// The CPU must have this level's features; `gate` and `up` have the same length.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn gelu_mul(gate: &mut [f32], up: &[f32]) {
    // SAFETY: the caller's promise.
    unsafe { sigmoid_glu::<true>(gate, up) }
}

/// GELU's tanh approximation as a sigmoid: `gelu(x) = x / (1 + e^-z)`, `z = 2k (x + c x^3)`.
const GELU_C: f32 = 0.044_715;
const GELU_2K: f32 = 2.0 * 0.797_884_6;

/// `gate = gate / (1 + exp(-z)) * up` with `z = gate` (SiLU) or GELU's tanh argument doubled.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn sigmoid_glu<const GELU: bool>(gate: &mut [f32], up: &[f32]) {
    let n = gate.len().min(up.len());
    let (pg, pu) = (gate.as_mut_ptr(), up.as_ptr());
    let one = _mm256_set1_ps(1.0);
    let mut i = 0;
    // SAFETY: every access covers elements below n, or is masked to them.
    unsafe {
        while i < n {
            let m = lane_mask((n - i).min(8));
            let g = _mm256_maskload_ps(pg.add(i), m);
            let z = if GELU {
                let cube = _mm256_mul_ps(_mm256_mul_ps(g, g), g);
                _mm256_mul_ps(_mm256_set1_ps(GELU_2K), _mm256_fmadd_ps(_mm256_set1_ps(GELU_C), cube, g))
            } else {
                g
            };
            let e = exp(_mm256_sub_ps(_mm256_setzero_ps(), z));
            let v = _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), _mm256_maskload_ps(pu.add(i), m));
            _mm256_maskstore_ps(pg.add(i), m, v);
            i += 8;
        }
    }
}

/// ln 2 rounded to 9 significant bits, so that `n * LN2_HI` is exact for every |n| < 2^15.
const LN2_HI: f32 = f32::from_bits(0x3f31_8000); // 0.693359375

/// One block of online-softmax attention (see `ops::attend_block`): the 16 scores are two
/// vectors, built with multiply-adds per head dimension from the transposed keys.
///
/// # Safety
/// The CPU must have this level's features; the dispatcher checked the shapes.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn attend_block(q: &[f32], keys_t: &[f16], values: &[f16], slots: KeySlots, scoring: Scoring, state: &mut SoftmaxState, out: &mut [f32]) {
    let hd = q.len();
    let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let neg_inf = _mm256_set1_ps(f32::NEG_INFINITY);
    // SAFETY (whole body): keys_t is (hd, 16), values (16, hd), out (hd); every access is
    // within those, or masked to them.
    unsafe {
        for (d, &qd) in q.iter().enumerate() {
            let qv = _mm256_set1_ps(qd);
            let k = keys_t.as_ptr().add(d * ATTN_BLOCK);
            lo = _mm256_fmadd_ps(qv, load8_f16(k), lo);
            hi = _mm256_fmadd_ps(qv, load8_f16(k.add(8)), hi);
        }
        let sv = _mm256_set1_ps(scoring.scale);
        let (mut lo_s, mut hi_s) = (_mm256_mul_ps(lo, sv), _mm256_mul_ps(hi, sv));
        if let Some(cap) = scoring.softcap {
            // cap * tanh(s / cap), with tanh(y) = 1 - 2 / (e^2y + 1)
            let capped = |s: __m256| {
                let e = exp(_mm256_mul_ps(s, _mm256_set1_ps(2.0 / cap)));
                let t = _mm256_sub_ps(_mm256_set1_ps(1.0), _mm256_div_ps(_mm256_set1_ps(2.0), _mm256_add_ps(e, _mm256_set1_ps(1.0))));
                _mm256_mul_ps(t, _mm256_set1_ps(cap))
            };
            (lo_s, hi_s) = (capped(lo_s), capped(hi_s));
        }
        // Lanes lo..hi of the 16: slots below 8 in the first vector, the rest in the second.
        let range = |a: usize, b: usize| _mm256_castsi256_ps(_mm256_andnot_si256(lane_mask(a), lane_mask(b)));
        let (m_lo, m_hi) = (range(slots.lo.min(8), slots.hi.min(8)), range(slots.lo.saturating_sub(8), slots.hi.saturating_sub(8)));
        lo = _mm256_blendv_ps(neg_inf, lo_s, m_lo);
        hi = _mm256_blendv_ps(neg_inf, hi_s, m_hi);
        let mut lanes = [0.0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), _mm256_max_ps(lo, hi));
        let new_max = lanes.iter().copied().fold(state.max, f32::max);
        let correction = (state.max - new_max).exp();
        let mv = _mm256_set1_ps(new_max);
        let p_lo = _mm256_and_ps(m_lo, exp(_mm256_sub_ps(lo, mv)));
        let p_hi = _mm256_and_ps(m_hi, exp(_mm256_sub_ps(hi, mv)));
        state.sum = state.sum * correction + hsum(_mm256_add_ps(p_lo, p_hi));
        state.max = new_max;
        let mut weights = [0.0f32; ATTN_BLOCK];
        _mm256_storeu_ps(weights.as_mut_ptr(), p_lo);
        _mm256_storeu_ps(weights.as_mut_ptr().add(8), p_hi);
        let (po, pv) = (out.as_mut_ptr(), values.as_ptr());
        let mut c = 0;
        while c < hd {
            let mc = lane_mask((hd - c).min(8));
            let mut acc = _mm256_mul_ps(_mm256_maskload_ps(po.add(c), mc), _mm256_set1_ps(correction));
            for (j, &w) in (slots.lo..).zip(&weights[slots.lo..slots.hi]) {
                let v = if hd - c >= 8 {
                    load8_f16(pv.add(j * hd + c))
                } else {
                    // AVX2 has no masked 16-bit load: the tail goes through a padded copy.
                    let mut tail = [f16::ZERO; 8];
                    tail[..hd - c].copy_from_slice(&values[j * hd + c..(j + 1) * hd]);
                    load8_f16(tail.as_ptr())
                };
                acc = _mm256_fmadd_ps(_mm256_set1_ps(w), v, acc);
            }
            _mm256_maskstore_ps(po.add(c), mc, acc);
            c += 8;
        }
    }
}

/// Eight f16 values at `p` as f32 (exactly).
///
/// # Safety
/// `p` must point at 8 readable values.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn load8_f16(p: *const f16) -> __m256 {
    // SAFETY: the caller's promise; the load is unaligned.
    unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
}

/// `e^x` within about 1 ulp: `x = n ln 2 + r` with |r| <= ln 2 / 2 (ln 2 split in two for an
/// exact reduction), a degree-7 Taylor polynomial for `e^r` (truncation error below 1e-8), then
/// `2^n` applied as two exact power-of-two factors so that results down in the subnormals
/// round once, as they should. Past 88.73 the result is infinite, below -104 zero; NaN stays.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn exp(x: __m256) -> __m256 {
    // `max_ps(c, x)` returns x when x is NaN, so NaN passes through the clamp.
    let xc = _mm256_min_ps(_mm256_set1_ps(88.8), _mm256_max_ps(_mm256_set1_ps(-104.0), x));
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(xc, _mm256_set1_ps(std::f32::consts::LOG2_E)));
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), xc);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
    let mut p = _mm256_set1_ps(1.0 / 5040.0);
    for c in [1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
    }
    // n in -150..=129: split as n1 = n / 2 and n2 = n - n1, each a normal power of two.
    let ni = _mm256_cvtps_epi32(n);
    let n1 = _mm256_srai_epi32::<1>(ni);
    let n2 = _mm256_sub_epi32(ni, n1);
    let pow2 = |k: __m256i| _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(k, _mm256_set1_epi32(127))));
    let y = _mm256_mul_ps(_mm256_mul_ps(p, pow2(n1)), pow2(n2));
    // Above ln(f32::MAX) the true value overflows.
    let over = _mm256_cmp_ps::<_CMP_GT_OQ>(x, _mm256_set1_ps(88.722_84));
    _mm256_blendv_ps(y, _mm256_set1_ps(f32::INFINITY), over)
}
