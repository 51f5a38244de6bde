//! The building blocks every family is made of: each owns its weights and knows its own step
//! of the forward pass over a batch of tokens. A family file (`model/llama.rs`, ...) reads its
//! hyperparameters and tensors and composes these; `Transformer::forward` runs them.

pub mod attention;
pub mod ffn;
pub mod rope;

use herd_kernels::ops::{rms_norm, softcap};
use herd_kernels::{matmul, DType, MatmulScratch, Precision, ThreadPool};

use super::weights::Weight;

/// Tokens `tokens` of the batch (or rows of a gathered buffer) all use `precision`.
#[derive(Clone, Debug)]
pub struct PrecisionRun {
    pub precision: Precision,
    pub tokens: std::ops::Range<usize>,
}

/// `out (n, w.rows) = x (n, w.cols) · wᵀ`, each run of tokens at its own precision.
pub fn matmul_runs(pool: &ThreadPool, w: &Weight, x: &[f32], out: &mut [f32], runs: &[PrecisionRun], mm: &mut MatmulScratch) {
    let (rows, cols) = (w.rows, w.cols);
    for run in runs {
        let n = run.tokens.len();
        let (x, out) = (&x[run.tokens.start * cols..run.tokens.end * cols], &mut out[run.tokens.start * rows..run.tokens.end * rows]);
        matmul(pool, w.mat(), x, n, out, mm, for_weight(run.precision, w.dtype));
    }
}

/// The precision a product with a weight of `dtype` runs at. bf16 products round the weights
/// too, which costs nothing of a quantized or BF16 file's precision but throws away most of an
/// F32 or F16 file's (tiny models moved by up to 0.13 in their logits): those get f32 products.
fn for_weight(precision: Precision, dtype: DType) -> Precision {
    match (precision, dtype) {
        (Precision::Bf16, DType::F32 | DType::F16) => Precision::Exact,
        _ => precision,
    }
}

/// RMSNorm with a learned gain. Gemma's `(1 + w)` gain is stored as `1 + w` by llama.cpp's
/// converter, so a GGUF file always holds the plain form.
pub struct RmsNorm {
    pub weight: Vec<f32>,
    pub eps: f32,
}

impl RmsNorm {
    /// Normalises each row of `x` (rows of the gain's width) into `out`.
    pub fn rows(&self, x: &[f32], out: &mut [f32]) {
        let d = self.weight.len();
        for (x, out) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            rms_norm(x, &self.weight, self.eps, out);
        }
    }

    /// Normalises each row of `x` in place, through `tmp` (one row).
    pub fn rows_in_place(&self, x: &mut [f32], tmp: &mut Vec<f32>) {
        let d = self.weight.len();
        tmp.resize(d, 0.0);
        for row in x.chunks_exact_mut(d) {
            rms_norm(row, &self.weight, self.eps, tmp);
            row.copy_from_slice(tmp);
        }
    }
}

/// The token embedding, optionally scaled (Gemma multiplies by `sqrt(d_model)`).
pub struct Embedding {
    pub table: Weight, // (n_vocab, d_model)
    pub scale: Option<f32>,
}

impl Embedding {
    pub fn row(&self, token: u32, out: &mut [f32]) {
        self.table.row_f32(token as usize, out);
        if let Some(scale) = self.scale {
            out.iter_mut().for_each(|v| *v *= scale);
        }
    }
}

/// The final norm and the output projection to logits, with Gemma 2's optional soft-cap.
pub struct Head {
    pub norm: RmsNorm,
    pub output: Weight, // (n_vocab, d_model); the embedding itself when tied
    pub softcap: Option<f32>,
}

impl Head {
    /// `logits (n, n_vocab) = norm(x) Woutᵀ` for the already-normed rows `x`.
    pub fn logits(&self, pool: &ThreadPool, normed: &[f32], logits: &mut [f32], runs: &[PrecisionRun], mm: &mut MatmulScratch) {
        matmul_runs(pool, &self.output, normed, logits, runs, mm);
        if let Some(cap) = self.softcap {
            softcap(logits, cap);
        }
    }
}
