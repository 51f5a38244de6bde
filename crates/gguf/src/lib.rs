//! herd gguf
