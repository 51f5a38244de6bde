//! The activation side of the integer dots: the quantized rows, plus what a SIMD level derives
//! from each row once per call (its prepared lines: scales widened to f32, bytes regrouped to
//! the level's lane layout) so that no kernel redoes that work for every weight row.

use crate::DType;

/// 64 bytes on a 64-byte boundary: the unit of a level's prepared activations, so that kernels
/// read them with aligned full-width loads that never straddle a cache line.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
pub(crate) struct Line(pub [u8; 64]);

impl Line {
    pub const ZERO: Line = Line([0; 64]);
}

/// Activation rows for the integer dots: `n` rows of `row_bytes` in a weight's `vec_dot_type`,
/// and for each row the `prep_per_row` lines the level's `prepare` wrote from it (possibly
/// none).
#[derive(Clone, Copy)]
pub(crate) struct Acts<'a> {
    bytes: &'a [u8],
    row_bytes: usize,
    /// (n, prep_per_row).
    prep: &'a [Line],
    prep_per_row: usize,
    n: usize,
}

impl<'a> Acts<'a> {
    /// `bytes` holds whole rows of `row_bytes`, `prep` the same number of rows of
    /// `prep_per_row` lines (which may be 0). Panics otherwise.
    pub fn new(bytes: &'a [u8], row_bytes: usize, prep: &'a [Line], prep_per_row: usize) -> Acts<'a> {
        assert!(row_bytes > 0 && bytes.len().is_multiple_of(row_bytes), "activations are not whole rows");
        let n = bytes.len() / row_bytes;
        assert_eq!(prep.len(), n * prep_per_row, "prepared activations do not match the rows");
        Acts { bytes, row_bytes, prep, prep_per_row, n }
    }

    pub fn n(&self) -> usize {
        self.n
    }

    pub fn row_bytes(&self) -> usize {
        self.row_bytes
    }

    pub fn prep_per_row(&self) -> usize {
        self.prep_per_row
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
            prep: &self.prep[start * self.prep_per_row..(start + len) * self.prep_per_row],
            prep_per_row: self.prep_per_row,
            n: len,
        }
    }

    /// Row `t`'s prepared lines.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub fn row_prep(&self, t: usize) -> &'a [Line] {
        &self.prep[t * self.prep_per_row..(t + 1) * self.prep_per_row]
    }
}

/// Lines that hold the `[d, s]` pairs of `widen_scales` for a row of `cols` elements of
/// `act_type`: the AVX2 level's preparation (none for types other than Q8_0 and Q8_1).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) fn widened_lines(act_type: DType, cols: usize) -> usize {
    match act_type {
        DType::Q8_0 | DType::Q8_1 => (2 * cols / 32).div_ceil(16),
        _ => 0,
    }
}

/// Widens the f16 fields of one activation row (Q8_0 or Q8_1) into `[d, s]` pairs of f32
/// (`s = 0` for Q8_0), in as many lines as `widened_lines` gives; a no-op for other types.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) fn widen_scales(act_type: DType, row: &[u8], dst: &mut [Line]) {
    if !matches!(act_type, DType::Q8_0 | DType::Q8_1) {
        return;
    }
    for (b, block) in row.chunks_exact(act_type.block_bytes()).enumerate() {
        let f16 = |i: usize| half::f16::from_bits(u16::from_le_bytes([block[i], block[i + 1]])).to_f32();
        let s = if act_type == DType::Q8_1 { f16(2) } else { 0.0 };
        // Block b's pair is floats 2b and 2b + 1: line 2b / 16, bytes 8 * (b % 8) onwards.
        let line = &mut dst[b / 8].0[8 * (b % 8)..8 * (b % 8) + 8];
        line[..4].copy_from_slice(&f16(0).to_le_bytes());
        line[4..].copy_from_slice(&s.to_le_bytes());
    }
}

/// Lines as the f32 values they hold (the AVX2 level's widened scales).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) fn as_floats(lines: &[Line]) -> &[f32] {
    // SAFETY: a `Line` is 64 plain bytes aligned to 64, so the memory is 16 * len valid,
    // aligned f32 values (any bit pattern is an f32); the borrow carries over.
    unsafe { std::slice::from_raw_parts(lines.as_ptr().cast::<f32>(), 16 * lines.len()) }
}
