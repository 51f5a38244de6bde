//! Vocabularies that are wrong in one way each, built in code: construction must fail with an
//! error that says what and where, never panic. Also the GGUF path: keys missing or of the
//! wrong type in a file written by the test.

use herd_gguf::{Gguf, GgufWriter, Value};
use herd_tokenizer::{LoadOptions, Tokenizer, TokenizerError, VocabConfig};

mod common;
use common::{bpe, spm};

fn build(cfg: VocabConfig) -> Result<Tokenizer, TokenizerError> {
    Tokenizer::new(cfg, &LoadOptions::default())
}

#[test]
fn fixtures_are_valid() {
    assert!(build(bpe()).is_ok());
    assert!(build(spm()).is_ok());
}

#[test]
fn each_defect_is_a_clear_error() {
    type Defect = (&'static str, fn() -> VocabConfig, &'static str);
    let cases: &[Defect] = &[
        (
            "empty vocabulary",
            || VocabConfig {
                tokens: vec![],
                ..bpe()
            },
            "the vocabulary is empty",
        ),
        (
            "unknown model",
            || VocabConfig {
                model: "bert".into(),
                ..bpe()
            },
            "unknown tokenizer model 'bert'",
        ),
        (
            "missing merges",
            || VocabConfig {
                merges: None,
                ..bpe()
            },
            "needs merges (tokenizer.ggml.merges)",
        ),
        (
            "merge of an unknown token",
            || VocabConfig {
                merges: Some(vec!["a b".into(), "a zz".into()]),
                ..bpe()
            },
            "merge 1 \"a zz\": token \"zz\" is not in the vocabulary",
        ),
        (
            "merge whose result is not a token",
            || VocabConfig {
                merges: Some(vec!["b c".into()]),
                ..bpe()
            },
            "merge 0 \"b c\": token \"bc\" is not in the vocabulary",
        ),
        (
            "merge without a separator",
            || VocabConfig {
                merges: Some(vec!["abc".into()]),
                ..bpe()
            },
            "merge 0 \"abc\": it has no space separating its two parts",
        ),
        (
            "empty merge",
            || VocabConfig {
                merges: Some(vec!["".into()]),
                ..bpe()
            },
            "merge 0 \"\"",
        ),
        (
            "scores too short",
            || VocabConfig {
                scores: Some(vec![0.0; 3]),
                ..spm()
            },
            "tokenizer.ggml.scores has 3 entries but tokenizer.ggml.tokens has 264",
        ),
        (
            "token types too long",
            || VocabConfig {
                token_types: Some(vec![1; 300]),
                ..bpe()
            },
            "tokenizer.ggml.token_type has 300 entries but tokenizer.ggml.tokens has 262",
        ),
        (
            "unknown token type",
            || {
                let mut c = bpe();
                c.token_types.as_mut().unwrap()[97] = 9;
                c
            },
            "token 97 (\"a\") has token type 9",
        ),
        (
            "BOS out of range",
            || VocabConfig {
                bos_id: Some(262),
                ..bpe()
            },
            "special token id bos = 262 is out of range: the vocabulary has 262 tokens",
        ),
        (
            "EOS out of range",
            || VocabConfig {
                eos_id: Some(u32::MAX),
                ..bpe()
            },
            "eos = 4294967295",
        ),
        (
            "unknown-token id out of range",
            || VocabConfig {
                unk_id: Some(1000),
                ..spm()
            },
            "unknown = 1000",
        ),
        (
            "padding id out of range",
            || VocabConfig {
                pad_id: Some(1000),
                ..spm()
            },
            "padding = 1000",
        ),
        (
            "EOT out of range",
            || VocabConfig {
                eot_id: Some(1000),
                ..bpe()
            },
            "eot = 1000",
        ),
        (
            "EOM out of range",
            || VocabConfig {
                eom_id: Some(1000),
                ..bpe()
            },
            "eom = 1000",
        ),
        (
            "unknown pre-tokenizer",
            || VocabConfig {
                pre: Some("no-such-family".into()),
                ..bpe()
            },
            "unknown pre-tokenizer 'no-such-family' (tokenizer.ggml.pre); herd knows 'default'",
        ),
        (
            "BOS asked for but not named",
            || VocabConfig {
                add_bos: Some(true),
                ..bpe()
            },
            "asks to add a bos token (tokenizer.ggml.add_bos_token) but names no bos token id",
        ),
        (
            "EOS asked for but not named",
            || VocabConfig {
                add_eos: Some(true),
                ..bpe()
            },
            "names no eos token id",
        ),
        (
            "malformed byte token",
            || {
                let mut c = spm();
                c.tokens[3] = "<0xZZ>".into();
                c
            },
            "token 3 (\"<0xZZ>\") has type 'byte' but its text is not of the form <0xHH>",
        ),
    ];
    for (what, cfg, message) in cases {
        match build(cfg()) {
            Ok(_) => panic!("{what}: built without error"),
            Err(e) => assert!(
                e.to_string().contains(message),
                "{what}: {e}\n  should contain: {message}"
            ),
        }
    }
}

