//! Tokenization throughput on one text, for scripts/bench-tokenizer: loads the vocabulary of a
//! GGUF file, encodes the text (plain, no BOS) several times on one thread, and prints the best
//! time as MB/s. With a third argument, writes the ids there, one per line, so that the script
//! can compare them with another tokenizer's.
//!
//! Usage: bench_encode MODEL.gguf TEXT_FILE [IDS_OUT]

use std::time::Instant;

use herd_gguf::Gguf;
use herd_tokenizer::{LoadOptions, Tokenizer};

const RUNS: usize = 5;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, model, text_file, rest @ ..] = args.as_slice() else {
        return Err("usage: bench_encode MODEL.gguf TEXT_FILE [IDS_OUT]".into());
    };
    let t0 = Instant::now();
    let g = Gguf::open(model.as_ref())?;
    let tok = Tokenizer::from_gguf(&g, &LoadOptions::default())?;
    let load_s = t0.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(text_file)?;

    let mut best = f64::INFINITY;
    let mut ids = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        ids = tok.encode(&text, false, false);
        best = best.min(t.elapsed().as_secs_f64());
    }
    if let Some(path) = rest.first() {
        let lines: Vec<String> = ids.iter().map(u32::to_string).collect();
        std::fs::write(path, lines.join("\n") + "\n")?;
    }
    println!(
        "herd: {:.1} MB/s ({} bytes -> {} tokens in {:.1} ms, best of {RUNS}; vocabulary loaded in {:.0} ms, pre-tokenizer {})",
        text.len() as f64 / best / 1e6,
        text.len(),
        ids.len(),
        best * 1e3,
        load_s * 1e3,
        tok.pre_name(),
    );
    Ok(())
}
