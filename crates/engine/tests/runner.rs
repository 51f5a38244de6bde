//! The serving engine on the default model: continuous batching gives every request exactly
//! what it would get alone (batch invariance), even when KV pressure preempts it, prefix
//! caching reuses prompts, and cancelled or finished requests give back every KV block.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;

use herd_engine::generate::FinishReason;
use herd_engine::runner::{EngineConfig, EngineHandle, Event, EventSink, Request, SubmitError};
use herd_engine::sampler::SamplingParams;
use herd_engine::Model;

struct ChannelSink {
    tx: Sender<Event>,
    closed: Arc<AtomicBool>,
}

impl EventSink for ChannelSink {
    fn send(&mut self, event: Event) -> bool {
        !self.closed.load(Ordering::Relaxed) && self.tx.send(event).is_ok()
    }
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }
}

fn engine(max_seqs: usize) -> Option<EngineHandle> {
    engine_with(max_seqs, 1024, 1024)
}

fn engine_with(max_seqs: usize, n_ctx: usize, kv_blocks: usize) -> Option<EngineHandle> {
    let Some(path) = std::env::var_os("HERD_TEST_MODEL") else {
        eprintln!("skipped: HERD_TEST_MODEL is not set (scripts/test sets it)");
        return None;
    };
    let model = Arc::new(Model::load(&PathBuf::from(path)).unwrap());
    let cfg = EngineConfig { n_ctx, max_seqs, max_queue: 64, kv_blocks, token_budget: 64, threads: 2 };
    Some(EngineHandle::start(model, cfg))
}

fn submit(engine: &EngineHandle, req: Request) -> (Receiver<Event>, Arc<AtomicBool>) {
    let (tx, rx) = channel();
    let closed = Arc::new(AtomicBool::new(false));
    engine.submit(req, Box::new(ChannelSink { tx, closed: Arc::clone(&closed) })).unwrap();
    (rx, closed)
}

/// Collects a request's text and finish reason.
fn collect(rx: &Receiver<Event>) -> (String, FinishReason, usize) {
    let mut text = String::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(300)).expect("the engine answers") {
            Event::Token { text: t, .. } => text.push_str(&t),
            Event::Done { finish, usage, text: tail } => return (text + &tail, finish, usage.cached_tokens),
            Event::Error(e) => panic!("request failed: {e}"),
        }
    }
}

fn request(engine: &EngineHandle, prompt: &str, seed: u64, max_tokens: usize) -> Request {
    let tokenizer = &engine.model().tokenizer;
    Request {
        prompt: tokenizer.encode(prompt, true, true),
        max_tokens,
        sampling: SamplingParams { temperature: 0.8, seed, ..Default::default() },
        stop: vec![],
        top_logprobs: None,
    }
}

