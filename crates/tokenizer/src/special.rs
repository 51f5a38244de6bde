//! Finding special tokens written in prompt text, before any model sees it. The text is cut
//! into plain fragments and token ids. Which token wins where texts overlap follows llama.cpp:
//! special tokens are taken longest first (then lowest id), each taking every occurrence, left
//! to right, that lies in text no earlier token took. Control and unknown tokens are found only
//! when special parsing is on; user-defined tokens always are, as Hugging Face does.

use std::collections::BTreeMap;

use aho_corasick::{AhoCorasick, MatchKind};

use crate::error::TokenizerError;

/// A piece of the text after special-token splitting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fragment {
    /// Plain text, `text[start..end]`.
    Text(usize, usize),
    Token(u32),
}

/// A token that may be written as text.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SpecialToken<'a> {
    pub id: u32,
    pub text: &'a str,
    /// Found even when special parsing is off (user-defined tokens).
    pub always: bool,
    /// Swallows the whitespace that follows it (Phi-3's tokens do).
    pub rstrip: bool,
    /// Swallows the whitespace before it (a Hugging Face `lstrip` token).
    pub lstrip: bool,
    /// Whitespace is Unicode's, as Hugging Face strips it; else C's `isspace`, as llama.cpp.
    pub unicode_ws: bool,
}

pub(crate) struct Specials {
    /// All special token texts; pattern index = priority (longest text first, then lowest id).
    matcher: Option<AhoCorasick>,
    /// Per pattern: its token, less the text.
    patterns: Vec<SpecialToken<'static>>,
}

impl Specials {
    pub fn new(mut tokens: Vec<SpecialToken>) -> Result<Specials, TokenizerError> {
        // An empty text would match everywhere; such a token can only be written as an id.
        tokens.retain(|t| !t.text.is_empty());
        tokens.sort_by(|a, b| b.text.len().cmp(&a.text.len()).then(a.id.cmp(&b.id)));
        let patterns = tokens
            .iter()
            .map(|t| SpecialToken { text: "", ..*t })
            .collect();
        let matcher = if tokens.is_empty() {
            None
        } else {
            let m = AhoCorasick::builder()
                .match_kind(MatchKind::Standard)
                .build(tokens.iter().map(|t| t.text))
                .map_err(|e| TokenizerError::SpecialMatcher(e.to_string()))?;
            Some(m)
        };
        Ok(Specials { matcher, patterns })
    }

    /// Cuts `text` into fragments; `out` is cleared first. Empty text gives no fragments.
    pub fn partition(&self, text: &str, parse_special: bool, out: &mut Vec<Fragment>) {
        out.clear();
        if text.is_empty() {
            return;
        }
        let Some(matcher) = &self.matcher else {
            out.push(Fragment::Text(0, text.len()));
            return;
        };
        // Every occurrence of every applicable token, overlaps included, in priority order.
        let mut found: Vec<(usize, usize, usize)> = matcher
            .find_overlapping_iter(text)
            .filter(|m| parse_special || self.patterns[m.pattern().as_usize()].always)
            .map(|m| (m.pattern().as_usize(), m.start(), m.end()))
            .collect();
        if found.is_empty() {
            out.push(Fragment::Text(0, text.len()));
            return;
        }
        found.sort_unstable();
        // start -> (end, token id) of each place taken; a token's place includes the
        // whitespace it swallows.
        let mut taken: BTreeMap<usize, (usize, u32)> = BTreeMap::new();
        let bytes = text.as_bytes();
        for (pattern, start, end) in found {
            // Places are disjoint, so the last one starting before `end` is the only one that
            // could overlap.
            let free = match taken.range(..end).next_back() {
                Some((_, &(taken_end, _))) => taken_end <= start,
                None => true,
            };
            if !free {
                continue;
            }
            let token = self.patterns[pattern];
            let mut place_end = end;
            let mut place_start = start;
            if token.unicode_ws {
                if token.rstrip {
                    let limit = taken.range(end..).next().map_or(text.len(), |(&s, _)| s);
                    place_end = text[end..limit]
                        .char_indices()
                        .find(|(_, c)| !c.is_whitespace())
                        .map_or(limit, |(i, _)| end + i);
                }
                if token.lstrip {
                    let limit = taken.range(..start).next_back().map_or(0, |(_, &(e, _))| e);
                    place_start = text[limit..start]
                        .char_indices()
                        .rev()
                        .find(|(_, c)| !c.is_whitespace())
                        .map_or(limit, |(i, c)| limit + i + c.len_utf8());
                }
            } else if token.rstrip {
                let limit = taken.range(end..).next().map_or(text.len(), |(&s, _)| s);
                while place_end < limit && is_c_space(bytes[place_end]) {
                    place_end += 1;
                }
            }
            taken.insert(place_start, (place_end, token.id));
        }
        let mut pos = 0;
        for (start, (end, id)) in taken {
            if start > pos {
                out.push(Fragment::Text(pos, start));
            }
            out.push(Fragment::Token(id));
            pos = end;
        }
        if pos < text.len() {
            out.push(Fragment::Text(pos, text.len()));
        }
    }
}

