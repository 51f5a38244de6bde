//! herd tokenizer
