//! The Llama architecture (Llama 2/3, SmolLM2, Mistral-as-llama): `load` maps the weights,
//! `forward` turns a batch of (sequence, positions, tokens) into logits, writing keys and values
//! into the paged KV cache. It never samples and never sees text.

use std::ops::Range;
use std::sync::Arc;

use herd_gguf::Gguf;
use herd_kernels::matmul::SharedSlice;
use herd_kernels::ops::{add_assign, attend_block, rms_norm, rope, silu_mul, SoftmaxState};
use herd_kernels::{matmul, MatmulScratch, Precision, ThreadPool};

use super::config::Config;
use super::weights::{Weight, WeightLoader};
use crate::error::{EngineError, Result};
use crate::kv_cache::{KvCache, BLOCK_SIZE};

/// Blocks of the cache one attention task covers (see `attention_slice`), and the
/// positions they hold.
const SPAN_BLOCKS: usize = 64;
const SPAN: usize = SPAN_BLOCKS * BLOCK_SIZE;

struct Layer {
    attn_norm: Vec<f32>, // (d_model)
    wq: Weight,          // (q_dim, d_model)
    wk: Weight,          // (kv_dim, d_model)
    wv: Weight,          // (kv_dim, d_model)
    wo: Weight,          // (d_model, q_dim)
    ffn_norm: Vec<f32>,  // (d_model)
    w_gate: Weight,      // (d_ff, d_model)
    w_up: Weight,        // (d_ff, d_model)
    w_down: Weight,      // (d_model, d_ff)
}

