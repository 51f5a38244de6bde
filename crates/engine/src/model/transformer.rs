//! The decoder stack every family shares: embedding, blocks of (norm, attention, optional
//! post-norm, residual; norm, feed-forward, optional post-norm, residual), final norm and
//! head. A family file builds a `Transformer` from its tensors; `forward` turns a batch of
//! (sequence, positions, tokens) into logits, writing keys and values into the paged KV
//! cache. It never samples and never sees text.

use herd_kernels::ops::add_assign;
use herd_kernels::{MatmulScratch, Precision, ThreadPool};

use super::attend::AttnScratch;
use super::blocks::attention::Attention;
use super::blocks::ffn::{FeedForward, MoeScratch};
use super::blocks::rope::Rope;
use super::blocks::{Embedding, Head, PrecisionRun, RmsNorm};
use super::config::Config;
use crate::error::{EngineError, Result};
use crate::kv_cache::{KvCache, BLOCK_SIZE};

/// One layer.
pub struct Block {
    pub attn_norm: RmsNorm,
    pub attn: Attention,
    /// Gemma's norm of the attention output before the residual add.
    pub post_attn_norm: Option<RmsNorm>,
    pub ffn_norm: RmsNorm,
    pub ffn: FeedForward,
    /// Gemma's norm of the feed-forward output before the residual add.
    pub post_ffn_norm: Option<RmsNorm>,
}

pub struct Transformer {
    pub cfg: Config,
    pub embed: Embedding,
    pub blocks: Vec<Block>,
    /// The rotary tables the layers use (`Attention::rope` indexes this).
    pub ropes: Vec<Rope>,
    pub head: Head,
}

/// Which positions of a sequence's chunk want next-token logits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    None,
    Last,
    /// Every position from this index of the chunk on.
    From(usize),
}

/// One sequence's part of a batch: `tokens` at positions `start_pos..`, whose keys and values
/// go into the blocks of `blocks` (which must already cover every position).
pub struct SeqChunk<'a> {
    pub blocks: &'a [u32],
    pub start_pos: usize,
    pub tokens: &'a [u32],
    pub logits: Logits,
    /// How this chunk's matrix products are computed (prompt: Bf16, generated: Int8). A
    /// token's results depend only on this, never on the other chunks of the batch.
    pub precision: Precision,
}

/// A caller's working state: the context size its sequences run in (LongRoPE picks its
/// frequencies by it) and activation buffers, grown to the largest batch seen and reused, so
/// steady-state decoding allocates nothing.
#[derive(Default)]
pub struct ForwardScratch {
    n_ctx: usize,
    pub(in crate::model) x: Vec<f32>,     // (n_tok, d_model) residual stream
    pub(in crate::model) h: Vec<f32>,     // (n_tok, d_model) normed input of a block
    pub(in crate::model) q: Vec<f32>,     // (n_tok, q_dim)
    pub(in crate::model) k: Vec<f32>,     // (n_tok, kv_dim)
    pub(in crate::model) v: Vec<f32>,     // (n_tok, kv_dim)
    pub(in crate::model) fused: Vec<f32>, // (n_tok, q_dim + 2 kv_dim) a fused projection's output
    pub(in crate::model) att: Vec<f32>,   // (n_tok, q_dim) attention output
    pub(in crate::model) gate: Vec<f32>,  // (n_tok, d_ff)
    pub(in crate::model) up: Vec<f32>,    // (n_tok, d_ff), or 2 d_ff for a fused gate+up
    pub(in crate::model) proj: Vec<f32>,  // (n_tok, d_model) a block's output before the residual add
    pub(in crate::model) tmp: Vec<f32>,   // one row, for norms in place
    pub(in crate::model) cos: Vec<f32>,   // (n_ropes, n_tok, n_pairs)
    pub(in crate::model) sin: Vec<f32>,   // (n_ropes, n_tok, n_pairs)
    pub(in crate::model) tok_seq: Vec<u32>, // (n_tok) index of each token's chunk in the batch
    pub(in crate::model) tok_pos: Vec<u32>, // (n_tok) position of each token
    pub(in crate::model) attn: AttnScratch,
    pub(in crate::model) moe: MoeScratch,
    sel: Vec<f32>,                         // (n_out, d_model) final-normed rows that want logits
    sel_runs: Vec<PrecisionRun>,           // precision runs over the rows of `sel`
    pub(in crate::model) runs: Vec<PrecisionRun>, // precision runs over the batch's tokens
    pub(in crate::model) mm: MatmulScratch,
}

impl ForwardScratch {
    /// Buffers for sequences of at most `n_ctx` positions.
    pub fn new(n_ctx: usize) -> ForwardScratch {
        ForwardScratch { n_ctx, ..ForwardScratch::default() }
    }
}

pub(in crate::model) fn grow(buf: &mut Vec<f32>, len: usize) {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
}

