//! Opens a GGUF file (versions 2 and 3), checks all of it up front, and hands out metadata and
//! zero-copy tensor bytes. It knows no key but `general.alignment`; what the keys mean is the
//! engine's business.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use herd_kernels::DType;
use memmap2::Mmap;

use crate::cursor::Cursor;
use crate::error::{ErrorKind, GgufError, Malformed, TensorProblem};
use crate::value::{Array, Value, ValueType};

pub const MAGIC: [u8; 4] = *b"GGUF";
/// The data-section alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
pub const ALIGNMENT_KEY: &str = "general.alignment";
/// ggml tensors have at most four dimensions.
pub const MAX_DIMS: usize = 4;
/// Real files nest arrays at most once; the bound keeps a crafted file from recursing deeply.
pub const MAX_ARRAY_DEPTH: usize = 8;

// The fewest bytes a metadata entry (key length, type, a one-byte value) and a tensor info
// (name length, n_dims, one dim, type, offset) can take; used to bound the header's counts.
const MIN_KV_BYTES: usize = 8 + 4 + 1;
const MIN_TENSOR_INFO_BYTES: usize = 8 + 4 + 8 + 4 + 8;

/// One tensor as the file describes it. Sizes are validated against the file when it is opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    /// GGUF order: `dims[0]` is the row length (contiguous in memory), the last is the slowest.
    pub dims: Vec<u64>,
    pub dtype: DType,
    /// Relative to the start of the data section; a multiple of the file's alignment.
    pub offset: u64,
    pub n_elements: u64,
    pub n_bytes: u64,
}

enum Storage {
    Mapped(Mmap),
    Owned(Vec<u8>),
    /// A model assembled from other files (`Gguf::from_parts`): one source per tensor, in
    /// tensor order; tensor offsets are where each would lie in a written file.
    Parts(Vec<TensorSource>),
}

/// Where one tensor of a `Gguf::from_parts` model keeps its bytes.
pub enum TensorSource {
    /// A byte range of a memory-mapped file shared by many tensors (never copied).
    Mapped { map: Arc<Mmap>, range: Range<usize> },
    /// Bytes computed by the caller (a transformed or stacked tensor).
    Owned(Vec<u8>),
}

impl TensorSource {
    /// The bytes, or `None` when a mapped range does not lie inside its map.
    fn bytes(&self) -> Option<&[u8]> {
        match self {
            TensorSource::Mapped { map, range } => map.get(range.clone()),
            TensorSource::Owned(vec) => Some(vec),
        }
    }
}

/// One tensor of a `Gguf::from_parts` model, as a GGUF tensor info would describe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    /// GGUF order: `dims[0]` is the row length.
    pub dims: Vec<u64>,
    pub dtype: DType,
}

/// A parsed GGUF file. Metadata is decoded into owned values; tensor data stays in the map.
pub struct Gguf {
    path: PathBuf,
    /// `path` as text, for error messages.
    name: String,
    storage: Storage,
    version: u32,
    alignment: u64,
    data_offset: u64,
    metadata: Vec<(String, Value)>,
    tensors: Vec<TensorInfo>,
    tensor_idx: HashMap<String, usize>,
}

/// What parsing produces, before it is joined with the storage it borrowed from.
struct Parsed {
    version: u32,
    alignment: u64,
    data_offset: u64,
    metadata: Vec<(String, Value)>,
    tensors: Vec<TensorInfo>,
    tensor_idx: HashMap<String, usize>,
}

impl Gguf {
    /// Memory-maps `path` and validates it. Errors name the path as given.
    pub fn open(path: &Path) -> Result<Gguf, GgufError> {
        let name = path.display().to_string();
        let io = |e| GgufError::new(&name, ErrorKind::Io(e));
        let file = File::open(path).map_err(io)?;
        // SAFETY: the map is read-only and private to this process. As with every mmap-based
        // loader, another process truncating or rewriting the file while it is open is outside
        // what we can defend against; herd's own writer replaces files by rename, never in place.
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        Gguf::build(path.to_owned(), name, Storage::Mapped(map))
    }

    /// Parses a file held in memory; `name` stands in for the path in errors. Tensor data is
    /// then only as aligned as the `Vec`'s allocation, whereas a mapped file is page-aligned.
    pub fn from_bytes(name: &str, bytes: Vec<u8>) -> Result<Gguf, GgufError> {
        Gguf::build(PathBuf::from(name), name.to_owned(), Storage::Owned(bytes))
    }

