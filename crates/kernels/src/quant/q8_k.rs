//! Q8_K: super-blocks of 256 values as signed bytes with an f32 scale and the sums of each
//! 16-value group. It is the activation format every K-quant is dotted against: the group sums
//! let a kernel apply a weight format's per-group offsets without touching the values again.

use super::block::{impl_block, nearest_int, signed_absmax};
use crate::DType;

pub const QK_K: usize = 256;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ8K {
    /// Scale (f32, little-endian).
    pub d: [u8; 4],
    pub qs: [i8; QK_K],
    /// `bsums[g]` = sum of `qs[16 * g..16 * g + 16]` (i16, little-endian).
    pub bsums: [[u8; 2]; QK_K / 16],
}
impl_block!(BlockQ8K, DType::Q8_K);

impl BlockQ8K {
    pub fn d(&self) -> f32 {
        f32::from_le_bytes(self.d)
    }

    pub fn bsum(&self, group: usize) -> i16 {
        i16::from_le_bytes(self.bsums[group])
    }
}

/// ggml's `quantize_row_q8_K_ref`: the signed value of largest magnitude `max` maps to -127
/// (so `d = -max / 127` carries the opposite sign), `q = nearest_int(-127 * x / max)` rounds
/// half to even, and the group sums are filled in. An all-zero block stores zeros everywhere
/// (ggml leaves its `bsums` unwritten; zero is the only consistent value).
pub fn quantize(src: &[f32], dst: &mut [BlockQ8K]) {
    assert_eq!(src.len(), dst.len() * QK_K);
    for (x, b) in src.chunks_exact(QK_K).zip(dst) {
        let max = signed_absmax(x);
        if max == 0.0 {
            *b = BlockQ8K {
                d: [0; 4],
                qs: [0; QK_K],
                bsums: [[0; 2]; QK_K / 16],
            };
            continue;
        }
        let iscale = -127.0 / max;
        for (q, &v) in b.qs.iter_mut().zip(x) {
            *q = nearest_int(iscale * v).min(127) as i8;
        }
        for (sum, group) in b.bsums.iter_mut().zip(b.qs.chunks_exact(16)) {
            let s: i32 = group.iter().map(|&q| i32::from(q)).sum();
            *sum = (s as i16).to_le_bytes();
        }
        b.d = (1.0 / iscale).to_le_bytes();
    }
}

pub fn dequantize(src: &[BlockQ8K], dst: &mut [f32]) {
    assert_eq!(src.len() * QK_K, dst.len());
    for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let d = b.d();
        for (y, &q) in y.iter_mut().zip(&b.qs) {
            *y = d * f32::from(q);
        }
    }
}

/// Q8_K weights against Q8_K activations. ggml has no such kernel (Q8_K is never a weight);
/// herd defines the obvious one so that every type has a `vec_dot`.
pub fn vec_dot(w: &[BlockQ8K], act: &[BlockQ8K]) -> f32 {
    assert_eq!(w.len(), act.len());
    let mut sumf = 0.0f32;
    for (x, y) in w.iter().zip(act) {
        let mut sumi = 0i32;
        for (&a, &b) in x.qs.iter().zip(&y.qs) {
            sumi += i32::from(a) * i32::from(b);
        }
        sumf += (x.d() * y.d()) * sumi as f32;
    }
    sumf
}
