//! Bad model files are refused at load time with an error that names the file and the key or
//! tensor (expected vs found where there is a size), never a panic or a model that runs wrong.
//!
//! Each broken file is a real tiny fixture from ../shared/testdata/arch/<family>/model-f32.gguf,
//! read, changed in one way, and written to a temporary folder, so every error comes from the
//! family's own loader. Without the test data these tests say why and pass.

use std::path::PathBuf;

use herd_engine::Model;
use herd_gguf::{Gguf, GgufWriter, Value, ValueType};
use herd_kernels::DType;

const FAMILIES: &[&str] = &["llama", "mistral", "mixtral", "qwen2", "qwen3", "qwen3moe", "gemma2", "gemma3", "phi3", "phi3-longrope"];

/// Tensors a family may lack: the file is then a different, valid model of the same family.
const OPTIONAL: &[(&str, &str)] = &[
    // Tied embeddings: the head reuses `token_embd.weight`.
    ("*", "output.weight"),
    // A Llama file without precomputed llama3 factors is an unscaled Llama.
    ("llama", "rope_freqs.weight"),
];

struct Tensor {
    name: String,
    dims: Vec<u64>,
    dtype: DType,
    data: Vec<u8>,
}

/// A fixture held in memory, to be changed and written out.
struct Fixture {
    family: &'static str,
    version: u32,
    metadata: Vec<(String, Value)>,
    tensors: Vec<Tensor>,
}

impl Fixture {
    fn open(family: &'static str) -> Option<Fixture> {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/arch").join(family).join("model-f32.gguf");
        if !path.exists() {
            eprintln!("skipped: {} is absent", path.display());
            return None;
        }
        let file = Gguf::open(&path).unwrap();
        let tensors = file.tensors().iter().map(|t| Tensor { name: t.name.clone(), dims: t.dims.clone(), dtype: t.dtype, data: file.tensor_data(t).to_vec() }).collect();
        Some(Fixture { family, version: file.version(), metadata: file.metadata().to_vec(), tensors })
    }

    fn n_layers(&self) -> usize {
        let arch = self.metadata.iter().find(|(k, _)| k == "general.architecture").unwrap().1.as_str().unwrap();
        self.metadata.iter().find(|(k, _)| *k == format!("{arch}.block_count")).unwrap().1.as_u64().unwrap() as usize
    }

    fn set(mut self, key: &str, value: Value) -> Fixture {
        match self.metadata.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value,
            None => self.metadata.push((key.to_string(), value)),
        }
        self
    }

    fn remove_key(mut self, key: &str) -> Fixture {
        let n = self.metadata.len();
        self.metadata.retain(|(k, _)| k != key);
        assert_eq!(self.metadata.len(), n - 1, "{}: no key '{key}' to remove", self.family);
        self
    }

    fn tensor(&mut self, name: &str) -> &mut Tensor {
        let family = self.family;
        self.tensors.iter_mut().find(|t| t.name == name).unwrap_or_else(|| panic!("{family}: no tensor '{name}'"))
    }

    fn remove(mut self, name: &str) -> Fixture {
        self.tensor(name);
        self.tensors.retain(|t| t.name != name);
        self
    }

    /// Gives tensor `name` new dims, its data cut or padded with zeros to fit.
    fn reshape(mut self, name: &str, dims: &[u64]) -> Fixture {
        let t = self.tensor(name);
        let n_bytes = t.dtype.bytes_for(dims.iter().product()).unwrap() as usize;
        t.dims = dims.to_vec();
        t.data.resize(n_bytes, 0);
        self
    }

    /// Adds (or replaces) an F32 tensor with every value `fill`.
    fn add(mut self, name: &str, dims: &[u64], fill: f32) -> Fixture {
        self.tensors.retain(|t| t.name != name);
        let n: u64 = dims.iter().product();
        let data = (0..n).flat_map(|_| fill.to_le_bytes()).collect();
        self.tensors.push(Tensor { name: name.to_string(), dims: dims.to_vec(), dtype: DType::F32, data });
        self
    }

    /// Writes the file to a temporary one named after `case`, loads it, and removes it.
    fn load(&self, case: &str) -> (PathBuf, Result<Model, String>) {
        let path = std::env::temp_dir().join(format!("herd-bad-models-{}-{case}.gguf", std::process::id()));
        let mut w = GgufWriter::new(self.version);
        for (k, v) in &self.metadata {
            w.add(k, v.clone());
        }
        for t in &self.tensors {
            w.add_tensor(&t.name, &t.dims, t.dtype, t.data.clone());
        }
        w.write(&path).unwrap();
        let result = Model::load(&path).map_err(|e| e.to_string());
        std::fs::remove_file(&path).unwrap();
        (path, result)
    }

    fn loads(&self, case: &str) {
        if let (_, Err(e)) = self.load(case) {
            panic!("{case}: expected to load, got: {e}");
        }
    }

    /// The load error, checked to start with the file's path; the message after it.
    fn refused(&self, case: &str) -> String {
        let (path, result) = self.load(case);
        let Err(e) = result else { panic!("{case}: loaded, expected an error") };
        let prefix = format!("{}: ", path.display());
        assert!(e.starts_with(&prefix), "{case}: {e:?} does not start with the file's path {prefix:?}");
        e[prefix.len()..].to_string()
    }

    /// Refused with a message holding every one of `want`.
    fn check(&self, case: &str, want: &[&str]) {
        let message = self.refused(case);
        for w in want {
            assert!(message.contains(w), "{case}: {message:?} lacks {w:?}");
        }
    }
}

