//! `herd plan` as scripts use it: the JSON fields the interface fixes, the fleet question, a
//! GGUF file, `--hardware cpu`, and every kind of bad input giving one clear line on stderr
//! and a non-zero exit, never a panic.

use std::process::Command;

use herd_engine::synth::{find_shape, write, SynthOptions};
use herd_kernels::DType;

struct Output {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn herd(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_herd")).args(args).output().expect("herd runs");
    let o = Output { ok: out.status.success(), stdout: String::from_utf8_lossy(&out.stdout).into(), stderr: String::from_utf8_lossy(&out.stderr).into() };
    assert!(!o.stderr.contains("panicked"), "herd {args:?} panicked: {}", o.stderr);
    o
}

fn json(args: &[&str]) -> serde_json::Value {
    let o = herd(args);
    assert!(o.ok, "herd {args:?}: {}", o.stderr);
    serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("herd {args:?}: {e}: {}", o.stdout))
}

#[test]
fn json_has_the_fields_scripts_rely_on() {
    let v = json(&["plan", "--model", "llama-3.1-8b", "--format", "fp8", "--gpus", "1xh100", "--users", "64", "--train-tokens", "15.6T", "--json"]);
    for field in [
        "weights_bytes",
        "kv_bytes_per_token",
        "max_sequences",
        "gpus_per_replica",
        "decode_tokens_per_s",
        "prefill_tokens_per_s",
        "replicas",
        "train_flops",
        "gpu_hours",
        "train_days",
    ] {
        assert!(v[field].as_f64().is_some_and(|x| x.is_finite() && x > 0.0), "{field}: {}", v[field]);
    }
    assert_eq!(v["kv_bytes_per_token"], 131072.0);
    assert_eq!(v["gpus_per_replica"], 1);
    let no_training = json(&["plan", "--model", "llama-3.1-8b", "--json"]);
    assert!(no_training.get("train_flops").is_none());
}

/// The seed question: requests/s a fleet of 600,000 H100s serves, and days to pretrain.
#[test]
fn a_fleet_answers_requests_per_second_and_training_days() {
    let v = json(&[
        "plan",
        "--model",
        "llama-3.1-405b",
        "--format",
        "fp8",
        "--fleet",
        "600000xh100",
        "--ctx",
        "2048",
        "--prompt-len",
        "1000",
        "--output-len",
        "500",
        "--tpot-ms",
        "50",
        "--train-tokens",
        "15.6T",
        "--json",
    ]);
    assert_eq!(v["fleet"]["replicas"], 75000);
    assert!(v["fleet"]["requests_per_s"].as_f64().unwrap() > 1e5, "{}", v["fleet"]);
    let days = v["train_days"].as_f64().unwrap();
    assert!(days > 1.0 && days < 3.0, "{days} days");
    let text = herd(&["plan", "--model", "llama-3.1-8b", "--fleet", "600000xh100", "--explain"]);
    assert!(text.ok && text.stdout.contains("fleet       600000 GPUs = 600000 replicas"), "{}", text.stdout);
    assert!(text.stdout.contains("ridge_batch = "), "--explain states formulas: {}", text.stdout);
}

#[test]
fn plans_a_gguf_file_and_this_cpu() {
    let dir = std::env::temp_dir().join(format!("herd-cli-plan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tiny.gguf");
    write(&SynthOptions { shape: find_shape("tiny").unwrap(), dtype: DType::Q4_1, seed: 3, chat_template: false }, &path).unwrap();
    // The CPU prediction is finite and positive (how close it comes is scripts/plan-vs-bench).
    let v = json(&["plan", "--model", path.to_str().unwrap(), "--hardware", "cpu", "--ctx", "256", "--prompt-len", "32", "--output-len", "32", "--json"]);
    assert_eq!(v["format"], "q4_1");
    for field in ["decode_tokens_per_s", "prefill_tokens_per_s", "weights_bytes"] {
        assert!(v[field].as_f64().is_some_and(|x| x.is_finite() && x > 0.0), "{field}: {v}");
    }
    assert!(v["cpu_probe"]["read_bandwidth_bytes_per_s"].as_f64().unwrap() > 0.0);
    // A Hugging Face folder, read as herd reads one: its shape from config.json.
    std::fs::remove_dir_all(&dir).unwrap();
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/arch/qwen3");
    if !folder.exists() {
        eprintln!("skipped the folder: {} is absent", folder.display());
        return;
    }
    let f = json(&["plan", "--model", folder.to_str().unwrap(), "--ctx", "64", "--prompt-len", "8", "--output-len", "8", "--json"]);
    assert!(f["weights_bytes"].as_f64().unwrap() > 0.0 && f["kv_bytes_per_token"].as_f64().unwrap() > 0.0, "{f}");
}

/// Bad input: one line on stderr that says what is wrong (and what is known, or what would
/// fit), a non-zero exit.
#[test]
fn bad_input_is_one_clear_line() {
    let cases: &[(&[&str], &[&str])] = &[
        (&["--model", "llama-3.1-405b", "--gpus", "1xh100"], &["does not fit on 1 × h100", "--gpus 16xh100", "--format fp8 on 8 × h100", "--format q4_k"]),
        (&["--model", "llama-3.1-8b", "--prompt-len", "-5"], &["--prompt-len is -5: it must be at least 1"]),
        (&["--model", "llama-3.1-8b", "--output-len", "0"], &["--output-len is 0"]),
        (&["--model", "llama-3.1-8b", "--ctx", "-1"], &["--ctx is -1"]),
        (&["--model", "llama-3.1-8b", "--users", "-3"], &["--users is -3"]),
        (&["--model", "llama-3.1-8b", "--gpus", "0xh100"], &["zero GPUs"]),
        (&["--model", "llama-3.1-8b", "--fleet", "0xh100"], &["zero GPUs"]),
        (&["--model", "llama-3.1-8b", "--hardware", "tpu-v5"], &["unknown hardware 'tpu-v5'", "h100, h200, a100, l40s, cpu"]),
        (&["--model", "llama-9"], &["unknown model 'llama-9'", "llama-3.1-405b", "qwen3-30b-a3b", "smollm2-135m"]),
        (&["--model", "llama-3.1-8b", "--format", "int3"], &["unknown format 'int3'", "q4_k"]),
        (&["--model", "llama-3.1-8b", "--kv-format", "q4_k"], &["unknown KV cache format", "q8_0"]),
        (&["--model", "llama-3.1-8b", "--mfu", "2"], &["--mfu is 2"]),
        (&["--model", "llama-3.1-8b", "--train-tokens", "-1T"], &["--train-tokens is -1T"]),
        (&["--model", "llama-3.1-8b", "--hardware", "h100", "--gpus", "2xa100"], &["different devices"]),
        (&["--model", "smollm2-135m", "--ctx", "100000"], &["exceeds the 8192 tokens"]),
        (&["--model", "llama-3.1-405b", "--fleet", "4xh100"], &["smaller than one replica"]),
    ];
    for (args, wants) in cases {
        let o = herd(&[&["plan"], *args].concat());
        assert!(!o.ok, "herd plan {args:?} succeeded: {}", o.stdout);
        let err = o.stderr.trim();
        assert_eq!(err.lines().count(), 1, "one line for {args:?}: {err}");
        assert!(err.starts_with("herd: error: "), "{err}");
        for want in *wants {
            assert!(err.contains(want), "{want:?} in the error for {args:?}: {err}");
        }
    }
}
