//! Hugging Face `tokenizer.json` (+ `tokenizer_config.json`, `config.json`) to the
//! `tokenizer.ggml.*` keys llama.cpp's `convert_hf_to_gguf.py` writes for the same folder, so
//! that a Hugging Face folder loads through the same path as a GGUF file and tokenizes as the
//! `tokenizers` package does.
//!
//! Two shapes of tokenizer are understood, and anything else is refused by the name of the
//! component herd does not implement:
//! - byte-level BPE (`ByteLevel` pre-tokenizer, alone or after one `Split` regex): the regex is
//!   recognised by its exact text and named as llama.cpp's `tokenizer.ggml.pre` names it;
//! - SentencePiece-style BPE (byte fallback, `▁` for spaces, by `Metaspace` or by a
//!   `Replace`/`Prepend` normalizer): written as `tokenizer.ggml.model = llama`, with scores that
//!   order the pieces as the merge list orders them.
//!
//! Either may have an `NFC` normalizer (Qwen's), carried in `herd.tokenizer.normalizer`.

use std::collections::HashMap;
use std::path::Path;

use herd_gguf::{Gguf, Value, ValueType};
use serde_json::{Map, Value as Json};

use crate::error::TokenizerError;
use crate::pretok::PreTokenizer;
use crate::tokenizer::{LoadOptions, Tokenizer, VocabConfig};
use crate::vocab::TokenType;

/// GPT-2's own regex (the one `ByteLevel` applies with `use_regex`).
const GPT2_REGEX: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
/// Llama 3's split regex (three-digit numbers).
const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen 2's: Llama 3's with single digits.
const QWEN2_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// herd's own keys (llama.cpp has none for it): the added tokens that swallow the whitespace
/// after (rstrip) or before (lstrip) them, as `tokenizers` strips it. Written only where some
/// added token strips; llama.cpp, which ignores them, strips only Phi-3's tokens, by its name.
pub const RSTRIP_KEY: &str = "herd.tokenizer.rstrip_ids";
pub const LSTRIP_KEY: &str = "herd.tokenizer.lstrip_ids";
/// herd's own key for a `Metaspace` pre-tokenizer's prepend scheme ("first" or "always"), whose
/// space prefix llama.cpp's `add_space_prefix` does not describe exactly (see
/// `VocabConfig::metaspace_prepend`). Written with `tokenizer.ggml.add_space_prefix` = true.
pub const METASPACE_KEY: &str = "herd.tokenizer.metaspace_prepend";
/// herd's own key for a Unicode normalizer of the text between added tokens ("NFC", Qwen 2, 2.5
/// and 3), which llama.cpp's converter drops and llama.cpp does not apply.
pub const NORMALIZER_KEY: &str = "herd.tokenizer.normalizer";

/// SentencePiece's visible space.
const SPACE: &str = "\u{2581}";


/// The `tokenizer.*` keys of a Hugging Face tokenizer, as llama.cpp's converter writes them
/// for a folder holding these files (see `gguf_keys_from_hf` for `config.json`'s part).
pub fn gguf_keys_from_tokenizer_json(
    tokenizer_json: &str,
    tokenizer_config_json: Option<&str>,
) -> Result<Vec<(String, Value)>, TokenizerError> {
    gguf_keys_from_hf(tokenizer_json, tokenizer_config_json, None)
}

/// As `gguf_keys_from_tokenizer_json`, with the model's `config.json`, from which the converter
/// takes the vocabulary size (the vocabulary is padded to it with unused `[PADn]` tokens, so
/// that it matches the embedding matrix) and special ids the tokenizer files do not name
/// (`bos_token_id`, ...).
pub fn gguf_keys_from_hf(
    tokenizer_json: &str,
    tokenizer_config_json: Option<&str>,
    config_json: Option<&str>,
) -> Result<Vec<(String, Value)>, TokenizerError> {
    let tj = parse("tokenizer.json", tokenizer_json)?;
    let tc = tokenizer_config_json
        .map(|s| parse("tokenizer_config.json", s))
        .transpose()?;
    let cfg = config_json.map(|s| parse("config.json", s)).transpose()?;
    Converter::new(&tj, tc.as_ref(), cfg.as_ref())?.keys()
}

impl Tokenizer {
    /// The tokenizer of a Hugging Face folder's `tokenizer.json` (and `tokenizer_config.json`
    /// for the special tokens and BOS/EOS flags): the same as `from_gguf` on the keys
    /// `gguf_keys_from_tokenizer_json` makes.
    pub fn from_tokenizer_json(
        tokenizer_json: &str,
        tokenizer_config_json: Option<&str>,
        opts: &LoadOptions,
    ) -> Result<Tokenizer, TokenizerError> {
        let keys = gguf_keys_from_tokenizer_json(tokenizer_json, tokenizer_config_json)?;
        Tokenizer::new(VocabConfig::from_keys(&keys)?, opts)
    }
}

