//! AVX-512 integer dots of the K-quants (Q2_K..Q6_K) against Q8_K activations, prepared by
//! `prep` in the lane layout of `group` with 16-element groups in place of blocks: a
//! super-block's sixteen groups of 16 fill the lanes of four vectors.
//!
//! A super-block's 256 levels are decoded once per tile of tokens (see `Tiled`), in that
//! layout, with each lane's group scale times `d` (exact: at most 19 significant bits) and,
//! for the formats with mins, `dmin` times its min. Per token, four `vpdpbusd` leave each
//! group's exact integer sum in its lane: formats whose levels are offset (Q3_K by 4, Q6_K by
//! 32) start it from `-offset * bsum`, the activations' group sum. Then lane `l` of an f32
//! accumulator gets `isum * (d * sc * d_a)`, the mins `-bsum * (dmin * m * d_a)`, super-block
//! after super-block, and one fixed horizontal sum ends it: the same operations whatever the
//! number of tokens or rows in the tile.

use std::arch::x86_64::*;
use std::marker::PhantomData;

use super::group::{lane_order, transpose, K_LINES};
use super::util::{dot_lines, f16, load128, load256, load256_at, load512_at, running, settle};
use super::{Tiled, TILE};
use crate::quant::block::{as_blocks, Block};
use crate::quant::q2_k::BlockQ2K;
use crate::quant::q3_k::BlockQ3K;
use crate::quant::q4_k::BlockQ4K;
use crate::quant::q5_k::BlockQ5K;
use crate::quant::q6_k::BlockQ6K;
use crate::quant::q8_k::BlockQ8K;
use crate::simd::kscales::{q3_k_stored, scale_min_k4};
use crate::simd::{Acts, Line};

/// The dots of a K-quant `B`.
pub(super) struct DotK<B>(PhantomData<B>);

/// A super-block decoded for the integer dot, in the lane layout.
#[derive(Clone, Copy)]
struct Decoded {
    /// Vector `k` lane `l`: levels `4k..4k+4` of lane `l`'s group.
    levels: [__m512i; 4],
    /// `d * sc` of each lane's group.
    dsc: __m512,
    /// `dmin * m` of each lane's group (zero for the formats without mins).
    dmin_m: __m512,
}

impl Decoded {
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
    #[inline]
    fn empty() -> Decoded {
        Decoded { levels: [_mm512_setzero_si512(); 4], dsc: _mm512_setzero_ps(), dmin_m: _mm512_setzero_ps() }
    }
}

/// A K-quant's super-block as `Decoded`.
trait KFormat: Block {
    /// The offset of the stored levels, as a shift (Q3_K: 4, Q6_K: 32).
    const OFFSET_SHIFT: Option<u32>;
    /// Whether the format has group mins.
    const HAS_MIN: bool;

    /// # Safety
    /// The CPU must have this level's features.
    unsafe fn decode(&self) -> Decoded;
}

/// `scale * f` per lane from sixteen integer scales of 16-element groups (i32, group order).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
fn per_lane16(scales: __m512i, f: f32) -> __m512 {
    _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_permutexvar_epi32(lane_order(), scales)), _mm512_set1_ps(f))
}

/// The same from eight scales of 32-element groups (bytes of a u64, group order): each serves
/// two lanes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
fn per_lane32(scales: u64, f: f32) -> __m512 {
    let sc = _mm512_cvtepu8_epi32(_mm_cvtsi64_si128(scales as i64));
    let lanes = _mm512_permutexvar_epi32(_mm512_srli_epi32::<1>(lane_order()), sc);
    _mm512_mul_ps(_mm512_cvtepi32_ps(lanes), _mm512_set1_ps(f))
}

impl KFormat for BlockQ4K {
    const OFFSET_SHIFT: Option<u32> = None;
    const HAS_MIN: bool = true;

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
    #[inline]
    unsafe fn decode(&self) -> Decoded {
        let (sc, m) = scale_min_k4(&self.scales);
        Decoded { levels: transpose(nibble_levels(&self.qs)), dsc: per_lane32(sc, f16(self.d)), dmin_m: per_lane32(m, f16(self.dmin)) }
    }
}

impl KFormat for BlockQ5K {
    const OFFSET_SHIFT: Option<u32> = None;
    const HAS_MIN: bool = true;

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
    #[inline]
    unsafe fn decode(&self) -> Decoded {
        let (sc, m) = scale_min_k4(&self.scales);
        let mut levels = nibble_levels(&self.qs);
        // The fifth bit of element i is bit i / 32 of qh[i % 32]: chunk c uses bits 2c, 2c+1.
        let qh = _mm512_broadcast_i64x4(load256(&self.qh));
        for (c, l) in levels.iter_mut().enumerate() {
            let bits = _mm512_inserti64x4::<1>(_mm512_set1_epi8(1 << (2 * c)), _mm256_set1_epi8(1 << (2 * c + 1)));
            *l = _mm512_mask_add_epi8(*l, _mm512_test_epi8_mask(qh, bits), *l, _mm512_set1_epi8(16));
        }
        Decoded { levels: transpose(levels), dsc: per_lane32(sc, f16(self.d)), dmin_m: per_lane32(m, f16(self.dmin)) }
    }
}

