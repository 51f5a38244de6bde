//! Turning a `-m` argument (a file path, a known model name, or nothing) into a model file,
//! fetching the default model when it is not there yet.

use std::path::PathBuf;

use anyhow::{bail, Result};
use herd_engine::store;

/// The file `arg` names: an existing path, or a model herd knows by name (fetched if needed);
/// with no argument, the default model.
pub fn resolve(arg: Option<&str>) -> Result<PathBuf> {
    let mut say = |line: &str| eprintln!("{line}");
    let Some(arg) = arg else {
        return Ok(store::ensure(&store::DEFAULT_MODEL, &mut say)?);
    };
    let path = PathBuf::from(arg);
    if path.exists() {
        return Ok(path);
    }
    if let Some(known) = store::find_known(arg) {
        return Ok(store::ensure(&known, &mut say)?);
    }
    bail!("{arg}: no such file, and not a model herd knows by name (known: {})", known_names());
}

pub fn known_names() -> String {
    store::KNOWN_MODELS.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
}
