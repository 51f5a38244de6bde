//! Behaviour on small vocabularies built in code: special tokens, BOS/EOS, SentencePiece's
//! space prefix, end-of-generation tokens, decoding, and streaming.

use herd_tokenizer::{LoadOptions, StreamDecoder, TokenType, Tokenizer, VocabConfig};

mod common;
use common::{bpe, spm};

fn build(cfg: VocabConfig) -> Tokenizer {
    Tokenizer::new(cfg, &LoadOptions::default()).unwrap()
}

#[test]
fn special_tokens_are_parsed_only_when_asked() {
    let tok = build(bpe());
    assert_eq!(
        tok.encode("<|im_start|>ab<tool>abc<|end|>", true, false),
        [260, 256, 261, 257, 259]
    );
    // As plain text, control tokens are characters like any others; user-defined ones are
    // still found.
    let plain = tok.encode("<|im_start|>ab<tool>", false, false);
    assert!(!plain.contains(&260), "{plain:?}");
    assert_eq!(plain.last(), Some(&261));
    assert_eq!(tok.decode(&plain), "<|im_start|>ab<tool>");
    let plain = tok.encode("<|end|>", false, false);
    assert!(!plain.contains(&259) && plain.len() == 7, "{plain:?}");
}

#[test]
fn special_tokens_never_come_out_of_merges() {
    // "ab c" would make "abc"; as a control token it is out of reach of plain text.
    let mut cfg = bpe();
    cfg.token_types.as_mut().unwrap()[257] = 3;
    for pre in ["gpt-2", "llama-bpe"] {
        let tok = build(VocabConfig {
            pre: Some(pre.into()),
            bos_id: Some(260),
            ..cfg.clone()
        });
        assert_eq!(
            tok.encode("abc", false, false),
            [256, u32::from(b'c')],
            "{pre}"
        );
        assert_eq!(
            tok.encode("abc", true, false),
            [257],
            "{pre}: as special text"
        );
    }
    // Likewise for SentencePiece: "▁a" as a user-defined token is found only as text.
    let mut cfg = spm();
    cfg.token_types.as_mut().unwrap()[262] = 4;
    let tok = build(cfg);
    assert_eq!(tok.encode("a", false, false), [259, 260]);
    assert_eq!(tok.encode("▁a", false, false), [262]);
}

#[test]
fn bos_and_eos_follow_the_vocabulary() {
    // (what, vocabulary, text, expected with add_special)
    let cases: Vec<(&str, VocabConfig, &str, Vec<u32>)> = vec![
        ("BPE adds nothing by default", bpe(), "ab", vec![256]),
        (
            "BPE adds BOS when the file says so",
            VocabConfig {
                bos_id: Some(260),
                add_bos: Some(true),
                ..bpe()
            },
            "ab",
            vec![260, 256],
        ),
        (
            "BPE adds EOS when the file says so",
            VocabConfig {
                eos_id: Some(259),
                add_eos: Some(true),
                ..bpe()
            },
            "ab",
            vec![256, 259],
        ),
        (
            "Llama 3's family adds BOS by default",
            VocabConfig {
                pre: Some("llama-bpe".into()),
                bos_id: Some(260),
                ..bpe()
            },
            "ab",
            vec![260, 256],
        ),
        (
            "SentencePiece adds BOS by default",
            spm(),
            "a",
            vec![1, 262],
        ),
        (
            "unless the file says not to",
            VocabConfig {
                add_bos: Some(false),
                ..spm()
            },
            "a",
            vec![262],
        ),
        ("empty text gives just BOS", spm(), "", vec![1]),
    ];
    for (what, cfg, text, expected) in cases {
        let tok = build(cfg);
        assert_eq!(tok.encode(text, false, true), expected, "{what}");
        let without: Vec<u32> = expected
            .iter()
            .copied()
            .filter(|&id| Some(id) != tok.bos_id() && Some(id) != tok.eos_id())
            .collect();
        assert_eq!(
            tok.encode(text, false, false),
            without,
            "{what}, without specials"
        );
    }
}

#[test]
fn sentencepiece_space_prefix() {
    let tok = build(spm());
    // (text, parse_special, expected ids, their decode_special)
    let cases: &[(&str, bool, &[u32], &str)] = &[
        ("a", false, &[262], "a"),
        (" a", false, &[259, 262], " a"),
        ("ab a", false, &[262, 261, 262], "ab a"),
        // Text after a special token starts with a space again, which decoding keeps, as in
        // llama.cpp.
        ("a<|user|>a", true, &[262, 263, 262], "a<|user|> a"),
        // 'é' has no piece: its UTF-8 bytes become byte tokens.
        ("é", false, &[259, 3 + 0xC3, 3 + 0xA9], "é"),
    ];
    for &(text, parse_special, expected, decoded) in cases {
        assert_eq!(tok.encode(text, parse_special, false), expected, "{text:?}");
        assert_eq!(tok.decode_special(expected), decoded, "{text:?} decoded");
    }
    let no_prefix = build(VocabConfig {
        add_space_prefix: Some(false),
        ..spm()
    });
    assert_eq!(no_prefix.encode("a", false, false), [260]);
    assert_eq!(no_prefix.decode(&[262]), " a");
}

