//! Unicode normalization of plain text before the model sees it, as a Hugging Face
//! `tokenizer.json` normalizer does it: NFC (Qwen 2, 2.5 and 3). Applied to each run of text
//! between added tokens, never to the tokens' own text. Nothing else of Hugging Face's
//! normalizers lives here; `hf.rs` refuses the others by name.

use std::borrow::Cow;

use unicode_normalization::{is_nfc, UnicodeNormalization};

/// A normalizer herd applies, named as `herd.tokenizer.normalizer` writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Normalizer {
    Nfc,
}

impl Normalizer {
    pub fn from_name(name: &str) -> Option<Normalizer> {
        match name {
            "NFC" => Some(Normalizer::Nfc),
            _ => None,
        }
    }

    pub fn apply<'t>(self, text: &'t str) -> Cow<'t, str> {
        match self {
            Normalizer::Nfc => nfc_as_tokenizers(text),
        }
    }
}

/// NFC as the `tokenizers` package computes it. Its tables (the `unicode-normalization-
/// alignments` crate) predate Unicode 10, so characters that later versions gave a combining
/// class, a decomposition or a composition are, to it, unassigned: starters that combine with
/// nothing. Cutting the text at those characters and normalizing the pieces between them with
/// current tables gives exactly that result, since normalization of assigned characters is
/// stable across Unicode versions.
fn nfc_as_tokenizers(text: &str) -> Cow<'_, str> {
    // Text that is NFC by current tables is NFC by older ones too: an unassigned character
    // only blocks reordering and composition that current tables would otherwise allow.
    if is_nfc(text) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if unknown_to_tokenizers(c) {
            out.extend(text[start..i].nfc());
            out.push(c);
            start = i + c.len_utf8();
        }
    }
    out.extend(text[start..].nfc());
    Cow::Owned(out)
}

fn unknown_to_tokenizers(c: char) -> bool {
    let u = c as u32;
    // Every range lies above U+05C7.
    u >= 0x05C8
        && UNKNOWN_TO_TOKENIZERS
            .binary_search_by(|&(lo, hi)| {
                if hi < u {
                    std::cmp::Ordering::Less
                } else if lo > u {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Equal
                }
            })
            .is_ok()
}

/// Characters (inclusive ranges) whose normalization the `unicode-normalization` crate knows and
/// `tokenizers` 0.23 does not: every character to which the crate gives a non-zero combining
/// class, a canonical decomposition or a part in one, probed in `tokenizers` alone, decomposed,
/// and beside marks of higher and lower class, kept where its result differs from the crate's;
/// then the starters that only these characters decompose to (the parts of Dives Akuru's and
/// Tulu-Tigalari's new vowel signs, which no older table composes).
#[rustfmt::skip]
const UNKNOWN_TO_TOKENIZERS: &[(u32, u32)] = &[
    (0x05C8, 0x05C9), (0x07FD, 0x07FD), (0x0897, 0x089F), (0x08CA, 0x08D3), (0x09FE, 0x09FE),
    (0x0C3C, 0x0C3C), (0x0D3B, 0x0D3C), (0x0EBA, 0x0EBA), (0x1715, 0x1715), (0x1ABF, 0x1AF0),
    (0x1DF6, 0x1DFA), (0xA82C, 0xA82C), (0x105C9, 0x105C9), (0x105D2, 0x105D2), (0x105DA, 0x105DA),
    (0x105E4, 0x105E4), (0x10D24, 0x10D27), (0x10D69, 0x10D6D), (0x10EAB, 0x10EAC),
    (0x10ECB, 0x10ECF), (0x10EF0, 0x10EFB), (0x10EFD, 0x10EFF), (0x10F46, 0x10F50),
    (0x10F82, 0x10F85), (0x11070, 0x11070), (0x1133B, 0x1133B), (0x11382, 0x11385),
    (0x1138B, 0x1138B), (0x1138E, 0x1138E), (0x11390, 0x11391), (0x113B8, 0x113B8),
    (0x113BB, 0x113BB), (0x113C2, 0x113C2), (0x113C5, 0x113C5), (0x113C7, 0x113C9),
    (0x113CE, 0x113D0), (0x1145E, 0x1145E), (0x11839, 0x1183A), (0x11930, 0x11930),
    (0x11935, 0x11935), (0x11938, 0x11938), (0x1193D, 0x1193E), (0x11943, 0x11943),
    (0x119E0, 0x119E0), (0x11A34, 0x11A34), (0x11A47, 0x11A47), (0x11A99, 0x11A99),
    (0x11D42, 0x11D42), (0x11D44, 0x11D45), (0x11D97, 0x11D97), (0x11F41, 0x11F42),
    (0x1611E, 0x16129), (0x1612F, 0x1612F), (0x16D63, 0x16D63), (0x16D67, 0x16D6A),
    (0x16FF0, 0x16FF1), (0x1D127, 0x1D128), (0x1D250, 0x1D252), (0x1D25B, 0x1D25C),
    (0x1D25F, 0x1D25F), (0x1D280, 0x1D281), (0x1E08F, 0x1E08F), (0x1E130, 0x1E136),
    (0x1E2AE, 0x1E2AE), (0x1E2EC, 0x1E2EF), (0x1E4EC, 0x1E4EF), (0x1E5EE, 0x1E5EF),
    (0x1E6E3, 0x1E6E3), (0x1E6E6, 0x1E6E6), (0x1E6EE, 0x1E6EF), (0x1E6F5, 0x1E6F5),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: &str) {
        assert_eq!(Normalizer::Nfc.apply(text), expected, "{text:?}");
    }

    #[test]
    fn composes_canonically_but_not_compatibility_forms() {
        check("e\u{301}", "\u{e9}");
        check("\u{e9}", "\u{e9}");
        check("a\u{308}\u{301}", "\u{e4}\u{301}");
        // Marks reordered by combining class, then composed.
        check("a\u{301}\u{316}", "\u{e1}\u{316}");
        // Hangul jamo into a syllable.
        check("\u{1100}\u{1161}\u{11a8}", "\u{ac01}");
        // Singletons decompose (Angstrom sign, Ohm sign); compatibility forms stay.
        check("\u{212b}\u{2126}", "\u{c5}\u{3a9}");
        check("\u{fb01}\u{ff21}\u{2460}", "\u{fb01}\u{ff21}\u{2460}");
        check("", "");
    }

    #[test]
    fn characters_newer_than_tokenizers_tables_stay_as_they_are() {
        // Dives Akuru (Unicode 13): current tables compose 11935 + 11930.
        check("\u{11935}\u{11930}", "\u{11935}\u{11930}");
        // An Arabic mark of Unicode 14 is a starter to tokenizers: no reordering across it,
        // and the e before it composes with nothing after it.
        check("a\u{898}\u{316}", "a\u{898}\u{316}");
        check("e\u{301}\u{1dfa}e\u{301}", "\u{e9}\u{1dfa}\u{e9}");
        assert!(UNKNOWN_TO_TOKENIZERS.windows(2).all(|w| w[0].1 < w[1].0));
        assert!(UNKNOWN_TO_TOKENIZERS
            .iter()
            .all(|r| r.0 <= r.1 && r.0 >= 0x05C8));
    }
}
