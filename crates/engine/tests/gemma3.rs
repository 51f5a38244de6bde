//! Gemma 3 270M (Q4_K_M, `herd pull gemma3-270m`) against ../shared/testdata/gemma3/reference.json:
//! token ids exact (BOS added), top-10 next-token logits near the float64 reference, greedy
//! continuations that start with the reference's confident text, and perplexity on the GPL
//! within 1% of llama.cpp's.
//!
//! The model comes from HERD_TEST_GEMMA3 (scripts/test sets it); without it these tests say
//! why and pass.

use std::path::PathBuf;

mod common;

use herd_engine::model::Logits;
use herd_engine::perplexity::perplexity;
use herd_engine::session::Session;
use herd_engine::Model;
use herd_kernels::ThreadPool;
use serde_json::Value;

fn setup() -> Option<(Model, Value)> {
    let Some(path) = std::env::var_os("HERD_TEST_GEMMA3") else {
        eprintln!("skipped: HERD_TEST_GEMMA3 is not set (scripts/test sets it)");
        return None;
    };
    let text = std::fs::read_to_string(common::testdata("gemma3/reference.json")?).unwrap();
    Some((Model::load(&PathBuf::from(path)).expect("the Gemma 3 model loads"), serde_json::from_str(&text).unwrap()))
}

#[test]
fn prompts_tokenize_score_and_continue_like_the_reference() {
    let Some((model, reference)) = setup() else { return };
    let pool = ThreadPool::with_all_cores();
    let mut worst = 0.0f64;
    for case in reference["cases"].as_array().unwrap() {
        let prompt = case["prompt"].as_str().unwrap();
        let want: Vec<u32> = case["token_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        let ids = model.tokenizer.encode(prompt, true, true);
        assert_eq!(ids, want, "token ids of {prompt:?}");

        let mut session = Session::new(&model, &pool, Some(512)).unwrap();
        let logits = session.eval(&ids, Logits::Last).unwrap();
        for pair in case["top10_logits_f64"].as_array().unwrap() {
            let (id, l) = (pair[0].as_u64().unwrap() as usize, pair[1].as_f64().unwrap());
            worst = worst.max((f64::from(logits[id]) - l).abs());
        }

        let text = common::greedy(&model, &pool, &ids, 16);
        let confident = case["confident_text"].as_str().unwrap();
        assert!(text.starts_with(confident), "{prompt:?}: {text:?} does not start with {confident:?}");
    }
    eprintln!("largest top-10 logit difference from the float64 reference: {worst:.4}");
    assert!(worst < 0.6, "top-10 logits {worst} from the float64 reference");
}

#[test]
fn perplexity_is_within_one_percent_of_llama_cpp() {
    let Some((model, reference)) = setup() else { return };
    let llama_cpp = reference["perplexity_gpl3_ctx512"]["llama_cpp"]["ppl"].as_f64().unwrap();
    let Some(path) = common::testdata("text/gpl-3.txt") else { return };
    let text = std::fs::read_to_string(path).unwrap();
    let pool = ThreadPool::with_all_cores();
    let ppl = perplexity(&model, &pool, &text, 512, &mut |_| {}).unwrap();
    eprintln!("perplexity {ppl:.4}, llama.cpp {llama_cpp}");
    assert!((ppl / llama_cpp - 1.0).abs() < 0.01, "perplexity {ppl} vs llama.cpp {llama_cpp}");
}