    /// A model assembled in memory from metadata and tensors held elsewhere (another format's
    /// mapped files, or buffers), so everything that reads GGUF reads it unchanged. The same
    /// checks as `open` apply: keys and tensor names unique, `general.alignment` valid, shapes
    /// of 1 to 4 non-zero dims with whole blocks per row, and each source exactly the bytes its
    /// shape and type need. `path` names the model in errors and in `path()`; the version is 3
    /// and tensor offsets are those a written file would have.
    pub fn from_parts(
        path: &Path,
        metadata: Vec<(String, Value)>,
        tensors: Vec<(TensorSpec, TensorSource)>,
    ) -> Result<Gguf, GgufError> {
        let name = path.display().to_string();
        let err = |kind| GgufError::new(&name, kind);
        let mut seen = HashSet::with_capacity(metadata.len());
        for (key, value) in &metadata {
            if !seen.insert(key.as_str()) {
                return Err(err(ErrorKind::DuplicateKey { key: key.clone() }));
            }
            if let Value::Array(a) = value {
                if !a.is_consistent() {
                    return Err(err(ErrorKind::WrongType {
                        key: key.clone(),
                        expected: "an array whose items all have its element type",
                        found: value.describe(),
                    }));
                }
            }
        }
        let alignment = match metadata.iter().find(|(k, _)| k == ALIGNMENT_KEY) {
            None => DEFAULT_ALIGNMENT,
            Some((_, Value::U32(a))) if a.is_power_of_two() => u64::from(*a),
            Some((_, other)) => {
                return Err(err(ErrorKind::BadAlignment {
                    found: other.describe(),
                }))
            }
        };
        let mut infos = Vec::with_capacity(tensors.len());
        let mut sources = Vec::with_capacity(tensors.len());
        let mut tensor_idx = HashMap::with_capacity(tensors.len());
        let mut offset = 0u64;
        for (idx, (spec, source)) in tensors.into_iter().enumerate() {
            let (n_elements, n_bytes) =
                check_shape(&spec.name, &spec.dims, spec.dtype).map_err(err)?;
            let found = source.bytes().map(|b| b.len() as u64);
            if found != Some(n_bytes) {
                let problem = TensorProblem::SourceSize { expected: n_bytes, found };
                return Err(err(tensor_err(&spec.name, problem)));
            }
            if tensor_idx.insert(spec.name.clone(), idx).is_some() {
                return Err(err(ErrorKind::DuplicateTensor { name: spec.name }));
            }
            infos.push(TensorInfo {
                name: spec.name,
                dims: spec.dims,
                dtype: spec.dtype,
                offset,
                n_elements,
                n_bytes,
            });
            sources.push(source);
            let end = offset.checked_add(n_bytes).map(|e| e.checked_next_multiple_of(alignment));
            offset = end.flatten().ok_or_else(|| {
                err(ErrorKind::Malformed {
                    context: "tensors".into(),
                    problem: Malformed::TooLong {
                        what: "total tensor bytes",
                        count: offset,
                        min_bytes: n_bytes,
                        at: 0,
                        left: 0,
                    },
                })
            })?;
        }
        Ok(Gguf {
            path: path.to_owned(),
            name,
            storage: Storage::Parts(sources),
            version: 3,
            alignment,
            data_offset: 0,
            metadata,
            tensors: infos,
            tensor_idx,
        })
    }

    fn build(path: PathBuf, name: String, storage: Storage) -> Result<Gguf, GgufError> {
        let bytes = match &storage {
            Storage::Mapped(map) => &map[..],
            Storage::Owned(vec) => &vec[..],
            Storage::Parts(_) => unreachable!("parts are assembled by from_parts, never parsed"),
        };
        let p = parse(bytes).map_err(|kind| GgufError::new(&name, kind))?;
        Ok(Gguf {
            path,
            name,
            storage,
            version: p.version,
            alignment: p.alignment,
            data_offset: p.data_offset,
            metadata: p.metadata,
            tensors: p.tensors,
            tensor_idx: p.tensor_idx,
        })
    }

