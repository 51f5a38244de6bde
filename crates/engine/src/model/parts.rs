//! What family files build their layers from: the file's metadata and weights, its common
//! hyperparameters, and one constructor per building block that looks its tensors up by the
//! shared name table and checks their shapes.

use std::sync::Arc;

use herd_gguf::Gguf;
use herd_kernels::ops::Scoring;

use super::attend::AttnShape;
use super::blocks::attention::{Attention, QkvBias, QkvProj};
use super::blocks::ffn::{Activation, FeedForward, GateUp, Mlp, Moe};
use super::blocks::{Embedding, Head, RmsNorm};
use super::config::{Config, Meta};
use super::names::Tensor;
use super::transformer::Block;
use super::weights::WeightLoader;
use crate::error::Result;

pub struct Parts<'a> {
    pub meta: Meta<'a>,
    pub w: WeightLoader<'a>,
    pub cfg: Config,
}

/// How a family's attention differs from plain Llama attention.
#[derive(Clone, Copy, Debug)]
pub struct AttnOpts {
    /// One fused q/k/v matrix (Phi-3) instead of three.
    pub fused_qkv: bool,
    /// Per-head q/k RMSNorm, required (Qwen 3, Gemma 3).
    pub qk_norm: bool,
    /// Index of the layer's rotary table.
    pub rope: usize,
    pub window: Option<usize>,
    pub softcap: Option<f32>,
    /// The score scale, when not `1/sqrt(head_dim)`.
    pub scale: Option<f32>,
}

impl AttnOpts {
    pub const PLAIN: AttnOpts = AttnOpts { fused_qkv: false, qk_norm: false, rope: 0, window: None, softcap: None, scale: None };
}

