//! herd command line
fn main() {}
