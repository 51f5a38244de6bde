//! AVX-512 versions of the elementwise primitives: `dot` and `scale_add` (attention over the KV
//! cache), the f64 sum of squares of RMSNorm, and SwiGLU with a vectorised `exp`. Tails use
//! masked loads, so every length runs the same code and a given length always sums in the
//! same order.

use std::arch::x86_64::*;

use half::f16;

use super::util::{hsum, lane_mask};
use crate::ops::{KeySlots, Scoring, SoftmaxState, ATTN_BLOCK};

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
    // SAFETY: the caller's promise.
    unsafe { sigmoid_glu::<false>(gate, up) }
}

/// GeGLU: `gate = gelu_tanh(gate) * up`, as the scalar code computes it (`x / (1 + e^-z)`).
///
/// # Safety
/// The CPU must have this level's features; `gate` and `up` have the same length.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
pub(super) unsafe fn gelu_mul(gate: &mut [f32], up: &[f32]) {
    // SAFETY: the caller's promise.
    unsafe { sigmoid_glu::<true>(gate, up) }
}

/// `gate = gate / (1 + exp(-z)) * up` with `z = gate` (SiLU) or GELU's tanh argument doubled.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
unsafe fn sigmoid_glu<const GELU: bool>(gate: &mut [f32], up: &[f32]) {
    let n = gate.len().min(up.len());
    let (pg, pu) = (gate.as_mut_ptr(), up.as_ptr());
    let one = _mm512_set1_ps(1.0);
    let mut i = 0;
    // SAFETY: every access covers elements below n, or is masked to them.
    unsafe {
        while i < n {
            let m = lane_mask((n - i).min(16));
            let g = _mm512_maskz_loadu_ps(m, pg.add(i));
            let z = if GELU {
                let cube = _mm512_mul_ps(_mm512_mul_ps(g, g), g);
                _mm512_mul_ps(_mm512_set1_ps(GELU_2K), _mm512_fmadd_ps(_mm512_set1_ps(GELU_C), cube, g))
            } else {
                g
            };
            let e = exp(_mm512_sub_ps(_mm512_setzero_ps(), z));
            let v = _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(one, e)), _mm512_maskz_loadu_ps(m, pu.add(i)));
            _mm512_mask_storeu_ps(pg.add(i), m, v);
            i += 16;
        }
    }
}

/// One block of online-softmax attention for several queries (see `ops::attend_block`), four
/// at a time, so each row of keys and of values loaded serves four queries. A query's 16
/// scores are one vector, built from the transposed keys in four chains (dimensions modulo 4),
/// and its output in four chains too (16-wide slices of the head): a single chain waits out
/// the multiply-add latency at every step. A query's operations are the same whichever other
/// queries share its group of four, so its result does not depend on them.
///
/// # Safety
/// The CPU must have this level's features; the dispatcher checked the shapes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
pub(super) unsafe fn attend_block(q: &[f32], slots: &[KeySlots], keys_t: &[f16], values: &[f16], scoring: Scoring, states: &mut [SoftmaxState], out: &mut [f32]) {
    let hd = keys_t.len() / ATTN_BLOCK;
    for (g, n) in slots.chunks(4).enumerate() {
        let (q, out, states) = (&q[4 * g * hd..], &mut out[4 * g * hd..], &mut states[4 * g..]);
        // SAFETY: the caller's promise; each group takes its own queries.
        unsafe {
            match n.len() {
                1 => attend::<1>(q, n, keys_t, values, scoring, states, out),
                2 => attend::<2>(q, n, keys_t, values, scoring, states, out),
                3 => attend::<3>(q, n, keys_t, values, scoring, states, out),
                _ => attend::<4>(q, n, keys_t, values, scoring, states, out),
            }
        }
    }
}

