//! Elementwise and row-wise f32 ops of a transformer layer: RMSNorm, rotary embeddings, SwiGLU,
//! softmax, and the small vector primitives attention is built from. The hot ones (`dot`,
//! `scale_add`, RMSNorm's sum of squares, SwiGLU) go through the SIMD dispatcher; the rest are
//! plain loops the compiler vectorises. The matrix products live in `matmul`.

use half::f16;

use crate::simd;

/// `out = x / sqrt(mean(x²) + eps) * weight`, for one row.
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    debug_assert!(x.len() == weight.len() && x.len() == out.len());
    let sum_sq = simd::best().sum_squares(x);
    let scale = (1.0 / (sum_sq / x.len() as f64 + f64::from(eps)).sqrt()) as f32;
    for ((o, &v), &w) in out.iter_mut().zip(x).zip(weight) {
        *o = v * scale * w;
    }
}

/// How a head's dimensions are paired for rotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    /// Pairs (0,1), (2,3), ...: Llama GGUF files (their q/k weights are permuted for it).
    Adjacent,
    /// Pairs (i, i + rot_dim/2): GPT-NeoX, Qwen2, Gemma.
    HalfSplit,
}

/// Rotates the first `2 * cos.len()` dimensions of every head in `x` (n_heads, head_dim) by the
/// angles whose cosines and sines are given, one per pair.
pub fn rope(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32], style: RopeStyle) {
    let n_pairs = cos.len();
    debug_assert!(2 * n_pairs <= head_dim && x.len().is_multiple_of(head_dim));
    for head in x.chunks_exact_mut(head_dim) {
        for i in 0..n_pairs {
            let (a, b) = match style {
                RopeStyle::Adjacent => (2 * i, 2 * i + 1),
                RopeStyle::HalfSplit => (i, i + n_pairs),
            };
            let (x0, x1) = (head[a], head[b]);
            head[a] = x0 * cos[i] - x1 * sin[i];
            head[b] = x0 * sin[i] + x1 * cos[i];
        }
    }
}

/// SwiGLU: `gate = silu(gate) * up`, in place.
pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
    simd::best().silu_mul(gate, up);
}

/// `y += x`.
pub fn add_assign(y: &mut [f32], x: &[f32]) {
    for (a, &b) in y.iter_mut().zip(x) {
        *a += b;
    }
}

/// `y = y * a + x * b`: the rescale-and-accumulate step of online softmax.
pub fn scale_add(y: &mut [f32], a: f32, x: &[f32], b: f32) {
    simd::best().scale_add(y, a, x, b);
}

/// Dot product of two f32 rows.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    simd::best().dot(a, b)
}

/// Positions in one block of keys as `attend_block` takes them.
pub const ATTN_BLOCK: usize = 16;

/// The running maximum and normaliser of an online softmax over blocks of keys.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SoftmaxState {
    pub max: f32,
    pub sum: f32,
}

impl SoftmaxState {
    pub const EMPTY: SoftmaxState = SoftmaxState { max: f32::NEG_INFINITY, sum: 0.0 };
}

/// The slots `lo..hi` of a block of keys that one query sees: the causal mask sets `hi`, a
/// sliding window `lo`. Never empty (a query that sees none of a block is not passed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeySlots {
    pub lo: usize,
    pub hi: usize,
}

/// How a query's dot product with a key becomes its score: `dot * scale`, then, with a
/// soft-cap `c` (Gemma 2), `c * tanh(score / c)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scoring {
    pub scale: f32,
    pub softcap: Option<f32>,
}

/// One block of the KV cache for one KV head: keys transposed (head_dim, ATTN_BLOCK), values
/// (ATTN_BLOCK, head_dim), in the cache's element type. f16 is the serving format (SIMD at
/// every level); f32 is the exact one (`herd logits --precision f32`), run by the reference.
#[derive(Clone, Copy)]
pub enum KvBlock<'a> {
    F16 { keys_t: &'a [f16], values: &'a [f16] },
    F32 { keys_t: &'a [f32], values: &'a [f32] },
}

/// One block of attention for query heads that share its keys, each folded into its own
/// online softmax. Query `i` is row `i` of `q` (head_dim each): its scores (see `Scoring`)
/// against the keys in `slots[i]`, then row `i` of `out` (starting at zeros) and `states[i]`
/// rescaled and accumulated with `softmax weight * v_j`. Keys come transposed, so the scores
/// of a block are one vector multiply-add per dimension. After the last block, divide each row
/// of `out` by its `state.sum`. Taking several queries at once lets a level read each key and
/// value once for all of them; a query's result never depends on the others.
pub fn attend_block(q: &[f32], slots: &[KeySlots], block: KvBlock<'_>, scoring: Scoring, states: &mut [SoftmaxState], out: &mut [f32]) {
    match block {
        KvBlock::F16 { keys_t, values } => simd::best().attend_block(q, slots, keys_t, values, scoring, states, out),
        KvBlock::F32 { keys_t, values } => {
            let hd = keys_t.len() / ATTN_BLOCK;
            assert!(values.len() == keys_t.len() && q.len() == slots.len() * hd && out.len() == q.len() && states.len() == slots.len(), "attend_block: shapes disagree");
            for (((q, &slots), state), out) in q.chunks_exact(hd).zip(slots).zip(states).zip(out.chunks_exact_mut(hd)) {
                simd::scalar::attend_block(q, keys_t, values, slots, scoring, state, out);
            }
        }
    }
}

