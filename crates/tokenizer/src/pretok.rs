//! Pre-tokenizers of byte-level BPE: the rules that cut text into words before merges run, one
//! rule set per `tokenizer.ggml.pre` family. Each rule stands for one regular expression of the
//! model's own tokenizer, hand-written so that no backtracking regex engine runs; the rules of a
//! family apply in turn, each to every piece the previous one left, and both what a rule matches
//! and the text between its matches become pieces, as in llama.cpp. This module only cuts text;
//! it knows nothing of tokens.

use crate::unicode::{self, Flags};

/// The rule set of one pre-tokenizer family, and the two vocabulary defaults that come with it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PreTokenizer {
    /// The family's canonical name, as `Tokenizer::pre_name` reports it.
    pub name: &'static str,
    rules: &'static [Rule],
    /// Whole words that are tokens are taken as they are, before any merge (Llama 3, Tekken).
    pub ignore_merges: bool,
    /// The family adds BOS unless the file says otherwise.
    pub add_bos: bool,
}

/// One regular expression of a pre-tokenizer.
#[derive(Clone, Copy, Debug)]
enum Rule {
    /// GPT-2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    Gpt2,
    /// Llama 3 and relatives:
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,D}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    /// with D = `max_digits` (3 for Llama 3, 1 for Qwen 2).
    Llama3 { max_digits: usize },
    /// Mistral's Tekken: Llama 3's shape without contractions, words split at case changes
    /// (`[^\r\n\p{L}\p{N}]?` then upper-then-lower or all-upper letters), single digits, and
    /// `/` allowed after punctuation. As in llama.cpp, "upper" is any letter but a-z and
    /// "lower" any letter but A-Z.
    Tekken,
    /// `[\p{P}\$\+<=>\^~\|]+`, and with `backtick` also `` ` `` (Falcon).
    PunctRun { backtick: bool },
    /// `\p{N}+`
    NumberRun,
    /// `\p{N}`
    Number,
    /// `[0-9][0-9][0-9]`
    AsciiDigits3,
    /// `[\r\n]`
    Newline,
    /// `\s?[C]+` for a character class C.
    WsThenRun(Class),
    /// `\s+$`
    TrailingWs,
    /// `[一-龥ࠀ-一가-퟿]+` (DeepSeek's CJK ranges).
    CjkRun,
}

#[derive(Clone, Copy, Debug)]
enum Class {
    /// `\p{L}`
    Letter,
    /// `\p{P}`
    Punct,
    /// DeepSeek LLM's explicit list of cased letters.
    DeepseekLetter,
    /// DeepSeek LLM's `[!-/:-~！-／：-～‘-‟　-。]`
    DeepseekPunct,
}

const LLAMA3_RULES: &[Rule] = &[Rule::Llama3 { max_digits: 3 }];
const QWEN2_RULES: &[Rule] = &[Rule::Llama3 { max_digits: 1 }];
const GPT2_RULES: &[Rule] = &[Rule::Gpt2];
const STARCODER_RULES: &[Rule] = &[Rule::Number, Rule::Gpt2];
const FALCON_RULES: &[Rule] = &[
    Rule::PunctRun { backtick: true },
    Rule::Gpt2,
    Rule::AsciiDigits3,
];
const DEFAULT_RULES: &[Rule] = &[
    Rule::PunctRun { backtick: false },
    Rule::Gpt2,
    Rule::NumberRun,
    Rule::AsciiDigits3,
];
const DEEPSEEK_LLM_RULES: &[Rule] = &[
    Rule::Newline,
    Rule::WsThenRun(Class::DeepseekLetter),
    Rule::WsThenRun(Class::DeepseekPunct),
    Rule::TrailingWs,
    Rule::CjkRun,
    Rule::NumberRun,
];
const DEEPSEEK_CODER_RULES: &[Rule] = &[
    Rule::Newline,
    Rule::WsThenRun(Class::Letter),
    Rule::WsThenRun(Class::Punct),
    Rule::CjkRun,
    Rule::Number,
];
const TEKKEN_RULES: &[Rule] = &[Rule::Tekken];

