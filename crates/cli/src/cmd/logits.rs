//! `herd logits`: the logits a model gives for exactly the token ids given (no BOS added, no
//! template), for checking a model against another implementation and for debugging one.

use anyhow::{bail, Context, Result};
use herd_engine::model::Logits;
use herd_engine::session::Session;
use herd_engine::Model;

use crate::model_arg;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogitPrecision {
    /// As herd reads prompts: bf16 products where the CPU has them (else f32), f16 KV cache.
    Default,
    /// f32 products and an f32 KV cache throughout.
    F32,
}

#[derive(clap::Args)]
pub struct Args {
    /// Model file, or a known model name (default: the default model).
    #[arg(short, long)]
    model: Option<String>,
    /// The token ids, comma-separated, evaluated as one sequence from position 0.
    #[arg(long, value_delimiter = ',', required = true)]
    tokens: Vec<u32>,
    /// How many of the highest logits to list per position.
    #[arg(long, default_value_t = 10)]
    top: usize,
    #[arg(long, value_enum, default_value_t = LogitPrecision::Default)]
    precision: LogitPrecision,
    /// Context size the sequence runs in (default: the number of tokens). LongRoPE models
    /// pick their rotary factors by it, as llama.cpp does.
    #[arg(short = 'c', long)]
    ctx: Option<usize>,
    /// One JSON object: {"positions": [{"top": [[id, logit], ...]}, ...], "last_logits": [...]}.
    #[arg(long)]
    json: bool,
    /// Threads (default: one per core).
    #[arg(short, long)]
    threads: Option<usize>,
}

pub fn main(args: Args) -> Result<()> {
    let path = model_arg::resolve(args.model.as_deref())?;
    let model = Model::load(&path)?;
    let n_vocab = model.cfg().n_vocab;
    if let Some(&bad) = args.tokens.iter().find(|&&t| t as usize >= n_vocab) {
        bail!("token id {bad} is out of range: the model has {n_vocab} tokens");
    }
    let n = args.tokens.len();
    let pool = super::pool(args.threads);
    let mut session = Session::with_precision(&model, &pool, Some(args.ctx.unwrap_or(n)), args.precision == LogitPrecision::F32)?;
    let logits = session.eval(&args.tokens, Logits::From(0)).context("evaluating the tokens")?;
    let rows: Vec<&[f32]> = logits.chunks_exact(n_vocab).collect();
    let top = |row: &[f32]| {
        let mut ids: Vec<usize> = (0..row.len()).collect();
        ids.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
        ids.truncate(args.top);
        ids.into_iter().map(|i| (i, row[i])).collect::<Vec<_>>()
    };
    if args.json {
        let positions: Vec<serde_json::Value> = rows.iter().map(|row| serde_json::json!({ "top": top(row).iter().map(|&(i, l)| serde_json::json!([i, l])).collect::<Vec<_>>() })).collect();
        let out = serde_json::json!({ "positions": positions, "last_logits": rows.last().map(|r| r.to_vec()).unwrap_or_default() });
        println!("{out}");
    } else {
        for (pos, row) in rows.iter().enumerate() {
            let list: Vec<String> = top(row).iter().map(|&(i, l)| format!("{i}:{l:.4}")).collect();
            println!("{pos}\t{}", list.join(" "));
        }
    }
    Ok(())
}
