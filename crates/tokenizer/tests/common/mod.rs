//! Small vocabularies built in code, shared by the tests that need no files.

use herd_tokenizer::VocabConfig;

/// GPT-2's byte alphabet in byte order: the first 256 tokens of the BPE fixture.
fn alphabet() -> Vec<String> {
    let mut next = 0x100u32;
    (0..=255u8)
        .map(|b| {
            let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
            let c = if printable {
                b as char
            } else {
                next += 1;
                char::from_u32(next - 1).unwrap()
            };
            c.to_string()
        })
        .collect()
}

/// A valid byte-level BPE vocabulary (262 tokens): the alphabet (0..=255), 256 "ab",
/// 257 "abc", 258 "Ġab", control tokens 259 "<|end|>" and 260 "<|im_start|>", and the
/// user-defined 261 "<tool>".
pub fn bpe() -> VocabConfig {
    let mut tokens = alphabet();
    tokens.extend(["ab", "abc", "Ġab", "<|end|>", "<|im_start|>", "<tool>"].map(String::from));
    let mut types = vec![1; tokens.len()];
    types[259] = 3;
    types[260] = 3;
    types[261] = 4;
    VocabConfig {
        model: "gpt2".into(),
        pre: Some("gpt-2".into()),
        tokens,
        token_types: Some(types),
        merges: Some(vec!["a b".into(), "ab c".into(), "Ġ ab".into()]),
        ..VocabConfig::default()
    }
}

/// A valid SentencePiece vocabulary (264 tokens): 0 <unk>, 1 <s>, 2 </s>, the byte tokens
/// (3 + byte), 259 "▁", 260 "a", 261 "b", 262 "▁a", and the control token 263 "<|user|>".
pub fn spm() -> VocabConfig {
    let mut tokens: Vec<String> = ["<unk>", "<s>", "</s>"].map(String::from).to_vec();
    let mut types = vec![2, 3, 3];
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(6);
    }
    for (t, ty) in [("▁", 1), ("a", 1), ("b", 1), ("▁a", 1), ("<|user|>", 3)] {
        tokens.push(t.into());
        types.push(ty);
    }
    let scores = Some(vec![0.0; tokens.len()]);
    VocabConfig {
        model: "llama".into(),
        tokens,
        scores,
        token_types: Some(types),
        ..VocabConfig::default()
    }
}
