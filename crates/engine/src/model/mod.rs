//! A loaded model: the mapped file, its hyperparameters, weights, tokenizer and chat template.
//! Architectures live one per file beside this one.

pub mod config;
pub mod llama;
pub mod weights;

use std::path::Path;
use std::sync::Arc;

use herd_gguf::Gguf;
use herd_tokenizer::template::{ChatMessage, ChatTemplate};
use herd_tokenizer::{LoadOptions, Tokenizer};

pub use config::Config;
pub use llama::{ForwardScratch, Llama, Logits, SeqChunk};

use crate::error::{EngineError, Result};

pub struct Model {
    pub file: Arc<Gguf>,
    pub llama: Llama,
    pub tokenizer: Tokenizer,
    /// The file's `tokenizer.chat_template`, compiled; `None` when the file has none.
    pub template: Option<ChatTemplate>,
}

impl Model {
    /// Maps and validates the file, then reads hyperparameters, weights, tokenizer and template.
    pub fn load(path: &Path) -> Result<Model> {
        let file = Arc::new(Gguf::open(path)?);
        let cfg = Config::from_gguf(&file)?;
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
        let llama = Llama::load(&file, cfg)?;
        Ok(Model { file, llama, tokenizer, template })
    }

    pub fn cfg(&self) -> &Config {
        &self.llama.cfg
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

/// The tokenizer of any GGUF file, vocabulary-only files included.
pub fn load_tokenizer(file: &Gguf, opts: &LoadOptions) -> Result<Tokenizer> {
    Tokenizer::from_gguf(file, opts).map_err(|source| EngineError::Tokenizer { path: file.path().to_path_buf(), source: Box::new(source) })
}
