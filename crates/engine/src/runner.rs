//! The serving engine: one OS thread that owns the model's KV cache and runs continuous
//! batching. Every step it asks the scheduler for a plan, advances every running sequence in
//! one batched forward pass (decoders by one token, prompts by a chunk), samples, and sends
//! each sequence's events to its sink. Callers talk to it only through `EngineHandle`; it knows
//! nothing of HTTP.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use herd_kernels::{Precision, ThreadPool};
use herd_tokenizer::StreamDecoder;

use crate::generate::FinishReason;
use crate::kv_cache::{KvCache, KvType};
use crate::model::{ForwardScratch, Logits, Model, SeqChunk};
use crate::prefix_cache::BlockManager;
use crate::sampler::{Sampler, SamplingParams};
use crate::scheduler::{schedule, Running, SchedConfig, Waiting};
use crate::stop::StopMatcher;

#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Most positions (prompt + generated) one sequence may use.
    pub n_ctx: usize,
    /// Most sequences decoding at once.
    pub max_seqs: usize,
    /// Most requests waiting to start; more are refused (`SubmitError::QueueFull`).
    pub max_queue: usize,
    /// Blocks of KV cache shared by all sequences.
    pub kv_blocks: usize,
    /// Most tokens computed per step.
    pub token_budget: usize,
    pub threads: usize,
}

/// One generation request, already tokenized.
#[derive(Clone, Debug)]
pub struct Request {
    pub prompt: Vec<u32>,
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    pub stop: Vec<String>,
    /// With `Some(k)`, every token comes with its log-probability and the k most likely
    /// alternatives (from the model's distribution, before sampling controls).
    pub top_logprobs: Option<usize>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TokenLogprob {
    pub logprob: f32,
    /// The most likely tokens and their log-probabilities, most likely first.
    pub top: Vec<(u32, f32)>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// Prompt tokens whose keys came from the prefix cache.
    pub cached_tokens: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A generated token. `text` is what may now be shown (possibly empty: a stop-string
    /// prefix or half a UTF-8 character is held back); `piece` is the token's own text.
    Token { id: u32, text: String, piece: String, logprob: Option<TokenLogprob> },
    /// The last event of a successful request. `text` is what was held back to the very end
    /// (a possible stop-string prefix, an incomplete character) and is shown now.
    Done { finish: FinishReason, usage: Usage, text: String },
    /// The last event of a failed request.
    Error(String),
}

/// Where a request's events go. `send` returns false, and `is_closed` true, once nobody
/// listens any more: the engine then cancels the sequence and frees its blocks.
pub trait EventSink: Send {
    fn send(&mut self, event: Event) -> bool;
    fn is_closed(&self) -> bool;
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("the queue is full ({0} requests waiting); retry later")]
    QueueFull(usize),
    #[error("the prompt is empty")]
    EmptyPrompt,
    #[error("the prompt ({n_prompt} tokens) plus max_tokens ({max_tokens}) is {} tokens, over the context of {n_ctx}", n_prompt + max_tokens)]
    TooLong { n_prompt: usize, max_tokens: usize, n_ctx: usize },
    #[error("token id {0} is outside the vocabulary")]
    BadToken(u32),
    #[error("{0}")]
    Invalid(String),
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("the engine failed: {0}")]
    Failed(String),
}

/// Counters and gauges the engine keeps for metrics and health.
#[derive(Default)]
pub struct EngineStats {
    pub waiting: AtomicUsize,
    pub running: AtomicUsize,
    pub last_batch_tokens: AtomicUsize,
    pub kv_blocks_in_use: AtomicUsize,
    pub kv_blocks_total: AtomicUsize,
    pub prompt_tokens: AtomicU64,
    pub cached_prompt_tokens: AtomicU64,
    pub generated_tokens: AtomicU64,
    pub steps: AtomicU64,
    pub preemptions: AtomicU64,
    /// Set once when the engine thread fails; every later request is refused with it.
    pub failure: Mutex<Option<String>>,
}

