//! The lane layout that the AVX-512 integer dots (`dot32`, and `dot_k` with 16-element groups
//! in place of blocks) share with their prepared activations (`prep`).
//!
//! A row's blocks go in *groups* of sixteen, one block per 32-bit lane: vector `k` (0..8) of a
//! group holds elements `4k..4k+4` of every block, so eight `vpdpbusd` leave each block's exact
//! integer sum alone in its lane (no horizontal work) and one multiply applies sixteen blocks'
//! scales. Lane `l` holds block `4 * (l % 4) + l / 4` of the group: the order a 4 x 4 transpose
//! of 32-bit words within 128-bit lanes leaves them in (see `transpose`), free to keep because
//! weights, activations and scales all use it. The blocks after the last whole group go in
//! *pairs* instead, two blocks per vector in element order (8 lanes each), as they lie in
//! memory; an odd last block pairs with nothing.
//!
//! VNNI multiplies unsigned by signed bytes, so the weights' side must be unsigned: the signed
//! formats (Q4_0, Q5_0, Q8_0) are decoded as `w + 128` (0..=255), and the prepared Q8_0
//! activations carry `-128 * (sum of each lane's bytes)`, from which a token's integer sums
//! start, so that they end exact.

use std::arch::x86_64::*;

use super::util::load128;
use crate::quant::block::Block;

/// What the signed formats' levels are offset by (see above), as a shift.
pub(super) const SIGNED_OFFSET_SHIFT: u32 = 7;

/// Prepared lines per Q8_K super-block (for the K-quants, whose sixteen 16-element groups
/// take the place of a group's blocks): 4 of bytes, one of the negated group sums (i32).
pub(super) const K_LINES: usize = 5;

/// Prepared lines per group of an activation row: 8 of bytes, one of `d`, one of the extra
/// term (see `prep`).
pub(super) const GROUP_LINES: usize = 10;
/// The same per pair: one of bytes, one of `d`, one of the extra term.
pub(super) const PAIR_LINES: usize = 3;

/// Prepared lines of a row of `n_blocks` blocks.
pub(super) const fn row_lines(n_blocks: usize) -> usize {
    n_blocks / 16 * GROUP_LINES + (n_blocks % 16).div_ceil(2) * PAIR_LINES
}

/// The 16 bytes at `p + b * stride` for the 16 blocks `b` of a group, as 32-bit words in the
/// group layout: lane `l` of vector `k` is word `k` of lane `l`'s block.
///
/// # Safety
/// All sixteen 16-byte reads must be in bounds.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
pub(super) unsafe fn quads(p: *const u8, stride: usize) -> [__m512i; 4] {
    // SAFETY (for the four calls): the caller's promise covers blocks 0..16.
    let z = unsafe { [four(p, stride, 0), four(p, stride, 4), four(p, stride, 8), four(p, stride, 12)] };
    transpose(z)
}

/// Lane `l` holds the group's block `4 * (l % 4) + l / 4` (as i32 lanes).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
pub(super) fn lane_order() -> __m512i {
    _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0)
}

/// From `z[j]` holding blocks 4j..4j+4 (16 bytes each, one per 128-bit lane) to the group
/// layout: within each 128-bit lane `c` a 4 x 4 transpose of 32-bit words, which puts word `k`
/// of block 4j + c at lane 4c + j of vector `k`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
pub(super) fn transpose(z: [__m512i; 4]) -> [__m512i; 4] {
    let (t0, t1) = (_mm512_unpacklo_epi32(z[0], z[1]), _mm512_unpackhi_epi32(z[0], z[1]));
    let (t2, t3) = (_mm512_unpacklo_epi32(z[2], z[3]), _mm512_unpackhi_epi32(z[2], z[3]));
    [_mm512_unpacklo_epi64(t0, t2), _mm512_unpackhi_epi64(t0, t2), _mm512_unpacklo_epi64(t1, t3), _mm512_unpackhi_epi64(t1, t3)]
}

/// Blocks `first..first + 4`'s 16 bytes at `p + b * stride`, one per 128-bit lane.
///
/// # Safety
/// Those reads must be in bounds.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
unsafe fn four(p: *const u8, stride: usize, first: usize) -> __m512i {
    // SAFETY: the caller's promise.
    unsafe {
        let at = |b: usize| p.add((first + b) * stride).cast::<__m128i>();
        let lo = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(_mm_loadu_si128(at(0))), _mm_loadu_si128(at(1)));
        let hi = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(_mm_loadu_si128(at(2))), _mm_loadu_si128(at(3)));
        _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi)
    }
}

/// Sixteen blocks' 32 bytes at `p + b * stride` (8-bit weights or activations) in the group
/// layout.
///
/// # Safety
/// All sixteen 32-byte reads must be in bounds.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
pub(super) unsafe fn bytes(p: *const u8, stride: usize) -> [__m512i; 8] {
    // SAFETY: the caller's promise covers the 32 bytes of blocks 0..16.
    let pairs: [__m512i; 8] = array_of!(8, _mm512_setzero_si512(), |i| unsafe {
        let at = |b: usize| _mm256_loadu_si256(p.add(b * stride).cast());
        _mm512_inserti64x4::<1>(_mm512_castsi256_si512(at(2 * i)), at(2 * i + 1))
    });
    // pairs[i] holds blocks 2i and 2i + 1 as 128-bit lanes [2i lo, 2i hi, 2i+1 lo, 2i+1 hi];
    // regroup them as the first (last) 16 bytes of blocks 4j..4j+4, one per 128-bit lane.
    let lo: [__m512i; 4] = array_of!(4, _mm512_setzero_si512(), |j| _mm512_shuffle_i64x2::<0b10_00_10_00>(pairs[2 * j], pairs[2 * j + 1]));
    let hi: [__m512i; 4] = array_of!(4, _mm512_setzero_si512(), |j| _mm512_shuffle_i64x2::<0b11_01_11_01>(pairs[2 * j], pairs[2 * j + 1]));
    let (a, b) = (transpose(lo), transpose(hi));
    [a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]]
}

