//! Attention scheduling over the paged KV cache, shared by every family: which (tokens, query
//! heads, span of the cache) each thread takes, the online softmax over 16-position blocks,
//! and the merge of partial softmaxes. The model files never see blocks or spans: they hand
//! over queries (already projected and rotated) and get the attention output back.

use std::ops::Range;

use herd_kernels::matmul::SharedSlice;
use herd_kernels::ops::{attend_block, KeySlots, Scoring, SoftmaxState};
use herd_kernels::ThreadPool;

use super::transformer::SeqChunk;
use crate::kv_cache::{KvCache, BLOCK_SIZE};

/// Blocks of the cache one attention task covers (see `attention_slice`), and the
/// positions they hold.
const SPAN_BLOCKS: usize = 64;
const SPAN: usize = SPAN_BLOCKS * BLOCK_SIZE;

/// One layer's attention as the scheduler needs it.
#[derive(Clone, Copy, Debug)]
pub struct AttnShape {
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    /// A sliding window: a query at position p sees positions `p + 1 - window ..= p` only.
    pub window: Option<usize>,
    pub scoring: Scoring,
}

impl AttnShape {
    fn q_dim(&self) -> usize {
        self.n_heads * self.head_dim
    }

    /// The positions a query at `pos` sees.
    fn seen(&self, pos: usize) -> Range<usize> {
        self.window.map_or(0, |w| (pos + 1).saturating_sub(w))..pos + 1
    }
}

/// The inputs and buffers of one layer's attention over a batch.
pub struct AttnIo<'a> {
    /// (n_tok, q_dim) rotated queries.
    pub q: &'a [f32],
    /// The batch, for each sequence's block table.
    pub batch: &'a [SeqChunk<'a>],
    /// (n_tok) each token's chunk of the batch (tokens of one sequence are consecutive and in
    /// position order).
    pub tok_seq: &'a [u32],
    /// (n_tok) each token's position.
    pub tok_pos: &'a [u32],
    /// (n_tok, q_dim) the output.
    pub att: &'a mut [f32],
    pub scratch: &'a mut AttnScratch,
}

/// The scheduler's own buffers, reused between calls.
#[derive(Default)]
pub struct AttnScratch {
    groups: Vec<u32>,       // first token of each attention group, then n_tok (see `attention_slice`)
    spans: Vec<(u32, u32)>, // attention tasks before the split by head: (group, span)
    span_base: Vec<usize>,  // per group, its first record in `partials`
    span_first: Vec<usize>, // per group, its first span
    partials: Vec<f32>,     // per (group, span, token, head): max, sum, then head_dim outputs
    att_io: Vec<f32>,       // per thread: one attention task's queries, then its outputs
}

