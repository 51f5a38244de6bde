//! Feed-forward blocks: the gated MLP (SwiGLU or GeGLU, gate and up separate or fused) and the
//! mixture of experts built from the same MLP per expert.

use herd_kernels::ops::{add_assign, gelu_mul, silu_mul};
use herd_kernels::{matmul, MatmulScratch, Precision, ThreadPool};

use super::{matmul_runs, PrecisionRun};
use crate::model::transformer::{grow, ForwardScratch};
use crate::model::weights::Weight;

/// The gate's nonlinearity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// SwiGLU: `silu(gate) * up` (Llama, Qwen, Mistral, Phi-3).
    Silu,
    /// GeGLU with tanh-approximated GELU (Gemma).
    GeluTanh,
}

impl Activation {
    fn apply(self, gate: &mut [f32], up: &[f32]) {
        match self {
            Activation::Silu => silu_mul(gate, up),
            Activation::GeluTanh => gelu_mul(gate, up),
        }
    }
}

pub enum GateUp {
    Separate { gate: Weight, up: Weight },
    /// One (2 d_ff, d_model) matrix, the gate's rows first (Phi-3).
    Fused(Weight),
}

/// `down(act(x Wgᵀ) * x Wuᵀ)`.
pub struct Mlp {
    pub gate_up: GateUp,
    pub down: Weight, // (d_model, d_ff)
    pub act: Activation,
}

impl Mlp {
    fn d_ff(&self) -> usize {
        self.down.cols
    }

    /// `out (n, d_model)` for the rows `x (n, d_model)`, in runs of precision. `gate` and
    /// `up` are grown to hold the hidden activations.
    #[allow(clippy::too_many_arguments)]
    fn run(&self, pool: &ThreadPool, x: &[f32], n: usize, out: &mut [f32], runs: &[PrecisionRun], gate: &mut Vec<f32>, up: &mut Vec<f32>, mm: &mut MatmulScratch) {
        let d_ff = self.d_ff();
        grow(gate, n * d_ff);
        match &self.gate_up {
            GateUp::Separate { gate: wg, up: wu } => {
                grow(up, n * d_ff);
                matmul_runs(pool, wg, x, gate, runs, mm);
                matmul_runs(pool, wu, x, up, runs, mm);
                self.act.apply(&mut gate[..n * d_ff], &up[..n * d_ff]);
            }
            GateUp::Fused(w) => {
                grow(up, n * 2 * d_ff);
                matmul_runs(pool, w, x, up, runs, mm);
                for i in 0..n {
                    let row = &up[i * 2 * d_ff..(i + 1) * 2 * d_ff];
                    let g = &mut gate[i * d_ff..(i + 1) * d_ff];
                    g.copy_from_slice(&row[..d_ff]);
                    self.act.apply(g, &row[d_ff..]);
                }
            }
        }
        matmul_runs(pool, &self.down, gate, out, runs, mm);
    }
}

pub enum FeedForward {
    Dense(Mlp),
    Moe(Moe),
}

impl FeedForward {
    /// `s.proj (n_tok, d_model)` from the normed input `s.h`.
    pub fn forward(&self, pool: &ThreadPool, s: &mut ForwardScratch, n_tok: usize) {
        match self {
            FeedForward::Dense(mlp) => mlp.run(pool, &s.h, n_tok, &mut s.proj, &s.runs, &mut s.gate, &mut s.up, &mut s.mm),
            FeedForward::Moe(moe) => moe.forward(pool, s, n_tok),
        }
    }
}

/// A mixture of experts: a router picks `n_used` of the experts for each token (softmax over
/// the router's logits, top k, weights renormalised to sum to 1 where the model asks), and
/// the token's output is the weighted sum of those experts' MLPs.
pub struct Moe {
    pub router: Weight, // (n_experts, d_model)
    pub experts: Vec<Mlp>,
    pub n_used: usize,
    pub renormalize: bool,
}

/// The mixture's buffers, reused between calls.
#[derive(Default)]
pub struct MoeScratch {
    router_logits: Vec<f32>, // (n_tok, n_experts)
    chosen: Vec<(u32, f32)>, // (n_tok, n_used): expert and weight
    rows: Vec<u32>,          // tokens routed to the current expert, in batch order
    weights: Vec<f32>,       // their weights
    runs: Vec<PrecisionRun>, // precision runs over `rows`
    x: Vec<f32>,             // (rows, d_model) their inputs
    y: Vec<f32>,             // (rows, d_model) the expert's outputs
    gate: Vec<f32>,
    up: Vec<f32>,
}

