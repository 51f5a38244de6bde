//! Real vocabularies against llama.cpp's own test vectors: the six vocabulary-only GGUF files of
//! ../shared/testdata/vocab (every string of each `.inp` must give exactly the ids on the same
//! line of its `.out`), and the default model's prompts (smollm2/reference.json, with the model
//! file from HERD_TEST_MODEL). Without the data, each test prints why it skipped.

use std::path::{Path, PathBuf};

use herd_gguf::Gguf;
use herd_tokenizer::{LoadOptions, StreamDecoder, Tokenizer};

const FAMILIES: &[&str] = &[
    "llama-bpe",
    "llama-spm",
    "qwen2",
    "gpt-2",
    "phi-3",
    "starcoder",
];

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata")
}

fn load(path: &Path) -> Tokenizer {
    let g = Gguf::open(path).unwrap_or_else(|e| panic!("{e}"));
    Tokenizer::from_gguf(&g, &LoadOptions::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// (text, expected ids) pairs.
type Cases = Vec<(String, Vec<u32>)>;

/// The tokenizer and test pairs of one family; None when the files are absent.
fn cases(family: &str) -> Option<(Tokenizer, Cases)> {
    let dir = testdata().join("vocab");
    let gguf = dir.join(format!("ggml-vocab-{family}.gguf"));
    if !gguf.exists() {
        eprintln!("skipped {family}: {} is absent", gguf.display());
        return None;
    }
    let inp = std::fs::read_to_string(dir.join(format!("ggml-vocab-{family}.gguf.inp"))).unwrap();
    let out = std::fs::read_to_string(dir.join(format!("ggml-vocab-{family}.gguf.out"))).unwrap();
    let mut texts: Vec<&str> = inp.split("\n__ggml_vocab_test__\n").collect();
    // The file ends with a separator, which leaves one empty string after it.
    assert_eq!(
        texts.pop(),
        Some(""),
        "{family}: .inp should end with a separator"
    );
    let expected: Vec<Vec<u32>> = out
        .lines()
        .map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect())
        .collect();
    assert_eq!(
        texts.len(),
        expected.len(),
        "{family}: .inp and .out disagree on the count"
    );
    let pairs = texts.into_iter().map(str::to_owned).zip(expected).collect();
    Some((load(&gguf), pairs))
}

#[test]
fn every_family_matches_llama_cpp_test_vectors() {
    let mut failures = Vec::new();
    let mut n_checked = 0;
    for family in FAMILIES {
        let Some((tok, pairs)) = cases(family) else {
            continue;
        };
        for (i, (text, expected)) in pairs.iter().enumerate() {
            let got = tok.encode(text, false, false);
            n_checked += 1;
            if &got != expected {
                failures.push(format!(
                    "{family} #{i} {text:?}\n  expected {expected:?}\n  got      {got:?}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n_checked} strings differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn decoding_gives_back_every_test_string() {
    for family in FAMILIES {
        let Some((tok, pairs)) = cases(family) else {
            continue;
        };
        for (text, ids) in &pairs {
            assert_eq!(&tok.decode(ids), text, "{family}: decode");
            // Streaming, one token at a time, gives the same text.
            let mut stream = StreamDecoder::new();
            let mut streamed: String = ids.iter().map(|&id| stream.push(&tok, id)).collect();
            streamed.push_str(&stream.finish());
            assert_eq!(&streamed, text, "{family}: stream");
        }
    }
}

/// What a family's vocabulary says about itself.
#[derive(Debug, PartialEq)]
struct Meta<'a> {
    model: &'a str,
    pre: &'a str,
    adds_bos: bool,
    bos_eos: (Option<u32>, Option<u32>),
    eog: Vec<u32>,
}

#[test]
fn family_metadata() {
    let meta = |model, pre, adds_bos, bos: u32, eos: u32, eog: &[u32]| Meta {
        model,
        pre,
        adds_bos,
        bos_eos: (Some(bos), Some(eos)),
        eog: eog.to_vec(),
    };
    let expected = [
        (
            "llama-bpe",
            meta("gpt2", "llama-bpe", true, 128000, 128001, &[128001, 128009]),
        ),
        ("llama-spm", meta("llama", "default", true, 1, 2, &[2])),
        (
            "qwen2",
            meta("gpt2", "qwen2", false, 151643, 151643, &[151643, 151645]),
        ),
        (
            "gpt-2",
            meta("gpt2", "gpt-2", false, 50256, 50256, &[50256]),
        ),
        (
            "phi-3",
            meta("llama", "default", true, 1, 32000, &[32000, 32007]),
        ),
        ("starcoder", meta("gpt2", "starcoder", false, 0, 0, &[0])),
    ];
    for (family, want) in expected {
        let Some((tok, _)) = cases(family) else {
            continue;
        };
        let got = Meta {
            model: if tok.model_name() == "gpt2" {
                "gpt2"
            } else {
                "llama"
            },
            pre: if tok.pre_name() == want.pre {
                want.pre
            } else {
                "(other)"
            },
            adds_bos: tok.adds_bos(),
            bos_eos: (tok.bos_id(), tok.eos_id()),
            eog: tok.eog_ids().to_vec(),
        };
        assert_eq!(got, want, "{family}");
    }
}

#[test]
fn special_tokens_in_real_vocabularies() {
    let Some((tok, _)) = cases("llama-bpe") else {
        return;
    };
    let text = "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>";
    let ids = tok.encode(text, true, true);
    assert_eq!(ids[..3], [128000, 128006, 882]);
    assert_eq!(ids.last(), Some(&128009));
    assert_eq!(tok.decode_special(&ids), format!("<|begin_of_text|>{text}"));
    assert_eq!(tok.decode(&ids), "user\n\nHi");
    // As plain text, the markers are ordinary characters.
    let plain = tok.encode(text, false, false);
    assert!(!plain.contains(&128006) && !plain.contains(&128009));
    assert_eq!(tok.decode(&plain), text);

    let Some((spm, _)) = cases("llama-spm") else {
        return;
    };
    // SentencePiece: BOS by default, and a space before the text.
    assert_eq!(spm.encode("Hello", false, true), [1, 15043]);
    assert_eq!(spm.decode(&[1, 15043]), "Hello");
    assert_eq!(spm.encode("</s>", true, false), [2]);

    let Some((phi3, _)) = cases("phi-3") else {
        return;
    };
    // Phi-3's special tokens swallow the whitespace after them, as in llama.cpp.
    let ids = phi3.encode("<|user|>\nHello<|end|>\n<|assistant|>", true, true);
    assert_eq!(ids, [1, 32010, 15043, 32007, 32001]);
}

#[test]
fn default_model_prompts_match_llama_cpp() {
    let Some(path) = std::env::var_os("HERD_TEST_MODEL") else {
        eprintln!(
            "skipped: HERD_TEST_MODEL is not set (point it at SmolLM2-135M-Instruct.Q4_1.gguf)"
        );
        return;
    };
    let reference = testdata().join("smollm2/reference.json");
    if !reference.exists() {
        eprintln!("skipped: {} is absent", reference.display());
        return;
    }
    let tok = load(Path::new(&path));
    assert_eq!(
        (tok.model_name(), tok.pre_name(), tok.adds_bos()),
        ("gpt2", "smollm", false)
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&reference).unwrap()).unwrap();
    let cases = json.as_array().expect("reference.json is a list");
    assert!(!cases.is_empty());
    for case in cases {
        let prompt = case["prompt"].as_str().unwrap();
        let expected: Vec<u32> = case["token_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(tok.encode(prompt, true, true), expected, "{prompt:?}");
        assert_eq!(tok.decode_special(&expected), prompt);
    }
    assert!(tok.is_eog(2), "<|im_end|> ends generation");
}
