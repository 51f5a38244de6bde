//! Streaming responses: a generation's events as server-sent events (`data: {chunk}` lines,
//! ending with `data: [DONE]`), in OpenAI's chunk shapes for chat and for completions. The
//! body is an `http_body::Body` polled by hyper, so a client that disconnects drops it, which
//! drops the generation and cancels its sequences. An error after the headers went out ends
//! the stream with `data: {"error": ...}` and no `[DONE]`.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use bytes::Bytes;
use http_body::Frame;
use herd_engine::runner::{EngineHandle, Event, Usage};
use serde::Serialize;

use crate::error::ApiError;
use crate::generation::{Generation, Next, TokenRecord};
use crate::metrics::{Outcome, Tracker};
use crate::shape;
use crate::wire::{ChatChunk, ChatChunkChoice, CompletionChoice, CompletionChunk, Delta};

/// Which API's chunks to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    Chat,
    Completions,
}

/// What a stream says about itself in every chunk.
pub struct StreamHead {
    pub api: Api,
    pub id: String,
    pub created: u64,
    pub model: String,
    /// Choices per prompt.
    pub n: usize,
    pub include_usage: bool,
    pub logprobs: bool,
    pub timeout_secs: u64,
}

/// Bytes gathered into one frame at most, when many events are ready at once.
const MAX_FRAME_BYTES: usize = 64 << 10;

struct SseBody {
    gen: Generation,
    head: StreamHead,
    engine: EngineHandle,
    usages: Vec<Usage>,
    /// Characters of each choice's text sent so far (completions' `text_offset`).
    n_chars: Vec<usize>,
    started: bool,
    closed: bool,
    tracker: Tracker,
}

/// The streaming response of `gen`; `tracker` records how it ends.
pub fn response(gen: Generation, head: StreamHead, engine: EngineHandle, tracker: Tracker) -> Response {
    let n_choices = gen.n_choices();
    let body = SseBody { gen, head, engine, usages: vec![Usage::default(); n_choices], n_chars: vec![0; n_choices], started: false, closed: false, tracker };
    let mut response = Response::new(Body::new(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn push_data(buf: &mut Vec<u8>, value: &impl Serialize) {
    buf.extend_from_slice(b"data: ");
    serde_json::to_writer(&mut *buf, value).expect("chunks always serialize");
    buf.extend_from_slice(b"\n\n");
}

impl SseBody {
    fn chat_chunk(&self, buf: &mut Vec<u8>, choices: Vec<ChatChunkChoice>, usage: Option<crate::wire::Usage>) {
        let usage = if self.head.include_usage { Some(usage) } else { None };
        let h = &self.head;
        push_data(buf, &ChatChunk { id: &h.id, object: "chat.completion.chunk", created: h.created, model: &h.model, choices, usage });
    }

    fn completion_chunk(&self, buf: &mut Vec<u8>, choices: Vec<CompletionChoice>, usage: Option<crate::wire::Usage>) {
        let usage = if self.head.include_usage { Some(usage) } else { None };
        let h = &self.head;
        push_data(buf, &CompletionChunk { id: &h.id, object: "text_completion", created: h.created, model: &h.model, choices, usage });
    }

    /// Chat streams open with the assistant's role for every choice.
    fn start(&mut self, buf: &mut Vec<u8>) {
        if self.head.api == Api::Chat {
            let choices = (0..self.usages.len()).map(|index| ChatChunkChoice { index, delta: Delta { role: Some("assistant"), content: Some(String::new()) }, logprobs: None, finish_reason: None }).collect();
            self.chat_chunk(buf, choices, None);
        }
    }

    fn on_event(&mut self, buf: &mut Vec<u8>, index: usize, event: Event) {
        match event {
            Event::Token { id, text, logprob, .. } => {
                // Held-back text (a stop-string prefix, half a character) has nothing to show.
                if text.is_empty() && !self.head.logprobs {
                    return;
                }
                let token = [TokenRecord { id, logprob, text_offset: self.n_chars[index] }];
                self.n_chars[index] += text.chars().count();
                let tokenizer = &self.engine.model().tokenizer;
                match self.head.api {
                    Api::Chat => {
                        let logprobs = shape::chat_logprobs(tokenizer, &token);
                        self.chat_chunk(buf, vec![ChatChunkChoice { index, delta: Delta { role: None, content: Some(text) }, logprobs, finish_reason: None }], None);
                    }
                    Api::Completions => {
                        let logprobs = shape::completion_logprobs(tokenizer, &token);
                        self.completion_chunk(buf, vec![CompletionChoice { index, text, logprobs, finish_reason: None }], None);
                    }
                }
            }
            Event::Done { finish, usage, text } => {
                self.usages[index] = usage;
                self.n_chars[index] += text.chars().count();
                let finish_reason = Some(shape::finish_reason(finish));
                match self.head.api {
                    Api::Chat => {
                        let delta = Delta { role: None, content: (!text.is_empty()).then_some(text) };
                        self.chat_chunk(buf, vec![ChatChunkChoice { index, delta, logprobs: None, finish_reason }], None)
                    }
                    Api::Completions => self.completion_chunk(buf, vec![CompletionChoice { index, text, logprobs: None, finish_reason }], None),
                }
            }
            Event::Error(why) => self.fail(buf, &ApiError::internal(why), Outcome::Error),
        }
    }

    fn finish(&mut self, buf: &mut Vec<u8>) {
        if self.head.include_usage {
            let usage = Some(shape::usage(&self.usages, self.head.n));
            match self.head.api {
                Api::Chat => self.chat_chunk(buf, vec![], usage),
                Api::Completions => self.completion_chunk(buf, vec![], usage),
            }
        }
        buf.extend_from_slice(b"data: [DONE]\n\n");
        self.closed = true;
        self.tracker.finish(Outcome::Ok);
    }

    fn fail(&mut self, buf: &mut Vec<u8>, error: &ApiError, outcome: Outcome) {
        push_data(buf, &error.body());
        self.closed = true;
        self.tracker.finish(outcome);
    }
}

impl http_body::Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.closed {
            return Poll::Ready(None);
        }
        let mut buf = Vec::new();
        if !this.started {
            this.started = true;
            this.start(&mut buf);
        }
        // Everything ready goes out in one frame: one write for a whole engine step.
        while !this.closed && buf.len() < MAX_FRAME_BYTES {
            match this.gen.poll_next(cx) {
                Poll::Pending => break,
                Poll::Ready(Next::Event(index, event)) => this.on_event(&mut buf, index, event),
                Poll::Ready(Next::Finished) => this.finish(&mut buf),
                Poll::Ready(Next::TimedOut) => {
                    let error = ApiError::timeout(this.head.timeout_secs);
                    this.fail(&mut buf, &error, Outcome::Timeout);
                }
                Poll::Ready(Next::Lost) => this.fail(&mut buf, &ApiError::internal("the engine stopped without finishing the request"), Outcome::Error),
            }
        }
        if buf.is_empty() {
            return if this.closed { Poll::Ready(None) } else { Poll::Pending };
        }
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(buf)))))
    }
}
