//! The float element types F32, F16 and BF16: conversion to and from f32, and their reference
//! dot products, which (as ggml's scalar `ggml_vec_dot_f32/f16/bf16`) multiply in f32 and
//! accumulate in f64. Values are little-endian, one element per "block".

pub fn dequantize_f32(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(4).zip(dst) {
        *y = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
}

pub fn quantize_f32(src: &[f32], dst: &mut [u8]) {
    for (&x, b) in src.iter().zip(dst.chunks_exact_mut(4)) {
        b.copy_from_slice(&x.to_le_bytes());
    }
}

pub fn dequantize_f16(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(2).zip(dst) {
        *y = f16_bits_to_f32(u16::from_le_bytes([b[0], b[1]]));
    }
}

/// Round to nearest, ties to even; out-of-range values become infinities.
pub fn quantize_f16(src: &[f32], dst: &mut [u8]) {
    for (&x, b) in src.iter().zip(dst.chunks_exact_mut(2)) {
        b.copy_from_slice(&half::f16::from_f32(x).to_bits().to_le_bytes());
    }
}

pub fn dequantize_bf16(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(2).zip(dst) {
        *y = bf16_bits_to_f32(u16::from_le_bytes([b[0], b[1]]));
    }
}

/// ggml's `ggml_compute_fp32_to_bf16`: NaNs are kept and made quiet, everything else is
/// rounded to nearest, ties to even (a carry out of the mantissa correctly rounds up to the
/// next binade or to infinity).
pub fn quantize_bf16(src: &[f32], dst: &mut [u8]) {
    for (&x, b) in src.iter().zip(dst.chunks_exact_mut(2)) {
        b.copy_from_slice(&f32_to_bf16_bits(x).to_le_bytes());
    }
}

pub fn f16_bits_to_f32(bits: u16) -> f32 {
    half::f16::from_bits(bits).to_f32()
}

pub fn bf16_bits_to_f32(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

pub fn f32_to_bf16_bits(x: f32) -> u16 {
    let u = x.to_bits();
    if u & 0x7fff_ffff > 0x7f80_0000 {
        return ((u >> 16) | 0x40) as u16;
    }
    // Adding 0x7fff plus the lowest kept bit rounds half to even; the sum cannot overflow u32
    // because the largest finite/infinite input is below 0xff80_0000.
    ((u + 0x7fff + ((u >> 16) & 1)) >> 16) as u16
}

pub fn vec_dot_f32(w: &[u8], act: &[u8]) -> f32 {
    let mut sum = 0.0f64;
    for (a, b) in w.chunks_exact(4).zip(act.chunks_exact(4)) {
        let x = f32::from_le_bytes([a[0], a[1], a[2], a[3]]);
        let y = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        sum += f64::from(x * y);
    }
    sum as f32
}

pub fn vec_dot_f16(w: &[u8], act: &[u8]) -> f32 {
    let mut sum = 0.0f64;
    for (a, b) in w.chunks_exact(2).zip(act.chunks_exact(2)) {
        let x = f16_bits_to_f32(u16::from_le_bytes([a[0], a[1]]));
        let y = f16_bits_to_f32(u16::from_le_bytes([b[0], b[1]]));
        sum += f64::from(x * y);
    }
    sum as f32
}

pub fn vec_dot_bf16(w: &[u8], act: &[u8]) -> f32 {
    let mut sum = 0.0f64;
    for (a, b) in w.chunks_exact(2).zip(act.chunks_exact(2)) {
        let x = bf16_bits_to_f32(u16::from_le_bytes([a[0], a[1]]));
        let y = bf16_bits_to_f32(u16::from_le_bytes([b[0], b[1]]));
        sum += f64::from(x * y);
    }
    sum as f32
}
