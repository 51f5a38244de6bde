//! Synthetic models: a GGUF file of a real model's shape with random weights and a working
//! byte-level BPE tokenizer and chat template, so the whole engine (and `herd run`, `herd
//! bench`) can be exercised at any size without downloading anything: test fixtures, benchmarks
//! of shapes we do not have, machines that cannot reach the internet.

use std::path::Path;

use herd_gguf::{GgufWriter, Value};
use herd_kernels::quant::quantize_row;
use herd_kernels::DType;
use herd_tokenizer::byte_level_spelling;

use crate::error::{EngineError, Result};
use crate::sampler::Rng;

/// The architecture a shape is written as, with the metadata keys and tensor names llama.cpp's
/// converter writes for it, so that the files load there too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// Llama 2/3, SmolLM2; Mixtral when the shape has experts (llama.cpp writes Mixtral as
    /// `llama` with experts as wide as `feed_forward_length`).
    Llama,
    /// Qwen 3 MoE: per-head q/k RMSNorm, a head dimension of its own (`attention.key_length`),
    /// experts of their own width (`expert_feed_forward_length`).
    Qwen3Moe,
}

impl Arch {
    /// The GGUF `general.architecture`, and the prefix of the family's keys.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen3Moe => "qwen3moe",
        }
    }
}

/// A mixture-of-experts feed-forward in every layer, instead of the dense MLP.
#[derive(Clone, Copy, Debug)]
pub struct Experts {
    pub n_experts: usize,
    /// Experts each token is routed to.
    pub n_used: usize,
    /// Hidden width of one expert.
    pub d_ff: usize,
}

/// The dimensions of a model family member.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub name: &'static str,
    pub arch: Arch,
    pub n_layers: usize,
    pub d_model: usize,
    /// Hidden width of the dense MLP (for Qwen 3 MoE, the `feed_forward_length` the file states
    /// beside the experts' own width).
    pub d_ff: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    /// The head dimension, when not `d_model / n_heads` (written as `attention.key_length`).
    pub head_dim: Option<usize>,
    pub n_vocab: usize,
    pub n_ctx: usize,
    pub rope_base: f32,
    /// The output head is the token embedding.
    pub tied: bool,
    pub experts: Option<Experts>,
}

impl Shape {
    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.d_model / self.n_heads)
    }
}

const DENSE: Shape = Shape {
    name: "",
    arch: Arch::Llama,
    n_layers: 0,
    d_model: 0,
    d_ff: 0,
    n_heads: 0,
    n_kv_heads: 0,
    head_dim: None,
    n_vocab: 0,
    n_ctx: 0,
    rope_base: 10000.0,
    tied: false,
    experts: None,
};

pub const SHAPES: &[Shape] = &[
    Shape { name: "llama-3-8b", n_layers: 32, d_model: 4096, d_ff: 14336, n_heads: 32, n_kv_heads: 8, n_vocab: 128256, n_ctx: 8192, rope_base: 500000.0, tied: false, ..DENSE },
    Shape { name: "llama-3.2-1b", n_layers: 16, d_model: 2048, d_ff: 8192, n_heads: 32, n_kv_heads: 8, n_vocab: 128256, n_ctx: 131072, rope_base: 500000.0, tied: true, ..DENSE },
    Shape { name: "smollm2-135m", n_layers: 30, d_model: 576, d_ff: 1536, n_heads: 9, n_kv_heads: 3, n_vocab: 49152, n_ctx: 8192, rope_base: 100000.0, tied: true, ..DENSE },
    // Small enough for unit tests: every code path, a fraction of a second.
    Shape { name: "tiny", n_layers: 2, d_model: 64, d_ff: 128, n_heads: 4, n_kv_heads: 2, n_vocab: 512, n_ctx: 256, rope_base: 10000.0, tied: false, ..DENSE },
    // Mixtures of experts: the real shapes (file sizes, layouts), and scaled-down ones that a
    // small machine runs for benchmarks: the real expert widths, head layout and routing
    // sparsity, fewer layers and experts, a smaller vocabulary so that the experts dominate.
    Shape { name: "qwen3-30b-a3b", arch: Arch::Qwen3Moe, n_layers: 48, d_model: 2048, d_ff: 6144, n_heads: 32, n_kv_heads: 4, head_dim: Some(128), n_vocab: 151936, n_ctx: 40960, rope_base: 1000000.0, tied: false, experts: Some(Experts { n_experts: 128, n_used: 8, d_ff: 768 }) },
    Shape { name: "qwen3moe-small", arch: Arch::Qwen3Moe, n_layers: 8, d_model: 2048, d_ff: 6144, n_heads: 32, n_kv_heads: 4, head_dim: Some(128), n_vocab: 32768, n_ctx: 40960, rope_base: 1000000.0, tied: false, experts: Some(Experts { n_experts: 16, n_used: 4, d_ff: 768 }) },
    Shape { name: "mixtral-8x7b", n_layers: 32, d_model: 4096, d_ff: 14336, n_heads: 32, n_kv_heads: 8, n_vocab: 32000, n_ctx: 32768, rope_base: 1000000.0, experts: Some(Experts { n_experts: 8, n_used: 2, d_ff: 14336 }), ..DENSE },
    Shape { name: "mixtral-tiny", n_layers: 4, d_model: 1024, d_ff: 3584, n_heads: 8, n_kv_heads: 2, n_vocab: 32000, n_ctx: 32768, rope_base: 1000000.0, experts: Some(Experts { n_experts: 8, n_used: 2, d_ff: 3584 }), ..DENSE },
];

