//! `Tokenizer`: one vocabulary, its model (byte-level BPE or SentencePiece), its special tokens,
//! and the defaults llama.cpp applies per family. Building one checks everything a file could
//! get wrong, so that encoding and decoding never fail afterwards.

use std::borrow::Cow;

use crate::bpe::{Bpe, BpeState};
use crate::decode::Pieces;
use crate::error::TokenizerError;
use crate::normalize::Normalizer;
use crate::pretok::PreTokenizer;
use crate::special::{Fragment, SpecialToken, Specials};
use crate::spm::Spm;
use crate::vocab::{TokenType, Vocab};

/// A vocabulary as plain values: what the `tokenizer.ggml.*` keys of a GGUF file hold.
#[derive(Clone, Debug, Default)]
pub struct VocabConfig {
    /// `tokenizer.ggml.model`: "gpt2" (byte-level BPE) or "llama" (SentencePiece).
    pub model: String,
    /// `tokenizer.ggml.pre`: the pre-tokenizer family of a BPE vocabulary; None is "default".
    pub pre: Option<String>,
    pub tokens: Vec<String>,
    /// Merge priorities of SentencePiece pieces; all 0 when absent.
    pub scores: Option<Vec<f32>>,
    /// 0 undefined, 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte; all
    /// normal when absent.
    pub token_types: Option<Vec<i32>>,
    /// BPE merges, "left right", best first.
    pub merges: Option<Vec<String>>,
    pub bos_id: Option<u32>,
    pub eos_id: Option<u32>,
    pub unk_id: Option<u32>,
    pub pad_id: Option<u32>,
    pub eot_id: Option<u32>,
    pub eom_id: Option<u32>,
    pub add_bos: Option<bool>,
    pub add_eos: Option<bool>,
    /// SentencePiece: put a space before the text (default true).
    pub add_space_prefix: Option<bool>,
    /// `general.name`: only for the one family llama.cpp recognises by name (Phi-3, whose
    /// special tokens swallow the whitespace after them).
    pub name: Option<String>,
    /// Hugging Face's whitespace stripping of added tokens (`tokenizer.json`): the ids that
    /// swallow the whitespace after them and before them, Unicode whitespace. When either is
    /// given, it replaces the Phi-3 rule above.
    pub rstrip_ids: Option<Vec<u32>>,
    pub lstrip_ids: Option<Vec<u32>>,
    /// Hugging Face's `Metaspace` prepend scheme, "first" or "always", which differs from
    /// SentencePiece's space prefix: no `▁` goes before text that starts with a space, and with
    /// "first" only text at the very start of the input gets one (not text after a special
    /// token). None: llama.cpp's rule (every run of text, at the start or after a special).
    pub metaspace_prepend: Option<String>,
    /// Hugging Face's Unicode normalizer of the text between added tokens: "NFC" (Qwen 2, 2.5
    /// and 3), which llama.cpp does not apply. None: the text as it is.
    pub normalizer: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Load a BPE vocabulary whose pre-tokenizer herd does not know with the default rules,
    /// instead of failing. Text may then split differently from the model's own tokenizer.
    pub force_default_pre: bool,
}

pub(crate) enum Model {
    Bpe(Bpe),
    Spm(Spm),
}

/// One tokenizer serves many threads (a server's requests) at once.
const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<Tokenizer>();
};

pub struct Tokenizer {
    pub(crate) vocab: Vocab,
    pub(crate) model: Model,
    model_name: String,
    pub(crate) pieces: Pieces,
    specials: Specials,
    bos: Option<u32>,
    eos: Option<u32>,
    unk: Option<u32>,
    pad: Option<u32>,
    eot: Option<u32>,
    eom: Option<u32>,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
    prefix_rule: PrefixRule,
    normalizer: Option<Normalizer>,
    eog: Vec<u32>,
}

