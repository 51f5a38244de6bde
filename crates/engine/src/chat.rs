//! A multi-turn conversation on one session: each turn re-renders the whole conversation with
//! the model's chat template and feeds only the tokens past what the cache already holds, so
//! earlier turns are never recomputed (and templates that rewrite history still come out right).

use herd_tokenizer::template::ChatMessage;

use crate::error::{EngineError, Result};
use crate::generate::{generate, GenerateParams, GenerateStats};
use crate::session::Session;

pub struct Conversation<'m> {
    session: Session<'m>,
    system: Option<String>,
    /// User and assistant turns, in order.
    turns: Vec<ChatMessage>,
}

impl<'m> Conversation<'m> {
    /// Fails when the model has no chat template.
    pub fn new(session: Session<'m>, system: Option<String>) -> Result<Conversation<'m>> {
        session.model.chat_template()?;
        Ok(Conversation { session, system, turns: Vec::new() })
    }

    /// Forgets the turns (the system prompt stays).
    pub fn clear(&mut self) {
        self.turns.clear();
    }

    /// Replaces the system prompt and starts over.
    pub fn set_system(&mut self, system: Option<String>) {
        self.system = system;
        self.turns.clear();
    }

    pub fn n_ctx(&self) -> usize {
        self.session.n_ctx()
    }

    /// Sends a user message and streams the answer to `on_text` (which returns false to stop
    /// early). The answer, however it ended, becomes part of the conversation; on an error the
    /// message is taken back.
    pub fn send(&mut self, user: &str, params: &GenerateParams, on_text: &mut dyn FnMut(&str) -> bool) -> Result<GenerateStats> {
        self.turns.push(ChatMessage::new("user", user));
        let result = self.answer(params, on_text);
        match &result {
            Ok((_, answer)) => self.turns.push(ChatMessage::new("assistant", answer)),
            Err(_) => {
                self.turns.pop();
            }
        }
        result.map(|(stats, _)| stats)
    }

    fn answer(&mut self, params: &GenerateParams, on_text: &mut dyn FnMut(&str) -> bool) -> Result<(GenerateStats, String)> {
        let messages: Vec<ChatMessage> = self.system.iter().map(|s| ChatMessage::new("system", s)).chain(self.turns.iter().cloned()).collect();
        let tokens = self.session.model.chat_prompt(&messages)?;
        if tokens.len() >= self.session.n_ctx() {
            return Err(EngineError::PromptTooLong { n_prompt: tokens.len(), n_ctx: self.session.n_ctx() });
        }
        let shared = self.session.tokens().iter().zip(&tokens).take_while(|(a, b)| a == b).count();
        // At least one token is fed, so the model produces fresh logits.
        let keep = shared.min(tokens.len() - 1);
        self.session.truncate(keep);
        let mut answer = String::new();
        let stats = generate(&mut self.session, &tokens[keep..], params, &mut |piece| {
            answer.push_str(piece);
            on_text(piece)
        })?;
        Ok((stats, answer))
    }
}
