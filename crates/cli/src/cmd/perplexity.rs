//! `herd perplexity`: llama.cpp's perplexity measure; the last stdout line is `PPL = <value>`.

use std::path::PathBuf;

use anyhow::Result;
use herd_engine::perplexity::perplexity;
use herd_engine::Model;

use crate::model_arg;

#[derive(clap::Args)]
pub struct Args {
    /// Model file or known model name (default: the default model).
    #[arg(short, long)]
    model: Option<String>,
    /// The text to score (UTF-8).
    #[arg(short, long)]
    file: PathBuf,
    /// Tokens per chunk; the second half of each chunk is scored.
    #[arg(short, long, default_value_t = 512)]
    ctx: usize,
    /// Threads (default: one per core).
    #[arg(short, long)]
    threads: Option<usize>,
}

pub fn main(args: Args) -> Result<()> {
    let text = super::read_text(&args.file)?;
    let path = model_arg::resolve(args.model.as_deref())?;
    let model = Model::load(&path)?;
    let pool = super::pool(args.threads);
    let start = std::time::Instant::now();
    let ppl = perplexity(&model, &pool, &text, args.ctx, &mut |s| {
        eprintln!("herd: chunk {}/{}: running PPL {:.4}", s.chunk_idx + 1, s.n_chunks, s.running_ppl);
    })?;
    eprintln!("herd: {:.1} s", start.elapsed().as_secs_f64());
    println!("PPL = {ppl:.4}");
    Ok(())
}
