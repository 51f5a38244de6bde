//! The AVX-512 preparation of Q8_0 and Q8_1 activation rows for `dot32`, once per call: per
//! group (or pair, see `group`) the bytes in the group layout, one line of each lane's block
//! scale `d`, and one line of the term the weight formats need besides: for Q8_0 the i32 sums
//! that take the signed formats' offset back (see `group`), for Q8_1 each block's `s` (which
//! meets Q4_1's and Q5_1's `m`) in one lane of its block. Q8_K rows, for the K-quants, get the
//! same layout with 16-element groups in place of blocks, and their group sums. Other
//! activation types need nothing.

use std::arch::x86_64::*;

use super::fields::scales;
use super::group::{bytes, lane_order, pair_bytes, pair_scales, row_lines, transpose, GROUP_LINES, K_LINES, PAIR_LINES, SIGNED_OFFSET_SHIFT};
use super::util::{load256, load512_at};
use crate::quant::block::{as_blocks, Block};
use crate::quant::q8_0::BlockQ8_0;
use crate::quant::q8_1::BlockQ8_1;
use crate::quant::q8_k::{BlockQ8K, QK_K};
use crate::simd::Line;
use crate::DType;

/// Prepared lines per activation row of `cols` elements of `act_type`.
pub(super) fn lines(act_type: DType, cols: usize) -> usize {
    match act_type {
        DType::Q8_0 | DType::Q8_1 => row_lines(cols / 32),
        DType::Q8_K => cols / QK_K * K_LINES,
        _ => 0,
    }
}

/// Writes the prepared lines of one quantized row (`lines` of them).
///
/// # Safety
/// The CPU must have this level's features.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
pub(super) unsafe fn prepare(act_type: DType, row: &[u8], dst: &mut [Line]) {
    match act_type {
        DType::Q8_0 => prepare_row::<BlockQ8_0>(row, dst),
        DType::Q8_1 => prepare_row::<BlockQ8_1>(row, dst),
        DType::Q8_K => prepare_k(row, dst),
        _ => {}
    }
}

/// The activation blocks, which differ only in whether they carry `s`.
trait Q8: Block {
    const HAS_S: bool;
    fn qs(&self) -> &[i8; 32];
}

impl Q8 for BlockQ8_0 {
    const HAS_S: bool = false;
    fn qs(&self) -> &[i8; 32] {
        &self.qs
    }
}

impl Q8 for BlockQ8_1 {
    const HAS_S: bool = true;
    fn qs(&self) -> &[i8; 32] {
        &self.qs
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
fn prepare_row<B: Q8>(row: &[u8], dst: &mut [Line]) {
    let blocks: &[B] = as_blocks(row);
    assert_eq!(dst.len(), row_lines(blocks.len()), "prepared lines do not match the row");
    let (groups, tail) = blocks.split_at(blocks.len() / 16 * 16);
    let (group_lines, pair_lines) = dst.split_at_mut(groups.len() / 16 * GROUP_LINES);
    for (group, lines) in groups.chunks_exact(16).zip(group_lines.chunks_exact_mut(GROUP_LINES)) {
        let group: &[B; 16] = group.try_into().expect("16 blocks");
        // SAFETY: the group holds 16 blocks, each with its 32 bytes `qs`.
        let v = unsafe { bytes(group[0].qs().as_ptr().cast(), std::mem::size_of::<B>()) };
        for (line, v) in lines.iter_mut().zip(v) {
            store(line, v);
        }
        let (d, s) = scales(group);
        store(&mut lines[8], _mm512_castps_si512(d));
        store(&mut lines[9], if B::HAS_S { _mm512_castps_si512(s) } else { offset_sums(&v) });
    }
    for (pair, lines) in tail.chunks(2).zip(pair_lines.chunks_exact_mut(PAIR_LINES)) {
        let (b0, b1) = (&pair[0], pair.get(1));
        let v = pair_bytes(b0.qs(), b1.map_or(&[0; 32], |b| b.qs()));
        let (d, s) = pair_scales(b0, b1.unwrap_or(b0), b1.is_some());
        store(&mut lines[0], v);
        store(&mut lines[1], _mm512_castps_si512(d));
        // `s` counts once per block: in the first of its 8 lanes.
        let extra = if B::HAS_S { _mm512_castps_si512(_mm512_maskz_mov_ps(0x0101, s)) } else { offset_sums(&[v]) };
        store(&mut lines[2], extra);
    }
}

/// A Q8_K row for the K-quants: per super-block its bytes with 16-element groups in the group
/// layout's lanes, then each lane's group sum, negated.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
fn prepare_k(row: &[u8], dst: &mut [Line]) {
    let blocks: &[BlockQ8K] = as_blocks(row);
    assert_eq!(dst.len(), blocks.len() * K_LINES, "prepared lines do not match the row");
    for (y, lines) in blocks.iter().zip(dst.chunks_exact_mut(K_LINES)) {
        let q = transpose(array_of!(4, _mm512_setzero_si512(), |c| load512_at(&y.qs, 64 * c)));
        for (line, q) in lines.iter_mut().zip(q) {
            store(line, q);
        }
        let sums = _mm512_permutexvar_epi32(lane_order(), _mm512_cvtepi16_epi32(load256(&y.bsums)));
        store(&mut lines[4], _mm512_sub_epi32(_mm512_setzero_si512(), sums));
    }
}

/// `-128 * (sum of each lane's signed bytes over v)`, exact (at most 32 * 128 * 128 in size).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
fn offset_sums(v: &[__m512i]) -> __m512i {
    let mut sum = _mm512_setzero_si512();
    for &x in v {
        sum = _mm512_dpbusd_epi32(sum, _mm512_set1_epi8(1), x);
    }
    _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32::<SIGNED_OFFSET_SHIFT>(sum))
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
fn store(line: &mut Line, v: __m512i) {
    // SAFETY: a `Line` is 64 writable bytes aligned to 64.
    unsafe { _mm512_store_si512(line.0.as_mut_ptr().cast(), v) }
}