impl Moe {
    /// Tokens are grouped by expert, so each expert runs one matrix-shaped product over all
    /// the tokens that chose it. A matmul computes every row the same way whatever the other
    /// rows are, the router runs in f32 whatever the token's precision (a near-tie between
    /// experts must not flip with the rounding), and each token sums its experts in expert
    /// order: a token's output depends only on itself, never on which other tokens picked
    /// the same experts.
    fn forward(&self, pool: &ThreadPool, s: &mut ForwardScratch, n_tok: usize) {
        let d = self.router.cols;
        let n_exp = self.experts.len();
        let m = &mut s.moe;
        grow(&mut m.router_logits, n_tok * n_exp);
        matmul(pool, self.router.mat(), &s.h[..n_tok * d], n_tok, &mut m.router_logits[..n_tok * n_exp], &mut s.mm, Precision::Exact);
        m.chosen.clear();
        for logits in m.router_logits[..n_tok * n_exp].chunks_exact(n_exp) {
            let first = m.chosen.len();
            route(logits, self.n_used, self.renormalize, &mut m.chosen);
            // Expert order within the token, so that its sum runs in a fixed order.
            m.chosen[first..].sort_unstable_by_key(|&(e, _)| e);
        }
        let out = &mut s.proj[..n_tok * d];
        out.fill(0.0);
        for (e, expert) in self.experts.iter().enumerate() {
            m.rows.clear();
            m.weights.clear();
            m.runs.clear();
            for (i, chosen) in m.chosen.chunks_exact(self.n_used).enumerate() {
                let Some(&(_, w)) = chosen.iter().find(|&&(c, _)| c as usize == e) else { continue };
                let precision = s.runs.iter().find(|r| r.tokens.contains(&i)).expect("every token is in a run").precision;
                let row = m.rows.len();
                match m.runs.last_mut() {
                    Some(run) if run.precision == precision => run.tokens.end = row + 1,
                    _ => m.runs.push(PrecisionRun { precision, tokens: row..row + 1 }),
                }
                m.rows.push(i as u32);
                m.weights.push(w);
            }
            let n = m.rows.len();
            if n == 0 {
                continue;
            }
            grow(&mut m.x, n * d);
            grow(&mut m.y, n * d);
            for (r, &i) in m.rows.iter().enumerate() {
                m.x[r * d..(r + 1) * d].copy_from_slice(&s.h[i as usize * d..(i as usize + 1) * d]);
            }
            expert.run(pool, &m.x[..n * d], n, &mut m.y, &m.runs, &mut m.gate, &mut m.up, &mut s.mm);
            for (r, (&i, &w)) in m.rows.iter().zip(&m.weights).enumerate() {
                let y = &mut m.y[r * d..(r + 1) * d];
                y.iter_mut().for_each(|v| *v *= w);
                add_assign(&mut out[i as usize * d..(i as usize + 1) * d], y);
            }
        }
    }
}

/// Appends the `k` experts a token's router logits choose, with their weights: the softmax
/// over all experts at the chosen ones, renormalised over them when asked (equal to a softmax
/// over the chosen logits). Ties go to the lower index.
fn route(logits: &[f32], k: usize, renormalize: bool, chosen: &mut Vec<(u32, f32)>) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let total: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    let first = chosen.len();
    for _ in 0..k {
        let best = (0..logits.len()).filter(|&e| !chosen[first..].iter().any(|&(c, _)| c as usize == e)).fold(None, |best: Option<usize>, e| match best {
            Some(b) if logits[b] >= logits[e] => Some(b),
            _ => Some(e),
        });
        let e = best.expect("k is at most the number of experts");
        chosen.push((e as u32, (f64::from(logits[e] - max).exp() / total) as f32));
    }
    if renormalize {
        let sum: f32 = chosen[first..].iter().map(|&(_, w)| w).sum();
        chosen[first..].iter_mut().for_each(|(_, w)| *w /= sum);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_takes_the_top_k_and_renormalizes() {
        let mut chosen = Vec::new();
        route(&[0.0, 2.0, 1.0, 2.0], 2, true, &mut chosen);
        // Experts 1 and 3 tie at the top: both taken, each half.
        assert_eq!(chosen.iter().map(|c| c.0).collect::<Vec<_>>(), [1, 3]);
        assert!(chosen.iter().all(|c| (c.1 - 0.5).abs() < 1e-6));
        chosen.clear();
        route(&[0.0, 1.0, 3.0], 1, false, &mut chosen);
        let p = 3f64.exp() / (1.0 + 1f64.exp() + 3f64.exp());
        assert_eq!(chosen[0].0, 2);
        assert!((f64::from(chosen[0].1) - p).abs() < 1e-6);
    }
}