impl VocabConfig {
    /// The vocabulary of a list of GGUF keys (as `gguf_keys_from_tokenizer_json` returns), read
    /// by `from_gguf` from a model of those keys alone, so the keys are read one way only.
    pub fn from_keys(keys: &[(String, Value)]) -> Result<VocabConfig, TokenizerError> {
        let g = Gguf::from_parts(Path::new("tokenizer.json"), keys.to_vec(), Vec::new())?;
        VocabConfig::from_gguf(&g)
    }
}

fn parse(file: &str, text: &str) -> Result<Json, TokenizerError> {
    serde_json::from_str(text).map_err(|e| TokenizerError::BadTokenizerJson {
        what: format!("{file} is not valid JSON: {e}"),
    })
}

fn bad(what: impl Into<String>) -> TokenizerError {
    TokenizerError::BadTokenizerJson { what: what.into() }
}

fn unsupported(component: impl Into<String>) -> TokenizerError {
    TokenizerError::UnsupportedHf {
        component: component.into(),
    }
}

/// The `type` of a component object, for messages and dispatch.
fn kind(v: &Json) -> &str {
    v.get("type").and_then(Json::as_str).unwrap_or("(no type)")
}

/// How the model's words are formed from text.
enum Shape {
    /// Byte-level BPE with this `tokenizer.ggml.pre` family.
    ByteLevel { pre: &'static str },
    /// SentencePiece-style BPE; whether a `▁` goes before each run of text.
    SentencePiece {
        space_prefix: bool,
        /// A `Metaspace` prepend scheme other than "never".
        metaspace: Option<&'static str>,
    },
}

struct Converter<'a> {
    tj: &'a Json,
    tc: Option<&'a Json>,
    cfg: Option<&'a Json>,
    shape: Shape,
    /// `model.vocab`, text -> id.
    vocab: &'a Map<String, Json>,
    /// `model.merges` as "left right" pairs, best first.
    merges: Vec<(String, String)>,
    added: Vec<Added<'a>>,
    unk_token: Option<&'a str>,
    /// An `NFC` normalizer (alone or in the normalizer Sequence).
    nfc: bool,
}

/// One entry of `added_tokens`.
struct Added<'a> {
    id: u32,
    content: &'a str,
    normalized: bool,
    special: bool,
    lstrip: bool,
    rstrip: bool,
}

impl<'a> Converter<'a> {
    fn new(
        tj: &'a Json,
        tc: Option<&'a Json>,
        cfg: Option<&'a Json>,
    ) -> Result<Converter<'a>, TokenizerError> {
        let model = tj
            .get("model")
            .filter(|m| m.is_object())
            .ok_or_else(|| bad("tokenizer.json has no 'model' object"))?;
        match kind(model) {
            "BPE" => {}
            other => {
                return Err(unsupported(format!(
                    "model '{other}' (herd implements BPE models only)"
                )))
            }
        }
        for (field, what) in [
            ("continuing_subword_prefix", "a continuing-subword prefix"),
            ("end_of_word_suffix", "an end-of-word suffix"),
        ] {
            if model
                .get(field)
                .and_then(Json::as_str)
                .is_some_and(|s| !s.is_empty())
            {
                return Err(unsupported(format!("BPE model with {what} ({field})")));
            }
        }
        if model
            .get("dropout")
            .and_then(Json::as_f64)
            .is_some_and(|d| d > 0.0)
        {
            return Err(unsupported("BPE model with dropout"));
        }
        let vocab = model
            .get("vocab")
            .and_then(Json::as_object)
            .ok_or_else(|| bad("model.vocab is missing or not an object"))?;
        let merges = read_merges(model.get("merges"))?;
        let byte_fallback = model
            .get("byte_fallback")
            .and_then(Json::as_bool)
            .unwrap_or(false);
        let ignore_merges = model
            .get("ignore_merges")
            .and_then(Json::as_bool)
            .unwrap_or(false);
        let unk_token = model.get("unk_token").and_then(Json::as_str);

        let mut added = Vec::new();
        if let Some(list) = tj.get("added_tokens").filter(|v| !v.is_null()) {
            let list = list
                .as_array()
                .ok_or_else(|| bad("added_tokens is not a list"))?;
            for (i, a) in list.iter().enumerate() {
                let id = a
                    .get("id")
                    .and_then(Json::as_u64)
                    .and_then(|id| u32::try_from(id).ok())
                    .ok_or_else(|| bad(format!("added_tokens[{i}] has no valid id")))?;
                let content = a
                    .get("content")
                    .and_then(Json::as_str)
                    .ok_or_else(|| bad(format!("added_tokens[{i}] has no content")))?;
                let flag = |k: &str| a.get(k).and_then(Json::as_bool).unwrap_or(false);
                if flag("single_word") {
                    return Err(unsupported(format!(
                        "added token {content:?} with single_word"
                    )));
                }
                // Hugging Face matches a `normalized` token in the normalized text; herd finds
                // every added token before normalizing, which is the same only where there is
                // nothing to normalize. Missing means true, as in `tokenizers`.
                let normalized = a.get("normalized").and_then(Json::as_bool).unwrap_or(true);
                added.push(Added {
                    id,
                    content,
                    normalized,
                    special: flag("special"),
                    lstrip: flag("lstrip"),
                    rstrip: flag("rstrip"),
                });
            }
        }

