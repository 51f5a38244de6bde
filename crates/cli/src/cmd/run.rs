//! `herd run`: one prompt in, generated text streamed out.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Result};
use herd_engine::generate::generate;
use herd_engine::session::Session;
use herd_engine::{EngineError, Model};
use herd_tokenizer::template::ChatMessage;

use super::GenerationArgs;
use crate::model_arg;
use crate::template_arg::{self, ChatTemplateArg};

#[derive(clap::Args)]
pub struct Args {
    /// Model file or known model name (default: the default model, fetched if absent).
    #[arg(short, long)]
    model: Option<String>,
    /// Tokenize the prompt as given (special tokens parsed) instead of wrapping it in the
    /// model's chat template as one user message.
    #[arg(long, conflicts_with = "chat_template")]
    raw: bool,
    #[command(flatten)]
    template: ChatTemplateArg,
    /// Read the prompt from this file instead of the command line.
    #[arg(short, long, conflicts_with = "prompt")]
    file: Option<PathBuf>,
    #[command(flatten)]
    sampling: GenerationArgs,
    /// Context size in tokens (default: the model's trained context).
    #[arg(short, long)]
    ctx: Option<usize>,
    /// Threads (default: one per core).
    #[arg(short, long)]
    threads: Option<usize>,
    /// The prompt.
    prompt: Option<String>,
}

pub fn main(args: Args) -> Result<()> {
    let prompt = match (&args.prompt, &args.file) {
        (Some(p), None) => p.clone(),
        (None, Some(f)) => super::read_text(f)?,
        _ => bail!("give a prompt, or a prompt file with --file"),
    };
    let params = args.sampling.params()?;
    let template = args.template.compiled()?;
    let path = model_arg::resolve(args.model.as_deref())?;
    let mut model = Model::load(&path)?;
    if !args.raw {
        template_arg::install(&mut model, template, &path, ", or use --raw to send the prompt as is")?;
    }
    let tokens = prompt_tokens(&model, &prompt, args.raw)?;
    let pool = super::pool(args.threads);
    let mut session = Session::new(&model, &pool, args.ctx)?;
    if tokens.len() > session.n_ctx() {
        return Err(EngineError::PromptTooLong { n_prompt: tokens.len(), n_ctx: session.n_ctx() }.into());
    }

    let mut stdout = std::io::stdout().lock();
    let mut write_failed = None;
    let stats = generate(&mut session, &tokens, &params, &mut |text| {
        // A closed pipe (`herd run ... | head`) ends generation quietly.
        match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
            Ok(()) => true,
            Err(e) => {
                write_failed = Some(e);
                false
            }
        }
    })?;
    if write_failed.is_none() {
        let _ = writeln!(stdout);
    }
    eprintln!(
        "herd: prompt {} tokens, {:.1} tokens/s; generated {} tokens, {:.1} tokens/s ({:?}, seed {})",
        stats.n_prompt,
        stats.prompt_tokens_per_sec(),
        stats.n_generated,
        stats.gen_tokens_per_sec(),
        stats.finish,
        params.sampling.seed
    );
    Ok(())
}

/// The prompt's tokens: as written with `raw`, else as one user message in the model's template.
fn prompt_tokens(model: &Model, prompt: &str, raw: bool) -> Result<Vec<u32>> {
    if raw {
        return Ok(model.tokenizer.encode(prompt, true, true));
    }
    Ok(model.chat_prompt(&[ChatMessage::new("user", prompt)])?)
}
