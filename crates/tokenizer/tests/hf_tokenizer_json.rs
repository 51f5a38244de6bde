//! Tokenizers from Hugging Face `tokenizer.json`: the keys `gguf_keys_from_hf` makes must be the
//! ones llama.cpp's converter wrote into each fixture's GGUF, and a tokenizer loaded from them
//! (through a GGUF written with those keys, and through `from_tokenizer_json`) must give the
//! ids the `tokenizers` package gives (tests/data/hf_vectors.json, made by
//! scripts/gen-tokenizer-json-vectors.py) for the vocab test strings and fuzzed strings.

use std::fs;
use std::path::PathBuf;

use herd_gguf::{Gguf, GgufWriter, Value};
use herd_tokenizer::{
    gguf_keys_from_hf, gguf_keys_from_tokenizer_json, LoadOptions, Tokenizer, TokenizerError,
};
use serde_json::Value as Json;

const FIXTURES: &[&str] = &[
    "llama",
    "mistral",
    "mixtral",
    "gemma2",
    "gemma3",
    "phi3",
    "phi3-longrope",
    "qwen2",
    "qwen3",
    "qwen3moe",
];

fn arch() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/arch");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipped: {} is absent", dir.display());
        None
    }
}

fn read(path: PathBuf) -> String {
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read_opt(path: PathBuf) -> Option<String> {
    path.is_file().then(|| read(path))
}

/// A GGUF (in memory) holding `keys` and `general.name`, as a converted file would.
fn gguf_of(keys: &[(String, Value)], name: Option<&str>) -> Gguf {
    let mut w = GgufWriter::new(3);
    for (k, v) in keys {
        w.add(k, v.clone());
    }
    if let Some(n) = name {
        w.add("general.name", Value::String(n.into()));
    }
    Gguf::from_bytes("keys.gguf", w.to_bytes()).unwrap()
}

#[test]
fn keys_equal_the_converters() {
    let Some(arch) = arch() else { return };
    for fx in FIXTURES {
        let dir = arch.join(fx);
        let keys = gguf_keys_from_hf(
            &read(dir.join("tokenizer.json")),
            read_opt(dir.join("tokenizer_config.json")).as_deref(),
            read_opt(dir.join("config.json")).as_deref(),
        )
        .unwrap_or_else(|e| panic!("{fx}: {e}"));
        let g = Gguf::open(&dir.join("model-f32.gguf")).unwrap();
        let theirs: Vec<&(String, Value)> = g
            .metadata()
            .iter()
            .filter(|(k, _)| k.starts_with("tokenizer."))
            .collect();
        let get = |k: &str| keys.iter().find(|(key, _)| key == k).map(|(_, v)| v);
        for (k, v) in &theirs {
            let ours = get(k);
            assert_eq!(ours, Some(v), "{fx}: key {k}");
        }
        for (k, v) in &keys {
            if theirs.iter().any(|(t, _)| t == k) || k.starts_with("herd.") {
                continue;
            }
            // The one key herd adds: the converter leaves add_space_prefix out for these
            // SentencePiece models (llama.cpp then prefixes a space), but their tokenizer.json
            // never prefixes one (Metaspace, prepend_scheme "never").
            assert_eq!(
                (k.as_str(), v),
                ("tokenizer.ggml.add_space_prefix", &Value::Bool(false)),
                "{fx}: key {k} is not in the converter's file"
            );
        }
    }
}

fn fnv1a(text: &str) -> u32 {
    text.bytes().fold(0x811C_9DC5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

fn join(ids: &[u32]) -> String {
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(" ")
}

/// tokenizer.json with a case's patch applied, as the generator applies it.
fn patched(text: &str, patch: &Json) -> String {
    let mut tj: Json = serde_json::from_str(text).unwrap();
    for (k, v) in patch.as_object().unwrap() {
        match k.strip_prefix("model.") {
            Some(field) => tj["model"][field] = v.clone(),
            None => tj[k.as_str()] = v.clone(),
        }
    }
    tj.to_string()
}

#[test]
fn ids_equal_hugging_face_tokenizers() {
    let Some(arch) = arch() else { return };
    let vectors: Json = serde_json::from_str(&read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/hf_vectors.json"),
    ))
    .unwrap();
    let strings: Vec<&str> = vectors["strings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let n_vocab = vectors["n_vocab_strings"].as_u64().unwrap() as usize;
    let mut report = Vec::new();
    let mut total = 0;
    for case in vectors["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let fixture = case["fixture"].as_str().unwrap();
        let dir = arch.join(fixture);
        let tj = patched(&read(dir.join("tokenizer.json")), &case["patch"]);
        let tc = read_opt(dir.join("tokenizer_config.json"));
        let keys = gguf_keys_from_tokenizer_json(&tj, tc.as_deref())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        // The keys alone: no general.name (by which llama.cpp knows Phi-3's stripping).
        let via_gguf = Tokenizer::from_gguf(&gguf_of(&keys, None), &LoadOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let direct = Tokenizer::from_tokenizer_json(&tj, tc.as_deref(), &LoadOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));

        let fuzz = case["fuzz_fnv"].as_str().unwrap();
        let mut bad = 0;
        for (i, s) in strings.iter().enumerate() {
            for (how, tok) in [("gguf", &via_gguf), ("direct", &direct)] {
                let got = join(&tok.encode(s, true, false));
                let ok = if i < n_vocab {
                    got == case["ids"][i].as_str().unwrap()
                } else {
                    let j = (i - n_vocab) * 8;
                    format!("{:08x}", fnv1a(&got)) == fuzz[j..j + 8]
                };
                if !ok {
                    bad += 1;
                    if bad <= 5 {
                        let want = if i < n_vocab {
                            case["ids"][i].as_str().unwrap()
                        } else {
                            "(hash)"
                        };
                        report.push(format!(
                            "{name} ({how}) {s:?}: herd [{got}], tokenizers [{want}]"
                        ));
                    }
                }
                total += 1;
            }
        }
        for i in 0..n_vocab {
            let got = join(&via_gguf.encode(strings[i], true, true));
            let want = case["ids_with_special"][i].as_str().unwrap();
            if got != want {
                bad += 1;
                report.push(format!(
                    "{name} (add_special) {:?}: herd [{got}], tokenizers [{want}]",
                    strings[i]
                ));
            }
            total += 1;
        }
        if bad > 0 {
            report.push(format!("{name}: {bad} differences"));
        }
    }
    assert!(
        report.is_empty(),
        "{total} encodings checked:\n{}",
        report.join("\n")
    );
    eprintln!("{total} encodings equal to the tokenizers package's");
}

fn error_of(tj: &str) -> String {
    match gguf_keys_from_tokenizer_json(tj, None) {
        Ok(_) => panic!("accepted {tj}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn unknown_components_are_refused_by_name() {
    let Some(arch) = arch() else { return };
    let qwen = read(arch.join("qwen2/tokenizer.json"));
    let llama = read(arch.join("llama/tokenizer.json"));
    let with = |base: &str, patch: Json| patched(base, &patch);
    for (tj, needle) in [
        (
            with(&qwen, serde_json::json!({"normalizer": {"type": "NFKC"}})),
            "normalizer 'NFKC'",
        ),
        (
            with(
                &qwen,
                serde_json::json!({"normalizer": {"type": "Sequence", "normalizers": [
                {"type": "NFC"}, {"type": "Lowercase"}]}}),
            ),
            "normalizer 'Lowercase'",
        ),
        (
            with(
                &qwen,
                serde_json::json!({"pre_tokenizer": {"type": "Whitespace"}}),
            ),
            "pre-tokenizer 'Whitespace'",
        ),
        (
            with(
                &qwen,
                serde_json::json!({"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": "\\w+"}, "behavior": "Isolated", "invert": false},
                {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]}}),
            ),
            "Split regex \"\\\\w+\"",
        ),
        (
            with(&qwen, serde_json::json!({"model.type": "WordPiece"})),
            "model 'WordPiece'",
        ),
        (
            with(
                &llama,
                serde_json::json!({"pre_tokenizer": {"type": "Metaspace", "replacement": "\u{2581}",
                "prepend_scheme": "sometimes", "split": false}}),
            ),
            "prepend_scheme Some(\"sometimes\")",
        ),
        (
            with(
                &llama,
                serde_json::json!({"normalizer": {"type": "Sequence", "normalizers": [
                {"type": "NFKD"}, {"type": "Lowercase"}]}}),
            ),
            "normalizer 'NFKD'",
        ),
        (
            with(
                &llama,
                serde_json::json!({"pre_tokenizer": {"type": "ByteLevel"}}),
            ),
            "pre-tokenizer 'ByteLevel' with a byte-fallback",
        ),
    ] {
        let e = error_of(&tj);
        assert!(e.contains(needle), "{e:?} should name {needle:?}");
    }
    for (tj, needle) in [
        ("{", "not valid JSON"),
        ("{}", "no 'model'"),
        (
            r#"{"model": {"type": "BPE", "vocab": {"a": "x"}, "merges": []}, "pre_tokenizer": {"type": "ByteLevel"}}"#,
            "not a token id",
        ),
        (
            r#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [3]}, "pre_tokenizer": {"type": "ByteLevel"}}"#,
            "merges[0]",
        ),
    ] {
        let e = error_of(tj);
        assert!(e.contains(needle), "{e:?} should say {needle:?}");
    }
    assert!(matches!(
        gguf_keys_from_tokenizer_json("{", None),
        Err(TokenizerError::BadTokenizerJson { .. })
    ));
}

#[test]
fn nfc_normalizer_travels_in_a_herd_key() {
    let Some(arch) = arch() else { return };
    let qwen = read(arch.join("qwen2/tokenizer.json"));
    let nfc = patched(&qwen, &serde_json::json!({"normalizer": {"type": "NFC"}}));
    let keys = gguf_keys_from_tokenizer_json(&nfc, None).unwrap();
    let normalizer = keys.iter().find(|(k, _)| k == herd_tokenizer::NORMALIZER_KEY);
    assert_eq!(normalizer.map(|(_, v)| v), Some(&Value::String("NFC".into())));
    let plain = gguf_keys_from_tokenizer_json(&qwen, None).unwrap();
    assert!(!plain.iter().any(|(k, _)| k == herd_tokenizer::NORMALIZER_KEY));

    // Normalized, then split: the mark after an added token stays a mark, but one after a
    // letter composes with it, from the keys as from a GGUF file.
    let tok = Tokenizer::from_gguf(&gguf_of(&keys, None), &LoadOptions::default()).unwrap();
    assert_eq!(tok.encode("e\u{301}", true, false), tok.encode("\u{e9}", true, false));
    let end = tok.token_id("<|im_end|>").unwrap();
    let ids = tok.encode("e<|im_end|>\u{301}", true, false);
    assert_eq!(ids[..2], [tok.encode("e", true, false)[0], end]);
    assert_eq!(tok.decode(&ids[2..]), "\u{301}");

    // A token matched in normalized text is not what herd does: refused by name.
    let mut tj: Json = serde_json::from_str(&nfc).unwrap();
    tj["added_tokens"][1]["normalized"] = Json::Bool(true);
    let e = error_of(&tj.to_string());
    assert!(e.contains("\"<|im_start|>\" with normalized: true under an NFC"), "{e}");
    // An unknown normalizer name in the herd key is refused too.
    let mut keys = keys;
    for (k, v) in &mut keys {
        if k == herd_tokenizer::NORMALIZER_KEY {
            *v = Value::String("NFKC".into());
        }
    }
    let e = Tokenizer::from_gguf(&gguf_of(&keys, None), &LoadOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("unknown normalizer \"NFKC\""), "{e}");
}

#[test]
fn chat_template_comes_from_tokenizer_config() {
    let Some(arch) = arch() else { return };
    let tj = read(arch.join("qwen2/tokenizer.json"));
    let tc = r#"{"chat_template": "{{ messages }}", "eos_token": "<|im_end|>"}"#;
    let keys = gguf_keys_from_tokenizer_json(&tj, Some(tc)).unwrap();
    let get = |k: &str| {
        keys.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        get("tokenizer.chat_template"),
        Some(Value::String("{{ messages }}".into()))
    );
    assert_eq!(get("tokenizer.ggml.eos_token_id"), Some(Value::U32(511)));
    let tc = r#"{"chat_template": [{"name": "default", "template": "D"}, {"name": "tool use", "template": "T"}]}"#;
    let keys = gguf_keys_from_tokenizer_json(&tj, Some(tc)).unwrap();
    let get = |k: &str| {
        keys.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        get("tokenizer.chat_template"),
        Some(Value::String("D".into()))
    );
    assert_eq!(
        get("tokenizer.chat_template.tool_use"),
        Some(Value::String("T".into()))
    );
}
