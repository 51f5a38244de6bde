//! Re-quantizing a model file, as llama-quantize does: every weight matrix to the asked type
//! (rows that are not whole blocks of it fall back to the nearest legacy type, as llama.cpp's
//! do), norms and other vectors kept as they are, all metadata carried over.

use std::path::Path;

use herd_gguf::{Gguf, GgufWriter, Value};
use herd_kernels::quant::{dequantize_row, quantize_row};
use herd_kernels::DType;

use crate::error::{EngineError, Result};

/// What a file holds after quantizing to each type: llama.cpp's `general.file_type` numbers
/// (`LLAMA_FTYPE_MOSTLY_*`), which tools read to name a file's quantization.
fn file_type(dtype: DType) -> Option<u32> {
    Some(match dtype {
        DType::F32 => 0,
        DType::F16 => 1,
        DType::Q4_0 => 2,
        DType::Q4_1 => 3,
        DType::Q8_0 => 7,
        DType::Q5_0 => 8,
        DType::Q5_1 => 9,
        DType::Q2_K => 10,
        DType::Q3_K => 12, // Q3_K_M
        DType::Q4_K => 15, // Q4_K_M
        DType::Q5_K => 17, // Q5_K_M
        DType::Q6_K => 18,
        DType::BF16 => 32,
        DType::Q8_1 | DType::Q8_K => return None,
    })
}

/// The type a matrix with rows of `cols` values gets when `target` does not fit its rows.
pub fn type_for_rows(target: DType, cols: usize) -> DType {
    if cols.is_multiple_of(target.block_len()) {
        return target;
    }
    let fallback = match target {
        DType::Q2_K | DType::Q3_K => DType::Q4_0,
        DType::Q4_K => DType::Q5_0,
        DType::Q5_K => DType::Q5_1,
        _ => DType::Q8_0,
    };
    if cols.is_multiple_of(fallback.block_len()) {
        fallback
    } else {
        DType::F16
    }
}

/// Summary of one quantization, for the user.
#[derive(Clone, Debug, Default)]
pub struct QuantizeReport {
    pub n_quantized: usize,
    /// (tensor name, type used) for matrices whose rows did not fit the target type.
    pub fallbacks: Vec<(String, DType)>,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// Writes `input`'s model to `output` with its weight matrices in `target`.
pub fn quantize(input: &Path, output: &Path, target: DType, n_threads: usize) -> Result<QuantizeReport> {
    write(&Gguf::open(input)?, output, Some(target), n_threads)
}

/// Writes `file` (opened, or assembled from another format) to `output` as one GGUF file,
/// replacing any file there only once it is whole: as it is with `target` `None`, else with its
/// weight matrices in `target`.
pub fn write(file: &Gguf, output: &Path, target: Option<DType>, n_threads: usize) -> Result<QuantizeReport> {
    let ftype = target.map(|t| file_type(t).ok_or_else(|| EngineError::Invalid(format!("{t} is an activation format, not a weight type")))).transpose()?;
    let mut w = GgufWriter::new(3);
    for (key, value) in file.metadata() {
        if key != "general.alignment" && !(ftype.is_some() && key == "general.file_type") {
            w.add(key, value.clone());
        }
    }
    if let Some(ftype) = ftype {
        w.add("general.file_type", Value::U32(ftype));
    }
    let mut report = QuantizeReport::default();
    for t in file.tensors() {
        let data = file.tensor_data(t);
        report.bytes_in += t.n_bytes;
        let is_matrix = t.dims.len() == 2 && t.name.ends_with(".weight") && DType::WEIGHTS.contains(&t.dtype);
        let Some(target) = target.filter(|_| is_matrix) else {
            w.add_tensor(&t.name, &t.dims, t.dtype, data.to_vec());
            report.bytes_out += t.n_bytes;
            continue;
        };
        let cols = t.dims[0] as usize;
        let dtype = type_for_rows(target, cols);
        if dtype != target {
            report.fallbacks.push((t.name.clone(), dtype));
        }
        let out = convert_rows(data, t.dtype, dtype, cols, n_threads);
        report.bytes_out += out.len() as u64;
        report.n_quantized += 1;
        w.add_tensor(&t.name, &t.dims, dtype, out);
    }
    w.write(output).map_err(|e| EngineError::Store(format!("{}: {e}", output.display())))?;
    Ok(report)
}

/// Every row of `data` (rows of `cols` values in `from`) dequantized and quantized to `to`,
/// rows split over threads.
fn convert_rows(data: &[u8], from: DType, to: DType, cols: usize, n_threads: usize) -> Vec<u8> {
    let (in_row, out_row) = (row_bytes(from, cols), row_bytes(to, cols));
    let n_rows = data.len() / in_row;
    let mut out = vec![0u8; n_rows * out_row];
    let rows_per_thread = n_rows.div_ceil(n_threads.max(1)).max(1);
    std::thread::scope(|scope| {
        for (src, dst) in data.chunks(rows_per_thread * in_row).zip(out.chunks_mut(rows_per_thread * out_row)) {
            scope.spawn(move || {
                let mut row = vec![0.0f32; cols];
                for (s, d) in src.chunks_exact(in_row).zip(dst.chunks_exact_mut(out_row)) {
                    dequantize_row(from, s, &mut row);
                    quantize_row(to, &row, d).expect("every weight type has a quantizer");
                }
            });
        }
    });
    out
}

fn row_bytes(dtype: DType, cols: usize) -> usize {
    dtype.bytes_for(cols as u64).expect("a validated tensor's rows are whole blocks") as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Model;
    use crate::synth::{find_shape, write, SynthOptions};

    #[test]
    fn fallbacks_follow_llama_cpp() {
        let cases = [(DType::Q4_K, 576, DType::Q5_0), (DType::Q4_K, 1536, DType::Q4_K), (DType::Q6_K, 576, DType::Q8_0), (DType::Q5_K, 64, DType::Q5_1), (DType::Q4_0, 48, DType::F16), (DType::Q8_0, 64, DType::Q8_0)];
        for (target, cols, want) in cases {
            assert_eq!(type_for_rows(target, cols), want, "{target} with rows of {cols}");
        }
    }

    #[test]
    fn quantized_model_runs_and_keeps_its_metadata() {
        let dir = std::env::temp_dir().join(format!("herd-quantize-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (src, dst) = (dir.join("f16.gguf"), dir.join("q4k.gguf"));
        let shape = crate::synth::Shape { d_model: 256, d_ff: 384, ..find_shape("tiny").unwrap() };
        write(&SynthOptions { shape, dtype: DType::F16, seed: 2, chat_template: true }, &src).unwrap();
        let report = quantize(&src, &dst, DType::Q4_K, 2).unwrap();
        // 7 matrices per layer, 2 layers, embedding and output; d_ff rows of 384 fall back.
        assert_eq!(report.n_quantized, 16);
        assert!(report.fallbacks.iter().all(|(name, t)| name.contains("ffn_down") && *t == DType::Q5_0), "{:?}", report.fallbacks);
        assert!(report.bytes_out < report.bytes_in / 2);
        let (a, b) = (Model::load(&src).unwrap(), Model::load(&dst).unwrap());
        assert_eq!(b.file.get_u64("general.file_type").unwrap(), Some(15));
        assert_eq!(b.file.get_str("tokenizer.chat_template").unwrap(), a.file.get_str("tokenizer.chat_template").unwrap());
        assert_eq!(b.file.tensor("blk.0.attn_q.weight").unwrap().dtype, DType::Q4_K);
        assert_eq!(b.file.tensor("blk.0.attn_norm.weight").unwrap().dtype, DType::F32);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
