//! Every family against Hugging Face transformers, on the tiny random-weight fixtures of
//! ../shared/testdata/arch (float64 logits for three token sequences each; see its README):
//! with f32 products and an f32 KV cache, every expected top-10 logit and every last-position
//! logit within 1e-4 for the F32 file and 3e-2 for the F16 file (against `results.f16`); at
//! the default precision within 5e-2, with the argmax equal wherever the reference's top-two
//! margin exceeds that. Each fixture is built so that a missing feature moves the logits by
//! far more than these tolerances (its `checks.ablations_max_abs`).

mod common;


use herd_engine::model::Logits;
use herd_engine::session::Session;
use herd_engine::Model;
use herd_kernels::ThreadPool;
use serde_json::Value;

const FAMILIES: &[&str] = &["llama", "mistral", "mixtral", "qwen2", "qwen3", "qwen3moe", "gemma2", "gemma3", "phi3", "phi3-longrope"];

/// The largest difference between herd's logits and the reference's for one file, and the
/// positions whose argmax differs although the reference's margin exceeds `tol`.
fn compare(pool: &ThreadPool, model: &Model, expected: &Value, results: &str, exact: bool, tol: f64) -> (f64, Vec<String>) {
    let n_vocab = model.cfg().n_vocab;
    let mut worst = 0.0f64;
    let mut argmax_misses = Vec::new();
    for (s, seq) in expected["sequences"].as_array().unwrap().iter().enumerate() {
        let ids: Vec<u32> = seq.as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        let want = &expected["results"][results]["per_sequence"][s];
        // The context is the sequence: LongRoPE picks its factors by the context size, as
        // llama.cpp and `herd logits` do.
        let mut session = Session::with_precision(model, pool, Some(ids.len()), exact).unwrap();
        let logits = session.eval(&ids, Logits::From(0)).unwrap().to_vec();
        assert_eq!(logits.len(), ids.len() * n_vocab);
        for (p, top) in want["top10"].as_array().unwrap().iter().enumerate() {
            let row = &logits[p * n_vocab..(p + 1) * n_vocab];
            let top = top.as_array().unwrap();
            for pair in top {
                let (id, l) = (pair[0].as_u64().unwrap() as usize, pair[1].as_f64().unwrap());
                worst = worst.max((f64::from(row[id]) - l).abs());
            }
            let margin = top[0][1].as_f64().unwrap() - top[1][1].as_f64().unwrap();
            let argmax = (0..n_vocab).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
            if margin > tol && argmax as u64 != want["argmax"][p].as_u64().unwrap() {
                argmax_misses.push(format!("sequence {s} position {p}"));
            }
        }
        let last = &logits[(ids.len() - 1) * n_vocab..];
        for (got, l) in last.iter().zip(want["last_logits"].as_array().unwrap()) {
            worst = worst.max((f64::from(*got) - l.as_f64().unwrap()).abs());
        }
    }
    (worst, argmax_misses)
}

#[test]
fn every_family_matches_transformers() {
    let Some(dir) = common::testdata("arch") else { return };
    let pool = ThreadPool::with_all_cores();
    let mut failures = Vec::new();
    for family in FAMILIES {
        let expected: Value = serde_json::from_str(&std::fs::read_to_string(dir.join(family).join("expected.json")).unwrap()).unwrap();
        // Mistral's window is not in its GGUF (see the fixtures' README): the file can only
        // reproduce the model without it.
        let suffix = if *family == "mistral" { "_no_window" } else { "" };
        let f32_model = Model::load(&dir.join(family).join("model-f32.gguf")).unwrap_or_else(|e| panic!("{family}: {e}"));
        let f16_model = Model::load(&dir.join(family).join("model-f16.gguf")).unwrap_or_else(|e| panic!("{family}: {e}"));
        for (what, model, results, exact, tol) in [
            ("F32 file, f32", &f32_model, format!("f32{suffix}"), true, 1e-4),
            ("F16 file, f32", &f16_model, format!("f16{suffix}"), true, 3e-2),
            ("F32 file, default precision", &f32_model, format!("f32{suffix}"), false, 5e-2),
            ("F16 file, default precision", &f16_model, format!("f16{suffix}"), false, 5e-2),
        ] {
            let (worst, misses) = compare(&pool, model, &expected, &results, exact, tol);
            eprintln!("{family:14} {what:30} max |difference| {worst:.2e} (tolerance {tol:.0e}), argmax misses {}", misses.len());
            if worst > tol || !misses.is_empty() {
                failures.push(format!("{family}, {what}: max difference {worst:.3e} > {tol:.0e} or argmax differs at {misses:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
