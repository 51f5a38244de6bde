//! Hugging Face tensors to GGUF tensors: names as llama.cpp's converter writes them, data left
//! in the mapped safetensors files except where the converter changes values: Llama-family q/k
//! rows permuted for adjacent-pair rotation, Gemma norm gains stored as 1 + w, experts stacked
//! into one 3-D tensor per projection, and 1-D tensors (norms, biases) stored as F32, as the
//! converter always stores them. Those become owned buffers.

use std::collections::BTreeMap;
use std::sync::Arc;

use herd_gguf::{TensorSource, TensorSpec};
use herd_kernels::quant::dequantize_row;
use herd_kernels::DType;

use crate::arch::{Family, Kind};
use crate::config::HfConfig;
use crate::error::{HfError, Result};
use crate::safetensors::StTensor;
use crate::weights::Weights;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum ExpertPart {
    Gate,
    Up,
    Down,
}

enum Target {
    /// A tensor the converter skips (rotary tables transformers recomputes).
    Skip,
    Plain(String),
    Expert { layer: u32, part: ExpertPart, idx: usize },
}

/// The GGUF name of Hugging Face tensor `name` in family `kind`.
fn target(kind: Kind, name: &str, n_layers: u32) -> std::result::Result<Target, String> {
    let unknown = || format!("tensor '{name}' is not one herd knows how to name in GGUF");
    let Some((stem, suffix)) = name.rsplit_once('.') else { return Err(unknown()) };
    if stem.ends_with("rotary_emb") {
        return Ok(Target::Skip);
    }
    let plain = |s: &str| Ok(Target::Plain(format!("{s}.{suffix}")));
    match stem {
        "model.embed_tokens" => return plain("token_embd"),
        "model.norm" => return plain("output_norm"),
        "lm_head" => return plain("output"),
        _ => {}
    }
    let Some(rest) = stem.strip_prefix("model.layers.") else { return Err(unknown()) };
    let (layer, rest) = rest.split_once('.').ok_or_else(unknown)?;
    let layer: u32 = layer.parse().map_err(|_| unknown())?;
    if layer >= n_layers {
        return Err(format!("tensor '{name}' belongs to layer {layer} but 'num_hidden_layers' is {n_layers}"));
    }
    let gemma = matches!(kind, Kind::Gemma2 | Kind::Gemma3);
    let gguf = match rest {
        "input_layernorm" => "attn_norm",
        "post_attention_layernorm" if gemma => "post_attention_norm",
        "post_attention_layernorm" => "ffn_norm",
        "pre_feedforward_layernorm" if gemma => "ffn_norm",
        "post_feedforward_layernorm" if gemma => "post_ffw_norm",
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "self_attn.qkv_proj" if kind == Kind::Phi3 => "attn_qkv",
        "self_attn.q_norm" => "attn_q_norm",
        "self_attn.k_norm" => "attn_k_norm",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        // Phi-3 fuses gate and up (gate first), which is what GGUF's ffn_up holds for it.
        "mlp.gate_up_proj" if kind == Kind::Phi3 => "ffn_up",
        "mlp.gate" | "block_sparse_moe.gate" => "ffn_gate_inp",
        _ => {
            let expert = rest.strip_prefix("block_sparse_moe.experts.").or_else(|| rest.strip_prefix("mlp.experts."));
            let Some((idx, proj)) = expert.and_then(|e| e.split_once('.')) else { return Err(unknown()) };
            let idx: usize = idx.parse().map_err(|_| unknown())?;
            let part = match proj {
                "w1" | "gate_proj" => ExpertPart::Gate,
                "w3" | "up_proj" => ExpertPart::Up,
                "w2" | "down_proj" => ExpertPart::Down,
                _ => return Err(unknown()),
            };
            return Ok(Target::Expert { layer, part, idx });
        }
    };
    Ok(Target::Plain(format!("blk.{layer}.{gguf}.{suffix}")))
}

fn gguf_dims(shape: &[u64]) -> Vec<u64> {
    shape.iter().rev().copied().collect()
}