impl KFormat for BlockQ6K {
    const OFFSET_SHIFT: Option<u32> = Some(5);
    const HAS_MIN: bool = false;

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
    #[inline]
    unsafe fn decode(&self) -> Decoded {
        let sc = _mm512_cvtepi8_epi32(load128(&self.scales));
        Decoded { levels: transpose(q6_levels(self)), dsc: per_lane16(sc, f16(self.d)), dmin_m: _mm512_setzero_ps() }
    }
}

/// Stored level = low bits + 4 * high bit (0..=7), the signed level plus 4.
impl KFormat for BlockQ3K {
    const OFFSET_SHIFT: Option<u32> = Some(2);
    const HAS_MIN: bool = false;

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
    #[inline]
    unsafe fn decode(&self) -> Decoded {
        let mut levels = two_bit_levels(&self.qs);
        // Element i's high bit is bit i / 32 of hmask[i % 32]: chunk c uses bits 2c and 2c + 1.
        let hmask = _mm512_broadcast_i64x4(load256(&self.hmask));
        for (c, l) in levels.iter_mut().enumerate() {
            let bits = _mm512_inserti64x4::<1>(_mm512_set1_epi8(1 << (2 * c)), _mm256_set1_epi8(1 << (2 * c + 1)));
            *l = _mm512_mask_add_epi8(*l, _mm512_test_epi8_mask(hmask, bits), *l, _mm512_set1_epi8(4));
        }
        Decoded { levels: transpose(levels), dsc: per_lane16(q3_scales(&self.scales), f16(self.d)), dmin_m: _mm512_setzero_ps() }
    }
}

impl KFormat for BlockQ2K {
    const OFFSET_SHIFT: Option<u32> = None;
    const HAS_MIN: bool = true;

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
    #[inline]
    unsafe fn decode(&self) -> Decoded {
        // Each byte holds a group's scale (low nibble) and min (high nibble).
        let packed = _mm512_cvtepu8_epi32(load128(&self.scales));
        let (sc, m) = (_mm512_and_si512(packed, _mm512_set1_epi32(0x0f)), _mm512_srli_epi32::<4>(packed));
        Decoded { levels: transpose(two_bit_levels(&self.qs)), dsc: per_lane16(sc, f16(self.d)), dmin_m: per_lane16(m, f16(self.dmin)) }
    }
}

impl<B: KFormat> Tiled for DotK<B> {
    /// Never: two super-block rows at a time read weights from DRAM at half the speed (Q4_K,
    /// 32768x2048, 1 to 4 tokens: 11 vs 25 GB/s at 2 tokens), which outweighs their gain on
    /// weights in cache.
    const PAIRS_FROM: usize = usize::MAX;

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
    #[inline]
    unsafe fn tile<const R: usize>(w_rows: &[u8], row_bytes: usize, act: Acts<'_>, out: *mut f32, out_stride: usize) {
        let n_blocks = row_bytes / size_of::<B>();
        let n_tok = act.n();
        assert!(n_tok <= TILE && act.prep_per_row() == n_blocks * K_LINES, "activations not prepared for {n_blocks} super-blocks");
        let (mut a, mut prep): ([&[BlockQ8K]; TILE], _) = ([&[]; TILE], [std::ptr::null::<Line>(); TILE]);
        for t in 0..n_tok {
            a[t] = as_blocks(act.row(t));
            assert_eq!(a[t].len(), n_blocks, "activation row {t} does not match the weight row");
            prep[t] = act.row_prep(t).as_ptr();
        }
        let mut acc = [[_mm512_setzero_ps(); R]; TILE];
        for (rb, w) in w_rows.chunks_exact(R * row_bytes).enumerate() {
            let w: [&[B]; R] = array_of!(R, &[][..], |r| as_blocks(&w[r * row_bytes..(r + 1) * row_bytes]));
            let out = out.wrapping_add(R * rb);
            for b in 0..n_blocks {
                // SAFETY: the features are present.
                let dec: [Decoded; R] = array_of!(R, Decoded::empty(), |r| unsafe { w[r][b].decode() });
                for t in 0..n_tok {
                    // SAFETY: super-block b's lines lie inside the token's prepared row (asserted
                    // length); `out` is the caller's promise.
                    unsafe {
                        let v = step::<B, R>(&dec, a[t][b].d(), prep[t].add(b * K_LINES), running(&acc[t], b == 0));
                        settle(v, &mut acc[t], b + 1 == n_blocks, out.wrapping_add(t * out_stride));
                    }
                }
            }
        }
    }
}