pub fn find_shape(name: &str) -> Option<Shape> {
    SHAPES.iter().copied().find(|s| s.name.eq_ignore_ascii_case(name))
}

/// ChatML, which the synthetic vocabulary's special tokens spell.
const TEMPLATE: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

const SPECIALS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

/// What to write.
#[derive(Clone, Debug)]
pub struct SynthOptions {
    pub shape: Shape,
    /// Type of the weight matrices (norms stay F32).
    pub dtype: DType,
    pub seed: u64,
    /// Include a chat template (tests of template-less files turn it off).
    pub chat_template: bool,
}

/// Builds the file in memory.
pub fn synth(opts: &SynthOptions) -> Result<GgufWriter> {
    let s = opts.shape;
    let head_dim = s.head_dim();
    let (d, q_dim, kv_dim) = (s.d_model, s.n_heads * head_dim, s.n_kv_heads * head_dim);
    let d_ff_exp = s.experts.map(|e| e.d_ff);
    let block_len = opts.dtype.block_len();
    if ![d, s.d_ff, q_dim].into_iter().chain(d_ff_exp).all(|n| n.is_multiple_of(block_len)) {
        return Err(EngineError::Invalid(format!("{} rows of {d}, {}, {q_dim} or {d_ff_exp:?} values are not whole {} blocks", s.name, s.d_ff, opts.dtype)));
    }
    if let Some(e) = s.experts {
        if e.n_used == 0 || e.n_used > e.n_experts {
            return Err(EngineError::Invalid(format!("{}: {} experts used of {}", s.name, e.n_used, e.n_experts)));
        }
        // llama.cpp reads a `llama` file's expert width from `feed_forward_length`.
        if s.arch == Arch::Llama && e.d_ff != s.d_ff {
            return Err(EngineError::Invalid(format!("{}: llama experts are d_ff ({}) wide, not {}", s.name, s.d_ff, e.d_ff)));
        }
    }
    let a = s.arch.name();
    let key = |k: &str| format!("{a}.{k}");
    let mut w = GgufWriter::new(3);
    w.add("general.architecture", a.into())
        .add("general.name", format!("synthetic {} {}", s.name, opts.dtype).as_str().into())
        .add(&key("block_count"), (s.n_layers as u32).into())
        .add(&key("context_length"), (s.n_ctx as u32).into())
        .add(&key("embedding_length"), (d as u32).into())
        .add(&key("feed_forward_length"), (s.d_ff as u32).into())
        .add(&key("attention.head_count"), (s.n_heads as u32).into())
        .add(&key("attention.head_count_kv"), (s.n_kv_heads as u32).into())
        .add(&key("attention.layer_norm_rms_epsilon"), 1e-5f32.into())
        .add(&key("rope.freq_base"), s.rope_base.into());
    match s.arch {
        Arch::Llama => w.add(&key("rope.dimension_count"), (head_dim as u32).into()),
        Arch::Qwen3Moe => w.add(&key("attention.key_length"), (head_dim as u32).into()).add(&key("attention.value_length"), (head_dim as u32).into()),
    };
    if let Some(e) = s.experts {
        w.add(&key("expert_count"), (e.n_experts as u32).into()).add(&key("expert_used_count"), (e.n_used as u32).into());
        if s.arch == Arch::Qwen3Moe {
            w.add(&key("expert_feed_forward_length"), (e.d_ff as u32).into());
        }
    }
    add_vocabulary(&mut w, s.n_vocab);
    if opts.chat_template {
        w.add("tokenizer.chat_template", TEMPLATE.into());
    }

    let mut rng = Rng::new(opts.seed);
    // `n` stacked (rows, cols) matrices: GGUF dims [cols, rows] for one, [cols, rows, n] for
    // experts (the expert outermost, each expert's rows contiguous).
    let matrices = |w: &mut GgufWriter, rng: &mut Rng, name: &str, n: usize, rows: usize, cols: usize, dtype: DType| -> Result<()> {
        let data = random_matrix(rng, n * rows, cols, dtype, DISTINCT_ROWS)?;
        let dims = if n == 1 { vec![cols as u64, rows as u64] } else { vec![cols as u64, rows as u64, n as u64] };
        w.add_tensor(name, &dims, dtype, data);
        Ok(())
    };
    // The embedding is read row by row; Q8_0 as llama.cpp's converters often store it, unless
    // the weights are float, when it matches them.
    let embd_type = if matches!(opts.dtype, DType::F32 | DType::F16 | DType::BF16) { opts.dtype } else { DType::Q8_0 };
    matrices(&mut w, &mut rng, "token_embd.weight", 1, s.n_vocab, d, embd_type)?;
    for l in 0..s.n_layers {
        let name = |t: &str| format!("blk.{l}.{t}.weight");
        w.add_tensor(&name("attn_norm"), &[d as u64], DType::F32, ones(d));
        matrices(&mut w, &mut rng, &name("attn_q"), 1, q_dim, d, opts.dtype)?;
        matrices(&mut w, &mut rng, &name("attn_k"), 1, kv_dim, d, opts.dtype)?;
        matrices(&mut w, &mut rng, &name("attn_v"), 1, kv_dim, d, opts.dtype)?;
        matrices(&mut w, &mut rng, &name("attn_output"), 1, d, q_dim, opts.dtype)?;
        if s.arch == Arch::Qwen3Moe {
            w.add_tensor(&name("attn_q_norm"), &[head_dim as u64], DType::F32, ones(head_dim));
            w.add_tensor(&name("attn_k_norm"), &[head_dim as u64], DType::F32, ones(head_dim));
        }
        w.add_tensor(&name("ffn_norm"), &[d as u64], DType::F32, ones(d));
        match s.experts {
            None => {
                matrices(&mut w, &mut rng, &name("ffn_gate"), 1, s.d_ff, d, opts.dtype)?;
                matrices(&mut w, &mut rng, &name("ffn_up"), 1, s.d_ff, d, opts.dtype)?;
                matrices(&mut w, &mut rng, &name("ffn_down"), 1, d, s.d_ff, opts.dtype)?;
            }
            Some(e) => {
                // The router stays F32, as llama.cpp's converter writes it and its quantizer
                // keeps it; every expert gets a router row of its own so that routing spreads.
                let router = random_matrix(&mut rng, e.n_experts, d, DType::F32, e.n_experts)?;
                w.add_tensor(&name("ffn_gate_inp"), &[d as u64, e.n_experts as u64], DType::F32, router);
                matrices(&mut w, &mut rng, &name("ffn_gate_exps"), e.n_experts, e.d_ff, d, opts.dtype)?;
                matrices(&mut w, &mut rng, &name("ffn_up_exps"), e.n_experts, e.d_ff, d, opts.dtype)?;
                matrices(&mut w, &mut rng, &name("ffn_down_exps"), e.n_experts, d, e.d_ff, opts.dtype)?;
            }
        }
    }
    w.add_tensor("output_norm.weight", &[d as u64], DType::F32, ones(d));
    if !s.tied {
        matrices(&mut w, &mut rng, "output.weight", 1, s.n_vocab, d, opts.dtype)?;
    }
    Ok(w)
}

