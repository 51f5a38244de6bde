//! herd engine
