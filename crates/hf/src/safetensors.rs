//! A strict reader of safetensors headers: 8 bytes of little-endian header length, a JSON object
//! of `name -> {dtype, shape, data_offsets}` (and an optional `__metadata__` of strings), then
//! the data. Everything is checked against the bytes present before it is used: the header
//! length is bounded, every tensor's byte count matches its dtype and shape, and the tensors
//! tile the data section exactly (contiguous, non-overlapping, nothing left over), as Hugging
//! Face's own `safetensors` crate demands. Written here rather than taken from that crate so
//! that every refusal names the file, the tensor and expected vs found, and so that dtypes herd
//! cannot run (anything but F32, F16, BF16) are refused by name at this point.

use std::collections::BTreeMap;
use std::ops::Range;

use herd_kernels::DType;
use serde::Deserialize;

/// Hugging Face's limit on the JSON header: a bigger one is a corrupt or hostile file.
pub const MAX_HEADER_BYTES: u64 = 100 << 20;

/// One tensor of a safetensors file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StTensor {
    pub name: String,
    pub dtype: DType,
    /// Hugging Face (PyTorch) order: the last dimension is contiguous.
    pub shape: Vec<u64>,
    /// Where the data lies in the whole file (header included).
    pub range: Range<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: [u64; 2],
}

