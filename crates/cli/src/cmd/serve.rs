//! `herd serve`: an OpenAI-compatible HTTP server. Parses the flags and hands over to
//! `herd_server::run`; everything else lives in the server crate.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use herd_server::{EngineOptions, KvSize, RunOptions, ServerConfig};

use crate::model_arg;
use crate::template_arg::ChatTemplateArg;

#[derive(clap::Args)]
pub struct Args {
    /// Model file or known model name (default: the default model, fetched if absent).
    #[arg(short, long)]
    model: Option<String>,
    /// Address to listen on; loopback unless told otherwise.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Require `Authorization: Bearer KEY` on every endpoint but /health.
    #[arg(long)]
    api_key: Option<String>,
    /// Let browser pages from ORIGIN call the API (CORS), e.g. http://localhost:3000; repeatable;
    /// `*` for any origin. Without it, no CORS headers are sent.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    cors_origins: Vec<String>,
    #[command(flatten)]
    template: ChatTemplateArg,
    /// Positions per sequence (default: 4096, or the model's trained context if shorter).
    /// Requests without max_tokens may generate up to the rest of it.
    #[arg(short, long)]
    ctx: Option<usize>,
    /// Most sequences decoding at once (a choice of a request is one sequence).
    #[arg(long, default_value_t = 16)]
    max_seqs: usize,
    /// Most requests waiting for a slot; more get 429.
    #[arg(long, default_value_t = 64)]
    max_queue: usize,
    /// Most tokens computed per engine step (decodes and prompt chunks together).
    #[arg(long, default_value_t = 256)]
    token_budget: usize,
    /// Threads of the engine (default: one per core).
    #[arg(short, long)]
    threads: Option<usize>,
    /// KV cache blocks (16 positions each); instead of --kv-mem.
    #[arg(long, conflicts_with = "kv_mem")]
    kv_blocks: Option<usize>,
    /// KV cache memory in GiB, capped at what --max-seqs sequences of --ctx can use.
    #[arg(long, default_value_t = 4.0)]
    kv_mem: f64,
    /// Seconds a request may run before it is ended.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Seconds running requests get to finish on SIGTERM or Ctrl-C.
    #[arg(long, default_value_t = 10)]
    shutdown_grace: u64,
    /// Largest request body in MiB; larger ones get 413.
    #[arg(long, default_value_t = 2)]
    max_body_mib: usize,
}

pub fn main(args: Args) -> Result<()> {
    if !(args.kv_mem.is_finite() && args.kv_mem > 0.0) {
        bail!("--kv-mem must be a positive number of GiB, got {}", args.kv_mem);
    }
    if args.timeout == 0 || args.max_body_mib == 0 {
        bail!("--timeout and --max-body-mib must be at least 1");
    }
    let engine = EngineOptions {
        n_ctx: args.ctx,
        max_seqs: args.max_seqs,
        max_queue: args.max_queue,
        token_budget: args.token_budget,
        threads: args.threads.unwrap_or(EngineOptions::default().threads),
        kv: match args.kv_blocks {
            Some(n) => KvSize::Blocks(n),
            None => KvSize::Bytes((args.kv_mem * f64::from(1u32 << 30)) as u64),
        },
    };
    engine.validate().map_err(anyhow::Error::msg)?;
    for origin in &args.cors_origins {
        herd_server::check_cors_origin(origin).map_err(anyhow::Error::msg)?;
    }
    let server = ServerConfig {
        api_key: args.api_key,
        request_timeout: Duration::from_secs(args.timeout),
        shutdown_grace: Duration::from_secs(args.shutdown_grace),
        max_body_bytes: args.max_body_mib.saturating_mul(1 << 20),
        cors_origins: args.cors_origins,
    };
    let chat_template = args.template.source()?;
    let model: PathBuf = model_arg::resolve(args.model.as_deref())?;
    herd_server::run(RunOptions { model, chat_template, host: args.host, port: args.port, server, engine })?;
    Ok(())
}