        // NFC commutes with everything else herd accepts (spaces and '▁' neither compose nor
        // decompose), so wherever it stands in a Sequence it is applied first.
        let mut normalizers = normalizer_list(tj)?;
        let nfc = normalizers.iter().any(|n| kind(n) == "NFC");
        normalizers.retain(|n| kind(n) != "NFC");
        if nfc {
            if let Some(a) = added.iter().find(|a| a.normalized) {
                return Err(unsupported(format!(
                    "added token {:?} with normalized: true under an NFC normalizer (herd finds \
                     added tokens in the text before normalizing it)",
                    a.content
                )));
            }
        }
        let shape = if byte_fallback {
            Self::sentencepiece_shape(tj, &normalizers, ignore_merges)?
        } else {
            Self::byte_level_shape(tj, &normalizers, ignore_merges)?
        };
        Ok(Converter {
            tj,
            tc,
            cfg,
            shape,
            vocab,
            merges,
            added,
            unk_token,
            nfc,
        })
    }

    /// Byte-level BPE: no normalizer but NFC, a `ByteLevel` pre-tokenizer (with GPT-2's regex,
    /// or after one `Split` by a regex herd knows, or after `Digits`).
    fn byte_level_shape(
        tj: &Json,
        normalizers: &[&Json],
        ignore_merges: bool,
    ) -> Result<Shape, TokenizerError> {
        if let Some(n) = normalizers.first() {
            return Err(unsupported(format!(
                "normalizer '{}' with a byte-level BPE model",
                describe(n)
            )));
        }
        let pre = tj
            .get("pre_tokenizer")
            .filter(|v| !v.is_null())
            .ok_or_else(|| unsupported("a byte-level BPE model without a pre-tokenizer"))?;
        let byte_level = |v: &Json, use_regex: bool| -> Result<(), TokenizerError> {
            if kind(v) != "ByteLevel" {
                return Err(unsupported(format!("pre-tokenizer '{}'", describe(pre))));
            }
            if v.get("add_prefix_space")
                .and_then(Json::as_bool)
                .unwrap_or(false)
            {
                return Err(unsupported(
                    "pre-tokenizer 'ByteLevel' with add_prefix_space",
                ));
            }
            let regex = v.get("use_regex").and_then(Json::as_bool).unwrap_or(true);
            if regex != use_regex {
                return Err(unsupported(format!("pre-tokenizer '{}'", describe(pre))));
            }
            Ok(())
        };
        let name = match kind(pre) {
            "ByteLevel" => {
                byte_level(pre, true)?;
                "gpt-2"
            }
            "Sequence" => {
                let parts = pre
                    .get("pretokenizers")
                    .and_then(Json::as_array)
                    .ok_or_else(|| bad("pre_tokenizer Sequence without 'pretokenizers'"))?;
                match parts.as_slice() {
                    [split, bl] if kind(split) == "Split" => {
                        byte_level(bl, false)?;
                        let regex = split
                            .get("pattern")
                            .and_then(|p| p.get("Regex"))
                            .and_then(Json::as_str)
                            .ok_or_else(|| {
                                unsupported(format!("pre-tokenizer '{}'", describe(split)))
                            })?;
                        let behavior = split.get("behavior").and_then(Json::as_str);
                        let invert = split.get("invert").and_then(Json::as_bool).unwrap_or(false);
                        if behavior != Some("Isolated") || invert {
                            return Err(unsupported(format!(
                                "pre-tokenizer Split with behavior {behavior:?}, invert {invert} \
                                 (herd implements Isolated, not inverted)"
                            )));
                        }
                        match regex {
                            LLAMA3_REGEX if ignore_merges => "llama-bpe",
                            LLAMA3_REGEX => "smaug-bpe",
                            QWEN2_REGEX => "qwen2",
                            GPT2_REGEX => "gpt-2",
                            other => {
                                return Err(unsupported(format!(
                                    "pre-tokenizer Split regex {other:?} (herd knows the regexes \
                                     of GPT-2, Llama 3 and Qwen 2)"
                                )))
                            }
                        }
                    }
                    [digits, bl] if kind(digits) == "Digits" => {
                        byte_level(bl, true)?;
                        if !digits
                            .get("individual_digits")
                            .and_then(Json::as_bool)
                            .unwrap_or(false)
                        {
                            return Err(unsupported(
                                "pre-tokenizer Digits without individual_digits",
                            ));
                        }
                        "starcoder"
                    }
                    _ => return Err(unsupported(format!("pre-tokenizer '{}'", describe(pre)))),
                }
            }
            _ => return Err(unsupported(format!("pre-tokenizer '{}'", describe(pre)))),
        };
        let family = PreTokenizer::lookup(name).expect("every name above is a herd family");
        if family.ignore_merges != ignore_merges {
            return Err(unsupported(format!(
                "BPE ignore_merges = {ignore_merges} with the '{name}' pre-tokenizer"
            )));
        }
        Ok(Shape::ByteLevel { pre: name })
    }

    /// SentencePiece-style BPE: spaces become `▁`, by a `Replace` normalizer (after a `Prepend`
    /// of `▁` or not) or by a `Metaspace` pre-tokenizer (any prepend scheme, without split).
    fn sentencepiece_shape(
        tj: &Json,
        normalizers: &[&Json],
        ignore_merges: bool,
    ) -> Result<Shape, TokenizerError> {
        if ignore_merges {
            return Err(unsupported("BPE with byte_fallback and ignore_merges"));
        }
        let mut prepend = false;
        let mut replace = false;
        for (i, n) in normalizers.iter().enumerate() {
            match kind(n) {
                "Prepend" if i == 0 && n.get("prepend").and_then(Json::as_str) == Some(SPACE) => {
                    prepend = true
                }
                "Replace"
                    if !replace
                        && n.get("pattern")
                            .and_then(|p| p.get("String"))
                            .and_then(Json::as_str)
                            == Some(" ")
                        && n.get("content").and_then(Json::as_str) == Some(SPACE) =>
                {
                    replace = true
                }
                _ => return Err(unsupported(format!("normalizer '{}'", describe(n)))),
            }
        }
        match tj.get("pre_tokenizer").filter(|v| !v.is_null()) {
            None if replace => Ok(Shape::SentencePiece {
                space_prefix: prepend,
                metaspace: None,
            }),
            None => Err(unsupported(
                "a BPE model with byte_fallback but neither a Metaspace pre-tokenizer nor a \
                 normalizer that replaces spaces with '▁'",
            )),
            Some(p) if kind(p) == "Metaspace" && normalizers.is_empty() => {
                if p.get("replacement").and_then(Json::as_str) != Some(SPACE) {
                    return Err(unsupported(
                        "pre-tokenizer 'Metaspace' with a replacement other than '▁'",
                    ));
                }
                if p.get("split").and_then(Json::as_bool).unwrap_or(true) {
                    return Err(unsupported("pre-tokenizer 'Metaspace' with split: true"));
                }
                let metaspace = match p.get("prepend_scheme").and_then(Json::as_str) {
                    Some("never") => None,
                    Some("first") => Some("first"),
                    Some("always") => Some("always"),
                    // The old form: add_prefix_space, which is "always".
                    None if p.get("add_prefix_space").and_then(Json::as_bool) == Some(true) => {
                        Some("always")
                    }
                    None if p.get("add_prefix_space").and_then(Json::as_bool) == Some(false) => {
                        None
                    }
                    other => {
                        return Err(unsupported(format!(
                            "pre-tokenizer 'Metaspace' with prepend_scheme {other:?}"
                        )))
                    }
                };
                Ok(Shape::SentencePiece {
                    space_prefix: metaspace.is_some(),
                    metaspace,
                })
            }
            Some(p) => Err(unsupported(format!(
                "pre-tokenizer '{}' with a byte-fallback BPE model",
                describe(p)
            ))),
        }
    }

    /// Token texts by id (the model's vocabulary and the added tokens), with holes as None.
    fn texts(&self) -> Result<Vec<Option<&'a str>>, TokenizerError> {
        let mut n = 0usize;
        for (text, id) in self.vocab {
            let id = id
                .as_u64()
                .and_then(|i| u32::try_from(i).ok())
                .ok_or_else(|| bad(format!("model.vocab[{text:?}] is not a token id")))?;
            n = n.max(id as usize + 1);
        }
        for a in &self.added {
            n = n.max(a.id as usize + 1);
        }
        if let Some(size) = self.config_vocab_size() {
            n = n.max(size);
        }
        if n > 1 << 24 {
            return Err(bad(format!("{n} tokens is more than herd accepts")));
        }
        let mut texts: Vec<Option<&str>> = vec![None; n];
        for (text, id) in self.vocab {
            let id = id.as_u64().unwrap_or_default() as usize;
            if texts[id].is_some() {
                return Err(bad(format!("model.vocab gives id {id} to two tokens")));
            }
            texts[id] = Some(text.as_str());
        }
        for a in &self.added {
            texts[a.id as usize] = Some(a.content);
        }
        Ok(texts)
    }

    fn config_vocab_size(&self) -> Option<usize> {
        let c = self.cfg?;
        c.get("vocab_size")
            .or_else(|| c.get("text_config").and_then(|t| t.get("vocab_size")))
            .and_then(Json::as_u64)
            .and_then(|v| usize::try_from(v).ok())
    }

    fn added_type(&self, a: &Added) -> TokenType {
        if a.special || looks_special(a.content) {
            TokenType::Control
        } else {
            TokenType::UserDefined
        }
    }

    fn keys(&self) -> Result<Vec<(String, Value)>, TokenizerError> {
        let texts = self.texts()?;
        let added: HashMap<u32, &Added> = self.added.iter().map(|a| (a.id, a)).collect();
        let mut tokens = Vec::with_capacity(texts.len());
        let mut types = Vec::with_capacity(texts.len());
        let is_spm = matches!(self.shape, Shape::SentencePiece { .. });
        for (id, text) in texts.iter().enumerate() {
            let (text, ty) = match (text, added.get(&(id as u32))) {
                (None, _) => (format!("[PAD{id}]"), TokenType::Unused),
                (Some(_), Some(a)) => {
                    let ty = self.added_type(a);
                    // llama.cpp expects user-defined tokens with spaces, not '▁'.
                    let text = if ty == TokenType::UserDefined {
                        a.content.replace(SPACE, " ")
                    } else {
                        a.content.to_string()
                    };
                    (text, ty)
                }
                (Some(t), None) if is_spm && byte_token(t) => (t.to_string(), TokenType::Byte),
                (Some(t), None) if is_spm && Some(*t) == self.unk_token => (t.to_string(), TokenType::Unknown),
                (Some(t), None) => (t.to_string(), TokenType::Normal),
            };
            tokens.push(text);
            types.push(ty);
        }

        let mut keys: Vec<(String, Value)> = Vec::new();
        let mut put = |k: &str, v: Value| keys.push((k.to_string(), v));
        let strings = |v: Vec<String>| {
            Value::array(
                ValueType::String,
                v.into_iter().map(Value::String).collect(),
            )
        };
        match self.shape {
            Shape::ByteLevel { pre } => {
                put("tokenizer.ggml.model", Value::String("gpt2".into()));
                put("tokenizer.ggml.pre", Value::String(pre.into()));
                put("tokenizer.ggml.tokens", strings(tokens));
                put(
                    "tokenizer.ggml.token_type",
                    Value::array(ValueType::I32, types.iter().map(|&t| Value::I32(t as i32)).collect()),
                );
                if !self.merges.is_empty() {
                    // As the converter writes them: a space inside a piece as U+0120.
                    let enc = |s: &str| s.replace(' ', "\u{120}");
                    put(
                        "tokenizer.ggml.merges",
                        strings(
                            self.merges
                                .iter()
                                .map(|(l, r)| format!("{} {}", enc(l), enc(r)))
                                .collect(),
                        ),
                    );
                }
            }
            Shape::SentencePiece { .. } => {
                let scores = self.scores(&tokens, &types)?;
                put("tokenizer.ggml.model", Value::String("llama".into()));
                put("tokenizer.ggml.pre", Value::String("default".into()));
                put("tokenizer.ggml.tokens", strings(tokens));
                put(
                    "tokenizer.ggml.scores",
                    Value::array(ValueType::F32, scores.into_iter().map(Value::F32).collect()),
                );
                put(
                    "tokenizer.ggml.token_type",
                    Value::array(ValueType::I32, types.iter().map(|&t| Value::I32(t as i32)).collect()),
                );
            }
        }
        self.special_keys(texts.len(), &mut keys);
        if let Shape::SentencePiece {
            space_prefix,
            metaspace,
        } = self.shape
        {
            keys.push((
                "tokenizer.ggml.add_space_prefix".into(),
                Value::Bool(space_prefix),
            ));
            if let Some(scheme) = metaspace {
                keys.push((METASPACE_KEY.into(), Value::String(scheme.into())));
            }
        }
        self.chat_template_keys(&mut keys)?;
        if self.nfc {
            keys.push((NORMALIZER_KEY.into(), Value::String("NFC".into())));
        }
        if self.added.iter().any(|a| a.lstrip || a.rstrip) {
            let list = |f: fn(&Added) -> bool| {
                let ids = self
                    .added
                    .iter()
                    .filter(|a| f(a))
                    .map(|a| Value::I32(a.id as i32));
                Value::array(ValueType::I32, ids.collect())
            };
            keys.push((RSTRIP_KEY.into(), list(|a| a.rstrip)));
            keys.push((LSTRIP_KEY.into(), list(|a| a.lstrip)));
        }
        Ok(keys)
    }

    /// SentencePiece scores that make "merge the best-scored piece first" the same as "apply
    /// the best-ranked merge first": normal pieces ranked by the first merge that makes them
    /// (pieces no merge makes last), each scoring minus its rank, as SentencePiece's own BPE
    /// pieces do. Refused where no scores can say it: a merge list that makes a piece by one
    /// split but not by another that is also two tokens, or whose merges of one piece are not
    /// adjacent in the list.
    fn scores(&self, tokens: &[String], types: &[TokenType]) -> Result<Vec<f32>, TokenizerError> {
        let id_of: HashMap<&str, usize> = tokens
            .iter()
            .enumerate()
            .filter(|&(i, _)| types[i] == TokenType::Normal || types[i] == TokenType::Byte)
            .map(|(i, t)| (t.as_str(), i))
            .collect();
        let mut first_rank: HashMap<&str, usize> = HashMap::new();
        let mut last_piece: Option<String> = None;
        let mut done: std::collections::HashSet<String> = Default::default();
        let pairs: std::collections::HashSet<(&str, &str)> = self
            .merges
            .iter()
            .map(|(l, r)| (l.as_str(), r.as_str()))
            .collect();
        for (rank, (l, r)) in self.merges.iter().enumerate() {
            let piece = format!("{l}{r}");
            if last_piece.as_deref() != Some(piece.as_str()) {
                if !done.insert(piece.clone()) {
                    return Err(unsupported(format!(
                        "SentencePiece-style BPE whose merges making {piece:?} are not adjacent \
                         in the merge list (no piece scores express that order)"
                    )));
                }
                last_piece = Some(piece.clone());
            }
            if let Some((&text, _)) = id_of.get_key_value(piece.as_str()) {
                first_rank.entry(text).or_insert(rank);
            }
        }
        for (t, &i) in &id_of {
            if types[i] != TokenType::Normal {
                continue;
            }
            for (k, _) in t.char_indices().skip(1) {
                let (l, r) = t.split_at(k);
                if id_of.contains_key(l) && id_of.contains_key(r) && !pairs.contains(&(l, r)) {
                    return Err(unsupported(format!(
                        "SentencePiece-style BPE without the merge {l:?} + {r:?} although both \
                         and {t:?} are tokens (piece scores would merge them)"
                    )));
                }
            }
        }
        let mut normal: Vec<usize> = (0..tokens.len()).filter(|&i| types[i] == TokenType::Normal).collect();
        normal.sort_by_key(|&i| {
            (
                first_rank
                    .get(tokens[i].as_str())
                    .copied()
                    .unwrap_or(usize::MAX),
                i,
            )
        });
        let mut scores: Vec<f32> = types
            .iter()
            .map(|&t| match t {
                TokenType::Control | TokenType::UserDefined => -1000.0,
                TokenType::Unused => -10000.0,
                _ => 0.0,
            })
            .collect();
        for (rank, &i) in normal.iter().enumerate() {
            scores[i] = -(rank as f32);
        }
        Ok(scores)
    }

    /// Special token ids and the add-BOS/EOS flags, read as llama.cpp's `SpecialVocab` reads
    /// them: names from tokenizer_config.json looked up among the added tokens, the
    /// post-processor's template for what is added, config.json's ids for what is still
    /// missing.
    fn special_keys(&self, n_vocab: usize, keys: &mut Vec<(String, Value)>) {
        const TYPES: [(&str, &str); 6] = [
            ("bos", "bos"),
            ("eos", "eos"),
            ("unk", "unknown"),
            ("sep", "seperator"),
            ("pad", "padding"),
            ("mask", "mask"),
        ];
        let tc = self.tc.and_then(Json::as_object);
        let token_name = |typ: &str| -> Option<String> {
            let e = tc?.get(&format!("{typ}_token"))?;
            e.as_str()
                .or_else(|| e.get("content").and_then(Json::as_str))
                .map(str::to_owned)
        };
        let mut names: HashMap<&str, Option<String>> =
            ["bos", "eos", "unk", "sep", "pad", "cls", "mask"]
                .into_iter()
                .map(|t| (t, token_name(t)))
                .collect();
        if names["bos"].is_none() && names["cls"].is_some() && tc.is_some() {
            names.insert("bos", names["cls"].clone());
        }
        if names["eos"].is_none() && names["sep"].is_some() && tc.is_some() {
            names.insert("eos", names["sep"].clone());
        }
        let mut extra: Vec<(&str, String)> = Vec::new();
        let mut add: Vec<(&str, bool)> = Vec::new();
        let set_add =
            |add: &mut Vec<(&str, bool)>, typ: &'static str, v: bool, force: bool| match add
                .iter_mut()
                .find(|(t, _)| *t == typ)
            {
                Some(e) if force => e.1 = v,
                Some(_) => {}
                None => add.push((typ, v)),
            };
        if let Some(pp) = self.tj.get("post_processor").filter(|v| !v.is_null()) {
            let list: Vec<&Json> = match pp.get("processors").and_then(Json::as_array) {
                Some(l) => l.iter().collect(),
                None => vec![pp],
            };
            for p in list {
                match kind(p) {
                    "ByteLevel" => {
                        set_add(&mut add, "bos", false, false);
                        set_add(&mut add, "eos", false, false);
                    }
                    "TemplateProcessing" => {
                        let single = p.get("single").and_then(Json::as_array);
                        let special_id = |e: Option<&Json>| {
                            e.and_then(|e| e.get("SpecialToken"))
                                .and_then(|s| s.get("id"))
                                .and_then(Json::as_str)
                                .map(str::to_owned)
                        };
                        let Some(single) = single.filter(|s| s.len() > 1) else {
                            continue;
                        };
                        let first = special_id(single.first());
                        if let Some(first) = &first {
                            if tc.is_none() {
                                names.insert("bos", Some(first.clone()));
                            } else if Some(first) != names["bos"].as_ref()
                                && Some(first) != names["cls"].as_ref()
                            {
                                if names["bos"].is_none() {
                                    names.insert("bos", Some(first.clone()));
                                }
                            }
                            let is_bos = Some(first) == names["bos"].as_ref()
                                || Some(first) == names["cls"].as_ref();
                            set_add(&mut add, "bos", is_bos, true);
                        }
                        if let Some(last) = special_id(single.last()) {
                            if tc.is_none() {
                                names.insert("eos", Some(last.clone()));
                            } else if Some(&last) != names["eos"].as_ref() {
                                if let Some(old) = names["eos"].clone() {
                                    extra.push(("eot", old));
                                }
                                names.insert("eos", Some(last.clone()));
                            }
                            set_add(&mut add, "eos", true, true);
                        }
                        // The pair template decides add_sep: A [sep|eos] [sep|eos] B.
                        if let Some(pair) = p.get("pair").and_then(Json::as_array) {
                            let start =
                                usize::from(first.is_some() && special_id(pair.first()) == first);
                            let mut mid: &[Json] = pair.get(start..).unwrap_or(&[]);
                            if special_id(single.last()).is_some()
                                && special_id(mid.last()) == special_id(single.last())
                            {
                                mid = &mid[..mid.len() - 1];
                            }
                            fn seq(e: Option<&Json>) -> Option<&str> {
                                e.and_then(|e| e.get("Sequence"))
                                    .and_then(|s| s.get("id"))
                                    .and_then(Json::as_str)
                            }
                            if mid.len() >= 2
                                && seq(mid.first()) == Some("A")
                                && seq(mid.last()) == Some("B")
                            {
                                let inner = &mid[1..mid.len() - 1];
                                let sep_or_eos = |e: Option<&Json>| {
                                    let id = special_id(e);
                                    id.is_some() && (id == names["sep"] || id == names["eos"])
                                };
                                let add_sep = match inner {
                                    [] => None,
                                    [a] => Some(
                                        sep_or_eos(Some(a)) && special_id(single.last()).is_none(),
                                    ),
                                    [a, b, ..] => Some(
                                        (sep_or_eos(Some(a))
                                            && special_id(single.last()).is_none())
                                            || sep_or_eos(Some(b)),
                                    ),
                                };
                                if let Some(v) = add_sep {
                                    set_add(&mut add, "sep", v, true);
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        if let Some(tc) = tc {
            for typ in ["bos", "eos", "unk", "sep", "pad", "cls", "mask"] {
                if let Some(v) = tc.get(&format!("add_{typ}_token")).and_then(Json::as_bool) {
                    if matches!(typ, "bos" | "eos" | "sep") {
                        set_add(&mut add, typ, v, false);
                    }
                }
            }
        }
        let added_id = |name: &str| self.added.iter().find(|a| a.content == name).map(|a| a.id);
        let mut ids: Vec<(&str, u32)> = Vec::new();
        let set_id = |ids: &mut Vec<(&str, u32)>, typ: &'static str, id: Option<u64>| {
            if let Some(id) = id.and_then(|i| u32::try_from(i).ok()) {
                if (id as usize) < n_vocab && !ids.iter().any(|(t, _)| *t == typ) {
                    ids.push((typ, id));
                }
            }
        };
        if tc.is_some() {
            for (typ, _) in TYPES {
                let id = names[typ].as_deref().and_then(added_id);
                set_id(&mut ids, typ, id.map(u64::from));
            }
            for (typ, name) in &extra {
                set_id(&mut ids, typ, added_id(name).map(u64::from));
            }
        }
        if let Some(cfg) = self.cfg {
            for (typ, _) in TYPES {
                let id = cfg
                    .get(format!("{typ}_token_id"))
                    .or_else(|| {
                        cfg.get("text_config")
                            .and_then(|t| t.get(format!("{typ}_token_id")))
                    })
                    .and_then(Json::as_u64);
                set_id(&mut ids, typ, id);
            }
        }
        for (typ, id) in ids {
            let key = match typ {
                "eot" | "eom" => typ,
                _ => TYPES
                    .iter()
                    .find(|(t, _)| *t == typ)
                    .map_or(typ, |(_, k)| k),
            };
            keys.push((format!("tokenizer.ggml.{key}_token_id"), Value::U32(id)));
        }
        for (typ, v) in add {
            keys.push((format!("tokenizer.ggml.add_{typ}_token"), Value::Bool(v)));
        }
    }

    /// `tokenizer.chat_template` (and named templates) from tokenizer_config.json.
    fn chat_template_keys(&self, keys: &mut Vec<(String, Value)>) -> Result<(), TokenizerError> {
        let Some(t) = self.tc.and_then(|tc| tc.get("chat_template")) else {
            return Ok(());
        };
        match t {
            Json::Null => {}
            Json::String(s) => {
                keys.push(("tokenizer.chat_template".into(), Value::String(s.clone())))
            }
            Json::Array(list) => {
                let mut names = Vec::new();
                let mut default = None;
                for c in list {
                    let name: String = c
                        .get("name")
                        .and_then(Json::as_str)
                        .unwrap_or("")
                        .chars()
                        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                        .collect();
                    let Some(template) = c.get("template").and_then(Json::as_str) else {
                        continue;
                    };
                    if name == "default" {
                        default = Some(template.to_string());
                    } else if !name.is_empty() {
                        keys.push((
                            format!("tokenizer.chat_template.{name}"),
                            Value::String(template.to_string()),
                        ));
                        names.push(Value::String(name));
                    }
                }
                if !names.is_empty() {
                    keys.push((
                        "tokenizer.chat_templates".into(),
                        Value::array(ValueType::String, names),
                    ));
                }
                if let Some(d) = default {
                    keys.push(("tokenizer.chat_template".into(), Value::String(d)));
                }
            }
            _ => {
                return Err(bad(
                    "tokenizer_config.json: chat_template is neither a string nor a list",
                ))
            }
        }
        Ok(())
    }
}

/// The normalizers of tokenizer.json, in order: none, the one, or a Sequence's.
fn normalizer_list(tj: &Json) -> Result<Vec<&Json>, TokenizerError> {
    Ok(match tj.get("normalizer").filter(|v| !v.is_null()) {
        None => vec![],
        Some(n) if kind(n) == "Sequence" => n
            .get("normalizers")
            .and_then(Json::as_array)
            .ok_or_else(|| bad("normalizer Sequence without 'normalizers'"))?
            .iter()
            .collect(),
        Some(n) => vec![n],
    })
}

/// `model.merges`: "left right" strings, or (since transformers 4.45) [left, right] pairs.
fn read_merges(v: Option<&Json>) -> Result<Vec<(String, String)>, TokenizerError> {
    let Some(list) = v.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let list = list
        .as_array()
        .ok_or_else(|| bad("model.merges is not a list"))?;
    list.iter()
        .enumerate()
        .map(|(i, m)| {
            let pair = match m {
                Json::String(s) => s
                    .split_once(' ')
                    .map(|(l, r)| (l.to_string(), r.to_string())),
                Json::Array(p) => match p.as_slice() {
                    [Json::String(l), Json::String(r)] => Some((l.clone(), r.clone())),
                    _ => None,
                },
                _ => None,
            };
            pair.ok_or_else(|| bad(format!("model.merges[{i}] is neither \"a b\" nor [a, b]")))
        })
        .collect()
}

/// `<0xAB>`: a byte token of a byte-fallback vocabulary.
fn byte_token(t: &str) -> bool {
    crate::spm::byte_token_value(t).is_some() && t.len() == 6
}

/// Added tokens llama.cpp's converter makes control tokens though they are not marked special.
fn looks_special(t: &str) -> bool {
    matches!(t, "<pad>" | "<mask>" | "<2mass>" | "[@BOS@]")
        || (t.starts_with("<|") && t.ends_with("|>"))
        || (t.starts_with("<\u{FF5C}") && t.ends_with("\u{FF5C}>"))
        || (t.starts_with("<unused") && t.ends_with('>'))
}

/// A component for an error message: its type, and for a Sequence the types inside.
fn describe(v: &Json) -> String {
    match kind(v) {
        "Sequence" => {
            let inner = ["pretokenizers", "normalizers", "processors", "decoders"]
                .iter()
                .find_map(|k| v.get(*k).and_then(Json::as_array));
            match inner {
                Some(list) => format!(
                    "Sequence[{}]",
                    list.iter().map(describe).collect::<Vec<_>>().join(", ")
                ),
                None => "Sequence".into(),
            }
        }
        k => k.to_string(),
    }
}
