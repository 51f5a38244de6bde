//! `herd bench`: prompt-processing and generation speed, with llama-bench's flags, table and
//! JSON fields, so the two tools' outputs compare line for line.

use anyhow::{bail, Result};
use herd_engine::bench::{run, Test};
use herd_engine::session::PROMPT_BATCH;
use herd_engine::Model;
use serde_json::json;

use crate::model_arg;

#[derive(clap::Args)]
pub struct Args {
    /// Model file or known model name (default: the default model).
    #[arg(short, long)]
    model: Option<String>,
    /// Prompt lengths to test, comma-separated (0 skips).
    #[arg(short = 'p', long = "n-prompt", value_delimiter = ',', default_value = "512")]
    n_prompt: Vec<usize>,
    /// Generation lengths to test, comma-separated (0 skips).
    #[arg(short = 'n', long = "n-gen", value_delimiter = ',', default_value = "128")]
    n_gen: Vec<usize>,
    /// Tokens of context already in the cache when each test starts, comma-separated.
    #[arg(short = 'd', long = "n-depth", value_delimiter = ',', default_value = "0")]
    n_depth: Vec<usize>,
    /// Threads, comma-separated (default: one per core).
    #[arg(short, long, value_delimiter = ',')]
    threads: Vec<usize>,
    /// Timed repetitions of each test (after one untimed warm-up).
    #[arg(short, long, default_value_t = 5)]
    repetitions: usize,
    /// Print a JSON array (llama-bench's `-o json` fields) instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn main(args: Args) -> Result<()> {
    if args.repetitions == 0 {
        bail!("--repetitions must be at least 1");
    }
    if args.threads.contains(&0) {
        bail!("--threads must be at least 1");
    }
    let path = model_arg::resolve(args.model.as_deref())?;
    let model = Model::load(&path)?;
    let n_params: u64 = model.file.tensors().iter().map(|t| t.n_elements).sum();
    let model_size: u64 = model.file.tensors().iter().map(|t| t.n_bytes).sum();
    let model_type = format!("{} {} {}", model.cfg().arch, size_label(n_params), main_type(&model));
    let threads = if args.threads.is_empty() { vec![std::thread::available_parallelism().map_or(1, |n| n.get())] } else { args.threads.clone() };
    let tests: Vec<Test> = args.n_prompt.iter().filter(|&&n| n > 0).map(|&n| Test::Prompt(n)).chain(args.n_gen.iter().filter(|&&n| n > 0).map(|&n| Test::Gen(n))).collect();

    let mut rows = Vec::new();
    if !args.json {
        println!("| model | size | params | backend | threads | test | t/s |");
        println!("| --- | ---: | ---: | --- | ---: | ---: | ---: |");
    }
    for &n_threads in &threads {
        let pool = herd_kernels::ThreadPool::new(n_threads);
        for (&test, &depth) in tests.iter().flat_map(|t| args.n_depth.iter().map(move |d| (t, d))) {
            let samples = run(&model, &pool, test, depth, args.repetitions)?;
            let ns: Vec<u64> = samples.iter().map(|d| d.as_nanos() as u64).collect();
            let ts: Vec<f64> = samples.iter().map(|d| test.n_tokens() as f64 / d.as_secs_f64()).collect();
            let (avg_ns, stddev_ns) = mean_std(&ns.iter().map(|&x| x as f64).collect::<Vec<_>>());
            let (avg_ts, stddev_ts) = mean_std(&ts);
            let (n_prompt, n_gen) = match test {
                Test::Prompt(n) => (n, 0),
                Test::Gen(n) => (0, n),
            };
            if args.json {
                rows.push(json!({
                    "build_commit": env!("CARGO_PKG_VERSION"),
                    "backends": "CPU",
                    "model_filename": path.display().to_string(),
                    "model_type": model_type,
                    "model_size": model_size,
                    "model_n_params": n_params,
                    "n_batch": PROMPT_BATCH,
                    "n_ubatch": PROMPT_BATCH,
                    "n_threads": n_threads,
                    "n_prompt": n_prompt,
                    "n_gen": n_gen,
                    "n_depth": depth,
                    "avg_ns": avg_ns as u64,
                    "stddev_ns": stddev_ns as u64,
                    "avg_ts": avg_ts,
                    "stddev_ts": stddev_ts,
                    "samples_ns": ns,
                    "samples_ts": ts,
                }));
            } else {
                let name = if depth > 0 { format!("{} @ d{depth}", test.name()) } else { test.name() };
                println!(
                    "| {model_type} | {:.2} MiB | {:.2} M | CPU | {n_threads} | {name} | {avg_ts:.2} ± {stddev_ts:.2} |",
                    model_size as f64 / (1 << 20) as f64,
                    n_params as f64 / 1e6,
                );
            }
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    }
    Ok(())
}

fn mean_std(xs: &[f64]) -> (f64, f64) {
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    if xs.len() < 2 {
        return (mean, 0.0);
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (xs.len() - 1) as f64;
    (mean, var.sqrt())
}

/// `135M`, `8B`: the parameter count as model names give it.
fn size_label(n_params: u64) -> String {
    if n_params >= 1_000_000_000 {
        format!("{:.0}B", n_params as f64 / 1e9)
    } else {
        format!("{:.0}M", n_params as f64 / 1e6)
    }
}

/// The type most of the weight bytes are stored in.
fn main_type(model: &Model) -> &'static str {
    let mut by_type = std::collections::HashMap::new();
    for t in model.file.tensors() {
        *by_type.entry(t.dtype.name()).or_insert(0u64) += t.n_bytes;
    }
    by_type.into_iter().max_by_key(|&(_, bytes)| bytes).map_or("?", |(name, _)| name)
}