/// Sixteen blocks' 4-bit levels from their 16 bytes `qs` (byte `i` holds element `i` in its
/// low nibble and element `i + 16` in its high one) in the group layout.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
pub(super) fn nibbles(q: [__m512i; 4]) -> [__m512i; 8] {
    let m = _mm512_set1_epi8(0x0f);
    let hi = |v: __m512i| _mm512_and_si512(_mm512_srli_epi16::<4>(v), m);
    let lo = |v: __m512i| _mm512_and_si512(v, m);
    [lo(q[0]), lo(q[1]), lo(q[2]), lo(q[3]), hi(q[0]), hi(q[1]), hi(q[2]), hi(q[3])]
}

/// Adds 16 to every level whose fifth bit is set: `qh` holds each lane's block's 32 fifth bits
/// (bit `j` is element `j`), so byte `e` of lane `l` in vector `k` takes bit `4k + e`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
pub(super) fn fifth_bits(levels: &mut [__m512i; 8], qh: __m512i) {
    // Byte k / 2 of each word spread to the word's four bytes, each then testing its own bit.
    let word_starts = _mm512_set4_epi32(0x0c0c_0c0c, 0x0808_0808, 0x0404_0404, 0);
    for (k, l) in levels.iter_mut().enumerate() {
        let spread = _mm512_shuffle_epi8(qh, _mm512_add_epi8(word_starts, _mm512_set1_epi8((k / 2) as i8)));
        let bits = _mm512_set1_epi32(0x0804_0201 << (4 * (k % 2)));
        *l = _mm512_mask_add_epi8(*l, _mm512_test_epi8_mask(spread, bits), *l, _mm512_set1_epi8(16));
    }
}

/// The 4-bit levels of two blocks in element order: per block its 16 low nibbles (elements
/// 0-15), then its 16 high nibbles (elements 16-31).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
pub(super) fn pair_nibbles(q0: &[u8; 16], q1: &[u8; 16]) -> __m512i {
    let both = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(load128(q0)), load128(q1));
    // 128-bit lanes [q0, q0, q1, q1], the second copy of each shifted down by a nibble.
    let z = _mm512_permutexvar_epi64(_mm512_set_epi64(3, 2, 3, 2, 1, 0, 1, 0), _mm512_castsi256_si512(both));
    let z = _mm512_srlv_epi64(z, _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0));
    _mm512_and_si512(z, _mm512_set1_epi8(0x0f))
}

/// Adds 16 to every level of a pair whose fifth bit is set (bit `j` of a block's `qh` is
/// element `j`).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
pub(super) fn pair_fifth_bits(levels: __m512i, qh0: [u8; 4], qh1: [u8; 4]) -> __m512i {
    let mask = u64::from(u32::from_le_bytes(qh0)) | u64::from(u32::from_le_bytes(qh1)) << 32;
    _mm512_mask_add_epi8(levels, mask, levels, _mm512_set1_epi8(16))
}

/// Two blocks' 32 bytes (`u8` or `i8`), one after the other.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
pub(super) fn pair_bytes<T: Copy>(q0: &[T; 32], q1: &[T; 32]) -> __m512i {
    const { assert!(std::mem::size_of::<T>() == 1) };
    // SAFETY: both arrays hold 32 bytes; the loads are unaligned.
    unsafe { _mm512_inserti64x4::<1>(_mm512_castsi256_si512(_mm256_loadu_si256(q0.as_ptr().cast())), _mm256_loadu_si256(q1.as_ptr().cast())) }
}

/// The first two f16 fields of two blocks, each spread over its block's 8 lanes of a pair:
/// (`d`s, second fields). The second field is `m` for Q4_1 and Q5_1 (`s` for Q8_1); for the
/// other formats it is the start of the next field, never used. Without `both` (an odd last
/// block, read twice) the second block's lanes are zero.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
pub(super) fn pair_scales<B: Block>(b0: &B, b1: &B, both: bool) -> (__m512, __m512) {
    const { assert!(std::mem::size_of::<B>() >= 4) };
    // SAFETY: every block is at least 4 bytes and has alignment 1 (the `Block` contract).
    let (h0, h1) = unsafe { (std::ptr::read((b0 as *const B).cast::<[u8; 4]>()), std::ptr::read((b1 as *const B).cast::<[u8; 4]>())) };
    let h1 = if both { u32::from_le_bytes(h1) } else { 0 };
    // [d0, second0, d1, second1]
    let s = _mm512_castps128_ps512(_mm_cvtph_ps(_mm_cvtsi64_si128((u64::from(u32::from_le_bytes(h0)) | u64::from(h1) << 32) as i64)));
    let d = _mm512_permutexvar_ps(_mm512_set_epi32(2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0), s);
    let m = _mm512_permutexvar_ps(_mm512_set_epi32(3, 3, 3, 3, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1), s);
    (d, m)
}
