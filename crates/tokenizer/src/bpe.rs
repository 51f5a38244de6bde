//! Byte-level BPE (`tokenizer.ggml.model` = gpt2): pre-tokenize, then merge each word's bytes by
//! merge rank. Merges are looked up by token-id pair in one hash map, and a word seen before in
//! the same text reuses its ids. Special tokens and BOS/EOS are the caller's business.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;

use crate::error::TokenizerError;
use crate::pretok::{segment_end, PreTokenizer, SplitBuf};
use crate::unicode;
use crate::vocab::Vocab;

/// "No token": a byte whose alphabet character is not in the vocabulary.
const NONE: u32 = u32::MAX;

/// Words up to this many bytes merge by scanning their pairs; longer ones use a heap, so that a
/// long unbroken run (a base64 blob, a line of dashes) costs O(n log n), not O(n²).
const LINEAR_MAX: usize = 48;

/// Bytes of text pre-tokenized at a time (see `Bpe::encode`).
const SEGMENT: usize = 16 * 1024;

pub(crate) struct Bpe {
    pub pre: PreTokenizer,
    /// (left id << 32 | right id) -> (rank << 32 | merged id). Comparing the packed values
    /// compares ranks, since a rank names one pair.
    merges: FxHashMap<u64, u64>,
    /// The token of each byte's alphabet character.
    byte_ids: Box<[u32; 256]>,
    /// With `pre.ignore_merges`: the bytes of every plain token, so that a word which is a
    /// token is taken whole.
    whole_words: Option<FxHashMap<Box<[u8]>, u32>>,
}

impl Bpe {
    pub fn new(vocab: &Vocab, merges: &[String], pre: PreTokenizer) -> Result<Bpe, TokenizerError> {
        let mut table = FxHashMap::default();
        table.reserve(merges.len());
        for (index, merge) in merges.iter().enumerate() {
            let bad = |problem: String| TokenizerError::BadMerge {
                index,
                merge: merge.clone(),
                problem,
            };
            // The separator is the first space after the first byte, as llama.cpp reads it.
            let sep = merge
                .bytes()
                .skip(1)
                .position(|b| b == b' ')
                .map(|p| p + 1)
                .ok_or_else(|| bad("it has no space separating its two parts".into()))?;
            let (left, right) = (&merge[..sep], &merge[sep + 1..]);
            let id_of = |text: &str| {
                vocab
                    .id(text)
                    .ok_or_else(|| bad(format!("token {text:?} is not in the vocabulary")))
            };
            let (l, r) = (id_of(left)?, id_of(right)?);
            let merged = id_of(&format!("{left}{right}"))?;
            let rank = u32::try_from(index).map_err(|_| bad("too many merges".into()))?;
            if !vocab.is_plain(merged) {
                // Special tokens never come out of plain text, whatever the merges say.
                continue;
            }
            // A pair listed twice keeps its first (best) rank.
            table
                .entry(pair_key(l, r))
                .or_insert((u64::from(rank) << 32) | u64::from(merged));
        }
        let mut byte_ids = Box::new([NONE; 256]);
        let mut buf = [0u8; 4];
        for (b, slot) in byte_ids.iter_mut().enumerate() {
            let c = unicode::byte_to_char(b as u8);
            *slot = vocab
                .id(c.encode_utf8(&mut buf))
                .filter(|&id| vocab.is_plain(id))
                .unwrap_or(NONE);
        }
        let whole_words = pre.ignore_merges.then(|| {
            let mut m = FxHashMap::default();
            for id in 0..vocab.len() as u32 {
                if vocab.is_plain(id) {
                    if let Some(bytes) = alphabet_bytes(vocab.text(id)) {
                        // Duplicates resolve as the text lookup does: the last id wins.
                        m.insert(bytes.into_boxed_slice(), id);
                    }
                }
            }
            m
        });
        Ok(Bpe {
            pre,
            merges: table,
            byte_ids,
            whole_words,
        })
    }

