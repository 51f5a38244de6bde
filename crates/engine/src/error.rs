//! The engine's error type: everything a model file, a prompt or a written file can get wrong,
//! each variant a clear one-line message for the user.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Gguf(#[from] herd_gguf::GgufError),
    #[error(transparent)]
    Hf(#[from] herd_hf::HfError),
    #[error("{path}: {source}")]
    Tokenizer { path: PathBuf, source: Box<herd_tokenizer::TokenizerError> },
    #[error("{path}: {message}")]
    Model { path: PathBuf, message: String },
    #[error("the prompt is {n_prompt} tokens but the context holds {n_ctx}")]
    PromptTooLong { n_prompt: usize, n_ctx: usize },
    #[error("the prompt and {max_tokens} new tokens need {needed} positions but the context holds {n_ctx}")]
    ContextTooSmall { needed: usize, max_tokens: usize, n_ctx: usize },
    #[error("the prompt is empty: nothing to run the model on")]
    EmptyPrompt,
    #[error("token id {id} is outside the vocabulary of {n_vocab}")]
    BadToken { id: u32, n_vocab: usize },
    #[error("{0}")]
    Template(#[from] herd_tokenizer::template::TemplateError),
    #[error("{0}")]
    Store(String),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