/// Which runs of plain text get SentencePiece's space prefix.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PrefixRule {
    /// Every run, at the start or after a special token (llama.cpp, and Hugging Face's
    /// `Prepend` normalizer).
    EveryRun,
    /// Every run that does not start with a space (`Metaspace`, prepend_scheme "always").
    UnlessSpace,
    /// Only a run at the start of the input that does not start with a space ("first").
    FirstUnlessSpace,
}

/// Texts of tokens that end a turn or a document in the chat formats herd may meet. They are
/// end-of-generation tokens, and control tokens even if a file says otherwise, as in llama.cpp.
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<\u{FF5C}end\u{2581}of\u{2581}sentence\u{FF5C}>",
];

/// Texts of end-of-turn tokens, in the order one is taken as EOT when a file names none (all
/// are in `EOG_TEXTS` too).
const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<EOT>",
    "_<EOT>",
    "<\u{FF5C}end\u{2581}of\u{2581}sentence\u{FF5C}>",
    "<end_of_utterance>",
];

impl Tokenizer {
    /// Builds a tokenizer from plain values. Every inconsistency is an error here.
    pub fn new(cfg: VocabConfig, opts: &LoadOptions) -> Result<Tokenizer, TokenizerError> {
        let mut vocab = Vocab::new(cfg.tokens, cfg.scores, cfg.token_types)?;
        let n = vocab.len();
        let is_spm = match cfg.model.as_str() {
            "llama" => true,
            "gpt2" => false,
            other => return Err(TokenizerError::UnknownModel(other.to_string())),
        };
        let in_range = |key: &'static str, id: Option<u32>| match id {
            Some(id) if id as usize >= n => Err(TokenizerError::SpecialIdOutOfRange {
                key,
                id: u64::from(id),
                n_tokens: n,
            }),
            _ => Ok(id),
        };
        // SentencePiece vocabularies put unk, BOS and EOS first unless they say otherwise.
        let spm_default = |id: u32| (is_spm && (id as usize) < n).then_some(id);
        let bos = in_range("bos", cfg.bos_id.or(spm_default(1)))?;
        let eos = in_range("eos", cfg.eos_id.or(spm_default(2)))?;
        let unk = in_range("unknown", cfg.unk_id.or(spm_default(0)))?;
        let pad = in_range("padding", cfg.pad_id)?;
        let mut eot = in_range("eot", cfg.eot_id)?;
        let eom = in_range("eom", cfg.eom_id)?;

        // End of generation: the named ids, and every token whose text says it ends a turn.
        // Those become control tokens before the model is built, so that no merge makes one.
        if eot.is_none() {
            eot = EOT_TEXTS.iter().find_map(|t| vocab.id(t));
        }
        let mut eog: Vec<u32> = [eos, eot, eom].into_iter().flatten().collect();
        for text in EOG_TEXTS {
            if let Some(id) = vocab.id(text) {
                vocab.set_type(id, TokenType::Control);
                eog.push(id);
            }
        }
        eog.sort_unstable();
        eog.dedup();

        let (model, family_add_bos) = if is_spm {
            (Model::Spm(Spm::new(&vocab, unk)?), true)
        } else {
            let pre = match cfg.pre.as_deref() {
                None => PreTokenizer::default_rules(),
                Some(name) => match PreTokenizer::lookup(name) {
                    Some(p) => p,
                    None if opts.force_default_pre => PreTokenizer::default_rules(),
                    None => {
                        return Err(TokenizerError::UnknownPre {
                            name: name.to_string(),
                            known: PreTokenizer::known_names(),
                        })
                    }
                },
            };
            let merges = cfg.merges.ok_or(TokenizerError::MissingMerges)?;
            (Model::Bpe(Bpe::new(&vocab, &merges, pre)?), pre.add_bos)
        };
        let add_bos = cfg.add_bos.unwrap_or(family_add_bos);
        let add_eos = cfg.add_eos.unwrap_or(false);
        if add_bos && bos.is_none() {
            return Err(TokenizerError::MissingSpecialId { which: "bos" });
        }
        if add_eos && eos.is_none() {
            return Err(TokenizerError::MissingSpecialId { which: "eos" });
        }