/// The engine publishes its gauges after the step that sent the last event, so give it a moment.
fn assert_blocks_return(engine: &EngineHandle) {
    for _ in 0..100 {
        if engine.stats().kv_blocks_in_use.load(Ordering::Relaxed) == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{} KV blocks still in use", engine.stats().kv_blocks_in_use.load(Ordering::Relaxed));
}

const PROMPTS: [&str; 4] = [
    "<|im_start|>user\nWhat is a GPU?<|im_end|>\n<|im_start|>assistant\n",
    "The history of the Roman empire",
    "<|im_start|>user\nWrite a haiku about rust.<|im_end|>\n<|im_start|>assistant\n",
    "def quicksort(xs):",
];

#[test]
fn outputs_do_not_depend_on_the_batch() {
    let Some(engine) = engine(16) else { return };
    let reqs: Vec<Request> = (0..16).map(|i| request(&engine, PROMPTS[i % 4], i as u64, 24)).collect();
    let alone: Vec<String> = reqs.iter().take(5).map(|r| collect(&submit(&engine, r.clone()).0).0).collect();
    let receivers: Vec<_> = reqs.iter().map(|r| submit(&engine, r.clone()).0).collect();
    let together: Vec<String> = receivers.iter().map(|rx| collect(rx).0).collect();
    for (i, text) in alone.iter().enumerate() {
        assert_eq!(&together[i], text, "request {i} alone vs in a batch of 16");
    }
    assert_blocks_return(&engine);
    engine.shutdown(Duration::from_secs(5));
}

/// With too few KV blocks for everyone, sequences are preempted and recomputed later, each token
/// at the precision it first had: the outputs are still exactly those of each request alone.
#[test]
fn preempted_requests_give_the_same_outputs() {
    let Some(engine) = engine_with(8, 128, 12) else { return };
    let reqs: Vec<Request> = (0..8).map(|i| request(&engine, PROMPTS[i % 4], 100 + i as u64, 40)).collect();
    let alone: Vec<String> = reqs.iter().map(|r| collect(&submit(&engine, r.clone()).0).0).collect();
    let receivers: Vec<_> = reqs.iter().map(|r| submit(&engine, r.clone()).0).collect();
    let together: Vec<String> = receivers.iter().map(|rx| collect(rx).0).collect();
    assert!(engine.stats().preemptions.load(Ordering::Relaxed) > 0, "the KV budget forced no preemption");
    for (i, text) in alone.iter().enumerate() {
        assert_eq!(&together[i], text, "request {i} alone vs preempted among 8");
    }
    assert_blocks_return(&engine);
    engine.shutdown(Duration::from_secs(5));
}

#[test]
fn repeated_prompts_hit_the_prefix_cache_with_the_same_result() {
    let Some(engine) = engine(4) else { return };
    let long = format!("<|im_start|>system\n{}<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", "You are terse. ".repeat(20));
    let req = Request { sampling: SamplingParams { temperature: 0.0, ..Default::default() }, ..request(&engine, &long, 0, 12) };
    let (first, _, cached_first) = collect(&submit(&engine, req.clone()).0);
    let (second, _, cached_second) = collect(&submit(&engine, req).0);
    assert_eq!(cached_first, 0);
    assert!(cached_second >= 64, "the second request reused {cached_second} prompt tokens");
    assert_eq!(first, second);
    engine.shutdown(Duration::from_secs(5));
}

#[test]
fn cancelled_requests_free_their_blocks() {
    let Some(engine) = engine(4) else { return };
    let (rx, closed) = submit(&engine, request(&engine, PROMPTS[1], 1, 500));
    // Wait for generation to start, then hang up.
    assert!(matches!(rx.recv_timeout(Duration::from_secs(60)).unwrap(), Event::Token { .. }));
    closed.store(true, Ordering::Relaxed);
    let other = collect(&submit(&engine, request(&engine, PROMPTS[0], 2, 4)).0);
    assert_eq!(other.1, FinishReason::Length);
    assert_blocks_return(&engine);
    engine.shutdown(Duration::from_secs(5));
}

#[test]
fn limits_are_enforced_at_submission() {
    let Some(engine) = engine(2) else { return };
    let tokenizer = &engine.model().tokenizer;
    let long = Request { max_tokens: 1000, ..request(&engine, &"word ".repeat(100), 0, 0) };
    let n_prompt = long.prompt.len();
    let (tx, _rx) = channel();
    let sink = || Box::new(ChannelSink { tx: tx.clone(), closed: Arc::new(AtomicBool::new(false)) });
    assert_eq!(engine.submit(long, sink()), Err(SubmitError::TooLong { n_prompt, max_tokens: 1000, n_ctx: 1024 }));
    let empty = Request { prompt: vec![], ..request(&engine, "x", 0, 1) };
    assert_eq!(engine.submit(empty, sink()), Err(SubmitError::EmptyPrompt));
    let bad = Request { prompt: vec![tokenizer.n_vocab() as u32], ..request(&engine, "x", 0, 1) };
    assert!(matches!(engine.submit(bad, sink()), Err(SubmitError::BadToken(_))));
    engine.shutdown(Duration::from_secs(5));
    assert_eq!(engine.submit(request(&engine, "x", 0, 1), sink()), Err(SubmitError::ShuttingDown));
}

/// Batch invariance holds for every family, on the tiny fixtures of ../shared/testdata/arch:
/// sliding windows and soft-caps (Gemma), q/k norms, fused projections and LongRoPE (Phi-3),
/// and experts (Mixtral, Qwen 3 MoE), where a token's output must not depend on which other
/// tokens chose the same experts.
#[test]
fn every_family_is_batch_invariant() {
    let Some(dir) = common::testdata("arch") else { return };
    for family in ["mixtral", "qwen2", "qwen3moe", "gemma2", "gemma3", "phi3-longrope"] {
        let model = Arc::new(Model::load(&dir.join(family).join("model-f16.gguf")).unwrap());
        let expected: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join(family).join("expected.json")).unwrap()).unwrap();
        let sequence: Vec<u32> = expected["sequences"][1].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        let engine = EngineHandle::start(model, EngineConfig { n_ctx: 512, max_seqs: 8, max_queue: 16, kv_blocks: 256, token_budget: 64, threads: 2 });
        let reqs: Vec<Request> = (0..8)
            .map(|i| Request {
                prompt: sequence[i..i + 12 + 3 * i].to_vec(),
                max_tokens: 24,
                sampling: SamplingParams { temperature: 0.8, seed: i as u64, ..Default::default() },
                stop: vec![],
                top_logprobs: None,
            })
            .collect();
        let alone: Vec<String> = reqs.iter().map(|r| collect(&submit(&engine, r.clone()).0).0).collect();
        let receivers: Vec<_> = reqs.iter().map(|r| submit(&engine, r.clone()).0).collect();
        for (i, rx) in receivers.iter().enumerate() {
            assert_eq!(collect(rx).0, alone[i], "{family}: request {i} alone vs in a batch of 8");
        }
        assert_blocks_return(&engine);
        engine.shutdown(Duration::from_secs(5));
    }
}