enum Command {
    Submit(Box<Request>, Box<dyn EventSink>),
    Shutdown { grace: Duration, done: Sender<()> },
}

/// The caller's side of the engine. Cheap to clone; every clone talks to the same thread.
#[derive(Clone)]
pub struct EngineHandle {
    tx: Sender<Command>,
    stats: Arc<EngineStats>,
    cfg: Arc<EngineConfig>,
    model: Arc<Model>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
    shutting_down: Arc<AtomicBool>,
}

impl EngineHandle {
    /// Starts the engine thread.
    pub fn start(model: Arc<Model>, cfg: EngineConfig) -> EngineHandle {
        let (tx, rx) = mpsc::channel();
        let stats = Arc::new(EngineStats::default());
        stats.kv_blocks_total.store(cfg.kv_blocks, Ordering::Relaxed);
        let cfg = Arc::new(cfg);
        let thread = {
            let (model, cfg, stats) = (Arc::clone(&model), Arc::clone(&cfg), Arc::clone(&stats));
            std::thread::Builder::new()
                .name("herd-engine".into())
                .spawn(move || Engine::new(model, &cfg, stats).run(rx))
                .expect("spawning the engine thread")
        };
        EngineHandle { tx, stats, cfg, model, thread: Arc::new(Mutex::new(Some(thread))), shutting_down: Arc::new(AtomicBool::new(false)) }
    }

    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// The engine's failure, if it has failed.
    pub fn failure(&self) -> Option<String> {
        self.stats.failure.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Most positions one sequence may use: the configured context, or less when the whole
    /// cache (less the block admission keeps in reserve) is smaller.
    pub fn n_ctx(&self) -> usize {
        self.cfg.n_ctx.min(self.cfg.kv_blocks.saturating_sub(1) * crate::kv_cache::BLOCK_SIZE)
    }

    /// Checks a request against the limits and queues it; its events go to `sink`.
    pub fn submit(&self, req: Request, sink: Box<dyn EventSink>) -> Result<(), SubmitError> {
        if let Some(failure) = self.failure() {
            return Err(SubmitError::Failed(failure));
        }
        if self.shutting_down.load(Ordering::Relaxed) {
            return Err(SubmitError::ShuttingDown);
        }
        if req.prompt.is_empty() {
            return Err(SubmitError::EmptyPrompt);
        }
        let n_vocab = self.model.cfg().n_vocab;
        if let Some(&bad) = req.prompt.iter().find(|&&t| t as usize >= n_vocab) {
            return Err(SubmitError::BadToken(bad));
        }
        req.sampling.validate().map_err(SubmitError::Invalid)?;
        let n_ctx = self.n_ctx();
        if req.prompt.len() + req.max_tokens > n_ctx {
            return Err(SubmitError::TooLong { n_prompt: req.prompt.len(), max_tokens: req.max_tokens, n_ctx });
        }
        // Counted here, not by the engine thread, so a burst cannot overshoot the bound.
        let waiting = self.stats.waiting.fetch_add(1, Ordering::SeqCst);
        if waiting >= self.cfg.max_queue {
            self.stats.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(SubmitError::QueueFull(waiting));
        }
        self.tx.send(Command::Submit(Box::new(req), sink)).map_err(|_| {
            self.stats.waiting.fetch_sub(1, Ordering::SeqCst);
            SubmitError::Failed("the engine thread has stopped".into())
        })
    }

    /// Stops admitting requests, lets the accepted ones (running and queued) finish for up to
    /// `grace`, ends the rest with an error event, and stops the thread. Returns when it has
    /// stopped.
    pub fn shutdown(&self, grace: Duration) {
        self.shutting_down.store(true, Ordering::Relaxed);
        let (done_tx, done_rx) = mpsc::channel();
        if self.tx.send(Command::Shutdown { grace, done: done_tx }).is_ok() {
            let _ = done_rx.recv();
        }
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
    }
}

/// A sequence the engine is working on.
struct Seq {
    id: u64,
    /// The prompt followed by every sampled token.
    tokens: Vec<u32>,
    n_prompt: usize,
    /// Tokens whose keys are in the cache.
    n_computed: usize,
    /// Tokens whose keys came from the prefix cache.
    n_cached: usize,
    blocks: Vec<u32>,
    max_tokens: usize,
    top_logprobs: Option<usize>,
    sampler: Sampler,
    decoder: StreamDecoder,
    stops: StopMatcher,
    sink: Box<dyn EventSink>,
    /// The prompt's full blocks have been offered to the prefix cache.
    registered: bool,
}

impl Seq {
    fn n_generated(&self) -> usize {
        self.tokens.len() - self.n_prompt
    }

