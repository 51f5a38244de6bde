//! The AVX2 level (AVX2 + FMA + F16C): every x86-64 CPU since Haswell and Zen 1. Every function
//! here is compiled for those features and reached only through `KERNELS`, which the dispatcher
//! hands out after checking the CPU has them. Same structure as `avx512/`, on 256-bit vectors
//! and without VNNI (`vpmaddubsw` + `vpmaddwd` instead of `vpdpbusd`).
//!
//! One file per job: `act` quantizes activations, `dot32` and `dot_k` are the integer dot
//! tiles of the 32- and 256-element block formats, `dot_float` those of the float types,
//! `dequant` decodes rows for the f32 GEMM in `gemm`, `ops` holds the elementwise primitives.

mod act;
mod dequant;
mod dot32;
mod dot_float;
mod dot_k;
mod gemm;
mod ops;
mod util;

use dot32::{Offset, Signed};
use dot_float::{Bf16W, F16W, F32W, Float};
use dot_k::DotK;

use super::acts::{widen_scales, widened_lines};
use super::{each_query, Acts, DotRows, DotTile, Kernels, Level, Line, MAX_TILE};
use crate::ops::{KeySlots, Scoring, SoftmaxState};
use half::f16;
use crate::quant::{q2_k::BlockQ2K, q3_k::BlockQ3K, q4_0::BlockQ4_0, q4_1::BlockQ4_1, q4_k::BlockQ4K, q5_0::BlockQ5_0, q5_1::BlockQ5_1, q5_k::BlockQ5K, q6_k::BlockQ6K, q8_0::BlockQ8_0};
use crate::DType;

pub(super) static KERNELS: Kernels = Kernels {
    level: Level::Avx2,
    quantize_act: act::quantize,
    prep_lines: widened_lines,
    prepare,
    dot_rows,
    dequantize: dequant::dequantize,
    gemm: Some(&gemm::GEMM),
    gemm_bf16: None,
    dot: ops::dot,
    scale_add: ops::scale_add,
    sum_squares: ops::sum_squares,
    silu_mul: ops::silu_mul,
    gelu_mul: ops::gelu_mul,
    attend_block: attend_blocks,
};

/// The dot tiles of the 32-element formats read the activations' scales widened to f32.
unsafe fn prepare(act_type: DType, row: &[u8], dst: &mut [Line]) {
    widen_scales(act_type, row, dst)
}

fn dot_rows(weight: DType) -> Option<DotRows> {
    Some(match weight {
        DType::F32 => rows::<Float<F32W>>,
        DType::F16 => rows::<Float<F16W>>,
        DType::BF16 => rows::<Float<Bf16W>>,
        DType::Q4_0 => rows::<Signed<BlockQ4_0>>,
        DType::Q5_0 => rows::<Signed<BlockQ5_0>>,
        DType::Q8_0 => rows::<Signed<BlockQ8_0>>,
        DType::Q4_1 => rows::<Offset<BlockQ4_1>>,
        DType::Q5_1 => rows::<Offset<BlockQ5_1>>,
        DType::Q2_K => rows::<DotK<BlockQ2K>>,
        DType::Q3_K => rows::<DotK<BlockQ3K>>,
        DType::Q4_K => rows::<DotK<BlockQ4K>>,
        DType::Q5_K => rows::<DotK<BlockQ5K>>,
        DType::Q6_K => rows::<DotK<BlockQ6K>>,
        // Never weights in practice (ggml has no kernels for them either): scalar reference.
        DType::Q8_1 | DType::Q8_K => return None,
    })
}

dot_rows_from_tiles!("avx2,fma,f16c");

/// `ops::attend_block` one query at a time.
unsafe fn attend_blocks(q: &[f32], slots: &[KeySlots], keys_t: &[f16], values: &[f16], scoring: Scoring, states: &mut [SoftmaxState], out: &mut [f32]) {
    // SAFETY: the dispatcher checked the CPU and the shapes.
    unsafe { each_query(ops::attend_block, q, slots, keys_t, values, scoring, states, out) }
}