    /// The whole file's bytes; empty for a model assembled from parts, which has no file.
    fn bytes(&self) -> &[u8] {
        match &self.storage {
            Storage::Mapped(map) => map,
            Storage::Owned(vec) => vec,
            Storage::Parts(_) => &[],
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Where the tensor data section starts in the file.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// The file's size; for a model assembled from parts, the size its data section would
    /// have if written.
    pub fn file_size(&self) -> u64 {
        match &self.storage {
            Storage::Parts(_) => self.tensors.last().map_or(0, |t| t.offset + t.n_bytes),
            _ => self.bytes().len() as u64,
        }
    }

    /// All metadata in file order.
    pub fn metadata(&self) -> &[(String, Value)] {
        &self.metadata
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Any non-negative integer.
    pub fn get_u64(&self, key: &str) -> Result<Option<u64>, GgufError> {
        self.get_as(key, "a non-negative integer", Value::as_u64)
    }

    /// Any integer or float.
    pub fn get_f64(&self, key: &str) -> Result<Option<f64>, GgufError> {
        self.get_as(key, "a number", Value::as_f64)
    }

    pub fn get_str(&self, key: &str) -> Result<Option<&str>, GgufError> {
        self.get_as(key, "a string", Value::as_str)
    }

    pub fn get_bool(&self, key: &str) -> Result<Option<bool>, GgufError> {
        self.get_as(key, "a bool", Value::as_bool)
    }

    pub fn get_str_array(&self, key: &str) -> Result<Option<Vec<&str>>, GgufError> {
        self.get_as(key, "an array of strings", |v| {
            let a = v.as_array().filter(|a| a.elem_type == ValueType::String)?;
            a.items.iter().map(Value::as_str).collect()
        })
    }

    pub fn get_f32_array(&self, key: &str) -> Result<Option<Vec<f32>>, GgufError> {
        self.get_as(key, "an array of F32", |v| {
            let a = v.as_array().filter(|a| a.elem_type == ValueType::F32)?;
            a.items
                .iter()
                .map(|item| match *item {
                    Value::F32(x) => Some(x),
                    _ => None,
                })
                .collect()
        })
    }

    /// An array of any integer type whose items all fit in an i32.
    pub fn get_i32_array(&self, key: &str) -> Result<Option<Vec<i32>>, GgufError> {
        const EXPECTED: &str = "an array of integers that fit in I32";
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let wrong = |found: String| {
            self.error(ErrorKind::WrongType {
                key: key.to_owned(),
                expected: EXPECTED,
                found,
            })
        };
        let a = match v.as_array() {
            Some(a) if is_integer(a.elem_type) => a,
            _ => return Err(wrong(v.describe())),
        };
        let mut out = Vec::with_capacity(a.items.len());
        for (idx, item) in a.items.iter().enumerate() {
            match item.as_i64().and_then(|x| i32::try_from(x).ok()) {
                Some(x) => out.push(x),
                None => return Err(wrong(format!("{} at item {idx}", item.describe()))),
            }
        }
        Ok(Some(out))
    }

    fn get_as<'a, T>(
        &'a self,
        key: &str,
        expected: &'static str,
        convert: impl FnOnce(&'a Value) -> Option<T>,
    ) -> Result<Option<T>, GgufError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        match convert(v) {
            Some(x) => Ok(Some(x)),
            None => Err(self.error(ErrorKind::WrongType {
                key: key.to_owned(),
                expected,
                found: v.describe(),
            })),
        }
    }

    /// An error about this file, for callers that find a problem the reader could not (a missing
    /// key, a tensor of the wrong shape) and want the same `<file>: <what>` form.
    pub fn error(&self, kind: ErrorKind) -> GgufError {
        GgufError::new(&self.name, kind)
    }

    /// All tensors in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_idx.get(name).map(|&idx| &self.tensors[idx])
    }

    /// The tensor's bytes, straight from the map. Opening checked that every tensor of this
    /// file lies inside it.
    ///
    /// # Panics
    /// If `t` came from another file and does not fit inside this one.
    pub fn tensor_data(&self, t: &TensorInfo) -> &[u8] {
        if let Storage::Parts(sources) = &self.storage {
            // Offsets grow with the index, so the info's offset finds its source.
            let found = self.tensors.binary_search_by_key(&t.offset, |info| info.offset).ok();
            let bytes = found
                .filter(|&idx| self.tensors[idx] == *t)
                .and_then(|idx| sources[idx].bytes());
            return bytes
                .unwrap_or_else(|| panic!("tensor '{}' is not a tensor of {}", t.name, self.name));
        }
        let range = || {
            let start = usize::try_from(self.data_offset.checked_add(t.offset)?).ok()?;
            let end = start.checked_add(usize::try_from(t.n_bytes).ok()?)?;
            self.bytes().get(start..end)
        };
        range().unwrap_or_else(|| panic!("tensor '{}' is not a tensor of {}", t.name, self.name))
    }
}

impl fmt::Debug for Gguf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gguf")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("n_metadata", &self.metadata.len())
            .field("n_tensors", &self.tensors.len())
            .field("file_size", &self.file_size())
            .finish()
    }
}

fn is_integer(t: ValueType) -> bool {
    use ValueType::*;
    matches!(t, U8 | I8 | U16 | I16 | U32 | I32 | U64 | I64)
}

