//! Q8_0: blocks of 32 values as signed bytes with one f16 scale, `x = d * q`. It is both a
//! weight format and the activation format Q4_0, Q5_0 and Q8_0 weights are dotted against.

use super::block::{f16_to_f32, f32_to_f16, impl_block};
use crate::DType;

pub const QK: usize = 32;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ8_0 {
    /// Scale (f16, little-endian).
    pub d: [u8; 2],
    pub qs: [i8; QK],
}
impl_block!(BlockQ8_0, DType::Q8_0);

/// ggml's `quantize_row_q8_0_ref`: `d = amax / 127`, `q = round(x / d)` with halves rounded
/// away from zero (C's `roundf`, which is Rust's `f32::round`).
pub fn quantize(src: &[f32], dst: &mut [BlockQ8_0]) {
    assert_eq!(src.len(), dst.len() * QK);
    for (x, b) in src.chunks_exact(QK).zip(dst) {
        let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b.d = f32_to_f16(d);
        for (q, &v) in b.qs.iter_mut().zip(x) {
            *q = (v * id).round() as i8;
        }
    }
}

pub fn dequantize(src: &[BlockQ8_0], dst: &mut [f32]) {
    assert_eq!(src.len() * QK, dst.len());
    for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK)) {
        let d = f16_to_f32(b.d);
        for (y, &q) in y.iter_mut().zip(&b.qs) {
            *y = f32::from(q) * d;
        }
    }
}

/// ggml's `ggml_vec_dot_q8_0_q8_0_generic`: an exact integer sum per block, scaled by the
/// product of the two scales.
pub fn vec_dot(w: &[BlockQ8_0], act: &[BlockQ8_0]) -> f32 {
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
