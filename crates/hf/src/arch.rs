//! config.json to GGUF metadata, per family, with the keys and values llama.cpp's
//! `convert_hf_to_gguf.py` writes (gguf-py's names), and the tensors it generates from the
//! config (Llama 3 rope factors, Phi-3 LongRoPE factors). Where herd writes what the converter
//! does not, it says so: Mistral's `sliding_window` (llama.cpp drops it and runs the model
//! without its window), a Gemma 3 layer pattern other than llama.cpp's default, Gemma 3
//! soft-caps. Anything herd's families would not run as transformers does is refused by name.

use herd_gguf::{TensorSpec, Value};
use herd_kernels::DType;

use crate::config::HfConfig;
use crate::error::Result;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Llama, Mistral, Mixtral: q/k rows permuted for adjacent-pair rotation.
    Llama,
    Qwen2,
    Qwen3,
    Qwen3Moe,
    /// Gemma 2 and 3: norm gains stored as 1 + w, post-norms.
    Gemma2,
    Gemma3,
    Phi3,
}

/// A Hugging Face architecture herd runs: its `architectures` name, the GGUF
/// `general.architecture` it becomes, and how it is converted.
pub struct Family {
    pub hf: &'static str,
    pub arch: &'static str,
    pub kind: Kind,
}

pub const FAMILIES: &[Family] = &[
    Family { hf: "LlamaForCausalLM", arch: "llama", kind: Kind::Llama },
    Family { hf: "MistralForCausalLM", arch: "llama", kind: Kind::Llama },
    Family { hf: "MixtralForCausalLM", arch: "llama", kind: Kind::Llama },
    Family { hf: "Qwen2ForCausalLM", arch: "qwen2", kind: Kind::Qwen2 },
    Family { hf: "Qwen3ForCausalLM", arch: "qwen3", kind: Kind::Qwen3 },
    Family { hf: "Qwen3MoeForCausalLM", arch: "qwen3moe", kind: Kind::Qwen3Moe },
    Family { hf: "Gemma2ForCausalLM", arch: "gemma2", kind: Kind::Gemma2 },
    Family { hf: "Gemma3ForCausalLM", arch: "gemma3", kind: Kind::Gemma3 },
    Family { hf: "Phi3ForCausalLM", arch: "phi3", kind: Kind::Phi3 },
];

/// The family config.json's `architectures` names.
pub fn family(cfg: &HfConfig) -> Result<&'static Family> {
    let name = match cfg.get("architectures").and_then(|v| v.as_array()).and_then(|a| a.first()).and_then(|v| v.as_str()) {
        Some(name) => name,
        None => return Err(cfg.bad("'architectures' is missing, expected a list naming the model class (e.g. [\"LlamaForCausalLM\"])")),
    };
    FAMILIES.iter().find(|f| f.hf == name).ok_or_else(|| {
        let names: Vec<&str> = FAMILIES.iter().map(|f| f.hf).collect();
        cfg.bad(format!("architecture '{name}' is not supported (herd runs: {})", names.join(", ")))
    })
}

/// A tensor the converter makes from the config rather than the checkpoint.
pub struct Generated {
    pub spec: TensorSpec,
    pub data: Vec<u8>,
}

/// GGUF metadata keys of one family, `{arch}.` prefixed.
struct Keys {
    arch: &'static str,
    out: Vec<(String, Value)>,
}

impl Keys {
    fn put(&mut self, key: &str, v: Value) {
        self.out.push((format!("{}.{key}", self.arch), v));
    }
    fn u32(&mut self, key: &str, v: u32) {
        self.put(key, Value::U32(v));
    }
    fn f32(&mut self, key: &str, v: f64) {
        self.put(key, Value::F32(v as f32));
    }
}