fn bool_array(flags: &[bool]) -> Value {
    Value::array(ValueType::Bool, flags.iter().map(|&b| Value::Bool(b)).collect())
}

/// The rewriting itself changes nothing: every untouched copy loads.
#[test]
fn untouched_copies_load() {
    for &family in FAMILIES {
        let Some(fx) = Fixture::open(family) else { return };
        fx.loads(&format!("{family}-untouched"));
    }
}

#[test]
fn unknown_architecture_is_refused_with_the_supported_list() {
    let Some(fx) = Fixture::open("llama") else { return };
    let supported = ["llama", "qwen2", "qwen3", "qwen3moe", "gemma2", "gemma3", "phi3"];
    let message = fx.set("general.architecture", "mamba".into()).refused("arch-mamba");
    assert!(message.contains("architecture 'mamba' is not supported"), "{message:?}");
    let list = message.split("herd runs: ").nth(1).unwrap_or_else(|| panic!("{message:?} lists no architectures"));
    let listed: Vec<&str> = list.trim_end_matches(')').split(", ").collect();
    assert_eq!(listed, supported, "{message:?}");

    let Some(fx) = Fixture::open("qwen2") else { return };
    fx.set("general.architecture", "Qwen2".into()).check("arch-case", &["architecture 'Qwen2' is not supported", "qwen2"]);
    let Some(fx) = Fixture::open("qwen2") else { return };
    fx.remove_key("general.architecture").check("arch-missing", &["missing key 'general.architecture'"]);
    let Some(fx) = Fixture::open("qwen2") else { return };
    fx.set("general.architecture", 7u32.into()).check("arch-number", &["general.architecture"]);
}

#[test]
fn missing_tensors_are_named() {
    let cases: &[(&str, &str, &str)] = &[
        ("qwen3", "blk.0.attn_q_norm.weight", "missing tensor 'blk.0.attn_q_norm.weight'"),
        ("qwen3", "blk.1.attn_k_norm.weight", "missing tensor 'blk.1.attn_k_norm.weight'"),
        ("qwen2", "blk.0.attn_q.bias", "missing tensor 'blk.0.attn_q.bias' (Qwen 2 attention has biases)"),
        ("qwen2", "blk.1.attn_v.bias", "missing tensor 'blk.1.attn_v.bias'"),
        ("gemma2", "blk.0.post_ffw_norm.weight", "missing tensor 'blk.0.post_ffw_norm.weight'"),
        ("gemma2", "blk.3.post_attention_norm.weight", "missing tensor 'blk.3.post_attention_norm.weight'"),
        ("gemma3", "blk.5.attn_q_norm.weight", "missing tensor 'blk.5.attn_q_norm.weight'"),
        ("phi3", "blk.0.attn_qkv.weight", "missing tensor 'blk.0.attn_qkv.weight'"),
        ("phi3", "blk.1.ffn_up.weight", "missing tensor 'blk.1.ffn_up.weight'"),
        ("qwen3moe", "blk.1.ffn_gate_inp.weight", "missing tensor 'blk.1.ffn_gate_inp.weight'"),
        // A Mixtral layer with experts but no router must not fall back to a dense MLP.
        ("mixtral", "blk.0.ffn_gate_inp.weight", "missing tensor 'blk.0.ffn_gate_inp.weight'"),
        ("mixtral", "blk.1.ffn_down_exps.weight", "missing tensor 'blk.1.ffn_down_exps.weight'"),
        ("llama", "output_norm.weight", "missing tensor 'output_norm.weight'"),
        ("llama", "token_embd.weight", "missing tensor 'token_embd.weight'"),
    ];
    for &(family, name, want) in cases {
        let Some(fx) = Fixture::open(family) else { return };
        fx.remove(name).check(&format!("missing-{family}-{name}"), &[want]);
    }
}

