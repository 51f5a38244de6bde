//! Q6_K: super-blocks of 256 weights in 16 groups of 16, each weight a signed 6-bit level
//! (-32..=31, its low four bits in `ql` and top two in `qh`), each group with a signed 8-bit
//! scale, all scaled by one f16 `d`: `w = d * sc[g] * q`. Its activations are quantized to Q8_K.

use super::block::{f16_to_f32, f32_to_f16, impl_block, nearest_int};
use super::k_fit::make_qx_quants;
use super::q8_k::{BlockQ8K, QK_K};
use crate::DType;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ6K {
    /// Low four bits of the levels, laid out by [`unpack_levels`].
    pub ql: [u8; QK_K / 2],
    /// Top two bits of the levels, laid out by [`unpack_levels`].
    pub qh: [u8; QK_K / 4],
    /// Per 16-weight group scale.
    pub scales: [i8; QK_K / 16],
    /// Scale of the group scales (f16, little-endian).
    pub d: [u8; 2],
}
impl_block!(BlockQ6K, DType::Q6_K);

/// Where the bits of weight `i` live. The block is two halves of 128 weights; half `h` uses
/// `ql[64h..64h + 64]` and `qh[32h..32h + 32]`. Within a half, weight `32k + l` (quarter `k`,
/// `l` in 0..32) has its low four bits in byte `l + 32 * (k % 2)` of the half's `ql` (low nibble
/// for quarters 0 and 1, high nibble for quarters 2 and 3) and its top two bits in byte `l` of
/// the half's `qh`, at bit `2k`. Returns (ql index, ql shift, qh index, qh shift).
fn bit_positions(i: usize) -> (usize, u32, usize, u32) {
    let (half, k, l) = (i / 128, (i % 128) / 32, i % 32);
    (
        64 * half + 32 * (k % 2) + l,
        4 * (k / 2) as u32,
        32 * half + l,
        2 * k as u32,
    )
}

/// The 256 signed levels (-32..=31) of a block, in weight order; stored values are level + 32.
pub(crate) fn unpack_levels(b: &BlockQ6K) -> [i8; QK_K] {
    let mut q = [0i8; QK_K];
    for (i, q) in q.iter_mut().enumerate() {
        let (lo, lo_shift, hi, hi_shift) = bit_positions(i);
        let low = (b.ql[lo] >> lo_shift) & 0x0f;
        let high = (b.qh[hi] >> hi_shift) & 3;
        *q = (low | (high << 4)) as i8 - 32;
    }
    q
}

/// ggml's `quantize_row_q6_K_ref`: fit each group with `make_qx_quants`, quantize the group
/// scales to 8 bits against the one of largest magnitude (which maps to -128), then requantize
/// every weight against the scales as actually stored. An all-zero block is stored as zeros.
pub fn quantize(src: &[f32], dst: &mut [BlockQ6K]) {
    assert_eq!(src.len(), dst.len() * QK_K);
    for (x, b) in src.chunks_exact(QK_K).zip(dst) {
        // Levels stored with an offset of 32 (0..=63) until they are split into bits.
        let mut l = [0u8; QK_K];
        let mut scales = [0.0f32; QK_K / 16];
        let (mut max_abs_scale, mut max_scale) = (0.0f32, 0.0f32);
        for g in 0..QK_K / 16 {
            scales[g] = make_qx_quants(32, &x[16 * g..16 * g + 16], &mut l[16 * g..16 * g + 16]);
            if scales[g].abs() > max_abs_scale {
                max_abs_scale = scales[g].abs();
                max_scale = scales[g];
            }
        }
        if max_abs_scale < 1e-15 {
            *b = BlockQ6K {
                ql: [0; QK_K / 2],
                qh: [0; QK_K / 4],
                scales: [0; QK_K / 16],
                d: f32_to_f16(0.0),
            };
            continue;
        }

        let iscale = -128.0 / max_scale;
        b.d = f32_to_f16(1.0 / iscale);
        for (s, &scale) in b.scales.iter_mut().zip(&scales) {
            *s = nearest_int(iscale * scale).min(127) as i8;
        }

        let d = f16_to_f32(b.d);
        for g in 0..QK_K / 16 {
            let dl = d * f32::from(b.scales[g]);
            if dl == 0.0 {
                continue; // keep the levels the fit chose
            }
            for i in 16 * g..16 * g + 16 {
                l[i] = (nearest_int(x[i] / dl).clamp(-32, 31) + 32) as u8;
            }
        }

        b.ql = [0; QK_K / 2];
        b.qh = [0; QK_K / 4];
        for (i, &l) in l.iter().enumerate() {
            let (lo, lo_shift, hi, hi_shift) = bit_positions(i);
            b.ql[lo] |= (l & 0x0f) << lo_shift;
            b.qh[hi] |= (l >> 4) << hi_shift;
        }
    }
}

pub fn dequantize(src: &[BlockQ6K], dst: &mut [f32]) {
    assert_eq!(src.len() * QK_K, dst.len());
    for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let d = f16_to_f32(b.d);
        let q = unpack_levels(b);
        for (g, (yg, qg)) in y.chunks_exact_mut(16).zip(q.chunks_exact(16)).enumerate() {
            let dl = d * f32::from(b.scales[g]);
            for (y, &q) in yg.iter_mut().zip(qg) {
                *y = dl * f32::from(q);
            }
        }
    }
}

/// ggml's `ggml_vec_dot_q6_K_q8_K_generic`: exact integer sums of `sc * q * a` in eight lanes
/// (lane `i % 8`), each lane scaled and accumulated in its own f32 across blocks, the lanes
/// added at the end.
pub fn vec_dot(w: &[BlockQ6K], act: &[BlockQ8K]) -> f32 {
    assert_eq!(w.len(), act.len());
    let mut sums = [0.0f32; 8];
    for (x, y) in w.iter().zip(act) {
        let q = unpack_levels(x);
        let mut aux32 = [0i32; 8];
        for i in 0..QK_K {
            aux32[i % 8] += i32::from(x.scales[i / 16]) * (i32::from(y.qs[i]) * i32::from(q[i]));
        }
        let d = f16_to_f32(x.d) * y.d();
        for (s, &a) in sums.iter_mut().zip(&aux32) {
            *s += d * a as f32;
        }
    }
    let mut sumf = 0.0f32;
    for s in sums {
        sumf += s;
    }
    sumf
}
