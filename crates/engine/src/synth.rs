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

/// The dimensions of a model family member.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub name: &'static str,
    pub n_layers: usize,
    pub d_model: usize,
    pub d_ff: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub n_vocab: usize,
    pub n_ctx: usize,
    pub rope_base: f32,
    /// The output head is the token embedding.
    pub tied: bool,
}

pub const SHAPES: &[Shape] = &[
    Shape { name: "llama-3-8b", n_layers: 32, d_model: 4096, d_ff: 14336, n_heads: 32, n_kv_heads: 8, n_vocab: 128256, n_ctx: 8192, rope_base: 500000.0, tied: false },
    Shape { name: "llama-3.2-1b", n_layers: 16, d_model: 2048, d_ff: 8192, n_heads: 32, n_kv_heads: 8, n_vocab: 128256, n_ctx: 131072, rope_base: 500000.0, tied: true },
    Shape { name: "smollm2-135m", n_layers: 30, d_model: 576, d_ff: 1536, n_heads: 9, n_kv_heads: 3, n_vocab: 49152, n_ctx: 8192, rope_base: 100000.0, tied: true },
    // Small enough for unit tests: every code path, a fraction of a second.
    Shape { name: "tiny", n_layers: 2, d_model: 64, d_ff: 128, n_heads: 4, n_kv_heads: 2, n_vocab: 512, n_ctx: 256, rope_base: 10000.0, tied: false },
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
    if !s.d_model.is_multiple_of(opts.dtype.block_len()) || !s.d_ff.is_multiple_of(opts.dtype.block_len()) {
        return Err(EngineError::Invalid(format!("{} rows of {} and {} values are not whole {} blocks", s.name, s.d_model, s.d_ff, opts.dtype)));
    }
    let head_dim = s.d_model / s.n_heads;
    let mut w = GgufWriter::new(3);
    w.add("general.architecture", "llama".into())
        .add("general.name", format!("synthetic {} {}", s.name, opts.dtype).as_str().into())
        .add("llama.block_count", (s.n_layers as u32).into())
        .add("llama.context_length", (s.n_ctx as u32).into())
        .add("llama.embedding_length", (s.d_model as u32).into())
        .add("llama.feed_forward_length", (s.d_ff as u32).into())
        .add("llama.attention.head_count", (s.n_heads as u32).into())
        .add("llama.attention.head_count_kv", (s.n_kv_heads as u32).into())
        .add("llama.attention.layer_norm_rms_epsilon", 1e-5f32.into())
        .add("llama.rope.freq_base", s.rope_base.into())
        .add("llama.rope.dimension_count", (head_dim as u32).into());
    add_vocabulary(&mut w, s.n_vocab);
    if opts.chat_template {
        w.add("tokenizer.chat_template", TEMPLATE.into());
    }

    let mut rng = Rng::new(opts.seed);
    let (d, q_dim, kv_dim) = (s.d_model, s.d_model, s.n_kv_heads * head_dim);
    let mut matrix = |w: &mut GgufWriter, name: &str, rows: usize, cols: usize, dtype: DType| -> Result<()> {
        let data = random_matrix(&mut rng, rows, cols, dtype)?;
        w.add_tensor(name, &[cols as u64, rows as u64], dtype, data);
        Ok(())
    };
    // The embedding is read row by row; Q8_0 as llama.cpp's converters often store it, unless
    // the weights are float, when it matches them.
    let embd_type = if matches!(opts.dtype, DType::F32 | DType::F16 | DType::BF16) { opts.dtype } else { DType::Q8_0 };
    matrix(&mut w, "token_embd.weight", s.n_vocab, d, embd_type)?;
    for l in 0..s.n_layers {
        let name = |t: &str| format!("blk.{l}.{t}.weight");
        w.add_tensor(&name("attn_norm"), &[d as u64], DType::F32, ones(d));
        matrix(&mut w, &name("attn_q"), q_dim, d, opts.dtype)?;
        matrix(&mut w, &name("attn_k"), kv_dim, d, opts.dtype)?;
        matrix(&mut w, &name("attn_v"), kv_dim, d, opts.dtype)?;
        matrix(&mut w, &name("attn_output"), d, q_dim, opts.dtype)?;
        w.add_tensor(&name("ffn_norm"), &[d as u64], DType::F32, ones(d));
        matrix(&mut w, &name("ffn_gate"), s.d_ff, d, opts.dtype)?;
        matrix(&mut w, &name("ffn_up"), s.d_ff, d, opts.dtype)?;
        matrix(&mut w, &name("ffn_down"), d, s.d_ff, opts.dtype)?;
    }
    w.add_tensor("output_norm.weight", &[d as u64], DType::F32, ones(d));
    if !s.tied {
        matrix(&mut w, "output.weight", s.n_vocab, d, opts.dtype)?;
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

/// A (rows, cols) matrix of values of about the size trained weights have, in `dtype`.
fn random_matrix(rng: &mut Rng, rows: usize, cols: usize, dtype: DType) -> Result<Vec<u8>> {
    let row_bytes = dtype.bytes_for(cols as u64).ok_or_else(|| EngineError::Invalid(format!("{cols} values are not whole {dtype} blocks")))? as usize;
    let scale = 1.0 / (cols as f32).sqrt();
    let n_distinct = rows.min(DISTINCT_ROWS);
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
    use crate::model::Model;

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