/// Every model-level and first-layer tensor of every family is required (or on the short list
/// of optional ones), and its absence is named.
#[test]
fn every_required_tensor_is_named_when_missing() {
    for &family in FAMILIES {
        let Some(fx) = Fixture::open(family) else { return };
        for name in swept(&fx) {
            let case = format!("sweep-missing-{family}-{name}");
            let optional = OPTIONAL.iter().any(|&(f, n)| (f == "*" || f == family) && n == name);
            let Some(fx) = Fixture::open(family) else { return };
            let fx = fx.remove(&name);
            if optional {
                fx.loads(&case);
            } else {
                fx.check(&case, &[&format!("'{name}'"), "missing"]);
            }
        }
    }
}

/// Every model-level and first-layer tensor of every family, one dimension too long or its rows
/// halved, is refused by name with the dims found and expected.
#[test]
fn every_misshapen_tensor_is_named_with_its_dims() {
    for &family in FAMILIES {
        let Some(fx) = Fixture::open(family) else { return };
        for name in swept(&fx) {
            let dims = fx.tensors.iter().find(|t| t.name == name).unwrap().dims.clone();
            let mut longer = dims.clone();
            *longer.last_mut().unwrap() += 1;
            let mut narrower = dims.clone();
            narrower[0] /= 2;
            for (how, found) in [("longer", longer), ("narrower", narrower)] {
                let case = format!("sweep-shape-{how}-{family}-{name}");
                let Some(fx) = Fixture::open(family) else { return };
                let message = fx.reshape(&name, &found).refused(&case);
                assert!(message.contains(&format!("'{name}'")), "{case}: {message:?} does not name the tensor");
                if name == "token_embd.weight" && how == "longer" {
                    // The vocabulary is the embedding's row count, held against the tokenizer's.
                    assert!(message.contains(&format!("has {} rows", found[1])), "{case}: {message:?}");
                } else {
                    assert!(message.contains(&format!("{found:?}")) && message.contains("expected"), "{case}: {message:?} lacks the dims found and expected");
                }
            }
        }
    }
}

/// The tensors the sweeps change: the model-level ones and those of layer 0 (every layer is
/// built by the same code; other layers are covered by the named cases).
fn swept(fx: &Fixture) -> Vec<String> {
    fx.tensors.iter().map(|t| t.name.clone()).filter(|n| !n.starts_with("blk.") || n.starts_with("blk.0.")).collect()
}

#[test]
fn misshapen_tensors_are_named_with_expected_and_found_dims() {
    let cases: &[(&str, &str, &[u64], &str)] = &[
        ("qwen3", "blk.0.attn_q.weight", &[64, 96], "tensor 'blk.0.attn_q.weight': dims [64, 96], expected [64, 128]"),
        ("qwen3", "blk.1.attn_q_norm.weight", &[16], "tensor 'blk.1.attn_q_norm.weight': dims [16], expected [32]"),
        ("qwen2", "blk.1.attn_k.bias", &[64], "tensor 'blk.1.attn_k.bias': dims [64], expected [32]"),
        ("phi3", "blk.0.attn_qkv.weight", &[64, 64], "tensor 'blk.0.attn_qkv.weight': dims [64, 64], expected [64, 128]"),
        // Fused gate+up is twice the feed-forward width.
        ("phi3", "blk.1.ffn_up.weight", &[64, 128], "tensor 'blk.1.ffn_up.weight': dims [64, 128], expected [64, 256]"),
        ("gemma2", "blk.2.post_ffw_norm.weight", &[32], "tensor 'blk.2.post_ffw_norm.weight': dims [32], expected [64]"),
        ("gemma3", "blk.5.ffn_down.weight", &[64, 96], "tensor 'blk.5.ffn_down.weight': dims [64, 96], expected [96, 64]"),
        ("qwen3moe", "output.weight", &[64, 511], "tensor 'output.weight': dims [64, 511], expected [64, 512]"),
        // A matrix where a vector belongs, and the other way round.
        ("llama", "blk.1.attn_norm.weight", &[64, 1], "tensor 'blk.1.attn_norm.weight': dims [64, 1], expected [64]"),
        ("llama", "blk.1.attn_v.weight", &[2048], "tensor 'blk.1.attn_v.weight': dims [2048], expected [64, 32]"),
        ("llama", "token_embd.weight", &[32, 1024], "tensor 'token_embd.weight': dims [32, 1024], expected [64, n_vocab]"),
    ];
    for &(family, name, dims, want) in cases {
        let Some(fx) = Fixture::open(family) else { return };
        fx.reshape(name, dims).check(&format!("shape-{family}-{name}"), &[want]);
    }
}

