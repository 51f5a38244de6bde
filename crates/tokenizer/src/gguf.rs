//! Reading a vocabulary from a GGUF file's `tokenizer.ggml.*` keys. Only the keys: what they
//! mean is `Tokenizer::new`'s business.

use herd_gguf::Gguf;

use crate::error::TokenizerError;
use crate::tokenizer::{LoadOptions, Tokenizer, VocabConfig};

impl VocabConfig {
    /// The vocabulary keys of `g`, checked for type but not for sense.
    pub fn from_gguf(g: &Gguf) -> Result<VocabConfig, TokenizerError> {
        let missing = |key: &'static str| TokenizerError::MissingKey {
            file: g.path().display().to_string(),
            key,
        };
        let owned = |v: Vec<&str>| v.into_iter().map(str::to_owned).collect::<Vec<String>>();
        let tokens = owned(
            g.get_str_array("tokenizer.ggml.tokens")?
                .ok_or_else(|| missing("tokenizer.ggml.tokens"))?,
        );
        let n_tokens = tokens.len();
        let id =
            |key: &'static str| -> Result<Option<u32>, TokenizerError> {
                match g.get_u64(key)? {
                    None => Ok(None),
                    Some(v) => u32::try_from(v).map(Some).map_err(|_| {
                        TokenizerError::SpecialIdOutOfRange {
                            key,
                            id: v,
                            n_tokens,
                        }
                    }),
                }
            };
        Ok(VocabConfig {
            model: g
                .get_str("tokenizer.ggml.model")?
                .ok_or_else(|| missing("tokenizer.ggml.model"))?
                .to_owned(),
            pre: g.get_str("tokenizer.ggml.pre")?.map(str::to_owned),
            tokens,
            scores: g.get_f32_array("tokenizer.ggml.scores")?,
            token_types: g.get_i32_array("tokenizer.ggml.token_type")?,
            merges: g.get_str_array("tokenizer.ggml.merges")?.map(owned),
            bos_id: id("tokenizer.ggml.bos_token_id")?,
            eos_id: id("tokenizer.ggml.eos_token_id")?,
            unk_id: id("tokenizer.ggml.unknown_token_id")?,
            pad_id: id("tokenizer.ggml.padding_token_id")?,
            eot_id: id("tokenizer.ggml.eot_token_id")?,
            eom_id: id("tokenizer.ggml.eom_token_id")?,
            add_bos: g.get_bool("tokenizer.ggml.add_bos_token")?,
            add_eos: g.get_bool("tokenizer.ggml.add_eos_token")?,
            add_space_prefix: g.get_bool("tokenizer.ggml.add_space_prefix")?,
            name: g.get_str("general.name")?.map(str::to_owned),
            rstrip_ids: strip_ids(g, crate::hf::RSTRIP_KEY)?,
            lstrip_ids: strip_ids(g, crate::hf::LSTRIP_KEY)?,
            metaspace_prepend: g.get_str(crate::hf::METASPACE_KEY)?.map(str::to_owned),
            normalizer: g.get_str(crate::hf::NORMALIZER_KEY)?.map(str::to_owned),
        })
    }
}

/// One of herd's own token-id lists (`herd.tokenizer.*`); ids that name no token are ignored.
fn strip_ids(g: &Gguf, key: &'static str) -> Result<Option<Vec<u32>>, TokenizerError> {
    let Some(v) = g.get_i32_array(key)? else {
        return Ok(None);
    };
    v.into_iter()
        .map(|i| {
            u32::try_from(i).map_err(|_| TokenizerError::SpecialIdOutOfRange {
                key,
                id: i as u64,
                n_tokens: 0,
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

impl Tokenizer {
    /// The tokenizer of a GGUF file.
    pub fn from_gguf(g: &Gguf, opts: &LoadOptions) -> Result<Tokenizer, TokenizerError> {
        Tokenizer::new(VocabConfig::from_gguf(g)?, opts)
    }
}