/// The family's metadata (without `general.*` and tokenizer keys) and generated tensors.
pub fn metadata(fam: &Family, cfg: &HfConfig) -> Result<(Vec<(String, Value)>, Vec<Generated>)> {
    let mut k = Keys { arch: fam.arch, out: Vec::new() };
    let mut generated = Vec::new();
    let rope_type = cfg.rope_scaling_type()?.filter(|t| t != "default");
    let allowed: &[&str] = match fam.kind {
        Kind::Llama => &["linear", "llama3"],
        Kind::Phi3 => &["longrope", "su"],
        _ => &["linear"],
    };
    if let Some(t) = &rope_type {
        if !allowed.contains(&t.as_str()) {
            return Err(cfg.bad(format!("rope_scaling type '{t}' is not supported for {} (herd runs: {})", fam.hf, allowed.join(", "))));
        }
    }
    let n_embd = cfg.u32("hidden_size")?;
    let n_head = cfg.u32("num_attention_heads")?;
    if n_head == 0 || n_embd % n_head != 0 {
        return Err(cfg.bad(format!("'hidden_size' {n_embd} is not a multiple of 'num_attention_heads' {n_head}")));
    }
    match fam.kind {
        Kind::Gemma2 => {
            // The converter's own order and keys; no rope.freq_base (llama.cpp's default 10000
            // is Gemma 2's), so it is written only where a model differs.
            if let Some(v) = cfg.opt_u32("max_position_embeddings")? {
                k.u32("context_length", v);
            }
            k.u32("embedding_length", n_embd);
            k.u32("block_count", cfg.u32("num_hidden_layers")?);
            k.u32("feed_forward_length", cfg.u32("intermediate_size")?);
            k.u32("attention.head_count", n_head);
            k.u32("attention.head_count_kv", cfg.opt_u32("num_key_value_heads")?.unwrap_or(n_head));
            k.f32("attention.layer_norm_rms_epsilon", cfg.opt_f64("rms_norm_eps")?.unwrap_or(1e-6));
            let head_dim = cfg.opt_u32("head_dim")?.unwrap_or(n_embd / n_head);
            k.u32("attention.key_length", head_dim);
            k.u32("attention.value_length", head_dim);
            if let Some(base) = cfg.opt_f64("rope_theta")?.filter(|&b| b != 10000.0) {
                k.f32("rope.freq_base", base);
            }
            for key in ["attn_logit_softcapping", "final_logit_softcapping"] {
                if let Some(v) = cfg.opt_f64(key)? {
                    k.f32(key, v);
                }
            }
            if let Some(w) = cfg.opt_u32("sliding_window")? {
                k.u32("attention.sliding_window", w);
            }
        }
        _ => base(&mut k, cfg, rope_type.as_deref())?,
    }
    match fam.kind {
        Kind::Llama => {
            k.u32("vocab_size", cfg.u32("vocab_size")?);
            let head_dim = cfg.opt_u32("head_dim")?.unwrap_or(n_embd / n_head);
            k.u32("rope.dimension_count", head_dim);
            // herd's addition: llama.cpp's converter drops Mistral's window (see the doc above).
            if fam.hf == "MistralForCausalLM" {
                if let Some(w) = cfg.opt_u32("sliding_window")?.filter(|&w| w > 0) {
                    k.u32("attention.sliding_window", w);
                }
            }
            if rope_type.as_deref() == Some("llama3") {
                generated.push(llama3_rope_freqs(cfg, head_dim)?);
            }
        }
        Kind::Qwen2 | Kind::Qwen3 => refuse_qwen_window(cfg)?,
        Kind::Qwen3Moe => {
            refuse_qwen_window(cfg)?;
            k.u32("expert_feed_forward_length", cfg.u32("moe_intermediate_size")?);
            if cfg.opt_bool("norm_topk_prob")? == Some(false) {
                return Err(cfg.bad("'norm_topk_prob' is false: herd (as llama.cpp) always renormalises the chosen experts' weights"));
            }
            if cfg.get("mlp_only_layers").and_then(|v| v.as_array()).is_some_and(|a| !a.is_empty()) || cfg.opt_u64("decoder_sparse_step")?.is_some_and(|s| s != 1) {
                return Err(cfg.bad("layers without experts ('mlp_only_layers', 'decoder_sparse_step') are not supported"));
            }
            if cfg.opt_u64("shared_expert_intermediate_size")?.is_some_and(|s| s > 0) {
                return Err(cfg.bad("shared experts ('shared_expert_intermediate_size') are not supported"));
            }
        }
        Kind::Gemma2 => {}
        Kind::Gemma3 => {
            k.f32("rope.freq_base_swa", cfg.opt_f64("rope_local_base_freq")?.unwrap_or(10000.0));
            let window = cfg.opt_u32("sliding_window")?.ok_or_else(|| cfg.bad("'sliding_window' is missing"))?;
            k.u32("attention.sliding_window", window);
            for key in ["attn_logit_softcapping", "final_logit_softcapping"] {
                if let Some(v) = cfg.opt_f64(key)? {
                    k.f32(key, v);
                }
            }
            if let Some(pattern) = gemma3_pattern(cfg)? {
                let items = pattern.into_iter().map(Value::Bool).collect();
                k.put("attention.sliding_window_pattern", Value::Array(herd_gguf::Array { elem_type: herd_gguf::ValueType::Bool, items }));
            }
        }
        Kind::Phi3 => phi3(&mut k, cfg, n_embd, n_head, rope_type.is_some(), &mut generated)?,
    }
    Ok((k.out, generated))
}

