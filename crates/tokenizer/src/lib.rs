//! Text <-> token ids for GGUF models: byte-level BPE with each family's pre-tokenizer, and
//! SentencePiece-style BPE; special tokens in prompt text; decoding whole sequences or streams.
//! Matches llama.cpp's tokenization id for id. Knows nothing of weights or kernels.

mod bpe;
mod decode;
mod error;
mod gguf;
mod hf;
mod normalize;
mod pretok;
mod special;
mod spm;
pub mod template;
mod tokenizer;
mod unicode;
mod vocab;

pub use decode::StreamDecoder;
pub use error::TokenizerError;
pub use hf::{
    gguf_keys_from_hf, gguf_keys_from_tokenizer_json, LSTRIP_KEY, METASPACE_KEY, NORMALIZER_KEY,
    RSTRIP_KEY,
};
pub use tokenizer::{LoadOptions, Tokenizer, VocabConfig};
pub use vocab::TokenType;

/// How byte-level BPE vocabularies spell raw bytes (GPT-2's byte-to-character map), for code
/// that builds such vocabularies.
pub fn byte_level_spelling(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| unicode::byte_to_char(b)).collect()
}