impl Transformer {
    /// Runs the batch through the model. Keys and values of every token are written to `kv`;
    /// `logits` receives (n_out, n_vocab) rows, one per wanted position, in batch order.
    pub fn forward(&self, pool: &ThreadPool, kv: &mut KvCache, batch: &[SeqChunk<'_>], s: &mut ForwardScratch, logits: &mut Vec<f32>) -> Result<()> {
        let cfg = &self.cfg;
        let (d, q_dim, kv_dim, d_ff) = (cfg.d_model, cfg.q_dim(), cfg.kv_dim(), cfg.d_ff);
        let n_tok: usize = batch.iter().map(|c| c.tokens.len()).sum();
        for chunk in batch {
            if let Some(&id) = chunk.tokens.iter().find(|&&t| t as usize >= cfg.n_vocab) {
                return Err(EngineError::BadToken { id, n_vocab: cfg.n_vocab });
            }
            let end = chunk.start_pos + chunk.tokens.len();
            assert!(chunk.blocks.len() * BLOCK_SIZE >= end, "block table too short for position {end}");
        }
        // Consecutive chunks of equal precision share one matmul call.
        s.runs.clear();
        let mut first_tok = 0;
        for chunk in batch {
            match s.runs.last_mut() {
                Some(run) if run.precision == chunk.precision => run.tokens.end += chunk.tokens.len(),
                _ => s.runs.push(PrecisionRun { precision: chunk.precision, tokens: first_tok..first_tok + chunk.tokens.len() }),
            }
            first_tok += chunk.tokens.len();
        }
        for (buf, width) in [(&mut s.x, d), (&mut s.h, d), (&mut s.q, q_dim), (&mut s.k, kv_dim), (&mut s.v, kv_dim), (&mut s.att, q_dim), (&mut s.gate, d_ff), (&mut s.up, d_ff), (&mut s.proj, d)] {
            grow(buf, n_tok * width);
        }

        // Per-token bookkeeping, embeddings, and the rotary angles each position needs.
        s.tok_seq.clear();
        s.tok_pos.clear();
        for (c_idx, chunk) in batch.iter().enumerate() {
            for (j, &token) in chunk.tokens.iter().enumerate() {
                let i = s.tok_seq.len();
                s.tok_seq.push(c_idx as u32);
                s.tok_pos.push((chunk.start_pos + j) as u32);
                self.embed.row(token, &mut s.x[i * d..(i + 1) * d]);
            }
        }
        let n_ctx = s.n_ctx.max(s.tok_pos.iter().max().map_or(0, |&p| p as usize + 1));
        let n_pairs = self.ropes.first().map_or(0, Rope::n_pairs);
        grow(&mut s.cos, self.ropes.len() * n_tok * n_pairs);
        grow(&mut s.sin, self.ropes.len() * n_tok * n_pairs);
        for (r, rope) in self.ropes.iter().enumerate() {
            for (i, &pos) in s.tok_pos.iter().enumerate() {
                let at = (r * n_tok + i) * n_pairs;
                rope.angles(pos as usize, n_ctx, &mut s.cos[at..at + n_pairs], &mut s.sin[at..at + n_pairs]);
            }
        }

        for (l, block) in self.blocks.iter().enumerate() {
            // x += post_norm(attention(norm(x)))
            block.attn_norm.rows(&s.x[..n_tok * d], &mut s.h[..n_tok * d]);
            block.attn.forward(pool, kv, l, batch, &self.ropes[block.attn.rope], s, n_tok);
            if let Some(norm) = &block.post_attn_norm {
                norm.rows_in_place(&mut s.proj[..n_tok * d], &mut s.tmp);
            }
            add_assign(&mut s.x[..n_tok * d], &s.proj[..n_tok * d]);
            // x += post_norm(ffn(norm(x)))
            block.ffn_norm.rows(&s.x[..n_tok * d], &mut s.h[..n_tok * d]);
            block.ffn.forward(pool, s, n_tok);
            if let Some(norm) = &block.post_ffn_norm {
                norm.rows_in_place(&mut s.proj[..n_tok * d], &mut s.tmp);
            }
            add_assign(&mut s.x[..n_tok * d], &s.proj[..n_tok * d]);
        }

        // logits = head(norm(x)), only for the rows that want them
        s.sel.clear();
        s.sel_runs.clear();
        let mut first = 0;
        for chunk in batch {
            let rows = match chunk.logits {
                Logits::None => 0..0,
                Logits::Last => chunk.tokens.len().saturating_sub(1)..chunk.tokens.len(),
                Logits::From(start) => start.min(chunk.tokens.len())..chunk.tokens.len(),
            };
            for j in rows {
                let i = first + j;
                let at = s.sel.len();
                s.sel.resize(at + d, 0.0);
                self.head.norm.rows(&s.x[i * d..(i + 1) * d], &mut s.sel[at..]);
                let row = at / d;
                match s.sel_runs.last_mut() {
                    Some(run) if run.precision == chunk.precision => run.tokens.end = row + 1,
                    _ => s.sel_runs.push(PrecisionRun { precision: chunk.precision, tokens: row..row + 1 }),
                }
            }
            first += chunk.tokens.len();
        }
        let n_out = s.sel.len() / d;
        logits.resize(n_out * cfg.n_vocab, 0.0);
        if n_out > 0 {
            self.head.logits(pool, &s.sel, logits, &s.sel_runs, &mut s.mm);
        }
        Ok(())
    }
}
