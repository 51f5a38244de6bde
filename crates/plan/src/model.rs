//! What `herd plan` knows of a model: its architecture (layers, widths, heads, experts) from the
//! catalogue of published shapes or from a GGUF file, parameter counts derived from it, and
//! the bytes its weights take in a format. It knows nothing of hardware or timings.

use std::path::Path;

use herd_gguf::Gguf;
use herd_kernels::DType;

use crate::PlanError;

/// A mixture of experts: `n_used` of `n_experts` gated MLPs of width `d_ff` run per token.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Experts {
    pub n_experts: usize,
    pub n_used: usize,
    pub d_ff: usize,
}

/// A decoder-only transformer's shape. Counts follow the published configs (Hugging Face
/// `config.json`): attention projections q (d × n_heads·head_dim), k and v (d × n_kv_heads·head_dim),
/// o; a gated MLP (three d × d_ff matrices) or `experts` instead of it; an embedding table and an
/// output head (the same matrix when `tied`).
#[derive(Clone, Debug, PartialEq)]
pub struct Shape {
    pub name: &'static str,
    pub n_layers: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    /// Width of the dense MLP (0 when every layer is a mixture of experts).
    pub d_ff: usize,
    pub n_vocab: usize,
    pub tied: bool,
    pub experts: Option<Experts>,
    /// The context length the model was trained for (Hugging Face `max_position_embeddings`).
    pub n_ctx_train: usize,
}

const DENSE: Shape = Shape { name: "", n_layers: 0, d_model: 0, n_heads: 0, n_kv_heads: 0, head_dim: 0, d_ff: 0, n_vocab: 0, tied: false, experts: None, n_ctx_train: 0 };

/// The published architectures `--model NAME` accepts (from each model's `config.json`).
#[rustfmt::skip]
pub const SHAPES: &[Shape] = &[
    Shape { name: "llama-3.1-8b", n_layers: 32, d_model: 4096, n_heads: 32, n_kv_heads: 8, head_dim: 128, d_ff: 14336, n_vocab: 128256, n_ctx_train: 131072, ..DENSE },
    Shape { name: "llama-3.1-70b", n_layers: 80, d_model: 8192, n_heads: 64, n_kv_heads: 8, head_dim: 128, d_ff: 28672, n_vocab: 128256, n_ctx_train: 131072, ..DENSE },
    Shape { name: "llama-3.1-405b", n_layers: 126, d_model: 16384, n_heads: 128, n_kv_heads: 8, head_dim: 128, d_ff: 53248, n_vocab: 128256, n_ctx_train: 131072, ..DENSE },
    Shape { name: "llama-3.2-1b", n_layers: 16, d_model: 2048, n_heads: 32, n_kv_heads: 8, head_dim: 64, d_ff: 8192, n_vocab: 128256, tied: true, n_ctx_train: 131072, ..DENSE },
    Shape { name: "llama-3.2-3b", n_layers: 28, d_model: 3072, n_heads: 24, n_kv_heads: 8, head_dim: 128, d_ff: 8192, n_vocab: 128256, tied: true, n_ctx_train: 131072, ..DENSE },
    Shape { name: "qwen3-8b", n_layers: 36, d_model: 4096, n_heads: 32, n_kv_heads: 8, head_dim: 128, d_ff: 12288, n_vocab: 151936, n_ctx_train: 40960, ..DENSE },
    Shape { name: "qwen3-32b", n_layers: 64, d_model: 5120, n_heads: 64, n_kv_heads: 8, head_dim: 128, d_ff: 25600, n_vocab: 151936, n_ctx_train: 40960, ..DENSE },
    Shape { name: "qwen3-30b-a3b", n_layers: 48, d_model: 2048, n_heads: 32, n_kv_heads: 4, head_dim: 128, n_vocab: 151936, n_ctx_train: 40960,
            experts: Some(Experts { n_experts: 128, n_used: 8, d_ff: 768 }), ..DENSE },
    // Gemma 3's vision tower (0.4B) is not counted: herd runs the text model.
    Shape { name: "gemma3-27b", n_layers: 62, d_model: 5376, n_heads: 32, n_kv_heads: 16, head_dim: 128, d_ff: 21504, n_vocab: 262208, tied: true, n_ctx_train: 131072, ..DENSE },
    Shape { name: "mixtral-8x7b", n_layers: 32, d_model: 4096, n_heads: 32, n_kv_heads: 8, head_dim: 128, n_vocab: 32000, n_ctx_train: 32768,
            experts: Some(Experts { n_experts: 8, n_used: 2, d_ff: 14336 }), ..DENSE },
    Shape { name: "smollm2-135m", n_layers: 30, d_model: 576, n_heads: 9, n_kv_heads: 3, head_dim: 64, d_ff: 1536, n_vocab: 49152, tied: true, n_ctx_train: 8192, ..DENSE },
];

