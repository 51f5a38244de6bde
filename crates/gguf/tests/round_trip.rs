//! Files written by `GgufWriter` read back identically: every value type, arrays of every
//! element type, tensor data at several alignments, the typed getters, and writing to disk.

use herd_gguf::{Array, Gguf, GgufWriter, Value, ValueType, DEFAULT_ALIGNMENT, MAX_ARRAY_DEPTH};
use herd_kernels::DType;

fn read(w: &GgufWriter) -> Gguf {
    Gguf::from_bytes("fixture.gguf", w.to_bytes()).unwrap()
}

/// One value of every type, including the edges of each range.
fn scalars() -> Vec<(&'static str, Value)> {
    vec![
        ("u8", Value::U8(u8::MAX)),
        ("i8", Value::I8(i8::MIN)),
        ("u16", Value::U16(u16::MAX)),
        ("i16", Value::I16(i16::MIN)),
        ("u32", Value::U32(u32::MAX)),
        ("i32", Value::I32(i32::MIN)),
        ("f32", Value::F32(-1.5e-30)),
        ("f32.inf", Value::F32(f32::INFINITY)),
        ("bool.true", Value::Bool(true)),
        ("bool.false", Value::Bool(false)),
        ("string", Value::from("héllo, wörld ✓")),
        ("string.empty", Value::from("")),
        ("u64", Value::U64(u64::MAX)),
        ("i64", Value::I64(i64::MIN)),
        ("f64", Value::F64(std::f64::consts::PI)),
    ]
}

/// A few items of `t`, for building arrays of every element type.
fn sample_items(t: ValueType) -> Vec<Value> {
    match t {
        ValueType::U8 => vec![Value::U8(0), Value::U8(255)],
        ValueType::I8 => vec![Value::I8(-128), Value::I8(127)],
        ValueType::U16 => vec![Value::U16(1), Value::U16(65535)],
        ValueType::I16 => vec![Value::I16(-2)],
        ValueType::U32 => vec![Value::U32(3), Value::U32(4), Value::U32(5)],
        ValueType::I32 => vec![Value::I32(-1), Value::I32(i32::MAX)],
        ValueType::F32 => vec![Value::F32(0.25), Value::F32(-0.0)],
        ValueType::Bool => vec![Value::Bool(true), Value::Bool(false), Value::Bool(true)],
        ValueType::String => vec![Value::from("a"), Value::from(""), Value::from("Ġthe")],
        ValueType::Array => vec![
            Value::i32_array([1, 2]),
            Value::string_array(["x"]),
            Value::f32_array([]),
        ],
        ValueType::U64 => vec![Value::U64(u64::MAX)],
        ValueType::I64 => vec![Value::I64(i64::MIN), Value::I64(0)],
        ValueType::F64 => vec![Value::F64(1e300)],
    }
}

#[test]
fn every_scalar_type_round_trips_in_v2_and_v3() {
    for version in [2, 3] {
        let mut w = GgufWriter::new(version);
        for (key, value) in scalars() {
            w.add(key, value);
        }
        let g = read(&w);
        assert_eq!(g.version(), version);
        assert_eq!(g.alignment(), DEFAULT_ALIGNMENT);
        let expected: Vec<(String, Value)> = scalars()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        assert_eq!(g.metadata(), &expected[..]);
        assert!(g.tensors().is_empty());
    }
}

#[test]
fn arrays_of_every_element_type_round_trip() {
    for version in [2, 3] {
        let mut w = GgufWriter::new(version);
        let mut expected = Vec::new();
        for t in ValueType::ALL {
            for (suffix, items) in [("empty", vec![]), ("full", sample_items(t))] {
                let key = format!("array.{t}.{suffix}");
                let value = Value::array(t, items);
                w.add(&key, value.clone());
                expected.push((key, value));
            }
        }
        let g = read(&w);
        assert_eq!(g.metadata(), &expected[..], "version {version}");
    }
}

#[test]
fn nested_arrays_round_trip_up_to_the_depth_limit() {
    let mut deepest = Value::string_array(["bottom"]);
    for _ in 1..MAX_ARRAY_DEPTH {
        deepest = Value::array(ValueType::Array, vec![deepest]);
    }
    let cases = [
        Value::array(ValueType::Array, vec![]),
        Value::array(
            ValueType::Array,
            vec![Value::array(ValueType::U8, vec![]), Value::i32_array([7])],
        ),
        Value::array(
            ValueType::Array,
            vec![Value::array(
                ValueType::Array,
                vec![Value::string_array(["a", "b"]), Value::f32_array([1.0])],
            )],
        ),
        deepest,
    ];
    for value in cases {
        let mut w = GgufWriter::new(3);
        w.add("nested", value.clone());
        assert_eq!(read(&w).get("nested"), Some(&value));
    }
}