/// The fewest bytes one encoded value of type `t` takes (an array: its type and count).
fn min_encoded_len(t: ValueType) -> usize {
    use ValueType::*;
    match t {
        U8 | I8 | Bool => 1,
        U16 | I16 => 2,
        U32 | I32 | F32 => 4,
        U64 | I64 | F64 | String => 8,
        Array => 4 + 8,
    }
}

fn malformed(context: impl Into<String>, problem: Malformed) -> ErrorKind {
    ErrorKind::Malformed {
        context: context.into(),
        problem,
    }
}

fn tensor_err(name: &str, problem: TensorProblem) -> ErrorKind {
    ErrorKind::Tensor {
        name: name.to_owned(),
        problem,
    }
}

fn parse(bytes: &[u8]) -> Result<Parsed, ErrorKind> {
    let mut c = Cursor::new(bytes);
    let magic = c.take(4).map_err(|p| malformed("header", p))?;
    if magic != MAGIC {
        return Err(ErrorKind::BadMagic {
            found: magic.to_vec(),
        });
    }
    let version = c.u32().map_err(|p| malformed("header", p))?;
    if !(2..=3).contains(&version) {
        return Err(ErrorKind::UnsupportedVersion { found: version });
    }
    // Both counts are bounded by the whole rest of the file; each section is then read with
    // bounds-checked reads, so neither can allocate more than the file could describe.
    let n_tensors = c
        .count("tensor count", MIN_TENSOR_INFO_BYTES)
        .map_err(|p| malformed("header", p))?;
    let n_kv = c
        .count("metadata count", MIN_KV_BYTES)
        .map_err(|p| malformed("header", p))?;

    let metadata = parse_metadata(&mut c, n_kv)?;
    let alignment = match metadata.iter().find(|(k, _)| k == ALIGNMENT_KEY) {
        None => DEFAULT_ALIGNMENT,
        Some((_, Value::U32(a))) if a.is_power_of_two() => u64::from(*a),
        Some((_, other)) => {
            return Err(ErrorKind::BadAlignment {
                found: other.describe(),
            })
        }
    };

    let mut tensors = Vec::with_capacity(n_tensors);
    let mut tensor_idx = HashMap::with_capacity(n_tensors);
    for idx in 0..n_tensors {
        let t = parse_tensor_info(&mut c, idx, alignment)?;
        if tensor_idx.insert(t.name.clone(), idx).is_some() {
            return Err(ErrorKind::DuplicateTensor { name: t.name });
        }
        tensors.push(t);
    }

    // The position is at most the file length and the alignment at most 2^31, so this cannot
    // overflow. With no tensors the padding may be missing, which is harmless.
    let data_offset = (c.pos() as u64).next_multiple_of(alignment);
    check_tensor_ranges(&tensors, data_offset, bytes.len() as u64)?;
    Ok(Parsed {
        version,
        alignment,
        data_offset,
        metadata,
        tensors,
        tensor_idx,
    })
}

fn parse_metadata(c: &mut Cursor<'_>, n_kv: usize) -> Result<Vec<(String, Value)>, ErrorKind> {
    let mut metadata = Vec::with_capacity(n_kv);
    let mut seen = HashSet::with_capacity(n_kv);
    for idx in 0..n_kv {
        let key = c
            .str()
            .map_err(|p| malformed(format!("metadata entry {idx} key"), p))?;
        let value = c
            .value_type()
            .and_then(|t| parse_value(c, t, 0))
            .map_err(|p| malformed(format!("metadata '{key}'"), p))?;
        if !seen.insert(key) {
            return Err(ErrorKind::DuplicateKey {
                key: key.to_owned(),
            });
        }
        metadata.push((key.to_owned(), value));
    }
    Ok(metadata)
}

/// `depth` is the number of arrays enclosing this value.
fn parse_value(c: &mut Cursor<'_>, t: ValueType, depth: usize) -> Result<Value, Malformed> {
    Ok(match t {
        ValueType::U8 => Value::U8(c.u8()?),
        ValueType::I8 => Value::I8(c.i8()?),
        ValueType::U16 => Value::U16(c.u16()?),
        ValueType::I16 => Value::I16(c.i16()?),
        ValueType::U32 => Value::U32(c.u32()?),
        ValueType::I32 => Value::I32(c.i32()?),
        ValueType::F32 => Value::F32(c.f32()?),
        ValueType::Bool => Value::Bool(c.bool()?),
        ValueType::String => Value::String(c.str()?.to_owned()),
        ValueType::U64 => Value::U64(c.u64()?),
        ValueType::I64 => Value::I64(c.i64()?),
        ValueType::F64 => Value::F64(c.f64()?),
        ValueType::Array => {
            if depth >= MAX_ARRAY_DEPTH {
                return Err(Malformed::TooDeep {
                    max: MAX_ARRAY_DEPTH,
                    at: c.pos() as u64,
                });
            }
            let elem_type = c.value_type()?;
            let n = c.count("array length", min_encoded_len(elem_type))?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(parse_value(c, elem_type, depth + 1)?);
            }
            Value::Array(Array { elem_type, items })
        }
    })
}

