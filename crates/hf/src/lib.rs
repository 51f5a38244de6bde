//! Hugging Face model folders (`config.json`, `model.safetensors` or shards with
//! `model.safetensors.index.json`, `tokenizer.json`, `tokenizer_config.json`) read as the GGUF
//! file llama.cpp's `convert_hf_to_gguf.py` would write for them: the same metadata keys and
//! tensor names, so the engine's families run a folder unchanged and `herd convert` writes it
//! out. Tensor data stays in the memory-mapped safetensors files except where the converter
//! changes values (see `convert.rs`). No HTTP and no model store here: fetching is not reading.
//!
//! Flow: `config.json` names the family (`arch.rs` turns its hyperparameters into keys),
//! `weights.rs` maps and checks the safetensors files (`safetensors.rs` parses each header),
//! `convert.rs` names and transforms the tensors, the tokenizer crate turns `tokenizer.json`
//! into `tokenizer.ggml.*` keys, and `Gguf::from_parts` checks and assembles the result.

mod arch;
mod config;
mod convert;
mod error;
pub mod safetensors;
mod weights;

use std::path::Path;

use herd_gguf::{Gguf, TensorSource, Value};

pub use arch::FAMILIES;
pub use error::{HfError, Result};

/// `general.quantization_version`, as the converter writes it.
const QUANTIZATION_VERSION: u32 = 2;

/// Whether `path` is a folder to read with `open` (rather than a GGUF file).
pub fn is_model_folder(path: &Path) -> bool {
    path.is_dir()
}

/// The folder as a GGUF model: metadata, tokenizer and tensors, checked.
pub fn open(dir: &Path) -> Result<Gguf> {
    assemble(dir, || tokenizer_keys(dir))
}

/// As `open`, with the `tokenizer.*` keys given rather than read from the folder's tokenizer
/// files (a folder whose tokenizer comes from elsewhere, and tests of the weights alone).
pub fn open_with_tokenizer_keys(dir: &Path, tokenizer: Vec<(String, Value)>) -> Result<Gguf> {
    assemble(dir, || Ok(tokenizer))
}

/// Config, family and weights first (what makes a folder a model), then the tokenizer.
fn assemble(dir: &Path, tokenizer: impl FnOnce() -> Result<Vec<(String, Value)>>) -> Result<Gguf> {
    let cfg = config::HfConfig::read(dir)?;
    let fam = arch::family(&cfg)?;
    let (family_keys, generated) = arch::metadata(fam, &cfg)?;
    let weights = weights::open(dir)?;
    let tokenizer = tokenizer()?;
    let mut tensors: Vec<_> = generated.into_iter().map(|g| (g.spec, TensorSource::Owned(g.data))).collect();
    tensors.extend(convert::tensors(fam, &cfg, &weights)?);

    let mut metadata: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::from(fam.arch)),
        ("general.type".into(), Value::from("model")),
        ("general.name".into(), Value::from(model_name(dir).as_str())),
    ];
    metadata.extend(family_keys);
    metadata.push(("general.file_type".into(), Value::U32(file_type(tensors.iter().map(|(s, _)| s)))));
    metadata.push(("general.quantization_version".into(), Value::U32(QUANTIZATION_VERSION)));
    metadata.extend(tokenizer);
    Ok(Gguf::from_parts(dir, metadata, tensors)?)
}

/// The folder's `tokenizer.*` keys (chat template included) from `tokenizer.json`,
/// `tokenizer_config.json` and `config.json`, as the converter writes them.
pub fn tokenizer_keys(dir: &Path) -> Result<Vec<(String, Value)>> {
    let read = |name: &str| -> Result<Option<String>> {
        let path = dir.join(name);
        if !path.is_file() {
            return Ok(None);
        }
        std::fs::read_to_string(&path).map(Some).map_err(|source| HfError::Io { path, source })
    };
    let tokenizer_json = read("tokenizer.json")?.ok_or_else(|| HfError::at(dir, "tokenizer.json is missing (herd reads the tokenizer from it)"))?;
    let tokenizer_config = read("tokenizer_config.json")?;
    let config = read("config.json")?;
    let mut keys = herd_tokenizer::gguf_keys_from_hf(&tokenizer_json, tokenizer_config.as_deref(), config.as_deref()).map_err(|e| HfError::at(dir.join("tokenizer.json"), e.to_string()))?;
    // Newer transformers save the template beside tokenizer_config.json instead of inside it.
    if !keys.iter().any(|(k, _)| k == "tokenizer.chat_template") {
        if let Some(template) = read("chat_template.jinja")? {
            keys.push(("tokenizer.chat_template".into(), Value::String(template)));
        }
    }
    Ok(keys)
}

/// llama.cpp's `general.file_type` for the weight matrices' type: 0 all F32, 1 mostly F16,
/// 32 mostly BF16.
fn file_type<'a>(specs: impl Iterator<Item = &'a herd_gguf::TensorSpec>) -> u32 {
    use herd_kernels::DType;
    let mut ftype = 0;
    for s in specs.filter(|s| s.dims.len() >= 2) {
        match s.dtype {
            DType::F16 => ftype = 1,
            DType::BF16 => ftype = 32,
            _ => {}
        }
    }
    ftype
}

/// The converter's `general.name` for a folder: its name with '-' and '_' as spaces, in title
/// case as Python's `str.title` makes it ("phi3-longrope" -> "Phi3 Longrope").
fn model_name(dir: &Path) -> String {
    let base = dir.canonicalize().ok().and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned())).unwrap_or_else(|| "model".into());
    let mut out = String::with_capacity(base.len());
    let mut prev_letter = false;
    for c in base.chars().map(|c| if c == '-' || c == '_' { ' ' } else { c }) {
        if c.is_alphabetic() {
            out.extend(if prev_letter { c.to_lowercase().collect::<Vec<_>>() } else { c.to_uppercase().collect() });
            prev_letter = true;
        } else {
            out.push(c);
            prev_letter = false;
        }
    }
    out
}