pub fn find_shape(name: &str) -> Option<&'static Shape> {
    SHAPES.iter().find(|s| s.name.eq_ignore_ascii_case(name))
}

pub fn shape_names() -> String {
    SHAPES.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
}

impl Shape {
    /// Parameters of one layer's attention projections.
    pub fn attn_params(&self) -> u64 {
        let (d, q, kv) = (self.d_model as u64, (self.n_heads * self.head_dim) as u64, (self.n_kv_heads * self.head_dim) as u64);
        2 * d * q + 2 * d * kv
    }

    /// Parameters of one layer's feed-forward block that every token uses (the dense MLP, or
    /// the router of a mixture).
    pub fn ffn_shared_params(&self) -> u64 {
        let d = self.d_model as u64;
        3 * d * self.d_ff as u64 + self.experts.map_or(0, |e| d * e.n_experts as u64)
    }

    /// Parameters of one expert.
    pub fn expert_params(&self) -> u64 {
        self.experts.map_or(0, |e| 3 * self.d_model as u64 * e.d_ff as u64)
    }

    pub fn embedding_params(&self) -> u64 {
        self.n_vocab as u64 * self.d_model as u64
    }

    /// Norm gains: two per layer and the final one (f32 vectors, a rounding error in the sum).
    fn norm_params(&self) -> u64 {
        (2 * self.n_layers as u64 + 1) * self.d_model as u64
    }

    /// Every parameter stored, all experts included.
    pub fn params_total(&self) -> u64 {
        let n_experts = self.experts.map_or(0, |e| e.n_experts as u64);
        let per_layer = self.attn_params() + self.ffn_shared_params() + n_experts * self.expert_params();
        self.n_layers as u64 * per_layer + self.embedding_params() * if self.tied { 1 } else { 2 } + self.norm_params()
    }

    /// The parameters one token uses: only `n_used` experts per layer (the N of 6ND for a
    /// mixture of experts).
    pub fn params_active(&self) -> u64 {
        let n_used = self.experts.map_or(0, |e| e.n_used as u64);
        let per_layer = self.attn_params() + self.ffn_shared_params() + n_used * self.expert_params();
        self.n_layers as u64 * per_layer + self.embedding_params() * if self.tied { 1 } else { 2 } + self.norm_params()
    }

    /// Weights one token multiplies by (2 FLOPs each): every layer's active matrices and, when
    /// `head`, the output head. The embedding is a lookup, not a product.
    pub fn matmul_params(&self, head: bool) -> u64 {
        let n_used = self.experts.map_or(0, |e| e.n_used as u64);
        let per_layer = self.attn_params() + self.ffn_shared_params() + n_used * self.expert_params();
        self.n_layers as u64 * per_layer + if head { self.embedding_params() } else { 0 }
    }