    /// Appends the ids of plain `text` (no special tokens in it) to `out`.
    ///
    /// Long text is pre-tokenized a segment at a time (see `pretok::segment_end`), so that the
    /// per-character buffers stay small and in cache.
    pub fn encode<'t>(&self, text: &'t str, out: &mut Vec<u32>, st: &mut BpeState<'t>) {
        let mut start = 0;
        while start < text.len() {
            let end = segment_end(text, start + SEGMENT);
            self.encode_segment(&text[start..end], out, st);
            start = end;
        }
    }

    fn encode_segment<'t>(&self, text: &'t str, out: &mut Vec<u32>, st: &mut BpeState<'t>) {
        let mut words = std::mem::take(&mut st.words);
        self.pre.split(text, &mut st.split, &mut words);
        for &(start, end) in &words {
            let word = &text[start..end];
            if word.len() == 1 {
                push_id(out, self.byte_ids[word.as_bytes()[0] as usize]);
                continue;
            }
            if let Some(&(at, n)) = st.cache.get(word) {
                out.extend_from_slice(&st.cached[at as usize..(at + n) as usize]);
                continue;
            }
            let at = st.cached.len();
            self.encode_word(word.as_bytes(), &mut st.syms, &mut st.cached);
            let n = st.cached.len() - at;
            out.extend_from_slice(&st.cached[at..]);
            if let (Ok(at), Ok(n)) = (u32::try_from(at), u32::try_from(n)) {
                st.cache.insert(word, (at, n));
            }
        }
        st.words = words;
    }

    /// The ids of one word, appended to `out`.
    fn encode_word(&self, word: &[u8], syms: &mut Vec<u32>, out: &mut Vec<u32>) {
        if let Some(&id) = self.whole_words.as_ref().and_then(|m| m.get(word)) {
            out.push(id);
            return;
        }
        syms.clear();
        syms.extend(word.iter().map(|&b| self.byte_ids[b as usize]));
        if syms.len() <= LINEAR_MAX {
            self.merge_linear(syms);
        } else {
            self.merge_heap(syms);
        }
        for &id in syms.iter() {
            push_id(out, id);
        }
    }

    #[inline]
    fn pair(&self, l: u32, r: u32) -> u64 {
        self.merges
            .get(&pair_key(l, r))
            .copied()
            .unwrap_or(u64::MAX)
    }

    /// Repeatedly merges the best-ranked adjacent pair, the leftmost among equals.
    fn merge_linear(&self, syms: &mut Vec<u32>) {
        if syms.len() < 2 {
            return;
        }
        let mut pairs: Vec<u64> = syms.windows(2).map(|w| self.pair(w[0], w[1])).collect();
        loop {
            let mut best = u64::MAX;
            let mut at = 0;
            for (i, &p) in pairs.iter().enumerate() {
                if p < best {
                    best = p;
                    at = i;
                }
            }
            if best == u64::MAX {
                break;
            }
            syms[at] = best as u32;
            syms.remove(at + 1);
            pairs.remove(at);
            if at > 0 {
                pairs[at - 1] = self.pair(syms[at - 1], syms[at]);
            }
            if at < pairs.len() {
                pairs[at] = self.pair(syms[at], syms[at + 1]);
            }
        }
    }

    /// The same merges as `merge_linear`, with a heap of candidate pairs over a linked list;
    /// candidates made stale by a merge are skipped when they surface.
    fn merge_heap(&self, syms: &mut Vec<u32>) {
        let n = syms.len();
        let mut next: Vec<usize> = (1..=n).collect();
        let mut prev: Vec<usize> = (0..n).map(|i| i.wrapping_sub(1)).collect();
        let mut alive = vec![true; n];
        let mut heap: BinaryHeap<Reverse<Candidate>> = BinaryHeap::new();
        let push = |heap: &mut BinaryHeap<_>, syms: &[u32], left: usize, right: usize| {
            let merge = self.pair(syms[left], syms[right]);
            if merge != u64::MAX {
                heap.push(Reverse(Candidate {
                    merge,
                    left,
                    right,
                    left_id: syms[left],
                    right_id: syms[right],
                }));
            }
        };
        for i in 0..n - 1 {
            push(&mut heap, syms, i, i + 1);
        }
        while let Some(Reverse(c)) = heap.pop() {
            let (l, r) = (c.left, c.right);
            if !alive[l]
                || !alive[r]
                || next[l] != r
                || syms[l] != c.left_id
                || syms[r] != c.right_id
            {
                continue;
            }
            syms[l] = c.merge as u32;
            alive[r] = false;
            next[l] = next[r];
            if next[l] < n {
                prev[next[l]] = l;
                push(&mut heap, syms, l, next[l]);
            }
            if prev[l] < n {
                push(&mut heap, syms, prev[l], l);
            }
        }
        let mut k = 0;
        for i in 0..n {
            if alive[i] {
                syms[k] = syms[i];
                k += 1;
            }
        }
        syms.truncate(k);
    }
}

