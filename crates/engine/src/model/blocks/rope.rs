//! Rotary position embeddings: a table of per-pair frequencies (scaling applied), the angles of
//! each position, and their application to queries and keys.

use herd_kernels::ops::{rope, RopeStyle};

use crate::model::config::RopeConfig;

/// One rotary table. A model has one, or two when its layers rotate differently (Gemma 3's
/// local and global layers).
pub struct Rope {
    pub style: RopeStyle,
    /// Rotation frequency of each pair, scaling applied: position × frequency is the angle.
    freqs: Vec<f64>,
    /// LongRoPE (Phi-3): other frequencies for contexts past the original training length.
    long: Option<LongFreqs>,
    /// Multiplies the cosines and sines, so every score by its square (LongRoPE's attention
    /// factor); 1 elsewhere.
    attn_factor: f32,
}

struct LongFreqs {
    freqs: Vec<f64>,
    original_ctx: usize,
}

impl Rope {
    pub fn new(cfg: &RopeConfig) -> Rope {
        Rope { style: cfg.style, freqs: cfg.inv_freqs(), long: None, attn_factor: 1.0 }
    }

    /// LongRoPE: `short` for contexts up to `original_ctx` positions, `long` past it (as
    /// llama.cpp decides: by the context size a sequence runs in, not by its current length),
    /// both scaled by `attn_factor`.
    pub fn longrope(short: &RopeConfig, long: &RopeConfig, original_ctx: usize, attn_factor: f32) -> Rope {
        Rope { style: short.style, freqs: short.inv_freqs(), long: Some(LongFreqs { freqs: long.inv_freqs(), original_ctx }), attn_factor }
    }

    pub fn n_pairs(&self) -> usize {
        self.freqs.len()
    }

    /// The cosines and sines (n_pairs each) of position `pos` in a context of `n_ctx`.
    pub fn angles(&self, pos: usize, n_ctx: usize, cos: &mut [f32], sin: &mut [f32]) {
        let freqs = match &self.long {
            Some(long) if n_ctx > long.original_ctx => &long.freqs,
            _ => &self.freqs,
        };
        let m = f64::from(self.attn_factor);
        for ((&f, c), s) in freqs.iter().zip(cos).zip(sin) {
            let (sin, cos) = (pos as f64 * f).sin_cos();
            *c = (cos * m) as f32;
            *s = (sin * m) as f32;
        }
    }

    /// Rotates every head of `x` (n_heads, head_dim) by one position's angles.
    pub fn apply(&self, x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
        rope(x, head_dim, cos, sin, self.style);
    }
}
