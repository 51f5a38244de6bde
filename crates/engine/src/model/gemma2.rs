//! Gemma 2: embeddings scaled by sqrt(width), norms after attention and feed-forward as well as
//! before, GeGLU (tanh GELU), soft-capped attention scores and final logits, and a sliding
//! window on even layers.

use herd_kernels::ops::RopeStyle;

use super::blocks::ffn::{Activation, FeedForward};
use super::blocks::rope::Rope;
use super::parts::{AttnOpts, Parts};
use super::transformer::Transformer;
use crate::error::Result;

pub const ROPE_STYLE: RopeStyle = RopeStyle::HalfSplit;

pub fn load(p: &Parts<'_>) -> Result<Transformer> {
    let c = &p.cfg;
    let window = p.meta.usize("attention.sliding_window")?.filter(|&w| w > 0);
    let opts = AttnOpts { softcap: p.meta.positive("attn_logit_softcapping")?, scale: Some(query_scale(p)), ..AttnOpts::PLAIN };
    let blocks = (0..c.n_layers)
        .map(|l| {
            let opts = AttnOpts { window: window.filter(|_| l % 2 == 0), ..opts };
            p.block(l, p.attention(l, opts)?, FeedForward::Dense(p.mlp(l, Activation::GeluTanh, false)?), true)
        })
        .collect::<Result<_>>()?;
    let embed = p.embedding(Some((c.d_model as f32).sqrt()))?;
    Ok(Transformer { cfg: c.clone(), embed, blocks, ropes: vec![Rope::new(&c.rope)], head: p.head(p.meta.positive("final_logit_softcapping")?)? })
}

/// Gemma's scores are scaled by `1/sqrt(query_pre_attn_scalar)`, which GGUF files do not
/// carry: it is the head dimension except in the 27B models (46 layers for Gemma 2, 62 for
/// Gemma 3), where it is width / heads. This is how llama.cpp decides it too.
pub fn query_scale(p: &Parts<'_>) -> f32 {
    let c = &p.cfg;
    let scalar = if (p.meta.arch == "gemma2" && c.n_layers == 46) || (p.meta.arch == "gemma3" && c.n_layers == 62) { c.d_model / c.n_heads } else { c.head_dim };
    1.0 / (scalar as f32).sqrt()
}
