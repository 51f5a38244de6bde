//! Phi-3: fused q/k/v and fused gate+up matrices, NeoX-ordered rotary embeddings, and LongRoPE
//! (per-pair frequency divisors for short and long contexts, an attention factor) where the
//! file has the factor tensors. llama.cpp runs Phi-3 without its sliding window, and so does
//! herd (the converter writes 0 for models that have none).

use herd_kernels::ops::RopeStyle;

use super::blocks::ffn::{Activation, FeedForward};
use super::blocks::rope::Rope;
use super::config::{rope_factors, RopeConfig};
use super::names::Tensor;
use super::parts::{AttnOpts, Parts};
use super::transformer::Transformer;
use crate::error::Result;

pub const ROPE_STYLE: RopeStyle = RopeStyle::HalfSplit;

pub fn load(p: &Parts<'_>) -> Result<Transformer> {
    let c = &p.cfg;
    let opts = AttnOpts { fused_qkv: true, ..AttnOpts::PLAIN };
    let blocks = (0..c.n_layers).map(|l| p.block(l, p.attention(l, opts)?, FeedForward::Dense(p.mlp(l, Activation::Silu, true)?), false)).collect::<Result<_>>()?;
    Ok(Transformer { cfg: c.clone(), embed: p.embedding(None)?, blocks, ropes: vec![rope(p)?], head: p.head(None)? })
}

fn rope(p: &Parts<'_>) -> Result<Rope> {
    let c = &p.cfg;
    let (short, long) = (Tensor::RopeFactorsShort.weight(), Tensor::RopeFactorsLong.weight());
    match (p.w.has(&short), p.w.has(&long)) {
        (false, false) => Ok(Rope::new(&c.rope)),
        (true, true) => {
            let original_ctx = p.meta.required("rope.scaling.original_context_length")?;
            p.meta.sane("rope.scaling.original_context_length", original_ctx, 1 << 24)?;
            let attn_factor = p.meta.positive("rope.scaling.attn_factor")?.unwrap_or(1.0);
            let with = |name: &str| -> Result<RopeConfig> { Ok(RopeConfig { freq_factors: Some(rope_factors(&p.meta, name, c.rope.n_rot)?), ..c.rope.clone() }) };
            Ok(Rope::longrope(&with(&short)?, &with(&long)?, original_ctx, attn_factor))
        }
        (true, false) => Err(p.meta.bad(format!("tensor '{short}' is present but '{long}' is missing: LongRoPE needs both"))),
        (false, true) => Err(p.meta.bad(format!("tensor '{long}' is present but '{short}' is missing: LongRoPE needs both"))),
    }
}
