//! `herd convert DIR -o OUT.gguf [--type T]`: a Hugging Face folder written as the GGUF file
//! llama.cpp's convert_hf_to_gguf.py makes of it, optionally with its weight matrices
//! quantized on the way (as `herd quantize`). The folder is loaded as a model first, so a
//! folder herd could not run is refused before anything is written; the file appears whole.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};
use herd_engine::quantize;
use herd_engine::Model;
use herd_kernels::DType;

#[derive(clap::Args)]
pub struct Args {
    /// The Hugging Face model folder (config.json, *.safetensors, tokenizer.json).
    dir: PathBuf,
    /// Output file.
    #[arg(short, long)]
    output: PathBuf,
    /// Type of the weight matrices (q4_0, q4_1, q5_0, q5_1, q8_0, q2_k..q6_k, f16, bf16, f32);
    /// default: as stored in the folder.
    #[arg(long = "type")]
    dtype: Option<String>,
    /// Threads for quantizing (default: one per core).
    #[arg(short, long)]
    threads: Option<usize>,
}

pub fn main(args: Args) -> Result<()> {
    let dtype = match &args.dtype {
        None => None,
        Some(name) => Some(DType::from_name(name).filter(|t| DType::WEIGHTS.contains(t)).ok_or_else(|| anyhow!("'{name}' is not a weight type"))?),
    };
    if !args.dir.is_dir() {
        bail!("{}: not a folder (herd convert reads a Hugging Face model folder)", args.dir.display());
    }
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let start = std::time::Instant::now();
    let model = Model::load(&args.dir)?;
    let report = quantize::write(&model.file, &args.output, dtype, threads)?;
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    eprintln!(
        "herd: {} tensors ({}), {:.1} MiB -> {:.1} MiB in {:.1} s",
        model.file.tensors().len(),
        dtype.map_or_else(|| "types kept".to_string(), |t| format!("{} matrices to {t}", report.n_quantized)),
        mib(report.bytes_in),
        mib(report.bytes_out),
        start.elapsed().as_secs_f64()
    );
    println!("{}", args.output.display());
    Ok(())
}
