//! Helpers shared by the engine's integration tests (each test binary uses some of them).
#![allow(dead_code)]

use std::path::PathBuf;

use herd_engine::generate::{generate, GenerateParams};
use herd_engine::sampler::SamplingParams;
use herd_engine::session::Session;
use herd_engine::Model;
use herd_kernels::ThreadPool;

/// The greedy continuation of `ids`, `n` tokens at most, as text.
pub fn greedy(model: &Model, pool: &ThreadPool, ids: &[u32], n: usize) -> String {
    let params = GenerateParams { max_tokens: n, sampling: SamplingParams { temperature: 0.0, ..Default::default() }, stop: vec![] };
    let mut session = Session::new(model, pool, Some(512)).unwrap();
    let mut text = String::new();
    generate(&mut session, ids, &params, &mut |piece| {
        text.push_str(piece);
        true
    })
    .unwrap();
    text
}

/// `../shared/testdata/REL`, or None (saying so) where the shared test data is absent.
pub fn testdata(rel: &str) -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata").join(rel);
    if p.exists() {
        Some(p)
    } else {
        eprintln!("skipped: {} is absent", p.display());
        None
    }
}
