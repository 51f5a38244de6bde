//! The one error type of vocabulary loading. Encoding and decoding never fail: everything that
//! could make them fail is checked here, once, when a tokenizer is built.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum TokenizerError {
    #[error("reading the vocabulary: {0}")]
    Gguf(#[from] herd_gguf::GgufError),

    #[error("{file}: key '{key}' is missing; it is needed to build the tokenizer")]
    MissingKey { file: String, key: &'static str },

    #[error("the vocabulary is empty (tokenizer.ggml.tokens has no entries)")]
    EmptyVocab,

    #[error("the vocabulary has {n_tokens} tokens, more than token ids (u32) can number")]
    TooManyTokens { n_tokens: usize },

    #[error("unknown tokenizer model '{0}' (tokenizer.ggml.model); herd knows 'gpt2' (byte-level BPE) and 'llama' (SentencePiece)")]
    UnknownModel(String),

    #[error(
        "unknown pre-tokenizer '{name}' (tokenizer.ggml.pre); herd knows {known}. \
         Forcing the default rules (force_default_pre) loads it anyway, but may split text \
         differently from the model's own tokenizer"
    )]
    UnknownPre { name: String, known: String },

    #[error("tokenizer.ggml.{what} has {found} entries but tokenizer.ggml.tokens has {n_tokens}")]
    LengthMismatch {
        what: &'static str,
        found: usize,
        n_tokens: usize,
    },

    #[error(
        "token {id} ({text:?}) has token type {value}; known types are 0 (undefined) to 6 (byte)"
    )]
    BadTokenType { id: u32, text: String, value: i32 },

    #[error("token {id} ({text:?}) has type 'byte' but its text is not of the form <0xHH>")]
    BadByteToken { id: u32, text: String },

    #[error(
        "a byte-level BPE vocabulary needs merges (tokenizer.ggml.merges), and this one has none"
    )]
    MissingMerges,

    #[error("merge {index} {merge:?}: {problem}")]
    BadMerge {
        index: usize,
        merge: String,
        problem: String,
    },

    #[error("special token id {key} = {id} is out of range: the vocabulary has {n_tokens} tokens")]
    SpecialIdOutOfRange {
        key: &'static str,
        id: u64,
        n_tokens: usize,
    },

    #[error("the vocabulary asks to add a {which} token (tokenizer.ggml.add_{which}_token) but names no {which} token id")]
    MissingSpecialId { which: &'static str },

    #[error("building the special-token matcher: {0}")]
    SpecialMatcher(String),

    #[error("Hugging Face tokenizer files: {what}")]
    BadTokenizerJson { what: String },

    #[error("tokenizer.json: herd does not implement {component}")]
    UnsupportedHf { component: String },
}