#[test]
fn an_empty_merge_list_leaves_bytes_unmerged() {
    let tok = build(VocabConfig {
        merges: Some(vec![]),
        ..bpe()
    })
    .unwrap();
    assert_eq!(tok.encode("ab", false, false), [97, 98]);
}

#[test]
fn forcing_the_default_rules_loads_an_unknown_pre_tokenizer() {
    let cfg = VocabConfig {
        pre: Some("no-such-family".into()),
        ..bpe()
    };
    let tok = Tokenizer::new(
        cfg,
        &LoadOptions {
            force_default_pre: true,
        },
    )
    .unwrap();
    assert_eq!(tok.pre_name(), "default");
    assert_eq!(tok.encode("abc", false, false), [257]);
}

fn gguf(keys: Vec<(&str, Value)>) -> Gguf {
    let mut w = GgufWriter::new(3);
    for (k, v) in keys {
        w.add(k, v);
    }
    Gguf::from_bytes("fixture.gguf", w.to_bytes()).unwrap()
}

fn bpe_keys() -> Vec<(&'static str, Value)> {
    let cfg = bpe();
    vec![
        ("tokenizer.ggml.model", Value::from("gpt2")),
        ("tokenizer.ggml.pre", Value::from("gpt-2")),
        ("tokenizer.ggml.tokens", Value::string_array(cfg.tokens)),
        (
            "tokenizer.ggml.token_type",
            Value::i32_array(cfg.token_types.unwrap()),
        ),
        (
            "tokenizer.ggml.merges",
            Value::string_array(cfg.merges.unwrap()),
        ),
        ("tokenizer.ggml.eos_token_id", Value::U32(259)),
    ]
}

#[test]
fn gguf_vocabulary_loads() {
    let tok = Tokenizer::from_gguf(&gguf(bpe_keys()), &LoadOptions::default()).unwrap();
    assert_eq!(
        (tok.n_vocab(), tok.eos_id(), tok.bos_id()),
        (262, Some(259), None)
    );
    assert_eq!(tok.encode("abc<|end|>", true, true), [257, 259]);
}

#[test]
fn gguf_problems_name_the_key() {
    let without = |key: &str| {
        bpe_keys()
            .into_iter()
            .filter(|(k, _)| *k != key)
            .collect::<Vec<_>>()
    };
    let with = |key: &'static str, v: Value| {
        let mut keys = without(key);
        keys.push((key, v));
        keys
    };
    let cases: Vec<(Vec<(&str, Value)>, &str)> = vec![
        (
            without("tokenizer.ggml.model"),
            "key 'tokenizer.ggml.model' is missing",
        ),
        (
            without("tokenizer.ggml.tokens"),
            "key 'tokenizer.ggml.tokens' is missing",
        ),
        (without("tokenizer.ggml.merges"), "needs merges"),
        (
            with("tokenizer.ggml.tokens", Value::U32(3)),
            "metadata 'tokenizer.ggml.tokens': expected an array of strings",
        ),
        (
            with("tokenizer.ggml.eos_token_id", Value::from("x")),
            "'tokenizer.ggml.eos_token_id': expected a non-negative integer",
        ),
        (
            with("tokenizer.ggml.bos_token_id", Value::U64(1 << 40)),
            "tokenizer.ggml.bos_token_id = 1099511627776 is out of range",
        ),
        (
            with("tokenizer.ggml.add_bos_token", Value::U8(1)),
            "'tokenizer.ggml.add_bos_token': expected a bool",
        ),
    ];
    for (keys, message) in cases {
        match Tokenizer::from_gguf(&gguf(keys), &LoadOptions::default()) {
            Ok(_) => panic!("loaded; expected an error containing {message:?}"),
            Err(e) => assert!(
                e.to_string().contains(message),
                "{e}\n  should contain: {message}"
            ),
        }
    }
}
