//! Q3_K: super-blocks of 256 weights in 16 groups of 16, each weight a signed 3-bit level
//! (-4..=3: two low bits plus a high bit kept apart in `hmask`), each group with a signed 6-bit
//! scale, all scaled by one f16 `d`: `w = d * sc[g] * q`. Its activations are quantized to Q8_K.

use super::block::{f16_to_f32, f32_to_f16, impl_block, nearest_int};
use super::k_fit::make_q3_quants;
use super::q2_k::{pack_2bit, unpack_2bit};
use super::q8_k::{BlockQ8K, QK_K};
use crate::DType;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ3K {
    /// High bits of the levels, laid out by [`unpack_levels`].
    pub hmask: [u8; QK_K / 8],
    /// Low two bits of the levels, laid out as in Q2_K.
    pub qs: [u8; QK_K / 4],
    /// Sixteen 6-bit group scales, laid out by [`unpack_scales`].
    pub scales: [u8; 12],
    /// Scale of the group scales (f16, little-endian).
    pub d: [u8; 2],
}
impl_block!(BlockQ3K, DType::Q3_K);

/// Unpacks the sixteen group scales, each stored as `sc + 32` in 6 bits, and returns `sc`
/// (-32..=31).
///
/// Bytes 0..8 hold the low four bits: group `g < 8` in the low nibble of byte `g`, group
/// `g >= 8` in the high nibble of byte `g - 8`. Bytes 8..12 hold the top two bits: group `g` in
/// byte `8 + g % 4`, at bit `2 * (g / 4)`.
pub(crate) fn unpack_scales(scales: &[u8; 12]) -> [i8; 16] {
    let mut sc = [0i8; 16];
    for (g, sc) in sc.iter_mut().enumerate() {
        let low = if g < 8 {
            scales[g] & 0x0f
        } else {
            scales[g - 8] >> 4
        };
        let high = (scales[8 + g % 4] >> (2 * (g / 4))) & 3;
        *sc = (low | (high << 4)) as i8 - 32;
    }
    sc
}

/// Inverse of [`unpack_scales`] for stored values `sc + 32` in 0..=63.
fn pack_scales(stored: &[u8; 16]) -> [u8; 12] {
    let mut scales = [0u8; 12];
    for (g, &s) in stored.iter().enumerate() {
        if g < 8 {
            scales[g] |= s & 0x0f;
        } else {
            scales[g - 8] |= (s & 0x0f) << 4;
        }
        scales[8 + g % 4] |= (s >> 4) << (2 * (g / 4));
    }
    scales
}

/// Unpacks the 256 signed levels (-4..=3). The two low bits are laid out as in Q2_K. The high
/// bit of weight `i` is bit `i / 32` of `hmask[i % 32]`, and it is inverted: set means the
/// level is the low bits as they are, clear means subtract 4.
pub(super) fn unpack_levels(b: &BlockQ3K) -> [i8; QK_K] {
    let low = unpack_2bit(&b.qs);
    let mut q = [0i8; QK_K];
    for (i, q) in q.iter_mut().enumerate() {
        let high_set = b.hmask[i % 32] & (1 << (i / 32)) != 0;
        *q = low[i] as i8 - if high_set { 0 } else { 4 };
    }
    q
}

/// ggml's `quantize_row_q3_K_ref`: fit each group with `make_q3_quants`, quantize the group
/// scales to 6 bits against the one of largest magnitude, then requantize every weight against
/// the scales as actually stored.
pub fn quantize(src: &[f32], dst: &mut [BlockQ3K]) {
    assert_eq!(src.len(), dst.len() * QK_K);
    for (x, b) in src.chunks_exact(QK_K).zip(dst) {
        // Levels stored with an offset of 4 (0..=7) until they are split into bits.
        let mut l = [0u8; QK_K];
        let mut scales = [0.0f32; QK_K / 16];
        let (mut amax, mut max_scale) = (0.0f32, 0.0f32);
        for g in 0..QK_K / 16 {
            scales[g] = make_q3_quants(4, &x[16 * g..16 * g + 16], &mut l[16 * g..16 * g + 16]);
            if scales[g].abs() > amax {
                amax = scales[g].abs();
                max_scale = scales[g];
            }
        }

        if max_scale != 0.0 {
            let iscale = -32.0 / max_scale;
            let mut stored = [0u8; 16];
            for (s, &scale) in stored.iter_mut().zip(&scales) {
                // ggml narrows to int8_t before clamping, so do the same.
                let q = nearest_int(iscale * scale) as i8;
                *s = (q.clamp(-32, 31) + 32) as u8;
            }
            b.scales = pack_scales(&stored);
            b.d = f32_to_f16(1.0 / iscale);
        } else {
            b.scales = [0; 12];
            b.d = f32_to_f16(0.0);
        }

        let d = f16_to_f32(b.d);
        for (g, &sc) in unpack_scales(&b.scales).iter().enumerate() {
            let dl = d * f32::from(sc);
            if dl == 0.0 {
                continue; // keep the levels the fit chose
            }
            for i in 16 * g..16 * g + 16 {
                l[i] = (nearest_int(x[i] / dl).clamp(-4, 3) + 4) as u8;
            }
        }

        b.hmask = [0; QK_K / 8];
        for (i, l) in l.iter_mut().enumerate() {
            if *l > 3 {
                b.hmask[i % 32] |= 1 << (i / 32);
                *l -= 4;
            }
        }
        b.qs = pack_2bit(&l);
    }
}

pub fn dequantize(src: &[BlockQ3K], dst: &mut [f32]) {
    assert_eq!(src.len() * QK_K, dst.len());
    for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let d = f16_to_f32(b.d);
        let sc = unpack_scales(&b.scales);
        let q = unpack_levels(b);
        for (g, (yg, qg)) in y.chunks_exact_mut(16).zip(q.chunks_exact(16)).enumerate() {
            let dl = d * f32::from(sc[g]);
            for (y, &q) in yg.iter_mut().zip(qg) {
                *y = dl * f32::from(q);
            }
        }
    }
}

/// ggml's `ggml_vec_dot_q3_K_q8_K_generic`: exact integer sums in eight lanes (lane `i % 8`),
/// each lane scaled and accumulated in its own f32 across blocks, the lanes added at the end.
pub fn vec_dot(w: &[BlockQ3K], act: &[BlockQ8K]) -> f32 {
    assert_eq!(w.len(), act.len());
    let mut sums = [0.0f32; 8];
    for (x, y) in w.iter().zip(act) {
        let q = unpack_levels(x);
        let sc = unpack_scales(&x.scales);
        let mut aux32 = [0i32; 8];
        for i in 0..QK_K {
            aux32[i % 8] += i32::from(sc[i / 16]) * (i32::from(y.qs[i]) * i32::from(q[i]));
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
