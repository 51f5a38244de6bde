//! Q4_1: blocks of 32 weights as 4-bit integers with an f16 scale and an f16 offset (the block
//! minimum): `w = d * q + m`. Its activations are quantized to Q8_1, whose `s` supplies the
//! `m * sum(x)` term.

use super::block::{f16_to_f32, f32_to_f16, impl_block, trunc_clamp};
use super::q8_1::BlockQ8_1;
use crate::DType;

pub const QK: usize = 32;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ4_1 {
    /// Scale (f16, little-endian).
    pub d: [u8; 2],
    /// Offset, the block minimum (f16, little-endian).
    pub m: [u8; 2],
    /// Element `j` in the low nibble of byte `j`, element `j + 16` in its high nibble.
    pub qs: [u8; QK / 2],
}
impl_block!(BlockQ4_1, DType::Q4_1);

/// ggml's `quantize_row_q4_1_ref`: `d = (max - min) / 15`, `q = trunc((x - min) / d + 0.5)`.
pub fn quantize(src: &[f32], dst: &mut [BlockQ4_1]) {
    assert_eq!(src.len(), dst.len() * QK);
    for (x, b) in src.chunks_exact(QK).zip(dst) {
        let (min, max) = min_max(x);
        let d = (max - min) / 15.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b.d = f32_to_f16(d);
        b.m = f32_to_f16(min);
        for j in 0..QK / 2 {
            let lo = trunc_clamp((x[j] - min) * id + 0.5, 15);
            let hi = trunc_clamp((x[j + QK / 2] - min) * id + 0.5, 15);
            b.qs[j] = lo | (hi << 4);
        }
    }
}

/// Minimum and maximum as ggml's loop finds them (starting from ±FLT_MAX).
pub(super) fn min_max(x: &[f32]) -> (f32, f32) {
    let mut min = f32::MAX;
    let mut max = -f32::MAX;
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

pub fn dequantize(src: &[BlockQ4_1], dst: &mut [f32]) {
    assert_eq!(src.len() * QK, dst.len());
    for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK)) {
        let d = f16_to_f32(b.d);
        let m = f16_to_f32(b.m);
        for j in 0..QK / 2 {
            y[j] = f32::from(b.qs[j] & 0x0f) * d + m;
            y[j + QK / 2] = f32::from(b.qs[j] >> 4) * d + m;
        }
    }
}

/// ggml's `ggml_vec_dot_q4_1_q8_1_generic`.
pub fn vec_dot(w: &[BlockQ4_1], act: &[BlockQ8_1]) -> f32 {
    assert_eq!(w.len(), act.len());
    let mut sumf = 0.0f32;
    for (x, y) in w.iter().zip(act) {
        let mut sumi = 0i32;
        for j in 0..QK / 2 {
            let v0 = i32::from(x.qs[j] & 0x0f);
            let v1 = i32::from(x.qs[j] >> 4);
            sumi += v0 * i32::from(y.qs[j]) + v1 * i32::from(y.qs[j + QK / 2]);
        }
        sumf +=
            (f16_to_f32(x.d) * f16_to_f32(y.d)) * sumi as f32 + f16_to_f32(x.m) * f16_to_f32(y.s);
    }
    sumf
}