/// The keys every family but Gemma 2 shares (the converter's `TextModel`), in its order.
fn base(k: &mut Keys, cfg: &HfConfig, rope_type: Option<&str>) -> Result<()> {
    if k.arch == "phi3" {
        return Ok(()); // Phi-3 writes its own set, in its own order.
    }
    k.u32("block_count", cfg.u32("num_hidden_layers")?);
    if let Some(v) = cfg.opt_u32("max_position_embeddings")? {
        k.u32("context_length", v);
    }
    k.u32("embedding_length", cfg.u32("hidden_size")?);
    if let Some(v) = cfg.opt_u32("intermediate_size")? {
        k.u32("feed_forward_length", v);
    }
    k.u32("attention.head_count", cfg.u32("num_attention_heads")?);
    if let Some(v) = cfg.opt_u32("num_key_value_heads")? {
        k.u32("attention.head_count_kv", v);
    }
    if rope_type == Some("linear") {
        let factor = cfg.rope_f64("factor")?.ok_or_else(|| cfg.bad("'rope_scaling.factor' is missing"))?;
        k.put("rope.scaling.type", Value::from("linear"));
        k.f32("rope.scaling.factor", factor);
    }
    if let Some(v) = cfg.opt_f64("rope_theta")? {
        k.f32("rope.freq_base", v);
    }
    if let Some(v) = cfg.opt_f64("rms_norm_eps")? {
        k.f32("attention.layer_norm_rms_epsilon", v);
    }
    if let Some(v) = cfg.opt_u32("num_local_experts")?.or(cfg.opt_u32("num_experts")?) {
        k.u32("expert_count", v);
    }
    if let Some(v) = cfg.opt_u32("num_experts_per_tok")? {
        k.u32("expert_used_count", v);
    }
    if let Some(v) = cfg.opt_u32("head_dim")? {
        k.u32("attention.key_length", v);
        k.u32("attention.value_length", v);
    }
    Ok(())
}

fn refuse_qwen_window(cfg: &HfConfig) -> Result<()> {
    if cfg.opt_bool("use_sliding_window")? == Some(true) {
        return Err(cfg.bad("'use_sliding_window' is true: Qwen's per-layer sliding window is not supported"));
    }
    Ok(())
}

/// Llama 3's per-dimension rope factors, computed as the converter does: in float32 (it runs
/// these steps on float32 tensors), wavelengths compared with the bounds that
/// `original_max_position_embeddings` sets.
fn llama3_rope_freqs(cfg: &HfConfig, head_dim: u32) -> Result<Generated> {
    let base = cfg.opt_f64("rope_theta")?.unwrap_or(10000.0) as f32;
    let factor = cfg.rope_f64("factor")?.unwrap_or(8.0) as f32;
    let low = cfg.rope_f64("low_freq_factor")?.unwrap_or(1.0) as f32;
    let high = cfg.rope_f64("high_freq_factor")?.unwrap_or(4.0) as f32;
    let old_ctx = cfg.rope_f64("original_max_position_embeddings")?.unwrap_or(8192.0) as f32;
    if head_dim < 2 || high <= low {
        return Err(cfg.bad(format!("llama3 rope scaling needs head_dim >= 2 and high_freq_factor > low_freq_factor, found {head_dim}, {high}, {low}")));
    }
    let (low_wavelen, high_wavelen) = (old_ctx / low, old_ctx / high);
    let mut data = Vec::with_capacity(head_dim as usize * 2);
    for i in (0..head_dim).step_by(2) {
        let freq = 1.0 / base.powf(i as f32 / head_dim as f32);
        let wavelen = 2.0 * std::f32::consts::PI / freq;
        let f = if wavelen < high_wavelen {
            1.0
        } else if wavelen > low_wavelen {
            factor
        } else {
            let smooth = (old_ctx / wavelen - low) / (high - low);
            1.0 / ((1.0 - smooth) / factor + smooth)
        };
        data.extend_from_slice(&f.to_le_bytes());
    }
    let spec = TensorSpec { name: "rope_freqs.weight".into(), dims: vec![u64::from(head_dim / 2)], dtype: DType::F32 };
    Ok(Generated { spec, data })
}