    fn usage(&self) -> Usage {
        Usage { prompt_tokens: self.n_prompt, completion_tokens: self.n_generated(), cached_tokens: self.n_cached }
    }
}

struct Engine {
    model: Arc<Model>,
    pool: ThreadPool,
    kv: KvCache,
    blocks: BlockManager,
    scratch: ForwardScratch,
    logits: Vec<f32>,
    sched: SchedConfig,
    stats: Arc<EngineStats>,
    waiting: VecDeque<Seq>,
    running: Vec<Seq>,
    next_id: u64,
    /// While shutting down: when to give up on the sequences still running or queued.
    deadline: Option<(Instant, Sender<()>)>,
}

impl Engine {
    fn new(model: Arc<Model>, cfg: &EngineConfig, stats: Arc<EngineStats>) -> Engine {
        let c = model.cfg();
        let kv = KvCache::new(c.n_layers, c.n_kv_heads, c.head_dim, cfg.kv_blocks, KvType::F16);
        Engine {
            pool: ThreadPool::new(cfg.threads),
            kv,
            blocks: BlockManager::new(cfg.kv_blocks),
            scratch: ForwardScratch::new(cfg.n_ctx),
            logits: Vec::new(),
            sched: SchedConfig { max_seqs: cfg.max_seqs, token_budget: cfg.token_budget },
            stats,
            waiting: VecDeque::new(),
            running: Vec::new(),
            next_id: 0,
            deadline: None,
            model,
        }
    }

    fn run(mut self, rx: Receiver<Command>) {
        loop {
            if !self.receive(&rx) {
                return;
            }
            if let Some((deadline, _)) = &self.deadline {
                if (self.running.is_empty() && self.waiting.is_empty()) || Instant::now() >= *deadline {
                    self.fail_all("the server is shutting down");
                    if let Some((_, done)) = self.deadline.take() {
                        let _ = done.send(());
                    }
                    return;
                }
            }
            let step = catch_unwind(AssertUnwindSafe(|| self.step()));
            if let Err(panic) = step {
                let message = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_else(|| "unknown panic".into());
                *self.stats.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!("internal error: {message}"));
                self.fail_all(&format!("internal engine error: {message}"));
                // Refuse everything still queued in the channel, then stop.
                while let Ok(cmd) = rx.try_recv() {
                    self.refuse(cmd, "the engine failed");
                }
                return;
            }
            self.publish_stats();
        }
    }

    /// Takes commands: waits for one when idle, drains what is there otherwise. False when
    /// the handle is gone or shutdown is complete.
    fn receive(&mut self, rx: &Receiver<Command>) -> bool {
        let idle = self.running.is_empty() && self.waiting.is_empty() && self.deadline.is_none();
        let mut first = if idle {
            match rx.recv() {
                Ok(cmd) => Some(cmd),
                Err(_) => return false,
            }
        } else {
            None
        };
        loop {
            let cmd = match first.take() {
                Some(cmd) => cmd,
                None => match rx.recv_timeout(Duration::ZERO) {
                    Ok(cmd) => cmd,
                    Err(RecvTimeoutError::Timeout) => return true,
                    Err(RecvTimeoutError::Disconnected) => return !(self.running.is_empty() && self.waiting.is_empty()),
                },
            };
            match cmd {
                Command::Submit(req, sink) => self.enqueue(*req, sink),
                // Requests already accepted, queued ones included, keep their place: a drained
                // replica finishes what it took (its load balancer has sent new ones elsewhere
                // since /health said 503), and only what is left at the deadline is ended.
                Command::Shutdown { grace, done } => self.deadline = Some((Instant::now() + grace, done)),
            }
        }
    }

