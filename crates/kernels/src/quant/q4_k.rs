//! Q4_K: super-blocks of 256 weights in 8 groups of 32, each weight a 4-bit level, each group
//! with a 6-bit scale and a 6-bit min, scaled by the block's f16 `d` and `dmin`:
//! `w = d * sc[g] * q - dmin * m[g]`. Its activations are quantized to Q8_K.

use super::block::{f16_to_f32, f32_to_f16, impl_block, nearest_int};
use super::k_fit::make_qkx2_quants;
use super::q8_k::{BlockQ8K, QK_K};
use crate::DType;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ4K {
    /// Scale of the group scales (f16, little-endian).
    pub d: [u8; 2],
    /// Scale of the group mins (f16, little-endian).
    pub dmin: [u8; 2],
    /// Eight 6-bit scales and eight 6-bit mins, laid out by [`unpack_scale_min`].
    pub scales: [u8; 12],
    /// Levels: 32-byte chunk `c` holds group `2c` in the low nibbles and group `2c + 1` in the
    /// high nibbles, so weight `i` is nibble `(i / 32) % 2` of byte `(i / 64) * 32 + i % 32`.
    pub qs: [u8; QK_K / 2],
}
impl_block!(BlockQ4K, DType::Q4_K);

/// Unpacks the eight 6-bit group scales `sc` and mins `m` of Q4_K and Q5_K:
///
/// ```text
/// bytes 0..4   sc[0..4] in bits 0-5; the top two bits of sc[4..8] in bits 6-7
/// bytes 4..8   m[0..4]  in bits 0-5; the top two bits of m[4..8]  in bits 6-7
/// bytes 8..12  the low four bits of sc[4..8] in bits 0-3, of m[4..8] in bits 4-7
/// ```
pub(crate) fn unpack_scale_min(scales: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
    let (mut sc, mut m) = ([0u8; 8], [0u8; 8]);
    for j in 0..4 {
        sc[j] = scales[j] & 63;
        m[j] = scales[j + 4] & 63;
        sc[j + 4] = (scales[j + 8] & 0x0f) | ((scales[j] >> 6) << 4);
        m[j + 4] = (scales[j + 8] >> 4) | ((scales[j + 4] >> 6) << 4);
    }
    (sc, m)
}

/// Inverse of [`unpack_scale_min`] for values in 0..=63.
pub(super) fn pack_scale_min(sc: &[u8; 8], m: &[u8; 8]) -> [u8; 12] {
    let mut scales = [0u8; 12];
    for j in 0..4 {
        scales[j] = sc[j] | ((sc[j + 4] >> 4) << 6);
        scales[j + 4] = m[j] | ((m[j + 4] >> 4) << 6);
        scales[j + 8] = (sc[j + 4] & 0x0f) | ((m[j + 4] & 0x0f) << 4);
    }
    scales
}

/// A super-block quantized the Q4_K/Q5_K way, before its levels are packed.
pub(super) struct GroupFit {
    pub d: [u8; 2],
    pub dmin: [u8; 2],
    /// 6-bit group scales and mins, as stored.
    pub sc: [u8; 8],
    pub m: [u8; 8],
    /// Levels 0..=nmax, in weight order.
    pub levels: [u8; QK_K],
}

/// The body shared by ggml's `quantize_row_q4_K_ref` and `quantize_row_q5_K_ref` (which differ
/// only in `nmax` and the search range): fit each 32-weight group with `make_qkx2_quants`
/// (weights `rms(group) + |x|`, squared error), quantize the group scales and mins to 6 bits
/// against their maxima, then requantize every weight against the scales and mins as actually
/// stored. Groups whose stored scale is zero keep the levels of the fit, as in ggml.
pub(super) fn fit_groups(x: &[f32], nmax: i32, rmin: f32, nstep: i32) -> GroupFit {
    let mut levels = [0u8; QK_K];
    let mut scales = [0.0f32; 8];
    let mut mins = [0.0f32; 8];
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    for g in 0..8 {
        let xg = &x[32 * g..32 * g + 32];
        let mut sum_x2 = 0.0f32;
        for &v in xg {
            sum_x2 += v * v;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        let mut weights = [0.0f32; 32];
        for (w, &v) in weights.iter_mut().zip(xg) {
            *w = av_x + v.abs();
        }
        let lg = &mut levels[32 * g..32 * g + 32];
        (scales[g], mins[g]) = make_qkx2_quants(nmax, xg, &weights, lg, rmin, 0.1, nstep, false);
        if scales[g] > max_scale {
            max_scale = scales[g];
        }
        if mins[g] > max_min {
            max_min = mins[g];
        }
    }

    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let (mut sc, mut m) = ([0u8; 8], [0u8; 8]);
    for g in 0..8 {
        // ggml stores nearest_int into a uint8_t (keeping the low 8 bits) before clamping.
        sc[g] = (nearest_int(inv_scale * scales[g]) as u8).min(63);
        m[g] = (nearest_int(inv_min * mins[g]) as u8).min(63);
    }
    let d = f32_to_f16(max_scale / 63.0);
    let dmin = f32_to_f16(max_min / 63.0);

    let (df, dminf) = (f16_to_f32(d), f16_to_f32(dmin));
    for g in 0..8 {
        let dl = df * f32::from(sc[g]);
        if dl == 0.0 {
            continue;
        }
        let dm = dminf * f32::from(m[g]);
        for i in 32 * g..32 * g + 32 {
            levels[i] = nearest_int((x[i] + dm) / dl).clamp(0, nmax) as u8;
        }
    }
    GroupFit {
        d,
        dmin,
        sc,
        m,
        levels,
    }
}

/// ggml's `quantize_row_q4_K_ref`.
pub fn quantize(src: &[f32], dst: &mut [BlockQ4K]) {
    assert_eq!(src.len(), dst.len() * QK_K);
    for (x, b) in src.chunks_exact(QK_K).zip(dst) {
        let fit = fit_groups(x, 15, -1.0, 20);
        let l = &fit.levels;
        b.d = fit.d;
        b.dmin = fit.dmin;
        b.scales = pack_scale_min(&fit.sc, &fit.m);
        for c in 0..4 {
            for i in 0..32 {
                b.qs[32 * c + i] = l[64 * c + i] | (l[64 * c + 32 + i] << 4);
            }
        }
    }
}

/// The 256 levels (0..=15) of a block, in weight order.
fn unpack_levels(b: &BlockQ4K) -> [u8; QK_K] {
    let mut q = [0u8; QK_K];
    for (i, q) in q.iter_mut().enumerate() {
        let byte = b.qs[(i / 64) * 32 + i % 32];
        *q = if (i / 32) % 2 == 0 {
            byte & 0x0f
        } else {
            byte >> 4
        };
    }
    q
}

pub fn dequantize(src: &[BlockQ4K], dst: &mut [f32]) {
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

/// ggml's `ggml_vec_dot_q4_K_q8_K_generic`: exact integer sums of `sc * q * a` in eight lanes
/// (lane `i % 8`), each lane scaled and accumulated in its own f32 across blocks; the mins are
/// applied through the activations' group sums into a separate running total, which the lanes
/// are added to last.
pub fn vec_dot(w: &[BlockQ4K], act: &[BlockQ8K]) -> f32 {
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
