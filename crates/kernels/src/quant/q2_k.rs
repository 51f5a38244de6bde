//! Q2_K: super-blocks of 256 weights in 16 groups of 16, each weight a 2-bit level, each group
//! with a 4-bit scale and a 4-bit min, both scaled by the block's f16 `d` and `dmin`:
//! `w = d * sc[g] * q - dmin * m[g]`. Its activations are quantized to Q8_K.

use super::block::{f16_to_f32, f32_to_f16, impl_block, nearest_int};
use super::k_fit::make_qkx2_quants;
use super::q8_k::{BlockQ8K, QK_K};
use crate::DType;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ2K {
    /// Per 16-weight group `g`: the scale `sc[g]` in the low nibble, the min `m[g]` in the high.
    pub scales: [u8; QK_K / 16],
    /// 2-bit levels, laid out by [`unpack_2bit`].
    pub qs: [u8; QK_K / 4],
    /// Scale of the group scales (f16, little-endian).
    pub d: [u8; 2],
    /// Scale of the group mins (f16, little-endian).
    pub dmin: [u8; 2],
}
impl_block!(BlockQ2K, DType::Q2_K);

/// Unpacks the 2-bit levels of a 256-weight block (Q2_K, and the low bits of Q3_K).
///
/// The block is two halves of 128 weights, each stored in 32 bytes. Within a half, byte `l`
/// holds weights `l`, `l + 32`, `l + 64` and `l + 96` in bits 0-1, 2-3, 4-5 and 6-7. So weight
/// `i` lives in byte `(i / 128) * 32 + i % 32`, at bit `2 * ((i % 128) / 32)`.
pub(super) fn unpack_2bit(qs: &[u8; QK_K / 4]) -> [u8; QK_K] {
    let mut q = [0u8; QK_K];
    for (i, q) in q.iter_mut().enumerate() {
        let byte = qs[(i / 128) * 32 + i % 32];
        *q = (byte >> (2 * ((i % 128) / 32))) & 3;
    }
    q
}

/// Inverse of [`unpack_2bit`]; levels must be 0..=3.
pub(super) fn pack_2bit(q: &[u8; QK_K]) -> [u8; QK_K / 4] {
    let mut qs = [0u8; QK_K / 4];
    for (i, &q) in q.iter().enumerate() {
        qs[(i / 128) * 32 + i % 32] |= q << (2 * ((i % 128) / 32));
    }
    qs
}

/// ggml's `quantize_row_q2_K_ref`: fit each group with `make_qkx2_quants` (weights `|x|`,
/// absolute error), quantize the group scales and mins to 4 bits against their maxima, then
/// requantize every weight against the scales as actually stored.
pub fn quantize(src: &[f32], dst: &mut [BlockQ2K]) {
    assert_eq!(src.len(), dst.len() * QK_K);
    for (x, b) in src.chunks_exact(QK_K).zip(dst) {
        let mut l = [0u8; QK_K];
        let mut scales = [0.0f32; QK_K / 16];
        let mut mins = [0.0f32; QK_K / 16];
        let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
        for g in 0..QK_K / 16 {
            let xg = &x[16 * g..16 * g + 16];
            let mut weights = [0.0f32; 16];
            for (w, &v) in weights.iter_mut().zip(xg) {
                *w = v.abs();
            }
            (scales[g], mins[g]) = make_qkx2_quants(
                3,
                xg,
                &weights,
                &mut l[16 * g..16 * g + 16],
                -0.5,
                0.1,
                15,
                true,
            );
            if scales[g] > max_scale {
                max_scale = scales[g];
            }
            if mins[g] > max_min {
                max_min = mins[g];
            }
        }

        // The byte keeps only the low 8 bits of each shifted level, as ggml's uint8_t stores do.
        if max_scale > 0.0 {
            let iscale = 15.0 / max_scale;
            for (s, &scale) in b.scales.iter_mut().zip(&scales) {
                *s = nearest_int(iscale * scale) as u8;
            }
            b.d = f32_to_f16(max_scale / 15.0);
        } else {
            b.scales = [0; QK_K / 16];
            b.d = f32_to_f16(0.0);
        }
        if max_min > 0.0 {
            let iscale = 15.0 / max_min;
            for (s, &min) in b.scales.iter_mut().zip(&mins) {
                *s |= (nearest_int(iscale * min) << 4) as u8;
            }
            b.dmin = f32_to_f16(max_min / 15.0);
        } else {
            b.dmin = f32_to_f16(0.0);
        }

        let (d, dmin) = (f16_to_f32(b.d), f16_to_f32(b.dmin));
        for g in 0..QK_K / 16 {
            let dl = d * f32::from(b.scales[g] & 0x0f);
            if dl == 0.0 {
                continue; // keep the levels the fit chose
            }
            let ml = dmin * f32::from(b.scales[g] >> 4);
            for i in 16 * g..16 * g + 16 {
                l[i] = nearest_int((x[i] + ml) / dl).clamp(0, 3) as u8;
            }
        }
        b.qs = pack_2bit(&l);
    }
}

pub fn dequantize(src: &[BlockQ2K], dst: &mut [f32]) {
    assert_eq!(src.len() * QK_K, dst.len());
    for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let (d, dmin) = (f16_to_f32(b.d), f16_to_f32(b.dmin));
        let q = unpack_2bit(&b.qs);
        for (g, (yg, qg)) in y.chunks_exact_mut(16).zip(q.chunks_exact(16)).enumerate() {
            let dl = d * f32::from(b.scales[g] & 0x0f);
            let ml = dmin * f32::from(b.scales[g] >> 4);
            for (y, &q) in yg.iter_mut().zip(qg) {
                *y = dl * f32::from(q) - ml;
            }
        }
    }
}

/// ggml's `ggml_vec_dot_q2_K_q8_K_generic`: one exact integer sum of `sc * q * a` per block,
/// and the mins applied through the activations' group sums.
pub fn vec_dot(w: &[BlockQ2K], act: &[BlockQ8K]) -> f32 {
    assert_eq!(w.len(), act.len());
    let mut sumf = 0.0f32;
    for (x, y) in w.iter().zip(act) {
        let q = unpack_2bit(&x.qs);
        let mut summs = 0i32;
        let mut isum = 0i32;
        for g in 0..QK_K / 16 {
            summs += i32::from(y.bsum(g)) * i32::from(x.scales[g] >> 4);
            let group = 16 * g..16 * g + 16;
            let mut isuml = 0i32;
            for (&a, &q) in y.qs[group.clone()].iter().zip(&q[group]) {
                isuml += i32::from(a) * i32::from(q);
            }
            isum += i32::from(x.scales[g] & 0x0f) * isuml;
        }
        let dall = y.d() * f16_to_f32(x.d);
        let dmin = y.d() * f16_to_f32(x.dmin);
        sumf += dall * isum as f32 - dmin * summs as f32;
    }
    sumf
}
