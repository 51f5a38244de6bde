//! Q5_K: Q4_K with a fifth bit per level (0..=31), the fifth bits kept apart in `qh`:
//! `w = d * sc[g] * q - dmin * m[g]` over 8 groups of 32. Its activations are quantized to Q8_K.

use super::block::{f16_to_f32, impl_block};
use super::q4_k::{fit_groups, pack_scale_min, unpack_scale_min};
use super::q8_k::{BlockQ8K, QK_K};
use crate::DType;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ5K {
    /// Scale of the group scales (f16, little-endian).
    pub d: [u8; 2],
    /// Scale of the group mins (f16, little-endian).
    pub dmin: [u8; 2],
    /// Eight 6-bit scales and eight 6-bit mins, laid out as in Q4_K.
    pub scales: [u8; 12],
    /// Fifth bits: weight `i`'s is bit `i / 32` (its group) of `qh[i % 32]`.
    pub qh: [u8; QK_K / 8],
    /// Low four bits, laid out as Q4_K's levels.
    pub qs: [u8; QK_K / 2],
}
impl_block!(BlockQ5K, DType::Q5_K);

/// ggml's `quantize_row_q5_K_ref`.
pub fn quantize(src: &[f32], dst: &mut [BlockQ5K]) {
    assert_eq!(src.len(), dst.len() * QK_K);
    for (x, b) in src.chunks_exact(QK_K).zip(dst) {
        let fit = fit_groups(x, 31, -0.5, 15);
        b.d = fit.d;
        b.dmin = fit.dmin;
        b.scales = pack_scale_min(&fit.sc, &fit.m);
        b.qh = [0; QK_K / 8];
        for (i, &l) in fit.levels.iter().enumerate() {
            let byte = &mut b.qs[(i / 64) * 32 + i % 32];
            if (i / 32) % 2 == 0 {
                *byte = l & 0x0f;
            } else {
                *byte |= (l & 0x0f) << 4;
            }
            b.qh[i % 32] |= (l >> 4) << (i / 32);
        }
    }
}

/// The 256 levels (0..=31) of a block, in weight order.
fn unpack_levels(b: &BlockQ5K) -> [u8; QK_K] {
    let mut q = [0u8; QK_K];
    for (i, q) in q.iter_mut().enumerate() {
        let byte = b.qs[(i / 64) * 32 + i % 32];
        let low = if (i / 32) % 2 == 0 {
            byte & 0x0f
        } else {
            byte >> 4
        };
        let high = (b.qh[i % 32] >> (i / 32)) & 1;
        *q = low | (high << 4);
    }
    q
}

pub fn dequantize(src: &[BlockQ5K], dst: &mut [f32]) {
    assert_eq!(src.len() * QK_K, dst.len());
    for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let (d, dmin) = (f16_to_f32(b.d), f16_to_f32(b.dmin));
        let (sc, m) = unpack_scale_min(&b.scales);
        let q = unpack_levels(b);
        for (g, (yg, qg)) in y.chunks_exact_mut(32).zip(q.chunks_exact(32)).enumerate() {
            let dl = d * f32::from(sc[g]);
            let ml = dmin * f32::from(m[g]);
            for (y, &q) in yg.iter_mut().zip(qg) {
                *y = dl * f32::from(q) - ml;
            }
        }
    }
}

/// ggml's `ggml_vec_dot_q5_K_q8_K_generic`, which is its Q4_K one with 5-bit levels: exact
/// integer sums in eight lanes (lane `i % 8`), each lane accumulated in its own f32 across
/// blocks; the mins go through the activations' group sums into a separate running total,
/// which the lanes are added to last.
pub fn vec_dot(w: &[BlockQ5K], act: &[BlockQ8K]) -> f32 {
    assert_eq!(w.len(), act.len());
    let mut sums = [0.0f32; 8];
    let mut sumf = 0.0f32;
    for (x, y) in w.iter().zip(act) {
        let q = unpack_levels(x);
        let (sc, m) = unpack_scale_min(&x.scales);
        let mut sumi = 0i32;
        for g in 0..QK_K / 16 {
            sumi += i32::from(y.bsum(g)) * i32::from(m[g / 2]);
        }
        let mut aux32 = [0i32; 8];
        for i in 0..QK_K {
            aux32[i % 8] += i32::from(sc[i / 32]) * (i32::from(y.qs[i]) * i32::from(q[i]));
        }
        let d = f16_to_f32(x.d) * y.d();
        for (s, &a) in sums.iter_mut().zip(&aux32) {
            *s += d * a as f32;
        }
        let dmin = f16_to_f32(x.dmin) * y.d();
        sumf -= dmin * sumi as f32;
    }
    for s in sums {
        sumf += s;
    }
    sumf
}
