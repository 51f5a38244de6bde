//! The activation side of the integer dots: quantized rows plus their block scales widened
//! to f32 once per call, so that no kernel converts them again for every weight row.

use crate::DType;

/// Activation rows for the integer dots: `n` rows of `row_bytes` in a weight's `vec_dot_type`,
/// and for the 32-element types (Q8_0, Q8_1) every block's f16 fields already widened, `[d, s]`
/// per block (`s = 0` for Q8_0), so that a kernel does not convert them again for every weight
/// row. `scales` is empty for the other types.
#[derive(Clone, Copy)]
pub(crate) struct Acts<'a> {
    bytes: &'a [u8],
    row_bytes: usize,
    /// (n, scales_per_row).
    scales: &'a [f32],
    scales_per_row: usize,
    n: usize,
}

impl<'a> Acts<'a> {
    /// `bytes` holds whole rows of `row_bytes`, `scales` the same number of rows of
    /// `scales_per_row` (which may be 0). Panics otherwise.
    pub fn new(bytes: &'a [u8], row_bytes: usize, scales: &'a [f32], scales_per_row: usize) -> Acts<'a> {
        assert!(row_bytes > 0 && bytes.len().is_multiple_of(row_bytes), "activations are not whole rows");
        let n = bytes.len() / row_bytes;
        assert_eq!(scales.len(), n * scales_per_row, "activation scales do not match the rows");
        Acts { bytes, row_bytes, scales, scales_per_row, n }
    }

    pub fn n(&self) -> usize {
        self.n
    }

    pub fn row_bytes(&self) -> usize {
        self.row_bytes
    }

    pub fn scales_per_row(&self) -> usize {
        self.scales_per_row
    }

    /// Row `t`'s bytes.
    pub fn row(&self, t: usize) -> &'a [u8] {
        &self.bytes[t * self.row_bytes..(t + 1) * self.row_bytes]
    }

    /// Rows `start..start + len`.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub fn rows(&self, start: usize, len: usize) -> Acts<'a> {
        assert!(start + len <= self.n);
        Acts {
            bytes: &self.bytes[start * self.row_bytes..(start + len) * self.row_bytes],
            row_bytes: self.row_bytes,
            scales: &self.scales[start * self.scales_per_row..(start + len) * self.scales_per_row],
            scales_per_row: self.scales_per_row,
            n: len,
        }
    }

    /// Row `t`'s scales: `[d, s]` per block.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub fn row_scales(&self, t: usize) -> &'a [f32] {
        &self.scales[t * self.scales_per_row..(t + 1) * self.scales_per_row]
    }
}

/// Number of f32 scales `Acts` carries per activation row of `act_type` holding `cols` elements.
pub(crate) fn act_scale_count(act_type: DType, cols: usize) -> usize {
    match act_type {
        DType::Q8_0 | DType::Q8_1 => 2 * cols / 32,
        _ => 0,
    }
}

/// Widens the f16 fields of one activation row (Q8_0 or Q8_1) into `[d, s]` pairs.
pub(crate) fn act_scales(act_type: DType, row: &[u8], dst: &mut [f32]) {
    let block_bytes = act_type.block_bytes();
    for (b, ds) in row.chunks_exact(block_bytes).zip(dst.chunks_exact_mut(2)) {
        let f16 = |i: usize| half::f16::from_bits(u16::from_le_bytes([b[i], b[i + 1]])).to_f32();
        ds[0] = f16(0);
        ds[1] = if act_type == DType::Q8_1 { f16(2) } else { 0.0 };
    }
}

