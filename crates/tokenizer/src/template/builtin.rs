//! The chat templates herd ships, for model files that carry none or carry the wrong one
//! (`--chat-template NAME`). Each is herd's own Jinja, written in the form the family's Hugging
//! Face template takes and rendering the same text for conversations without tools; the
//! sources are compiled into the binary. They render through [`ChatTemplate`] like any other.
//!
//! [`ChatTemplate`]: super::ChatTemplate

/// A template herd ships.
#[derive(Clone, Copy, Debug)]
pub struct Builtin {
    /// What `--chat-template` calls it.
    pub name: &'static str,
    /// The models it is written for, in a few words.
    pub models: &'static str,
    /// The Jinja source.
    pub source: &'static str,
}

/// Every template herd ships, by name.
pub const BUILTINS: &[Builtin] = &[
    Builtin { name: "chatml", models: "ChatML: SmolLM, many fine-tunes", source: include_str!("builtin/chatml.jinja") },
    Builtin { name: "gemma", models: "Gemma 2 and 3", source: include_str!("builtin/gemma.jinja") },
    Builtin { name: "llama3", models: "Llama 3.1, 3.2, 3.3", source: include_str!("builtin/llama3.jinja") },
    Builtin { name: "mistral", models: "Mistral Nemo and Small (no spaces around [INST])", source: include_str!("builtin/mistral.jinja") },
    Builtin { name: "phi3", models: "Phi-3 and Phi-3.5", source: include_str!("builtin/phi3.jinja") },
    Builtin { name: "qwen", models: "Qwen 2 and 2.5", source: include_str!("builtin/qwen.jinja") },
];

/// The template herd ships under `name` (case-insensitive).
pub fn builtin(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name.eq_ignore_ascii_case(name))
}

/// The names of the templates herd ships, comma-separated, for messages.
pub fn builtin_names() -> String {
    BUILTINS.iter().map(|b| b.name).collect::<Vec<_>>().join(", ")
}
