//! The scalar level: the plain reference code every SIMD level is tested against. It has no
//! fast paths for the quant formats (the `quant` module is the reference there) and no GEMM
//! microkernel; its elementwise ops are written so the compiler vectorises them without
//! changing the order of any float operation.

use super::{each_query, DotRows, Kernels, Level, Line};
use crate::ops::{KeySlots, Scoring, SoftmaxState, ATTN_BLOCK};
use crate::DType;
use half::f16;

pub(super) static KERNELS: Kernels = Kernels {
    level: Level::Scalar,
    quantize_act: no_quantize,
    prep_lines: no_prep_lines,
    prepare: no_prepare,
    dot_rows: no_dot_rows,
    dequantize: no_dequantize,
    gemm: None,
    gemm_bf16: None,
    dot: dot_entry,
    scale_add: scale_add_entry,
    sum_squares: sum_squares_entry,
    silu_mul: silu_mul_entry,
    gelu_mul: gelu_mul_entry,
    attend_block: attend_blocks,
};

unsafe fn no_quantize(_: DType, _: &[f32], _: &mut [u8]) -> bool {
    false
}

fn no_prep_lines(_: DType, _: usize) -> usize {
    0
}

unsafe fn no_prepare(_: DType, _: &[u8], _: &mut [Line]) {}

fn no_dot_rows(_: DType) -> Option<DotRows> {
    None
}

unsafe fn no_dequantize(_: DType, _: &[u8], _: &mut [f32]) -> bool {
    false
}

unsafe fn dot_entry(a: &[f32], b: &[f32]) -> f32 {
    dot(a, b)
}

unsafe fn scale_add_entry(y: &mut [f32], a: f32, x: &[f32], b: f32) {
    scale_add(y, a, x, b)
}

unsafe fn sum_squares_entry(x: &[f32]) -> f64 {
    sum_squares(x)
}

unsafe fn silu_mul_entry(gate: &mut [f32], up: &[f32]) {
    silu_mul(gate, up)
}

unsafe fn gelu_mul_entry(gate: &mut [f32], up: &[f32]) {
    gelu_mul(gate, up)
}

unsafe fn attend_blocks(q: &[f32], slots: &[KeySlots], keys_t: &[f16], values: &[f16], scoring: Scoring, states: &mut [SoftmaxState], out: &mut [f32]) {
    // SAFETY: the reference is plain Rust.
    unsafe { each_query(attend_block_f16, q, slots, keys_t, values, scoring, states, out) }
}

unsafe fn attend_block_f16(q: &[f32], keys_t: &[f16], values: &[f16], slots: KeySlots, scoring: Scoring, state: &mut SoftmaxState, out: &mut [f32]) {
    attend_block(q, keys_t, values, slots, scoring, state, out)
}

/// An element of the KV cache as the reference reads it.
pub trait KvElement: Copy {
    fn to_f32(self) -> f32;
}

impl KvElement for f16 {
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
}

impl KvElement for f32 {
    fn to_f32(self) -> f32 {
        self
    }
}

/// The reference for every level's `attend_block` (see `ops::attend_block`), one query; also
/// the kernel of the f32 cache.
pub fn attend_block<T: KvElement>(q: &[f32], keys_t: &[T], values: &[T], slots: KeySlots, scoring: Scoring, state: &mut SoftmaxState, out: &mut [f32]) {
    let hd = q.len();
    let mut scores = [0.0f32; ATTN_BLOCK];
    for (d, &qd) in q.iter().enumerate() {
        for (s, &k) in scores.iter_mut().zip(&keys_t[d * ATTN_BLOCK..(d + 1) * ATTN_BLOCK]) {
            *s = qd.mul_add(k.to_f32(), *s);
        }
    }
    let scores = &mut scores[slots.lo..slots.hi];
    scores.iter_mut().for_each(|s| *s *= scoring.scale);
    if let Some(cap) = scoring.softcap {
        scores.iter_mut().for_each(|s| *s = cap * (*s / cap).tanh());
    }
    let new_max = scores.iter().copied().fold(state.max, f32::max);
    let correction = (state.max - new_max).exp();
    state.sum *= correction;
    out.iter_mut().for_each(|o| *o *= correction);
    for (j, &s) in (slots.lo..).zip(scores.iter()) {
        let p = (s - new_max).exp();
        state.sum += p;
        for (o, &v) in out.iter_mut().zip(&values[j * hd..(j + 1) * hd]) {
            *o = p.mul_add(v.to_f32(), *o);
        }
    }
    state.max = new_max;
}

/// Dot product of two f32 rows.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent accumulators let the compiler vectorise without reassociating.
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `y = y * a + x * b`: two products and a sum, each rounded (no fused multiply-add), which
/// every SIMD level reproduces exactly.
pub fn scale_add(y: &mut [f32], a: f32, x: &[f32], b: f32) {
    for (o, &v) in y.iter_mut().zip(x) {
        *o = *o * a + v * b;
    }
}

pub fn sum_squares(x: &[f32]) -> f64 {
    x.iter().map(|&v| f64::from(v) * f64::from(v)).sum()
}

/// GELU's tanh approximation, `0.5 x (1 + tanh(k (x + 0.044715 x^3)))` with k = sqrt(2/pi),
/// times `up`; computed as the equal `x / (1 + e^-2k(x + 0.044715 x^3))`, which the SIMD levels
/// reproduce with their vector `exp`.
pub fn gelu_mul(gate: &mut [f32], up: &[f32]) {
    const TWO_K: f32 = 2.0 * 0.797_884_6;
    for (g, &u) in gate.iter_mut().zip(up) {
        let x = *g;
        let z = TWO_K * 0.044_715f32.mul_add(x * x * x, x);
        *g = x / (1.0 + (-z).exp()) * u;
    }
}

pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + (-*g).exp()) * u;
    }
}
