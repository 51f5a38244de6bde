//! The token table shared by every tokenizer model: texts, types, scores, and text -> id.
//! Validated once here so that lookups by id never fail later.

use std::collections::HashMap;

use crate::error::TokenizerError;

/// `tokenizer.ggml.token_type`, as llama.cpp's converter writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenType {
    Undefined = 0,
    Normal = 1,
    Unknown = 2,
    Control = 3,
    UserDefined = 4,
    Unused = 5,
    Byte = 6,
}

impl TokenType {
    fn from_i32(v: i32) -> Option<TokenType> {
        Some(match v {
            0 => TokenType::Undefined,
            1 => TokenType::Normal,
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            _ => return None,
        })
    }
}

pub(crate) struct Vocab {
    texts: Vec<String>,
    types: Vec<TokenType>,
    scores: Vec<f32>,
    by_text: HashMap<String, u32>,
}

impl Vocab {
    /// Token texts with optional scores (default 0) and types (default normal).
    pub fn new(
        texts: Vec<String>,
        scores: Option<Vec<f32>>,
        types: Option<Vec<i32>>,
    ) -> Result<Vocab, TokenizerError> {
        let n = texts.len();
        if n == 0 {
            return Err(TokenizerError::EmptyVocab);
        }
        if u32::try_from(n).is_err() {
            return Err(TokenizerError::TooManyTokens { n_tokens: n });
        }
        let check_len = |what: &'static str, found: usize| {
            if found == n {
                Ok(())
            } else {
                Err(TokenizerError::LengthMismatch {
                    what,
                    found,
                    n_tokens: n,
                })
            }
        };
        let scores = match scores {
            Some(s) => {
                check_len("scores", s.len())?;
                s
            }
            None => vec![0.0; n],
        };
        let types = match types {
            Some(t) => {
                check_len("token_type", t.len())?;
                t.iter()
                    .enumerate()
                    .map(|(id, &value)| {
                        TokenType::from_i32(value).ok_or_else(|| TokenizerError::BadTokenType {
                            id: id as u32,
                            text: texts[id].clone(),
                            value,
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?
            }
            None => vec![TokenType::Normal; n],
        };
        let mut by_text = HashMap::with_capacity(n);
        for (id, text) in texts.iter().enumerate() {
            // A text listed twice resolves to its last id, as in llama.cpp.
            by_text.insert(text.clone(), id as u32);
        }
        Ok(Vocab {
            texts,
            types,
            scores,
            by_text,
        })
    }

    pub fn len(&self) -> usize {
        self.texts.len()
    }

    pub fn id(&self, text: &str) -> Option<u32> {
        self.by_text.get(text).copied()
    }

    /// `id` must be in range (callers check it once).
    pub fn text(&self, id: u32) -> &str {
        &self.texts[id as usize]
    }

    pub fn token_type(&self, id: u32) -> TokenType {
        self.types[id as usize]
    }

    pub fn set_type(&mut self, id: u32, t: TokenType) {
        self.types[id as usize] = t;
    }

    /// Normal and byte tokens: the ones plain text may turn into. Control, user-defined,
    /// unknown and unused tokens come only from special-token parsing or not at all.
    pub fn is_plain(&self, id: u32) -> bool {
        matches!(self.types[id as usize], TokenType::Normal | TokenType::Byte)
    }

    pub fn score(&self, id: u32) -> f32 {
        self.scores[id as usize]
    }

    pub fn texts(&self) -> &[String] {
        &self.texts
    }
}
