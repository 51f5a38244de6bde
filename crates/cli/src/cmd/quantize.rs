//! `herd quantize`: a model file with its weight matrices in another type (llama-quantize).

use std::path::PathBuf;

use anyhow::{anyhow, Result};
use herd_engine::quantize::quantize;
use herd_kernels::DType;

use crate::model_arg;

#[derive(clap::Args)]
pub struct Args {
    /// Model file or known model name.
    #[arg(short, long)]
    model: Option<String>,
    /// Output file.
    #[arg(short, long)]
    output: PathBuf,
    /// Target type of the weight matrices (q4_0, q4_1, q5_0, q5_1, q8_0, q2_k..q6_k, f16, bf16).
    #[arg(long = "type")]
    dtype: String,
    /// Threads (default: one per core).
    #[arg(short, long)]
    threads: Option<usize>,
}

pub fn main(args: Args) -> Result<()> {
    let dtype = DType::from_name(&args.dtype).filter(|t| DType::WEIGHTS.contains(t)).ok_or_else(|| anyhow!("'{}' is not a weight type", args.dtype))?;
    let input = model_arg::resolve(args.model.as_deref())?;
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let start = std::time::Instant::now();
    let report = quantize(&input, &args.output, dtype, threads)?;
    let mut fallbacks = std::collections::BTreeMap::new();
    for (_, t) in &report.fallbacks {
        *fallbacks.entry(t.name()).or_insert(0) += 1;
    }
    for (t, n) in fallbacks {
        eprintln!("herd: {n} matrices have rows that are not whole {dtype} blocks and are stored as {t}");
    }
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    eprintln!(
        "herd: {} matrices to {dtype}: {:.1} MiB -> {:.1} MiB in {:.1} s",
        report.n_quantized,
        mib(report.bytes_in),
        mib(report.bytes_out),
        start.elapsed().as_secs_f64()
    );
    println!("{}", args.output.display());
    Ok(())
}