pub struct Llama {
    pub cfg: Config,
    tok_embd: Weight,      // (n_vocab, d_model)
    output_norm: Vec<f32>, // (d_model)
    output: Weight,        // (n_vocab, d_model); the embedding itself when tied
    layers: Vec<Layer>,
    inv_freqs: Vec<f64>, // (n_rot / 2)
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

/// Activation buffers, grown to the largest batch seen and reused, so steady-state decoding
/// allocates nothing.
#[derive(Default)]
pub struct ForwardScratch {
    x: Vec<f32>,       // (n_tok, d_model) residual stream
    h: Vec<f32>,       // (n_tok, d_model) normed input of a block
    q: Vec<f32>,       // (n_tok, q_dim)
    k: Vec<f32>,       // (n_tok, kv_dim)
    v: Vec<f32>,       // (n_tok, kv_dim)
    att: Vec<f32>,     // (n_tok, q_dim) attention output
    gate: Vec<f32>,    // (n_tok, d_ff)
    up: Vec<f32>,      // (n_tok, d_ff)
    proj: Vec<f32>,    // (n_tok, d_model) output of wo / w_down before the residual add
    cos: Vec<f32>,     // (n_tok, n_rot / 2)
    sin: Vec<f32>,     // (n_tok, n_rot / 2)
    tok_seq: Vec<u32>, // (n_tok) index of each token's chunk in the batch
    tok_pos: Vec<u32>, // (n_tok) position of each token
    groups: Vec<u32>,  // first token of each attention group, then n_tok (see `attention`)
    spans: Vec<(u32, u32)>, // attention tasks before the split by head: (group, span)
    span_base: Vec<usize>,  // per group, its first record in `partials`
    partials: Vec<f32>, // per (group, span, token, head): max, sum, then head_dim outputs
    att_io: Vec<f32>,  // per thread: one attention task's queries, then its outputs
    sel: Vec<f32>,     // (n_out, d_model) final-normed rows that want logits
    sel_runs: Vec<PrecisionRun>, // precision runs over the rows of `sel`
    runs: Vec<PrecisionRun>,     // precision runs over the batch's tokens
    mm: MatmulScratch,
}

/// Tokens `tokens` of the batch (or rows of `sel`) all use `precision`.
#[derive(Clone, Debug)]
struct PrecisionRun {
    precision: Precision,
    tokens: std::ops::Range<usize>,
}

/// `out (n, w.rows) = x (n, w.cols) · wᵀ`, each run of tokens at its own precision.
fn matmul_runs(pool: &ThreadPool, w: &Weight, x: &[f32], out: &mut [f32], runs: &[PrecisionRun], mm: &mut MatmulScratch) {
    let (rows, cols) = (w.rows, w.cols);
    for run in runs {
        let n = run.tokens.len();
        let (x, out) = (&x[run.tokens.start * cols..run.tokens.end * cols], &mut out[run.tokens.start * rows..run.tokens.end * rows]);
        matmul(pool, w.mat(), x, n, out, mm, run.precision);
    }
}

fn grow(buf: &mut Vec<f32>, len: usize) {
    buf.resize(len, 0.0);
}

impl Llama {
    pub fn load(file: &Arc<Gguf>, cfg: Config) -> Result<Llama> {
        let w = WeightLoader { file };
        let (d, q_dim, kv_dim, d_ff) = (cfg.d_model, cfg.q_dim(), cfg.kv_dim(), cfg.d_ff);
        let tok_embd = w.matrix("token_embd.weight", cfg.n_vocab, d)?;
        let output = if w.has("output.weight") { w.matrix("output.weight", cfg.n_vocab, d)? } else { tok_embd.clone() };
        let layers = (0..cfg.n_layers)
            .map(|l| {
                let name = |t: &str| format!("blk.{l}.{t}.weight");
                Ok(Layer {
                    attn_norm: w.vector(&name("attn_norm"), d)?,
                    wq: w.matrix(&name("attn_q"), q_dim, d)?,
                    wk: w.matrix(&name("attn_k"), kv_dim, d)?,
                    wv: w.matrix(&name("attn_v"), kv_dim, d)?,
                    wo: w.matrix(&name("attn_output"), d, q_dim)?,
                    ffn_norm: w.vector(&name("ffn_norm"), d)?,
                    w_gate: w.matrix(&name("ffn_gate"), d_ff, d)?,
                    w_up: w.matrix(&name("ffn_up"), d_ff, d)?,
                    w_down: w.matrix(&name("ffn_down"), d, d_ff)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let output_norm = w.vector("output_norm.weight", d)?;
        let inv_freqs = cfg.rope.inv_freqs();
        Ok(Llama { cfg, tok_embd, output_norm, output, layers, inv_freqs })
    }

    /// Runs the batch through the model. Keys and values of every token are written to `kv`;
    /// `logits` receives (n_out, n_vocab) rows, one per wanted position, in batch order.
    pub fn forward(&self, pool: &ThreadPool, kv: &mut KvCache, batch: &[SeqChunk<'_>], s: &mut ForwardScratch, logits: &mut Vec<f32>) -> Result<()> {
        let cfg = &self.cfg;
        let (d, q_dim, kv_dim, d_ff, hd) = (cfg.d_model, cfg.q_dim(), cfg.kv_dim(), cfg.d_ff, cfg.head_dim);
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
        let n_pairs = self.inv_freqs.len();
        grow(&mut s.cos, n_tok * n_pairs);
        grow(&mut s.sin, n_tok * n_pairs);
        s.tok_seq.clear();
        s.tok_pos.clear();
        for (c_idx, chunk) in batch.iter().enumerate() {
            for (j, &token) in chunk.tokens.iter().enumerate() {
                let i = s.tok_seq.len();
                let pos = chunk.start_pos + j;
                s.tok_seq.push(c_idx as u32);
                s.tok_pos.push(pos as u32);
                self.tok_embd.row_f32(token as usize, &mut s.x[i * d..(i + 1) * d]);
                for (p, &f) in self.inv_freqs.iter().enumerate() {
                    let (sin, cos) = (pos as f64 * f).sin_cos();
                    s.cos[i * n_pairs + p] = cos as f32;
                    s.sin[i * n_pairs + p] = sin as f32;
                }
            }
        }

        for (l, layer) in self.layers.iter().enumerate() {
            // h = rmsnorm(x) * attn_norm
            for i in 0..n_tok {
                rms_norm(&s.x[i * d..(i + 1) * d], &layer.attn_norm, cfg.rms_eps, &mut s.h[i * d..(i + 1) * d]);
            }
            // q, k, v = h Wqᵀ, h Wkᵀ, h Wvᵀ
            matmul_runs(pool, &layer.wq, &s.h, &mut s.q, &s.runs, &mut s.mm);
            matmul_runs(pool, &layer.wk, &s.h, &mut s.k, &s.runs, &mut s.mm);
            matmul_runs(pool, &layer.wv, &s.h, &mut s.v, &s.runs, &mut s.mm);
            // q, k = rope(q, pos), rope(k, pos); then k, v go into the cache
            for i in 0..n_tok {
                let (cos, sin) = (&s.cos[i * n_pairs..(i + 1) * n_pairs], &s.sin[i * n_pairs..(i + 1) * n_pairs]);
                rope(&mut s.q[i * q_dim..(i + 1) * q_dim], hd, cos, sin, cfg.rope.style);
                rope(&mut s.k[i * kv_dim..(i + 1) * kv_dim], hd, cos, sin, cfg.rope.style);
                let chunk = &batch[s.tok_seq[i] as usize];
                kv.store(l, chunk.blocks, s.tok_pos[i] as usize, &s.k[i * kv_dim..(i + 1) * kv_dim], &s.v[i * kv_dim..(i + 1) * kv_dim]);
            }
            // att = softmax(q kᵀ / sqrt(hd) + causal mask) v, per head
            attention(&self.cfg, pool, kv, l, batch, s, n_tok);
            // x += att Woᵀ
            matmul_runs(pool, &layer.wo, &s.att, &mut s.proj, &s.runs, &mut s.mm);
            add_assign(&mut s.x[..n_tok * d], &s.proj[..n_tok * d]);
            // h = rmsnorm(x) * ffn_norm
            for i in 0..n_tok {
                rms_norm(&s.x[i * d..(i + 1) * d], &layer.ffn_norm, cfg.rms_eps, &mut s.h[i * d..(i + 1) * d]);
            }
            // x += (silu(h Wgᵀ) * h Wuᵀ) Wdᵀ
            matmul_runs(pool, &layer.w_gate, &s.h, &mut s.gate, &s.runs, &mut s.mm);
            matmul_runs(pool, &layer.w_up, &s.h, &mut s.up, &s.runs, &mut s.mm);
            silu_mul(&mut s.gate[..n_tok * d_ff], &s.up[..n_tok * d_ff]);
            matmul_runs(pool, &layer.w_down, &s.gate, &mut s.proj, &s.runs, &mut s.mm);
            add_assign(&mut s.x[..n_tok * d], &s.proj[..n_tok * d]);
        }

        // logits = rmsnorm(x) * output_norm · Woutᵀ, only for the rows that want them
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
                rms_norm(&s.x[i * d..(i + 1) * d], &self.output_norm, cfg.rms_eps, &mut s.sel[at..]);
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
            matmul_runs(pool, &self.output, &s.sel, logits, &s.sel_runs, &mut s.mm);
        }
        Ok(())
    }
}

/// Causal attention of every (token, head) over its sequence's cached positions, with an
/// online softmax over blocks so no score matrix is ever materialised. The tokens go in
/// slices small enough that their partial softmaxes (see `attention_slice`) stay within
/// `PARTIALS_BUDGET` floats, whatever the context: a query's result does not depend on
/// the tokens beside it, so the slicing changes nothing but the memory.
#[allow(clippy::too_many_arguments)]
fn attention(cfg: &Config, pool: &ThreadPool, kv: &KvCache, layer: usize, batch: &[SeqChunk<'_>], s: &mut ForwardScratch, n_tok: usize) {
    const PARTIALS_BUDGET: usize = 1 << 22;
    let max_spans = s.tok_pos[..n_tok].iter().map(|&p| (p as usize + 1).div_ceil(SPAN)).max().unwrap_or(1);
    let per_token = cfg.n_heads * max_spans * (cfg.head_dim + 2);
    let slice = (PARTIALS_BUDGET / per_token).max(1);
    for start in (0..n_tok).step_by(slice) {
        attention_slice(cfg, pool, kv, layer, batch, s, start..(start + slice).min(n_tok));
    }
}

/// Causal attention of the tokens in `toks`, in two passes.
///
/// First, each task takes one KV head's query heads for a few consecutive tokens of one
/// sequence (`MAX_QUERIES` queries at most, gathered into a contiguous buffer) over one
/// span of `SPAN_BLOCKS` blocks of the cache, and walks it block by block, each block
/// serving all the task's queries that see it in one `attend_block`: keys and values come
/// from L2 once for all of them, not once per query. The spans are what let one token's
/// attention (decoding) use every thread on a long context: a token has one task per KV
/// head per span, where three KV heads alone kept one of two threads idle a third of the
/// time (SmolLM2 at 1550 positions: 72 -> 80 generated tokens/s). Each task leaves a
/// partial softmax (max, sum, outputs) per query.
///
/// Then the partials of each query that sees more than one span are merged, span by span
/// in order (a query within one span is finished by its task, which is what merging one
/// span would compute). A query's spans follow from its position alone and each runs the
/// same operations whichever queries share its task, so its result never depends on the
/// rest of the batch.
#[allow(clippy::too_many_arguments)]
fn attention_slice(cfg: &Config, pool: &ThreadPool, kv: &KvCache, layer: usize, batch: &[SeqChunk<'_>], s: &mut ForwardScratch, toks: Range<usize>) {
    const MAX_QUERIES: usize = 32;
    let (hd, q_dim, n_heads) = (cfg.head_dim, cfg.q_dim(), cfg.n_heads);
    let group = n_heads / cfg.n_kv_heads;
    let scale = 1.0 / (hd as f32).sqrt();
    // A task: some tokens, some of one KV head's query heads (all of them unless there are
    // more than MAX_QUERIES), one span.
    let heads_per_task = group.min(MAX_QUERIES);
    let head_parts = group.div_ceil(heads_per_task);
    let parts = cfg.n_kv_heads * head_parts;
    let tokens_per_task = MAX_QUERIES / heads_per_task;
    s.groups.clear();
    for i in toks.clone() {
        let first = s.groups.last().map(|&g| g as usize);
        if first.is_none_or(|g| i - g == tokens_per_task || s.tok_seq[g] != s.tok_seq[i]) {
            s.groups.push(i as u32);
        }
    }
    s.groups.push(toks.end as u32);
    let n_groups = s.groups.len() - 1;
    // Tokens are in position order within a group: its last sees the most.
    let tok_pos = &s.tok_pos;
    let n_ctx = |i: usize| tok_pos[i] as usize + 1;
    s.spans.clear();
    s.span_base.clear();
    let mut records = 0;
    for g in 0..n_groups {
        let (first, end) = (s.groups[g] as usize, s.groups[g + 1] as usize);
        let n_spans = n_ctx(end - 1).div_ceil(SPAN);
        s.span_base.push(records);
        s.spans.extend((0..n_spans).map(|c| (g as u32, c as u32)));
        records += n_spans * (end - first) * n_heads;
    }
    let record = hd + 2;
    if s.partials.len() < records * record {
        s.partials.resize(records * record, 0.0);
    }
    let per_thread = 2 * MAX_QUERIES * hd;
    if s.att_io.len() < pool.n_threads() * per_thread {
        s.att_io.resize(pool.n_threads() * per_thread, 0.0);
    }
    let (q, tok_seq, groups, spans, span_base) = (&s.q, &s.tok_seq, &s.groups, &s.spans, &s.span_base);
    let partials = SharedSlice::new(&mut s.partials[..records * record]);
    let io = SharedSlice::new(&mut s.att_io[..]);
    let att = SharedSlice::new(&mut s.att[..toks.end * q_dim]);
    pool.run(&|t, n_threads| {
        let mut states = [SoftmaxState::EMPTY; MAX_QUERIES];
        let mut n = [0usize; MAX_QUERIES];
        // SAFETY: thread t alone uses its part of `att_io`.
        let (queries, outs) = unsafe { io.range_mut(t * per_thread, per_thread) }.split_at_mut(MAX_QUERIES * hd);
        // Strided, not contiguous: with the causal mask later tokens cost more, and
        // contiguous ranges left one thread with ~3x the other's work on a long prompt.
        for task in (t..spans.len() * parts).step_by(n_threads) {
            let ((g, span), part) = (spans[task / parts], task % parts);
            let (g, span) = (g as usize, span as usize);
            let kv_head = part / head_parts;
            let tokens = groups[g] as usize..groups[g + 1] as usize;
            let first_head = kv_head * group + part % head_parts * heads_per_task;
            let heads = first_head..(first_head + heads_per_task).min((kv_head + 1) * group);
            // Query j of the task is token tokens.start + j / heads.len(), head
            // heads.start + j % heads.len(): in token order, so in order of context too.
            // Those that see nothing of this span come first and are left out.
            let token = |j: usize| tokens.start + j / heads.len();
            let head = |j: usize| heads.start + j % heads.len();
            let n_q = tokens.len() * heads.len();
            let active = (0..n_q).position(|j| n_ctx(token(j)) > span * SPAN).expect("the last token sees every span");
            for j in active..n_q {
                let at = token(j) * q_dim + head(j) * hd;
                queries[j * hd..(j + 1) * hd].copy_from_slice(&q[at..at + hd]);
            }
            outs[active * hd..n_q * hd].fill(0.0);
            states[active..n_q].fill(SoftmaxState::EMPTY);
            let blocks = batch[tok_seq[tokens.start] as usize].blocks;
            let span_end = n_ctx(tokens.end - 1).div_ceil(BLOCK_SIZE).min((span + 1) * SPAN_BLOCKS);
            for (b, &block) in blocks.iter().enumerate().take(span_end).skip(span * SPAN_BLOCKS) {
                let first = (active..n_q).find(|&j| n_ctx(token(j)) > b * BLOCK_SIZE).expect("the last token sees every block");
                for (j, n) in n.iter_mut().enumerate().take(n_q).skip(first) {
                    *n = (n_ctx(token(j)) - b * BLOCK_SIZE).min(BLOCK_SIZE);
                }
                let (keys_t, values) = kv.block(layer, block, kv_head);
                attend_block(&queries[first * hd..n_q * hd], &n[first..n_q], keys_t, values, scale, &mut states[first..n_q], &mut outs[first * hd..n_q * hd]);
            }
            for j in active..n_q {
                let out = &outs[j * hd..(j + 1) * hd];
                if n_ctx(token(j)) <= SPAN {
                    let inv = 1.0 / states[j].sum;
                    // SAFETY: each (token, head) output slice belongs to exactly one task.
                    let dst = unsafe { att.range_mut(token(j) * q_dim + head(j) * hd, hd) };
                    dst.iter_mut().zip(out).for_each(|(d, &o)| *d = o * inv);
                    continue;
                }
                let r = span_base[g] + (span * tokens.len() + token(j) - tokens.start) * n_heads + head(j);
                // SAFETY: each (group, span, token, head) record belongs to exactly one task.
                let dst = unsafe { partials.range_mut(r * record, record) };
                dst[0] = states[j].max;
                dst[1] = states[j].sum;
                dst[2..].copy_from_slice(out);
            }
        }
    });
    if spans.len() == n_groups {
        return;
    }
    let partials: &[f32] = &s.partials[..records * record];
    pool.run(&|t, n_threads| {
        for g in (t..n_groups).step_by(n_threads) {
            let tokens = groups[g] as usize..groups[g + 1] as usize;
            for i in tokens.clone().filter(|&i| n_ctx(i) > SPAN) {
                let n_spans = n_ctx(i).div_ceil(SPAN);
                for h in 0..n_heads {
                    let rec = |c: usize| {
                        let r = span_base[g] + (c * tokens.len() + i - tokens.start) * n_heads + h;
                        &partials[r * record..(r + 1) * record]
                    };
                    let max = (0..n_spans).map(|c| rec(c)[0]).fold(f32::NEG_INFINITY, f32::max);
                    // SAFETY: each (token, head) output slice is written by one thread.
                    let dst = unsafe { att.range_mut(i * q_dim + h * hd, hd) };
                    dst.fill(0.0);
                    let mut sum = 0.0;
                    for c in 0..n_spans {
                        let (r, w) = (rec(c), (rec(c)[0] - max).exp());
                        sum += r[1] * w;
                        dst.iter_mut().zip(&r[2..]).for_each(|(d, &o)| *d += o * w);
                    }
                    let inv = 1.0 / sum;
                    dst.iter_mut().for_each(|d| *d *= inv);
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use herd_kernels::ops::RopeStyle;

    use crate::model::config::RopeConfig;

    fn config(n_heads: usize, n_kv_heads: usize, head_dim: usize) -> Config {
        let rope = RopeConfig { base: 10000.0, n_rot: head_dim, style: RopeStyle::Adjacent, linear_scale: 1.0, freq_factors: None };
        Config { arch: "llama".into(), n_layers: 1, d_model: n_heads * head_dim, d_ff: 1, n_heads, n_kv_heads, head_dim, n_vocab: 1, n_ctx_train: 4096, rms_eps: 1e-5, rope }
    }

    fn uniform(seed: &mut u64) -> f32 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// Attention over the cache equals a plain float64 softmax over the positions each token
    /// sees, for contexts spanning several spans (merged) and one, for two sequences in one
    /// batch, and for more query heads per KV head than one task takes; and a token's output
    /// is bit-identical when it runs alone.
    #[test]
    fn attention_equals_a_plain_softmax_and_ignores_the_batch() {
        for (n_heads, n_kv_heads, hd) in [(6, 2, 16), (66, 2, 8)] {
            let cfg = config(n_heads, n_kv_heads, hd);
            let (q_dim, kv_dim) = (cfg.q_dim(), n_kv_heads * hd);
            let mut seed = 3;
            // Sequence 0 holds 2100 positions (three spans), sequence 1 holds 40.
            let lens = [2100, 40];
            let tables: Vec<Vec<u32>> = {
                let mut next = 0u32;
                lens.iter().map(|&len| (0..KvCache::blocks_for(len)).map(|_| (next, next += 1).0).collect()).collect()
            };
            let mut kv = KvCache::new(1, n_kv_heads, hd, tables.iter().map(Vec::len).sum());
            for (table, &len) in tables.iter().zip(&lens) {
                for pos in 0..len {
                    let k: Vec<f32> = (0..kv_dim).map(|_| uniform(&mut seed)).collect();
                    let v: Vec<f32> = (0..kv_dim).map(|_| uniform(&mut seed)).collect();
                    kv.store(0, table, pos, &k, &v);
                }
            }
            // The batch: the last 70 positions of sequence 0 (those before 2048 see two spans,
            // the others three), then all of sequence 1 (one span).
            let chunks = [(0, 2030..2100), (1, 0..40)];
            let tokens: Vec<(usize, usize)> = chunks.iter().flat_map(|(seq, r)| r.clone().map(move |p| (*seq, p))).collect();
            let q: Vec<f32> = (0..tokens.len() * q_dim).map(|_| uniform(&mut seed)).collect();
            let pool = ThreadPool::new(3);
            let run = |which: &[usize]| -> Vec<f32> {
                let mut s = ForwardScratch::default();
                let batch: Vec<SeqChunk<'_>> = tables.iter().map(|t| SeqChunk { blocks: t, start_pos: 0, tokens: &[], logits: Logits::None, precision: Precision::Exact }).collect();
                for &i in which {
                    s.q.extend_from_slice(&q[i * q_dim..(i + 1) * q_dim]);
                    s.tok_seq.push(tokens[i].0 as u32);
                    s.tok_pos.push(tokens[i].1 as u32);
                }
                s.att = vec![f32::NAN; which.len() * q_dim];
                attention(&cfg, &pool, &kv, 0, &batch, &mut s, which.len());
                s.att
            };
            let all: Vec<usize> = (0..tokens.len()).collect();
            let got = run(&all);
            let scale = 1.0 / (hd as f64).sqrt();
            for (i, &(seq, pos)) in tokens.iter().enumerate() {
                for h in 0..n_heads {
                    let kv_head = h / (n_heads / n_kv_heads);
                    let qh = &q[i * q_dim + h * hd..i * q_dim + (h + 1) * hd];
                    let (mut scores, mut values) = (Vec::new(), Vec::new());
                    for p in 0..=pos {
                        let (keys_t, vals) = kv.block(0, tables[seq][p / BLOCK_SIZE], kv_head);
                        let slot = p % BLOCK_SIZE;
                        scores.push((0..hd).map(|d| f64::from(qh[d]) * f64::from(keys_t[d * BLOCK_SIZE + slot].to_f32())).sum::<f64>() * scale);
                        values.push((0..hd).map(|d| f64::from(vals[slot * hd + d].to_f32())).collect::<Vec<_>>());
                    }
                    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let w: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                    let total: f64 = w.iter().sum();
                    for d in 0..hd {
                        let want = w.iter().zip(&values).map(|(w, v)| w * v[d]).sum::<f64>() / total;
                        let g = f64::from(got[i * q_dim + h * hd + d]);
                        assert!((g - want).abs() < 1e-5, "heads {n_heads}/{n_kv_heads}: seq {seq} pos {pos} head {h} dim {d}: {g} vs {want}");
                    }
                }
            }
            for i in [0, 17, 18, 69, 70, 109] {
                let alone = run(&[i]);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&alone), bits(&got[i * q_dim..(i + 1) * q_dim]), "heads {n_heads}/{n_kv_heads}: token {i} alone");
            }
        }
    }
}
