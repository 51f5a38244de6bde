//! Builds GGUF files (versions 2 and 3, little-endian): metadata in the order added, tensors in
//! the order added, each tensor's data padded to the alignment. It writes only files the reader
//! accepts; misuse (a data length that does not match the shape) is a caller bug and panics.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use herd_kernels::DType;

use crate::reader::{ALIGNMENT_KEY, DEFAULT_ALIGNMENT, MAGIC, MAX_ARRAY_DEPTH, MAX_DIMS};
use crate::value::Value;

struct PendingTensor {
    name: String,
    dims: Vec<u64>,
    dtype: DType,
    data: Vec<u8>,
}

/// A GGUF file under construction, held in memory until `to_bytes` or `write`.
pub struct GgufWriter {
    version: u32,
    metadata: Vec<(String, Value)>,
    tensors: Vec<PendingTensor>,
}

impl GgufWriter {
    /// # Panics
    /// If `version` is not 2 or 3 (the two layouts are identical for little-endian files).
    pub fn new(version: u32) -> GgufWriter {
        assert!(
            (2..=3).contains(&version),
            "GGUF version {version} cannot be written, expected 2 or 3"
        );
        GgufWriter {
            version,
            metadata: Vec::new(),
            tensors: Vec::new(),
        }
    }

    /// Adds a metadata entry, or replaces the value of an existing key in place (GGUF forbids
    /// duplicate keys, and replacing keeps the file order stable).
    ///
    /// # Panics
    /// If an array's items do not all have its element type, if arrays nest deeper than the
    /// reader accepts, or if `general.alignment` is not a non-zero power of two U32.
    pub fn add(&mut self, key: &str, value: Value) -> &mut Self {
        if let Value::Array(a) = &value {
            assert!(
                a.is_consistent(),
                "metadata '{key}': array items do not all have type {}",
                a.elem_type
            );
            assert!(
                array_depth(&value) <= MAX_ARRAY_DEPTH,
                "metadata '{key}': arrays nest deeper than {MAX_ARRAY_DEPTH}"
            );
        }
        if key == ALIGNMENT_KEY {
            assert!(
                matches!(value, Value::U32(a) if a.is_power_of_two()),
                "metadata '{key}': expected a non-zero power of two of type U32, found {}",
                value.describe()
            );
        }
        match self.metadata.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value,
            None => self.metadata.push((key.to_owned(), value)),
        }
        self
    }

    /// Adds a tensor; `dims` in GGUF order (`dims[0]` is the row length).
    ///
    /// # Panics
    /// If the name was already added, the shape is not 1 to 4 non-zero dims with a row length
    /// that is a whole number of blocks, or `data.len()` is not `dtype.bytes_for(product)`.
    pub fn add_tensor(
        &mut self,
        name: &str,
        dims: &[u64],
        dtype: DType,
        data: Vec<u8>,
    ) -> &mut Self {
        assert!(
            !self.tensors.iter().any(|t| t.name == name),
            "tensor '{name}' added twice"
        );
        assert!(
            (1..=MAX_DIMS).contains(&dims.len()),
            "tensor '{name}': {} dims, expected 1 to 4",
            dims.len()
        );
        assert!(
            !dims.contains(&0),
            "tensor '{name}': zero-sized dimension in {dims:?}"
        );
        assert!(
            dims[0].is_multiple_of(dtype.block_len() as u64),
            "tensor '{name}': row length {} is not a multiple of the {dtype} block length",
            dims[0]
        );
        let n_bytes = dims
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d))
            .and_then(|n| dtype.bytes_for(n));
        assert_eq!(
            n_bytes,
            Some(data.len() as u64),
            "tensor '{name}': data length does not match shape {dims:?} of type {dtype}"
        );
        self.tensors.push(PendingTensor {
            name: name.to_owned(),
            dims: dims.to_vec(),
            dtype,
            data,
        });
        self
    }

    fn alignment(&self) -> u64 {
        match self.metadata.iter().find(|(k, _)| k == ALIGNMENT_KEY) {
            Some((_, Value::U32(a))) => u64::from(*a),
            _ => DEFAULT_ALIGNMENT,
        }
    }

    /// The whole file in memory.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out)
            .expect("writing to a Vec cannot fail");
        out
    }

    /// Writes the file beside `path` under a temporary name, syncs it, then renames it over
    /// `path`, so a reader never sees a half-written file.
    pub fn write(&self, path: &Path) -> io::Result<()> {
        let tmp = temp_path(path)?;
        let result = (|| {
            let mut w = BufWriter::new(File::create(&tmp)?);
            self.write_to(&mut w)?;
            let file = w.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        if result.is_err() {
            // The temp file is ours and useless now; failing to remove it changes nothing.
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Streams the file: header, metadata, tensor infos, padding, then each tensor's data
    /// padded to the alignment.
    pub fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        let alignment = self.alignment();
        let mut header = Vec::new();
        header.extend_from_slice(&MAGIC);
        header.extend_from_slice(&self.version.to_le_bytes());
        header.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        header.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (key, value) in &self.metadata {
            put_str(&mut header, key);
            header.extend_from_slice(&value.value_type().id().to_le_bytes());
            put_value(&mut header, value);
        }
        let mut offset = 0u64;
        for t in &self.tensors {
            put_str(&mut header, &t.name);
            header.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                header.extend_from_slice(&d.to_le_bytes());
            }
            header.extend_from_slice(&t.dtype.ggml_id().to_le_bytes());
            header.extend_from_slice(&offset.to_le_bytes());
            offset = (offset + t.data.len() as u64).next_multiple_of(alignment);
        }
        let zeros = vec![0u8; alignment as usize];
        let padding = |n: usize| &zeros[..(n as u64).next_multiple_of(alignment) as usize - n];
        w.write_all(&header)?;
        w.write_all(padding(header.len()))?;
        for t in &self.tensors {
            w.write_all(&t.data)?;
            w.write_all(padding(t.data.len()))?;
        }
        Ok(())
    }
}

fn temp_path(path: &Path) -> io::Result<PathBuf> {
    let Some(file_name) = path.file_name() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} names no file", path.display()),
        ));
    };
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    Ok(path.with_file_name(tmp_name))
}

fn array_depth(value: &Value) -> usize {
    match value {
        Value::Array(a) => 1 + a.items.iter().map(array_depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// The value's bytes without its type id (arrays carry their element type and count).
fn put_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::U8(v) => out.push(*v),
        Value::I8(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::Bool(v) => out.push(u8::from(*v)),
        Value::String(s) => put_str(out, s),
        Value::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::Array(a) => {
            out.extend_from_slice(&a.elem_type.id().to_le_bytes());
            out.extend_from_slice(&(a.items.len() as u64).to_le_bytes());
            for item in &a.items {
                put_value(out, item);
            }
        }
    }
}
