//! The AVX-512 level (F + BW + VL + VNNI, with FMA and F16C): Zen 4, Ice Lake and later. Every
//! function here is compiled for those features and reached only through `KERNELS`, which the
//! dispatcher hands out after checking the CPU has them.
//!
//! One file per job: `act` quantizes activations and `prep` lays them out for `dot32`, the
//! integer dots of the 32-element block formats (in the lane layout of `group`, whose block
//! fields `fields` reads); `dot_k` holds the integer dot tiles of the 256-element formats,
//! `dot_float` those of the float types, `dequant` decodes rows for the f32 GEMM in `gemm` and
//! its bf16 twin `gemm_bf16` (the one kernel that needs AVX512_BF16, reached only through
//! `KERNELS_BF16`), `ops` holds the elementwise primitives.

mod act;
mod dequant;
mod dot32;
mod dot_float;
mod dot_k;
mod fields;
mod gemm;
mod gemm_bf16;
mod group;
mod ops;
mod prep;
mod util;

use dot32::Dot32;
use dot_float::{Bf16W, F16W, F32W, Float};
use dot_k::DotK;

use super::{Acts, DotRows, DotTile, Kernels, Level, MAX_TILE};
use crate::quant::{q2_k::BlockQ2K, q3_k::BlockQ3K, q4_0::BlockQ4_0, q4_1::BlockQ4_1, q4_k::BlockQ4K, q5_0::BlockQ5_0, q5_1::BlockQ5_1, q5_k::BlockQ5K, q6_k::BlockQ6K, q8_0::BlockQ8_0};
use crate::DType;

pub(super) static KERNELS: Kernels = AVX512;

/// The same kernels with the bf16 GEMM, for CPUs that also have AVX512_BF16.
pub(super) static KERNELS_BF16: Kernels = Kernels { level: Level::Avx512Bf16, gemm_bf16: Some(&gemm_bf16::GEMM), ..AVX512 };

const AVX512: Kernels = Kernels {
    level: Level::Avx512,
    quantize_act: act::quantize,
    prep_lines: prep::lines,
    prepare: prep::prepare,
    dot_rows,
    dequantize: dequant::dequantize,
    gemm: Some(&gemm::GEMM),
    gemm_bf16: None,
    dot: ops::dot,
    scale_add: ops::scale_add,
    sum_squares: ops::sum_squares,
    silu_mul: ops::silu_mul,
    gelu_mul: ops::gelu_mul,
    attend_block: ops::attend_block,
};

fn dot_rows(weight: DType) -> Option<DotRows> {
    Some(match weight {
        DType::F32 => rows::<Float<F32W>>,
        DType::F16 => rows::<Float<F16W>>,
        DType::BF16 => rows::<Float<Bf16W>>,
        DType::Q4_0 => tiled::<Dot32<BlockQ4_0>>,
        DType::Q5_0 => tiled::<Dot32<BlockQ5_0>>,
        DType::Q8_0 => tiled::<Dot32<BlockQ8_0>>,
        DType::Q4_1 => tiled::<Dot32<BlockQ4_1>>,
        DType::Q5_1 => tiled::<Dot32<BlockQ5_1>>,
        DType::Q2_K => tiled::<DotK<BlockQ2K>>,
        DType::Q3_K => tiled::<DotK<BlockQ3K>>,
        DType::Q4_K => tiled::<DotK<BlockQ4K>>,
        DType::Q5_K => tiled::<DotK<BlockQ5K>>,
        DType::Q6_K => tiled::<DotK<BlockQ6K>>,
        // Never weights in practice (ggml has no kernels for them either): scalar reference.
        DType::Q8_1 | DType::Q8_K => return None,
    })
}

dot_rows_from_tiles!("avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c");

/// Tokens per tile of the integer dots (`dot32`, `dot_k`): each token of a tile reuses the
/// weights decoded for it, and the tile's f32 accumulators live on the stack.
const TILE: usize = 16;

/// An integer dot kernel over up to `TILE` tokens and `R` weight rows at a time. The rows are
/// an unrolling only: each (token, row) value comes from the same operations whatever `R`.
trait Tiled {
    /// Tokens from which rows go two at a time (see `tiled`).
    const PAIRS_FROM: usize;

    /// The dots of every row in `w_rows` (a multiple of `R` rows of `row_bytes`) with every
    /// token of `act` (at most `TILE`), row `r`'s with token `t` written at
    /// `out[t * out_stride + r]`.
    ///
    /// # Safety
    /// As `DotRows`.
    unsafe fn tile<const R: usize>(w_rows: &[u8], row_bytes: usize, act: Acts<'_>, out: *mut f32, out_stride: usize);
}

/// `DotRows` from a `Tiled` kernel: one tile of up to `TILE` tokens runs over all the rows at
/// once; more tokens go through the rows in chunks of `ROW_CHUNK`, every tile over a chunk
/// before the next, so each weight row is read from memory once and then from L1. From
/// `K::PAIRS_FROM` tokens on the rows go two at a time, which halves the loads of activations
/// (the bound once the weights are decoded) and measured faster for the 32-element formats;
/// one row at a time keeps fewer registers live, which they prefer for a single token.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
unsafe fn tiled<K: Tiled>(w: &[u8], row_bytes: usize, act: Acts<'_>, out: *mut f32, out_stride: usize) {
    const ROW_CHUNK: usize = 16;
    let (n, n_rows) = (act.n(), w.len() / row_bytes);
    let chunk = if n <= TILE { n_rows.max(1) } else { ROW_CHUNK };
    for (c, w_chunk) in w.chunks(chunk * row_bytes).enumerate() {
        let paired = if n >= K::PAIRS_FROM { w_chunk.len() / row_bytes / 2 * 2 } else { 0 };
        let (two, one) = w_chunk.split_at(paired * row_bytes);
        for i in (0..n).step_by(TILE) {
            let (a, o) = (act.rows(i, (n - i).min(TILE)), out.wrapping_add(i * out_stride + c * chunk));
            // SAFETY: `out` covers every (token, row) here (the `DotRows` contract).
            unsafe {
                K::tile::<2>(two, row_bytes, a, o, out_stride);
                K::tile::<1>(one, row_bytes, a, o.wrapping_add(paired), out_stride);
            }
        }
    }
}
