//! Viewing byte slices as quant blocks in place, and the scalar helpers every format shares
//! (f16 fields, ggml's rounding, the signed absolute maximum). Weights are memory-mapped, so
//! nothing here may assume any alignment.

use crate::DType;

/// A quant block that can be viewed in place inside any byte slice.
///
/// # Safety
/// Implementors must be `#[repr(C)]` structs whose fields are all `u8`/`i8` arrays, so that
/// their alignment is 1, they have no padding and every bit pattern is a valid value. Implement
/// it only through `impl_block!`, which checks the size and the alignment at compile time.
pub unsafe trait Block: Copy {
    const DTYPE: DType;
}

/// Implements [`Block`] for a block struct, asserting at compile time that its size is the
/// catalogue's `block_bytes` and its alignment is 1.
macro_rules! impl_block {
    ($block:ty, $dtype:expr) => {
        const _: () = assert!(::std::mem::size_of::<$block>() == $dtype.block_bytes());
        const _: () = assert!(::std::mem::align_of::<$block>() == 1);
        // SAFETY: the struct is `#[repr(C)]` and made only of byte arrays (checked by review:
        // the alignment assertion above rules out any wider field), so it has no padding, no
        // invalid bit patterns and alignment 1.
        unsafe impl $crate::quant::block::Block for $block {
            const DTYPE: $crate::DType = $dtype;
        }
    };
}
pub(crate) use impl_block;

/// Views `bytes` as a slice of blocks. Panics unless the length is a whole number of blocks
/// (an internal invariant: callers size rows with `DType::bytes_for`).
pub fn as_blocks<B: Block>(bytes: &[u8]) -> &[B] {
    let size = std::mem::size_of::<B>();
    assert!(
        bytes.len().is_multiple_of(size),
        "{} bytes is not a whole number of {} blocks",
        bytes.len(),
        B::DTYPE
    );
    // SAFETY: `B` has alignment 1, no padding and no invalid bit patterns (the `Block`
    // contract), and `bytes` holds exactly `len / size` of them.
    unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<B>(), bytes.len() / size) }
}

/// Mutable twin of [`as_blocks`].
pub fn as_blocks_mut<B: Block>(bytes: &mut [u8]) -> &mut [B] {
    let size = std::mem::size_of::<B>();
    assert!(
        bytes.len().is_multiple_of(size),
        "{} bytes is not a whole number of {} blocks",
        bytes.len(),
        B::DTYPE
    );
    // SAFETY: as in `as_blocks`; the exclusive borrow of `bytes` is carried by the result.
    unsafe { std::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast::<B>(), bytes.len() / size) }
}

/// Reads a little-endian f16 field.
pub fn f16_to_f32(bits: [u8; 2]) -> f32 {
    half::f16::from_bits(u16::from_le_bytes(bits)).to_f32()
}

/// Rounds to the nearest f16 (ties to even, overflow to infinity), as ggml's
/// `GGML_FP32_TO_FP16` and numpy's `astype(np.float16)` do, and returns its little-endian bytes.
pub fn f32_to_f16(x: f32) -> [u8; 2] {
    half::f16::from_f32(x).to_bits().to_le_bytes()
}

/// The element of largest magnitude, with its sign; the first one wins ties, and an all-zero
/// slice gives 0. The symmetric formats divide by this signed value, so which of `+a` and `-a`
/// comes first decides the sign of the stored scale.
pub fn signed_absmax(x: &[f32]) -> f32 {
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    max
}

/// ggml's `nearest_int`: adds 1.5 * 2^23 so that the FPU rounds to an integer (ties to even)
/// and reads that integer out of the mantissa. Exact for |x| < 2^22; beyond that, and for NaN,
/// it returns the same bounded garbage ggml's release build does, which every caller clamps.
/// It is not `round_ties_even() as i32` because those two disagree out of range, and the
/// K-quant searches can feed it huge ratios.
pub fn nearest_int(x: f32) -> i32 {
    let v = x + 12_582_912.0;
    (v.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// ggml's legacy quantizers convert with `(int8_t)(v)`, truncating toward zero, then clamp to
/// `max`. The clamp at 0 only matters for NaN and infinities, where ggml's cast is undefined.
pub fn trunc_clamp(v: f32, max: i8) -> u8 {
    (v as i8).clamp(0, max) as u8
}
