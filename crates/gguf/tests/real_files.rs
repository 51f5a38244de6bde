//! Real GGUF files from outside the crate: the SmolLM2 model when `HERD_TEST_MODEL` points at
//! it, and llama.cpp's vocab-only files when the shared test data is present. Each test prints
//! why it skips rather than failing when its files are absent.

use std::path::PathBuf;
use std::time::Instant;

use herd_gguf::Gguf;
use herd_kernels::DType;

#[test]
fn smollm2_model_opens_with_the_expected_contents() {
    let Some(path) = std::env::var_os("HERD_TEST_MODEL") else {
        eprintln!(
            "skipping: HERD_TEST_MODEL is not set (point it at SmolLM2-135M-Instruct.Q4_1.gguf)"
        );
        return;
    };
    let start = Instant::now();
    let g = Gguf::open(path.as_ref()).unwrap();
    eprintln!("opened {} in {:?}", g.path().display(), start.elapsed());

    assert_eq!(g.tensors().len(), 272);
    assert_eq!(g.get_str("general.architecture").unwrap(), Some("llama"));
    let tokens = g.get_str_array("tokenizer.ggml.tokens").unwrap().unwrap();
    assert_eq!(tokens.len(), 49152);
    let t = g.tensor("token_embd.weight").unwrap();
    assert_eq!(t.dtype, DType::Q8_0);
    assert_eq!(t.dims, [576, 49152]);
    assert_eq!(g.tensor_data(t).len() as u64, t.n_bytes);
    assert_eq!(g.tensor_data(t).as_ptr() as u64 % g.alignment(), 0);
    let end = g
        .tensors()
        .iter()
        .map(|t| g.data_offset() + t.offset + t.n_bytes)
        .max()
        .unwrap();
    assert!(end <= g.file_size());
}

/// `HERD_TESTDATA` if set, else `shared/testdata` beside the checkout.
fn testdata_dir() -> PathBuf {
    match std::env::var_os("HERD_TESTDATA") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata"),
    }
}

#[test]
fn llama_cpp_vocab_files_open() {
    let dir = testdata_dir().join("vocab");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!(
            "skipping: {} is absent (set HERD_TESTDATA to the shared testdata folder)",
            dir.display()
        );
        return;
    };
    let mut paths: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "gguf"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no .gguf files in {}", dir.display());
    for path in paths {
        let g = Gguf::open(&path).unwrap();
        let tokens = g.get_str_array("tokenizer.ggml.tokens").unwrap().unwrap();
        assert!(!tokens.is_empty(), "{}", path.display());
        assert!(
            g.get_str("tokenizer.ggml.model").unwrap().is_some(),
            "{}",
            path.display()
        );
        for t in g.tensors() {
            assert_eq!(g.tensor_data(t).len() as u64, t.n_bytes);
        }
        eprintln!(
            "{}: version {}, {} keys, {} tokens, {} tensors",
            path.display(),
            g.version(),
            g.metadata().len(),
            tokens.len(),
            g.tensors().len()
        );
    }
}
