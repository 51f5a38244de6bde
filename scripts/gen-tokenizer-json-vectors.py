#!/usr/bin/env python3
"""Expected token ids for herd's tokenizer.json loader, from Hugging Face's `tokenizers`.

For every distinct tokenizer.json under ../shared/testdata/arch (and a few variants of them
with another real pre-tokenizer or normalizer, described as a patch the Rust test applies the
same way), encode the ../shared/testdata/vocab test strings and a few thousand seeded random
strings, and write crates/tokenizer/tests/data/hf_vectors.json. Rerun after changing a fixture:

    pip install tokenizers && scripts/gen-tokenizer-json-vectors.py
"""
import hashlib
import json
import pathlib
import random

import tokenizers
from tokenizers import Tokenizer

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "testdata"
OUT = ROOT / "crates" / "tokenizer" / "tests" / "data" / "hf_vectors.json"
N_FUZZ = 1500
SEED = 13

LLAMA3 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"


def byte_level(use_regex):
    return {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": use_regex}


def split(regex):
    return {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False}


# Variants: (name, fixture, patch). A patch sets top-level keys of tokenizer.json, and
# "model.KEY" sets a key of its model.
VARIANTS = [
    ("llama3-regex", "qwen2", {
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [split(LLAMA3), byte_level(False)]},
        "model.ignore_merges": True}),
    ("gpt2-bytelevel", "qwen2", {"pre_tokenizer": byte_level(True)}),
    ("gpt2-split", "qwen2", {
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [split(GPT2), byte_level(False)]}}),
    ("starcoder-digits", "qwen2", {
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True}, byte_level(True)]}}),
    ("spm-legacy-prepend", "llama", {
        "pre_tokenizer": None,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "\u2581"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]}}),
    ("spm-metaspace-first", "phi3", {"pre_tokenizer": {
        "type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False}}),
    ("spm-metaspace-always", "llama", {"pre_tokenizer": {
        "type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": False}}),
    ("spm-replace-only", "phi3", {
        "pre_tokenizer": None,
        "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}}),
    # Qwen 2, 2.5 and 3's tokenizer.json normalizer (the fixtures' reduced files lack it).
    ("qwen2-nfc", "qwen2", {"normalizer": {"type": "NFC"}}),
    ("spm-nfc-last", "llama", {
        "pre_tokenizer": None,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "\u2581"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
            {"type": "NFC"}]}}),
    ("spm-nfc-metaspace-first", "phi3", {
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {
            "type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False}}),
]

WORDS = ["the", "The", "hello", "Hello", "world", "free", "software", "GNU", "license", "you",
         "program", "is", "a", "of", "and", "to", "HTTPServer", "camelCase", "don't", "I'm",
         "we'LL", "it's", "O'Neil", "x", "ab", "Copyright", "version"]
SPACES = [" ", " ", " ", "  ", "   ", "\n", "\n\n", "\t", "\r\n", " \n ", "\u00a0", "\u3000", "\u2009"]
PUNCT = list(".,;:!?'\"()[]{}<>-_=+*/\\|@#$%^&~`") + ["...", "--", "!!", "?!", "://", "```"]
CJK = list("中文字符我想在工作日本語한국어") + ["你好", "世界", "こんにちは"]
EMOJI = ["😀", "🦙", "🚀", "😶\u200d🌫️", "👍🏽", "✅", "❤️", "🇫🇷"]
ACCENT = ["é", "è", "ü", "ñ", "ß", "ø", "å", "e\u0301", "a\u0308", "Ω", "привет", "нещо", "ελλάδα",
          "ก", "كتاب", "ក"]
# For normalizers: decomposed and composed accents (marks out of canonical order too), Hangul
# jamo and syllables, compatibility characters (which NFC keeps), composition exclusions, lone
# marks, marks after an added token, and marks newer than tokenizers' Unicode tables.
NORMALIZE = ["e\u0301", "\u00e9", "a\u0308", "o\u0302\u0323", "o\u0323\u0302", "\u1ed9",
             "A\u030a", "\u212b", "\u2126", "\u1e9b\u0323", "\u0344", "\u0301", "\u0345",
             " \u0301", "\n\u0308", "\u1100\u1161", "\u1100\u1161\u11a8", "\u1112\u1161\u11ab",
             "\ud55c", "\u11a8", "\u3131\u314f", "\ufb01", "\uff21", "\u2460", "\u00b2", "\u338f",
             "\u00bd", "\uff76\uff9e", "\u304b\u3099", "\u0958", "\u0915\u093c", "\u0627\u0653",
             "e<|im_end|>\u0301", "<|endoftext|>\u0308a", "</s>\u0301", "a\u0898\u0316",
             "\U00011935\U00011930", "e\u1dfa\u0301"]
DIGITS = ["1", "42", "123", "2024", "33333", "3.14", "1,000", "0x1F", "٣"]


def fuzz_strings(specials):
    rng = random.Random(SEED)
    groups = [WORDS, SPACES, PUNCT, CJK, EMOJI, ACCENT, DIGITS, NORMALIZE]
    weights = [6, 5, 3, 2, 1, 2, 2, 3]
    out = []
    for _ in range(N_FUZZ):
        parts = []
        for _ in range(rng.randint(1, 10)):
            if specials and rng.random() < 0.04:
                parts.append(rng.choice(specials))
            else:
                parts.append(rng.choice(rng.choices(groups, weights)[0]))
        out.append("".join(parts))
    return out


def vocab_strings():
    seen = []
    for inp in sorted((DATA / "vocab").glob("*.inp")):
        for s in inp.read_text(encoding="utf-8").split("\n__ggml_vocab_test__\n"):
            if s not in seen:
                seen.append(s)
    return seen


def fnv1a(text):
    h = 0x811C9DC5
    for b in text.encode():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def patched(text, patch):
    tj = json.loads(text)
    for k, v in patch.items():
        if k.startswith("model."):
            tj["model"][k[len("model."):]] = v
        else:
            tj[k] = v
    return json.dumps(tj)


def main():
    arch = DATA / "arch"
    cases = []
    seen = {}
    for d in sorted(p for p in arch.iterdir() if (p / "tokenizer.json").is_file()):
        h = hashlib.sha256((d / "tokenizer.json").read_bytes()).hexdigest()
        if h in seen:
            seen[h]["same_as"].append(d.name)
            continue
        case = {"name": d.name, "fixture": d.name, "patch": {}, "same_as": []}
        seen[h] = case
        cases.append(case)
    for name, fixture, patch in VARIANTS:
        cases.append({"name": name, "fixture": fixture, "patch": patch, "same_as": []})

    specials = ["<s>", "</s>", "<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|user|>",
                "<|end|>", "<|assistant|>"]
    strings = vocab_strings() + fuzz_strings(specials)
    n_vocab = len(vocab_strings())
    for case in cases:
        text = (arch / case["fixture"] / "tokenizer.json").read_text(encoding="utf-8")
        tk = Tokenizer.from_str(patched(text, case["patch"]))
        ids = [" ".join(map(str, e.ids)) for e in tk.encode_batch(strings, add_special_tokens=False)]
        # Whole ids for the vocab strings; for the fuzzed ones, to keep the file small, the
        # FNV-1a (32-bit) hash of the same space-separated text.
        case["ids"] = ids[:n_vocab]
        case["fuzz_fnv"] = "".join(f"{fnv1a(s):08x}" for s in ids[n_vocab:])
        # With the post-processor's BOS/EOS, on the vocab strings only.
        case["ids_with_special"] = [
            " ".join(map(str, tk.encode(s, add_special_tokens=True).ids)) for s in strings[:n_vocab]]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({
        "generator": f"scripts/gen-tokenizer-json-vectors.py, tokenizers {tokenizers.__version__}",
        "n_vocab_strings": n_vocab,
        "strings": strings,
        "cases": cases,
    }, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"{OUT}: {len(strings)} strings x {len(cases)} tokenizers, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
