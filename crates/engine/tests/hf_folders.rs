//! Hugging Face folders run directly and through `herd convert`'s writer, against the fixtures
//! of ../shared/testdata/arch (each folder holds the model as transformers saved it beside
//! `model-f32.gguf`, made from it by llama.cpp's converter):
//! - the folder, read as a GGUF, has the fixture GGUF's metadata (values equal; `general.*`
//!   provenance aside, see `PROVENANCE`) and its tensors (names, shapes, types, and bytes);
//! - it gives the fixture GGUF's logits (f32 throughout, within 1e-4) and transformers'
//!   float64 logits within 1e-4; Mistral's folder reproduces them WITH its window, which its
//!   config states and its GGUF lacks;
//! - the file the writer makes of it does the same when loaded back.
//!
//! `Model::load(folder)` reads the tokenizer from tokenizer.json (herd_tokenizer) and must give
//! the fixture's keys too; the logit checks take the fixture GGUF's own tokenizer keys, so
//! they test the weights side alone.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use herd_engine::model::Logits;
use herd_engine::session::Session;
use herd_engine::Model;
use herd_gguf::{Gguf, Value};
use herd_kernels::ThreadPool;
use serde_json::Value as Json;

const FAMILIES: &[&str] = &["llama", "mistral", "mixtral", "qwen2", "qwen3", "qwen3moe", "gemma2", "gemma3", "phi3", "phi3-longrope"];

/// Keys that record where a file came from rather than what the model is: herd writes
/// `general.name` as the converter does (from the folder name) but not the converter's
/// parameter-count label `general.size_label`.
const PROVENANCE: &[&str] = &["general.size_label"];

fn tokenizer_keys(g: &Gguf) -> Vec<(String, Value)> {
    g.metadata().iter().filter(|(k, _)| k.starts_with("tokenizer.")).cloned().collect()
}

/// Differences between two models' metadata and tensors; `extra` keys may be in `got` only.
fn differences(got: &Gguf, want: &Gguf, extra: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in want.metadata() {
        if PROVENANCE.contains(&k.as_str()) {
            continue;
        }
        match got.get(k) {
            None => out.push(format!("key {k} missing")),
            Some(g) if g != v => out.push(format!("key {k}: {} vs {}", g.describe(), v.describe())),
            _ => {}
        }
    }
    for (k, _) in got.metadata() {
        let allowed = extra.iter().any(|e| k == e || (e.ends_with('.') && k.starts_with(e)));
        if want.get(k).is_none() && !allowed && !PROVENANCE.contains(&k.as_str()) {
            out.push(format!("key {k} is extra"));
        }
    }
    for t in want.tensors() {
        let Some(g) = got.tensor(&t.name) else {
            out.push(format!("tensor {} missing", t.name));
            continue;
        };
        if (&g.dims, g.dtype) != (&t.dims, t.dtype) {
            out.push(format!("tensor {}: {:?} {} vs {:?} {}", t.name, g.dims, g.dtype, t.dims, t.dtype));
        } else if got.tensor_data(g) != want.tensor_data(t) {
            // Generated factors are computed, not copied: allow float32 rounding there.
            let f = |b: &[u8]| b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect::<Vec<_>>();
            let worst = f(got.tensor_data(g)).iter().zip(f(want.tensor_data(t))).map(|(a, b)| (a - b).abs() / b.abs().max(1e-30)).fold(0.0f32, f32::max);
            if !(t.name == "rope_freqs.weight" && worst < 1e-6) {
                out.push(format!("tensor {}: data differs (worst relative {worst:e})", t.name));
            }
        }
    }
    for t in got.tensors() {
        if want.tensor(&t.name).is_none() {
            out.push(format!("tensor {} is extra", t.name));
        }
    }
    out
}

/// Logits of every position of every fixture sequence, f32 throughout.
fn all_logits(pool: &ThreadPool, model: &Model, expected: &Json) -> Vec<Vec<f32>> {
    expected["sequences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|seq| {
            let ids: Vec<u32> = seq.as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
            let mut session = Session::with_precision(model, pool, Some(ids.len()), true).unwrap();
            session.eval(&ids, Logits::From(0)).unwrap().to_vec()
        })
        .collect()
}