/// The tensors of a safetensors file held in `bytes`, sorted by where their data lies.
/// Errors are one line without the file name (the caller adds it).
pub fn parse(bytes: &[u8]) -> Result<Vec<StTensor>, String> {
    let len_bytes: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("{} bytes is too short for a safetensors file (8-byte header length, then the header)", bytes.len()))?;
    let header_len = u64::from_le_bytes(len_bytes);
    let file_len = bytes.len() as u64;
    if header_len > MAX_HEADER_BYTES {
        return Err(format!("the header claims {header_len} bytes, more than the {MAX_HEADER_BYTES} a safetensors header may have"));
    }
    if 8 + header_len > file_len {
        return Err(format!("the header claims {header_len} bytes but the file has only {} after the length (is it truncated?)", file_len - 8));
    }
    let data_start = 8 + header_len as usize;
    let header = &bytes[8..data_start];
    // serde_json bounds nesting (128 levels), so a crafted header cannot exhaust the stack.
    let raw: BTreeMap<String, serde_json::Value> = serde_json::from_slice(header).map_err(|e| format!("the header is not a JSON object of tensors: {e}"))?;
    let data_len = file_len - data_start as u64;
    let mut tensors = Vec::with_capacity(raw.len());
    for (name, value) in raw {
        if name == "__metadata__" {
            serde_json::from_value::<BTreeMap<String, String>>(value).map_err(|e| format!("'__metadata__' must map strings to strings: {e}"))?;
            continue;
        }
        let e: Entry = serde_json::from_value(value).map_err(|e| format!("tensor '{name}': {e}"))?;
        let dtype = match e.dtype.as_str() {
            "F32" => DType::F32,
            "F16" => DType::F16,
            "BF16" => DType::BF16,
            other => return Err(format!("tensor '{name}' has dtype {other}; herd reads F32, F16 and BF16 weights")),
        };
        let n_bytes = e
            .shape
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d))
            .and_then(|n| dtype.bytes_for(n))
            .ok_or_else(|| format!("tensor '{name}': shape {:?} of {dtype} overflows a 64-bit byte count", e.shape))?;
        let [begin, end] = e.data_offsets;
        if begin > end || end - begin != n_bytes {
            return Err(format!("tensor '{name}': data_offsets [{begin}, {end}] hold {} bytes but shape {:?} of {dtype} needs {n_bytes}", end.saturating_sub(begin), e.shape));
        }
        if end > data_len {
            return Err(format!("tensor '{name}': data_offsets [{begin}, {end}] reach past the {data_len} bytes of data (is the file truncated?)"));
        }
        // In bounds of the file, so these fit in usize.
        let range = data_start + begin as usize..data_start + end as usize;
        tensors.push(StTensor { name, dtype, shape: e.shape, range });
    }
    tensors.sort_by_key(|t| (t.range.start, t.range.end));
    let mut at = data_start;
    for (idx, t) in tensors.iter().enumerate() {
        if t.range.start != at {
            let (begin, end) = (t.range.start - data_start, t.range.end - data_start);
            return Err(match idx.checked_sub(1).map(|p| &tensors[p]) {
                Some(prev) if t.range.start < at => format!("tensor '{}' at data bytes {begin}..{end} overlaps tensor '{}' at {}..{}", t.name, prev.name, prev.range.start - data_start, prev.range.end - data_start),
                _ => format!("tensor '{}' starts at data byte {begin}, expected {} (tensors must follow one another with no gap)", t.name, at - data_start),
            });
        }
        at = t.range.end;
    }
    if at != bytes.len() {
        return Err(format!("the tensors end at data byte {} but the data section has {data_len} bytes", at - data_start));
    }
    Ok(tensors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data_len: usize) -> Vec<u8> {
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(header.as_bytes());
        out.resize(out.len() + data_len, 0);
        out
    }

    #[test]
    fn reads_a_well_formed_file() {
        let h = r#"{"__metadata__":{"format":"pt"},"b":{"dtype":"F16","shape":[2],"data_offsets":[16,20]},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#;
        let bytes = file(h, 20);
        let t = parse(&bytes).unwrap();
        let start = 8 + h.len();
        assert_eq!(t[0], StTensor { name: "a".into(), dtype: DType::F32, shape: vec![2, 2], range: start..start + 16 });
        assert_eq!(t[1].name, "b");
        assert_eq!(t[1].range, start + 16..start + 20);
    }

    #[test]
    fn lies_are_refused_by_name() {
        let t = |name: &str, dtype: &str, shape: &str, b: u64, e: u64| format!(r#""{name}":{{"dtype":"{dtype}","shape":{shape},"data_offsets":[{b},{e}]}}"#);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![1, 2, 3], "too short"),
            ((u64::MAX).to_le_bytes().to_vec(), "more than the"),
            ({ let mut b = 1000u64.to_le_bytes().to_vec(); b.extend_from_slice(b"{}"); b }, "truncated"),
            (file("[1, 2]", 0), "not a JSON object"),
            (file(&format!("{{{}}}", t("a", "I64", "[2]", 0, 16)), 16), "tensor 'a' has dtype I64"),
            (file(&format!("{{{}}}", t("a", "F32", "[3]", 0, 8)), 8), "tensor 'a': data_offsets [0, 8] hold 8 bytes but shape [3] of F32 needs 12"),
            (file(&format!("{{{}}}", t("a", "F32", "[2]", 8, 0)), 8), "tensor 'a': data_offsets [8, 0]"),
            (file(&format!("{{{}}}", t("a", "F32", "[4]", 0, 16)), 8), "reach past the 8 bytes"),
            (file(&format!("{{{},{}}}", t("a", "F32", "[4]", 0, 16), t("b", "F32", "[2]", 8, 16)), 16), "tensor 'b' at data bytes 8..16 overlaps tensor 'a' at 0..16"),
            (file(&format!("{{{}}}", t("a", "F32", "[2]", 4, 12)), 12), "tensor 'a' starts at data byte 4, expected 0"),
            (file(&format!("{{{}}}", t("a", "F32", "[2]", 0, 8)), 12), "the tensors end at data byte 8 but the data section has 12"),
            (file(&format!("{{{}}}", t("a", "F32", "[4294967296, 4294967296]", 0, 8)), 8), "overflows"),
            (file(r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1}}"#, 4), "unknown field"),
        ];
        for (bytes, want) in cases {
            let err = parse(&bytes).unwrap_err();
            assert!(err.contains(want), "{err:?} should say {want:?}");
        }
    }

    #[test]
    fn no_single_byte_change_panics() {
        let h = r#"{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[16,20]}}"#;
        let good = file(h, 20);
        for i in 0..good.len() {
            for v in [0u8, 1, b'9', b'"', 0xff] {
                let mut bad = good.clone();
                bad[i] = v;
                let _ = parse(&bad);
            }
        }
        for n in 0..good.len() {
            let _ = parse(&good[..n]);
        }
    }
}