        // Phi-3's special tokens swallow the whitespace after them (its Hugging Face tokenizer
        // says rstrip), all but these three; llama.cpp knows the family by its name.
        let phi3 = cfg
            .name
            .map(|n| n.to_lowercase())
            .is_some_and(|n| n.contains("phi-3") || n.contains("phi3"));
        let hf_strip = cfg.rstrip_ids.is_some() || cfg.lstrip_ids.is_some();
        let listed =
            |ids: &Option<Vec<u32>>, id: u32| ids.as_ref().is_some_and(|l| l.contains(&id));
        let rstrip = |id: u32, text: &str| {
            if hf_strip {
                listed(&cfg.rstrip_ids, id)
            } else {
                phi3 && !["<unk>", "<s>", "<|endoftext|>"].contains(&text)
            }
        };
        let specials = Specials::new(
            (0..n as u32)
                .filter_map(|id| {
                    let always = match vocab.token_type(id) {
                        TokenType::Control | TokenType::Unknown => false,
                        TokenType::UserDefined => true,
                        _ => return None,
                    };
                    let text = vocab.text(id);
                    Some(SpecialToken {
                        id,
                        text,
                        always,
                        rstrip: rstrip(id, text),
                        lstrip: listed(&cfg.lstrip_ids, id),
                        unicode_ws: hf_strip,
                    })
                })
                .collect(),
        )?;
        let prefix_rule = match cfg.metaspace_prepend.as_deref() {
            None => PrefixRule::EveryRun,
            Some("always") => PrefixRule::UnlessSpace,
            Some("first") => PrefixRule::FirstUnlessSpace,
            Some(other) => {
                return Err(TokenizerError::BadTokenizerJson {
                    what: format!(
                        "{}: unknown Metaspace prepend scheme {other:?} (herd knows \"first\" and \"always\")",
                        crate::hf::METASPACE_KEY
                    ),
                })
            }
        };
        let normalizer = match cfg.normalizer.as_deref() {
            None => None,
            Some(name) => Some(Normalizer::from_name(name).ok_or_else(|| {
                TokenizerError::BadTokenizerJson {
                    what: format!(
                        "{}: unknown normalizer {name:?} (herd knows \"NFC\")",
                        crate::hf::NORMALIZER_KEY
                    ),
                }
            })?),
        };
        let pieces = Pieces::new(&vocab, is_spm);
        Ok(Tokenizer {
            model_name: cfg.model,
            vocab,
            model,
            pieces,
            specials,
            bos,
            eos,
            unk,
            pad,
            eot,
            eom,
            add_bos,
            add_eos,
            add_space_prefix: is_spm && cfg.add_space_prefix.unwrap_or(true),
            prefix_rule,
            normalizer,
            eog,
        })
    }

    /// Token ids of `text`. With `parse_special`, control tokens written in the text
    /// (`<|im_start|>`) become their ids; without, they are plain text. User-defined tokens
    /// are always found. `add_special` adds BOS/EOS as the vocabulary asks.
    pub fn encode(&self, text: &str, parse_special: bool, add_special: bool) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && self.add_bos {
            out.extend(self.bos);
        }
        let mut fragments = Vec::new();
        self.specials.partition(text, parse_special, &mut fragments);
        match &self.model {
            Model::Bpe(bpe) => {
                // The runs first: the state's word cache borrows them for the whole text.
                let runs: Vec<Cow<str>> = fragments
                    .iter()
                    .map(|f| match *f {
                        Fragment::Text(a, b) => self.normalized(&text[a..b]),
                        Fragment::Token(_) => Cow::Borrowed(""),
                    })
                    .collect();
                let mut st = BpeState::default();
                for (f, run) in fragments.iter().zip(&runs) {
                    match *f {
                        Fragment::Text(..) => bpe.encode(run, &mut out, &mut st),
                        Fragment::Token(id) => out.push(id),
                    }
                }
            }
            Model::Spm(spm) => {
                // SentencePiece starts every run of plain text, at the start or after a special
                // token, with a space.
                let mut after_special = true;
                for f in fragments {
                    match f {
                        Fragment::Text(a, b) => {
                            let starts_with_space = text[a..b].starts_with(' ');
                            let prefix = self.add_space_prefix
                                && match self.prefix_rule {
                                    PrefixRule::EveryRun => after_special,
                                    PrefixRule::UnlessSpace => !starts_with_space,
                                    PrefixRule::FirstUnlessSpace => a == 0 && !starts_with_space,
                                };
                            let run = self.normalized(&text[a..b]);
                            spm.encode(&self.vocab, &run, prefix, &mut out);
                            after_special = false;
                        }
                        Fragment::Token(id) => {
                            out.push(id);
                            after_special = true;
                        }
                    }
                }
            }
        }
        if add_special && self.add_eos {
            out.extend(self.eos);
        }
        out
    }

    /// A run of plain text (between added tokens) as the model sees it: normalized where the
    /// vocabulary asks, as Hugging Face normalizes only the text its added tokens leave.
    fn normalized<'t>(&self, run: &'t str) -> Cow<'t, str> {
        match self.normalizer {
            Some(n) => n.apply(run),
            None => Cow::Borrowed(run),
        }
    }

    /// The text of `ids`, without control tokens. Bytes that do not form UTF-8 become U+FFFD;
    /// ids out of range are skipped. SentencePiece's leading space, which encoding adds, comes
    /// off the first token (after BOS).
    pub fn decode(&self, ids: &[u32]) -> String {
        self.decode_with(ids, false)
    }

    /// As `decode`, but control tokens appear as their text.
    pub fn decode_special(&self, ids: &[u32]) -> String {
        self.decode_with(ids, true)
    }

    /// The bytes token `id` stands for (its text, for control tokens); empty if out of range.
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        if (id as usize) < self.n_vocab() {
            self.pieces.bytes(id)
        } else {
            &[]
        }
    }

    /// The token's text as the vocabulary writes it (GPT-2 alphabet, U+2581 for spaces).
    pub fn token_text(&self, id: u32) -> Option<&str> {
        ((id as usize) < self.n_vocab()).then(|| self.vocab.text(id))
    }

    pub fn token_type(&self, id: u32) -> Option<TokenType> {
        ((id as usize) < self.n_vocab()).then(|| self.vocab.token_type(id))
    }

    /// The id of the token whose vocabulary text is `text`.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.vocab.id(text)
    }

    pub fn n_vocab(&self) -> usize {
        self.vocab.len()
    }

    pub fn bos_id(&self) -> Option<u32> {
        self.bos
    }
    pub fn eos_id(&self) -> Option<u32> {
        self.eos
    }
    pub fn unk_id(&self) -> Option<u32> {
        self.unk
    }
    pub fn pad_id(&self) -> Option<u32> {
        self.pad
    }
    pub fn eot_id(&self) -> Option<u32> {
        self.eot
    }
    pub fn eom_id(&self) -> Option<u32> {
        self.eom
    }
    /// Whether `encode(.., add_special = true)` starts with BOS.
    pub fn adds_bos(&self) -> bool {
        self.add_bos
    }
    pub fn adds_eos(&self) -> bool {
        self.add_eos
    }

    /// Whether generation should stop at `id`.
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.binary_search(&id).is_ok()
    }

    /// End-of-generation ids, sorted: EOS, EOT, EOM, and tokens whose text ends a turn.
    pub fn eog_ids(&self) -> &[u32] {
        &self.eog
    }

    /// "gpt2" or "llama".
    pub fn model_name(&self) -> &str {
        &self.model_name
    }

    /// The pre-tokenizer rules in use: the family's canonical name ("default" when forced, and
    /// for SentencePiece, which has none).
    pub fn pre_name(&self) -> &str {
        match &self.model {
            Model::Bpe(b) => b.pre.name,
            Model::Spm(_) => "default",
        }
    }

    pub(crate) fn strips_leading_space(&self) -> bool {
        self.add_space_prefix
    }
}
