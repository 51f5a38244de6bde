//! One HTTP request's choices in the engine: submitting them (each with a sink that feeds one
//! channel), then reading their events in arrival order until every choice has ended, the
//! request's deadline passes, or the engine goes quiet. Dropping a `Generation` drops the
//! channel's receiver, so every sink reports closed and the engine cancels what is left.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use herd_engine::generate::FinishReason;
use herd_engine::runner::{EngineHandle, Event, EventSink, Request, TokenLogprob, Usage};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::time::Sleep;

use crate::error::ApiError;
use crate::metrics::Metrics;

/// The engine's side of a choice: its events go into the request's channel, tagged with the
/// choice's index. It reports closed once the request is gone (receiver dropped) or past its
/// deadline, which cancels the sequence in the engine even while nobody polls the HTTP side
/// (a client that stopped reading).
struct ChoiceSink {
    idx: usize,
    tx: UnboundedSender<(usize, Event)>,
    deadline: Instant,
}

impl EventSink for ChoiceSink {
    fn send(&mut self, event: Event) -> bool {
        !self.is_closed() && self.tx.send((self.idx, event)).is_ok()
    }

    fn is_closed(&self) -> bool {
        self.tx.is_closed() || Instant::now() >= self.deadline
    }
}

/// What reading a generation gives next.
#[derive(Debug)]
pub enum Next {
    /// An event of choice `idx`.
    Event(usize, Event),
    /// Every choice has ended (with `Done` or `Error`).
    Finished,
    /// The request's deadline passed.
    TimedOut,
    /// The engine dropped a choice without ending it (its thread is gone).
    Lost,
}

pub struct Generation {
    rx: UnboundedReceiver<(usize, Event)>,
    /// Events read while the later choices were being submitted, given out first.
    early: VecDeque<(usize, Event)>,
    n_choices: usize,
    n_open: usize,
    /// When each choice's last token came (for inter-token latency).
    last_token: Vec<Option<Instant>>,
    arrived: Instant,
    timer: Pin<Box<Sleep>>,
    metrics: Arc<Metrics>,
}

impl Generation {
    /// Submits `n` choices of every request, choice i drawing with seed + i; choice
    /// `p * n + i` is prompt p's i-th. With n > 1 the first choice of each prompt goes
    /// first and the others follow once it has read its prompt, so they find the prompt in
    /// the prefix cache instead of computing it again.
    pub async fn start(engine: &EngineHandle, requests: Vec<Request>, n: usize, arrived: Instant, deadline: Instant, metrics: Arc<Metrics>) -> Result<Generation, ApiError> {
        let (tx, rx) = unbounded_channel();
        let n_choices = requests.len() * n;
        let mut gen = Generation {
            rx,
            early: VecDeque::new(),
            n_choices,
            n_open: n_choices,
            last_token: vec![None; n_choices],
            arrived,
            timer: Box::pin(tokio::time::sleep_until(deadline.into())),
            metrics,
        };
        let submit = |req: &Request, p: usize, i: usize| {
            let mut req = req.clone();
            req.sampling.seed = req.sampling.seed.wrapping_add(i as u64);
            engine.submit(req, Box::new(ChoiceSink { idx: p * n + i, tx: tx.clone(), deadline }))
        };
        for (p, req) in requests.iter().enumerate() {
            submit(req, p, 0)?;
        }
        if n > 1 {
            let mut started = vec![false; requests.len()];
            while started.iter().any(|s| !s) {
                let got = poll_fn(|cx| gen.poll_raw(cx)).await;
                match got {
                    Some((idx, event)) => {
                        if idx % n == 0 {
                            started[idx / n] = true;
                        }
                        gen.early.push_back((idx, event));
                    }
                    None => return Err(ApiError::internal("the engine stopped before the request started")),
                }
            }
            for (p, req) in requests.iter().enumerate() {
                for i in 1..n {
                    submit(req, p, i)?;
                }
            }
        }
        Ok(gen)
    }

    pub fn n_choices(&self) -> usize {
        self.n_choices
    }

    /// The channel's next event; `None` once the deadline passed or the channel closed.
    fn poll_raw(&mut self, cx: &mut Context<'_>) -> Poll<Option<(usize, Event)>> {
        if let Poll::Ready(got) = self.rx.poll_recv(cx) {
            return Poll::Ready(got);
        }
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Next> {
        if self.n_open == 0 {
            return Poll::Ready(Next::Finished);
        }
        let got = match self.early.pop_front() {
            Some(item) => Some(item),
            None => match self.poll_raw(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(got) => got,
            },
        };
        let Some((idx, event)) = got else {
            return Poll::Ready(if self.timer.is_elapsed() { Next::TimedOut } else { Next::Lost });
        };
        match &event {
            Event::Token { .. } => {
                let now = Instant::now();
                match self.last_token[idx].replace(now) {
                    None => self.metrics.observe_ttft(now - self.arrived),
                    Some(last) => self.metrics.observe_itl(now - last),
                }
            }
            Event::Done { .. } | Event::Error(_) => self.n_open = self.n_open.saturating_sub(1),
        }
        Poll::Ready(Next::Event(idx, event))
    }

    pub async fn next(&mut self) -> Next {
        poll_fn(|cx| self.poll_next(cx)).await
    }
}

/// A generated token, for logprobs.
#[derive(Clone, Debug)]
pub struct TokenRecord {
    pub id: u32,
    pub logprob: Option<TokenLogprob>,
    /// Characters of the choice's text shown before this token.
    pub text_offset: usize,
}

/// One choice, complete.
#[derive(Clone, Debug, Default)]
pub struct ChoiceResult {
    pub text: String,
    pub tokens: Vec<TokenRecord>,
    pub finish: Option<FinishReason>,
    pub usage: Usage,
}

/// Reads every choice to its end (non-streaming requests).
pub async fn collect(gen: &mut Generation, timeout_secs: u64) -> Result<Vec<ChoiceResult>, ApiError> {
    let mut choices = vec![ChoiceResult::default(); gen.n_choices()];
    let mut n_chars = vec![0usize; gen.n_choices()];
    loop {
        match gen.next().await {
            Next::Event(idx, Event::Token { id, text, logprob, .. }) => {
                let choice = &mut choices[idx];
                choice.tokens.push(TokenRecord { id, logprob, text_offset: n_chars[idx] });
                n_chars[idx] += text.chars().count();
                choice.text.push_str(&text);
            }
            Next::Event(idx, Event::Done { finish, usage, text }) => {
                choices[idx].text.push_str(&text);
                choices[idx].finish = Some(finish);
                choices[idx].usage = usage;
            }
            Next::Event(_, Event::Error(why)) => return Err(ApiError::internal(why)),
            Next::Finished => return Ok(choices),
            Next::TimedOut => return Err(ApiError::timeout(timeout_secs)),
            Next::Lost => return Err(ApiError::internal("the engine stopped without finishing the request")),
        }
    }
}
