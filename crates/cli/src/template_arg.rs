//! Turning a `--chat-template` argument (a Jinja file, or the name of a template herd ships)
//! into template source, and checking that a model has a template before a command needs one.

use std::path::Path;

use anyhow::{anyhow, bail, Result};
use herd_engine::Model;
use herd_tokenizer::template::{builtin, builtin_names, ChatTemplate};

/// The `--chat-template` flag of every command that renders chat prompts.
#[derive(clap::Args)]
pub struct ChatTemplateArg {
    /// Chat template to use instead of the model's own: a Jinja file, or the name of one herd
    /// ships (chatml, gemma, llama3, mistral, phi3, qwen).
    #[arg(long, value_name = "FILE|NAME")]
    pub chat_template: Option<String>,
}

impl ChatTemplateArg {
    /// The template asked for, compiled; `None` when the flag is absent.
    pub fn compiled(&self) -> Result<Option<ChatTemplate>> {
        let Some(arg) = self.chat_template.as_deref() else { return Ok(None) };
        let template = ChatTemplate::new(&source(arg)?).map_err(|e| anyhow!("--chat-template {arg}: {e}"))?;
        Ok(Some(template))
    }

    /// The source of the template asked for, checked to compile (for the server, which
    /// compiles its own once the model has loaded); `None` when the flag is absent.
    pub fn source(&self) -> Result<Option<String>> {
        let Some(arg) = self.chat_template.as_deref() else { return Ok(None) };
        let source = source(arg)?;
        ChatTemplate::new(&source).map_err(|e| anyhow!("--chat-template {arg}: {e}"))?;
        Ok(Some(source))
    }
}

/// Puts `template` (from `--chat-template`) on `model` in place of its own, then checks that
/// the model has one. `model_path` names the model in the error; `other_way` ends it with what
/// else the command can do (", or use --raw ...") or is empty.
pub fn install(model: &mut Model, template: Option<ChatTemplate>, model_path: &Path, other_way: &str) -> Result<()> {
    if let Some(template) = template {
        model.template = Some(template);
    }
    if model.template.is_none() {
        bail!("{}: the file has no chat template (tokenizer.chat_template); give one with --chat-template FILE|NAME (built-in: {}){other_way}", model_path.display(), builtin_names());
    }
    Ok(())
}

/// The Jinja source `arg` names: an existing file, else a template herd ships.
pub fn source(arg: &str) -> Result<String> {
    let path = Path::new(arg);
    if path.is_file() {
        return crate::cmd::read_text(path);
    }
    if let Some(builtin) = builtin(arg) {
        return Ok(builtin.source.to_string());
    }
    // A name with a folder or an extension was meant as a file.
    if path.exists() || arg.contains(['/', '\\']) || path.extension().is_some() {
        let what = if path.exists() { "not a file" } else { "no such file" };
        bail!("--chat-template {arg}: {what} (a Jinja file, or one of the templates herd ships: {})", builtin_names());
    }
    bail!("--chat-template {arg}: herd ships no template of that name (known: {}); or give a Jinja file", builtin_names());
}