    /// Attention FLOPs of one query at a position with `n_past` earlier positions: scores and
    /// the weighted sum of values, 2 FLOPs per multiply-add each, every head of every layer.
    pub fn attn_flops(&self, n_past: f64) -> f64 {
        4.0 * (self.n_layers * self.n_heads * self.head_dim) as f64 * n_past
    }
}

/// A weight format: a GGML block type from `herd_kernels::DType`, or FP8 (E4M3, one byte a
/// weight, which GGUF has no type for).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Format {
    Ggml(DType),
    Fp8,
}

impl Format {
    pub const NAMES: &str = "bf16, fp16, f32, fp8, q8_0, q6_k, q5_k, q5_0, q5_1, q4_k, q4_0, q4_1, q3_k, q2_k";

    pub fn parse(name: &str) -> Result<Format, PlanError> {
        let lower = name.to_ascii_lowercase();
        let dtype = match lower.as_str() {
            "fp8" | "f8" | "fp8_e4m3" => return Ok(Format::Fp8),
            "fp16" => Some(DType::F16),
            "fp32" => Some(DType::F32),
            "q8_1" | "q8_k" => None,
            other => DType::from_name(other),
        };
        dtype.map(Format::Ggml).ok_or_else(|| PlanError::Input(format!("unknown format '{name}' (known: {})", Format::NAMES)))
    }

    /// Bytes per weight: a block's bytes over its length (Q4_K: 144 / 256 = 0.5625).
    pub fn bytes_per_weight(self) -> f64 {
        match self {
            Format::Ggml(t) => t.block_bytes() as f64 / t.block_len() as f64,
            Format::Fp8 => 1.0,
        }
    }

    /// Whether a GPU multiplies in FP8 (where it can) rather than in BF16: FP8 weights only;
    /// block-quantized weights are dequantized into BF16 products.
    pub fn fp8_compute(self) -> bool {
        self == Format::Fp8
    }

    /// The GGML type a CPU runs this format as (FP8 has none: Q8_0 weighs about the same).
    pub fn cpu_dtype(self) -> DType {
        match self {
            Format::Ggml(t) => t,
            Format::Fp8 => DType::Q8_0,
        }
    }

    pub fn name(self) -> String {
        match self {
            Format::Ggml(t) => t.name().to_ascii_lowercase(),
            Format::Fp8 => "fp8".into(),
        }
    }
}

/// The KV cache format: f16 (herd's default), bf16, fp8, q8_0 or f32.
pub fn kv_bytes_per_value(name: &str) -> Result<f64, PlanError> {
    match name.to_ascii_lowercase().as_str() {
        "f16" | "fp16" | "bf16" => Ok(2.0),
        "fp8" | "f8" => Ok(1.0),
        "q8_0" => Ok(DType::Q8_0.block_bytes() as f64 / DType::Q8_0.block_len() as f64),
        "f32" => Ok(4.0),
        _ => Err(PlanError::Input(format!("unknown KV cache format '{name}' (known: f16, bf16, fp8, q8_0, f32)"))),
    }
}

/// Weight bytes of a model, split the way decoding reads them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sizes {
    /// Every weight byte.
    pub total: f64,
    /// The token embedding table (decoding reads one row of it per token).
    pub embedding: f64,
    /// All experts of all layers (decoding reads those the batch routes to).
    pub experts: f64,
}

impl Sizes {
    /// Bytes one decoding step reads for weights when `frac_experts` of the experts are
    /// touched: everything but the embedding table, which is read again as the head when tied.
    pub fn read_per_step(&self, tied: bool, frac_experts: f64) -> f64 {
        let head_again = if tied { self.embedding } else { 0.0 };
        self.total - self.embedding - self.experts + head_again + self.experts * frac_experts
    }
}

/// A model to plan for: a shape, where its weights come from and what they weigh.
#[derive(Clone, Debug)]
pub struct Model {
    pub shape: Shape,
    /// `None` for a named shape; the file for a GGUF model.
    pub file: Option<String>,
    /// The format the weights are in (a file: the type most of its bytes are in).
    pub format: Format,
    pub sizes: Sizes,
}

