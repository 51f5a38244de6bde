//! Gemma 3 (text): Gemma 2's layout without the soft-caps, with per-head q/k RMSNorm, and
//! layers in a pattern of local (sliding-window, rotary base `freq_base_swa`, unscaled) and
//! global ones (full attention, rotary base `freq_base` with the file's linear scaling): five
//! local, then one global, unless the file says otherwise.

use herd_gguf::Value;
use herd_kernels::ops::RopeStyle;

use super::blocks::ffn::{Activation, FeedForward};
use super::blocks::rope::Rope;
use super::config::RopeConfig;
use super::gemma2::query_scale;
use super::parts::{AttnOpts, Parts};
use super::transformer::Transformer;
use crate::error::Result;

pub const ROPE_STYLE: RopeStyle = RopeStyle::HalfSplit;

/// Layer i is global when (i + 1) is a multiple of this, unless the file has its own pattern.
const DEFAULT_PATTERN: usize = 6;
const GLOBAL: usize = 0;
const LOCAL: usize = 1;

pub fn load(p: &Parts<'_>) -> Result<Transformer> {
    let c = &p.cfg;
    let window = p.meta.required("attention.sliding_window")?;
    p.meta.sane("attention.sliding_window", window, 1 << 24)?;
    let local = local_layers(p)?;
    let base = p.meta.positive("rope.freq_base_swa")?.unwrap_or(10000.0);
    let local_rope = RopeConfig { base, linear_scale: 1.0, freq_factors: None, ..c.rope.clone() };
    let opts = AttnOpts { qk_norm: true, softcap: p.meta.positive("attn_logit_softcapping")?, scale: Some(query_scale(p)), ..AttnOpts::PLAIN };
    let blocks = (0..c.n_layers)
        .map(|l| {
            let opts = if local[l] { AttnOpts { window: Some(window), rope: LOCAL, ..opts } } else { AttnOpts { rope: GLOBAL, ..opts } };
            p.block(l, p.attention(l, opts)?, FeedForward::Dense(p.mlp(l, Activation::GeluTanh, false)?), true)
        })
        .collect::<Result<_>>()?;
    let embed = p.embedding(Some((c.d_model as f32).sqrt()))?;
    let ropes = vec![Rope::new(&c.rope), Rope::new(&local_rope)];
    Ok(Transformer { cfg: c.clone(), embed, blocks, ropes, head: p.head(p.meta.positive("final_logit_softcapping")?)? })
}

/// Which layers slide: `attention.sliding_window_pattern` as a period (layer i global when
/// i + 1 is a multiple of it) or as one bool per layer (true: sliding).
fn local_layers(p: &Parts<'_>) -> Result<Vec<bool>> {
    let n = p.cfg.n_layers;
    let key = p.meta.key("attention.sliding_window_pattern");
    match p.meta.file.get(&key) {
        None => Ok((0..n).map(|l| (l + 1) % DEFAULT_PATTERN != 0).collect()),
        Some(Value::Array(a)) => {
            let flags: Option<Vec<bool>> = a.items.iter().map(Value::as_bool).collect();
            match flags {
                Some(f) if f.len() == n => Ok(f),
                Some(f) => Err(p.meta.bad(format!("key '{key}' has {} entries for {n} layers", f.len()))),
                None => Err(p.meta.bad(format!("key '{key}' is an array of {}, expected a period or an array of bools", a.elem_type))),
            }
        }
        Some(v) => match v.as_u64() {
            Some(period) if period >= 1 && period as usize <= n => Ok((0..n).map(|l| (l + 1) % period as usize != 0).collect()),
            _ => Err(p.meta.bad(format!("key '{key}' is {}, expected a period from 1 to the layer count {n}", v.describe()))),
        },
    }
}
