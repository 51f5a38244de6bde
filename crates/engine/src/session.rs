//! One sequence on one model, for the command line and for perplexity: owns a KV cache sized
//! to the context, feeds prompts in batches and single tokens after, and hands back logits.

use herd_kernels::{Precision, ThreadPool};

use crate::error::{EngineError, Result};
use crate::kv_cache::{KvCache, KvType};
use crate::prefix_cache::BlockManager;
use crate::model::{ForwardScratch, Logits, Model, SeqChunk};
use crate::sampler::Sampler;

/// Positions fed to the model in one forward pass while reading a prompt.
pub const PROMPT_BATCH: usize = 512;

pub struct Session<'m> {
    pub model: &'m Model,
    pool: &'m ThreadPool,
    kv: KvCache,
    block_manager: BlockManager,
    /// The sequence's block table.
    blocks: Vec<u32>,
    /// Every token whose keys and values are in the cache, in order.
    tokens: Vec<u32>,
    n_ctx: usize,
    /// f32 products and an f32 cache throughout (`herd logits --precision f32`).
    exact: bool,
    scratch: ForwardScratch,
    logits: Vec<f32>,
}

impl<'m> Session<'m> {
    /// A session whose context holds `n_ctx` positions (the model's trained length when None).
    pub fn new(model: &'m Model, pool: &'m ThreadPool, n_ctx: Option<usize>) -> Result<Session<'m>> {
        Session::with_precision(model, pool, n_ctx, false)
    }

    /// A session as `new`, computing everything in f32 when `exact` (matrix products and the
    /// KV cache): slower, and what checking a model against a float64 reference needs.
    pub fn with_precision(model: &'m Model, pool: &'m ThreadPool, n_ctx: Option<usize>, exact: bool) -> Result<Session<'m>> {
        let cfg = model.cfg();
        let n_ctx = n_ctx.unwrap_or(cfg.n_ctx_train);
        if n_ctx == 0 {
            return Err(EngineError::Invalid("the context size must be at least 1".into()));
        }
        let n_blocks = KvCache::blocks_for(n_ctx);
        let kv = KvCache::new(cfg.n_layers, cfg.n_kv_heads, cfg.head_dim, n_blocks, if exact { KvType::F32 } else { KvType::F16 });
        let block_manager = BlockManager::new(n_blocks);
        let scratch = ForwardScratch::new(n_ctx);
        // The context is bounded, so its bookkeeping is reserved once: decoding allocates nothing.
        let (blocks, tokens) = (Vec::with_capacity(n_blocks), Vec::with_capacity(n_ctx));
        Ok(Session { model, pool, kv, block_manager, blocks, tokens, n_ctx, exact, scratch, logits: Vec::new() })
    }

    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    /// Tokens in the context so far.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Forgets the context.
    pub fn clear(&mut self) {
        self.block_manager.release(&self.blocks);
        self.blocks.clear();
        self.tokens.clear();
    }

    /// Keeps only the first `n` tokens of the context (the cached keys past them are simply
    /// overwritten later), so a conversation can reuse the prefix it shares with the cache.
    pub fn truncate(&mut self, n: usize) {
        self.tokens.truncate(n);
    }

    /// Samples the next token from the logits of the last `eval`.
    pub fn sample_next(&mut self, sampler: &mut Sampler) -> u32 {
        let n_vocab = self.model.cfg().n_vocab;
        let last = self.logits.len() - n_vocab;
        sampler.sample(&mut self.logits[last..], &self.tokens)
    }

    /// Appends prompt `tokens` to the context, running them through the model in batches, and
    /// returns the logits `want` asks for, one row of n_vocab per wanted position. Prompts get
    /// bf16 matrix products (f32 where the CPU has no bf16 dots): reading a prompt is
    /// compute-bound, and bf16 keeps the logits far closer to the float64 reference than 8-bit
    /// activations do (see ARCHITECTURE.md).
    pub fn eval(&mut self, tokens: &[u32], want: Logits) -> Result<&[f32]> {
        self.run(tokens, want, if self.exact { Precision::Exact } else { Precision::Bf16 })
    }

    /// Appends one generated token and returns the next-token logits. Generation is bound by
    /// memory bandwidth, one token at a time, so it uses the 8-bit integer products.
    pub fn step(&mut self, token: u32) -> Result<&[f32]> {
        self.run(&[token], Logits::Last, if self.exact { Precision::Exact } else { Precision::Int8 })
    }

    fn run(&mut self, tokens: &[u32], want: Logits, precision: Precision) -> Result<&[f32]> {
        let n_total = self.tokens.len() + tokens.len();
        if n_total > self.n_ctx {
            return Err(EngineError::PromptTooLong { n_prompt: n_total, n_ctx: self.n_ctx });
        }
        if tokens.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        while self.blocks.len() < KvCache::blocks_for(n_total) {
            let block = self.block_manager.allocate().expect("the cache has a block for every position of the context");
            self.blocks.push(block);
        }
        let mut rows = Vec::new();
        let n_batches = tokens.len().div_ceil(PROMPT_BATCH);
        for (i, chunk) in tokens.chunks(PROMPT_BATCH).enumerate() {
            let offset = i * PROMPT_BATCH;
            let logits = match want {
                Logits::From(start) if start < offset + chunk.len() => Logits::From(start.saturating_sub(offset)),
                Logits::Last if i + 1 == n_batches => Logits::Last,
                _ => Logits::None,
            };
            let batch = [SeqChunk { blocks: &self.blocks, start_pos: self.tokens.len(), tokens: chunk, logits, precision }];
            self.model.net.forward(self.pool, &mut self.kv, &batch, &mut self.scratch, &mut self.logits)?;
            self.tokens.extend_from_slice(chunk);
            if n_batches > 1 {
                rows.extend_from_slice(&self.logits);
            }
        }
        if n_batches > 1 {
            self.logits = rows;
        }
        Ok(&self.logits)
    }
}