#[test]
fn expert_counts_must_agree_with_the_tensors() {
    let Some(fx) = Fixture::open("qwen3moe") else { return };
    // expert_count 4, but the gate experts stack 3 matrices.
    let fx = fx.reshape("blk.0.ffn_gate_exps.weight", &[64, 64, 3]);
    fx.check("moe-3-gates", &["tensor 'blk.0.ffn_gate_exps.weight': dims [64, 64, 3], expected [64, 64, 4]"]);

    let Some(fx) = Fixture::open("qwen3moe") else { return };
    fx.reshape("blk.1.ffn_down_exps.weight", &[64, 64, 5]).check("moe-5-downs", &["tensor 'blk.1.ffn_down_exps.weight': dims [64, 64, 5], expected [64, 64, 4]"]);

    // The key disagrees with every tensor: the first one read is named.
    let Some(fx) = Fixture::open("qwen3moe") else { return };
    fx.set("qwen3moe.expert_count", 3u32.into()).check("moe-count-3", &["tensor 'blk.0.ffn_gate_exps.weight': dims [64, 64, 4], expected [64, 64, 3]"]);

    // The router scores 3 experts of 4 (Mixtral, a llama-architecture file).
    let Some(fx) = Fixture::open("mixtral") else { return };
    fx.reshape("blk.0.ffn_gate_inp.weight", &[64, 3]).check("moe-router-3", &["tensor 'blk.0.ffn_gate_inp.weight': dims [64, 3], expected [64, 4]"]);

    // The expert width comes from expert_feed_forward_length, not feed_forward_length.
    let Some(fx) = Fixture::open("qwen3moe") else { return };
    fx.set("qwen3moe.expert_feed_forward_length", 32u32.into()).check("moe-width", &["tensor 'blk.0.ffn_gate_exps.weight': dims [64, 64, 4], expected [64, 32, 4]"]);
}

#[test]
fn expert_keys_are_checked() {
    let cases: &[(&str, &str, Option<Value>, &[&str])] = &[
        ("qwen3moe", "qwen3moe.expert_used_count", Some(5u32.into()), &["'qwen3moe.expert_used_count' is 5", "'qwen3moe.expert_count' is 4"]),
        ("mixtral", "llama.expert_used_count", Some(5u32.into()), &["'llama.expert_used_count' is 5", "'llama.expert_count' is 4"]),
        ("qwen3moe", "qwen3moe.expert_used_count", Some(0u32.into()), &["expert_used_count is 0"]),
        ("qwen3moe", "qwen3moe.expert_count", Some(0u32.into()), &["expert_count is 0"]),
        ("qwen3moe", "qwen3moe.expert_count", None, &["missing key 'qwen3moe.expert_count'"]),
        ("qwen3moe", "qwen3moe.expert_used_count", None, &["missing key 'qwen3moe.expert_used_count'"]),
        ("mixtral", "llama.expert_used_count", None, &["missing key 'llama.expert_used_count'"]),
        // Sigmoid gating (DeepSeek V3) and softmax over the chosen weights are not softmax.
        ("qwen3moe", "qwen3moe.expert_gating_func", Some(2u32.into()), &["key 'qwen3moe.expert_gating_func' is 2", "softmax"]),
        ("mixtral", "llama.expert_gating_func", Some(3u32.into()), &["key 'llama.expert_gating_func' is 3", "softmax"]),
        ("qwen3moe", "qwen3moe.expert_gating_func", Some("softmax".into()), &["qwen3moe.expert_gating_func"]),
        ("qwen3moe", "qwen3moe.expert_weights_norm", Some(1u32.into()), &["qwen3moe.expert_weights_norm"]),
    ];
    for (i, (family, key, value, want)) in cases.iter().enumerate() {
        let Some(fx) = Fixture::open(family) else { return };
        let fx = match value {
            Some(v) => fx.set(key, v.clone()),
            None => fx.remove_key(key),
        };
        fx.check(&format!("moe-key-{i}"), want);
    }
    // Softmax stated outright is what herd runs.
    let Some(fx) = Fixture::open("qwen3moe") else { return };
    fx.set("qwen3moe.expert_gating_func", 1u32.into()).loads("moe-softmax");
}

