//! Tensor block formats: the byte layout of every element type in the DType catalogue, with
//! plain scalar references for converting rows to and from f32 and for dotting one weight row
//! with one activation row. These match ggml's reference code (and the `gguf` Python package)
//! bit for bit; they are the oracle for the fast kernels, so they stay simple and unvectorised.
//!
//! A row is a byte slice holding a whole number of blocks of one type; it needs no alignment.

pub mod block;
pub mod float;
mod k_fit;
pub mod q2_k;
pub mod q3_k;
pub mod q4_0;
pub mod q4_1;
pub mod q4_k;
pub mod q5_0;
pub mod q5_1;
pub mod q5_k;
pub mod q6_k;
pub mod q8_0;
pub mod q8_1;
pub mod q8_k;

use crate::DType;
use block::{as_blocks, as_blocks_mut};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QuantError {
    /// herd has no reference quantizer for this type. Every type in today's catalogue has one;
    /// this is how `quantize_row` will answer for types added later without one.
    #[error("quantizing to {0} is not supported")]
    Unsupported(DType),
}

/// Number of elements in a row of `n_bytes` bytes of `dtype`. Panics when `n_bytes` is not a
/// whole number of blocks: callers size rows with `DType::bytes_for`.
fn row_elements(dtype: DType, n_bytes: usize) -> usize {
    assert!(
        n_bytes.is_multiple_of(dtype.block_bytes()),
        "{n_bytes} bytes is not a whole number of {dtype} blocks"
    );
    n_bytes / dtype.block_bytes() * dtype.block_len()
}

/// Panics unless `n_bytes` of `dtype` hold exactly `n_elements` elements.
fn check_row(dtype: DType, n_bytes: usize, n_elements: usize) {
    assert_eq!(
        row_elements(dtype, n_bytes),
        n_elements,
        "{n_bytes} bytes of {dtype} do not hold {n_elements} elements"
    );
}

/// Decodes a row of `dtype` into f32: `src` holds `dst.len() / block_len` blocks.
///
/// Panics when the lengths disagree (a caller bug, not a data error). Any bytes decode; odd
/// scales give odd values, never a panic.
pub fn dequantize_row(dtype: DType, src: &[u8], dst: &mut [f32]) {
    check_row(dtype, src.len(), dst.len());
    match dtype {
        DType::F32 => float::dequantize_f32(src, dst),
        DType::F16 => float::dequantize_f16(src, dst),
        DType::BF16 => float::dequantize_bf16(src, dst),
        DType::Q4_0 => q4_0::dequantize(as_blocks(src), dst),
        DType::Q4_1 => q4_1::dequantize(as_blocks(src), dst),
        DType::Q5_0 => q5_0::dequantize(as_blocks(src), dst),
        DType::Q5_1 => q5_1::dequantize(as_blocks(src), dst),
        DType::Q8_0 => q8_0::dequantize(as_blocks(src), dst),
        DType::Q8_1 => q8_1::dequantize(as_blocks(src), dst),
        DType::Q2_K => q2_k::dequantize(as_blocks(src), dst),
        DType::Q3_K => q3_k::dequantize(as_blocks(src), dst),
        DType::Q4_K => q4_k::dequantize(as_blocks(src), dst),
        DType::Q5_K => q5_k::dequantize(as_blocks(src), dst),
        DType::Q6_K => q6_k::dequantize(as_blocks(src), dst),
        DType::Q8_K => q8_k::dequantize(as_blocks(src), dst),
    }
}

/// Encodes a row of f32 as `dtype` with ggml's reference (non-imatrix) quantizer:
/// `dst` receives `src.len() / block_len` blocks.
///
/// Panics when the lengths disagree (a caller bug). Errors only for a type without a reference
/// quantizer, which today is none.
pub fn quantize_row(dtype: DType, src: &[f32], dst: &mut [u8]) -> Result<(), QuantError> {
    check_row(dtype, dst.len(), src.len());
    match dtype {
        DType::F32 => float::quantize_f32(src, dst),
        DType::F16 => float::quantize_f16(src, dst),
        DType::BF16 => float::quantize_bf16(src, dst),
        DType::Q4_0 => q4_0::quantize(src, as_blocks_mut(dst)),
        DType::Q4_1 => q4_1::quantize(src, as_blocks_mut(dst)),
        DType::Q5_0 => q5_0::quantize(src, as_blocks_mut(dst)),
        DType::Q5_1 => q5_1::quantize(src, as_blocks_mut(dst)),
        DType::Q8_0 => q8_0::quantize(src, as_blocks_mut(dst)),
        DType::Q8_1 => q8_1::quantize(src, as_blocks_mut(dst)),
        DType::Q2_K => q2_k::quantize(src, as_blocks_mut(dst)),
        DType::Q3_K => q3_k::quantize(src, as_blocks_mut(dst)),
        DType::Q4_K => q4_k::quantize(src, as_blocks_mut(dst)),
        DType::Q5_K => q5_k::quantize(src, as_blocks_mut(dst)),
        DType::Q6_K => q6_k::quantize(src, as_blocks_mut(dst)),
        DType::Q8_K => q8_k::quantize(src, as_blocks_mut(dst)),
    }
    Ok(())
}

