//! Perplexity by llama.cpp's method, so the numbers compare: tokenize the whole text, cut it
//! into chunks of `n_ctx` tokens, run each chunk from an empty context, and score only the
//! second half of each chunk (every scored token has at least n_ctx/2 tokens of context).

use herd_kernels::ops::log_softmax_at;
use herd_kernels::ThreadPool;

use crate::error::{EngineError, Result};
use crate::model::{Logits, Model};
use crate::session::Session;

#[derive(Clone, Debug)]
pub struct ChunkScore {
    /// Perplexity over all chunks so far.
    pub running_ppl: f64,
    pub chunk_idx: usize,
    pub n_chunks: usize,
}

/// Returns the perplexity of `text`, calling `progress` after each chunk.
pub fn perplexity(model: &Model, pool: &ThreadPool, text: &str, n_ctx: usize, progress: &mut dyn FnMut(&ChunkScore)) -> Result<f64> {
    if n_ctx < 4 {
        return Err(EngineError::Invalid(format!("the context for perplexity must be at least 4 tokens, got {n_ctx}")));
    }
    let tokenizer = &model.tokenizer;
    let tokens = tokenizer.encode(text, false, false);
    let n_chunks = tokens.len() / n_ctx;
    if n_chunks == 0 {
        return Err(EngineError::Invalid(format!(
            "the text is {} tokens; perplexity needs at least one chunk of {n_ctx} (try a smaller --ctx)",
            tokens.len()
        )));
    }
    let n_vocab = model.cfg().n_vocab;
    let first = n_ctx / 2;
    let mut session = Session::new(model, pool, Some(n_ctx))?;
    let (mut nll, mut count) = (0.0f64, 0usize);
    for chunk_idx in 0..n_chunks {
        let mut chunk = tokens[chunk_idx * n_ctx..(chunk_idx + 1) * n_ctx].to_vec();
        // As llama.cpp does: a model that expects BOS sees it at the start of every chunk.
        if let (true, Some(bos)) = (tokenizer.adds_bos(), tokenizer.bos_id()) {
            chunk[0] = bos;
        }
        session.clear();
        let logits = session.eval(&chunk, Logits::From(first))?;
        for j in first..n_ctx - 1 {
            let row = &logits[(j - first) * n_vocab..(j - first + 1) * n_vocab];
            nll -= log_softmax_at(row, chunk[j + 1] as usize);
            count += 1;
        }
        progress(&ChunkScore { running_ppl: (nll / count as f64).exp(), chunk_idx, n_chunks });
    }
    Ok((nll / count as f64).exp())
}