impl Model {
    /// A named shape in `format`: every parameter in that format.
    pub fn named(shape: &Shape, format: Format) -> Model {
        let bpw = format.bytes_per_weight();
        let n_experts = shape.experts.map_or(0, |e| e.n_experts as u64);
        let sizes = Sizes {
            total: shape.params_total() as f64 * bpw,
            embedding: shape.embedding_params() as f64 * bpw,
            experts: (shape.n_layers as u64 * n_experts * shape.expert_params()) as f64 * bpw,
        };
        Model { shape: shape.clone(), file: None, format, sizes }
    }

    /// A GGUF file, or a Hugging Face folder read as herd reads one (`herd_hf::open`): its
    /// hyperparameters as herd's loader reads them (`family_config`), its sizes from the
    /// tensors it holds.
    pub fn from_gguf(path: &Path) -> Result<Model, PlanError> {
        let file = if herd_hf::is_model_folder(path) {
            herd_hf::open(path).map_err(|e| PlanError::Model(e.to_string()))?
        } else {
            Gguf::open(path).map_err(|e| PlanError::Model(e.to_string()))?
        };
        let (family, cfg) = herd_engine::model::family_config(&file).map_err(|e| PlanError::Model(e.to_string()))?;
        let key = |k: &str| file.get_u64(&format!("{}.{k}", family.arch)).ok().flatten().map(|v| v as usize);
        let experts = match (key("expert_count"), key("expert_used_count")) {
            (Some(n_experts), Some(n_used)) if n_experts > 0 => {
                let d_ff = key("expert_feed_forward_length").unwrap_or(cfg.d_ff);
                Some(Experts { n_experts, n_used, d_ff })
            }
            _ => None,
        };
        let tensors = file.tensors();
        let has = |suffix: &str| tensors.iter().any(|t| t.name.ends_with(suffix));
        // A mixture of experts has no dense MLP (Qwen 3 MoE files state a feed_forward_length
        // beside the experts' width all the same).
        let d_ff = if experts.is_some() && !has("ffn_up.weight") && !has("ffn_gate_up.weight") { 0 } else { cfg.d_ff };
        let tied = file.tensor("output.weight").is_none();
        let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
        let shape = Shape {
            name: "file",
            n_layers: cfg.n_layers,
            d_model: cfg.d_model,
            n_heads: cfg.n_heads,
            n_kv_heads: cfg.n_kv_heads,
            head_dim: cfg.head_dim,
            d_ff,
            n_vocab: cfg.n_vocab,
            tied,
            experts,
            n_ctx_train: cfg.n_ctx_train,
        };
        let bytes = |pred: &dyn Fn(&str) -> bool| tensors.iter().filter(|t| pred(&t.name)).map(|t| t.n_bytes as f64).sum::<f64>();
        let sizes = Sizes { total: bytes(&|_| true), embedding: bytes(&|n| n == "token_embd.weight"), experts: bytes(&|n| n.contains("_exps.")) };
        let mut by_type: Vec<(DType, u64)> = Vec::new();
        for t in tensors {
            match by_type.iter_mut().find(|(d, _)| *d == t.dtype) {
                Some((_, n)) => *n += t.n_bytes,
                None => by_type.push((t.dtype, t.n_bytes)),
            }
        }
        let main = by_type.iter().max_by_key(|&&(_, n)| n).map_or(DType::F32, |&(d, _)| d);
        Ok(Model { shape, file: Some(name), format: Format::Ggml(main), sizes })
    }