/// The type activations are quantized to before their integer dot with a `weight` row, as in
/// ggml's CPU backend. Float weights are dotted against activations of the same type.
pub fn vec_dot_type(weight: DType) -> DType {
    match weight {
        DType::F32 => DType::F32,
        DType::F16 => DType::F16,
        DType::BF16 => DType::BF16,
        DType::Q4_0 | DType::Q5_0 | DType::Q8_0 => DType::Q8_0,
        DType::Q4_1 | DType::Q5_1 | DType::Q8_1 => DType::Q8_1,
        DType::Q2_K | DType::Q3_K | DType::Q4_K | DType::Q5_K | DType::Q6_K | DType::Q8_K => {
            DType::Q8_K
        }
    }
}

/// The scalar reference dot product of one weight row (`w`, in `weight`'s format) with one
/// activation row (`act`, in `vec_dot_type(weight)`'s format) of the same length, computed as
/// ggml's generic (non-SIMD) `ggml_vec_dot_*` does: exact integer sums inside blocks, f32 across
/// them (float types: f32 products summed in f64). SIMD kernels are tested against this.
///
/// Panics when the two rows do not hold the same whole number of elements (a caller bug).
pub fn vec_dot(weight: DType, w: &[u8], act: &[u8]) -> f32 {
    let n_elements = row_elements(weight, w.len());
    check_row(vec_dot_type(weight), act.len(), n_elements);
    match weight {
        DType::F32 => float::vec_dot_f32(w, act),
        DType::F16 => float::vec_dot_f16(w, act),
        DType::BF16 => float::vec_dot_bf16(w, act),
        DType::Q4_0 => q4_0::vec_dot(as_blocks(w), as_blocks(act)),
        DType::Q4_1 => q4_1::vec_dot(as_blocks(w), as_blocks(act)),
        DType::Q5_0 => q5_0::vec_dot(as_blocks(w), as_blocks(act)),
        DType::Q5_1 => q5_1::vec_dot(as_blocks(w), as_blocks(act)),
        DType::Q8_0 => q8_0::vec_dot(as_blocks(w), as_blocks(act)),
        DType::Q8_1 => q8_1::vec_dot(as_blocks(w), as_blocks(act)),
        DType::Q2_K => q2_k::vec_dot(as_blocks(w), as_blocks(act)),
        DType::Q3_K => q3_k::vec_dot(as_blocks(w), as_blocks(act)),
        DType::Q4_K => q4_k::vec_dot(as_blocks(w), as_blocks(act)),
        DType::Q5_K => q5_k::vec_dot(as_blocks(w), as_blocks(act)),
        DType::Q6_K => q6_k::vec_dot(as_blocks(w), as_blocks(act)),
        DType::Q8_K => q8_k::vec_dot(as_blocks(w), as_blocks(act)),
    }
}

/// The plain reference: dequantizes the weight row block by block and dots it with f32 `x`,
/// multiplying and summing in f64. Panics unless `w` holds `x.len()` elements.
pub fn dot_f32(dtype: DType, w: &[u8], x: &[f32]) -> f32 {
    check_row(dtype, w.len(), x.len());
    let mut buf = [0.0f32; 256];
    let deq = &mut buf[..dtype.block_len()];
    let mut sum = 0.0f64;
    for (wb, xb) in w
        .chunks_exact(dtype.block_bytes())
        .zip(x.chunks_exact(dtype.block_len()))
    {
        dequantize_row(dtype, wb, deq);
        for (&a, &b) in deq.iter().zip(xb) {
            sum += f64::from(a) * f64::from(b);
        }
    }
    sum as f32
}