fn parse_tensor_info(
    c: &mut Cursor<'_>,
    idx: usize,
    alignment: u64,
) -> Result<TensorInfo, ErrorKind> {
    let name = c
        .str()
        .map_err(|p| malformed(format!("tensor info {idx} name"), p))?;
    let context = || format!("tensor '{name}' info");
    let n_dims = c.u32().map_err(|p| malformed(context(), p))?;
    if !(1..=MAX_DIMS as u32).contains(&n_dims) {
        return Err(tensor_err(name, TensorProblem::DimCount { n_dims }));
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    for _ in 0..n_dims {
        dims.push(c.u64().map_err(|p| malformed(context(), p))?);
    }
    let type_id = c.u32().map_err(|p| malformed(context(), p))?;
    let offset = c.u64().map_err(|p| malformed(context(), p))?;

    if dims.contains(&0) {
        return Err(tensor_err(name, TensorProblem::ZeroDim { dims }));
    }
    let dtype = DType::from_ggml_id(type_id)
        .ok_or_else(|| tensor_err(name, TensorProblem::UnknownType { id: type_id }))?;
    let (n_elements, n_bytes) = check_shape(name, &dims, dtype)?;
    if offset % alignment != 0 {
        return Err(tensor_err(
            name,
            TensorProblem::MisalignedOffset { offset, alignment },
        ));
    }
    Ok(TensorInfo {
        name: name.to_owned(),
        dims,
        dtype,
        offset,
        n_elements,
        n_bytes,
    })
}

/// The element and byte counts of a tensor, after checking that its shape is one GGUF can hold:
/// 1 to 4 non-zero dims, whole blocks per row, counts that fit in 64 bits.
fn check_shape(name: &str, dims: &[u64], dtype: DType) -> Result<(u64, u64), ErrorKind> {
    if !(1..=MAX_DIMS).contains(&dims.len()) {
        let n_dims = dims.len() as u32;
        return Err(tensor_err(name, TensorProblem::DimCount { n_dims }));
    }
    if dims.contains(&0) {
        let dims = dims.to_vec();
        return Err(tensor_err(name, TensorProblem::ZeroDim { dims }));
    }
    let block_len = dtype.block_len() as u64;
    if dims[0] % block_len != 0 {
        let problem = TensorProblem::RowNotBlockMultiple {
            row_len: dims[0],
            dtype,
            block_len,
        };
        return Err(tensor_err(name, problem));
    }
    dims.iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d))
        .and_then(|n_elements| Some((n_elements, dtype.bytes_for(n_elements)?)))
        .ok_or_else(|| {
            let dims = dims.to_vec();
            tensor_err(name, TensorProblem::TooLarge { dims, dtype })
        })
}

/// Every tensor's bytes lie inside the file, and no two tensors share a byte.
fn check_tensor_ranges(
    tensors: &[TensorInfo],
    data_offset: u64,
    file_size: u64,
) -> Result<(), ErrorKind> {
    for t in tensors {
        let start = data_offset.saturating_add(t.offset);
        let end = start.saturating_add(t.n_bytes);
        if end > file_size {
            return Err(tensor_err(
                &t.name,
                TensorProblem::OutOfBounds {
                    start,
                    end,
                    file_size,
                },
            ));
        }
    }
    // In bounds, so the ends below cannot overflow. Sorting by start leaves any overlap between
    // neighbours; ties sort by index so the error names the later tensor of the file.
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_unstable_by_key(|&idx| (tensors[idx].offset, idx));
    for pair in order.windows(2) {
        let (a, b) = (&tensors[pair[0]], &tensors[pair[1]]);
        let a_end = a.offset + a.n_bytes;
        if a_end > b.offset {
            let problem = TensorProblem::Overlap {
                start: b.offset,
                end: b.offset + b.n_bytes,
                other: a.name.clone(),
                other_start: a.offset,
                other_end: a_end,
            };
            return Err(tensor_err(&b.name, problem));
        }
    }
    Ok(())
}
