//! Ids back to text: the bytes each token stands for (computed once per vocabulary), whole
//! sequences, and streaming that hands out only complete UTF-8 characters.

use crate::bpe::alphabet_bytes;
use crate::spm::{byte_token_value, SPACE};
use crate::tokenizer::Tokenizer;
use crate::vocab::{TokenType, Vocab};

/// Whether a token's bytes appear in decoded text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Show {
    Always,
    /// Control and unknown tokens: only when special tokens are rendered.
    Special,
    /// Unused and undefined tokens: never (llama.cpp prints nothing for them either).
    Never,
}

/// The bytes of every token, in one buffer.
pub(crate) struct Pieces {
    bytes: Vec<u8>,
    /// Token `id` is `bytes[offsets[id]..offsets[id + 1]]`.
    offsets: Vec<usize>,
    show: Vec<Show>,
}

impl Pieces {
    /// `spm`: SentencePiece texts (U+2581 for space, <0xAB> byte tokens); otherwise GPT-2's
    /// byte alphabet.
    pub fn new(vocab: &Vocab, spm: bool) -> Pieces {
        let n = vocab.len();
        let mut bytes = Vec::new();
        let mut offsets = Vec::with_capacity(n + 1);
        let mut show = Vec::with_capacity(n);
        for (id, text) in vocab.texts().iter().enumerate() {
            offsets.push(bytes.len());
            let t = vocab.token_type(id as u32);
            match (t, spm) {
                (TokenType::Byte, true) => bytes.extend(byte_token_value(text)),
                (TokenType::Normal, true) => {
                    bytes.extend_from_slice(text.replace(SPACE, " ").as_bytes());
                }
                // A text outside the byte alphabet (a hand-made vocabulary) stands for itself.
                (TokenType::Normal | TokenType::Byte, false) => match alphabet_bytes(text) {
                    Some(b) => bytes.extend_from_slice(&b),
                    None => bytes.extend_from_slice(text.as_bytes()),
                },
                _ => bytes.extend_from_slice(text.as_bytes()),
            }
            show.push(match t {
                TokenType::Normal | TokenType::Byte | TokenType::UserDefined => Show::Always,
                TokenType::Control | TokenType::Unknown => Show::Special,
                TokenType::Unused | TokenType::Undefined => Show::Never,
            });
        }
        offsets.push(bytes.len());
        Pieces {
            bytes,
            offsets,
            show,
        }
    }

    /// `id` must be in range.
    pub fn bytes(&self, id: u32) -> &[u8] {
        let i = id as usize;
        &self.bytes[self.offsets[i]..self.offsets[i + 1]]
    }

    pub fn show(&self, id: u32) -> Show {
        self.show[id as usize]
    }
}

/// Decoding state shared by `Tokenizer::decode` and `StreamDecoder`: SentencePiece's leading
/// space, which encoding adds, is removed from the first token after an optional BOS.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cursor {
    pub strip_space: bool,
    pub render_special: bool,
}

impl Tokenizer {
    /// The bytes `id` adds to decoded text; ids out of range add nothing.
    pub(crate) fn output_piece(&self, id: u32, cur: &mut Cursor) -> &[u8] {
        if id as usize >= self.n_vocab() {
            return &[];
        }
        if cur.strip_space && Some(id) == self.bos_id() {
            // BOS keeps the strip for the token after it.
            return self.visible(id, cur.render_special);
        }
        let piece = self.visible(id, cur.render_special);
        if cur.strip_space {
            cur.strip_space = false;
            if let Some(rest) = piece.strip_prefix(b" ") {
                return rest;
            }
        }
        piece
    }

    fn visible(&self, id: u32, render_special: bool) -> &[u8] {
        match self.pieces.show(id) {
            Show::Always => self.pieces.bytes(id),
            Show::Special if render_special => self.pieces.bytes(id),
            _ => &[],
        }
    }

    pub(crate) fn decode_with(&self, ids: &[u32], render_special: bool) -> String {
        let mut cur = Cursor {
            strip_space: self.strips_leading_space(),
            render_special,
        };
        let mut bytes = Vec::new();
        for &id in ids {
            bytes.extend_from_slice(self.output_piece(id, &mut cur));
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// Decodes tokens one at a time, for streaming: `push` returns only whole UTF-8 characters and
/// keeps the bytes of a character split across tokens until it is complete.
///
/// `new()` decodes a sequence from its start, as `Tokenizer::decode` does: SentencePiece's
/// leading space comes off the first token. Tokens that continue text already shown (a
/// generation after its prompt) want `continuing()`, which keeps every space.
#[derive(Debug)]
pub struct StreamDecoder {
    pending: Vec<u8>,
    /// None until the first push, which learns from the tokenizer whether to strip.
    cursor: Option<Cursor>,
    strip_first: bool,
    render_special: bool,
}

impl Default for StreamDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamDecoder {
    pub fn new() -> Self {
        StreamDecoder {
            pending: Vec::new(),
            cursor: None,
            strip_first: true,
            render_special: false,
        }
    }

    /// For tokens that follow text already decoded: no leading space is removed.
    pub fn continuing() -> Self {
        StreamDecoder {
            strip_first: false,
            ..Self::new()
        }
    }

    /// Show control tokens' text (`<|im_end|>`) instead of nothing.
    pub fn render_special(mut self, yes: bool) -> Self {
        self.render_special = yes;
        self
    }

    /// The complete characters that `id` finishes; possibly empty.
    pub fn push(&mut self, tok: &Tokenizer, id: u32) -> String {
        let cur = self.cursor.get_or_insert(Cursor {
            strip_space: self.strip_first && tok.strips_leading_space(),
            render_special: self.render_special,
        });
        self.pending.extend_from_slice(tok.output_piece(id, cur));
        let mut out = String::new();
        let mut pos = 0;
        while pos < self.pending.len() {
            match std::str::from_utf8(&self.pending[pos..]) {
                Ok(s) => {
                    out.push_str(s);
                    pos = self.pending.len();
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // The prefix is valid UTF-8, so this borrows it.
                    out.push_str(&String::from_utf8_lossy(&self.pending[pos..pos + valid]));
                    match e.error_len() {
                        // An incomplete character at the end: wait for the next token.
                        None => {
                            pos += valid;
                            break;
                        }
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            pos += valid + bad;
                        }
                    }
                }
            }
        }
        self.pending.drain(..pos);
        out
    }

    /// Whatever is left (an unfinished character, as U+FFFD); the decoder can then start over.
    pub fn finish(&mut self) -> String {
        let rest = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        self.cursor = None;
        rest
    }
}