/// One token's update of its sums for `R` rows with one super-block each, whose prepared
/// lines start at `p` and whose activation scale is `dy`.
///
/// # Safety
/// `p` must point at `K_LINES` prepared lines.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
unsafe fn step<B: KFormat, const R: usize>(dec: &[Decoded; R], dy: f32, p: *const Line, mut acc: [__m512; R]) -> [__m512; R] {
    // SAFETY (both): lines 0..K_LINES are readable, and a `Line` is 64 bytes aligned to 64.
    let neg_bsums = unsafe { _mm512_load_si512(p.add(4).cast()) };
    let start = match B::OFFSET_SHIFT {
        Some(shift) => _mm512_sll_epi32(neg_bsums, _mm_cvtsi32_si128(shift as i32)),
        None => _mm512_setzero_si512(),
    };
    let isum = unsafe { dot_lines(array_of!(R, &dec[0].levels, |r| &dec[r].levels), start, p) };
    let dy = _mm512_set1_ps(dy);
    let mins = _mm512_cvtepi32_ps(neg_bsums);
    for r in 0..R {
        acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[r]), _mm512_mul_ps(dec[r].dsc, dy), acc[r]);
        if B::HAS_MIN {
            acc[r] = _mm512_fmadd_ps(mins, _mm512_mul_ps(dec[r].dmin_m, dy), acc[r]);
        }
    }
    acc
}

/// The 2-bit fields of Q2_K and Q3_K: chunk `c` (elements 64c..64c+64) is half `c / 2`'s 32
/// bytes, at bit pairs `2k` (first 32 elements) and `2k + 2` (the next 32), `k = 2 * (c % 2)`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
fn two_bit_levels(qs: &[u8; 64]) -> [__m512i; 4] {
    array_of!(4, _mm512_setzero_si512(), |c| {
        let half = _mm512_broadcast_i64x4(load256_at(&qs[..], 32 * (c / 2)));
        let k = 4 * (c % 2) as i64;
        let shifted = _mm512_srlv_epi64(half, _mm512_set_epi64(k + 2, k + 2, k + 2, k + 2, k, k, k, k));
        _mm512_and_si512(shifted, _mm512_set1_epi8(3))
    })
}

/// Q4_K/Q5_K low nibbles: 32-byte chunk `c` holds group 2c in its low nibbles and group 2c+1
/// in its high ones, which is element order 64c..64c+64.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
fn nibble_levels(qs: &[u8; 128]) -> [__m512i; 4] {
    array_of!(4, _mm512_setzero_si512(), |c| {
        let q = _mm512_broadcast_i64x4(load256_at(&qs[..], 32 * c));
        let q = _mm512_srlv_epi64(q, _mm512_set_epi64(4, 4, 4, 4, 0, 0, 0, 0));
        _mm512_and_si512(q, _mm512_set1_epi8(0x0f))
    })
}

/// Q6_K's 256 levels as stored (0..=63, the signed level plus 32), in element order. Half h:
/// the low nibbles of ql[64h..64h+64] are elements 0..64 of the half, the high nibbles 64..128;
/// qh[32h..32h+32] holds their top two bits at bit pairs 0, 2 (low) and 4, 6 (high).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
pub(super) fn q6_levels(x: &BlockQ6K) -> [__m512i; 4] {
    let (m4, m30) = (_mm512_set1_epi8(0x0f), _mm512_set1_epi8(0x30));
    let mut levels = [_mm512_setzero_si512(); 4];
    for h in 0..2 {
        let ql = load512_at(&x.ql, 64 * h);
        let qh = _mm512_broadcast_i64x4(load256_at(&x.qh[..], 32 * h));
        let top_lo = _mm512_and_si512(_mm512_sllv_epi64(qh, _mm512_set_epi64(2, 2, 2, 2, 4, 4, 4, 4)), m30);
        let top_hi = _mm512_and_si512(_mm512_srlv_epi64(qh, _mm512_set_epi64(2, 2, 2, 2, 0, 0, 0, 0)), m30);
        levels[2 * h] = _mm512_or_si512(_mm512_and_si512(ql, m4), top_lo);
        levels[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16::<4>(ql), m4), top_hi);
    }
    levels
}

/// Q3_K's sixteen signed 6-bit scales, as i32.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
fn q3_scales(scales: &[u8; 12]) -> __m512i {
    let [w0, w1, w2, w3] = q3_k_stored(scales);
    let stored = _mm_set_epi32(w3 as i32, w2 as i32, w1 as i32, w0 as i32);
    _mm512_cvtepi8_epi32(_mm_sub_epi8(stored, _mm_set1_epi8(32)))
}