/// C's `isspace`, which llama.cpp strips with: space, \t, \n, \v, \f, \r.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t'..=b'\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Special tokens (id, text, always, rstrip) and a text, against the expected fragments
    /// written as strings ("#id" for a token).
    fn check(
        tokens: &[(u32, &str, bool, bool)],
        text: &str,
        parse_special: bool,
        expected: &[&str],
    ) {
        let tokens = tokens
            .iter()
            .map(|&(id, text, always, rstrip)| SpecialToken {
                id,
                text,
                always,
                rstrip,
                lstrip: false,
                unicode_ws: false,
            })
            .collect();
        let s = Specials::new(tokens).unwrap();
        let mut out = Vec::new();
        s.partition(text, parse_special, &mut out);
        let got: Vec<String> = out
            .iter()
            .map(|f| match *f {
                Fragment::Text(a, b) => text[a..b].to_string(),
                Fragment::Token(id) => format!("#{id}"),
            })
            .collect();
        assert_eq!(got, expected, "{text:?} parse_special={parse_special}");
    }

    const CHATML: &[(u32, &str, bool, bool)] = &[
        (1, "<|im_start|>", false, false),
        (2, "<|im_end|>", false, false),
        (7, "<pad>", true, false),
    ];

    #[test]
    fn splits_around_tokens() {
        check(
            CHATML,
            "<|im_start|>user\nhi<|im_end|>\n",
            true,
            &["#1", "user\nhi", "#2", "\n"],
        );
        check(
            CHATML,
            "a<|im_end|><|im_end|>b",
            true,
            &["a", "#2", "#2", "b"],
        );
        check(CHATML, "no specials", true, &["no specials"]);
        check(CHATML, "", true, &[]);
    }

    #[test]
    fn plain_mode_keeps_only_user_defined_tokens() {
        check(
            CHATML,
            "<|im_start|>x<pad>",
            false,
            &["<|im_start|>x", "#7"],
        );
    }

    #[test]
    fn longest_token_wins_then_leftmost() {
        let toks = &[
            (1, "ab", false, false),
            (2, "abc", false, false),
            (3, "bcd", false, false),
            (4, "", false, false),
        ];
        check(toks, "abcd", true, &["#2", "d"]);
        check(toks, "xbcdab", true, &["x", "#3", "#1"]);
        // Overlapping occurrences of one token: the leftmost is taken, the next starts after it.
        check(&[(5, "aa", false, false)], "aaa", true, &["#5", "a"]);
    }

    #[test]
    fn rstrip_swallows_following_whitespace() {
        let toks = &[
            (1, "<|user|>", false, true),
            (2, "<|end|>", false, true),
            (3, "<s>", false, false),
        ];
        check(
            toks,
            "<|user|>\n  hi <|end|>\n<s> x",
            true,
            &["#1", "hi ", "#2", "#3", " x"],
        );
        // Up to the next token, not past it.
        check(toks, "<|user|> \t<|end|>", true, &["#1", "#2"]);
        // Only ASCII whitespace.
        check(toks, "<|end|>\u{a0}x", true, &["#2", "\u{a0}x"]);
    }
}
