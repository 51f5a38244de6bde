//! Every check the reader makes, each on deliberately broken bytes: the error must name the file,
//! the key or tensor, and expected vs found, and no input may panic or allocate wildly.

use herd_gguf::{Gguf, GgufWriter, Value, ValueType, MAX_ARRAY_DEPTH};
use herd_kernels::DType;

/// Hand-built GGUF bytes, for files the writer refuses to produce.
#[derive(Clone, Default)]
struct Raw(Vec<u8>);

impl Raw {
    fn header(version: u32, n_tensors: u64, n_kv: u64) -> Raw {
        let mut r = Raw(b"GGUF".to_vec());
        r.u32(version).u64(n_tensors).u64(n_kv);
        r
    }

    fn len(&self) -> u64 {
        self.0.len() as u64
    }

    fn bytes(&mut self, b: &[u8]) -> &mut Raw {
        self.0.extend_from_slice(b);
        self
    }

    fn u8(&mut self, v: u8) -> &mut Raw {
        self.bytes(&[v])
    }

    fn u32(&mut self, v: u32) -> &mut Raw {
        self.bytes(&v.to_le_bytes())
    }

    fn u64(&mut self, v: u64) -> &mut Raw {
        self.bytes(&v.to_le_bytes())
    }

    fn str(&mut self, s: &str) -> &mut Raw {
        self.u64(s.len() as u64).bytes(s.as_bytes())
    }

    /// A key and a value type id; the value follows.
    fn kv(&mut self, key: &str, t: ValueType) -> &mut Raw {
        self.str(key).u32(t.id())
    }

    fn tensor(&mut self, name: &str, dims: &[u64], type_id: u32, offset: u64) -> &mut Raw {
        self.str(name).u32(dims.len() as u32);
        for &d in dims {
            self.u64(d);
        }
        self.u32(type_id).u64(offset)
    }

    fn pad_to(&mut self, alignment: u64) -> &mut Raw {
        let n = self.len().next_multiple_of(alignment) - self.len();
        self.zeros(n)
    }

    fn zeros(&mut self, n: u64) -> &mut Raw {
        self.0.resize(self.0.len() + n as usize, 0);
        self
    }
}

fn error_of(bytes: Vec<u8>) -> String {
    match Gguf::from_bytes("broken.gguf", bytes) {
        Ok(g) => panic!("expected an error, opened {g:?}"),
        Err(e) => e.to_string(),
    }
}

fn check(raw: &Raw, expected: &str) {
    assert_eq!(error_of(raw.0.clone()), format!("broken.gguf: {expected}"));
}

/// (name, dims, ggml type id, offset) of one tensor info.
type TensorSpec<'a> = (&'a str, &'a [u64], u32, u64);

/// A file with the given tensors, `data_len` bytes of data, and optionally an alignment key.
fn with_tensors(
    alignment: Option<u32>,
    tensors: &[TensorSpec],
    data_len: u64,
) -> Raw {
    let mut r = Raw::header(3, tensors.len() as u64, u64::from(alignment.is_some()));
    if let Some(a) = alignment {
        r.kv("general.alignment", ValueType::U32).u32(a);
    }
    for (name, dims, type_id, offset) in tensors {
        r.tensor(name, dims, *type_id, *offset);
    }
    r.pad_to(u64::from(alignment.unwrap_or(32))).zeros(data_len);
    r
}

const F32: u32 = DType::F32.ggml_id();
const Q4_0: u32 = DType::Q4_0.ggml_id();

#[test]
fn the_raw_builder_makes_files_the_reader_accepts() {
    // Guards the fixtures below: with nothing broken, the same builders open cleanly.
    let r = with_tensors(
        Some(64),
        &[("a", &[16], F32, 0), ("b", &[32, 2], Q4_0, 64)],
        64 + 36,
    );
    let g = Gguf::from_bytes("ok.gguf", r.0).unwrap();
    assert_eq!(g.tensors().len(), 2);
    assert_eq!(g.tensor("b").unwrap().n_bytes, 36);
}

