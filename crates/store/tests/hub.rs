//! The hub client against a stand-in hub on loopback: picking a GGUF file by tag, a whole
//! safetensors folder, resuming a dropped download, refusing a wrong hash, 401 and 404, and
//! the store's list and remove around them.

mod stand_in;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use herd_gguf::{GgufWriter, Value};
use herd_store::{Hub, Lines, ModelName, Store};
use stand_in::{Repos, StandIn, REVISION};

/// A small GGUF file the store can describe: llama, context 2048, file type `file_type`, with
/// `pad` bytes of padding so that a download takes more than one read.
fn gguf(file_type: u32, pad: usize) -> Vec<u8> {
    let mut w = GgufWriter::new(3);
    w.add("general.architecture", "llama".into());
    w.add("general.file_type", Value::U32(file_type));
    w.add("llama.context_length", Value::U32(2048));
    w.add("general.name", Value::String("x".repeat(pad)));
    w.to_bytes()
}

fn repos() -> Repos {
    let mut repos = Repos::new();
    let mut gguf_repo = BTreeMap::new();
    gguf_repo.insert("tiny-Q4_K_M.gguf".to_string(), gguf(15, 300_000));
    gguf_repo.insert("tiny-Q8_0.gguf".to_string(), gguf(7, 200_000));
    gguf_repo.insert("tiny-Q4_K_S.gguf".to_string(), gguf(14, 100));
    gguf_repo.insert("README.md".to_string(), b"# tiny".to_vec());
    repos.insert("org/tiny-GGUF".to_string(), gguf_repo);
    let mut folder = BTreeMap::new();
    folder.insert("config.json".to_string(), br#"{"architectures":["LlamaForCausalLM"],"model_type":"llama","max_position_embeddings":4096,"torch_dtype":"bfloat16"}"#.to_vec());
    folder.insert("tokenizer.json".to_string(), b"{}".to_vec());
    folder.insert("tokenizer_config.json".to_string(), b"{}".to_vec());
    folder.insert("model-00001-of-00002.safetensors".to_string(), vec![7u8; 150_000]);
    folder.insert("model-00002-of-00002.safetensors".to_string(), vec![9u8; 1000]);
    folder.insert("model.safetensors.index.json".to_string(), b"{}".to_vec());
    folder.insert("README.md".to_string(), b"# folder".to_vec());
    folder.insert("pytorch_model.bin".to_string(), b"not wanted".to_vec());
    repos.insert("org/tiny".to_string(), folder);
    repos
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("herd-hub-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every file under `dir`, relative, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

fn pull(store: &Store, hub: &Hub, name: &str) -> Result<PathBuf, String> {
    let mut lines = Vec::new();
    let result = store.ensure(&ModelName::parse(name).unwrap(), hub, &mut Lines(|l: &str| lines.push(l.to_string())));
    result.map_err(|e| e.to_string())
}

#[test]
fn a_gguf_file_is_picked_by_tag_pulled_once_listed_and_removed() {
    let dir = scratch("gguf");
    let fixtures = repos();
    let hub_server = StandIn::start(fixtures.clone());
    let hub = Hub::new(&hub_server.endpoint, None);
    let store = Store::at(dir.join("models"));

    let path = pull(&store, &hub, "hf.co/org/tiny-GGUF:q8_0").unwrap();
    assert_eq!(path, dir.join("models/hf.co/org/tiny-GGUF/tiny-Q8_0.gguf"));
    assert_eq!(std::fs::read(&path).unwrap(), fixtures["org/tiny-GGUF"]["tiny-Q8_0.gguf"]);
    assert_eq!(files_under(&dir), ["models/hf.co/org/tiny-GGUF/tiny-Q8_0.gguf"]);
    let hits = hub_server.hits();
    assert_eq!(hits, [
        "GET /api/models/org/tiny-GGUF?blobs=true".to_string(),
        format!("GET /org/tiny-GGUF/resolve/{REVISION}/tiny-Q8_0.gguf"),
        "GET /cdn/org/tiny-GGUF/tiny-Q8_0.gguf".to_string(),
    ]);

    // Twice is a no-op: nothing asked of the hub.
    assert_eq!(pull(&store, &hub, "hf.co/org/tiny-GGUF:Q8_0").unwrap(), path);
    assert_eq!(hub_server.hits().len(), hits.len());
    // No tag: Q4_K_M when the repository has several.
    let default = pull(&store, &hub, "hf.co/org/tiny-GGUF").unwrap();
    assert_eq!(default.file_name().unwrap(), "tiny-Q4_K_M.gguf");
    let n_hits = hub_server.hits().len();
    assert_eq!(pull(&store, &hub, "hf.co/org/tiny-GGUF").unwrap(), default);
    assert_eq!(pull(&store, &hub, "hf.co/org/tiny-GGUF:Q4_K_M").unwrap(), default);
    assert_eq!(hub_server.hits().len(), n_hits, "the name without a tag stays that file, offline");

    let listed: Vec<(String, String, String, Option<u64>, u64)> = store.list().unwrap().into_iter().map(|e| (e.name, e.family, e.quant, e.context, e.n_bytes)).collect();
    let size = |f: &str| fixtures["org/tiny-GGUF"][f].len() as u64;
    assert_eq!(listed, [
        ("hf.co/org/tiny-GGUF:Q4_K_M".into(), "llama".into(), "Q4_K_M".into(), Some(2048), size("tiny-Q4_K_M.gguf")),
        ("hf.co/org/tiny-GGUF:Q8_0".into(), "llama".into(), "Q8_0".into(), Some(2048), size("tiny-Q8_0.gguf")),
    ]);

    // Ambiguous and unknown tags name what there is.
    let err = pull(&store, &hub, "hf.co/org/tiny-GGUF:q4_k").unwrap_err();
    assert!(err.contains("several GGUF files fit (Q4_K_M, Q4_K_S)"), "{err}");
    let err = pull(&store, &hub, "hf.co/org/tiny-GGUF:Q2_K").unwrap_err();
    assert!(err.contains("no GGUF file of org/tiny-GGUF matches 'Q2_K' (tags: Q4_K_M, Q4_K_S, Q8_0)"), "{err}");

    let removed = store.remove(&ModelName::parse("hf.co/org/tiny-GGUF:Q8_0").unwrap()).unwrap();
    assert_eq!(removed, std::slice::from_ref(&path));
    assert!(!path.exists());
    assert_eq!(store.list().unwrap().len(), 1);
    store.remove(&ModelName::parse("hf.co/org/tiny-GGUF:Q4_K_M").unwrap()).unwrap();
    assert!(store.list().unwrap().is_empty());
    assert_eq!(files_under(&dir), Vec::<String>::new(), "the bytes are gone");
    assert!(!dir.join("models/hf.co/org").exists(), "empty folders go too");
    let err = store.remove(&ModelName::parse("hf.co/org/tiny-GGUF:Q4_K_M").unwrap()).unwrap_err().to_string();
    assert!(err.contains("is not in"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_repository_without_gguf_files_comes_as_a_safetensors_folder() {
    let dir = scratch("folder");
    let fixtures = repos();
    let hub_server = StandIn::start(fixtures.clone());
    let hub = Hub::new(&hub_server.endpoint, None).with_retries(0, Duration::ZERO);
    let store = Store::at(dir.join("models"));

    // The first file is cut off: the folder is not there, and the next pull resumes.
    hub_server.faults.drops.store(1, Ordering::SeqCst);
    let err = pull(&store, &hub, "hf.co/org/tiny").unwrap_err();
    assert!(err.contains("pull again to resume"), "{err}");
    assert!(store.local(&ModelName::parse("hf.co/org/tiny").unwrap()).unwrap().is_none());
    assert!(!dir.join("models/hf.co/org/tiny").exists());

    let path = pull(&store, &hub, "hf.co/org/tiny").unwrap();
    assert_eq!(path, dir.join("models/hf.co/org/tiny"));
    let want = ["config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json"];
    assert_eq!(files_under(&path), want);
    for f in want {
        assert_eq!(std::fs::read(path.join(f)).unwrap(), fixtures["org/tiny"][f], "{f}");
    }
    assert_eq!(files_under(&dir.join("models")).len(), want.len(), "no staging folder or partial file left");
    assert!(hub_server.hits().iter().any(|h| h.starts_with("GET /cdn/org/tiny/config.json bytes=")), "{:?}", hub_server.hits());

    let listed = store.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].name.as_str(), listed[0].family.as_str(), listed[0].quant.as_str(), listed[0].context), ("hf.co/org/tiny", "llama", "BF16", Some(4096)));
    let err = pull(&store, &hub, "hf.co/org/tiny:Q4_K_M").unwrap_err();
    assert!(err.contains("has no GGUF files"), "{err}");

    store.remove(&ModelName::parse("hf.co/org/tiny").unwrap()).unwrap();
    assert!(store.list().unwrap().is_empty());
    assert_eq!(files_under(&dir), Vec::<String>::new());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_dropped_connection_is_resumed_at_once_and_by_the_next_pull() {
    let dir = scratch("resume");
    let fixtures = repos();
    let hub_server = StandIn::start(fixtures.clone());
    // One immediate resume per pull.
    let hub = Hub::new(&hub_server.endpoint, None).with_retries(1, Duration::ZERO);
    let store = Store::at(dir.join("models"));
    let want = &fixtures["org/tiny-GGUF"]["tiny-Q4_K_M.gguf"];
    let n = want.len() as u64;
    let first = n / 2;
    let second = first + (n - first) / 2;
    let third = second + (n - second) / 2;

    // Cut off, resumed, cut off again: the pull gives up and keeps what it has.
    hub_server.faults.drops.store(3, Ordering::SeqCst);
    let mut lines = Vec::new();
    let err = store.ensure(&ModelName::parse("hf.co/org/tiny-GGUF:Q4_K_M").unwrap(), &hub, &mut Lines(|l: &str| lines.push(l.to_string()))).unwrap_err().to_string();
    assert!(err.contains(&format!("the download stopped after {second} of {n} bytes")) && err.contains("pull again to resume"), "{err}");
    assert!(lines.iter().any(|l| l.contains(&format!("at byte {first}; resuming (1 of 1)"))), "{lines:?}");
    let partial = dir.join("models/hf.co/org/tiny-GGUF/tiny-Q4_K_M.gguf.partial");
    assert_eq!(std::fs::metadata(&partial).unwrap().len(), second);
    assert_eq!(files_under(&dir), ["models/hf.co/org/tiny-GGUF/tiny-Q4_K_M.gguf.partial"], "only the partial file, under its own name");
    assert!(store.list().unwrap().is_empty(), "a partial file is not a model");
    assert!(store.local(&ModelName::parse("hf.co/org/tiny-GGUF:Q4_K_M").unwrap()).unwrap().is_none());

    // While another process downloads it, a pull waits its turn instead of interleaving bytes.
    let held = std::fs::OpenOptions::new().append(true).open(&partial).unwrap();
    held.lock().unwrap();
    let err = pull(&store, &hub, "hf.co/org/tiny-GGUF:Q4_K_M").unwrap_err();
    assert!(err.contains("another herd is downloading it"), "{err}");
    drop(held);
    assert_eq!(std::fs::metadata(&partial).unwrap().len(), second);

    // The next pull goes on from there: cut off once more, resumed, complete.
    let path = pull(&store, &hub, "hf.co/org/tiny-GGUF:Q4_K_M").unwrap();
    assert_eq!(&std::fs::read(&path).unwrap(), want);
    assert_eq!(files_under(&dir), ["models/hf.co/org/tiny-GGUF/tiny-Q4_K_M.gguf"]);
    let ranges: Vec<String> = hub_server.hits().into_iter().filter(|h| h.starts_with("GET /cdn/")).collect();
    assert_eq!(ranges, [
        "GET /cdn/org/tiny-GGUF/tiny-Q4_K_M.gguf".to_string(),
        format!("GET /cdn/org/tiny-GGUF/tiny-Q4_K_M.gguf bytes={first}-"),
        format!("GET /cdn/org/tiny-GGUF/tiny-Q4_K_M.gguf bytes={second}-"),
        format!("GET /cdn/org/tiny-GGUF/tiny-Q4_K_M.gguf bytes={third}-"),
    ]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_wrong_hash_is_refused_and_nothing_is_left() {
    let dir = scratch("hash");
    let hub_server = StandIn::start(repos());
    let hub = Hub::new(&hub_server.endpoint, None).with_retries(0, Duration::ZERO);
    let store = Store::at(dir.join("models"));
    hub_server.faults.wrong_sha.store(true, Ordering::SeqCst);
    let err = pull(&store, &hub, "hf.co/org/tiny-GGUF:Q8_0").unwrap_err();
    assert!(err.starts_with("refusing tiny-Q8_0.gguf: its sha256 is ") && err.contains("the hub says"), "{err}");
    assert_eq!(files_under(&dir), Vec::<String>::new());
    // A resumed file whose start was corrupted on disk is refused the same way.
    hub_server.faults.wrong_sha.store(false, Ordering::SeqCst);
    hub_server.faults.drops.store(1, Ordering::SeqCst);
    pull(&store, &hub, "hf.co/org/tiny-GGUF:Q8_0").unwrap_err();
    let partial = dir.join("models/hf.co/org/tiny-GGUF/tiny-Q8_0.gguf.partial");
    // rm takes an interrupted download by its name too.
    assert_eq!(store.remove(&ModelName::parse("hf.co/org/tiny-GGUF:q8_0").unwrap()).unwrap(), std::slice::from_ref(&partial));
    assert_eq!(files_under(&dir), Vec::<String>::new());
    hub_server.faults.drops.store(1, Ordering::SeqCst);
    pull(&store, &hub, "hf.co/org/tiny-GGUF:Q8_0").unwrap_err();
    let mut bytes = std::fs::read(&partial).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&partial, bytes).unwrap();
    let err = pull(&store, &hub, "hf.co/org/tiny-GGUF:Q8_0").unwrap_err();
    assert!(err.contains("its sha256 is"), "{err}");
    assert_eq!(files_under(&dir), Vec::<String>::new());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn unauthorized_and_missing_repositories_say_what_to_do() {
    let dir = scratch("auth");
    let hub_server = StandIn::start(repos());
    let store = Store::at(dir.join("models"));
    *hub_server.faults.token.lock().unwrap() = Some("hf_secret".into());

    let err = pull(&store, &Hub::new(&hub_server.endpoint, None), "hf.co/org/tiny-GGUF:Q8_0").unwrap_err();
    assert!(err.contains("401") && err.contains("set HF_TOKEN"), "{err}");
    let err = pull(&store, &Hub::new(&hub_server.endpoint, Some("wrong".into())), "hf.co/org/tiny-GGUF:Q8_0").unwrap_err();
    assert!(err.contains("401"), "{err}");
    let path = pull(&store, &Hub::new(&hub_server.endpoint, Some("hf_secret".into())), "hf.co/org/tiny-GGUF:Q8_0").unwrap();
    assert!(path.is_file());
    // The token follows the redirect of a small file on the hub's own host.
    let folder = pull(&store, &Hub::new(&hub_server.endpoint, Some("hf_secret".into())), "hf.co/org/tiny").unwrap();
    assert!(folder.join("config.json").is_file());

    let err = pull(&store, &Hub::new(&hub_server.endpoint, Some("hf_secret".into())), "hf.co/org/missing").unwrap_err();
    assert!(err.contains("not found on the hub (404"), "{err}");
    // Nothing listening: a clear error, not a hang.
    let closed = format!("http://{}", std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap());
    let err = pull(&store, &Hub::new(&closed, None), "hf.co/org/other").unwrap_err();
    assert!(err.contains("cannot reach the hub"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}