const fn family(name: &'static str, rules: &'static [Rule]) -> PreTokenizer {
    PreTokenizer {
        name,
        rules,
        ignore_merges: false,
        add_bos: false,
    }
}

/// Every family herd knows, each with the `tokenizer.ggml.pre` names that select it (the
/// names llama.cpp's converter writes). The first name is the canonical one.
const FAMILIES: &[(&[&str], PreTokenizer)] = &[
    (&["default"], family("default", DEFAULT_RULES)),
    (
        &[
            "llama-bpe",
            "llama3",
            "llama-v3",
            "falcon3",
            "falcon-h1",
            "pixtral",
            "midm-2.0",
            "lfm2",
        ],
        PreTokenizer {
            name: "llama-bpe",
            rules: LLAMA3_RULES,
            ignore_merges: true,
            add_bos: true,
        },
    ),
    (&["dbrx"], family("dbrx", LLAMA3_RULES)),
    (&["smaug-bpe"], family("smaug-bpe", LLAMA3_RULES)),
    (
        &["qwen2", "deepseek-r1-qwen", "stablelm2", "megrez"],
        family("qwen2", QWEN2_RULES),
    ),
    (
        &[
            "gpt-2",
            "phi-2",
            "mpt",
            "olmo",
            "jais",
            "jina-es",
            "jina-de",
            "jina-v2-es",
            "jina-v2-de",
            "gigachat",
            "exaone4",
            "mellum",
            "a.x-4.0",
        ],
        family("gpt-2", GPT2_RULES),
    ),
    (
        &[
            "starcoder",
            "refact",
            "command-r",
            "codeshell",
            "exaone",
            "minerva-7b",
        ],
        family("starcoder", STARCODER_RULES),
    ),
    (&["smollm"], family("smollm", STARCODER_RULES)),
    (&["falcon"], family("falcon", FALCON_RULES)),
    (
        &["deepseek-llm"],
        family("deepseek-llm", DEEPSEEK_LLM_RULES),
    ),
    (
        &["deepseek-coder"],
        family("deepseek-coder", DEEPSEEK_CODER_RULES),
    ),
    (
        &["tekken"],
        PreTokenizer {
            name: "tekken",
            rules: TEKKEN_RULES,
            ignore_merges: true,
            add_bos: true,
        },
    ),
];

impl PreTokenizer {
    /// The family a `tokenizer.ggml.pre` name selects.
    pub fn lookup(name: &str) -> Option<PreTokenizer> {
        FAMILIES
            .iter()
            .find(|(names, _)| names.contains(&name))
            .map(|(_, p)| *p)
    }

    pub fn default_rules() -> PreTokenizer {
        FAMILIES[0].1
    }

    /// All accepted names, for error messages.
    pub fn known_names() -> String {
        let names: Vec<String> = FAMILIES
            .iter()
            .flat_map(|(n, _)| n.iter())
            .map(|n| format!("'{n}'"))
            .collect();
        names.join(", ")
    }

    /// Cuts `text` into words; `out` receives their byte ranges, in order, covering all of it.
    pub fn split(&self, text: &str, buf: &mut SplitBuf, out: &mut Vec<(usize, usize)>) {
        out.clear();
        if text.is_empty() {
            return;
        }
        buf.load(text);
        let n = buf.cps.len();
        let SplitBuf {
            cps,
            offsets,
            pieces,
            next,
        } = buf;
        pieces.clear();
        pieces.push((0, n));
        for rule in self.rules {
            next.clear();
            for &(start, end) in pieces.iter() {
                rule.split(cps, start, end, next);
            }
            std::mem::swap(pieces, next);
        }
        out.extend(pieces.iter().map(|&(s, e)| (offsets[s], offsets[e])));
    }
}

