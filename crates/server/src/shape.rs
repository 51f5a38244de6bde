//! From engine results to the wire: finish reasons, usage, logprobs, ids and timestamps,
//! shared by whole responses (`routes`) and stream chunks (`stream`).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use herd_engine::generate::FinishReason;
use herd_engine::runner::{TokenLogprob, Usage};
use herd_tokenizer::Tokenizer;

use crate::generation::TokenRecord;
use crate::wire;

/// OpenAI's `finish_reason`. Cancelled sequences have no reader left to tell.
pub fn finish_reason(finish: FinishReason) -> &'static str {
    match finish {
        FinishReason::EndOfGeneration | FinishReason::StopString | FinishReason::Cancelled => "stop",
        FinishReason::Length | FinishReason::ContextFull => "length",
    }
}

/// The request's usage from its choices' (`n` per prompt, prompt-major): each prompt counts
/// once, as its first choice read it; every choice's completion counts.
pub fn usage<'a>(choices: impl IntoIterator<Item = &'a Usage>, n: usize) -> wire::Usage {
    let (mut prompt, mut cached, mut completion) = (0, 0, 0);
    for (idx, u) in choices.into_iter().enumerate() {
        if idx % n == 0 {
            prompt += u.prompt_tokens;
            cached += u.cached_tokens;
        }
        completion += u.completion_tokens;
    }
    wire::Usage { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion, prompt_tokens_details: wire::PromptTokensDetails { cached_tokens: cached } }
}

fn piece(tokenizer: &Tokenizer, id: u32) -> String {
    String::from_utf8_lossy(tokenizer.token_bytes(id)).into_owned()
}

/// Chat logprobs of some tokens; `None` when the request did not ask for them.
pub fn chat_logprobs(tokenizer: &Tokenizer, tokens: &[TokenRecord]) -> Option<wire::ChatLogprobs> {
    let content = tokens
        .iter()
        .map(|t| {
            let lp = t.logprob.as_ref()?;
            let top = lp.top.iter().map(|&(id, logprob)| wire::ChatTopLogprob { token: piece(tokenizer, id), logprob, bytes: tokenizer.token_bytes(id).to_vec() }).collect();
            Some(wire::ChatTokenLogprob { token: piece(tokenizer, t.id), logprob: lp.logprob, bytes: tokenizer.token_bytes(t.id).to_vec(), top_logprobs: top })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(wire::ChatLogprobs { content })
}

/// Completion logprobs (the legacy parallel lists) of some tokens.
pub fn completion_logprobs(tokenizer: &Tokenizer, tokens: &[TokenRecord]) -> Option<wire::CompletionLogprobs> {
    let mut out = wire::CompletionLogprobs::default();
    for t in tokens {
        let TokenLogprob { logprob, top } = t.logprob.as_ref()?;
        out.tokens.push(piece(tokenizer, t.id));
        out.token_logprobs.push(*logprob);
        // Two ids can spell the same text; the likelier (listed first) keeps the entry.
        let mut alternatives = serde_json::Map::new();
        for &(id, lp) in top {
            alternatives.entry(piece(tokenizer, id)).or_insert(serde_json::json!(lp));
        }
        out.top_logprobs.push(alternatives);
        out.text_offset.push(t.text_offset);
    }
    Some(out)
}

pub fn unix_time() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A fresh random number (std's per-process random hash keys, mixed with a counter), for
/// response ids and the seeds of requests that give none.
pub fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// `chatcmpl-…` / `cmpl-…`.
pub fn response_id(prefix: &str) -> String {
    format!("{prefix}-{:016x}{:08x}", random_u64(), random_u64() as u32)
}
