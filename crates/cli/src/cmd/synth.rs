//! `herd synth`: write a random-weight model of a named shape, with a working tokenizer.

use std::path::PathBuf;

use anyhow::{anyhow, Result};
use herd_engine::synth::{find_shape, write, SynthOptions, SHAPES};
use herd_kernels::DType;

#[derive(clap::Args)]
pub struct Args {
    /// The shape: llama-3-8b, llama-3.2-1b, smollm2-135m, tiny, or a mixture of experts:
    /// qwen3-30b-a3b, qwen3moe-small, mixtral-8x7b, mixtral-tiny (the small ones run anywhere).
    #[arg(long)]
    shape: String,
    /// Type of the weight matrices (q4_0, q4_1, q8_0, q4_k, q6_k, f16, bf16, ...).
    #[arg(long = "type", default_value = "q4_k")]
    dtype: String,
    /// Seed of the random weights.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output file.
    #[arg(short, long)]
    output: PathBuf,
}

pub fn main(args: Args) -> Result<()> {
    let names = || SHAPES.iter().map(|s| s.name).collect::<Vec<_>>().join(", ");
    let shape = find_shape(&args.shape).ok_or_else(|| anyhow!("unknown shape '{}' (known: {})", args.shape, names()))?;
    let dtype = DType::from_name(&args.dtype).ok_or_else(|| anyhow!("unknown type '{}'", args.dtype))?;
    eprintln!("herd: writing a random {} {} model to {}", shape.name, dtype, args.output.display());
    write(&SynthOptions { shape, dtype, seed: args.seed, chat_template: true }, &args.output)?;
    Ok(())
}