fn to_f32(t: &StTensor, bytes: &[u8]) -> Vec<f32> {
    let n = t.shape.iter().product::<u64>() as usize;
    let mut out = vec![0.0; n];
    dequantize_row(t.dtype, bytes, &mut out);
    out
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// llama.cpp's q/k permutation: within each head, the rows of the first half of the rotary
/// pairs and of the second half are interleaved, so NeoX-ordered weights rotate as adjacent
/// pairs. `bytes` holds rows along the first dimension.
fn permute_rows(bytes: &[u8], n_rows: usize, n_head: usize) -> Option<Vec<u8>> {
    if n_head == 0 || n_rows % (2 * n_head) != 0 || bytes.len() % n_rows != 0 {
        return None;
    }
    let row = bytes.len() / n_rows;
    let (head_rows, half) = (n_rows / n_head, n_rows / n_head / 2);
    let mut out = Vec::with_capacity(bytes.len());
    for h in 0..n_head {
        for i in 0..half {
            for p in 0..2 {
                let src = h * head_rows + p * half + i;
                out.extend_from_slice(&bytes[src * row..(src + 1) * row]);
            }
        }
    }
    Some(out)
}

/// Every checkpoint tensor as a GGUF tensor, in the checkpoint's name order (as the converter
/// goes), experts stacked after the rest of their layer's tensors.
pub fn tensors(fam: &Family, cfg: &HfConfig, weights: &Weights) -> Result<Vec<(TensorSpec, TensorSource)>> {
    let n_layers = cfg.u32("num_hidden_layers")?;
    let n_head = cfg.u32("num_attention_heads")? as usize;
    let n_kv_head = cfg.opt_u32("num_key_value_heads")?.map_or(n_head, |v| v as usize);
    let mut out = Vec::new();
    let mut experts: BTreeMap<(u32, ExpertPart), BTreeMap<usize, &String>> = BTreeMap::new();
    for (name, (t, map)) in &weights.tensors {
        let bad = |m: String| HfError::at(&weights.files[name], m);
        let gguf = match target(fam.kind, name, n_layers).map_err(bad)? {
            Target::Skip => continue,
            Target::Expert { layer, part, idx } => {
                experts.entry((layer, part)).or_default().insert(idx, name);
                continue;
            }
            Target::Plain(gguf) => gguf,
        };
        let bytes = &map[t.range.clone()];
        let mapped = || TensorSource::Mapped { map: Arc::clone(map), range: t.range.clone() };
        let mut spec = TensorSpec { name: gguf, dims: gguf_dims(&t.shape), dtype: t.dtype };
        let is_norm = name.ends_with("norm.weight");
        let source = if matches!(fam.kind, Kind::Gemma2 | Kind::Gemma3) && is_norm {
            spec.dtype = DType::F32;
            let shifted: Vec<f32> = to_f32(t, bytes).iter().map(|w| w + 1.0).collect();
            TensorSource::Owned(f32_bytes(&shifted))
        } else if fam.kind == Kind::Llama && (name.ends_with("self_attn.q_proj.weight") || name.ends_with("self_attn.q_proj.bias") || name.ends_with("self_attn.k_proj.weight") || name.ends_with("self_attn.k_proj.bias")) {
            let heads = if name.contains(".q_proj.") { n_head } else { n_kv_head };
            let rows = t.shape.first().copied().unwrap_or(0) as usize;
            let permuted = permute_rows(bytes, rows, heads).ok_or_else(|| bad(format!("tensor '{name}': shape {:?} does not split into {heads} heads of rotary pairs", t.shape)))?;
            if t.shape.len() == 1 && t.dtype != DType::F32 {
                spec.dtype = DType::F32;
                TensorSource::Owned(f32_bytes(&to_f32(t, &permuted)))
            } else {
                TensorSource::Owned(permuted)
            }
        } else if t.shape.len() == 1 && t.dtype != DType::F32 {
            spec.dtype = DType::F32;
            TensorSource::Owned(f32_bytes(&to_f32(t, bytes)))
        } else {
            mapped()
        };
        out.push((spec, source));
    }
    let n_expert = cfg.opt_u32("num_local_experts")?.or(cfg.opt_u32("num_experts")?).unwrap_or(0) as usize;
    for ((layer, part), by_idx) in experts {
        let first = by_idx.values().next().expect("an entry has at least one expert");
        let (t0, _) = &weights.tensors[*first];
        let bad = |m: String| HfError::at(&weights.files[*first], m);
        if by_idx.len() != n_expert || by_idx.keys().copied().ne(0..n_expert) {
            let missing = (0..n_expert).find(|e| !by_idx.contains_key(e));
            return Err(bad(match missing {
                Some(e) => format!("layer {layer} has no {part:?} projection for expert {e} (the config has {n_expert} experts)"),
                None => format!("layer {layer} has {part:?} projections for {} experts but the config has {n_expert}", by_idx.len()),
            }));
        }
        let mut data = Vec::with_capacity(t0.range.len() * n_expert);
        for name in by_idx.values() {
            let (t, map) = &weights.tensors[*name];
            if t.shape != t0.shape || t.dtype != t0.dtype {
                return Err(bad(format!("tensor '{name}' is {:?} {}, expected {:?} {} as '{first}'", t.shape, t.dtype, t0.shape, t0.dtype)));
            }
            data.extend_from_slice(&map[t.range.clone()]);
        }
        let which = match part {
            ExpertPart::Gate => "ffn_gate_exps",
            ExpertPart::Up => "ffn_up_exps",
            ExpertPart::Down => "ffn_down_exps",
        };
        let mut dims = gguf_dims(&t0.shape);
        dims.push(n_expert as u64);
        out.push((TensorSpec { name: format!("blk.{layer}.{which}.weight"), dims, dtype: t0.dtype }, TensorSource::Owned(data)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_interleaves_each_heads_halves() {
        // 2 heads of 4 rows, one byte per row: head rows [a0 a1 b0 b1] -> [a0 b0 a1 b1].
        let rows: Vec<u8> = (0..8).collect();
        assert_eq!(permute_rows(&rows, 8, 2).unwrap(), [0, 2, 1, 3, 4, 6, 5, 7]);
        assert!(permute_rows(&rows, 8, 3).is_none());
    }

    #[test]
    fn names_follow_the_converter() {
        let cases = [
            (Kind::Llama, "model.layers.1.self_attn.q_proj.weight", "blk.1.attn_q.weight"),
            (Kind::Llama, "model.layers.0.post_attention_layernorm.weight", "blk.0.ffn_norm.weight"),
            (Kind::Gemma2, "model.layers.0.post_attention_layernorm.weight", "blk.0.post_attention_norm.weight"),
            (Kind::Gemma3, "model.layers.0.pre_feedforward_layernorm.weight", "blk.0.ffn_norm.weight"),
            (Kind::Phi3, "model.layers.0.mlp.gate_up_proj.weight", "blk.0.ffn_up.weight"),
            (Kind::Qwen3Moe, "model.layers.0.mlp.gate.weight", "blk.0.ffn_gate_inp.weight"),
            (Kind::Qwen2, "model.layers.0.self_attn.k_proj.bias", "blk.0.attn_k.bias"),
            (Kind::Qwen2, "lm_head.weight", "output.weight"),
        ];
        for (kind, hf, want) in cases {
            match target(kind, hf, 2) {
                Ok(Target::Plain(got)) => assert_eq!(got, want),
                _ => panic!("{hf} should map to {want}"),
            }
        }
        assert!(matches!(target(Kind::Llama, "model.layers.0.block_sparse_moe.experts.3.w2.weight", 2), Ok(Target::Expert { layer: 0, part: ExpertPart::Down, idx: 3 })));
        for bad in ["model.layers.2.mlp.up_proj.weight", "model.vision_tower.weight", "model.layers.x.mlp.up_proj.weight", "weight"] {
            assert!(target(Kind::Llama, bad, 2).is_err(), "{bad}");
        }
    }
}
