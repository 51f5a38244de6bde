//! The attention block: projections (separate or fused, with optional biases), optional
//! per-head q/k RMSNorm, rotary embeddings, the KV cache write, attention itself (scheduled
//! by `model::attend`), and the output projection.

use herd_kernels::ops::add_rows;
use herd_kernels::ThreadPool;

use super::rope::Rope;
use super::{matmul_runs, RmsNorm};
use crate::kv_cache::KvCache;
use crate::model::attend::{attention, AttnIo, AttnShape};
use crate::model::transformer::{ForwardScratch, SeqChunk};
use crate::model::weights::Weight;

pub enum QkvProj {
    Separate { q: Weight, k: Weight, v: Weight },
    /// One (q_dim + 2 kv_dim, d_model) matrix, rows q then k then v (Phi-3).
    Fused(Weight),
}

pub struct QkvBias {
    pub q: Vec<f32>,
    pub k: Vec<f32>,
    pub v: Vec<f32>,
}

pub struct Attention {
    pub proj: QkvProj,
    pub bias: Option<QkvBias>,
    /// Per-head RMSNorm of queries and keys before rotation (Qwen 3, Gemma 3).
    pub qk_norm: Option<(RmsNorm, RmsNorm)>,
    /// Index of this layer's rotary table in the model's.
    pub rope: usize,
    pub shape: AttnShape,
    pub wo: Weight, // (d_model, q_dim)
}

impl Attention {
    /// `s.proj (n_tok, d_model)` = attention over the normed input `s.h`; keys and values of
    /// every token go into `kv` at layer `layer`.
    pub fn forward(&self, pool: &ThreadPool, kv: &mut KvCache, layer: usize, batch: &[SeqChunk<'_>], rope: &Rope, s: &mut ForwardScratch, n_tok: usize) {
        let sh = &self.shape;
        let (hd, q_dim, kv_dim) = (sh.head_dim, sh.n_heads * sh.head_dim, sh.n_kv_heads * sh.head_dim);
        let runs = &s.runs;
        match &self.proj {
            QkvProj::Separate { q, k, v } => {
                matmul_runs(pool, q, &s.h, &mut s.q, runs, &mut s.mm);
                matmul_runs(pool, k, &s.h, &mut s.k, runs, &mut s.mm);
                matmul_runs(pool, v, &s.h, &mut s.v, runs, &mut s.mm);
            }
            QkvProj::Fused(w) => {
                let width = q_dim + 2 * kv_dim;
                super::super::transformer::grow(&mut s.fused, n_tok * width);
                matmul_runs(pool, w, &s.h, &mut s.fused, runs, &mut s.mm);
                for (i, row) in s.fused[..n_tok * width].chunks_exact(width).enumerate() {
                    s.q[i * q_dim..(i + 1) * q_dim].copy_from_slice(&row[..q_dim]);
                    s.k[i * kv_dim..(i + 1) * kv_dim].copy_from_slice(&row[q_dim..q_dim + kv_dim]);
                    s.v[i * kv_dim..(i + 1) * kv_dim].copy_from_slice(&row[q_dim + kv_dim..]);
                }
            }
        }
        let (q, k, v) = (&mut s.q[..n_tok * q_dim], &mut s.k[..n_tok * kv_dim], &mut s.v[..n_tok * kv_dim]);
        if let Some(b) = &self.bias {
            add_rows(q, &b.q);
            add_rows(k, &b.k);
            add_rows(v, &b.v);
        }
        if let Some((q_norm, k_norm)) = &self.qk_norm {
            q_norm.rows_in_place(q, &mut s.tmp);
            k_norm.rows_in_place(k, &mut s.tmp);
        }
        let n_pairs = rope.n_pairs();
        let angles = self.rope * n_tok * n_pairs;
        for i in 0..n_tok {
            let at = angles + i * n_pairs;
            let (cos, sin) = (&s.cos[at..at + n_pairs], &s.sin[at..at + n_pairs]);
            rope.apply(&mut q[i * q_dim..(i + 1) * q_dim], hd, cos, sin);
            rope.apply(&mut k[i * kv_dim..(i + 1) * kv_dim], hd, cos, sin);
            let chunk = &batch[s.tok_seq[i] as usize];
            kv.store(layer, chunk.blocks, s.tok_pos[i] as usize, &k[i * kv_dim..(i + 1) * kv_dim], &v[i * kv_dim..(i + 1) * kv_dim]);
        }
        let mut io = AttnIo { q, batch, tok_seq: &s.tok_seq, tok_pos: &s.tok_pos, att: &mut s.att[..n_tok * q_dim], scratch: &mut s.attn };
        attention(sh, pool, kv, layer, &mut io);
        matmul_runs(pool, &self.wo, &s.att, &mut s.proj, &s.runs, &mut s.mm);
    }
}