/// Causal attention of every (token, head) over its sequence's cached positions (within its
/// window), with an online softmax over blocks so no score matrix is ever materialised. The
/// tokens go in slices small enough that their partial softmaxes (see `attention_slice`) stay
/// within `PARTIALS_BUDGET` floats, whatever the context: a query's result does not depend on
/// the tokens beside it, so the slicing changes nothing but the memory.
pub fn attention(shape: &AttnShape, pool: &ThreadPool, kv: &KvCache, layer: usize, io: &mut AttnIo<'_>) {
    const PARTIALS_BUDGET: usize = 1 << 22;
    let n_tok = io.tok_pos.len();
    let max_spans = io.tok_pos.iter().map(|&p| shape.seen(p as usize)).map(|r| (r.end - 1) / SPAN - r.start / SPAN + 1).max().unwrap_or(1);
    let per_token = shape.n_heads * max_spans * (shape.head_dim + 2);
    let slice = (PARTIALS_BUDGET / per_token).max(1);
    for start in (0..n_tok).step_by(slice) {
        attention_slice(shape, pool, kv, layer, io, start..(start + slice).min(n_tok));
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
///
/// The queries a span or block serves are consecutive: both ends of a query's window rise
/// with its position, so those before them have not reached it yet... or, with a sliding
/// window, those after them have already left it.
fn attention_slice(shape: &AttnShape, pool: &ThreadPool, kv: &KvCache, layer: usize, io: &mut AttnIo<'_>, toks: Range<usize>) {
    const MAX_QUERIES: usize = 32;
    let (hd, q_dim, n_heads) = (shape.head_dim, shape.q_dim(), shape.n_heads);
    let group = n_heads / shape.n_kv_heads;
    // A task: some tokens, some of one KV head's query heads (all of them unless there are
    // more than MAX_QUERIES), one span.
    let heads_per_task = group.min(MAX_QUERIES);
    let head_parts = group.div_ceil(heads_per_task);
    let parts = shape.n_kv_heads * head_parts;
    let tokens_per_task = MAX_QUERIES / heads_per_task;
    let (tok_seq, tok_pos) = (io.tok_seq, io.tok_pos);
    let s = &mut *io.scratch;
    s.groups.clear();
    for i in toks.clone() {
        let first = s.groups.last().map(|&g| g as usize);
        if first.is_none_or(|g| i - g == tokens_per_task || tok_seq[g] != tok_seq[i]) {
            s.groups.push(i as u32);
        }
    }
    s.groups.push(toks.end as u32);
    let n_groups = s.groups.len() - 1;
    let seen = |i: usize| shape.seen(tok_pos[i] as usize);
    let spans_of = |i: usize| {
        let r = seen(i);
        r.start / SPAN..=(r.end - 1) / SPAN
    };
    s.spans.clear();
    s.span_base.clear();
    s.span_first.clear();
    let mut records = 0;
    for g in 0..n_groups {
        let (first, end) = (s.groups[g] as usize, s.groups[g + 1] as usize);
        let (c0, c1) = (*spans_of(first).start(), *spans_of(end - 1).end());
        s.span_base.push(records);
        s.span_first.push(c0);
        s.spans.extend((c0..=c1).map(|c| (g as u32, c as u32)));
        records += (c1 + 1 - c0) * (end - first) * n_heads;
    }
    let record = hd + 2;
    if s.partials.len() < records * record {
        s.partials.resize(records * record, 0.0);
    }
    let per_thread = 2 * MAX_QUERIES * hd;
    if s.att_io.len() < pool.n_threads() * per_thread {
        s.att_io.resize(pool.n_threads() * per_thread, 0.0);
    }
    let (q, batch, groups, spans, span_base, span_first) = (io.q, io.batch, &s.groups, &s.spans, &s.span_base, &s.span_first);
    let partials = SharedSlice::new(&mut s.partials[..records * record]);
    let task_io = SharedSlice::new(&mut s.att_io[..]);
    let att = SharedSlice::new(&mut io.att[..toks.end * q_dim]);
    pool.run(&|t, n_threads| {
        let mut states = [SoftmaxState::EMPTY; MAX_QUERIES];
        let mut slots = [KeySlots::default(); MAX_QUERIES];
        // SAFETY: thread t alone uses its part of `att_io`.
        let (queries, outs) = unsafe { task_io.range_mut(t * per_thread, per_thread) }.split_at_mut(MAX_QUERIES * hd);
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
            let token = |j: usize| tokens.start + j / heads.len();
            let head = |j: usize| heads.start + j % heads.len();
            let n_q = tokens.len() * heads.len();
            let sees = |j: usize, range: Range<usize>| {
                let r = seen(token(j));
                r.start < range.end && range.start < r.end
            };
            let span_pos = span * SPAN..(span + 1) * SPAN;
            let Some(a) = (0..n_q).position(|j| sees(j, span_pos.clone())) else { continue };
            let b = (a..n_q).find(|&j| !sees(j, span_pos.clone())).unwrap_or(n_q);
            for j in a..b {
                let at = token(j) * q_dim + head(j) * hd;
                queries[j * hd..(j + 1) * hd].copy_from_slice(&q[at..at + hd]);
            }
            outs[a * hd..b * hd].fill(0.0);
            states[a..b].fill(SoftmaxState::EMPTY);
            let table = batch[tok_seq[tokens.start] as usize].blocks;
            let first_block = (seen(token(a)).start / BLOCK_SIZE).max(span * SPAN_BLOCKS);
            let end_block = seen(token(b - 1)).end.div_ceil(BLOCK_SIZE).min((span + 1) * SPAN_BLOCKS);
            for (bk, &block) in table.iter().enumerate().take(end_block).skip(first_block) {
                let block_pos = bk * BLOCK_SIZE..(bk + 1) * BLOCK_SIZE;
                let Some(first) = (a..b).find(|&j| sees(j, block_pos.clone())) else { continue };
                let last = (first..b).find(|&j| !sees(j, block_pos.clone())).unwrap_or(b);
                for (j, s) in slots.iter_mut().enumerate().take(last).skip(first) {
                    let r = seen(token(j));
                    *s = KeySlots { lo: r.start.saturating_sub(block_pos.start), hi: (r.end - block_pos.start).min(BLOCK_SIZE) };
                }
                attend_block(&queries[first * hd..last * hd], &slots[first..last], kv.block(layer, block, kv_head), shape.scoring, &mut states[first..last], &mut outs[first * hd..last * hd]);
            }
            for j in a..b {
                let out = &outs[j * hd..(j + 1) * hd];
                let own = spans_of(token(j));
                if own.start() == own.end() {
                    let inv = 1.0 / states[j].sum;
                    // SAFETY: each (token, head) output slice belongs to exactly one task.
                    let dst = unsafe { att.range_mut(token(j) * q_dim + head(j) * hd, hd) };
                    dst.iter_mut().zip(out).for_each(|(d, &o)| *d = o * inv);
                    continue;
                }
                let r = span_base[g] + ((span - span_first[g]) * tokens.len() + token(j) - tokens.start) * n_heads + head(j);
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
            for i in tokens.clone() {
                let own = spans_of(i);
                if own.start() == own.end() {
                    continue;
                }
                for h in 0..n_heads {
                    let rec = |c: usize| {
                        let r = span_base[g] + ((c - span_first[g]) * tokens.len() + i - tokens.start) * n_heads + h;
                        &partials[r * record..(r + 1) * record]
                    };
                    let max = own.clone().map(|c| rec(c)[0]).fold(f32::NEG_INFINITY, f32::max);
                    // SAFETY: each (token, head) output slice is written by one thread.
                    let dst = unsafe { att.range_mut(i * q_dim + h * hd, hd) };
                    dst.fill(0.0);
                    let mut sum = 0.0;
                    for c in own.clone() {
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
    use herd_kernels::ops::KvBlock;
    use herd_kernels::Precision;

    use crate::kv_cache::KvType;
    use crate::model::transformer::Logits;

    fn uniform(seed: &mut u64) -> f32 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// Attention over the cache equals a plain float64 softmax over the positions each token
    /// sees, for contexts spanning several spans (merged) and one, for two sequences in one
    /// batch, for more query heads per KV head than one task takes, and with sliding windows
    /// (within a block, across a span boundary, wider than the context) and a soft-cap; and a
    /// token's output is bit-identical when it runs alone.
    #[test]
    fn attention_equals_a_plain_softmax_and_ignores_the_batch() {
        for (n_heads, n_kv_heads, hd, window, softcap) in [(6, 2, 16, None, None), (66, 2, 8, None, None), (6, 2, 16, Some(1100), Some(3.0)), (4, 4, 8, Some(13), None), (4, 2, 8, Some(5000), None)] {
            let shape = AttnShape { n_heads, n_kv_heads, head_dim: hd, window, scoring: Scoring { scale: 1.0 / (hd as f32).sqrt(), softcap } };
            let (q_dim, kv_dim) = (n_heads * hd, n_kv_heads * hd);
            let mut seed = 3;
            // Sequence 0 holds 2100 positions (three spans), sequence 1 holds 40.
            let lens = [2100, 40];
            let tables: Vec<Vec<u32>> = {
                let mut next = 0u32;
                lens.iter().map(|&len| (0..KvCache::blocks_for(len)).map(|_| (next, next += 1).0).collect()).collect()
            };
            let mut kv = KvCache::new(1, n_kv_heads, hd, tables.iter().map(Vec::len).sum(), KvType::F16);
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
                let batch: Vec<SeqChunk<'_>> = tables.iter().map(|t| SeqChunk { blocks: t, start_pos: 0, tokens: &[], logits: Logits::None, precision: Precision::Exact }).collect();
                let (mut qs, mut tok_seq, mut tok_pos) = (Vec::new(), Vec::new(), Vec::new());
                for &i in which {
                    qs.extend_from_slice(&q[i * q_dim..(i + 1) * q_dim]);
                    tok_seq.push(tokens[i].0 as u32);
                    tok_pos.push(tokens[i].1 as u32);
                }
                let mut att = vec![f32::NAN; which.len() * q_dim];
                let mut scratch = AttnScratch::default();
                attention(&shape, &pool, &kv, 0, &mut AttnIo { q: &qs, batch: &batch, tok_seq: &tok_seq, tok_pos: &tok_pos, att: &mut att, scratch: &mut scratch });
                att
            };
            let all: Vec<usize> = (0..tokens.len()).collect();
            let got = run(&all);
            let scale = 1.0 / (hd as f64).sqrt();
            let f16s = |b: KvBlock<'_>| match b {
                KvBlock::F16 { keys_t, values } => (keys_t.iter().map(|x| x.to_f32()).collect::<Vec<_>>(), values.iter().map(|x| x.to_f32()).collect::<Vec<_>>()),
                KvBlock::F32 { .. } => unreachable!("an f16 cache"),
            };
            for (i, &(seq, pos)) in tokens.iter().enumerate() {
                for h in 0..n_heads {
                    let kv_head = h / (n_heads / n_kv_heads);
                    let qh = &q[i * q_dim + h * hd..i * q_dim + (h + 1) * hd];
                    let (mut scores, mut values) = (Vec::new(), Vec::new());
                    for p in window.map_or(0, |w| (pos + 1).saturating_sub(w))..=pos {
                        let (keys_t, vals) = f16s(kv.block(0, tables[seq][p / BLOCK_SIZE], kv_head));
                        let slot = p % BLOCK_SIZE;
                        let score = (0..hd).map(|d| f64::from(qh[d]) * f64::from(keys_t[d * BLOCK_SIZE + slot])).sum::<f64>() * scale;
                        scores.push(softcap.map_or(score, |c| f64::from(c) * (score / f64::from(c)).tanh()));
                        values.push((0..hd).map(|d| f64::from(vals[slot * hd + d])).collect::<Vec<_>>());
                    }
                    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let w: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                    let total: f64 = w.iter().sum();
                    for d in 0..hd {
                        let want = w.iter().zip(&values).map(|(w, v)| w * v[d]).sum::<f64>() / total;
                        let g = f64::from(got[i * q_dim + h * hd + d]);
                        assert!((g - want).abs() < 1e-5, "heads {n_heads}/{n_kv_heads} window {window:?}: seq {seq} pos {pos} head {h} dim {d}: {g} vs {want}");
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