/// `attend_block` for the first `Q` queries of `q`, `states` and `out`. (Indexed loops: the
/// register arrays need constant indices after unrolling.)
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
unsafe fn attend<const Q: usize>(q: &[f32], n: &[KeySlots], keys_t: &[f16], values: &[f16], scoring: Scoring, states: &mut [SoftmaxState], out: &mut [f32]) {
    let hd = keys_t.len() / ATTN_BLOCK;
    assert!(q.len() >= Q * hd && out.len() >= Q * hd && n.len() >= Q && states.len() >= Q);
    let mut chains = [[_mm512_setzero_ps(); 4]; Q];
    let mut weights = [[0.0f32; ATTN_BLOCK]; Q];
    let mut corrections = [0.0f32; Q];
    // SAFETY (whole body): keys_t is (hd, 16), values (16, hd), q and out hold Q rows of hd
    // (asserted); every access is within those, or masked to them.
    unsafe {
        let key = |d: usize| _mm512_cvtph_ps(_mm256_loadu_si256(keys_t.as_ptr().add(d * ATTN_BLOCK).cast()));
        let (pq, po, pv) = (q.as_ptr(), out.as_mut_ptr(), values.as_ptr());
        // Constant indices into `chains`, so that they stay in registers.
        let quads = hd / 4 * 4;
        for d in (0..quads).step_by(4) {
            for c in 0..4 {
                let k = key(d + c);
                for i in 0..Q {
                    chains[i][c] = _mm512_fmadd_ps(_mm512_set1_ps(*pq.add(i * hd + d + c)), k, chains[i][c]);
                }
            }
        }
        for c in 0..hd - quads {
            let k = key(quads + c);
            for i in 0..Q {
                chains[i][c] = _mm512_fmadd_ps(_mm512_set1_ps(*pq.add(i * hd + quads + c)), k, chains[i][c]);
            }
        }
        for i in 0..Q {
            let [c0, c1, c2, c3] = chains[i];
            let mut scores = _mm512_mul_ps(_mm512_add_ps(_mm512_add_ps(c0, c1), _mm512_add_ps(c2, c3)), _mm512_set1_ps(scoring.scale));
            if let Some(cap) = scoring.softcap {
                // cap * tanh(s / cap), with tanh(y) = 1 - 2 / (e^2y + 1)
                let e = exp(_mm512_mul_ps(scores, _mm512_set1_ps(2.0 / cap)));
                let t = _mm512_sub_ps(_mm512_set1_ps(1.0), _mm512_div_ps(_mm512_set1_ps(2.0), _mm512_add_ps(e, _mm512_set1_ps(1.0))));
                scores = _mm512_mul_ps(t, _mm512_set1_ps(cap));
            }
            let (m, state) = (lane_mask(n[i].hi) & !lane_mask(n[i].lo), &mut states[i]);
            let new_max = state.max.max(_mm512_mask_reduce_max_ps(m, scores));
            corrections[i] = (state.max - new_max).exp();
            let p = _mm512_maskz_mov_ps(m, exp(_mm512_sub_ps(scores, _mm512_set1_ps(new_max))));
            state.sum = state.sum * corrections[i] + _mm512_reduce_add_ps(p);
            state.max = new_max;
            _mm512_storeu_ps(weights[i].as_mut_ptr(), p);
        }
        let n_max = n[..Q].iter().map(|s| s.hi).max().unwrap_or(0);
        let n_min = n[..Q].iter().map(|s| s.lo).min().unwrap_or(0);
        for c in (0..hd).step_by(64) {
            let masks = array_of!(4, 0u16, |s| lane_mask((hd.saturating_sub(c + 16 * s)).min(16)));
            let mut acc = [[_mm512_setzero_ps(); 4]; Q];
            for i in 0..Q {
                for s in 0..4 {
                    acc[i][s] = _mm512_mul_ps(_mm512_maskz_loadu_ps(masks[s], po.wrapping_add(i * hd + c + 16 * s)), _mm512_set1_ps(corrections[i]));
                }
            }
            for j in n_min..n_max {
                let v = array_of!(4, _mm512_setzero_ps(), |s| _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(masks[s], pv.wrapping_add(j * hd + c + 16 * s).cast())));
                for i in 0..Q {
                    // Outside a query's own keys the slots may hold anything (even NaN): skipped.
                    if (n[i].lo..n[i].hi).contains(&j) {
                        let w = _mm512_set1_ps(weights[i][j]);
                        for s in 0..4 {
                            acc[i][s] = _mm512_fmadd_ps(w, v[s], acc[i][s]);
                        }
                    }
                }
            }
            for i in 0..Q {
                for s in 0..4 {
                    _mm512_mask_storeu_ps(po.wrapping_add(i * hd + c + 16 * s), masks[s], acc[i][s]);
                }
            }
        }
    }
}

/// GELU's tanh approximation as a sigmoid: `gelu(x) = x / (1 + e^-z)`, `z = 2k (x + c x^3)`.
const GELU_C: f32 = 0.044_715;
const GELU_2K: f32 = 2.0 * 0.797_884_6;

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
