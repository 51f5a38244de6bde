//! One module per subcommand.

pub mod bench;
pub mod chat;
pub mod convert;
mod generation_args;
pub mod info;
pub mod list;
pub mod logits;
pub mod perplexity;
pub mod plan;
pub mod pull;
pub mod quantize;
pub mod rm;
pub mod run;
pub mod serve;
pub mod synth;
pub mod template;
pub mod tokenize;

pub use generation_args::GenerationArgs;

/// A thread pool with `threads` threads, or one per core.
pub fn pool(threads: Option<usize>) -> herd_kernels::ThreadPool {
    match threads {
        Some(n) => herd_kernels::ThreadPool::new(n),
        None => herd_kernels::ThreadPool::with_all_cores(),
    }
}

/// Reads a text file, refusing bytes that are not UTF-8 with the offset of the first bad one.
pub fn read_text(path: &std::path::Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    String::from_utf8(bytes).map_err(|e| anyhow::anyhow!("{}: not UTF-8 text (invalid byte at offset {})", path.display(), e.utf8_error().valid_up_to()))
}
