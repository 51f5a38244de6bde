//! Reads and writes GGUF files, versions 2 and 3: metadata values, tensor infos, and zero-copy
//! tensor bytes, all validated when a file is opened. What the keys and tensors mean for a model
//! is the engine's business, not this crate's.

mod cursor;
mod error;
mod reader;
mod value;
mod writer;

pub use error::{ErrorKind, GgufError, Malformed, TensorProblem};
pub use reader::{Gguf, TensorInfo, TensorSource, TensorSpec, ALIGNMENT_KEY, DEFAULT_ALIGNMENT, MAX_ARRAY_DEPTH, MAX_DIMS};
pub use value::{Array, Value, ValueType};
pub use writer::GgufWriter;
/// The map type `TensorSource::Mapped` holds, so callers need not name memmap2 themselves.
pub use memmap2::Mmap;
