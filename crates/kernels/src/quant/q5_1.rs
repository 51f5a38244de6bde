//! Q5_1: blocks of 32 weights as 5-bit integers with an f16 scale and an f16 offset (the block
//! minimum): `w = d * q + m`. Bits are packed as in Q5_0. Its activations are quantized to Q8_1.

use super::block::{f16_to_f32, f32_to_f16, impl_block, trunc_clamp};
use super::q4_1::min_max;
use super::q5_0::{pack_q5, q5_pair};
use super::q8_1::BlockQ8_1;
use crate::DType;

pub const QK: usize = 32;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ5_1 {
    /// Scale (f16, little-endian).
    pub d: [u8; 2],
    /// Offset, the block minimum (f16, little-endian).
    pub m: [u8; 2],
    /// Fifth bits: bit `j` of this little-endian u32 belongs to element `j`.
    pub qh: [u8; 4],
    /// Low four bits: element `j` in the low nibble of byte `j`, element `j + 16` in the high.
    pub qs: [u8; QK / 2],
}
impl_block!(BlockQ5_1, DType::Q5_1);

/// ggml's `quantize_row_q5_1_ref`: `d = (max - min) / 31`, `q = trunc((x - min) / d + 0.5)`.
/// (ggml does not clamp here because the value cannot exceed 31 for finite input; the clamp
/// only tames NaN and infinities.)
pub fn quantize(src: &[f32], dst: &mut [BlockQ5_1]) {
    assert_eq!(src.len(), dst.len() * QK);
    for (x, b) in src.chunks_exact(QK).zip(dst) {
        let (min, max) = min_max(x);
        let d = (max - min) / 31.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b.d = f32_to_f16(d);
        b.m = f32_to_f16(min);
        let mut q = [0u8; QK];
        for (q, &v) in q.iter_mut().zip(x) {
            *q = trunc_clamp((v - min) * id + 0.5, 31);
        }
        (b.qh, b.qs) = pack_q5(&q);
    }
}

pub fn dequantize(src: &[BlockQ5_1], dst: &mut [f32]) {
    assert_eq!(src.len() * QK, dst.len());
    for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK)) {
        let d = f16_to_f32(b.d);
        let m = f16_to_f32(b.m);
        let qh = u32::from_le_bytes(b.qh);
        for j in 0..QK / 2 {
            let (q0, q1) = q5_pair(&b.qs, qh, j);
            y[j] = f32::from(q0) * d + m;
            y[j + QK / 2] = f32::from(q1) * d + m;
        }
    }
}

/// ggml's `ggml_vec_dot_q5_1_q8_1_generic`.
pub fn vec_dot(w: &[BlockQ5_1], act: &[BlockQ8_1]) -> f32 {
    assert_eq!(w.len(), act.len());
    let mut sumf = 0.0f32;
    for (x, y) in w.iter().zip(act) {
        let qh = u32::from_le_bytes(x.qh);
        let mut sumi = 0i32;
        for j in 0..QK / 2 {
            let (q0, q1) = q5_pair(&x.qs, qh, j);
            sumi +=
                i32::from(q0) * i32::from(y.qs[j]) + i32::from(q1) * i32::from(y.qs[j + QK / 2]);
        }
        sumf +=
            (f16_to_f32(x.d) * f16_to_f32(y.d)) * sumi as f32 + f16_to_f32(x.m) * f16_to_f32(y.s);
    }
    sumf
}
