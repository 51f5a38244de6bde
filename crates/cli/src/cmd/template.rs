//! `herd template`: renders a chat template with exactly the variables given, to debug prompts.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};
use herd_gguf::Gguf;
use herd_tokenizer::template::ChatTemplate;

use crate::{model_arg, template_arg};

#[derive(clap::Args)]
pub struct Args {
    /// A Jinja template file, or the name of a template herd ships (chatml, gemma, llama3,
    /// mistral, phi3, qwen).
    #[arg(long = "chat-template", visible_alias = "template", value_name = "FILE|NAME", conflicts_with = "model")]
    template: Option<String>,
    /// Use this model's own template (a file or known model name).
    #[arg(short, long)]
    model: Option<String>,
    /// A JSON object of template variables (messages, add_generation_prompt, bos_token, ...).
    #[arg(long)]
    vars: PathBuf,
}

pub fn main(args: Args) -> Result<()> {
    let source = match (&args.template, &args.model) {
        (Some(arg), _) => template_arg::source(arg)?,
        (None, Some(model)) => {
            let path = model_arg::resolve(Some(model))?;
            let file = Gguf::open(&path)?;
            file.get_str("tokenizer.chat_template")?.ok_or_else(|| anyhow!("{}: the file has no chat template", path.display()))?.to_string()
        }
        (None, None) => bail!("give --chat-template FILE|NAME or -m MODEL"),
    };
    let vars_text = super::read_text(&args.vars)?;
    let vars: serde_json::Value = serde_json::from_str(&vars_text).map_err(|e| anyhow!("{}: not valid JSON: {e}", args.vars.display()))?;
    let template = ChatTemplate::new(&source)?;
    print!("{}", template.render(&vars)?);
    Ok(())
}
