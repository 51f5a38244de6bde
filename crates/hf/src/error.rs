//! The crate's one error type: which file of the folder, and what is wrong with it, naming the
//! key or tensor and expected vs found.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum HfError {
    /// Something about the folder or one of its files; `path` is that file (or the folder).
    #[error("{path}: {message}")]
    Folder { path: PathBuf, message: String },
    #[error("{path}: cannot read: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// The assembled model failed a GGUF check (a shape no GGUF can hold).
    #[error(transparent)]
    Gguf(#[from] herd_gguf::GgufError),
}

impl HfError {
    pub(crate) fn at(path: impl Into<PathBuf>, message: impl Into<String>) -> HfError {
        HfError::Folder { path: path.into(), message: message.into() }
    }
}

pub type Result<T, E = HfError> = std::result::Result<T, E>;