/// Where a segment of `text` that should be at least `min_end` bytes long may end: the first
/// place from there on between an ASCII letter and a space, else the end of the text. Every
/// family's rules end a word there, deciding so without looking past the space (a run of
/// letters stops at it, and the space's own word starts afresh), so pre-tokenizing the
/// segments one by one gives the same words as the whole text at once.
pub(crate) fn segment_end(text: &str, min_end: usize) -> usize {
    let bytes = text.as_bytes();
    let mut end = min_end.max(1);
    while end < bytes.len() {
        if bytes[end] == b' ' && bytes[end - 1].is_ascii_alphabetic() {
            return end;
        }
        end += 1;
    }
    bytes.len()
}

/// One character of the text being split, with its classes looked up once.
#[derive(Clone, Copy)]
struct Cp {
    c: char,
    f: Flags,
}

/// Buffers `split` reuses from call to call.
#[derive(Default)]
pub(crate) struct SplitBuf {
    cps: Vec<Cp>,
    /// Byte offset of each character, and the text's length at the end.
    offsets: Vec<usize>,
    pieces: Vec<(usize, usize)>,
    next: Vec<(usize, usize)>,
}

impl SplitBuf {
    fn load(&mut self, text: &str) {
        self.cps.clear();
        self.offsets.clear();
        for (i, c) in text.char_indices() {
            self.cps.push(Cp {
                c,
                f: unicode::flags(c),
            });
            self.offsets.push(i);
        }
        self.offsets.push(text.len());
    }
}

/// A view of one piece `[.., end)` of the characters: reads past `end` see nothing.
struct Piece<'a> {
    cps: &'a [Cp],
    end: usize,
}

impl Piece<'_> {
    #[inline]
    fn f(&self, i: usize) -> Flags {
        if i < self.end {
            self.cps[i].f
        } else {
            Flags::END
        }
    }
    #[inline]
    fn c(&self, i: usize) -> Option<char> {
        if i < self.end {
            Some(self.cps[i].c)
        } else {
            None
        }
    }
    /// The first index from `i` on whose flags fail `keep`.
    #[inline]
    fn run(&self, mut i: usize, keep: impl Fn(Flags) -> bool) -> usize {
        while keep(self.f(i)) {
            i += 1;
        }
        i
    }
    /// `'s|'t|'re|'ve|'m|'ll|'d` at `i` (ASCII case folded when `fold`): the match's end.
    fn contraction(&self, i: usize, fold: bool) -> Option<usize> {
        if self.c(i) != Some('\'') {
            return None;
        }
        let at = |k: usize| {
            let c = self.c(k)?;
            Some(if fold { c.to_ascii_lowercase() } else { c })
        };
        match at(i + 1)? {
            's' | 't' | 'm' | 'd' => Some(i + 2),
            n1 @ ('r' | 'v' | 'l') => {
                let n2 = at(i + 2)?;
                let ok = matches!((n1, n2), ('r', 'e') | ('v', 'e') | ('l', 'l'));
                ok.then_some(i + 3)
            }
            _ => None,
        }
    }
}

impl Rule {
    /// Splits the characters `[start, end)`, appending the pieces to `out`.
    fn split(self, cps: &[Cp], start: usize, end: usize, out: &mut Vec<(usize, usize)>) {
        let p = Piece { cps, end };
        match self {
            Rule::Gpt2 => split_gpt2(&p, start, out),
            Rule::Llama3 { max_digits } => split_llama3(&p, start, max_digits, false, out),
            Rule::Tekken => split_llama3(&p, start, 1, true, out),
            Rule::TrailingWs => {
                let mut ws_start = end;
                while ws_start > start && cps[ws_start - 1].f.is_ws() {
                    ws_start -= 1;
                }
                if ws_start > start {
                    out.push((start, ws_start));
                }
                if ws_start < end {
                    out.push((ws_start, end));
                }
            }
            _ => split_by_matches(&p, start, |i| self.match_at(&p, i), out),
        }
    }

