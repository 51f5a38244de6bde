//! herd's compute kernels: tensor element types and their block layouts, dot products and
//! matrix products over them, elementwise ops, and the thread pool. Slices in, slices out: no
//! I/O, no knowledge of models or files.

pub mod dtype;

pub use dtype::DType;