#[test]
fn bad_magic_and_versions() {
    let cases: Vec<(Raw, &str)> = vec![
        (Raw::default(), "header: needs 4 bytes at offset 0 but only 0 remain (is the file truncated?)"),
        (
            {
                let mut r = Raw::default();
                r.bytes(b"GGML").u32(3);
                r
            },
            "not a GGUF file: the first bytes are [47, 47, 4d, 4c], expected \"GGUF\" [47, 47, 55, 46]",
        ),
        (
            Raw::header(1, 0, 0),
            "GGUF version 1 is not supported, expected 2 or 3 (version 1 stored 32-bit counts and is \
             obsolete; convert the model again with a current llama.cpp)",
        ),
        (Raw::header(4, 0, 0), "GGUF version 4 is not supported, expected 2 or 3"),
        (Raw::header(0, 0, 0), "GGUF version 0 is not supported, expected 2 or 3"),
        (
            Raw::header(3u32.swap_bytes(), 0, 0),
            "GGUF version 50331648 is not supported, expected 2 or 3 (this looks like a big-endian \
             file; herd reads little-endian GGUF only)",
        ),
    ];
    for (raw, expected) in cases {
        check(&raw, expected);
    }
}

#[test]
fn huge_counts_are_refused_before_allocating() {
    let mut key_len = Raw::header(3, 0, 1);
    key_len.u64(u64::MAX).zeros(16);
    let mut array_len = Raw::header(3, 0, 1);
    array_len
        .kv("tokenizer.ggml.tokens", ValueType::Array)
        .u32(ValueType::String.id())
        .u64(1 << 40)
        .zeros(64);
    let mut u64_array = Raw::header(3, 0, 1);
    // 8 items of 8 bytes need 64 bytes; 63 are there.
    u64_array
        .kv("a", ValueType::Array)
        .u32(ValueType::U64.id())
        .u64(8)
        .zeros(63);
    let mut nested_len = Raw::header(3, 0, 1);
    nested_len
        .kv("a", ValueType::Array)
        .u32(ValueType::Array.id())
        .u64(3)
        .zeros(35);
    let mut value_len = Raw::header(3, 0, 1);
    value_len
        .kv("general.name", ValueType::String)
        .u64(5)
        .bytes(b"abcd");
    let mut name_len = Raw::header(3, 1, 0);
    name_len.u64(1 << 62).zeros(40);
    let cases: Vec<(Raw, &str)> = vec![
        (
            Raw::header(3, u64::MAX, 0),
            "header: tensor count 18446744073709551615 at offset 8 needs at least 32 bytes per item, \
             more than the 8 bytes left",
        ),
        (
            Raw::header(3, 0, 1 << 40),
            "header: metadata count 1099511627776 at offset 16 needs at least 13 bytes per item, \
             more than the 0 bytes left",
        ),
        (
            key_len,
            "metadata entry 0 key: string length 18446744073709551615 at offset 24 needs at least 1 \
             bytes per item, more than the 16 bytes left",
        ),
        (
            array_len,
            "metadata 'tokenizer.ggml.tokens': array length 1099511627776 at offset 61 needs at least \
             8 bytes per item, more than the 64 bytes left",
        ),
        (
            u64_array,
            "metadata 'a': array length 8 at offset 41 needs at least 8 bytes per item, more than the \
             63 bytes left",
        ),
        (
            nested_len,
            "metadata 'a': array length 3 at offset 41 needs at least 12 bytes per item, more than the \
             35 bytes left",
        ),
        (
            value_len,
            "metadata 'general.name': string length 5 at offset 48 needs at least 1 bytes per item, \
             more than the 4 bytes left",
        ),
        (
            name_len,
            "tensor info 0 name: string length 4611686018427387904 at offset 24 needs at least 1 \
             bytes per item, more than the 40 bytes left",
        ),
    ];
    for (raw, expected) in cases {
        check(&raw, expected);
    }
}

#[test]
fn strings_must_be_utf8() {
    let mut in_key = Raw::header(3, 0, 1);
    in_key
        .u64(2)
        .bytes(&[0xc3, 0x28])
        .u32(ValueType::U8.id())
        .u8(0);
    let mut in_value = Raw::header(3, 0, 1);
    in_value
        .kv("general.name", ValueType::String)
        .u64(1)
        .u8(0xff);
    let mut in_array = Raw::header(3, 0, 1);
    in_array
        .kv("tokenizer.ggml.tokens", ValueType::Array)
        .u32(ValueType::String.id())
        .u64(2)
        .str("ok");
    let at = in_array.len() + 8;
    in_array.u64(3).bytes(&[b'a', 0xe2, 0x82]);
    let mut in_tensor = Raw::header(3, 1, 0);
    in_tensor.u64(1).u8(0x80).u32(1).u64(32).u32(F32).u64(0);
    let cases: Vec<(Raw, String)> = vec![
        (
            in_key,
            "metadata entry 0 key: the string at offset 32 is not valid UTF-8".into(),
        ),
        (
            in_value,
            "metadata 'general.name': the string at offset 56 is not valid UTF-8".into(),
        ),
        (
            in_array,
            format!(
                "metadata 'tokenizer.ggml.tokens': the string at offset {at} is not valid UTF-8"
            ),
        ),
        (
            in_tensor,
            "tensor info 0 name: the string at offset 32 is not valid UTF-8".into(),
        ),
    ];
    for (raw, expected) in cases {
        check(&raw, &expected);
    }
}