/// GeGLU with the tanh approximation of GELU (Gemma): `gate = gelu_tanh(gate) * up`, in place.
pub fn gelu_mul(gate: &mut [f32], up: &[f32]) {
    simd::best().gelu_mul(gate, up);
}

/// Soft-capping: `x = cap * tanh(x / cap)`, in place (Gemma 2's final logits).
pub fn softcap(x: &mut [f32], cap: f32) {
    for v in x {
        *v = cap * (*v / cap).tanh();
    }
}

/// `y += b` for every row of `y` (rows of `b.len()`): a projection's bias.
pub fn add_rows(y: &mut [f32], b: &[f32]) {
    for row in y.chunks_exact_mut(b.len()) {
        add_assign(row, b);
    }
}

/// Natural log of the softmax of `logits` at `idx`, computed stably in f64.
pub fn log_softmax_at(logits: &[f32], idx: usize) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    f64::from(logits[idx] - max) - sum.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_norm_of_constant_row_is_weight() {
        let mut out = [0.0; 4];
        rms_norm(&[3.0; 4], &[1.0, 2.0, 3.0, 4.0], 0.0, &mut out);
        assert_eq!(out, [1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn rope_styles_rotate_the_right_pairs() {
        let (c, s) = ([0.0f32, 1.0], [1.0f32, 0.0]); // first pair by 90 degrees, second not at all
        let mut adj = [1.0, 2.0, 3.0, 4.0];
        rope(&mut adj, 4, &c, &s, RopeStyle::Adjacent);
        assert_eq!(adj, [-2.0, 1.0, 3.0, 4.0]);
        let mut half = [1.0, 2.0, 3.0, 4.0];
        rope(&mut half, 4, &c, &s, RopeStyle::HalfSplit);
        assert_eq!(half, [-3.0, 2.0, 1.0, 4.0]);
    }

    #[test]
    fn dot_matches_naive_sum_on_awkward_lengths() {
        for n in [0, 1, 7, 8, 9, 63, 100] {
            let a: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 3.0).collect();
            let b: Vec<f32> = (0..n).map(|i| 1.0 - i as f32 * 0.25).collect();
            let naive: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
            assert!((f64::from(dot(&a, &b)) - naive).abs() < 1e-3 * (1.0 + naive.abs()), "n={n}");
        }
    }

    #[test]
    fn log_softmax_sums_to_one() {
        let logits = [1.0, 2.0, 3.0, -50.0];
        let total: f64 = (0..4).map(|i| log_softmax_at(&logits, i).exp()).sum();
        assert!((total - 1.0).abs() < 1e-12);
    }

    #[test]
    fn gelu_mul_matches_formula_and_softcap_bounds() {
        let xs = [0.0f32, 1.0, -2.0, 10.0, -10.0, 0.3];
        let mut gate = xs;
        gelu_mul(&mut gate, &[2.0; 6]);
        for (g, &x) in gate.iter().zip(&xs) {
            let x = f64::from(x);
            let want = 2.0 * 0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh());
            assert!((f64::from(*g) - want).abs() < 1e-5 * (1.0 + want.abs()), "gelu({x}): {g} vs {want}");
        }
        let mut v = [0.0f32, 1.0, 100.0, -100.0];
        softcap(&mut v, 4.0);
        assert_eq!(v[0], 0.0);
        assert!((v[1] - 4.0 * 0.25f32.tanh()).abs() < 1e-6 && v[2] <= 4.0 && v[3] >= -4.0 && v[2] > 3.99, "{v:?}");
    }

    #[test]
    fn silu_mul_matches_formula() {
        let mut gate = [0.0f32, 1.0, -2.0, 10.0];
        silu_mul(&mut gate, &[1.0, 2.0, 3.0, 0.5]);
        let want = [0.0, 2.0 / (1.0 + (-1.0f32).exp()), 3.0 * -2.0 / (1.0 + 2.0f32.exp()), 0.5 * 10.0 / (1.0 + (-10.0f32).exp())];
        for (g, w) in gate.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{g} vs {w}");
        }
    }
}
