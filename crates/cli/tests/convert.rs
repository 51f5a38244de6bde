//! `herd convert`: a fixture's Hugging Face folder becomes a GGUF file that loads and has the
//! fixture GGUF's tensors; a folder herd cannot run is refused with one error line and leaves
//! no file behind. (crates/engine/tests/hf_folders.rs holds the logit and metadata checks.)

use std::path::PathBuf;
use std::process::Command;

use herd_gguf::Gguf;

fn arch_dir() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/arch");
    if p.exists() {
        Some(p)
    } else {
        eprintln!("skipped: {} is absent", p.display());
        None
    }
}

#[test]
fn convert_writes_the_converters_file_or_nothing() {
    let Some(dir) = arch_dir() else { return };
    let out_dir = std::env::temp_dir().join(format!("herd-convert-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).unwrap();
    let herd = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_herd")).args(args).output().unwrap();

    let out = out_dir.join("gemma3.gguf");
    let r = herd(&["convert", dir.join("gemma3").to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let (got, want) = (Gguf::open(&out).unwrap(), Gguf::open(&dir.join("gemma3/model-f32.gguf")).unwrap());
    let shapes = |g: &Gguf| {
        let mut v: Vec<_> = g.tensors().iter().map(|t| (t.name.clone(), t.dims.clone(), t.dtype)).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    assert_eq!(shapes(&got), shapes(&want));

    let q = out_dir.join("q8.gguf");
    let r = herd(&["convert", dir.join("qwen2").to_str().unwrap(), "-o", q.to_str().unwrap(), "--type", "q8_0"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(Gguf::open(&q).unwrap().tensor("blk.0.attn_q.weight").unwrap().dtype, herd_kernels::DType::Q8_0);

    // The arch folder itself has no config.json: refused, nothing written.
    let bad = out_dir.join("bad.gguf");
    let r = herd(&["convert", dir.to_str().unwrap(), "-o", bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && err.contains("config.json is missing") && err.lines().count() == 1, "{err}");
    let left: Vec<_> = std::fs::read_dir(&out_dir).unwrap().map(|e| e.unwrap().file_name()).filter(|n| n.to_string_lossy().contains("bad")).collect();
    assert!(left.is_empty(), "{left:?}");
    std::fs::remove_dir_all(&out_dir).unwrap();
}
