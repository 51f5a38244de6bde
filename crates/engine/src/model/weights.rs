//! Weights as views into the memory-mapped GGUF file: matrices stay in their stored (quantized)
//! form and are never copied; small vectors (norm gains) are dequantized to f32 once at load.

use std::sync::Arc;

use herd_gguf::Gguf;
use herd_kernels::quant::dequantize_row;
use herd_kernels::{DType, MatRef};

use crate::error::{EngineError, Result};

/// A (rows, cols) weight matrix stored in the model file: a whole tensor, or one expert's
/// slice of a 3-D expert tensor.
#[derive(Clone)]
pub struct Weight {
    file: Arc<Gguf>,
    tensor_idx: usize,
    /// Where the matrix starts in the tensor's bytes, and how many it takes.
    bytes: std::ops::Range<usize>,
    pub dtype: DType,
    pub rows: usize,
    pub cols: usize,
}

impl Weight {
    pub fn mat(&self) -> MatRef<'_> {
        let info = &self.file.tensors()[self.tensor_idx];
        MatRef { dtype: self.dtype, rows: self.rows, cols: self.cols, data: &self.file.tensor_data(info)[self.bytes.clone()] }
    }

    /// Dequantizes row `r` into `out` (cols).
    pub fn row_f32(&self, r: usize, out: &mut [f32]) {
        dequantize_row(self.dtype, self.mat().row(r), out);
    }

    pub fn name(&self) -> &str {
        &self.file.tensors()[self.tensor_idx].name
    }
}

/// Looks up tensors by name and checks their shapes against the model's hyperparameters.
pub struct WeightLoader<'a> {
    pub file: &'a Arc<Gguf>,
}

impl WeightLoader<'_> {
    fn error(&self, message: String) -> EngineError {
        EngineError::Model { path: self.file.path().to_path_buf(), message }
    }

    pub fn has(&self, name: &str) -> bool {
        self.file.tensor(name).is_some()
    }

    /// The matrix `name`, which must be (rows, cols): GGUF dims [cols, rows].
    pub fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Weight> {
        Ok(self.stacked(name, &[cols as u64, rows as u64], rows, cols)?.remove(0))
    }

    /// The matrix `name` when the file has it.
    pub fn matrix_opt(&self, name: &str, rows: usize, cols: usize) -> Result<Option<Weight>> {
        if self.has(name) {
            self.matrix(name, rows, cols).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The `n` (rows, cols) matrices of the 3-D expert tensor `name`: GGUF dims [cols, rows, n].
    pub fn experts(&self, name: &str, n: usize, rows: usize, cols: usize) -> Result<Vec<Weight>> {
        self.stacked(name, &[cols as u64, rows as u64, n as u64], rows, cols)
    }

    /// The (rows, cols) matrices a tensor of `dims` stacks, one after another.
    fn stacked(&self, name: &str, dims: &[u64], rows: usize, cols: usize) -> Result<Vec<Weight>> {
        let tensor_idx = self
            .file
            .tensors()
            .iter()
            .position(|t| t.name == name)
            .ok_or_else(|| self.error(format!("missing tensor '{name}'")))?;
        let info = &self.file.tensors()[tensor_idx];
        if info.dims != dims {
            return Err(self.error(format!("tensor '{name}': dims {:?}, expected {dims:?}", info.dims)));
        }
        if !DType::WEIGHTS.contains(&info.dtype) {
            return Err(self.error(format!("tensor '{name}': type {} cannot be used as a weight matrix", info.dtype)));
        }
        let row_bytes = info.dtype.bytes_for(cols as u64).ok_or_else(|| self.error(format!("tensor '{name}': rows of {cols} are not whole {} blocks", info.dtype)))? as usize;
        let size = rows * row_bytes;
        let n = dims.get(2).map_or(1, |&n| n as usize);
        Ok((0..n).map(|e| Weight { file: Arc::clone(self.file), tensor_idx, bytes: e * size..(e + 1) * size, dtype: info.dtype, rows, cols }).collect())
    }

    /// The vector `name` when the file has it.
    pub fn vector_opt(&self, name: &str, len: usize) -> Result<Option<Vec<f32>>> {
        if self.has(name) {
            self.vector(name, len).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The vector `name` of `len` values, as f32.
    pub fn vector(&self, name: &str, len: usize) -> Result<Vec<f32>> {
        let info = self.file.tensor(name).ok_or_else(|| self.error(format!("missing tensor '{name}'")))?;
        if info.dims != [len as u64] {
            return Err(self.error(format!("tensor '{name}': dims {:?}, expected [{len}]", info.dims)));
        }
        if !matches!(info.dtype, DType::F32 | DType::F16 | DType::BF16) {
            return Err(self.error(format!("tensor '{name}': type {}, expected F32, F16 or BF16", info.dtype)));
        }
        let mut out = vec![0.0; len];
        dequantize_row(info.dtype, self.file.tensor_data(info), &mut out);
        Ok(out)
    }
}