/// The largest difference from the reference's top-10 and last-position logits.
fn worst_vs_reference(logits: &[Vec<f32>], expected: &Json, results: &str, n_vocab: usize) -> f64 {
    let mut worst = 0.0f64;
    for (s, l) in logits.iter().enumerate() {
        let want = &expected["results"][results]["per_sequence"][s];
        for (p, top) in want["top10"].as_array().unwrap().iter().enumerate() {
            for pair in top.as_array().unwrap() {
                let (id, v) = (pair[0].as_u64().unwrap() as usize, pair[1].as_f64().unwrap());
                worst = worst.max((f64::from(l[p * n_vocab + id]) - v).abs());
            }
        }
        let last = &l[l.len() - n_vocab..];
        for (got, v) in last.iter().zip(want["last_logits"].as_array().unwrap()) {
            worst = worst.max((f64::from(*got) - v.as_f64().unwrap()).abs());
        }
    }
    worst
}

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter().flatten().zip(b.iter().flatten()).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn check_family(pool: &ThreadPool, dir: &Path, family: &str, out_dir: &Path) -> Vec<String> {
    let folder = dir.join(family);
    let expected: Json = serde_json::from_str(&std::fs::read_to_string(folder.join("expected.json")).unwrap()).unwrap();
    let fixture = Gguf::open(&folder.join("model-f32.gguf")).unwrap();
    let mut failures = Vec::new();
    let mistral = family == "mistral";
    let extra: &[&str] = if mistral { &["llama.attention.sliding_window"] } else { &[] };

    let virt = herd_hf::open_with_tokenizer_keys(&folder, tokenizer_keys(&fixture)).unwrap_or_else(|e| panic!("{family}: {e}"));
    failures.extend(differences(&virt, &fixture, extra).into_iter().map(|d| format!("{family} folder: {d}")));

    // `herd convert`'s writer, then the file loaded back.
    let out = out_dir.join(format!("{family}.gguf"));
    herd_engine::quantize::write(&virt, &out, None, 2).unwrap();
    let written = Gguf::open(&out).unwrap();
    failures.extend(differences(&written, &fixture, extra).into_iter().map(|d| format!("{family} converted: {d}")));

    // The whole folder, tokenizer.json included, as `herd run -m DIR` loads it. herd's tokenizer
    // reader adds its own `herd.tokenizer.*` keys (added tokens' strip flags) and states
    // `add_space_prefix` where the fixture (converted from tokenizer.model) leaves it implied.
    let loaded = Model::load(&folder).unwrap_or_else(|e| panic!("{family}: {e}"));
    let extra_tok: Vec<&str> = extra.iter().copied().chain(["herd.tokenizer.", "tokenizer.ggml.add_space_prefix"]).collect();
    failures.extend(differences(&loaded.file, &fixture, &extra_tok).into_iter().map(|d| format!("{family} Model::load(folder): {d}")));
    drop(loaded);

    let gguf_model = Model::from_gguf(Arc::new(fixture)).unwrap();
    let folder_model = Model::from_gguf(Arc::new(virt)).unwrap_or_else(|e| panic!("{family}: {e}"));
    let written_model = Model::load(&out).unwrap();
    let n_vocab = gguf_model.cfg().n_vocab;
    let from_gguf = all_logits(pool, &gguf_model, &expected);
    let from_folder = all_logits(pool, &folder_model, &expected);
    let from_written = all_logits(pool, &written_model, &expected);
    // The GGUF has no window for Mistral, so only the folder and its conversion reproduce the
    // windowed reference; the GGUF gives the windowless one.
    let results = "f32";
    for (what, logits) in [("folder", &from_folder), ("converted", &from_written)] {
        let worst = worst_vs_reference(logits, &expected, results, n_vocab);
        if worst > 1e-4 {
            failures.push(format!("{family} {what}: {worst:e} from transformers' {results}"));
        }
        if !mistral {
            let d = max_diff(logits, &from_gguf);
            if d > 1e-4 {
                failures.push(format!("{family} {what}: {d:e} from the fixture GGUF's logits"));
            }
        }
    }
    if mistral {
        // Without the window key the folder is the fixture GGUF exactly.
        let worst = worst_vs_reference(&from_gguf, &expected, "f32_no_window", n_vocab);
        assert!(worst < 1e-4, "mistral GGUF vs f32_no_window: {worst:e}");
    }
    eprintln!("{family}: folder and converted file checked");
    failures
}