/// A pair that may merge, ordered best rank first, then leftmost. The ids it was found with
/// tell whether a merge nearby has made it stale.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Candidate {
    /// rank << 32 | merged id
    merge: u64,
    left: usize,
    right: usize,
    left_id: u32,
    right_id: u32,
}

/// Per-call scratch of `Bpe::encode`: reusable buffers, and the ids of words already seen in
/// this text (most words of running text repeat).
#[derive(Default)]
pub(crate) struct BpeState<'t> {
    split: SplitBuf,
    words: Vec<(usize, usize)>,
    syms: Vec<u32>,
    cache: FxHashMap<&'t str, (u32, u32)>,
    cached: Vec<u32>,
}

#[inline]
fn pair_key(l: u32, r: u32) -> u64 {
    (u64::from(l) << 32) | u64::from(r)
}

/// A byte with no token in the vocabulary has no id to give, as in llama.cpp.
#[inline]
fn push_id(out: &mut Vec<u32>, id: u32) {
    if id != NONE {
        out.push(id);
    }
}

/// The bytes a token text in GPT-2's alphabet stands for; None if a character is outside it.
pub(crate) fn alphabet_bytes(text: &str) -> Option<Vec<u8>> {
    text.chars().map(unicode::char_to_byte).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::Vocab;

    /// A vocabulary of the 256 alphabet characters plus `extra` tokens, with `merges`.
    fn bpe(extra: &[&str], merges: &[&str], pre: &str) -> (Vocab, Bpe) {
        let mut tokens: Vec<String> = (0..=255u8)
            .map(|b| unicode::byte_to_char(b).to_string())
            .collect();
        tokens.extend(extra.iter().map(|s| s.to_string()));
        let vocab = Vocab::new(tokens, None, None).unwrap();
        let merges: Vec<String> = merges.iter().map(|s| s.to_string()).collect();
        let b = Bpe::new(&vocab, &merges, PreTokenizer::lookup(pre).unwrap()).unwrap();
        (vocab, b)
    }

    fn texts(vocab: &Vocab, ids: &[u32]) -> Vec<String> {
        ids.iter().map(|&id| vocab.text(id).to_string()).collect()
    }

    #[test]
    fn merges_by_rank_leftmost_first() {
        let (v, b) = bpe(
            &["ab", "bc", "abc", "aa"],
            &["b c", "a b", "a bc", "a a"],
            "gpt-2",
        );
        let check = |text: &'static str, expected: &[&str]| {
            let mut out = Vec::new();
            b.encode(text, &mut out, &mut BpeState::default());
            assert_eq!(texts(&v, &out), expected, "{text:?}");
        };
        // "b c" outranks "a b", so "abc" is a + bc, then merged by "a bc".
        check("abc", &["abc"]);
        check("aaa", &["aa", "a"]);
        check("abab", &["ab", "ab"]);
        // The second "abc" comes from the word cache.
        check("abc abc abc", &["abc", "Ġ", "abc", "Ġ", "abc"]);
    }

    #[test]
    fn heap_and_linear_agree() {
        let (_, b) = bpe(
            &["ab", "bc", "abc", "aa", "aaaa", "ca"],
            &["b c", "a b", "a bc", "a a", "aa aa", "c a"],
            "gpt-2",
        );
        // A deterministic pseudo-random walk over a small alphabet gives many competing pairs.
        let mut x = 12345u32;
        for len in [2usize, 3, 7, 49, 200, 1000] {
            let word: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    b"abc"[(x >> 16) as usize % 3]
                })
                .collect();
            let mut lin: Vec<u32> = word.iter().map(|&c| b.byte_ids[c as usize]).collect();
            let mut heap = lin.clone();
            b.merge_linear(&mut lin);
            b.merge_heap(&mut heap);
            assert_eq!(lin, heap, "length {len}");
        }
    }
}