#[test]
fn end_of_generation_tokens() {
    let mut cfg = VocabConfig {
        eos_id: Some(256),
        ..bpe()
    };
    // A normal token whose text ends a turn becomes a control token that ends generation.
    cfg.tokens.push("<|im_end|>".into());
    cfg.token_types.as_mut().unwrap().push(1);
    let tok = build(cfg);
    assert_eq!(tok.eog_ids(), [256, 259, 262]);
    assert!(tok.is_eog(262) && tok.is_eog(259) && !tok.is_eog(258));
    assert_eq!(tok.token_type(262), Some(TokenType::Control));
    assert_eq!(tok.eot_id(), Some(262));
    assert_eq!(tok.encode("<|im_end|>", true, false), [262]);
}

#[test]
fn decoding() {
    let tok = build(bpe());
    assert_eq!(tok.decode(&[260, 256, 258, 259]), "ab ab");
    assert_eq!(
        tok.decode_special(&[260, 256, 258, 259]),
        "<|im_start|>ab ab<|end|>"
    );
    assert_eq!(
        tok.decode(&[256, 1_000_000, 257]),
        "ababc",
        "ids out of range are skipped"
    );

    let tok = build(spm());
    // BOS, then the first token's leading space (which encoding added) comes off.
    assert_eq!(tok.decode(&[1, 262, 259, 261]), "a b");
    assert_eq!(tok.decode_special(&[1, 262]), "<s>a");
    // Bytes that do not form UTF-8 become U+FFFD; complete sequences decode.
    assert_eq!(tok.decode(&[3 + 0xC3, 3 + 0xA9]), "é");
    assert_eq!(tok.decode(&[3 + 0xC3, 260]), "\u{FFFD}a");
}

#[test]
fn streaming_hands_out_whole_characters() {
    let tok = build(spm());
    let byte = |b: u8| 3 + u32::from(b);
    let mut s = StreamDecoder::new();
    // '€' is E2 82 AC: nothing until its last byte arrives.
    assert_eq!(s.push(&tok, byte(0xE2)), "");
    assert_eq!(s.push(&tok, byte(0x82)), "");
    assert_eq!(s.push(&tok, byte(0xAC)), "€");
    assert_eq!(s.push(&tok, 260), "a");
    // A byte that can never start a character is replaced at once.
    assert_eq!(s.push(&tok, byte(0xFF)), "\u{FFFD}");
    // An unfinished character is broken: replaced when the next token shows it.
    assert_eq!(s.push(&tok, byte(0xE2)), "");
    assert_eq!(s.push(&tok, 261), "\u{FFFD}b");
    // What is left at the end comes out of finish.
    assert_eq!(s.push(&tok, byte(0xC3)), "");
    assert_eq!(s.finish(), "\u{FFFD}");
    assert_eq!(s.finish(), "");
}

#[test]
fn streaming_leading_space() {
    let tok = build(spm());
    let run = |mut s: StreamDecoder, ids: &[u32]| -> Vec<String> {
        ids.iter().map(|&id| s.push(&tok, id)).collect()
    };
    // From the start of a sequence, as `decode`: the space encoding added comes off.
    assert_eq!(run(StreamDecoder::new(), &[1, 262, 262]), ["", "a", " a"]);
    // Continuing text already shown (a generation after its prompt): every space stays.
    assert_eq!(run(StreamDecoder::continuing(), &[262, 262]), [" a", " a"]);
    // Control tokens show only when asked.
    assert_eq!(
        run(
            StreamDecoder::continuing().render_special(true),
            &[263, 260]
        ),
        ["<|user|>", "a"]
    );
    assert_eq!(run(StreamDecoder::continuing(), &[263, 260]), ["", "a"]);
    // BPE has no space prefix to remove.
    let bpe = build(bpe());
    let mut s = StreamDecoder::new();
    assert_eq!(s.push(&bpe, 258), " ab");
}

#[test]
fn accessors() {
    let tok = build(bpe());
    assert_eq!(tok.n_vocab(), 262);
    assert_eq!(tok.model_name(), "gpt2");
    assert_eq!(tok.pre_name(), "gpt-2");
    assert_eq!(tok.token_text(258), Some("Ġab"));
    assert_eq!(tok.token_bytes(258), b" ab");
    assert_eq!(tok.token_bytes(259), b"<|end|>");
    assert_eq!(tok.token_bytes(262), b"");
    assert_eq!(tok.token_text(262), None);
    assert_eq!(tok.token_id("Ġab"), Some(258));
    assert_eq!(tok.token_id("zz"), None);
    assert_eq!(tok.token_type(261), Some(TokenType::UserDefined));

    let tok = build(spm());
    assert_eq!(
        (tok.bos_id(), tok.eos_id(), tok.unk_id()),
        (Some(1), Some(2), Some(0))
    );
    assert_eq!(tok.token_bytes(262), " a".as_bytes());
    assert_eq!(tok.token_bytes(3 + 0x41), b"A");
    assert_eq!(tok.pre_name(), "default");
}