#[test]
fn value_types_bools_and_nesting_are_checked() {
    let mut unknown = Raw::header(3, 0, 1);
    unknown.str("a").u32(13).u64(0);
    let mut unknown_elem = Raw::header(3, 0, 1);
    unknown_elem.kv("a", ValueType::Array).u32(99).u64(0);
    let mut bad_bool = Raw::header(3, 0, 1);
    bad_bool
        .kv("tokenizer.ggml.add_bos_token", ValueType::Bool)
        .u8(2);
    let mut too_deep = Raw::header(3, 0, 1);
    too_deep.kv("a", ValueType::Array);
    for _ in 0..MAX_ARRAY_DEPTH {
        too_deep.u32(ValueType::Array.id()).u64(1);
    }
    let deep_at = too_deep.len();
    too_deep.u32(ValueType::U8.id()).u64(0);
    let cases: Vec<(Raw, String)> = vec![
        (
            unknown,
            "metadata 'a': unknown value type id 13 at offset 33, expected 0 to 12".into(),
        ),
        (
            unknown_elem,
            "metadata 'a': unknown value type id 99 at offset 37, expected 0 to 12".into(),
        ),
        (
            bad_bool,
            "metadata 'tokenizer.ggml.add_bos_token': bool byte 2 at offset 64 is neither 0 nor 1"
                .into(),
        ),
        (
            too_deep,
            format!("metadata 'a': arrays nested deeper than 8 levels at offset {deep_at}"),
        ),
    ];
    for (raw, expected) in cases {
        check(&raw, &expected);
    }
}

#[test]
fn duplicate_keys_and_tensors_are_refused() {
    let mut key = Raw::header(3, 0, 3);
    key.kv("a", ValueType::U8)
        .u8(1)
        .kv("b", ValueType::U8)
        .u8(2)
        .kv("a", ValueType::String)
        .str("x");
    check(&key, "metadata key 'a' appears more than once");
    let tensor = with_tensors(None, &[("w", &[8], F32, 0), ("w", &[8], F32, 32)], 64);
    check(&tensor, "tensor 'w' appears more than once");
}

#[test]
fn alignment_must_be_a_u32_power_of_two() {
    let cases: [(ValueType, &[u8], &str); 5] = [
        (ValueType::U32, &0u32.to_le_bytes(), "U32 0"),
        (ValueType::U32, &48u32.to_le_bytes(), "U32 48"),
        (ValueType::U64, &32u64.to_le_bytes(), "U64 32"),
        (ValueType::I32, &32i32.to_le_bytes(), "I32 32"),
        (
            ValueType::String,
            b"\x02\0\0\0\0\0\0\x0032",
            "String of 2 bytes",
        ),
    ];
    for (t, value, found) in cases {
        let mut r = Raw::header(3, 0, 1);
        r.kv("general.alignment", t).bytes(value);
        check(
            &r,
            &format!(
                "metadata 'general.alignment': expected a non-zero power of two of type U32, found {found}"
            ),
        );
    }
}

