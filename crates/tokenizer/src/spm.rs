//! SentencePiece-style BPE (`tokenizer.ggml.model` = llama; Llama 2, Mistral 7B, Phi-3): spaces
//! become U+2581, then adjacent pieces merge, highest token score first, for as long as the
//! merged text is a token; characters left without a token fall back to byte tokens (<0xAB>),
//! else to the unknown token. Special tokens and the space prefix decision are the caller's.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::error::TokenizerError;
use crate::vocab::{TokenType, Vocab};

/// SentencePiece's visible space.
pub(crate) const SPACE: char = '\u{2581}';

pub(crate) struct Spm {
    /// The token of each byte, for characters that have no token of their own.
    byte_ids: Box<[Option<u32>; 256]>,
    unk: Option<u32>,
}

impl Spm {
    pub fn new(vocab: &Vocab, unk: Option<u32>) -> Result<Spm, TokenizerError> {
        for id in 0..vocab.len() as u32 {
            if vocab.token_type(id) == TokenType::Byte && byte_token_value(vocab.text(id)).is_none()
            {
                return Err(TokenizerError::BadByteToken {
                    id,
                    text: vocab.text(id).to_string(),
                });
            }
        }
        let mut byte_ids = Box::new([None; 256]);
        for (b, slot) in byte_ids.iter_mut().enumerate() {
            *slot = vocab.id(&format!("<0x{b:02X}>")).or_else(|| {
                // Vocabularies without byte tokens may still have the ASCII characters.
                let b = u8::try_from(b).ok().filter(u8::is_ascii)?;
                vocab.id((b as char).encode_utf8(&mut [0; 4]))
            });
        }
        Ok(Spm { byte_ids, unk })
    }

    /// Appends the ids of plain `text` to `out`; `space_prefix` puts a space before it first.
    pub fn encode(&self, vocab: &Vocab, text: &str, space_prefix: bool, out: &mut Vec<u32>) {
        let mut s = String::with_capacity(text.len() + 3);
        if space_prefix {
            s.push(SPACE);
        }
        s.extend(text.chars().map(|c| if c == ' ' { SPACE } else { c }));
        if s.is_empty() {
            return;
        }

        let mut syms: Vec<Symbol> = Vec::with_capacity(s.len());
        for (start, c) in s.char_indices() {
            let i = syms.len();
            syms.push(Symbol {
                start,
                len: c.len_utf8(),
                prev: i.wrapping_sub(1),
                next: i + 1,
            });
        }
        let n = syms.len();
        let mut heap = BinaryHeap::new();
        let candidate = |syms: &[Symbol], l: usize, r: usize| -> Option<Bigram> {
            let text = &s[syms[l].start..syms[r].start + syms[r].len];
            let id = piece_id(vocab, text)?;
            Some(Bigram {
                score: vocab.score(id),
                left: l,
                right: r,
                len: text.len(),
            })
        };
        for i in 1..n {
            heap.extend(candidate(&syms, i - 1, i));
        }
        while let Some(b) = heap.pop() {
            let (l, r) = (b.left, b.right);
            // Stale: one side was merged away, or grew since this pair was scored.
            if syms[l].len == 0 || syms[r].len == 0 || syms[l].len + syms[r].len != b.len {
                continue;
            }
            syms[l].len += syms[r].len;
            syms[r].len = 0;
            syms[l].next = syms[r].next;
            if syms[l].next < n {
                let nx = syms[l].next;
                syms[nx].prev = l;
                heap.extend(candidate(&syms, l, nx));
            }
            if syms[l].prev < n {
                heap.extend(candidate(&syms, syms[l].prev, l));
            }
        }

        let mut i = 0;
        while i < n {
            let sym = syms[i];
            let text = &s[sym.start..sym.start + sym.len];
            match piece_id(vocab, text) {
                Some(id) => out.push(id),
                None => {
                    for &b in text.as_bytes() {
                        if let Some(id) = self.byte_ids[b as usize].or(self.unk) {
                            out.push(id);
                        }
                    }
                }
            }
            i = sym.next;
        }
    }
}

/// The token a merge may produce: special tokens never come out of plain text (they are
/// found by text before merging, or not at all).
fn piece_id(vocab: &Vocab, text: &str) -> Option<u32> {
    vocab.id(text).filter(|&id| vocab.is_plain(id))
}

/// The byte a byte token (`<0xAB>`) stands for.
pub(crate) fn byte_token_value(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    /// 0 once merged into its left neighbour.
    len: usize,
    /// Neighbour indices; out of range (>= the symbol count) for none.
    prev: usize,
    next: usize,
}

/// A candidate merge: the best score first, then the leftmost.
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    len: usize,
}

impl Ord for Bigram {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Bigram {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_token_values() {
        for (text, v) in [
            ("<0x00>", Some(0)),
            ("<0xAB>", Some(0xAB)),
            ("<0xab>", Some(0xAB)),
            ("<0xABC>", None),
            ("0xAB", None),
            ("<0x+1>", None),
        ] {
            assert_eq!(byte_token_value(text), v, "{text}");
        }
    }

    /// A small vocabulary: unk, the byte tokens, and scored pieces.
    fn spm(pieces: &[(&str, f32)]) -> (Vocab, Spm) {
        let mut texts = vec!["<unk>".to_string()];
        let mut types = vec![2];
        let mut scores = vec![0.0];
        for b in 0..=255u8 {
            texts.push(format!("<0x{b:02X}>"));
            types.push(6);
            scores.push(0.0);
        }
        for (t, s) in pieces {
            texts.push(t.to_string());
            types.push(1);
            scores.push(*s);
        }
        let v = Vocab::new(texts, Some(scores), Some(types)).unwrap();
        let s = Spm::new(&v, Some(0)).unwrap();
        (v, s)
    }

    #[test]
    fn merges_by_score_with_byte_fallback() {
        let (v, s) = spm(&[
            ("▁", -1.0),
            ("h", -2.0),
            ("i", -2.0),
            ("hi", -3.0),
            ("▁hi", -1.5),
            ("▁h", -0.5),
        ]);
        let run = |text: &str, prefix: bool| {
            let mut out = Vec::new();
            s.encode(&v, text, prefix, &mut out);
            out.iter()
                .map(|&id| v.text(id).to_string())
                .collect::<Vec<_>>()
        };
        // "▁h" scores best and merges first; "▁h" + "i" then make "▁hi".
        assert_eq!(run("hi", true), ["▁hi"]);
        assert_eq!(run("hi", false), ["hi"]);
        // 'é' has no piece: its two UTF-8 bytes become byte tokens.
        assert_eq!(run("hé", false), ["h", "<0xC3>", "<0xA9>"]);
        assert_eq!(run("", false), Vec::<String>::new());
    }
}
