//! Llama (Llama 2/3.x, SmolLM2) and the files that share its architecture name: Mistral (a
//! sliding window, when the file states one: llama.cpp's converter does not write it for
//! Mistral v0.1) and Mixtral (experts, where a layer has a router).

use herd_kernels::ops::RopeStyle;

use super::blocks::ffn::Activation;
use super::blocks::rope::Rope;
use super::parts::{AttnOpts, Parts};
use super::transformer::Transformer;
use crate::error::Result;

/// Llama GGUF files hold q/k rows permuted for adjacent-pair rotation.
pub const ROPE_STYLE: RopeStyle = RopeStyle::Adjacent;

pub fn load(p: &Parts<'_>) -> Result<Transformer> {
    let window = p.meta.usize("attention.sliding_window")?.filter(|&w| w > 0);
    let opts = AttnOpts { window, ..AttnOpts::PLAIN };
    let blocks = (0..p.cfg.n_layers).map(|l| p.block(l, p.attention(l, opts)?, p.ffn(l, Activation::Silu)?, false)).collect::<Result<_>>()?;
    Ok(Transformer { cfg: p.cfg.clone(), embed: p.embedding(None)?, blocks, ropes: vec![Rope::new(&p.cfg.rope)], head: p.head(None)? })
}
