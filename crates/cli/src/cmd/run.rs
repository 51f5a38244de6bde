//! `herd run`: one prompt in, generated text streamed out.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Result};
use herd_engine::generate::{generate, GenerateParams};
use herd_engine::sampler::SamplingParams;
use herd_engine::session::Session;
use herd_engine::{EngineError, Model};
use herd_tokenizer::template::ChatMessage;

use crate::model_arg;

#[derive(clap::Args)]
pub struct Args {
    /// Model file or known model name (default: the default model, fetched if absent).
    #[arg(short, long)]
    model: Option<String>,
    /// Tokenize the prompt as given (special tokens parsed) instead of wrapping it in the
    /// model's chat template as one user message.
    #[arg(long)]
    raw: bool,
    /// Read the prompt from this file instead of the command line.
    #[arg(short, long, conflicts_with = "prompt")]
    file: Option<PathBuf>,
    /// Most tokens to generate.
    #[arg(short = 'n', long, default_value_t = 256)]
    max_tokens: usize,
    /// 0 is greedy.
    #[arg(long, default_value_t = 0.8)]
    temperature: f32,
    /// 0 disables.
    #[arg(long, default_value_t = 40)]
    top_k: usize,
    /// 1 disables.
    #[arg(long, default_value_t = 0.95)]
    top_p: f32,
    /// 0 disables.
    #[arg(long, default_value_t = 0.05)]
    min_p: f32,
    /// 1 disables.
    #[arg(long, default_value_t = 1.0)]
    repeat_penalty: f32,
    #[arg(long, default_value_t = 0.0)]
    presence_penalty: f32,
    #[arg(long, default_value_t = 0.0)]
    frequency_penalty: f32,
    /// Seed of the sampler (default: a random one, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Stop when this text is generated (repeatable); it is not printed.
    #[arg(long)]
    stop: Vec<String>,
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
    let seed = args.seed.unwrap_or_else(random_seed);
    let params = GenerateParams {
        max_tokens: args.max_tokens,
        sampling: SamplingParams {
            temperature: args.temperature,
            top_k: args.top_k,
            top_p: args.top_p,
            min_p: args.min_p,
            repetition_penalty: args.repeat_penalty,
            presence_penalty: args.presence_penalty,
            frequency_penalty: args.frequency_penalty,
            seed,
            ..SamplingParams::default()
        },
        stop: args.stop.clone(),
    };
    params.sampling.validate().map_err(anyhow::Error::msg)?;

    let path = model_arg::resolve(args.model.as_deref())?;
    let model = Model::load(&path)?;
    let tokens = prompt_tokens(&model, &prompt, args.raw)?;
    let pool = super::pool(args.threads);
    let mut session = Session::new(&model, &pool, args.ctx)?;
    if tokens.len() > session.n_ctx() {
        return Err(EngineError::PromptTooLong { n_prompt: tokens.len(), n_ctx: session.n_ctx() }.into());
    }
    if args.seed.is_none() && params.sampling.temperature > 0.0 {
        eprintln!("herd: seed {seed}");
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
        "herd: prompt {} tokens, {:.1} tokens/s; generated {} tokens, {:.1} tokens/s ({:?})",
        stats.n_prompt,
        stats.prompt_tokens_per_sec(),
        stats.n_generated,
        stats.gen_tokens_per_sec(),
        stats.finish
    );
    Ok(())
}

/// The prompt's tokens: as written with `raw`, else as one user message in the model's template.
pub fn prompt_tokens(model: &Model, prompt: &str, raw: bool) -> Result<Vec<u32>> {
    let tokenizer = &model.tokenizer;
    if raw {
        return Ok(tokenizer.encode(prompt, true, true));
    }
    let text = model.chat_template()?.render_chat(
        &[ChatMessage { role: "user".into(), content: prompt.into() }],
        true,
        &special_text(model, tokenizer.bos_id()),
        &special_text(model, tokenizer.eos_id()),
    )?;
    // The template writes BOS itself where the model wants one.
    Ok(tokenizer.encode(&text, true, false))
}

/// The text of a special token, for the template's `bos_token` / `eos_token`.
pub fn special_text(model: &Model, id: Option<u32>) -> String {
    id.and_then(|id| model.tokenizer.token_text(id)).unwrap_or_default().to_string()
}

fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    (nanos as u64) ^ (u64::from(std::process::id()) << 32)
}
