//! Q5_0: blocks of 32 weights as 5-bit integers centred on 16, with one f16 scale:
//! `w = d * (q - 16)`. The low four bits are packed as in Q4_0, the fifth bits in a 32-bit
//! mask. Its activations are quantized to Q8_0.

use super::block::{f16_to_f32, f32_to_f16, impl_block, signed_absmax, trunc_clamp};
use super::q8_0::BlockQ8_0;
use crate::DType;

pub const QK: usize = 32;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ5_0 {
    /// Scale (f16, little-endian).
    pub d: [u8; 2],
    /// Fifth bits: bit `j` of this little-endian u32 belongs to element `j`.
    pub qh: [u8; 4],
    /// Low four bits: element `j` in the low nibble of byte `j`, element `j + 16` in the high.
    pub qs: [u8; QK / 2],
}
impl_block!(BlockQ5_0, DType::Q5_0);

/// The 5-bit values of elements `j` and `j + 16` (`j` in 0..16), 0..=31: the nibbles of
/// `qs[j]` with bits `j` and `j + 16` of `qh` on top.
pub(super) fn q5_pair(qs: &[u8; QK / 2], qh: u32, j: usize) -> (u8, u8) {
    let hi0 = (((qh >> j) & 1) as u8) << 4;
    let hi1 = (((qh >> (j + QK / 2)) & 1) as u8) << 4;
    ((qs[j] & 0x0f) | hi0, (qs[j] >> 4) | hi1)
}

/// Packs 32 five-bit values into the `qh` and `qs` fields shared by Q5_0 and Q5_1.
pub(super) fn pack_q5(q: &[u8; QK]) -> ([u8; 4], [u8; QK / 2]) {
    let mut qh = 0u32;
    let mut qs = [0u8; QK / 2];
    for j in 0..QK / 2 {
        qs[j] = (q[j] & 0x0f) | ((q[j + QK / 2] & 0x0f) << 4);
        qh |= u32::from(q[j] >> 4) << j;
        qh |= u32::from(q[j + QK / 2] >> 4) << (j + QK / 2);
    }
    (qh.to_le_bytes(), qs)
}

/// ggml's `quantize_row_q5_0_ref`: the signed value of largest magnitude maps to -16, and
/// `q = trunc(x / d + 16.5)` clamped to 31.
pub fn quantize(src: &[f32], dst: &mut [BlockQ5_0]) {
    assert_eq!(src.len(), dst.len() * QK);
    for (x, b) in src.chunks_exact(QK).zip(dst) {
        let d = signed_absmax(x) / -16.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b.d = f32_to_f16(d);
        let mut q = [0u8; QK];
        for (q, &v) in q.iter_mut().zip(x) {
            *q = trunc_clamp(v * id + 16.5, 31);
        }
        (b.qh, b.qs) = pack_q5(&q);
    }
}

pub fn dequantize(src: &[BlockQ5_0], dst: &mut [f32]) {
    assert_eq!(src.len() * QK, dst.len());
    for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK)) {
        let d = f16_to_f32(b.d);
        let qh = u32::from_le_bytes(b.qh);
        for j in 0..QK / 2 {
            let (q0, q1) = q5_pair(&b.qs, qh, j);
            y[j] = (i32::from(q0) - 16) as f32 * d;
            y[j + QK / 2] = (i32::from(q1) - 16) as f32 * d;
        }
    }
}

/// ggml's `ggml_vec_dot_q5_0_q8_0_generic`.
pub fn vec_dot(w: &[BlockQ5_0], act: &[BlockQ8_0]) -> f32 {
    assert_eq!(w.len(), act.len());
    let mut sumf = 0.0f32;
    for (x, y) in w.iter().zip(act) {
        let qh = u32::from_le_bytes(x.qh);
        let mut sumi = 0i32;
        for j in 0..QK / 2 {
            let (q0, q1) = q5_pair(&x.qs, qh, j);
            sumi += (i32::from(q0) - 16) * i32::from(y.qs[j])
                + (i32::from(q1) - 16) * i32::from(y.qs[j + QK / 2]);
        }
        sumf += (f16_to_f32(x.d) * f16_to_f32(y.d)) * sumi as f32;
    }
    sumf
}
