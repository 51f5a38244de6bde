//! `Gguf::from_parts`: a model assembled from mapped ranges and owned buffers reads like a file,
//! and every check `open` makes on shapes and sizes applies to it too.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use herd_gguf::{Gguf, GgufWriter, Mmap, TensorSource, TensorSpec, Value};
use herd_kernels::DType;

fn spec(name: &str, dims: &[u64], dtype: DType) -> TensorSpec {
    TensorSpec { name: name.into(), dims: dims.to_vec(), dtype }
}

fn mapped(bytes: &[u8]) -> Arc<Mmap> {
    let path = std::env::temp_dir().join(format!("herd-from-parts-{}-{}", std::process::id(), bytes.len()));
    std::fs::File::create(&path).unwrap().write_all(bytes).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    // SAFETY: a private file this test wrote and nobody else touches.
    let map = unsafe { Mmap::map(&file) }.unwrap();
    std::fs::remove_file(&path).unwrap();
    Arc::new(map)
}

#[test]
fn parts_read_like_a_file_and_write_the_same() {
    let map = mapped(&(0u8..64).collect::<Vec<_>>());
    let meta = vec![("general.architecture".to_string(), Value::from("llama"))];
    let tensors = vec![
        (spec("a", &[4, 2], DType::F32), TensorSource::Mapped { map: Arc::clone(&map), range: 8..40 }),
        (spec("b", &[3], DType::F32), TensorSource::Owned(vec![7; 12])),
        (spec("c", &[2], DType::F16), TensorSource::Mapped { map, range: 40..44 }),
    ];
    let g = Gguf::from_parts(Path::new("folder"), meta, tensors).unwrap();
    assert_eq!(g.path(), Path::new("folder"));
    assert_eq!(g.get_str("general.architecture").unwrap(), Some("llama"));
    let a = g.tensor("a").unwrap();
    assert_eq!(g.tensor_data(a), &(8u8..40).collect::<Vec<_>>()[..]);
    assert_eq!(g.tensor_data(g.tensor("b").unwrap()), &[7; 12]);
    assert_eq!(g.tensor_data(g.tensor("c").unwrap()), &[40, 41, 42, 43]);
    // Offsets are a written file's: each tensor aligned to 32.
    let offsets: Vec<u64> = g.tensors().iter().map(|t| t.offset).collect();
    assert_eq!(offsets, [0, 32, 64]);

    let mut w = GgufWriter::new(3);
    for (k, v) in g.metadata() {
        w.add(k, v.clone());
    }
    for t in g.tensors() {
        w.add_tensor(&t.name, &t.dims, t.dtype, g.tensor_data(t).to_vec());
    }
    let written = Gguf::from_bytes("written", w.to_bytes()).unwrap();
    for (t, u) in g.tensors().iter().zip(written.tensors()) {
        assert_eq!((t.name.as_str(), &t.dims, t.dtype, t.offset), (u.name.as_str(), &u.dims, u.dtype, u.offset));
        assert_eq!(g.tensor_data(t), written.tensor_data(u));
    }
}

#[test]
fn bad_parts_are_refused_by_name() {
    let map = mapped(&[0u8; 16]);
    let cases: Vec<(Vec<(String, Value)>, Vec<(TensorSpec, TensorSource)>, &str)> = vec![
        (vec![], vec![(spec("w", &[4], DType::F32), TensorSource::Owned(vec![0; 12]))], "tensor 'w': its data holds 12 bytes, expected 16"),
        (vec![], vec![(spec("w", &[4], DType::F32), TensorSource::Mapped { map: Arc::clone(&map), range: 8..24 })], "tensor 'w': its data range lies outside its file"),
        (vec![], vec![(spec("w", &[4, 0], DType::F32), TensorSource::Owned(vec![]))], "zero-sized dimension"),
        (vec![], vec![(spec("w", &[1, 1, 1, 1, 1], DType::F32), TensorSource::Owned(vec![0; 4]))], "5 dimensions"),
        (vec![], vec![(spec("w", &[16], DType::Q4_0), TensorSource::Owned(vec![0; 9]))], "not a multiple of the Q4_0 block length"),
        (
            vec![],
            vec![(spec("w", &[1], DType::F32), TensorSource::Owned(vec![0; 4])), (spec("w", &[1], DType::F32), TensorSource::Owned(vec![0; 4]))],
            "tensor 'w' appears more than once",
        ),
        (vec![("k".into(), Value::U32(1)), ("k".into(), Value::U32(2))], vec![], "key 'k' appears more than once"),
        (vec![("general.alignment".into(), Value::U32(3))], vec![], "general.alignment"),
    ];
    for (meta, tensors, want) in cases {
        let err = Gguf::from_parts(Path::new("folder"), meta, tensors).unwrap_err().to_string();
        assert!(err.starts_with("folder: ") && err.contains(want), "{err:?} should say {want:?}");
    }
}
