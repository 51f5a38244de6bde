//! Q4_0: blocks of 32 weights as 4-bit integers centred on 8, with one f16 scale:
//! `w = d * (q - 8)`. Its activations are quantized to Q8_0 for the integer dot.

use super::block::{f16_to_f32, f32_to_f16, impl_block, signed_absmax, trunc_clamp};
use super::q8_0::BlockQ8_0;
use crate::DType;

pub const QK: usize = 32;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ4_0 {
    /// Scale (f16, little-endian).
    pub d: [u8; 2],
    /// Element `j` in the low nibble of byte `j`, element `j + 16` in its high nibble.
    pub qs: [u8; QK / 2],
}
impl_block!(BlockQ4_0, DType::Q4_0);

/// ggml's `quantize_row_q4_0_ref`: the signed value of largest magnitude maps to -8 (so the
/// scale carries its sign), and `q = trunc(x / d + 8.5)` clamped to 15.
pub fn quantize(src: &[f32], dst: &mut [BlockQ4_0]) {
    assert_eq!(src.len(), dst.len() * QK);
    for (x, b) in src.chunks_exact(QK).zip(dst) {
        let d = signed_absmax(x) / -8.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b.d = f32_to_f16(d);
        for j in 0..QK / 2 {
            let lo = trunc_clamp(x[j] * id + 8.5, 15);
            let hi = trunc_clamp(x[j + QK / 2] * id + 8.5, 15);
            b.qs[j] = lo | (hi << 4);
        }
    }
}

pub fn dequantize(src: &[BlockQ4_0], dst: &mut [f32]) {
    assert_eq!(src.len() * QK, dst.len());
    for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK)) {
        let d = f16_to_f32(b.d);
        for j in 0..QK / 2 {
            y[j] = (i32::from(b.qs[j] & 0x0f) - 8) as f32 * d;
            y[j + QK / 2] = (i32::from(b.qs[j] >> 4) - 8) as f32 * d;
        }
    }
}

/// ggml's `ggml_vec_dot_q4_0_q8_0_generic`.
pub fn vec_dot(w: &[BlockQ4_0], act: &[BlockQ8_0]) -> f32 {
    assert_eq!(w.len(), act.len());
    let mut sumf = 0.0f32;
    for (x, y) in w.iter().zip(act) {
        let mut sumi = 0i32;
        for j in 0..QK / 2 {
            let v0 = i32::from(x.qs[j] & 0x0f) - 8;
            let v1 = i32::from(x.qs[j] >> 4) - 8;
            sumi += v0 * i32::from(y.qs[j]) + v1 * i32::from(y.qs[j + QK / 2]);
        }
        sumf += sumi as f32 * f16_to_f32(x.d) * f16_to_f32(y.d);
    }
    sumf
}