/// Builds the file and writes it to `path` (atomically).
pub fn write(opts: &SynthOptions, path: &Path) -> Result<()> {
    synth(opts)?.write(path).map_err(|e| EngineError::Store(format!("{}: {e}", path.display())))
}

fn ones(n: usize) -> Vec<u8> {
    (0..n).flat_map(|_| 1.0f32.to_le_bytes()).collect()
}

/// Distinct random rows, at most this many per matrix: quantizing every row of an 8B model
/// would take minutes, and repeating rows changes neither speed nor the code paths exercised.
const DISTINCT_ROWS: usize = 64;

/// A (rows, cols) matrix of values of about the size trained weights have, in `dtype`, of at
/// most `max_distinct` distinct rows.
fn random_matrix(rng: &mut Rng, rows: usize, cols: usize, dtype: DType, max_distinct: usize) -> Result<Vec<u8>> {
    let row_bytes = dtype.bytes_for(cols as u64).ok_or_else(|| EngineError::Invalid(format!("{cols} values are not whole {dtype} blocks")))? as usize;
    let scale = 1.0 / (cols as f32).sqrt();
    let n_distinct = rows.min(max_distinct);
    let mut distinct = vec![0u8; n_distinct * row_bytes];
    let mut values = vec![0.0f32; cols];
    for row in distinct.chunks_exact_mut(row_bytes) {
        for v in values.iter_mut() {
            *v = (rng.next_f64() as f32 * 2.0 - 1.0) * scale * 1.7;
        }
        quantize_row(dtype, &values, row).map_err(|e| EngineError::Invalid(e.to_string()))?;
    }
    let mut data = Vec::with_capacity(rows * row_bytes);
    for r in 0..rows {
        let k = (r * 7919 + rows) % n_distinct;
        data.extend_from_slice(&distinct[k * row_bytes..(k + 1) * row_bytes]);
    }
    Ok(data)
}

