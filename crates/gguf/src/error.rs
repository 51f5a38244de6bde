//! The one error type of this crate: which file, and what is wrong with it, naming the key or
//! tensor and expected vs found. It does not decide what callers do about it.

use herd_kernels::DType;

/// An error reading a GGUF file or looking a value up in it. Displays as `<file>: <what>`.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {kind}")]
pub struct GgufError {
    file: String,
    kind: ErrorKind,
}

impl GgufError {
    pub(crate) fn new(file: &str, kind: ErrorKind) -> GgufError {
        GgufError {
            file: file.to_owned(),
            kind,
        }
    }

    /// The file as the caller named it (the path given to `open`, or the name given to
    /// `from_bytes`).
    pub fn file(&self) -> &str {
        &self.file
    }

    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }
}

/// What is wrong, without the file name.
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    #[error("cannot read the file: {0}")]
    Io(#[source] std::io::Error),
    #[error(
        "not a GGUF file: the first bytes are {found:02x?}, expected \"GGUF\" [47, 47, 55, 46]"
    )]
    BadMagic { found: Vec<u8> },
    #[error("GGUF version {found} is not supported, expected 2 or 3{}", version_hint(*.found))]
    UnsupportedVersion { found: u32 },
    /// The bytes do not parse; `context` says what was being read ("header",
    /// "metadata 'general.name'", "tensor info 3 name", ...).
    #[error("{context}: {problem}")]
    Malformed { context: String, problem: Malformed },
    #[error("metadata key '{key}' appears more than once")]
    DuplicateKey { key: String },
    /// A typed getter found the key holding another type.
    #[error("metadata '{key}': expected {expected}, found {found}")]
    WrongType {
        key: String,
        expected: &'static str,
        found: String,
    },
    #[error(
        "metadata 'general.alignment': expected a non-zero power of two of type U32, found {found}"
    )]
    BadAlignment { found: String },
    #[error("tensor '{name}' appears more than once")]
    DuplicateTensor { name: String },
    #[error("tensor '{name}': {problem}")]
    Tensor {
        name: String,
        problem: TensorProblem,
    },
}

fn version_hint(found: u32) -> &'static str {
    if found == 1 {
        " (version 1 stored 32-bit counts and is obsolete; convert the model again with a current llama.cpp)"
    } else if (2..=3).contains(&found.swap_bytes()) {
        " (this looks like a big-endian file; herd reads little-endian GGUF only)"
    } else {
        ""
    }
}

/// Bytes that do not parse as GGUF. Offsets are from the start of the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("needs {needed} bytes at offset {at} but only {left} remain (is the file truncated?)")]
    Truncated { at: u64, needed: u64, left: u64 },
    #[error("{what} {count} at offset {at} needs at least {min_bytes} bytes per item, more than the {left} bytes left")]
    TooLong {
        what: &'static str,
        count: u64,
        min_bytes: u64,
        at: u64,
        left: u64,
    },
    #[error("the string at offset {at} is not valid UTF-8")]
    BadUtf8 { at: u64 },
    #[error("unknown value type id {id} at offset {at}, expected 0 to 12")]
    UnknownValueType { id: u32, at: u64 },
    #[error("bool byte {found} at offset {at} is neither 0 nor 1")]
    BadBool { found: u8, at: u64 },
    #[error("arrays nested deeper than {max} levels at offset {at}")]
    TooDeep { max: usize, at: u64 },
}

/// A tensor info that parses but describes an impossible tensor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TensorProblem {
    #[error("has {n_dims} dimensions, expected 1 to 4")]
    DimCount { n_dims: u32 },
    #[error("shape {dims:?} has a zero-sized dimension, expected every dimension > 0")]
    ZeroDim { dims: Vec<u64> },
    #[error("shape {dims:?} of type {dtype} overflows a 64-bit element or byte count")]
    TooLarge { dims: Vec<u64>, dtype: DType },
    #[error(
        "unknown tensor type id {id}, expected one herd supports ({})",
        supported_types()
    )]
    UnknownType { id: u32 },
    #[error(
        "row length {row_len} (dims[0]) is not a multiple of the {dtype} block length {block_len}"
    )]
    RowNotBlockMultiple {
        row_len: u64,
        dtype: DType,
        block_len: u64,
    },
    #[error("offset {offset} is not a multiple of the alignment {alignment}")]
    MisalignedOffset { offset: u64, alignment: u64 },
    #[error(
        "data at file bytes {start}..{end} extends past the end of the file ({file_size} bytes)"
    )]
    OutOfBounds {
        start: u64,
        end: u64,
        file_size: u64,
    },
    /// A tensor of `Gguf::from_parts` whose source holds another number of bytes than its
    /// shape and type need (`None`: a mapped range outside its file).
    #[error("{}", source_size(*.expected, *.found))]
    SourceSize { expected: u64, found: Option<u64> },
    #[error(
        "data at offsets {start}..{end} overlaps tensor '{other}' at {other_start}..{other_end}"
    )]
    Overlap {
        start: u64,
        end: u64,
        other: String,
        other_start: u64,
        other_end: u64,
    },
}

fn source_size(expected: u64, found: Option<u64>) -> String {
    match found {
        Some(n) => format!("its data holds {n} bytes, expected {expected} for its shape and type"),
        None => format!("its data range lies outside its file, expected {expected} bytes"),
    }
}

fn supported_types() -> String {
    let names: Vec<String> = DType::ALL
        .iter()
        .map(|t| format!("{} = {}", t.name(), t.ggml_id()))
        .collect();
    names.join(", ")
}