    /// What the `cpu` probes should imitate for this model (one token's weight reads, the
    /// widest feed-forward matrix).
    pub fn probe_shape(&self) -> crate::ProbeShape {
        let s = &self.shape;
        let frac = s.experts.map_or(1.0, |e| e.n_used as f64 / e.n_experts as f64);
        let d_ff = if s.d_ff > 0 { s.d_ff } else { s.experts.map_or(s.d_model, |e| e.d_ff) };
        let n_ffn = if s.d_ff > 0 { 1 } else { s.experts.map_or(1, |e| e.n_used) };
        crate::ProbeShape {
            dtype: self.format.cpu_dtype(),
            bytes_per_step: self.sizes.read_per_step(s.tied, frac),
            d_model: s.d_model,
            d_ff,
            n_ffn,
            q_dim: s.n_heads * s.head_dim,
            kv_dim: s.n_kv_heads * s.head_dim,
        }
    }

    /// The same model in another format (a file's sizes scaled by the ratio of bytes per weight).
    pub fn in_format(&self, format: Format) -> Model {
        if self.file.is_none() {
            return Model::named(&self.shape, format);
        }
        let k = format.bytes_per_weight() / self.format.bytes_per_weight();
        let sizes = Sizes { total: self.sizes.total * k, embedding: self.sizes.embedding * k, experts: self.sizes.experts * k };
        Model { format, sizes, ..self.clone() }
    }

    pub fn label(&self) -> String {
        match &self.file {
            Some(f) => f.clone(),
            None => self.shape.name.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parameter counts against the published ones (billions; model cards round them).
    #[test]
    fn parameter_counts_match_the_published_ones() {
        let check = |name: &str, total: f64, active: f64| {
            let s = find_shape(name).unwrap();
            let (t, a) = (s.params_total() as f64 / 1e9, s.params_active() as f64 / 1e9);
            assert!((t / total - 1.0).abs() < 0.02, "{name}: total {t:.3}B vs {total}B");
            assert!((a / active - 1.0).abs() < 0.02, "{name}: active {a:.3}B vs {active}B");
        };
        check("llama-3.1-8b", 8.03, 8.03);
        check("llama-3.1-70b", 70.6, 70.6);
        check("llama-3.1-405b", 405.8, 405.8);
        check("llama-3.2-1b", 1.24, 1.24);
        check("llama-3.2-3b", 3.21, 3.21);
        check("qwen3-8b", 8.19, 8.19);
        check("qwen3-32b", 32.8, 32.8);
        check("qwen3-30b-a3b", 30.5, 3.3);
        check("gemma3-27b", 27.0, 27.0);
        check("mixtral-8x7b", 46.7, 12.9);
        check("smollm2-135m", 0.1348, 0.1348);
    }

    #[test]
    fn formats_weigh_what_their_blocks_do() {
        let check = |name: &str, bpw: f64| assert_eq!(Format::parse(name).unwrap().bytes_per_weight(), bpw, "{name}");
        check("bf16", 2.0);
        check("FP16", 2.0);
        check("fp8", 1.0);
        check("q8_0", 34.0 / 32.0);
        check("q6_k", 210.0 / 256.0);
        check("q4_k", 144.0 / 256.0);
        check("q4_0", 18.0 / 32.0);
        assert!(Format::parse("q8_k").is_err() && Format::parse("int3").unwrap_err().to_string().contains("q4_k"));
        assert_eq!(kv_bytes_per_value("q8_0").unwrap(), 34.0 / 32.0);
        assert!(kv_bytes_per_value("q4_k").is_err());
    }

    #[test]
    fn a_tied_head_is_read_again_and_experts_only_where_routed() {
        let m = Model::named(find_shape("llama-3.2-1b").unwrap(), Format::Ggml(DType::BF16));
        assert_eq!(m.sizes.read_per_step(true, 1.0), m.sizes.total);
        let m = Model::named(find_shape("mixtral-8x7b").unwrap(), Format::Ggml(DType::BF16));
        let one_token = m.sizes.read_per_step(false, 2.0 / 8.0);
        let active = (m.shape.params_active() - m.shape.embedding_params()) as f64 * 2.0;
        assert!((one_token / active - 1.0).abs() < 1e-9, "{one_token} vs {active}");
    }
}
