//! Qwen 3 (dense) and Qwen 3 MoE: per-head q/k RMSNorm before rotation, a head dimension of its
//! own (not width / heads), NeoX-ordered rotary embeddings; the MoE variant's layers are
//! experts (softmax routing, top k renormalised: `norm_topk_prob`).

use herd_kernels::ops::RopeStyle;

use super::blocks::ffn::{Activation, FeedForward};
use super::blocks::rope::Rope;
use super::parts::{AttnOpts, Parts};
use super::transformer::Transformer;
use crate::error::Result;

pub const ROPE_STYLE: RopeStyle = RopeStyle::HalfSplit;

pub fn load(p: &Parts<'_>) -> Result<Transformer> {
    build(p, |l| Ok(FeedForward::Dense(p.mlp(l, Activation::Silu, false)?)))
}

pub fn load_moe(p: &Parts<'_>) -> Result<Transformer> {
    build(p, |l| Ok(FeedForward::Moe(p.moe(l, Activation::Silu)?)))
}

fn build(p: &Parts<'_>, ffn: impl Fn(usize) -> Result<FeedForward>) -> Result<Transformer> {
    let opts = AttnOpts { qk_norm: true, ..AttnOpts::PLAIN };
    let blocks = (0..p.cfg.n_layers).map(|l| p.block(l, p.attention(l, opts)?, ffn(l)?, false)).collect::<Result<_>>()?;
    Ok(Transformer { cfg: p.cfg.clone(), embed: p.embedding(None)?, blocks, ropes: vec![Rope::new(&p.cfg.rope)], head: p.head(None)? })
}