#[test]
fn shared_experts_are_refused_by_name() {
    let shexp = [("ffn_gate_shexp", [64u64, 32]), ("ffn_up_shexp", [64, 32]), ("ffn_down_shexp", [32, 64]), ("ffn_gate_inp_shexp", [64, 1])];
    // All of them (as Qwen 2 MoE files have), and each one alone in a later layer.
    let Some(mut fx) = Fixture::open("qwen3moe") else { return };
    for (stem, dims) in shexp {
        fx = fx.add(&format!("blk.0.{stem}.weight"), &dims, 0.5);
    }
    fx.check("shexp-all", &["blk.0.ffn_gate_shexp.weight", "shared experts"]);
    for (stem, dims) in shexp {
        let name = format!("blk.1.{stem}.weight");
        let Some(fx) = Fixture::open("qwen3moe") else { return };
        fx.add(&name, &dims, 0.5).check(&format!("shexp-{stem}"), &[&format!("'{name}'"), "shared experts"]);
        let Some(fx) = Fixture::open("mixtral") else { return };
        fx.add(&name, &dims, 0.5).check(&format!("shexp-mixtral-{stem}"), &[&format!("'{name}'"), "shared experts"]);
    }
}

#[test]
fn gemma3_sliding_window_pattern_must_fit_the_layers() {
    let Some(fx) = Fixture::open("gemma3") else { return };
    assert_eq!(fx.n_layers(), 6);
    let key = "gemma3.attention.sliding_window_pattern";
    let cases: Vec<(&str, Value, &[&str])> = vec![
        ("period-7", 7u32.into(), &["key 'gemma3.attention.sliding_window_pattern'", "7", "expected a period from 1 to the layer count 6"]),
        ("period-1000", Value::U64(1000), &["key 'gemma3.attention.sliding_window_pattern'", "1000", "layer count 6"]),
        ("period-0", 0u32.into(), &["key 'gemma3.attention.sliding_window_pattern'", "expected a period from 1"]),
        ("period-negative", Value::I32(-6), &["key 'gemma3.attention.sliding_window_pattern'", "-6"]),
        ("period-text", "6".into(), &["key 'gemma3.attention.sliding_window_pattern'", "String"]),
        ("flags-5", bool_array(&[true, true, true, true, true]), &["key 'gemma3.attention.sliding_window_pattern' has 5 entries for 6 layers"]),
        ("flags-7", bool_array(&[true; 7]), &["key 'gemma3.attention.sliding_window_pattern' has 7 entries for 6 layers"]),
        ("flags-0", bool_array(&[]), &["has 0 entries for 6 layers"]),
        ("flags-ints", Value::i32_array([1, 1, 1, 1, 1, 0]), &["key 'gemma3.attention.sliding_window_pattern'", "array of bools"]),
    ];
    for (case, value, want) in cases {
        let Some(fx) = Fixture::open("gemma3") else { return };
        fx.set(key, value).check(&format!("gemma3-pattern-{case}"), want);
    }
    // What the fixture already does (llama.cpp's pattern of 6), stated either way, loads.
    for (case, value) in [("period-6", 6u32.into()), ("flags-6", bool_array(&[true, true, true, true, true, false])), ("period-1", 1u32.into())] {
        let Some(fx) = Fixture::open("gemma3") else { return };
        fx.set(key, value).loads(&format!("gemma3-pattern-ok-{case}"));
    }
    // Gemma 3 slides: without a window there is no model to run.
    let Some(fx) = Fixture::open("gemma3") else { return };
    fx.remove_key("gemma3.attention.sliding_window").check("gemma3-no-window", &["missing key 'gemma3.attention.sliding_window'"]);
    let Some(fx) = Fixture::open("gemma3") else { return };
    fx.set("gemma3.attention.sliding_window", 0u32.into()).check("gemma3-window-0", &["attention.sliding_window is 0"]);
}

