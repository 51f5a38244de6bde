//! `herd info`: what a model file holds, without running it.

use std::collections::BTreeMap;

use anyhow::Result;
use herd_engine::model::{family_config, load_tokenizer};
use herd_gguf::Gguf;
use herd_tokenizer::LoadOptions;

use crate::model_arg;

#[derive(clap::Args)]
pub struct Args {
    /// Model file, Hugging Face folder, or model name (as `herd list` shows them).
    model: String,
}

pub fn main(args: Args) -> Result<()> {
    let path = model_arg::resolve(Some(&args.model))?;
    let file = if herd_hf::is_model_folder(&path) { herd_hf::open(&path)? } else { Gguf::open(&path)? };
    let str_key = |k: &str| file.get_str(k).ok().flatten().unwrap_or("-").to_string();
    println!("file:            {} ({:.1} MiB, GGUF v{})", path.display(), file.file_size() as f64 / (1 << 20) as f64, file.version());
    println!("name:            {}", str_key("general.name"));
    println!("architecture:    {}", str_key("general.architecture"));

    let n_params: u64 = file.tensors().iter().map(|t| t.n_elements).sum();
    let mut types: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    for t in file.tensors() {
        let e = types.entry(t.dtype.name()).or_default();
        e.0 += 1;
        e.1 += t.n_bytes;
    }
    println!("parameters:      {} ({:.1} M)", n_params, n_params as f64 / 1e6);
    let types: Vec<String> = types.iter().map(|(name, (n, bytes))| format!("{name} x{n} ({:.1} MiB)", *bytes as f64 / (1 << 20) as f64)).collect();
    println!("tensor types:    {}", types.join(", "));

    match family_config(&file) {
        Ok((_, c)) => {
            println!("layers:          {}", c.n_layers);
            println!("embedding:       {}", c.d_model);
            println!("feed-forward:    {}", c.d_ff);
            println!("heads:           {} (kv {}, head dim {})", c.n_heads, c.n_kv_heads, c.head_dim);
            println!("context length:  {}", c.n_ctx_train);
            println!("rope:            base {}, {} dims, linear scale {}, freq factors {}", c.rope.base, c.rope.n_rot, c.rope.linear_scale, if c.rope.freq_factors.is_some() { "yes" } else { "no" });
            println!("rms eps:         {:e}", c.rms_eps);
            println!("vocab:           {}", c.n_vocab);
        }
        Err(e) => println!("model:           not runnable: {e}"),
    }
    match load_tokenizer(&file, &LoadOptions::default()) {
        Ok(t) => {
            let name = |id: Option<u32>| id.map_or("-".to_string(), |id| format!("{id} {:?}", t.token_text(id).unwrap_or("")));
            println!("tokenizer:       {} (pre {}), {} tokens, bos {}, eos {}, adds bos: {}", t.model_name(), t.pre_name(), t.n_vocab(), name(t.bos_id()), name(t.eos_id()), t.adds_bos());
        }
        Err(e) => println!("tokenizer:       unusable: {e}"),
    }
    match file.get_str("tokenizer.chat_template")? {
        Some(template) => println!("chat template:\n{template}"),
        None => println!("chat template:   none"),
    }
    Ok(())
}