    /// For rules that are one plain regular expression: the end of its match at `i`, if any.
    fn match_at(self, p: &Piece, i: usize) -> Option<usize> {
        let c = p.c(i)?;
        let f = p.f(i);
        let end = match self {
            Rule::PunctRun { backtick } => {
                let is = |k: usize| {
                    p.c(k).is_some_and(|c| {
                        p.f(k).is_punct()
                            || matches!(c, '$' | '+' | '<' | '=' | '>' | '^' | '~' | '|')
                            || (backtick && c == '`')
                    })
                };
                let mut k = i;
                while is(k) {
                    k += 1;
                }
                k
            }
            Rule::NumberRun => p.run(i, Flags::is_number),
            Rule::Number => i + usize::from(f.is_number()),
            Rule::AsciiDigits3 => {
                let digit = |k: usize| p.c(k).is_some_and(|c| c.is_ascii_digit());
                if digit(i) && digit(i + 1) && digit(i + 2) {
                    i + 3
                } else {
                    i
                }
            }
            Rule::Newline => i + usize::from(c == '\r' || c == '\n'),
            Rule::WsThenRun(class) => {
                let is = |k: usize| p.c(k).is_some_and(|c| class.contains(c, p.f(k)));
                let body = if f.is_ws() && is(i + 1) { i + 1 } else { i };
                let mut k = body;
                while is(k) {
                    k += 1;
                }
                if k > body {
                    k
                } else {
                    i
                }
            }
            Rule::CjkRun => {
                let mut k = i;
                while p.c(k).is_some_and(|c| is_deepseek_cjk(c, p.f(k))) {
                    k += 1;
                }
                k
            }
            Rule::Gpt2 | Rule::Llama3 { .. } | Rule::Tekken | Rule::TrailingWs => i,
        };
        (end > i).then_some(end)
    }
}

/// What a regex iterator gives: each match, and each stretch between matches, as pieces.
fn split_by_matches(
    p: &Piece,
    start: usize,
    match_at: impl Fn(usize) -> Option<usize>,
    out: &mut Vec<(usize, usize)>,
) {
    let mut gap = start;
    let mut i = start;
    while i < p.end {
        match match_at(i) {
            Some(e) => {
                if i > gap {
                    out.push((gap, i));
                }
                out.push((i, e));
                i = e;
                gap = e;
            }
            None => i += 1,
        }
    }
    if gap < p.end {
        out.push((gap, p.end));
    }
}

/// The whitespace alternatives shared by GPT-2 and Llama 3: `\s+(?!\S)|\s+` at `i` (with
/// Llama 3's `\s*[\r\n]+` first when `newlines`). Returns the match's end; a lone character
/// that is not whitespace (never reached: the other alternatives take every such character)
/// still makes progress.
fn whitespace(p: &Piece, i: usize, newlines: bool) -> usize {
    let mut n = 0;
    let mut after_newline = None;
    while p.f(i + n).is_ws() {
        if newlines && matches!(p.c(i + n), Some('\r' | '\n')) {
            after_newline = Some(i + n + 1);
        }
        n += 1;
    }
    if let Some(e) = after_newline {
        return e;
    }
    // A run of spaces before a word leaves its last space to the word.
    if n > 1 && i + n < p.end {
        return i + n - 1;
    }
    i + n.max(1)
}

fn split_gpt2(p: &Piece, start: usize, out: &mut Vec<(usize, usize)>) {
    let mut i = start;
    while i < p.end {
        let e = if let Some(e) = p.contraction(i, false) {
            e
        } else {
            let space = p.c(i) == Some(' ');
            let body = i + usize::from(space);
            let f = p.f(body);
            if f.is_letter() {
                p.run(body, Flags::is_letter)
            } else if f.is_number() {
                p.run(body, Flags::is_number)
            } else if f.is_other() {
                p.run(body, Flags::is_other)
            } else {
                whitespace(p, i, false)
            }
        };
        out.push((i, e));
        i = e;
    }
}

