//! `herd tokenize`: the ids of a text, on one line. Works on vocabulary-only GGUF files.

use anyhow::Result;
use herd_engine::model::load_tokenizer;
use herd_gguf::Gguf;
use herd_tokenizer::LoadOptions;

use crate::model_arg;

#[derive(clap::Args)]
pub struct Args {
    /// Model or vocabulary GGUF file, or a known model name (default: the default model).
    #[arg(short, long)]
    model: Option<String>,
    /// Add the BOS token (and EOS where the vocabulary asks for it) as the model expects.
    #[arg(long)]
    bos: bool,
    /// Treat special-token text such as <|im_start|> as plain text.
    #[arg(long)]
    plain: bool,
    /// Use the default pre-tokenizer rules when the file names rules herd does not know.
    #[arg(long)]
    force_default_pre: bool,
    /// The text to tokenize.
    text: String,
}

pub fn main(args: Args) -> Result<()> {
    let path = model_arg::resolve(args.model.as_deref())?;
    let file = Gguf::open(&path)?;
    let tokenizer = load_tokenizer(&file, &LoadOptions { force_default_pre: args.force_default_pre })?;
    let ids = tokenizer.encode(&args.text, !args.plain, args.bos);
    let line: Vec<String> = ids.iter().map(u32::to_string).collect();
    println!("{}", line.join(" "));
    Ok(())
}
