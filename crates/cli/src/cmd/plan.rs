//! `herd plan`: capacity planning. Parses flags into `herd_plan::Inputs` and prints the
//! `Plan`; the formulas, catalogues and probes live in crates/plan.

use std::path::Path;

use anyhow::{anyhow, bail, Result};
use herd_plan::model::{kv_bytes_per_value, shape_names};
use herd_plan::{find_gpu, find_shape, parse_devices, parse_tokens, positive, probe_cpu, Format, Inputs, Model};

use crate::model_arg;

#[derive(clap::Args)]
pub struct Args {
    /// A named shape (llama-3.1-8b/70b/405b, llama-3.2-1b/3b, qwen3-8b/32b, qwen3-30b-a3b,
    /// gemma3-27b, mixtral-8x7b, smollm2-135m), a GGUF file, a Hugging Face folder, or a model herd fetches.
    #[arg(long, short)]
    model: String,
    /// Weight format: bf16, fp16, fp8, q8_0, q6_k, q4_k, q4_0, ... (default: a file's own, else bf16).
    #[arg(long)]
    format: Option<String>,
    /// KV cache format: f16, bf16, fp8, q8_0, f32.
    #[arg(long, default_value = "f16")]
    kv_format: String,
    /// Device: h100, h200, a100, l40s, or cpu (this machine, measured; about a second).
    #[arg(long)]
    hardware: Option<String>,
    /// Devices per replica, as NxNAME (8xh100); chosen to fit when absent.
    #[arg(long)]
    gpus: Option<String>,
    /// The whole fleet, as NxNAME (600000xh100): replicas it holds, requests/s it serves, and
    /// the days --train-tokens take on it.
    #[arg(long)]
    fleet: Option<String>,
    /// Context each sequence may reach (default: 8192, or the model's trained context if less).
    #[arg(long, allow_negative_numbers = true)]
    ctx: Option<i64>,
    /// Concurrent users (sequences decoding at once).
    #[arg(long, allow_negative_numbers = true)]
    users: Option<i64>,
    /// Prompt tokens per request (herd bench's default, so the two compare).
    #[arg(long, allow_negative_numbers = true, default_value_t = 512)]
    prompt_len: i64,
    /// Generated tokens per request (herd bench's default).
    #[arg(long, allow_negative_numbers = true, default_value_t = 128)]
    output_len: i64,
    /// Time-per-output-token target in milliseconds: batches stay small enough to meet it.
    #[arg(long, allow_negative_numbers = true)]
    tpot_ms: Option<f64>,
    /// Pretraining tokens (15.6T, 1.5e13): 6ND FLOPs, GPU-hours, days.
    #[arg(long, allow_hyphen_values = true)]
    train_tokens: Option<String>,
    /// Model FLOPs utilisation for prompts and training (default: 0.4 on GPUs, 0.85 of the
    /// measured rate on cpu).
    #[arg(long, allow_negative_numbers = true)]
    mfu: Option<f64>,
    /// Print JSON (fields: weights_bytes, kv_bytes_per_token, max_sequences, gpus_per_replica,
    /// decode_tokens_per_s, prefill_tokens_per_s, replicas, train_flops, gpu_hours, train_days ...).
    #[arg(long)]
    json: bool,
    /// State the formula behind every figure.
    #[arg(long)]
    explain: bool,
}

pub fn main(args: Args) -> Result<()> {
    // Validate everything first, then measure (the cpu probe takes a second).
    let prompt_len = positive("--prompt-len", args.prompt_len)?;
    let output_len = positive("--output-len", args.output_len)?;
    let users = args.users.map(|u| positive("--users", u).map(|u| u as u64)).transpose()?;
    let train_tokens = args.train_tokens.as_deref().map(|t| parse_tokens("--train-tokens", t)).transpose()?;
    let kv_bytes = kv_bytes_per_value(&args.kv_format)?;
    let gpus = args.gpus.as_deref().map(|g| parse_devices("--gpus", g)).transpose()?;
    let fleet = args.fleet.as_deref().map(|f| parse_devices("--fleet", f)).transpose()?;
    let mut names = [args.hardware.clone(), gpus.as_ref().map(|g| g.1.clone()), fleet.as_ref().map(|f| f.1.clone())].into_iter().flatten();
    let hw_name = names.next().unwrap_or_else(|| "h100".into());
    if let Some(other) = names.find(|n| !same_device(n, &hw_name)) {
        bail!("--hardware, --gpus and --fleet name different devices ({hw_name} and {other})");
    }
    let gpu = if hw_name.eq_ignore_ascii_case("cpu") { None } else { Some(find_gpu(&hw_name)?) };

    let mut model = load_model(&args.model)?;
    if let Some(f) = &args.format {
        model = model.in_format(Format::parse(f)?);
    }
    let ctx = match args.ctx {
        Some(c) => positive("--ctx", c)?,
        None => 8192.min(model.shape.n_ctx_train),
    };
    if ctx > model.shape.n_ctx_train {
        bail!("--ctx {ctx} exceeds the {} tokens {} was trained for", model.shape.n_ctx_train, model.label());
    }
    let hardware = match gpu {
        Some(g) => g,
        None => {
            eprintln!("herd: measuring this machine (memory bandwidth, herd's products)");
            probe_cpu(model.probe_shape())
        }
    };
    let inputs = Inputs {
        model,
        kv_format: args.kv_format.to_ascii_lowercase(),
        kv_bytes_per_value: kv_bytes,
        hardware,
        gpus_per_replica: gpus.map(|g| g.0 as usize),
        fleet_gpus: fleet.map(|f| f.0),
        ctx,
        users,
        prompt_len,
        output_len,
        tpot_ms: args.tpot_ms,
        train_tokens,
        mfu: args.mfu,
    };
    let plan = herd_plan::plan(&inputs)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&plan.to_json(args.explain))?);
    } else {
        print!("{}", plan.to_text(args.explain));
    }
    Ok(())
}

fn same_device(a: &str, b: &str) -> bool {
    match (find_gpu(a), find_gpu(b)) {
        (Ok(x), Ok(y)) => x.name == y.name,
        _ => a.eq_ignore_ascii_case(b),
    }
}

/// A named shape, a GGUF file, a Hugging Face folder, or a model herd fetches by name.
fn load_model(arg: &str) -> Result<Model> {
    if let Some(shape) = find_shape(arg) {
        return Ok(Model::named(shape, Format::parse("bf16")?));
    }
    let known = model_arg::known_names();
    if Path::new(arg).exists() || known.split(", ").any(|name| name == arg) {
        return Ok(Model::from_gguf(&model_arg::resolve(Some(arg))?)?);
    }
    Err(anyhow!("unknown model '{arg}': not a file or folder, a named shape ({}) or a model herd fetches ({known})", shape_names()))
}