fn split_llama3(
    p: &Piece,
    start: usize,
    max_digits: usize,
    tekken: bool,
    out: &mut Vec<(usize, usize)>,
) {
    let mut i = start;
    while i < p.end {
        let c = p.cps[i].c;
        let f = p.cps[i].f;
        let e = if let Some(e) = (!tekken).then(|| p.contraction(i, true)).flatten() {
            e
        } else if let Some(e) = word(p, i, tekken) {
            e
        } else if f.is_number() {
            let run = p.run(i, Flags::is_number);
            // `\p{N}{1,D}` takes runs of digits D at a time from the left.
            let mut s = i;
            while run - s > max_digits {
                out.push((s, s + max_digits));
                s += max_digits;
            }
            i = s;
            run
        } else {
            let space = c == ' ';
            let body = i + usize::from(space);
            if p.f(body).is_other() {
                let mut k = p.run(body, Flags::is_other);
                while matches!(p.c(k), Some('\r' | '\n')) || (tekken && p.c(k) == Some('/')) {
                    k += 1;
                }
                k
            } else {
                whitespace(p, i, true)
            }
        };
        out.push((i, e));
        i = e;
    }
}

/// The word alternatives of Llama 3 (`[^\r\n\p{L}\p{N}]?\p{L}+`) and Tekken (the same optional
/// lead character, then letters split at case changes): the match's end at `i`, if any.
fn word(p: &Piece, i: usize, tekken: bool) -> Option<usize> {
    let c = p.cps[i].c;
    let f = p.cps[i].f;
    // The optional lead character: anything but a newline, a letter or a number.
    let lead = !(c == '\r' || c == '\n' || f.is_letter() || f.is_number());
    let body = i + usize::from(lead);
    if !tekken {
        return p.f(body).is_letter().then(|| p.run(body, Flags::is_letter));
    }
    // `U*L+` then `U+L*`, where U is a letter but a-z and L a letter but A-Z; non-ASCII letters
    // are both. Backtracking finds: the whole U run and the L run after it, if an L follows;
    // else the U run up to its last L-capable letter; else the whole U run.
    let upper = |k: usize| p.f(k).is_letter() && !p.cps[k].c.is_ascii_lowercase();
    let lower = |k: usize| p.f(k).is_letter() && !p.cps[k].c.is_ascii_uppercase();
    let mut run = body;
    while upper(run) {
        run += 1;
    }
    if lower(run) {
        let mut k = run;
        while lower(k) {
            k += 1;
        }
        return Some(k);
    }
    if let Some(k) = (body..run).rev().find(|&k| lower(k)) {
        return Some(k + 1);
    }
    (run > body).then_some(run)
}

impl Class {
    fn contains(self, c: char, f: Flags) -> bool {
        match self {
            Class::Letter => f.is_letter(),
            Class::Punct => f.is_punct(),
            // Explicit ranges never match whitespace: llama.cpp hands the regex engine a copy of
            // the text with every non-ASCII whitespace character replaced by a vertical tab.
            Class::DeepseekLetter => !f.is_ws() && in_ranges(c, DEEPSEEK_LETTERS),
            Class::DeepseekPunct => !f.is_ws() && in_ranges(c, DEEPSEEK_PUNCT),
        }
    }
}

fn is_deepseek_cjk(c: char, f: Flags) -> bool {
    // 一-龥 and ࠀ-一 meet at U+4E00.
    !f.is_ws() && matches!(c as u32, 0x0800..=0x9FA5 | 0xAC00..=0xD7FF)
}

fn in_ranges(c: char, ranges: &[(u32, u32)]) -> bool {
    let cp = c as u32;
    // Ranges are sorted and disjoint: find the last one starting at or before `cp`.
    let idx = ranges.partition_point(|&(lo, _)| lo <= cp);
    idx > 0 && cp <= ranges[idx - 1].1
}

const DEEPSEEK_PUNCT: &[(u32, u32)] = &[
    (0x21, 0x2F),
    (0x3A, 0x7E),
    (0x2018, 0x201F),
    (0x3000, 0x3002),
    (0xFF01, 0xFF0F),
    (0xFF1A, 0xFF5E),
];