    fn refuse(&mut self, cmd: Command, why: &str) {
        match cmd {
            Command::Submit(_, mut sink) => {
                self.stats.waiting.fetch_sub(1, Ordering::SeqCst);
                sink.send(Event::Error(why.into()));
            }
            Command::Shutdown { done, .. } => {
                let _ = done.send(());
            }
        }
    }

    fn enqueue(&mut self, req: Request, sink: Box<dyn EventSink>) {
        if self.deadline.is_some() {
            self.refuse(Command::Submit(Box::new(req), sink), "the server is shutting down");
            return;
        }
        self.next_id += 1;
        let n_prompt = req.prompt.len();
        self.waiting.push_back(Seq {
            id: self.next_id,
            tokens: req.prompt,
            n_prompt,
            n_computed: 0,
            n_cached: 0,
            blocks: Vec::new(),
            max_tokens: req.max_tokens,
            top_logprobs: req.top_logprobs,
            sampler: Sampler::new(req.sampling),
            decoder: StreamDecoder::continuing(),
            stops: StopMatcher::new(&req.stop),
            sink,
            registered: false,
        });
    }

    /// One scheduling step and one forward pass.
    fn step(&mut self) {
        self.drop_cancelled();
        let running: Vec<Running> = self.running.iter().map(|s| Running { id: s.id, n_tokens: s.tokens.len(), n_computed: s.n_computed, n_blocks: s.blocks.len() }).collect();
        let waiting: Vec<Waiting> = self.waiting.iter().map(|s| Waiting { id: s.id, n_tokens: s.tokens.len(), n_cached: self.blocks.peek_prefix(&s.tokens) * crate::kv_cache::BLOCK_SIZE }).collect();
        let plan = schedule(&self.sched, &running, &waiting, self.blocks.n_available());

        for id in &plan.preempt {
            let idx = self.running.iter().position(|s| s.id == *id).expect("planned ids are running");
            let mut seq = self.running.remove(idx);
            self.blocks.release(&seq.blocks);
            seq.blocks.clear();
            seq.n_computed = 0;
            seq.registered = false;
            self.stats.preemptions.fetch_add(1, Ordering::Relaxed);
            self.stats.waiting.fetch_add(1, Ordering::SeqCst);
            self.waiting.push_front(seq);
        }
        for id in &plan.admit {
            let idx = self.waiting.iter().position(|s| s.id == *id).expect("planned ids are waiting");
            let mut seq = self.waiting.remove(idx).expect("index from position");
            self.stats.waiting.fetch_sub(1, Ordering::SeqCst);
            seq.blocks = self.blocks.acquire_prefix(&seq.tokens);
            seq.n_computed = seq.blocks.len() * crate::kv_cache::BLOCK_SIZE;
            if seq.n_cached == 0 {
                seq.n_cached = seq.n_computed;
            }
            self.running.push(seq);
        }

        // Blocks for the planned positions; a sequence that cannot get them sits this step out.
        let mut work = Vec::with_capacity(plan.work.len());
        for w in &plan.work {
            let Some(seq) = self.running.iter_mut().find(|s| s.id == w.id) else { continue };
            let n_tokens = w.n_tokens.min(seq.tokens.len() - seq.n_computed);
            let mut ok = true;
            while seq.blocks.len() < KvCache::blocks_for(seq.n_computed + n_tokens) {
                match self.blocks.allocate() {
                    Some(b) => seq.blocks.push(b),
                    None => {
                        ok = false;
                        break;
                    }
                }
            }
            if ok && n_tokens > 0 {
                work.push((w.id, n_tokens));
            }
        }
        if work.is_empty() {
            return;
        }

        // The batch: each sequence's tokens at the precision they were first computed with:
        // prompt tokens Bf16, generated ones Int8. A preempted sequence recomputing both sends
        // two chunks, so its cache comes back bit for bit as it was (a token's results depend
        // only on its own precision and position, never on the batch) and its output is what it
        // would have been without the preemption. Logits only for the chunk that reaches the
        // sequence's last known token.
        let mut chunks = Vec::with_capacity(work.len());
        let mut samples = Vec::new();
        for &(id, n) in &work {
            let seq = self.running.iter().find(|s| s.id == id).expect("work is for running sequences");
            let (start, end) = (seq.n_computed, seq.n_computed + n);
            let ends = end == seq.tokens.len();
            let split = seq.n_prompt.clamp(start, end);
            for (range, precision) in [(start..split, Precision::Bf16), (split..end, Precision::Int8)] {
                if range.is_empty() {
                    continue;
                }
                let logits = if ends && range.end == end { Logits::Last } else { Logits::None };
                chunks.push(SeqChunk { blocks: &seq.blocks, start_pos: range.start, tokens: &seq.tokens[range], logits, precision });
            }
            if ends {
                samples.push(id);
            }
        }
        let n_batch_tokens: usize = work.iter().map(|&(_, n)| n).sum();
        let result = self.model.net.forward(&self.pool, &mut self.kv, &chunks, &mut self.scratch, &mut self.logits);
        drop(chunks);
        if let Err(e) = result {
            for &(id, _) in &work {
                if let Some(idx) = self.running.iter().position(|s| s.id == id) {
                    let seq = self.running.remove(idx);
                    self.blocks.release(&seq.blocks);
                    finish_with_error(seq, &e.to_string());
                }
            }
            return;
        }
        self.stats.steps.fetch_add(1, Ordering::Relaxed);
        self.stats.last_batch_tokens.store(n_batch_tokens, Ordering::Relaxed);

        for &(id, n) in &work {
            let seq = self.running.iter_mut().find(|s| s.id == id).expect("still running");
            let prompt_part = seq.n_prompt.saturating_sub(seq.n_computed).min(n);
            self.stats.prompt_tokens.fetch_add(prompt_part as u64, Ordering::Relaxed);
            seq.n_computed += n;
            if !seq.registered && seq.n_computed >= seq.n_prompt {
                self.blocks.register_prompt(&seq.blocks, &seq.tokens[..seq.n_prompt]);
                seq.registered = true;
                self.stats.cached_prompt_tokens.fetch_add(seq.n_cached as u64, Ordering::Relaxed);
            }
        }
        let n_vocab = self.model.cfg().n_vocab;
        for (row, id) in samples.into_iter().enumerate() {
            let logits = &mut self.logits[row * n_vocab..(row + 1) * n_vocab];
            let idx = self.running.iter().position(|s| s.id == id).expect("still running");
            if let Some(finish) = sample_into(&self.model, &mut self.running[idx], logits) {
                let seq = self.running.remove(idx);
                self.stats.generated_tokens.fetch_add(seq.n_generated() as u64, Ordering::Relaxed);
                self.finish(seq, finish);
            }
        }
    }

