//! Q8_1: Q8_0 plus `s = d * sum(q)` stored in the block, so that dotting it with a format that
//! has an offset (Q4_1, Q5_1: `w = d * q + m`) gets `m * sum(x)` for free. It exists as the
//! activation format for those two; ggml never stores weights in it.

use super::block::{f16_to_f32, f32_to_f16, impl_block};
use crate::DType;

pub const QK: usize = 32;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ8_1 {
    /// Scale (f16, little-endian).
    pub d: [u8; 2],
    /// `d * sum(qs)` (f16, little-endian), rounded from the f32 product.
    pub s: [u8; 2],
    pub qs: [i8; QK],
}
impl_block!(BlockQ8_1, DType::Q8_1);

/// ggml's `quantize_row_q8_1_ref`: as Q8_0, plus `s = f16(sum(q) * d)` with the f32 `d`.
pub fn quantize(src: &[f32], dst: &mut [BlockQ8_1]) {
    assert_eq!(src.len(), dst.len() * QK);
    for (x, b) in src.chunks_exact(QK).zip(dst) {
        let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b.d = f32_to_f16(d);
        let mut sum = 0i32;
        for (q, &v) in b.qs.iter_mut().zip(x) {
            *q = (v * id).round() as i8;
            sum += i32::from(*q);
        }
        b.s = f32_to_f16(sum as f32 * d);
    }
}

/// `x = d * q`; `s` is redundant here. (ggml has no Q8_1 dequantizer; this is the obvious one.)
pub fn dequantize(src: &[BlockQ8_1], dst: &mut [f32]) {
    assert_eq!(src.len() * QK, dst.len());
    for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK)) {
        let d = f16_to_f32(b.d);
        for (y, &q) in y.iter_mut().zip(&b.qs) {
            *y = f32::from(q) * d;
        }
    }
}

/// Q8_1 weights against Q8_1 activations. ggml has no such kernel (Q8_1 is never a weight);
/// herd defines it exactly like the Q8_0 one so that every type has a `vec_dot`.
pub fn vec_dot(w: &[BlockQ8_1], act: &[BlockQ8_1]) -> f32 {
    assert_eq!(w.len(), act.len());
    let mut sumf = 0.0f32;
    for (x, y) in w.iter().zip(act) {
        let mut sumi = 0i32;
        for (&a, &b) in x.qs.iter().zip(&y.qs) {
            sumi += i32::from(a) * i32::from(b);
        }
        sumf += sumi as f32 * (f16_to_f32(x.d) * f16_to_f32(y.d));
    }
    sumf
}
