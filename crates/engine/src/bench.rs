//! Throughput measurement with llama-bench's meaning: `pp N` reads an N-token prompt (in
//! batches, as a prompt is read); `tg N` generates N tokens one at a time; both start from a
//! context of `depth` tokens already in the cache (llama-bench's `-d`), read untimed before
//! each run. Token ids are random, so the numbers measure the engine, not the text.

use std::time::{Duration, Instant};

use herd_kernels::ThreadPool;

use crate::error::Result;
use crate::model::{Logits, Model};
use crate::sampler::Rng;
use crate::session::Session;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Test {
    /// Prompt processing of n tokens.
    Prompt(usize),
    /// Generation of n tokens.
    Gen(usize),
}

impl Test {
    pub fn n_tokens(self) -> usize {
        match self {
            Test::Prompt(n) | Test::Gen(n) => n,
        }
    }

    /// llama-bench's name for the test: `pp512`, `tg128`.
    pub fn name(self) -> String {
        match self {
            Test::Prompt(n) => format!("pp{n}"),
            Test::Gen(n) => format!("tg{n}"),
        }
    }
}

/// Runs `test` after `depth` tokens of context once untimed (to warm caches and grow buffers),
/// then `reps` times, returning the duration of each timed run.
pub fn run(model: &Model, pool: &ThreadPool, test: Test, depth: usize, reps: usize) -> Result<Vec<Duration>> {
    let n_vocab = model.cfg().n_vocab as u64;
    let mut rng = Rng::new(0x5EED);
    let n = test.n_tokens();
    let mut session = Session::new(model, pool, Some((depth + n).max(1)))?;
    let mut samples = Vec::with_capacity(reps);
    for rep in 0..=reps {
        let mut random = |len: usize| -> Vec<u32> { (0..len).map(|_| (rng.next_u64() % n_vocab) as u32).collect() };
        let (context, tokens) = (random(depth), random(n));
        session.clear();
        if depth > 0 {
            session.eval(&context, Logits::None)?;
        }
        let start = Instant::now();
        match test {
            Test::Prompt(_) => {
                session.eval(&tokens, Logits::Last)?;
            }
            Test::Gen(_) => {
                for &t in &tokens {
                    session.step(t)?;
                }
            }
        }
        if rep > 0 {
            samples.push(start.elapsed());
        }
    }
    Ok(samples)
}