impl<'a> Parts<'a> {
    pub fn new(file: &'a Arc<Gguf>, meta: Meta<'a>, cfg: Config) -> Parts<'a> {
        Parts { meta, w: WeightLoader { file }, cfg }
    }

    pub fn norm_of(&self, name: &str, len: usize) -> Result<RmsNorm> {
        Ok(RmsNorm { weight: self.w.vector(name, len)?, eps: self.cfg.rms_eps })
    }

    /// Layer `l`'s norm `t` over the residual width.
    pub fn norm(&self, t: Tensor, l: usize) -> Result<RmsNorm> {
        self.norm_of(&t.at(l), self.cfg.d_model)
    }

    pub fn embedding(&self, scale: Option<f32>) -> Result<Embedding> {
        Ok(Embedding { table: self.w.matrix(&Tensor::TokenEmbd.weight(), self.cfg.n_vocab, self.cfg.d_model)?, scale })
    }

    /// The final norm and output head; the embedding when the file has no `output.weight`.
    pub fn head(&self, softcap: Option<f32>) -> Result<Head> {
        let (n_vocab, d) = (self.cfg.n_vocab, self.cfg.d_model);
        let output = match self.w.matrix_opt(&Tensor::Output.weight(), n_vocab, d)? {
            Some(w) => w,
            None => self.w.matrix(&Tensor::TokenEmbd.weight(), n_vocab, d)?,
        };
        Ok(Head { norm: self.norm_of(&Tensor::OutputNorm.weight(), d)?, output, softcap })
    }

    /// Layer `l`'s attention. Biases are used wherever the file has them (Qwen 2 always
    /// does; Llama-architecture files sometimes).
    pub fn attention(&self, l: usize, o: AttnOpts) -> Result<Attention> {
        let c = &self.cfg;
        let (d, q_dim, kv_dim) = (c.d_model, c.q_dim(), c.kv_dim());
        let proj = if o.fused_qkv {
            QkvProj::Fused(self.w.matrix(&Tensor::AttnQkv.at(l), q_dim + 2 * kv_dim, d)?)
        } else {
            QkvProj::Separate { q: self.w.matrix(&Tensor::AttnQ.at(l), q_dim, d)?, k: self.w.matrix(&Tensor::AttnK.at(l), kv_dim, d)?, v: self.w.matrix(&Tensor::AttnV.at(l), kv_dim, d)? }
        };
        let bias = match self.w.vector_opt(&Tensor::AttnQ.bias_at(l), q_dim)? {
            Some(q) => Some(QkvBias { q, k: self.w.vector(&Tensor::AttnK.bias_at(l), kv_dim)?, v: self.w.vector(&Tensor::AttnV.bias_at(l), kv_dim)? }),
            None => None,
        };
        let qk_norm = if o.qk_norm { Some((self.norm_of(&Tensor::AttnQNorm.at(l), c.head_dim)?, self.norm_of(&Tensor::AttnKNorm.at(l), c.head_dim)?)) } else { None };
        let scale = match self.meta.positive("attention.scale")? {
            Some(s) => s,
            None => o.scale.unwrap_or(1.0 / (c.head_dim as f32).sqrt()),
        };
        let shape = AttnShape { n_heads: c.n_heads, n_kv_heads: c.n_kv_heads, head_dim: c.head_dim, window: o.window, scoring: Scoring { scale, softcap: o.softcap } };
        Ok(Attention { proj, bias, qk_norm, rope: o.rope, shape, wo: self.w.matrix(&Tensor::AttnOutput.at(l), d, q_dim)? })
    }

    /// Layer `l`'s gated MLP, gate and up separate or fused.
    pub fn mlp(&self, l: usize, act: Activation, fused: bool) -> Result<Mlp> {
        let (d, d_ff) = (self.cfg.d_model, self.cfg.d_ff);
        let gate_up = if fused {
            GateUp::Fused(self.w.matrix(&Tensor::FfnUp.at(l), 2 * d_ff, d)?)
        } else {
            GateUp::Separate { gate: self.w.matrix(&Tensor::FfnGate.at(l), d_ff, d)?, up: self.w.matrix(&Tensor::FfnUp.at(l), d_ff, d)? }
        };
        Ok(Mlp { gate_up, down: self.w.matrix(&Tensor::FfnDown.at(l), d, d_ff)?, act })
    }

    /// Layer `l`'s mixture of experts: softmax routing over `expert_count` experts, the top
    /// `expert_used_count`, renormalised unless `expert_weights_norm` says otherwise.
    pub fn moe(&self, l: usize, act: Activation) -> Result<Moe> {
        let m = &self.meta;
        let d = self.cfg.d_model;
        let n_exp = m.required("expert_count")?;
        let n_used = m.required("expert_used_count")?;
        m.sane("expert_count", n_exp, 1024)?;
        m.sane("expert_used_count", n_used, 1024)?;
        if n_used > n_exp {
            return Err(m.bad(format!("key '{}' is {n_used} but '{}' is {n_exp}: a token cannot use more experts than there are", m.key("expert_used_count"), m.key("expert_count"))));
        }
        let d_ff = m.usize("expert_feed_forward_length")?.unwrap_or(self.cfg.d_ff);
        m.sane("expert_feed_forward_length", d_ff, 1 << 18)?;
        let shared = [Tensor::FfnGateShexp, Tensor::FfnUpShexp, Tensor::FfnDownShexp, Tensor::FfnRouterShexp];
        if let Some(name) = shared.iter().map(|t| t.at(l)).find(|name| self.w.has(name)) {
            return Err(m.bad(format!("layer {l} has shared experts ('{name}'), which herd does not run")));
        }
        if let Some(f) = m.usize("expert_gating_func")?.filter(|&f| f != 1) {
            return Err(m.bad(format!("key '{}' is {f}: herd runs softmax expert gating (1) only", m.key("expert_gating_func"))));
        }
        let renormalize = m.file.get_bool(&m.key("expert_weights_norm"))?.unwrap_or(true);
        let gates = self.w.experts(&Tensor::FfnGateExps.at(l), n_exp, d_ff, d)?;
        let ups = self.w.experts(&Tensor::FfnUpExps.at(l), n_exp, d_ff, d)?;
        let downs = self.w.experts(&Tensor::FfnDownExps.at(l), n_exp, d, d_ff)?;
        let experts = gates.into_iter().zip(ups).zip(downs).map(|((gate, up), down)| Mlp { gate_up: GateUp::Separate { gate, up }, down, act }).collect();
        Ok(Moe { router: self.w.matrix(&Tensor::FfnRouter.at(l), n_exp, d)?, experts, n_used, renormalize })
    }

    /// Layer `l`'s feed-forward: a mixture of experts where the file has a router or expert
    /// tensors (so that a missing router is named, not taken for a dense layer), else the gated
    /// MLP.
    pub fn ffn(&self, l: usize, act: Activation) -> Result<FeedForward> {
        Ok(if self.w.has(&Tensor::FfnRouter.at(l)) || self.w.has(&Tensor::FfnGateExps.at(l)) { FeedForward::Moe(self.moe(l, act)?) } else { FeedForward::Dense(self.mlp(l, act, false)?) })
    }

    /// Layer `l` from its attention and feed-forward, with Gemma's post-norms when asked.
    pub fn block(&self, l: usize, attn: Attention, ffn: FeedForward, post_norms: bool) -> Result<Block> {
        Ok(Block {
            attn_norm: self.norm(Tensor::AttnNorm, l)?,
            attn,
            post_attn_norm: if post_norms { Some(self.norm(Tensor::AttnPostNorm, l)?) } else { None },
            ffn_norm: self.norm(Tensor::FfnNorm, l)?,
            ffn,
            post_ffn_norm: if post_norms { Some(self.norm(Tensor::FfnPostNorm, l)?) } else { None },
        })
    }
}