    fn finish(&mut self, mut seq: Seq, finish: FinishReason) {
        self.blocks.release(&seq.blocks);
        let usage = seq.usage();
        // Length already released everything with the last token; after a stop string, what
        // follows it is never shown.
        let text = match finish {
            FinishReason::EndOfGeneration | FinishReason::ContextFull => {
                let rest = seq.stops.push(&seq.decoder.finish());
                if rest.stopped { rest.emit } else { rest.emit + &seq.stops.finish() }
            }
            _ => String::new(),
        };
        seq.sink.send(Event::Done { finish, usage, text });
    }

    fn drop_cancelled(&mut self) {
        let mut i = 0;
        while i < self.running.len() {
            if self.running[i].sink.is_closed() {
                let seq = self.running.remove(i);
                self.blocks.release(&seq.blocks);
            } else {
                i += 1;
            }
        }
        let before = self.waiting.len();
        self.waiting.retain(|s| !s.sink.is_closed());
        self.stats.waiting.fetch_sub(before - self.waiting.len(), Ordering::SeqCst);
    }

    fn fail_all(&mut self, why: &str) {
        for seq in std::mem::take(&mut self.running) {
            self.blocks.release(&seq.blocks);
            finish_with_error(seq, why);
        }
        for seq in std::mem::take(&mut self.waiting) {
            self.stats.waiting.fetch_sub(1, Ordering::SeqCst);
            finish_with_error(seq, why);
        }
        self.publish_stats();
    }

