//! Qwen 2 / 2.5: Llama's layout with q/k/v biases and NeoX-ordered rotary embeddings, usually
//! with tied embeddings.

use herd_kernels::ops::RopeStyle;

use super::blocks::ffn::{Activation, FeedForward};
use super::blocks::rope::Rope;
use super::names::Tensor;
use super::parts::{AttnOpts, Parts};
use super::transformer::Transformer;
use crate::error::Result;

pub const ROPE_STYLE: RopeStyle = RopeStyle::HalfSplit;

pub fn load(p: &Parts<'_>) -> Result<Transformer> {
    let blocks = (0..p.cfg.n_layers)
        .map(|l| {
            if !p.w.has(&Tensor::AttnQ.bias_at(l)) {
                return Err(p.meta.bad(format!("missing tensor '{}' (Qwen 2 attention has biases)", Tensor::AttnQ.bias_at(l))));
            }
            p.block(l, p.attention(l, AttnOpts::PLAIN)?, FeedForward::Dense(p.mlp(l, Activation::Silu, false)?), false)
        })
        .collect::<Result<_>>()?;
    Ok(Transformer { cfg: p.cfg.clone(), embed: p.embedding(None)?, blocks, ropes: vec![Rope::new(&p.cfg.rope)], head: p.head(None)? })
}