#[test]
fn tensor_infos_are_checked() {
    let q8_0 = DType::Q8_0.ggml_id();
    // (alignment, tensors, data bytes, expected)
    let cases: Vec<(Option<u32>, Vec<TensorSpec>, u64, &str)> = vec![
        (None, vec![("t", &[], F32, 0)], 32, "tensor 't': has 0 dimensions, expected 1 to 4"),
        (None, vec![("t", &[1, 1, 1, 1, 1], F32, 0)], 32, "tensor 't': has 5 dimensions, expected 1 to 4"),
        (
            None,
            vec![("t", &[8, 0, 2], F32, 0)],
            32,
            "tensor 't': shape [8, 0, 2] has a zero-sized dimension, expected every dimension > 0",
        ),
        (
            None,
            vec![("blk.0.ffn_up.weight", &[256, 4], 16, 0)],
            32,
            "tensor 'blk.0.ffn_up.weight': unknown tensor type id 16, expected one herd supports (F32 = 0, \
             F16 = 1, BF16 = 30, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9, Q2_K = 10, \
             Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15)",
        ),
        (
            None,
            vec![("t", &[16, 2], Q4_0, 0)],
            32,
            "tensor 't': row length 16 (dims[0]) is not a multiple of the Q4_0 block length 32",
        ),
        (
            None,
            vec![("t", &[1 << 32, 1 << 32], F32, 0)],
            32,
            "tensor 't': shape [4294967296, 4294967296] of type F32 overflows a 64-bit element or byte count",
        ),
        (
            None,
            vec![("t", &[1 << 31, 1 << 31, 1 << 2], F32, 0)],
            32,
            "tensor 't': shape [2147483648, 2147483648, 4] of type F32 overflows a 64-bit element or byte count",
        ),
        (
            None,
            vec![("a", &[8], F32, 0), ("blk.0.attn_q.weight", &[8], F32, 1234)],
            64,
            "tensor 'blk.0.attn_q.weight': offset 1234 is not a multiple of the alignment 32",
        ),
        (
            Some(64),
            vec![("a", &[8], F32, 0), ("b", &[8], F32, 32)],
            64,
            "tensor 'b': offset 32 is not a multiple of the alignment 64",
        ),
        (
            None,
            vec![("a", &[32], q8_0, 0), ("b", &[8], F32, 64)],
            64,
            "tensor 'b': data at file bytes 160..192 extends past the end of the file (160 bytes)",
        ),
        (
            None,
            vec![("a", &[8], F32, 0), ("b", &[8], F32, u64::MAX - 31)],
            64,
            "tensor 'b': data at file bytes 18446744073709551615..18446744073709551615 extends past the \
             end of the file (160 bytes)",
        ),
        (
            None,
            vec![("a", &[64], F32, 0), ("b", &[8], F32, 256)],
            286,
            "tensor 'b': data at file bytes 352..384 extends past the end of the file (382 bytes)",
        ),
        (
            None,
            vec![("a", &[16], F32, 0), ("b", &[8], F32, 32)],
            64,
            "tensor 'b': data at offsets 32..64 overlaps tensor 'a' at 0..64",
        ),
        (
            None,
            vec![("late", &[8], F32, 64), ("early", &[32], F32, 32), ("first", &[8], F32, 0)],
            160,
            "tensor 'late': data at offsets 64..96 overlaps tensor 'early' at 32..160",
        ),
        (
            None,
            vec![("a", &[8], F32, 0), ("b", &[8], F32, 0)],
            64,
            "tensor 'b': data at offsets 0..32 overlaps tensor 'a' at 0..32",
        ),
    ];
    for (alignment, tensors, data_len, expected) in cases {
        check(&with_tensors(alignment, &tensors, data_len), expected);
    }
}

/// A small valid file whose last tensor ends on the alignment, so every shorter prefix is broken.
fn small_valid_file() -> Vec<u8> {
    let mut w = GgufWriter::new(3);
    w.add("general.architecture", Value::from("llama"))
        .add(
            "tokenizer.ggml.tokens",
            Value::string_array(["<s>", "a", "b"]),
        )
        .add(
            "nested",
            Value::array(
                ValueType::Array,
                vec![Value::i32_array([1, -1]), Value::f32_array([])],
            ),
        )
        .add("flag", Value::Bool(true))
        .add_tensor("q", &[32, 2], DType::Q8_0, vec![7; 68])
        .add_tensor("f", &[8, 2], DType::F32, vec![9; 64]);
    let bytes = w.to_bytes();
    let g = Gguf::from_bytes("small.gguf", bytes.clone()).unwrap();
    let last = &g.tensors()[1];
    assert_eq!(
        g.data_offset() + last.offset + last.n_bytes,
        bytes.len() as u64
    );
    bytes
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = small_valid_file();
    for len in 0..bytes.len() {
        let err = Gguf::from_bytes("cut.gguf", bytes[..len].to_vec()).unwrap_err();
        assert!(err.to_string().starts_with("cut.gguf: "), "{err}");
    }
}

#[test]
fn no_single_byte_change_panics() {
    // Not every change is an error (a changed tensor byte is still a valid file), but none may
    // panic, and every error must name the file.
    let bytes = small_valid_file();
    for pos in 0..bytes.len() {
        for new in [
            0x00,
            0x01,
            0x07,
            0x7f,
            0x80,
            0xff,
            bytes[pos].wrapping_add(1),
        ] {
            let mut changed = bytes.clone();
            changed[pos] = new;
            if let Err(e) = Gguf::from_bytes("changed.gguf", changed) {
                assert!(e.to_string().starts_with("changed.gguf: "), "{e}");
            }
        }
    }
}