#[test]
fn folders_match_their_gguf_and_transformers() {
    let Some(dir) = common::testdata("arch") else { return };
    let pool = ThreadPool::with_all_cores();
    let out_dir = std::env::temp_dir().join(format!("herd-hf-folders-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).unwrap();
    let failures: Vec<String> = FAMILIES.iter().flat_map(|f| check_family(&pool, &dir, f, &out_dir)).collect();
    std::fs::remove_dir_all(&out_dir).unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A copy of fixture `family`'s folder, under its own name (which `general.name` comes from)
/// in a fresh temporary folder, without its GGUF files and expectations.
fn copy_folder(dir: &Path, family: &str, tag: &str) -> PathBuf {
    let parent = std::env::temp_dir().join(format!("herd-hf-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&parent);
    let to = parent.join(family);
    std::fs::create_dir_all(&to).unwrap();
    for e in std::fs::read_dir(dir.join(family)).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".gguf") && name != "expected.json" {
            std::fs::copy(e.path(), to.join(&name)).unwrap();
            let mut perms = std::fs::metadata(to.join(&name)).unwrap().permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perms.set_readonly(false);
            std::fs::set_permissions(to.join(&name), perms).unwrap();
        }
    }
    to
}

/// The tensors of a safetensors file: (name, dtype, shape, bytes).
type Tensors = Vec<(String, String, Vec<u64>, Vec<u8>)>;

fn read_tensors(path: &Path) -> Tensors {
    let bytes = std::fs::read(path).unwrap();
    herd_hf::safetensors::parse(&bytes).unwrap().into_iter().map(|t| (t.name, t.dtype.name().to_string(), t.shape, bytes[t.range].to_vec())).collect()
}

/// A safetensors file as transformers writes one: header, then the tensors in order.
fn write_tensors(path: &Path, tensors: &Tensors) {
    let mut header = serde_json::Map::new();
    let mut at = 0;
    for (name, dtype, shape, bytes) in tensors {
        header.insert(name.clone(), serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [at, at + bytes.len()]}));
        at += bytes.len();
    }
    let header = serde_json::to_vec(&header).unwrap();
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&header);
    for (_, _, _, bytes) in tensors {
        out.extend_from_slice(bytes);
    }
    std::fs::write(path, out).unwrap();
}

#[test]
fn sharded_folders_load_through_their_index() {
    let Some(dir) = common::testdata("arch") else { return };
    let folder = copy_folder(&dir, "qwen3moe", "sharded");
    let tensors = read_tensors(&folder.join("model.safetensors"));
    std::fs::remove_file(folder.join("model.safetensors")).unwrap();
    let (a, b) = tensors.split_at(tensors.len() / 2);
    let names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"];
    write_tensors(&folder.join(names[0]), &a.to_vec());
    write_tensors(&folder.join(names[1]), &b.to_vec());
    let map: serde_json::Map<String, Json> = a.iter().map(|t| (t.0.clone(), Json::from(names[0]))).chain(b.iter().map(|t| (t.0.clone(), Json::from(names[1])))).collect();
    std::fs::write(folder.join("model.safetensors.index.json"), serde_json::json!({"metadata": {}, "weight_map": map}).to_string()).unwrap();
    let fixture = Gguf::open(&dir.join("qwen3moe/model-f32.gguf")).unwrap();
    let sharded = herd_hf::open_with_tokenizer_keys(&folder, tokenizer_keys(&fixture)).unwrap();
    let diffs = differences(&sharded, &fixture, &[]);
    assert!(diffs.is_empty(), "{diffs:?}");
    std::fs::remove_dir_all(folder.parent().unwrap()).unwrap();
}