/// A byte-level BPE vocabulary of exactly `n_vocab` tokens: the 256 byte tokens, three ChatML
/// special tokens, then two- and three-byte tokens with the merges that build them.
fn add_vocabulary(w: &mut GgufWriter, n_vocab: usize) {
    let mut tokens: Vec<String> = (0..=255u8).map(|b| byte_level_spelling(&[b])).collect();
    let mut types = vec![1i32; 256]; // byte-level BPE spells bytes as normal tokens
    for s in SPECIALS {
        tokens.push(s.to_string());
        types.push(3); // control
    }
    let mut merges = Vec::new();
    // Frequent English letters first, so ordinary text merges into the new tokens even in a
    // small vocabulary; then every other byte.
    let frequent = b"etaoinshrdlcumwfgypbvkjxqz ETAOINSHRDLCUMWFGYPBVKJXQZ0123456789";
    let alphabet: Vec<u8> = frequent.iter().copied().chain((0u8..=255).filter(|b| !frequent.contains(b))).collect();
    let pairs = alphabet.iter().flat_map(|&a| alphabet.iter().map(move |&b| (a, b)));
    for (a, b) in pairs.clone() {
        merges.push(format!("{} {}", byte_level_spelling(&[a]), byte_level_spelling(&[b])));
        tokens.push(byte_level_spelling(&[a, b]));
    }
    'triples: for (a, b) in pairs {
        for &c in &alphabet {
            if tokens.len() >= n_vocab {
                break 'triples;
            }
            merges.push(format!("{} {}", byte_level_spelling(&[a, b]), byte_level_spelling(&[c])));
            tokens.push(byte_level_spelling(&[a, b, c]));
        }
    }
    merges.truncate(n_vocab.saturating_sub(256 + SPECIALS.len()));
    tokens.truncate(n_vocab);
    types.resize(tokens.len(), 1);
    let id = |s: &str| tokens.iter().position(|t| t == s).map_or(0, |i| i as u32);
    let (bos, eos) = (id("<|im_start|>"), id("<|im_end|>"));
    w.add("tokenizer.ggml.model", "gpt2".into())
        .add("tokenizer.ggml.pre", "default".into())
        .add("tokenizer.ggml.bos_token_id", bos.into())
        .add("tokenizer.ggml.eos_token_id", eos.into())
        .add("tokenizer.ggml.add_bos_token", false.into())
        .add("tokenizer.ggml.merges", Value::string_array(merges))
        .add("tokenizer.ggml.token_type", Value::i32_array(types))
        .add("tokenizer.ggml.tokens", Value::string_array(tokens));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::blocks::ffn::FeedForward;
    use crate::model::{Logits, Model};
    use crate::session::Session;

    #[test]
    fn tiny_model_loads_tokenizes_and_chats() {
        let dir = std::env::temp_dir().join(format!("herd-synth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tiny.gguf");
        for dtype in [DType::Q4_1, DType::Q8_0, DType::Q4_K, DType::F16] {
            let shape = Shape { d_model: 256, d_ff: 512, ..find_shape("tiny").unwrap() };
            write(&SynthOptions { shape, dtype, seed: 1, chat_template: true }, &path).unwrap();
            let model = Model::load(&path).unwrap();
            assert_eq!(model.cfg().n_vocab, 512);
            let ids = model.tokenizer.encode("<|im_start|>user\nhello<|im_end|>", true, false);
            assert_eq!(ids[0], model.tokenizer.bos_id().unwrap());
            assert!(ids.len() < 12, "some of the 10 bytes of text merge: {ids:?}");
            assert_eq!(model.tokenizer.decode(&ids[1..]), "user\nhello");
            assert!(model.tokenizer.is_eog(model.tokenizer.eos_id().unwrap()));
            model.chat_prompt(&[herd_tokenizer::template::ChatMessage::new("user", "hi")]).unwrap();
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// `shape` at unit-test size: its architecture, expert count and routing kept, every
    /// width cut (a head dimension of its own stays one: 4 heads of 128 over a width of 256).
    fn shrunk(shape: Shape) -> Shape {
        let experts = shape.experts.map(|e| Experts { d_ff: 256, ..e });
        Shape { n_layers: 2, d_model: 256, d_ff: 256, n_heads: 4, n_kv_heads: 2, head_dim: shape.head_dim.map(|_| 128), n_vocab: 512, n_ctx: 256, experts, ..shape }
    }

    #[test]
    fn moe_shapes_load_and_generate() {
        let dir = std::env::temp_dir().join(format!("herd-synth-moe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("moe.gguf");
        let pool = herd_kernels::ThreadPool::new(2);
        let moe_shapes: Vec<Shape> = SHAPES.iter().copied().filter(|s| s.experts.is_some()).collect();
        let names: Vec<&str> = moe_shapes.iter().map(|s| s.name).collect();
        assert_eq!(names, ["qwen3-30b-a3b", "qwen3moe-small", "mixtral-8x7b", "mixtral-tiny"]);
        for shape in moe_shapes.into_iter().map(shrunk) {
            for dtype in [DType::Q4_K, DType::Q8_0] {
                let what = format!("{} {dtype}", shape.name);
                let e = shape.experts.unwrap();
                write(&SynthOptions { shape, dtype, seed: 3, chat_template: true }, &path).unwrap();
                let model = Model::load(&path).unwrap();
                assert_eq!(model.cfg().arch, shape.arch.name(), "{what}");
                assert_eq!(model.cfg().head_dim, shape.head_dim(), "{what}");
                let down = model.file.tensor("blk.1.ffn_down_exps.weight").unwrap();
                assert_eq!(down.dims, [e.d_ff as u64, 256, e.n_experts as u64], "{what}: the expert is the outermost dim");
                assert_eq!(down.dtype, dtype, "{what}");
                for block in &model.net.blocks {
                    match &block.ffn {
                        FeedForward::Moe(moe) => assert_eq!((moe.experts.len(), moe.n_used), (e.n_experts, e.n_used), "{what}"),
                        FeedForward::Dense(_) => panic!("{what}: a dense layer"),
                    }
                }
                let mut session = Session::new(&model, &pool, Some(64)).unwrap();
                let prompt = model.chat_prompt(&[herd_tokenizer::template::ChatMessage::new("user", "hello there")]).unwrap();
                let mut logits = session.eval(&prompt, Logits::Last).unwrap().to_vec();
                for _ in 0..6 {
                    assert!(logits.len() == 512 && logits.iter().all(|v| v.is_finite()), "{what}");
                    let next = (0..logits.len()).max_by(|&a, &b| logits[a].total_cmp(&logits[b])).unwrap() as u32;
                    logits = session.step(next).unwrap().to_vec();
                }
                assert_eq!(session.tokens().len(), prompt.len() + 6, "{what}");
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn inconsistent_moe_shapes_are_refused() {
        let mixtral = shrunk(find_shape("mixtral-tiny").unwrap());
        let too_many_used = Shape { experts: Some(Experts { n_experts: 4, n_used: 5, d_ff: 256 }), ..mixtral };
        let llama_width_differs = Shape { experts: Some(Experts { n_experts: 4, n_used: 2, d_ff: 512 }), ..mixtral };
        let odd_expert_width = shrunk(find_shape("qwen3moe-small").unwrap());
        let odd_expert_width = Shape { experts: Some(Experts { n_experts: 4, n_used: 2, d_ff: 200 }), ..odd_expert_width };
        for shape in [too_many_used, llama_width_differs, odd_expert_width] {
            assert!(matches!(synth(&SynthOptions { shape, dtype: DType::Q4_K, seed: 1, chat_template: false }), Err(EngineError::Invalid(_))), "{shape:?}");
        }
    }

    #[test]
    fn vocabulary_has_exactly_the_size_asked() {
        for n in [300, 512, 49152] {
            let mut w = GgufWriter::new(3);
            add_vocabulary(&mut w, n);
            let g = herd_gguf::Gguf::from_bytes("v", w.to_bytes()).unwrap();
            assert_eq!(g.get_str_array("tokenizer.ggml.tokens").unwrap().unwrap().len(), n);
            herd_tokenizer::Tokenizer::from_gguf(&g, &Default::default()).unwrap();
        }
    }
}
