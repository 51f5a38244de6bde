//! The generation loop shared by `herd run` and `herd chat`: read the prompt, then sample,
//! decode and stream one token at a time until an end-of-generation token, a stop string, the
//! token limit, the end of the context, or the caller says stop.

use std::time::{Duration, Instant};

use herd_tokenizer::StreamDecoder;

use crate::error::Result;
use crate::model::Logits;
use crate::sampler::{Sampler, SamplingParams};
use crate::session::Session;
use crate::stop::StopMatcher;

#[derive(Clone, Debug, Default)]
pub struct GenerateParams {
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    pub stop: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// The model produced an end-of-generation token.
    EndOfGeneration,
    /// A stop string matched.
    StopString,
    /// `max_tokens` were generated.
    Length,
    /// The context is full.
    ContextFull,
    /// The caller asked to stop.
    Cancelled,
}

#[derive(Clone, Debug)]
pub struct GenerateStats {
    pub n_prompt: usize,
    pub n_generated: usize,
    pub prompt_time: Duration,
    pub gen_time: Duration,
    pub finish: FinishReason,
}

impl GenerateStats {
    pub fn prompt_tokens_per_sec(&self) -> f64 {
        self.n_prompt as f64 / self.prompt_time.as_secs_f64().max(1e-9)
    }

    /// Generation speed, counting the forward passes after the first token.
    pub fn gen_tokens_per_sec(&self) -> f64 {
        self.n_generated.saturating_sub(1) as f64 / self.gen_time.as_secs_f64().max(1e-9)
    }
}

/// Appends `prompt` to the session and generates after it, calling `on_text` with each piece
/// of text as it becomes final. `on_text` returns false to stop early.
pub fn generate(session: &mut Session<'_>, prompt: &[u32], params: &GenerateParams, on_text: &mut dyn FnMut(&str) -> bool) -> Result<GenerateStats> {
    let tokenizer = &session.model.tokenizer;
    let start = Instant::now();
    session.eval(prompt, Logits::Last)?;
    let prompt_time = start.elapsed();

    let mut sampler = Sampler::new(params.sampling.clone());
    let mut decoder = StreamDecoder::continuing();
    let mut stops = StopMatcher::new(&params.stop);
    let gen_start = Instant::now();
    let mut n_generated = 0;
    let mut finish = FinishReason::Length;
    while n_generated < params.max_tokens {
        let token = session.sample_next(&mut sampler);
        n_generated += 1;
        if tokenizer.is_eog(token) {
            finish = FinishReason::EndOfGeneration;
            break;
        }
        let step = stops.push(&decoder.push(tokenizer, token));
        let keep_going = on_text(&step.emit);
        if step.stopped {
            finish = FinishReason::StopString;
            break;
        }
        if !keep_going {
            finish = FinishReason::Cancelled;
            break;
        }
        if n_generated == params.max_tokens {
            break;
        }
        if session.tokens().len() == session.n_ctx() {
            finish = FinishReason::ContextFull;
            break;
        }
        session.step(token)?;
    }
    if finish != FinishReason::StopString {
        let rest = decoder.finish();
        let tail = stops.push(&rest);
        on_text(&(tail.emit + &stops.finish()));
    }
    Ok(GenerateStats { n_prompt: prompt.len(), n_generated, prompt_time, gen_time: gen_start.elapsed(), finish })
}
