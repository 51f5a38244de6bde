//! Cross-checks herd's block formats against vectors computed by the reference `gguf` Python
//! package (tests/data/quant_vectors.json, written by scripts/gen-quant-vectors.py): quantized
//! bytes must be identical and dequantized values bit-identical. No tolerance is needed because
//! both sides do the same f32 operations in the same order with no fused multiply-adds and
//! round to f16 the same way; the only allowance is that any NaN matches any NaN, since the
//! payload of a NaN made by arithmetic (e.g. inf * 0) is the platform's choice.

use herd_kernels::{dequantize_row, quantize_row, DType};
use serde_json::Value;

fn vectors() -> Value {
    let text = include_str!("data/quant_vectors.json");
    serde_json::from_str(text).expect("quant_vectors.json parses")
}

fn hex_bytes(v: &Value) -> Vec<u8> {
    let s = v.as_str().expect("hex string");
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

fn hex_f32s(v: &Value) -> Vec<f32> {
    hex_bytes(v)
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn dtype(case: &Value) -> DType {
    let name = case["type"].as_str().expect("type name");
    DType::from_name(name).unwrap_or_else(|| panic!("unknown type {name}"))
}

/// Bit-identical, except that NaN matches NaN. Reports the first mismatch by index.
fn assert_same_f32s(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let same = g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan());
        assert!(
            same,
            "{what}: element {i} (block element {}): got {g:e} ({:#010x}), want {w:e} ({:#010x})",
            i % 32,
            g.to_bits(),
            w.to_bits()
        );
    }
}

fn dequantize(dtype: DType, bytes: &[u8]) -> Vec<f32> {
    let n = bytes.len() / dtype.block_bytes() * dtype.block_len();
    let mut out = vec![0.0f32; n];
    dequantize_row(dtype, bytes, &mut out);
    out
}

#[test]
fn quantize_matches_gguf_bytes_and_values() {
    let doc = vectors();
    let cases = doc["quantize"].as_array().expect("quantize cases");
    assert_eq!(cases.len(), 8, "F32, F16, BF16 and the five legacy types");
    for case in cases {
        let t = dtype(case);
        let input = hex_f32s(&case["input"]);
        let want = hex_bytes(&case["bytes"]);
        let mut got = vec![0u8; want.len()];
        quantize_row(t, &input, &mut got).expect("quantizes");
        if let Some(i) = got.iter().zip(&want).position(|(g, w)| g != w) {
            let block = i / t.block_bytes();
            let range = block * t.block_bytes()..(block + 1) * t.block_bytes();
            panic!(
                "{t}: byte {i} (block {block}) differs\n got  {:02x?}\n want {:02x?}\n input {:?}",
                &got[range.clone()],
                &want[range],
                &input[block * t.block_len()..(block + 1) * t.block_len()]
            );
        }
        assert_same_f32s(
            &format!("{t} dequantize"),
            &dequantize(t, &want),
            &hex_f32s(&case["dequantized"]),
        );
    }
}

#[test]
fn dequantize_matches_gguf_values() {
    let doc = vectors();
    let cases = doc["dequantize"].as_array().expect("dequantize cases");
    assert_eq!(cases.len(), 13, "the quantizable types and Q2_K..Q6_K");
    for case in cases {
        let t = dtype(case);
        let bytes = hex_bytes(&case["bytes"]);
        assert_same_f32s(
            &format!("{t} dequantize"),
            &dequantize(t, &bytes),
            &hex_f32s(&case["dequantized"]),
        );
    }
}