/// DeepSeek LLM's letter class, as code point ranges (sorted). It is Unicode's cased letters
/// (Lu, Ll, Lt) of the version DeepSeek's tokenizer was made with.
const DEEPSEEK_LETTERS: &[(u32, u32)] = &[
    (0x41, 0x5A),
    (0x61, 0x7A),
    (0xB5, 0xB5),
    (0xC0, 0xD6),
    (0xD8, 0xF6),
    (0xF8, 0x1BA),
    (0x1BC, 0x1BF),
    (0x1C4, 0x293),
    (0x295, 0x2AF),
    (0x370, 0x373),
    (0x376, 0x377),
    (0x37B, 0x37D),
    (0x37F, 0x37F),
    (0x386, 0x386),
    (0x388, 0x38A),
    (0x38C, 0x38C),
    (0x38E, 0x3A1),
    (0x3A3, 0x3F5),
    (0x3F7, 0x481),
    (0x48A, 0x52F),
    (0x531, 0x556),
    (0x10A0, 0x10C5),
    (0x13A0, 0x13F5),
    (0x13F8, 0x13FD),
    (0x1C90, 0x1CBA),
    (0x1CBD, 0x1CBF),
    (0x1D00, 0x1D2B),
    (0x1D6B, 0x1D77),
    (0x1D79, 0x1D9A),
    (0x1E00, 0x1F15),
    (0x1F18, 0x1F1D),
    (0x1F20, 0x1F45),
    (0x1F48, 0x1F4D),
    (0x1F50, 0x1F57),
    (0x1F59, 0x1F59),
    (0x1F5B, 0x1F5B),
    (0x1F5D, 0x1F5D),
    (0x1F5F, 0x1F7D),
    (0x1F80, 0x1FB4),
    (0x1FB6, 0x1FBC),
    (0x1FBE, 0x1FBE),
    (0x1FC2, 0x1FC4),
    (0x1FC6, 0x1FCC),
    (0x1FD0, 0x1FD3),
    (0x1FD6, 0x1FDB),
    (0x1FE0, 0x1FEC),
    (0x1FF2, 0x1FF4),
    (0x1FF6, 0x1FFC),
    (0x2102, 0x2102),
    (0x2107, 0x2107),
    (0x210A, 0x2113),
    (0x2115, 0x2115),
    (0x2119, 0x211D),
    (0x2124, 0x2124),
    (0x2126, 0x2126),
    (0x2128, 0x2128),
    (0x212A, 0x212D),
    (0x212F, 0x2134),
    (0x2139, 0x2139),
    (0x213C, 0x213F),
    (0x2145, 0x2149),
    (0x214E, 0x214E),
    (0x2183, 0x2184),
    (0x2C00, 0x2C7B),
    (0x2C7E, 0x2CE4),
    (0x2CEB, 0x2CEE),
    (0x2CF2, 0x2CF3),
    (0xA640, 0xA66D),
    (0xA680, 0xA69B),
    (0xA722, 0xA76F),
    (0xA771, 0xA787),
    (0xA78B, 0xA78E),
    (0xAB70, 0xABBF),
    (0xFB00, 0xFB06),
    (0xFB13, 0xFB17),
    (0xFF21, 0xFF3A),
    (0xFF41, 0xFF5A),
    (0x10400, 0x1044F),
    (0x104B0, 0x104D3),
    (0x104D8, 0x104FB),
    (0x10C80, 0x10CB2),
    (0x10CC0, 0x10CF2),
    (0x118A0, 0x118DF),
    (0x1E900, 0x1E943),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits `text` with the family `pre` and compares the words.
    fn check(pre: &str, text: &str, expected: &[&str]) {
        let p = PreTokenizer::lookup(pre).unwrap_or_else(|| panic!("no family {pre}"));
        let mut buf = SplitBuf::default();
        let mut out = Vec::new();
        p.split(text, &mut buf, &mut out);
        let words: Vec<&str> = out.iter().map(|&(s, e)| &text[s..e]).collect();
        assert_eq!(words, expected, "{pre}: {text:?}");
    }

    #[test]
    fn gpt2() {
        check("gpt-2", "Hello world", &["Hello", " world"]);
        check(
            "gpt-2",
            "I'm here, don't",
            &["I", "'m", " here", ",", " don", "'t"],
        );
        check("gpt-2", "It'S", &["It", "'", "S"]);
        check("gpt-2", "a  b", &["a", " ", " b"]);
        check("gpt-2", "a   \n b", &["a", "   \n", " b"]);
        check("gpt-2", "x  ", &["x", "  "]);
        check("gpt-2", "12345 67", &["12345", " 67"]);
        check("gpt-2", " !!x\t\ty", &[" !!", "x", "\t", "\t", "y"]);
        check("gpt-2", "héllo wörld", &["héllo", " wörld"]);
    }

    #[test]
    fn llama3() {
        check("llama-bpe", "Hello world", &["Hello", " world"]);
        check("llama3", "I'M 12345", &["I", "'M", " ", "123", "45"]);
        check("llama-bpe", "a\n\n  b", &["a", "\n\n", " ", " b"]);
        check("llama-bpe", "x  \n\n  ", &["x", "  \n\n", "  "]);
        check("llama-bpe", "(x)...\n\ny", &["(x", ")...\n\n", "y"]);
        check("llama-bpe", "$hello", &["$hello"]);
        check("llama-bpe", " ?!", &[" ?!"]);
        check("qwen2", "12345", &["1", "2", "3", "4", "5"]);
    }

    #[test]
    fn starcoder_and_default() {
        check("starcoder", "x 123", &["x", " ", "1", "2", "3"]);
        check("smollm", "a1b", &["a", "1", "b"]);
        check("default", "a+b=1234", &["a", "+", "b", "=", "123", "4"]);
        check("falcon", "a`b 12345", &["a", "`", "b", " ", "123", "45"]);
    }

    #[test]
    fn deepseek() {
        check(
            "deepseek-coder",
            "ab, cd\n12",
            &["ab", ",", " cd", "\n", "1", "2"],
        );
        check("deepseek-coder", "你好 x", &["你好", " x"]);
        check(
            "deepseek-llm",
            "Hello, 世界!\n42  ",
            &["Hello", ",", " ", "世界", "!", "\n", "42", "  "],
        );
    }

    #[test]
    fn tekken() {
        check("tekken", "HelloWorld", &["Hello", "World"]);
        check("tekken", "HTTPServer", &["HTTPServer"]);
        check("tekken", "ABC def", &["ABC", " def"]);
        check("tekken", "a/b/", &["a", "/b", "/"]);
        check("tekken", "x ./\n", &["x", " ./\n"]);
        check("tekken", "I'm", &["I", "'m"]);
    }

    #[test]
    fn segments_split_like_the_whole_text() {
        // Pseudo-random text over characters that exercise every rule, cut into short segments.
        let alphabet: Vec<char> = "ab Z'sre\n\t 1234.,!?/()-é中😀\u{a0}\u{3000}Ⅻ\u{301}  "
            .chars()
            .collect();
        let mut x = 7u64;
        let text: String = (0..20_000)
            .map(|_| {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                alphabet[(x >> 33) as usize % alphabet.len()]
            })
            .collect();
        let mut buf = SplitBuf::default();
        let mut words = Vec::new();
        for (names, p) in FAMILIES {
            p.split(&text, &mut buf, &mut words);
            let whole: Vec<&str> = words.iter().map(|&(s, e)| &text[s..e]).collect();
            let mut pieces = Vec::new();
            let mut start = 0;
            let mut n_segments = 0;
            while start < text.len() {
                let end = segment_end(&text, start + 64);
                p.split(&text[start..end], &mut buf, &mut words);
                pieces.extend(words.iter().map(|&(s, e)| &text[start + s..start + e]));
                start = end;
                n_segments += 1;
            }
            assert!(n_segments > 50, "{n_segments} segments");
            assert_eq!(whole, pieces, "{}", names[0]);
        }
    }

    #[test]
    fn names() {
        assert!(PreTokenizer::lookup("no-such-family").is_none());
        for name in [
            "llama-bpe",
            "llama3",
            "qwen2",
            "gpt-2",
            "starcoder",
            "smollm",
            "deepseek-llm",
            "deepseek-coder",
            "falcon",
            "tekken",
            "default",
        ] {
            assert!(PreTokenizer::lookup(name).is_some(), "{name}");
        }
        assert!(PreTokenizer::known_names().contains("'tekken'"));
    }
}
