//! herd's compute kernels: tensor element types and their block layouts, dot products and
//! matrix products over them, elementwise ops, and the thread pool. Slices in, slices out: no
//! I/O, no knowledge of models or files.

// dtype.rs is frozen (its numbers are the catalogue every crate shares), and predates the
// Rust 1.89 this crate needs for AVX-512, whose clippy prefers `is_multiple_of`.
pub mod dtype;
pub mod matmul;
pub mod ops;
pub mod pool;
pub mod quant;
pub mod simd;

pub use dtype::DType;
pub use matmul::{matmul, matmul_with, MatRef, MatmulScratch, Precision};
pub use pool::ThreadPool;
pub use quant::{dequantize_row, dot_f32, quantize_row, vec_dot, vec_dot_type, QuantError};
pub use simd::{Kernels, Level};
