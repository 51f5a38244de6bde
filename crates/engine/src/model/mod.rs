//! A loaded model: the mapped file, its hyperparameters, weights, tokenizer and chat template.
//!
//! Every family is one `Transformer` (the shared decoder stack in `transformer.rs`) built from
//! the blocks in `blocks/`; a family file (`llama.rs`, `qwen2.rs`, ...) reads its own
//! hyperparameters and tensors and composes them, and `FAMILIES` maps the GGUF
//! `general.architecture` to it. Attention scheduling over the paged cache is `attend.rs`.

pub mod attend;
pub mod blocks;
pub mod config;
pub mod gemma2;
pub mod gemma3;
pub mod llama;
pub mod names;
pub mod parts;
pub mod phi3;
pub mod qwen2;
pub mod qwen3;
pub mod transformer;
pub mod weights;

use std::path::Path;
use std::sync::Arc;

use herd_gguf::Gguf;
use herd_kernels::ops::RopeStyle;
use herd_tokenizer::template::{ChatMessage, ChatTemplate};
use herd_tokenizer::{LoadOptions, Tokenizer};

pub use config::Config;
pub use transformer::{ForwardScratch, Logits, SeqChunk, Transformer};

use crate::error::{EngineError, Result};
use config::Meta;
use parts::Parts;

/// A family: the `general.architecture` names it runs, its rotary ordering, and its loader.
pub struct Family {
    pub arch: &'static str,
    pub rope_style: RopeStyle,
    pub load: fn(&Parts<'_>) -> Result<Transformer>,
}

/// Every architecture herd runs. Anything else is refused by name at load time.
pub const FAMILIES: &[Family] = &[
    Family { arch: "llama", rope_style: llama::ROPE_STYLE, load: llama::load },
    Family { arch: "qwen2", rope_style: qwen2::ROPE_STYLE, load: qwen2::load },
    Family { arch: "qwen3", rope_style: qwen3::ROPE_STYLE, load: qwen3::load },
    Family { arch: "qwen3moe", rope_style: qwen3::ROPE_STYLE, load: qwen3::load_moe },
    Family { arch: "gemma2", rope_style: gemma2::ROPE_STYLE, load: gemma2::load },
    Family { arch: "gemma3", rope_style: gemma3::ROPE_STYLE, load: gemma3::load },
    Family { arch: "phi3", rope_style: phi3::ROPE_STYLE, load: phi3::load },
];

pub struct Model {
    pub file: Arc<Gguf>,
    pub net: Transformer,
    pub tokenizer: Tokenizer,
    /// The file's `tokenizer.chat_template`, compiled; `None` when the file has none.
    pub template: Option<ChatTemplate>,
}

impl Model {
    /// Maps and validates the file, then reads hyperparameters, weights, tokenizer and template.
    /// A folder is read as a Hugging Face model (`herd_hf::open`: config.json, safetensors,
    /// tokenizer.json), which becomes the GGUF llama.cpp's converter would make of it.
    pub fn load(path: &Path) -> Result<Model> {
        let file = if herd_hf::is_model_folder(path) { herd_hf::open(path)? } else { Gguf::open(path)? };
        Model::from_gguf(Arc::new(file))
    }

    /// A model from a GGUF already opened or assembled (`Gguf::from_parts`).
    pub fn from_gguf(file: Arc<Gguf>) -> Result<Model> {
        let path = file.path().to_path_buf();
        let path = path.as_path();
        let (family, cfg) = family_config(&file)?;
        let meta = Meta { file: &file, arch: family.arch };
        let tokenizer = load_tokenizer(&file, &LoadOptions::default())?;
        if tokenizer.n_vocab() != cfg.n_vocab {
            return Err(EngineError::Model {
                path: path.to_path_buf(),
                message: format!("the tokenizer has {} tokens but 'token_embd.weight' has {} rows", tokenizer.n_vocab(), cfg.n_vocab),
            });
        }
        let template = match file.get_str("tokenizer.chat_template")? {
            Some(source) => Some(ChatTemplate::new(source).map_err(|e| EngineError::Model {
                path: path.to_path_buf(),
                message: format!("tokenizer.chat_template: {e}"),
            })?),
            None => None,
        };
        let net = (family.load)(&Parts::new(&file, meta, cfg))?;
        Ok(Model { file, net, tokenizer, template })
    }

    pub fn cfg(&self) -> &Config {
        &self.net.cfg
    }

    /// The model's name as its file gives it, else the file name.
    pub fn name(&self) -> String {
        match self.file.get_str("general.name") {
            Ok(Some(name)) => name.to_string(),
            _ => self.file.path().file_stem().map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned()),
        }
    }

    /// The tokens of `messages` rendered with the chat template, ready for the assistant to
    /// answer. The template writes BOS itself where the model wants one, so none is added.
    pub fn chat_prompt(&self, messages: &[ChatMessage]) -> Result<Vec<u32>> {
        let special = |id: Option<u32>| id.and_then(|id| self.tokenizer.token_text(id)).unwrap_or_default().to_string();
        let text = self.chat_template()?.render_chat(messages, true, &special(self.tokenizer.bos_id()), &special(self.tokenizer.eos_id()))?;
        Ok(self.tokenizer.encode(&text, true, false))
    }

    /// The chat template, or an error saying the file has none.
    pub fn chat_template(&self) -> Result<&ChatTemplate> {
        self.template.as_ref().ok_or_else(|| EngineError::Model {
            path: self.file.path().to_path_buf(),
            message: "the file has no chat template (tokenizer.chat_template); use --raw to send the prompt as is".into(),
        })
    }
}

/// The family a file's architecture names, and its hyperparameters.
pub fn family_config(file: &Gguf) -> Result<(&'static Family, Config)> {
    let bad = |message: String| EngineError::Model { path: file.path().to_path_buf(), message };
    let arch = file.get_str("general.architecture")?.ok_or_else(|| bad("missing key 'general.architecture'".into()))?;
    let family = FAMILIES.iter().find(|f| f.arch == arch).ok_or_else(|| {
        let names: Vec<&str> = FAMILIES.iter().map(|f| f.arch).collect();
        bad(format!("architecture '{arch}' is not supported (herd runs: {})", names.join(", ")))
    })?;
    Ok((family, Config::from_gguf(&Meta { file, arch: family.arch }, family.rope_style)?))
}

/// The tokenizer of any GGUF file, vocabulary-only files included.
pub fn load_tokenizer(file: &Gguf, opts: &LoadOptions) -> Result<Tokenizer> {
    Tokenizer::from_gguf(file, opts).map_err(|source| EngineError::Tokenizer { path: file.path().to_path_buf(), source: Box::new(source) })
}