/// Deterministic filler bytes, different for every tensor.
fn filler(seed: u8, n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn tensor_data_round_trips_at_alignments_32_and_64() {
    // (name, dims, dtype): sizes chosen so most tensors need padding after them.
    let specs: [(&str, &[u64], DType); 6] = [
        ("a.f32", &[3], DType::F32),
        ("b.q4_0", &[64, 2], DType::Q4_0),
        ("c.q8_0", &[32, 3, 2], DType::Q8_0),
        ("d.q4_k", &[256], DType::Q4_K),
        ("e.f16", &[5, 1, 1, 3], DType::F16),
        ("f.q6_k", &[512, 1], DType::Q6_K),
    ];
    for alignment in [None, Some(32u32), Some(64)] {
        let mut w = GgufWriter::new(3);
        w.add("general.architecture", Value::from("test"));
        if let Some(a) = alignment {
            w.add("general.alignment", Value::U32(a));
        }
        let mut datas = Vec::new();
        for (seed, (name, dims, dtype)) in specs.iter().enumerate() {
            let n_elements: u64 = dims.iter().product();
            let data = filler(seed as u8, dtype.bytes_for(n_elements).unwrap() as usize);
            w.add_tensor(name, dims, *dtype, data.clone());
            datas.push(data);
        }
        let g = read(&w);
        let align = u64::from(alignment.unwrap_or(32));
        assert_eq!(g.alignment(), align);
        assert_eq!(g.data_offset() % align, 0);
        assert_eq!(g.file_size() % align, 0, "the last tensor is padded too");
        assert_eq!(g.tensors().len(), specs.len());
        for ((t, (name, dims, dtype)), data) in g.tensors().iter().zip(specs).zip(&datas) {
            assert_eq!(t.name, name);
            assert_eq!(t.dims, dims);
            assert_eq!(t.dtype, dtype);
            assert_eq!(t.n_elements, dims.iter().product::<u64>());
            assert_eq!(t.n_bytes, data.len() as u64);
            assert_eq!(t.offset % align, 0, "{name}");
            assert_eq!(g.tensor(name), Some(t));
            assert_eq!(g.tensor_data(t), &data[..], "{name} at alignment {align}");
        }
        assert_eq!(g.tensor("missing"), None);
    }
}

#[test]
fn written_files_open_through_the_map() {
    let dir = std::env::temp_dir().join(format!("herd-gguf-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("written.gguf");
    let mut w = GgufWriter::new(2);
    w.add("general.alignment", Value::U32(64))
        .add(
            "tokenizer.ggml.tokens",
            Value::string_array(["<s>", "</s>", "a"]),
        )
        .add_tensor("w", &[32, 2], DType::Q8_0, filler(9, 68));
    w.write(&path).unwrap();
    // Writing again replaces the file whole.
    w.write(&path).unwrap();
    let g = Gguf::open(&path).unwrap();
    assert_eq!(g.path(), path);
    assert_eq!(g.version(), 2);
    assert_eq!(g.file_size(), w.to_bytes().len() as u64);
    assert_eq!(
        g.get_str_array("tokenizer.ggml.tokens").unwrap(),
        Some(vec!["<s>", "</s>", "a"])
    );
    let t = g.tensor("w").unwrap();
    assert_eq!(g.tensor_data(t), &filler(9, 68)[..]);
    assert_eq!(
        g.tensor_data(t).as_ptr() as usize % 64,
        0,
        "mapped tensor data keeps the file's alignment"
    );
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        vec!["written.gguf"],
        "no temporary file is left behind"
    );
    drop(g);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn opening_a_missing_file_names_it() {
    let err = Gguf::open(std::path::Path::new("/nonexistent/dir/model.gguf")).unwrap_err();
    assert_eq!(err.file(), "/nonexistent/dir/model.gguf");
    assert!(
        err.to_string()
            .starts_with("/nonexistent/dir/model.gguf: cannot read the file: "),
        "{err}"
    );
}

#[test]
fn adding_a_key_twice_replaces_it_in_place() {
    let mut w = GgufWriter::new(3);
    w.add("a", Value::U8(1))
        .add("b", Value::U8(2))
        .add("a", Value::from("one"));
    let g = read(&w);
    assert_eq!(
        g.metadata(),
        &[
            ("a".to_owned(), Value::from("one")),
            ("b".to_owned(), Value::U8(2))
        ]
    );
}

#[test]
fn file_without_tensors_may_omit_the_data_padding() {
    let mut bytes = GgufWriter::new(3).add("k", Value::U8(1)).to_bytes();
    // Header (24) + key (8 + 1) + type (4) + value (1) = 38, padded to 64 by the writer.
    assert_eq!(bytes.len(), 64);
    bytes.truncate(38);
    let g = Gguf::from_bytes("vocab-only.gguf", bytes).unwrap();
    assert_eq!(g.get_u64("k").unwrap(), Some(1));
}

fn getter_fixture() -> Gguf {
    let mut w = GgufWriter::new(3);
    w.add("u8", Value::U8(5))
        .add("u32", Value::U32(7))
        .add("i32.pos", Value::I32(9))
        .add("i32.neg", Value::I32(-3))
        .add("u64", Value::U64(1 << 40))
        .add("f32", Value::F32(0.5))
        .add("f64", Value::F64(1e-5))
        .add("bool", Value::Bool(true))
        .add("str", Value::from("llama"))
        .add("strs", Value::string_array(["a", "b"]))
        .add("strs.empty", Value::array(ValueType::String, vec![]))
        .add("f32s", Value::f32_array([1.0, -2.5]))
        .add("i32s", Value::i32_array([-1, 2]))
        .add(
            "u8s",
            Value::array(ValueType::U8, vec![Value::U8(1), Value::U8(255)]),
        )
        .add(
            "u32s.big",
            Value::array(ValueType::U32, vec![Value::U32(1), Value::U32(u32::MAX)]),
        )
        .add("f32s.empty", Value::f32_array([]))
        .add(
            "nested",
            Value::array(ValueType::Array, vec![Value::string_array(["a"])]),
        );
    read(&w)
}

/// Renders a getter's result so every getter fits one table.
fn show<T: std::fmt::Debug>(r: Result<Option<T>, herd_gguf::GgufError>) -> String {
    match r {
        Ok(v) => format!("{v:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn typed_getters_convert_or_name_key_and_types() {
    let g = getter_fixture();
    let cases: Vec<(String, &str)> = vec![
        (show(g.get_u64("u8")), "Some(5)"),
        (show(g.get_u64("u32")), "Some(7)"),
        (show(g.get_u64("i32.pos")), "Some(9)"),
        (show(g.get_u64("u64")), "Some(1099511627776)"),
        (show(g.get_u64("absent")), "None"),
        (show(g.get_u64("i32.neg")), "fixture.gguf: metadata 'i32.neg': expected a non-negative integer, found I32 -3"),
        (show(g.get_u64("f32")), "fixture.gguf: metadata 'f32': expected a non-negative integer, found F32 0.5"),
        (show(g.get_u64("str")), "fixture.gguf: metadata 'str': expected a non-negative integer, found String of 5 bytes"),
        (show(g.get_f64("f32")), "Some(0.5)"),
        (show(g.get_f64("f64")), "Some(1e-5)"),
        (show(g.get_f64("i32.neg")), "Some(-3.0)"),
        (show(g.get_f64("bool")), "fixture.gguf: metadata 'bool': expected a number, found Bool true"),
        (show(g.get_str("str")), "Some(\"llama\")"),
        (show(g.get_str("absent")), "None"),
        (show(g.get_str("u32")), "fixture.gguf: metadata 'u32': expected a string, found U32 7"),
        (show(g.get_bool("bool")), "Some(true)"),
        (show(g.get_bool("u8")), "fixture.gguf: metadata 'u8': expected a bool, found U8 5"),
        (show(g.get_str_array("strs")), "Some([\"a\", \"b\"])"),
        (show(g.get_str_array("strs.empty")), "Some([])"),
        (show(g.get_str_array("i32s")), "fixture.gguf: metadata 'i32s': expected an array of strings, found Array of I32 with 2 items"),
        (show(g.get_str_array("str")), "fixture.gguf: metadata 'str': expected an array of strings, found String of 5 bytes"),
        (show(g.get_f32_array("f32s")), "Some([1.0, -2.5])"),
        (show(g.get_f32_array("f32s.empty")), "Some([])"),
        (show(g.get_f32_array("i32s")), "fixture.gguf: metadata 'i32s': expected an array of F32, found Array of I32 with 2 items"),
        (show(g.get_i32_array("i32s")), "Some([-1, 2])"),
        (show(g.get_i32_array("u8s")), "Some([1, 255])"),
        (show(g.get_i32_array("absent")), "None"),
        (
            show(g.get_i32_array("u32s.big")),
            "fixture.gguf: metadata 'u32s.big': expected an array of integers that fit in I32, found U32 4294967295 at item 1",
        ),
        (
            show(g.get_i32_array("f32s.empty")),
            "fixture.gguf: metadata 'f32s.empty': expected an array of integers that fit in I32, found Array of F32 with 0 items",
        ),
        (
            show(g.get_i32_array("nested")),
            "fixture.gguf: metadata 'nested': expected an array of integers that fit in I32, found Array of Array with 1 items",
        ),
    ];
    for (got, expected) in cases {
        assert_eq!(got, expected);
    }
}

#[test]
fn array_struct_is_public_and_comparable() {
    let a = Array {
        elem_type: ValueType::U16,
        items: vec![Value::U16(1)],
    };
    let mut w = GgufWriter::new(3);
    w.add("a", Value::from(a.clone()));
    assert_eq!(read(&w).get("a").and_then(Value::as_array), Some(&a));
}

#[test]
#[should_panic(expected = "tensor 'w': data length does not match shape [32, 2] of type Q8_0")]
fn writer_refuses_data_of_the_wrong_length() {
    GgufWriter::new(3).add_tensor("w", &[32, 2], DType::Q8_0, vec![0; 67]);
}

#[test]
#[should_panic(expected = "metadata 'a': array items do not all have type U8")]
fn writer_refuses_inconsistent_arrays() {
    GgufWriter::new(3).add("a", Value::array(ValueType::U8, vec![Value::I8(1)]));
}

#[test]
#[should_panic(expected = "expected a non-zero power of two of type U32, found U32 48")]
fn writer_refuses_bad_alignment() {
    GgufWriter::new(3).add("general.alignment", Value::U32(48));
}