/// Which Gemma 3 layers slide, when `layer_types` says something other than llama.cpp's fixed
/// pattern (layer i global when i % 6 == 5); `None` when it agrees or is absent.
fn gemma3_pattern(cfg: &HfConfig) -> Result<Option<Vec<bool>>> {
    let Some(types) = cfg.get("layer_types").and_then(|v| v.as_array()) else { return Ok(None) };
    let sliding: Vec<bool> = types
        .iter()
        .map(|t| match t.as_str() {
            Some("sliding_attention") => Ok(true),
            Some("full_attention") => Ok(false),
            _ => Err(cfg.bad(format!("'layer_types' holds {t}, expected \"sliding_attention\" or \"full_attention\""))),
        })
        .collect::<Result<_>>()?;
    let default = (0..sliding.len()).all(|l| sliding[l] == (l % 6 != 5));
    Ok(if default { None } else { Some(sliding) })
}

fn phi3(k: &mut Keys, cfg: &HfConfig, n_embd: u32, n_head: u32, longrope: bool, generated: &mut Vec<Generated>) -> Result<()> {
    let n_ctx = cfg.u32("max_position_embeddings")?;
    let orig_ctx = cfg.opt_u32("original_max_position_embeddings")?.unwrap_or(n_ctx);
    let partial = cfg.opt_f64("partial_rotary_factor")?.unwrap_or(1.0);
    let rope_dims = (partial * f64::from(n_embd)) as u32 / n_head;
    k.u32("context_length", n_ctx);
    k.u32("rope.scaling.original_context_length", orig_ctx);
    k.u32("embedding_length", n_embd);
    k.u32("feed_forward_length", cfg.u32("intermediate_size")?);
    k.u32("block_count", cfg.u32("num_hidden_layers")?);
    k.u32("attention.head_count", n_head);
    k.u32("attention.head_count_kv", cfg.opt_u32("num_key_value_heads")?.unwrap_or(n_head));
    k.f32("attention.layer_norm_rms_epsilon", cfg.opt_f64("rms_norm_eps")?.unwrap_or(1e-5));
    k.u32("rope.dimension_count", rope_dims);
    k.f32("rope.freq_base", cfg.opt_f64("rope_theta")?.unwrap_or(10000.0));
    k.u32("attention.sliding_window", cfg.opt_u32("sliding_window")?.unwrap_or(0));
    if !longrope {
        return Ok(());
    }
    let scale = f64::from(n_ctx) / f64::from(orig_ctx);
    let attn_factor = if scale > 1.0 { (1.0 + scale.ln() / f64::from(orig_ctx).ln()).sqrt() } else { 1.0 };
    k.f32("rope.scaling.attn_factor", attn_factor);
    for (key, name) in [("long_factor", "rope_factors_long.weight"), ("short_factor", "rope_factors_short.weight")] {
        let factors = cfg.rope_list(key)?.ok_or_else(|| cfg.bad(format!("LongRoPE needs 'rope_scaling.{key}'")))?;
        if factors.len() * 2 != rope_dims as usize {
            return Err(cfg.bad(format!("'rope_scaling.{key}' has {} factors, expected {} (half the rotary dimensions)", factors.len(), rope_dims / 2)));
        }
        let data = factors.iter().flat_map(|&f| (f as f32).to_le_bytes()).collect();
        generated.push(Generated { spec: TensorSpec { name: name.into(), dims: vec![factors.len() as u64], dtype: DType::F32 }, data });
    }
    Ok(())
}