#[test]
fn longrope_factors_must_be_both_present_and_n_rot_over_2_long() {
    // n_rot 16: 8 factors each.
    let (short, long) = ("rope_factors_short.weight", "rope_factors_long.weight");
    for name in [short, long] {
        for (n, how) in [(9u64, "9"), (7, "7")] {
            let Some(fx) = Fixture::open("phi3-longrope") else { return };
            // Good values, so only the length can be what is refused.
            fx.add(name, &[n], 1.5).check(&format!("longrope-{name}-{how}"), &[&format!("tensor '{name}': dims [{n}], expected [8]")]);
        }
        let Some(fx) = Fixture::open("phi3-longrope") else { return };
        fx.add(name, &[4, 2], 1.5).check(&format!("longrope-{name}-2d"), &[&format!("tensor '{name}': dims [4, 2], expected [8]")]);
        let Some(mut fx) = Fixture::open("phi3-longrope") else { return };
        let t = fx.tensor(name);
        (t.dtype, t.data) = (DType::F16, [0x00, 0x3c].repeat(8)); // 1.0 in F16
        fx.check(&format!("longrope-{name}-f16"), &[&format!("tensor '{name}': type F16, expected F32")]);
        let Some(fx) = Fixture::open("phi3-longrope") else { return };
        fx.add(name, &[8], -1.0).check(&format!("longrope-{name}-negative"), &[&format!("tensor '{name}'"), "not a positive number"]);
    }
    // Only one of the two.
    let Some(fx) = Fixture::open("phi3-longrope") else { return };
    fx.remove(long).check("longrope-short-only", &[&format!("'{short}' is present but '{long}' is missing")]);
    let Some(fx) = Fixture::open("phi3-longrope") else { return };
    fx.remove(short).check("longrope-long-only", &[&format!("'{long}' is present but '{short}' is missing")]);
    // Added to a plain Phi-3 file, one factor tensor is no model either.
    let Some(fx) = Fixture::open("phi3") else { return };
    fx.add(long, &[8], 2.0).check("phi3-long-only", &[&format!("'{short}' is missing")]);
    // The switch between them is at the original context length, which must be there and sane.
    let Some(fx) = Fixture::open("phi3-longrope") else { return };
    fx.remove_key("phi3.rope.scaling.original_context_length").check("longrope-no-original", &["missing key 'phi3.rope.scaling.original_context_length'"]);
    let Some(fx) = Fixture::open("phi3-longrope") else { return };
    fx.set("phi3.rope.scaling.original_context_length", 0u32.into()).check("longrope-original-0", &["rope.scaling.original_context_length is 0"]);
    // Llama 3's precomputed factors obey the same rule.
    let Some(fx) = Fixture::open("llama") else { return };
    fx.add("rope_freqs.weight", &[9], 1.0).check("llama-rope-freqs-9", &["tensor 'rope_freqs.weight': dims [9], expected [8]"]);
}

/// Keys every family reads, absent or nonsense, are named (`Config::from_gguf` is shared, so
/// one family per key is enough).
#[test]
fn shared_hyperparameters_are_named() {
    let cases: Vec<(&str, &str, Option<Value>, &str)> = vec![
        ("gemma2", "gemma2.block_count", None, "missing key 'gemma2.block_count'"),
        ("phi3", "phi3.embedding_length", Some(0u32.into()), "embedding_length is 0"),
        ("qwen2", "qwen2.attention.head_count_kv", Some(3u32.into()), "not a multiple of attention.head_count_kv 3"),
        ("qwen3", "qwen3.attention.key_length", Some(16u32.into()), "attention.value_length 32 differs from attention.key_length 16"),
        // One layer more than the file has tensors for.
        ("qwen2", "qwen2.block_count", Some(3u32.into()), "missing tensor 'blk.2."),
        ("gemma2", "gemma2.attn_logit_softcapping", Some(Value::F32(-8.0)), "key 'gemma2.attn_logit_softcapping' is -8"),
    ];
    for (i, (family, key, value, want)) in cases.into_iter().enumerate() {
        let Some(fx) = Fixture::open(family) else { return };
        let fx = match value {
            Some(v) => fx.set(key, v),
            None => fx.remove_key(key),
        };
        fx.check(&format!("hparams-{i}"), &[want]);
    }
}