    fn publish_stats(&self) {
        self.stats.running.store(self.running.len(), Ordering::Relaxed);
        self.stats.kv_blocks_in_use.store(self.blocks.n_in_use(), Ordering::Relaxed);
    }
}

fn finish_with_error(mut seq: Seq, why: &str) {
    seq.sink.send(Event::Error(why.into()));
}

/// Samples the next token of `seq` from `logits`, sends it, and says whether the sequence is
/// finished (and why).
fn sample_into(model: &Model, seq: &mut Seq, logits: &mut [f32]) -> Option<FinishReason> {
    let tokenizer = &model.tokenizer;
    let logprob_view = seq.top_logprobs.map(|k| LogprobView::new(logits, k));
    let token = seq.sampler.sample(logits, &seq.tokens);
    if tokenizer.is_eog(token) {
        return Some(FinishReason::EndOfGeneration);
    }
    seq.tokens.push(token);
    let piece = String::from_utf8_lossy(tokenizer.token_bytes(token)).into_owned();
    let step = seq.stops.push(&seq.decoder.push(tokenizer, token));
    let mut text = step.emit;
    let finish = if step.stopped {
        Some(FinishReason::StopString)
    } else if seq.n_generated() >= seq.max_tokens {
        Some(FinishReason::Length)
    } else {
        None
    };
    if finish.is_some() && !step.stopped {
        let rest = seq.stops.push(&seq.decoder.finish());
        text.push_str(&rest.emit);
        text.push_str(&seq.stops.finish());
    }
    let logprob = logprob_view.map(|v| v.for_token(token));
    if !seq.sink.send(Event::Token { id: token, text, piece, logprob }) {
        return Some(FinishReason::Cancelled);
    }
    finish
}

/// The model's log-probabilities at one position, taken before the sampler changes the logits.
struct LogprobView {
    log_z: f32,
    top: Vec<(u32, f32)>,
    /// Every raw logit: the chosen token is known only after sampling has changed them.
    raw: Vec<f32>,
}

impl LogprobView {
    fn new(logits: &[f32], k: usize) -> LogprobView {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
        let log_z = max + sum.ln() as f32;
        let mut idx: Vec<u32> = (0..logits.len() as u32).collect();
        let k = k.min(idx.len());
        let by_logit = |a: &u32, b: &u32| logits[*b as usize].total_cmp(&logits[*a as usize]).then(a.cmp(b));
        if k > 0 && k < idx.len() {
            idx.select_nth_unstable_by(k - 1, by_logit);
        }
        idx.truncate(k);
        idx.sort_unstable_by(by_logit);
        let top = idx.iter().map(|&i| (i, logits[i as usize] - log_z)).collect();
        LogprobView { log_z, top, raw: logits.to_vec() }
    }

    fn for_token(self, token: u32) -> TokenLogprob {
        TokenLogprob { logprob: self.raw[token as usize] - self.log_z, top: self.top }
    }
}
