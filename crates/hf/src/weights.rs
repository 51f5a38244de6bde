//! The folder's weights: `model.safetensors`, or the shards that `model.safetensors.index.json`
//! names, each memory-mapped once and shared by the tensors it holds. Tensor data is never
//! copied here; what is done with it is `convert.rs`'s business.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use herd_gguf::Mmap;
use serde::Deserialize;

use crate::error::{HfError, Result};
use crate::safetensors::{self, StTensor};

pub const SINGLE: &str = "model.safetensors";
pub const INDEX: &str = "model.safetensors.index.json";

/// Every tensor of the checkpoint by name, with the map of the file that holds it.
pub struct Weights {
    pub tensors: BTreeMap<String, (StTensor, Arc<Mmap>)>,
    /// The file each tensor came from, for errors.
    pub files: HashMap<String, PathBuf>,
}

#[derive(Deserialize)]
struct Index {
    weight_map: BTreeMap<String, String>,
}

/// Maps and checks the folder's safetensors files.
pub fn open(dir: &Path) -> Result<Weights> {
    let index_path = dir.join(INDEX);
    let shards: Vec<(PathBuf, Option<Vec<&str>>)>;
    let index: Option<Index>;
    if index_path.is_file() {
        let text = std::fs::read_to_string(&index_path).map_err(|source| HfError::Io { path: index_path.clone(), source })?;
        index = Some(serde_json::from_str(&text).map_err(|e| HfError::at(&index_path, format!("not a shard index (expected {{\"weight_map\": {{tensor: file}}}}): {e}")))?);
    } else {
        index = None;
    }
    match &index {
        Some(idx) => {
            let mut by_file: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for (tensor, file) in &idx.weight_map {
                // A shard is a file beside the index, never a path out of the folder.
                if file.is_empty() || file.contains(['/', '\\']) || file == ".." || file == "." {
                    return Err(HfError::at(&index_path, format!("tensor '{tensor}' names shard '{file}', expected a file name in the same folder")));
                }
                by_file.entry(file).or_default().push(tensor);
            }
            if by_file.is_empty() {
                return Err(HfError::at(&index_path, "the weight_map names no tensors"));
            }
            for file in by_file.keys() {
                if !dir.join(file).is_file() {
                    return Err(HfError::at(&index_path, format!("shard '{file}' (holding '{}') is missing from the folder", by_file[file][0])));
                }
            }
            shards = by_file.into_iter().map(|(f, names)| (dir.join(f), Some(names))).collect();
        }
        None => {
            let single = dir.join(SINGLE);
            if !single.is_file() {
                let has_bin = std::fs::read_dir(dir).into_iter().flatten().flatten().any(|e| e.file_name().to_string_lossy().ends_with(".bin"));
                let hint = if has_bin { " (PyTorch .bin checkpoints are not read; save the model with safe_serialization=True)" } else { "" };
                return Err(HfError::at(dir, format!("no weights: expected {SINGLE} or {INDEX}{hint}")));
            }
            shards = vec![(single, None)];
        }
    }
    let mut weights = Weights { tensors: BTreeMap::new(), files: HashMap::new() };
    for (path, expected) in shards {
        let file = File::open(&path).map_err(|source| HfError::Io { path: path.clone(), source })?;
        // SAFETY: read-only and private; as with any mapped loader, another process truncating
        // the file while herd runs is outside what can be defended against.
        let map = Arc::new(unsafe { Mmap::map(&file) }.map_err(|source| HfError::Io { path: path.clone(), source })?);
        let tensors = safetensors::parse(&map).map_err(|m| HfError::at(&path, m))?;
        if let Some(expected) = expected {
            for name in expected {
                if !tensors.iter().any(|t| t.name == name) {
                    return Err(HfError::at(&path, format!("tensor '{name}' is missing (the shard index places it in this file)")));
                }
            }
        }
        for t in tensors {
            if let Some(other) = weights.files.get(&t.name) {
                return Err(HfError::at(&path, format!("tensor '{}' is also in {}", t.name, other.display())));
            }
            weights.files.insert(t.name.clone(), path.clone());
            weights.tensors.insert(t.name.clone(), (t, Arc::clone(&map)));
        }
    }
    Ok(weights)
}