/// Each broken folder gives one error naming what is wrong (`herd convert` loads the folder
/// this way before writing anything; crates/cli/tests checks that no file is left).
#[test]
fn bad_folders_are_refused_by_name() {
    let Some(dir) = common::testdata("arch") else { return };
    type Break = Box<dyn Fn(&Path)>;
    let edit_tensors = |f: fn(&mut Tensors)| -> Break {
        Box::new(move |d: &Path| {
            let mut t = read_tensors(&d.join("model.safetensors"));
            f(&mut t);
            write_tensors(&d.join("model.safetensors"), &t);
        })
    };
    let edit_config = |f: fn(&mut serde_json::Map<String, Json>)| -> Break {
        Box::new(move |d: &Path| {
            let mut c: serde_json::Map<String, Json> = serde_json::from_str(&std::fs::read_to_string(d.join("config.json")).unwrap()).unwrap();
            f(&mut c);
            std::fs::write(d.join("config.json"), Json::Object(c).to_string()).unwrap();
        })
    };
    let patch_header = |from: &'static str, to: &'static str| -> Break {
        Box::new(move |d: &Path| {
            let path = d.join("model.safetensors");
            let mut bytes = std::fs::read(&path).unwrap();
            let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
            let header = String::from_utf8(bytes[8..8 + n].to_vec()).unwrap();
            assert!(header.contains(from), "{header}");
            // Same length, so the data section stays where it was.
            let patched = header.replacen(from, &format!("{to:<width$}", width = from.len()), 1);
            bytes[8..8 + n].copy_from_slice(patched.as_bytes());
            std::fs::write(&path, bytes).unwrap();
        })
    };
    let cases: Vec<(&str, Break, &str)> = vec![
        ("no config", Box::new(|d: &Path| std::fs::remove_file(d.join("config.json")).unwrap()), "config.json is missing"),
        ("no weights", Box::new(|d: &Path| std::fs::remove_file(d.join("model.safetensors")).unwrap()), "no weights: expected model.safetensors or model.safetensors.index.json"),
        ("no tokenizer", Box::new(|d: &Path| std::fs::remove_file(d.join("tokenizer.json")).unwrap()), "tokenizer.json is missing"),
        ("unsupported architecture", edit_config(|c| drop(c.insert("architectures".into(), serde_json::json!(["GPT2LMHeadModel"])))), "architecture 'GPT2LMHeadModel' is not supported (herd runs: LlamaForCausalLM"),
        ("unsupported rope scaling", edit_config(|c| drop(c.insert("rope_scaling".into(), serde_json::json!({"rope_type": "yarn", "factor": 4.0})))), "rope_scaling type 'yarn' is not supported for LlamaForCausalLM"),
        ("header lies about a size", patch_header("\"shape\":[64,64]", "\"shape\":[64,65]"), "hold 16384 bytes but shape [64, 65] of F32 needs 16640"),
        ("header overlaps", patch_header("[131072,262144]", "[131068,262140]"), "tensor 'model.embed_tokens.weight' at data bytes 131068..262140 overlaps tensor 'lm_head.weight' at 0..131072"),
        ("header leaves a gap", patch_header("\"data_offsets\":[0,131072]", "\"data_offsets\":[4,131076]"), "starts at data byte 4, expected 0"),
        ("integer tensor", patch_header("\"dtype\":\"F32\"", "\"dtype\":\"I32\""), "has dtype I32; herd reads F32, F16 and BF16"),
        ("missing tensor", edit_tensors(|t| t.retain(|x| x.0 != "model.layers.1.self_attn.k_proj.weight")), "missing tensor 'blk.1.attn_k.weight'"),
        (
            "wrong-shape tensor",
            edit_tensors(|t| {
                let k = t.iter_mut().find(|x| x.0 == "model.layers.0.mlp.up_proj.weight").unwrap();
                k.2 = vec![96, 64];
                k.3.truncate(96 * 64 * 4);
            }),
            "tensor 'blk.0.ffn_up.weight': dims [64, 96], expected [64, 128]",
        ),
        ("unknown tensor", edit_tensors(|t| t.push(("model.layers.0.mlp.extra.weight".into(), "F32".into(), vec![4], vec![0; 16]))), "tensor 'model.layers.0.mlp.extra.weight' is not one herd knows"),
        (
            "shard index names a missing file",
            Box::new(|d: &Path| {
                let t = read_tensors(&d.join("model.safetensors"));
                let map: serde_json::Map<String, Json> = t.iter().enumerate().map(|(i, x)| (x.0.clone(), Json::from(if i % 2 == 0 { "model.safetensors" } else { "model-00002-of-00002.safetensors" }))).collect();
                std::fs::write(d.join("model.safetensors.index.json"), serde_json::json!({"weight_map": map}).to_string()).unwrap();
            }),
            "shard 'model-00002-of-00002.safetensors' (holding 'model.embed_tokens.weight') is missing from the folder",
        ),
        (
            "shard index escapes the folder",
            Box::new(|d: &Path| std::fs::write(d.join("model.safetensors.index.json"), r#"{"weight_map": {"lm_head.weight": "../model.safetensors"}}"#).unwrap()),
            "names shard '../model.safetensors', expected a file name in the same folder",
        ),
    ];
    let mut failures = Vec::new();
    for (what, break_it, want) in cases {
        let folder = copy_folder(&dir, "llama", "bad");
        break_it(&folder);
        match Model::load(&folder) {
            Ok(_) => failures.push(format!("{what}: loaded")),
            Err(e) if !e.to_string().contains(want) => failures.push(format!("{what}: {e:?} does not say {want:?}")),
            Err(_) => {}
        }
        std::fs::remove_dir_all(folder.parent().unwrap()).unwrap();
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
